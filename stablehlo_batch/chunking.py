"""Chunking: compute a batch K lanes at a time to bound memory.

The chunked module is a ``stablehlo.while`` over ``B // K`` chunks, each a call
of the K-batched function (our rewrite at batch size K), plus one call of the
function batched at ``B % K`` for the remainder — like ``jax.lax.map`` with
``batch_size=``. Unbatched arguments are passed to every chunk as they are.
With K = 1 the chunk's function is the unbatched function itself, as in
``lax.map``. The loop is built as MLIR (``loop_module``): the chunk's and the
remainder's modules become private functions of the loop's module, each
batched argument is sliced at its own batch axis and each result written at
its own, so nothing is transposed and nothing is traced, lowered or
exported again (a first call's 0.02-0.05 s). Where that route does not
apply (results summed over the batch, effects, several platforms, extended
dtypes, ...) and for the loop's VJP, the loop is the export of a small jax
wrapper (``_exported_loop``: a ``lax.scan`` over the chunks), which gets
jax's VJP (each chunk's backward pass is the batched VJP) for free; its
chunks call their modules through ``inline.call``, not ``Exported.call``.

``chunk_size="auto"`` picks the largest K whose chunked module XLA says needs
at most ``memory_limit_bytes`` of temporary memory (``memory_analysis()``).
"""
from __future__ import annotations

import warnings
from typing import Sequence

import jax
import jax.numpy as jnp
from jax import tree_util
from jax.interpreters import mlir as jax_mlir
from jaxlib.mlir import ir
from jaxlib.mlir.dialects import func as func_dialect

from stablehlo_batch import axes as ax
from stablehlo_batch import custom_vmap, inline, module_io
from stablehlo_batch.flat import BatchedExport, batch_flat, replace_exported
from stablehlo_batch.passes import builders as bld


def _move(x, src, dst):
    return x if src == dst else jnp.moveaxis(x, src, dst)


def chunk_flat(exp: jax.export.Exported, dims: Sequence[int | None],
               out_dims: Sequence[int | None], size: int, chunk: int, *,
               what: str = "batch_lower", summed: Sequence[int] = (),
               full: BatchedExport | None = None) -> BatchedExport:
    """Like ``flat.batch_flat`` at batch ``size``, computed ``chunk`` lanes at
    a time. ``dims`` are positions in the batched arguments (non-negative).
    Results in ``summed`` are summed over the batch: each chunk's sum is
    added to a running total, so no result ever holds the whole batch.
    ``full``: that ``batch_flat`` at ``size``, when the caller already has it."""
    size, chunk = int(size), int(chunk)
    if chunk <= 0:
        raise ValueError(f"chunk_size must be a positive int, got {chunk}")
    # The full-size batch gives the avals, the checks and the report; it is
    # also what runs when one chunk covers the batch.
    if full is None:
        full = batch_flat(exp, dims, out_dims, size, what=what, summed=summed)
    if chunk >= size:
        return full
    custom_vmap.refuse_chunks(exp, size, chunk)
    if not summed:
        direct = loop_module(exp, dims, out_dims, size, chunk, full, what=what)
        if direct is not None:
            return direct
    return _exported_loop(exp, dims, out_dims, size, chunk, what=what, summed=summed,
                          full=full)


def _exported_loop(exp, dims, out_dims, size: int, chunk: int, *, what: str,
                   summed: Sequence[int], full: BatchedExport) -> BatchedExport:
    """``chunk_flat``'s loop as the export of a jax function (a ``lax.scan``
    over the chunks, the remainder after it)."""
    n_out = len(exp.out_avals)
    lane_dims = [None if d is None else 0 for d in dims]
    out0 = [None if d is None else 0 for d in out_dims]
    # One lane at a time runs the unbatched function itself, as lax.map does:
    # its batch-1 form would pay for batching (selects, lane reductions of
    # loop predicates) and gain nothing. Not a function with a custom_vmap:
    # jax.vmap runs its rule, here at the chunk's size 1 (custom_vmap.py).
    lane = chunk == 1 and not custom_vmap.holds_placeholders(exp)
    # Each chunk's (and the remainder's) module is merged into the loop's
    # module as a function (inline.call): no Exported.call lowering (its
    # LAPACK set-up, its portable-artifact round trip) at the loop's export.
    if lane:
        per_chunk, chunk_code = exp, _plain_bytecode(exp)
    else:
        b = batch_flat(exp, lane_dims, out0, chunk, what=what, summed=summed)
        per_chunk, chunk_code = b.exported, module_io.module_to_bytecode(b.module)
    rem = size % chunk
    remainder = rem_code = None
    if rem:
        b = batch_flat(exp, lane_dims, out0, rem, what=what, summed=summed)
        remainder, rem_code = b.exported, module_io.module_to_bytecode(b.module)
    n_chunks = size // chunk
    summed = sorted(set(summed))
    kept = [j for j in range(n_out) if j not in summed]

    def chunked(*flat):
        flat = [x if d is None else _move(x, d, 0) for x, d in zip(flat, dims)]
        batched = [i for i, d in enumerate(dims) if d is not None]

        def one_chunk(totals, xs):
            args = list(flat)
            for i, x in zip(batched, xs):
                args[i] = x
            a, k = tree_util.tree_unflatten(exp.in_tree, args)
            outs = tree_util.tree_leaves(inline.call(per_chunk, chunk_code, *a, **k))
            return ([t + outs[j] for t, j in zip(totals, summed)],
                    tuple(outs[j] for j in kept))

        head = [flat[i] if lane else
                flat[i][:n_chunks * chunk].reshape((n_chunks, chunk) + flat[i].shape[1:])
                for i in batched]
        zeros = [jnp.zeros(a.shape, a.dtype) for a in
                 (per_chunk.out_avals[j] for j in summed)]
        # length=: with no batched argument (axis_size only) there is nothing to scan over
        totals, stacked = jax.lax.scan(one_chunk, zeros, tuple(head), length=n_chunks)
        outs = [None] * n_out
        for j, t in zip(summed, totals):
            outs[j] = t
        for j, o in zip(kept, stacked):
            d = out_dims[j]
            outs[j] = (o[0] if d is None else o if lane
                       else o.reshape((n_chunks * chunk,) + o.shape[2:]))
        if remainder is not None:
            args = list(flat)
            for i in batched:
                args[i] = flat[i][n_chunks * chunk:]
            a, k = tree_util.tree_unflatten(exp.in_tree, args)
            tail = tree_util.tree_leaves(inline.call(remainder, rem_code, *a, **k))
            outs = [o + t if j in summed else o if d is None else jnp.concatenate([o, t], axis=0)
                    for j, (o, t, d) in enumerate(zip(outs, tail, out_dims))]
        outs = [o if d is None or j in summed else _move(o, 0, ax.batch_position(d, o.ndim - 1))
                for j, (o, d) in enumerate(zip(outs, out_dims))]
        return tree_util.tree_unflatten(exp.out_tree, outs[:n_out])

    avals = [jax.ShapeDtypeStruct(a.shape, a.dtype) for a in full.exported.in_avals]
    args, kwargs = tree_util.tree_unflatten(exp.in_tree, avals)

    def wrapper(*args, **kwargs):
        return chunked(*tree_util.tree_leaves((args, kwargs)))

    wrapped = jax.export.export(jax.jit(wrapper), platforms=exp.platforms,
                                disabled_checks=exp.disabled_safety_checks)(*args, **kwargs)
    return BatchedExport(wrapped, module_io.parse_module(wrapped.mlir_module_serialized),
                         full.result_batched, full.rewrite_seconds,
                         full.report, chunk, forwarded=full.forwarded)


def loop_module(exp: jax.export.Exported, dims: Sequence[int | None],
                out_dims: Sequence[int | None], size: int, chunk: int,
                full: BatchedExport, *, what: str = "batch_lower") -> BatchedExport | None:
    """``chunk_flat``'s loop built as MLIR, without a jax trace, lowering or
    export of a loop function (``_exported_loop``: 0.02-0.05 s of a first
    call). The per-chunk module -- for chunk 1 the per-example module itself,
    else the function batched at ``chunk`` with the batch at the arguments'
    and results' own axes -- and the remainder's become private functions
    of a new module, whose ``main`` is a ``stablehlo.while`` over the chunks:
    it slices each batched argument at its batch axis, calls the chunk's
    function and writes each result's lanes in place; the remainder is
    called once after it. Its VJP is the exported loop's, built when asked
    for. None where that route is needed: several platforms, effects,
    symbolic shapes, extended dtypes, more than one device, anything but
    functions in a module, a module that does not verify."""
    if (len(exp.platforms) != 1 or exp.ordered_effects or exp.unordered_effects
            or exp.uses_global_constants or exp.nr_devices != 1 or not 1 <= chunk < size
            or any(jax.dtypes.issubdtype(a.dtype, jax.dtypes.extended)
                   for a in (*exp.in_avals, *exp.out_avals))):
        return None
    dims = ax.batch_positions(f"{what} in_axes", exp.in_avals, dims)
    kept = list(exp.module_kept_var_idx)
    arg_dims = [dims[i] for i in kept]
    res_dims = [ax.batch_position(d, len(a.shape)) for a, d in zip(exp.out_avals, out_dims)]
    n_chunks, rem = divmod(size, chunk)
    lane = chunk == 1 and not custom_vmap.holds_placeholders(exp)
    if lane:
        body_module = module_io.parse_module(exp.mlir_module_serialized)
    else:
        body_module = batch_flat(exp, dims, out_dims, chunk, what=what).module
    rem_module = batch_flat(exp, dims, out_dims, rem, what=what).module if rem else None
    ctx = body_module.context
    parts = [m if m.context == ctx else
             module_io.parse_module(module_io.module_to_bytecode(m), context=ctx)
             for m in (body_module, rem_module) if m is not None]
    if any(op.operation.name != "func.func" for m in parts for op in m.body.operations):
        return None
    ftype = ir.SymbolTable(parts[0].operation)["main"].type
    if len(ftype.inputs) != len(kept) or len(ftype.results) != len(exp.out_avals):
        return None
    with ctx, ir.Location.unknown(ctx):
        module = ir.Module.create()
        for name, attr in bld.attributes_of(parts[0].operation).items():
            if name != "sym_name":
                module.operation.attributes[name] = attr
        symbols = ir.SymbolTable(module.operation)
        names = [jax_mlir.merge_mlir_modules(module, n, m, dst_symtab=symbols)
                 for n, m in zip(("stablehlo_batch_chunk", "stablehlo_batch_remainder"), parts)]
        i32 = ir.IntegerType.get_signless(32)
        # per-chunk argument / result types: no batch dim for the lane loop
        if lane:
            in_types = [t if d is None else bld.insert_dim(t, size, d)
                        for t, d in zip(ftype.inputs, arg_dims)]
            out_types = [t if d is None else bld.insert_dim(t, size, d)
                         for t, d in zip(ftype.results, res_dims)]
        else:
            in_types = [t if d is None else _resized(t, d, size)
                        for t, d in zip(ftype.inputs, arg_dims)]
            out_types = [t if d is None else _resized(t, d, size)
                         for t, d in zip(ftype.results, res_dims)]
        with ir.InsertionPoint.at_block_begin(module.body):
            main = func_dialect.FuncOp("main", ir.FunctionType.get(in_types, out_types))
        entry = main.add_entry_block()
        with ir.InsertionPoint(entry):
            init = [bld.splat(i32, [], 0)] + [_initial(t) for t in out_types]
            loop = bld.create("stablehlo.while", [v.type for v in init], init, regions=2)
            cond = loop.regions[0].blocks.append(*[v.type for v in init])
            with ir.InsertionPoint(cond):
                bld.create("stablehlo.return", [], [
                    bld.compare(cond.arguments[0], bld.splat(i32, [], n_chunks), "LT")])
            body = loop.regions[1].blocks.append(*[v.type for v in init])
            with ir.InsertionPoint(body):
                i, accs = body.arguments[0], list(body.arguments[1:])
                zero = bld.splat(i32, [], 0)
                start = i if lane else bld.create(
                    "stablehlo.multiply", [i.type], [i, bld.splat(i32, [], chunk)]).result
                args = [v if d is None else _lanes_at(v, d, start, chunk, zero, lane)
                        for v, d in zip(entry.arguments, arg_dims)]
                outs = bld.create("func.call", list(ftype.results), args,
                                  {"callee": ir.FlatSymbolRefAttr.get(names[0])}).results
                new = [bld.create("stablehlo.add", [i.type], [i, bld.splat(i32, [], 1)]).result]
                new += [_written(acc, r, d, start, zero, lane)
                        for acc, r, d in zip(accs, outs, res_dims)]
                bld.create("stablehlo.return", [], new)
            results = list(loop.results)[1:]
            if rem:
                zero = bld.splat(i32, [], 0)
                start = bld.splat(i32, [], n_chunks * chunk)
                args = [v if d is None else _lanes_at(v, d, start, rem, zero, False)
                        for v, d in zip(entry.arguments, arg_dims)]
                rtype = ir.SymbolTable(module.operation)[names[1]].type
                outs = bld.create("func.call", list(rtype.results), args,
                                  {"callee": ir.FlatSymbolRefAttr.get(names[1])}).results
                results = [acc if d is None else _written(acc, r, d, start, zero, False)
                           for acc, r, d in zip(results, outs, res_dims)]
            func_dialect.ReturnOp(results)
    try:
        if not module.operation.verify():
            return None
    except ir.MLIRError:
        return None
    vjp = None
    if exp.has_vjp():
        def vjp(_batched):
            return _exported_loop(exp, dims, out_dims, size, chunk, what=what, summed=(),
                                  full=full).exported.vjp()
    exported = replace_exported(
        full.exported, vjp=vjp,
        mlir_module_serialized=module_io.module_to_portable_artifact(module))
    return BatchedExport(exported, module, full.result_batched, full.rewrite_seconds,
                         full.report, chunk, forwarded=full.forwarded)


def _resized(t: ir.Type, d: int, n: int) -> ir.Type:
    """``t`` with dimension ``d`` of size ``n``."""
    shape = bld.shape_of(t)
    shape[d] = n
    return bld.tensor_type(shape, bld.element_type(t), like=t)


def _lanes_at(v: ir.Value, d: int, start: ir.Value, n: int, zero: ir.Value,
              drop: bool) -> ir.Value:
    """Lanes ``start .. start + n`` of ``v``, batched at axis ``d`` (``drop``:
    one lane, without that axis)."""
    shape = bld.shape_of(v)
    sizes = list(shape)
    sizes[d] = n
    starts = [zero] * len(shape)
    starts[d] = start
    part = bld.create("stablehlo.dynamic_slice",
                      [bld.tensor_type(sizes, bld.element_type(v))],
                      [v] + starts, {"slice_sizes": bld.i64_array(sizes)}).result
    return bld.reshape(part, shape[:d] + shape[d + 1:]) if drop else part


def _written(acc: ir.Value, r: ir.Value, d: int | None, start: ir.Value, zero: ir.Value,
             lane: bool) -> ir.Value:
    """``acc`` with the lanes ``r`` written at ``start`` of axis ``d`` (``lane``:
    ``r`` is one lane, without that axis); an unbatched result (``d`` None)
    is the same in every chunk: ``r`` itself."""
    if d is None:
        return r
    if lane:
        shape = bld.shape_of(r)
        r = bld.reshape(r, shape[:d] + [1] + shape[d:])
    starts = [zero] * bld.rank_of(r)
    starts[d] = start
    return bld.create("stablehlo.dynamic_update_slice", [acc.type], [acc, r] + starts).result


def _initial(t: ir.Type) -> ir.Value:
    """The loop's initial accumulator of type ``t``: zeros (their values are
    never read: the chunks and the remainder write every lane).

    Never an argument, although its values would do and XLA:CPU compiles
    the zeros' broadcast kernel in 20-45 ms (docs/tuning.md): XLA:CPU
    (jaxlib 0.10.2) can run the in-place dynamic_update_slice into the
    argument's own buffer while later slices of that argument still read it
    -- a wrong value. Seen with an argument reshaped to ``t`` (a bitcast,
    at the top level) and with an argument of type ``t`` as it is where the
    batched call sits in a ``lax.scan`` body (the argument a loop carry);
    plain jax code shows the second too (tests/transforms/test_chunking.py).
    """
    return _zeros(t)


def _zeros(t: ir.Type) -> ir.Value:
    """A zero tensor of type ``t`` (converted from i32: any element type)."""
    zero = bld.splat(ir.IntegerType.get_signless(32), bld.shape_of(t), 0)
    if zero.type == t:
        return zero
    return bld.create("stablehlo.convert", [t], [zero]).result


def _plain_bytecode(exp: jax.export.Exported) -> bytes:
    """``exp``'s module as plain MLIR bytecode (inline.call's form): as it is
    when this process exported it (flat.export_in_process), else converted."""
    code = exp.mlir_module_serialized
    if module_io.is_plain_bytecode(code):
        return code
    return module_io.module_to_bytecode(module_io.parse_module(code))


def temp_bytes(exp: jax.export.Exported) -> int:
    """XLA's temporary-buffer bytes for running ``exp`` (memory_analysis)."""
    avals = [jax.ShapeDtypeStruct(a.shape, a.dtype) for a in exp.in_avals]
    args, kwargs = tree_util.tree_unflatten(exp.in_tree, avals)
    stats = jax.jit(exp.call).lower(*args, **kwargs).compile().memory_analysis()
    return int(stats.temp_size_in_bytes)


def auto_chunk(exp, dims, out_dims, size: int, memory_limit_bytes: int, *,
               what: str = "batch_lower") -> BatchedExport:
    """The chunked module with the largest chunk size (searched by halving from
    the whole batch) whose temporary memory fits ``memory_limit_bytes``."""
    if memory_limit_bytes is None:
        raise ValueError('chunk_size="auto" needs memory_limit_bytes=')
    lo, hi, best = 1, int(size), None
    while lo <= hi:  # temp bytes grow with the chunk size: binary search
        k = (lo + hi) // 2
        built = chunk_flat(exp, dims, out_dims, size, k, what=what)
        if temp_bytes(built.exported) <= memory_limit_bytes:
            best, lo = built, k + 1
        else:
            hi = k - 1
    if best is None:
        warnings.warn(f"{what}: even one lane at a time needs more than "
                      f"memory_limit_bytes={memory_limit_bytes} of temporary memory; "
                      "using chunk_size=1", stacklevel=3)
        best = chunk_flat(exp, dims, out_dims, size, 1, what=what)
    return best
