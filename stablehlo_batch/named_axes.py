"""vmap's ``axis_name``: collectives over the batch axis inside a batched function.

``export_named`` lowers the per-example function with the batch axis bound
as a mesh axis of an abstract mesh of B devices (``jax.shard_map`` over
``jax.sharding.AbstractMesh((B,), (name,))``: no devices needed), so that
``lax.psum(x, name)``, ``all_gather``, ``ppermute``, ``axis_index``, ... lower
to StableHLO collectives over those B devices. ``lanes_module`` then makes
the module an ordinary one-device module again: the ``sdy.manual_computation``
body becomes the body of @main, and every collective is marked as being
over the batch axis (the batching engine sends marked ops, and ops or calls
holding them, to their rules even when no operand is batched). The batching rewrite turns the marked ops into
batch-dimension ops (passes/rules/collectives.py): device k is lane k.

``spmd_to_batch`` offers the same on a module someone else wrote for N
devices with manual collectives (a shard_map program).
"""
from __future__ import annotations

import contextlib
import dataclasses
import re
import warnings
from typing import Callable

import jax
import numpy as np
from jax import tree_util
from jaxlib.mlir import ir, passmanager
from jaxlib.mlir.dialects import func as func_d

from stablehlo_batch.passes import builders as bld
from stablehlo_batch.passes.engine import batch_function_with_report, verify
from stablehlo_batch.passes.errors import BatchingError, UnsupportedOpError, format_location
from stablehlo_batch.passes.rules.collectives import (EMPTY_ATTR, LANE_ATTR, LANE_SHAPE_ATTR,
                                                      LANE_SLICE_ATTR, LANES_ATTR,
                                                      SYMBOLIC_ATTR)
from stablehlo_batch import jax_internals, module_io

# Ops whose meaning depends on the device, hence on the lane.
COLLECTIVES = frozenset({
    "stablehlo.all_reduce", "stablehlo.all_gather", "stablehlo.all_to_all",
    "stablehlo.reduce_scatter", "stablehlo.collective_permute",
    "stablehlo.collective_broadcast", "stablehlo.partition_id"})


def check_axis_name(axis_name) -> None:
    if axis_name is None:
        return
    if isinstance(axis_name, (tuple, list)):
        raise TypeError("batch_lower binds one axis name per batch axis; nest calls for "
                        f"several names, got axis_name={axis_name!r}")
    try:
        hash(axis_name)
    except TypeError:
        raise TypeError(f"axis_name must be hashable, got {axis_name!r}") from None


# Lane counts a function is lowered at when the batch size is symbolic: its
# collectives must not depend on the count (compared at both), and the module
# is the first one's.
PLACEHOLDER_LANES = (2, 3)


def export_named(fn: Callable, args, kwargs, axis_name, size, platform: str
                 ) -> jax.export.Exported:
    """``jax.export`` of ``jax.jit(fn)`` for one example, with ``axis_name``
    bound to a batch of ``size`` lanes; its module is ``lanes_module``'s.

    A symbolic ``size`` (not an int): the abstract mesh needs a number, so
    ``fn`` is lowered at two placeholder lane counts. Collectives over the
    whole axis (reductions, ``axis_index``, ``pbroadcast``) lower the same
    at both and their rewrite reads the batch size at run time. A dimension
    that is the number of lanes in both (``all_gather``'s, and what is
    computed from it) becomes ``?``, the batch size (``_lane_count_dims``);
    a function whose modules differ otherwise (a constant or shape attribute
    from the number of lanes, replica groups that split the axis, ...) is
    refused. Symbolic dimensions of ``args`` (a derivative's cotangent of
    such a result) are the placeholder count in each lowering."""
    if isinstance(size, int):
        # a batch of 0 lanes (a mesh cannot have 0 devices): lowered for 1,
        # marked; the rewrite reduces over the empty batch (collectives'
        # _lanes) and refuses what would need a lane
        if size == 0:  # pmean's divisor and psum(1) count the lanes: 0, not the 1 lowered for
            with jax_internals.traced_axis_size(axis_name):
                return _export_at(fn, args, kwargs, axis_name, 1, platform, empty=True)
        return _export_at(fn, args, kwargs, axis_name, size, platform)
    exps = []
    with jax_internals.traced_axis_size(axis_name):
        for n in PLACEHOLDER_LANES:
            try:
                # an argument with the number of lanes as a dimension (a
                # derivative's residual or cotangent of an all_gather): n there
                a, k = _at_lanes((args, kwargs), n)
                exps.append(_export_at(fn, a, k, axis_name, n, platform,
                                       keep_unused=True, symbolic=True))
            except NameError:
                raise
            except Exception as e:
                e.add_note(f"(while lowering for a placeholder of {n} lanes: axis_name="
                           f"{axis_name!r} with a symbolic axis_size takes collectives whose "
                           "shapes and constants need at most the number of lanes as a "
                           "dimension; docs/named-axes.md)")
                raise
    _refuse_lane_shaped(exps[0])
    # one context for both: types of two contexts never compare equal (the
    # shared one is replaced every so many parses: a false difference)
    ctx = module_io.shared_context(sum(len(e.mlir_module_serialized) for e in exps))
    mods = [module_io.parse_module(e.mlir_module_serialized, ctx) for e in exps]
    _lane_count_dims(mods, axis_name)
    texts = [_lane_free_text(m) for m in mods]
    if texts[0] != texts[1]:
        diff = next((a.strip() for a, b in zip(texts[0].splitlines(), texts[1].splitlines())
                     if a != b), "")
        raise ValueError(
            f"axis_name={axis_name!r} with a symbolic batch size: the function depends on the "
            "number of lanes in a way a symbolic size cannot express (a per-example shape "
            "that is not the number of lanes itself, or a constant from the axis size: a tiled "
            "all_gather of more than one element, psum_scatter or all_to_all of a dimension "
            "that is not the number of lanes, psum of a Python number, lax.axis_size, replica "
            f"groups that split the axis, ...); pass a static axis_size. First difference: "
            f"{diff[:200]}")
    return dataclasses.replace(
        exps[0], mlir_module_serialized=module_io.module_to_bytecode(mods[0]),
        in_avals=tuple(a.update(shape=b.shape) if hasattr(b, "shape") else a
                       for a, b in zip(exps[0].in_avals, tree_util.tree_leaves((args, kwargs)))),
        out_avals=_lane_count_avals(exps[0], mods[0], size))


def _at_lanes(tree, n: int):
    """``tree`` of arguments with each symbolic dimension (the number of
    lanes) ``n``."""
    def fix(x):
        shape = getattr(x, "shape", None)
        if shape is None or all(isinstance(d, int) for d in shape):
            return x
        return jax.ShapeDtypeStruct(tuple(d if isinstance(d, int) else n for d in shape),
                                    x.dtype, weak_type=getattr(x, "weak_type", False))
    return tree_util.tree_map(fix, tree)


def _lane_count_avals(exp, module: ir.Module, size):
    """``exp.out_avals`` with each dimension that is the number of lanes
    (``?`` in @main's result types) the symbolic batch size ``size``."""
    if isinstance(size, str):
        size = jax.export.symbolic_shape(size)[0]
    main = ir.SymbolTable(module.operation)["main"]
    results = ir.FunctionType(ir.TypeAttr(main.attributes["function_type"]).value).results
    n_tokens = len(results) - len(exp.out_avals)
    out = []
    for a, t in zip(exp.out_avals, results[n_tokens:]):
        r = bld.ranked(t)
        if r is not None and any(d == bld.DYN for d in r.shape):
            a = a.update(shape=tuple(size if d == bld.DYN else d for d in r.shape))
        out.append(a)
    return tuple(out)


# Collectives whose source-target pairs name lanes, and why a symbolic batch
# size cannot express them.
_LANE_NAMED = {
    "stablehlo.collective_permute": (
        "ppermute / pshuffle (collective_permute)",
        "its source-target pairs name lanes explicitly, which needs a concrete number of "
        "lanes")}

# Why a collective's per-example result shape that is not the number of
# lanes itself (a multiple of it, or a size divided by it) cannot be symbolic.
_SHAPE_REASONS = {
    "stablehlo.all_gather": (
        "all_gather", "its per-example result has a dimension of k times the number of "
        "lanes (a tiled all_gather of k > 1 elements along the axis); only a dimension that "
        "is the number of lanes itself can be the symbolic batch size"),
    "stablehlo.all_to_all": (
        "all_to_all", "its per-example result has chunks of size / number of lanes; only a "
        "split dimension that is the number of lanes itself (chunks of 1) can be symbolic"),
    "stablehlo.reduce_scatter": (
        "psum_scatter (reduce_scatter)", "its per-example result is its operand divided by "
        "the number of lanes; only a scatter dimension that is the number of lanes itself "
        "can be symbolic")}


def _refuse_lane_shaped(exp):
    """UnsupportedOpError naming the first collective of the placeholder
    lowering that needs the number of lanes as a number."""
    m = module_io.parse_module(exp.mlir_module_serialized)
    found = []

    def visit(op):
        if op.name in _LANE_NAMED and not found:
            found.append(op)
        return ir.WalkResult.ADVANCE
    m.operation.walk(visit)
    if found:
        op = found[0]
        what, why = _LANE_NAMED[op.name]
        raise UnsupportedOpError(
            op.name, "main", format_location(op.location),
            f"{what} over a symbolic batch size: {why} (pass a static axis_size)")


def _lane_count_dims(mods, axis_name):
    """The two placeholder lowerings (``PLACEHOLDER_LANES`` lanes), retyped in
    place: a dimension that is 2 in the first and 3 in the second is the
    number of lanes (an all_gather's, and what is computed from it) and
    becomes ``?`` in both; the rewrite reads it as the batch size (bld.DYN).
    A type that differs otherwise (k times the number of lanes, a size
    divided by it) is refused, naming the op."""
    p, q = PLACEHOLDER_LANES
    per = []
    for m in mods:
        ops = []
        m.operation.walk(lambda o: ops.append(o.operation) or ir.WalkResult.ADVANCE)
        per.append(ops)
    if len(per[0]) != len(per[1]) or any(a.name != b.name for a, b in zip(*per)):
        return  # the text comparison names the difference

    def values(op):
        out = list(op.results)
        for region in op.regions:
            for block in region.blocks:
                out.extend(block.arguments)
        return out

    changes = []
    for a, b in zip(*per):
        for va, vb in zip(values(a), values(b)):
            ta, tb = va.type, vb.type
            if ta == tb:
                continue
            ra, rb = bld.ranked(ta), bld.ranked(tb)
            if ra is None or rb is None or ra.rank != rb.rank or \
                    ra.element_type != rb.element_type or \
                    any((x, y) not in ((p, q),) for x, y in zip(ra.shape, rb.shape) if x != y):
                what, why = _SHAPE_REASONS.get(a.name, (a.name, (
                    "its per-example result shape depends on the number of lanes "
                    f"({ta} at {p} lanes, {tb} at {q}) other than as the number itself")))
                raise UnsupportedOpError(
                    a.name, "main", format_location(a.location),
                    f"{what} over a symbolic batch size (axis_name={axis_name!r}): {why} "
                    "(pass a static axis_size)")
            dims = [bld.DYN if x != y else x for x, y in zip(ra.shape, rb.shape)]
            changes.append((va, vb, dims, ra.element_type, ra.encoding, rb.encoding))
    if not changes:
        return
    for va, vb, dims, elem, ea, eb in changes:
        for v, enc in ((va, ea), (vb, eb)):
            with v.context, ir.Location.unknown(v.context):
                v.set_type(ir.RankedTensorType.get(dims, elem, enc))
    for m, n in zip(mods, PLACEHOLDER_LANES):
        with m.context, ir.Location.unknown(m.context):
            _dynamic_shape_ops(m, n)
            _retype_functions(m)


# Ops whose result must be static, and their dynamic forms (a shape operand).
_DYNAMIC_FORM = {"stablehlo.broadcast_in_dim": "stablehlo.dynamic_broadcast_in_dim",
                 "stablehlo.reshape": "stablehlo.dynamic_reshape",
                 "stablehlo.iota": "stablehlo.dynamic_iota"}


def _dynamic_shape_ops(m: ir.Module, lanes: int):
    """Each broadcast_in_dim / reshape / iota whose result now has the
    number of lanes as a dimension becomes its dynamic form, the shape
    operand reading that number from a marked ``all_reduce`` of 1 (the
    rewrite makes it the batch size; collectives.LANE_SHAPE_ATTR marks the
    op for its rule)."""
    ops = []

    def visit(op):
        if op.name in _DYNAMIC_FORM and any(
                d == bld.DYN for d in bld.shape_of(op.results[0].type)):
            ops.append(op)
        return ir.WalkResult.ADVANCE
    m.operation.walk(visit)
    i32 = ir.IntegerType.get_signless(32)

    def shape_tensor(shape, n):
        parts = [n if d == bld.DYN else bld.constant(ir.DenseElementsAttr.get(
            np.asarray([d], np.int32), type=ir.RankedTensorType.get([1], i32)))
            for d in shape]
        return parts[0] if len(parts) == 1 else bld.create(
            "stablehlo.concatenate", [ir.RankedTensorType.get([len(shape)], i32)], parts,
            {"dimension": bld.i64_attr(0)}).result

    slices = []
    m.operation.walk(lambda op: (slices.append(op) if op.name == "stablehlo.slice" and any(
        d == bld.DYN for d in bld.shape_of(op.results[0].type)) else None)
        or ir.WalkResult.ADVANCE)
    for op in slices:  # a whole dimension of the number of lanes, sliced
        start = list(ir.DenseI64ArrayAttr(op.attributes["start_indices"]))
        limit = list(ir.DenseI64ArrayAttr(op.attributes["limit_indices"]))
        strides = list(ir.DenseI64ArrayAttr(op.attributes["strides"]))
        shape = bld.shape_of(op.results[0].type)
        whole = [d for d, n in enumerate(shape) if n == bld.DYN]
        if any(start[d] != 0 or strides[d] != 1 or limit[d] != lanes for d in whole):
            continue  # another slice of the lanes: the comparison refuses it
        with ir.InsertionPoint(op), op.location:
            n = lane_count(lanes)
            lim = [bld.DYN if d in whole else v for d, v in enumerate(limit)]
            attrs = {LANE_SHAPE_ATTR: ir.UnitAttr.get(),
                     LANE_SLICE_ATTR: bld.i64_array(start + [-1 if v == bld.DYN else v
                                                             for v in lim] + strides)}
            new = bld.create("stablehlo.real_dynamic_slice", [op.results[0].type],
                             [op.operands[0], shape_tensor(start, n), shape_tensor(lim, n),
                              shape_tensor(strides, n)], attrs)
        op.results[0].replace_all_uses_with(new.results[0])
        op.erase()
    for op in ops:
        with ir.InsertionPoint(op), op.location:
            shape = bld.shape_of(op.results[0].type)
            n = lane_count(lanes)
            parts = []
            for d in shape:
                parts.append(n if d == bld.DYN else bld.constant(ir.DenseElementsAttr.get(
                    np.asarray([d], np.int32), type=ir.RankedTensorType.get([1], i32))))
            st = parts[0] if len(parts) == 1 else bld.create(
                "stablehlo.concatenate", [ir.RankedTensorType.get([len(shape)], i32)], parts,
                {"dimension": bld.i64_attr(0)}).result
            attrs = {k: v for k, v in bld.attributes_of(op).items()}
            attrs[LANE_SHAPE_ATTR] = ir.UnitAttr.get()
            new = bld.create(_DYNAMIC_FORM[op.name], [op.results[0].type],
                             list(op.operands) + [st], attrs)
        op.results[0].replace_all_uses_with(new.results[0])
        op.erase()


def lane_count(lanes: int) -> ir.Value:
    """A tensor<1xi32> holding the number of lanes: a marked ``all_reduce``
    (psum) of 1 over every one of the ``lanes`` placeholder lanes."""
    i32 = ir.IntegerType.get_signless(32)
    scalar = ir.RankedTensorType.get([], i32)
    one = bld.constant(ir.DenseElementsAttr.get(np.asarray(1, np.int32), type=scalar))
    groups = ir.DenseElementsAttr.get(np.arange(lanes, dtype=np.int64).reshape(1, lanes))
    red = bld.create("stablehlo.all_reduce", [scalar], [one],
                     {"replica_groups": groups, LANE_ATTR: ir.UnitAttr.get()}, regions=1)
    block = red.regions[0].blocks.append(scalar, scalar)
    with ir.InsertionPoint(block):
        total = bld.create("stablehlo.add", [scalar], list(block.arguments)).result
        bld.create("stablehlo.return", [], [total])
    return bld.reshape(red.results[0], [1])


def _retype_functions(m: ir.Module):
    """Each func.func's type from its entry block and return, after retyping."""
    for op in m.body.operations:
        op = op.operation
        if op.name != "func.func" or not op.regions[0].blocks:
            continue
        block = op.regions[0].blocks[0]
        ret = list(block.operations)[-1].operation
        op.attributes["function_type"] = ir.TypeAttr.get(ir.FunctionType.get(
            [a.type for a in block.arguments], [v.type for v in ret.operands]))


def _lane_free_text(module: ir.Module) -> str:
    """The module without what names the lane count (the replica groups of
    the placeholder lowering and the lanes attribute)."""
    m = module_io.parse_module(module)
    with m.context:
        def strip(op):
            for a in ("replica_groups", "source_target_pairs", "channel_handle",
                      "split_count"):
                if a in op.attributes:
                    del op.attributes[a]
            return ir.WalkResult.ADVANCE
        m.operation.walk(strip)
        for a in (LANES_ATTR, SYMBOLIC_ATTR):
            if a in m.operation.attributes:
                del m.operation.attributes[a]
    return module_io.module_to_text(m)


def named_wrapper(fn: Callable, in_tree, axis_name, size: int) -> Callable:
    """``fn(*args, **kwargs)`` (arguments of tree ``in_tree``) run for one
    example inside ``jax.shard_map`` over an abstract mesh axis ``axis_name``
    of ``size`` devices, every value whole on every device."""
    mesh = jax.sharding.AbstractMesh((size,), (axis_name,))
    P = jax.sharding.PartitionSpec

    def per_device(*leaves):
        a, k = tree_util.tree_unflatten(in_tree, leaves)
        return fn(*a, **k)

    # Every value is whole on every device (P()); the manual body then sees
    # exactly the per-example function. check_vma=False: jax.vmap tracks no
    # varying-ness either, and psum of a replicated value is B times it there.
    sm = jax.shard_map(per_device, mesh=mesh, in_specs=P(), out_specs=P(),
                       check_vma=False)

    def wrapper(*a, **k):
        return sm(*tree_util.tree_leaves((a, k)))
    return wrapper


@contextlib.contextmanager
def named_lowering(platform: str):
    """The context ``named_wrapper``'s function is lowered in."""
    # Inside another batch_lower's trace the context mesh is that one's: this
    # function is lowered on its own (it names only its own axis).
    outer = jax.sharding.get_abstract_mesh()
    with jax_internals.collective_broadcast_lowering(platform), \
            jax.sharding.use_abstract_mesh(outer if outer.empty else
                                           jax.sharding.AbstractMesh((), ())):
        yield


def _export_at(fn, args, kwargs, axis_name, size: int, platform: str, keep_unused=False,
               symbolic=False, empty=False) -> jax.export.Exported:
    wrapper = named_wrapper(fn, tree_util.tree_structure((args, kwargs)), axis_name, size)
    with named_lowering(platform), jax_internals.tracing_to_batch():
        exp = jax.export.export(jax.jit(wrapper, keep_unused=keep_unused),
                                platforms=(platform,))(*args, **kwargs)
    module = module_io.parse_module(exp.mlir_module_serialized)
    lanes_module(module, size, symbolic=symbolic)
    if empty:
        mark_empty_lanes(module)
    return dataclasses.replace(
        exp, mlir_module_serialized=module_io.module_to_portable_artifact(module),
        nr_devices=1, _get_vjp=None)


def mark_empty_lanes(module: ir.Module) -> None:
    """Marks a module lowered for one lane as batched at size 0 (the rewrite
    reduces over the empty batch and refuses what needs a lane)."""
    with module.context:
        module.operation.attributes[EMPTY_ATTR] = ir.UnitAttr.get()


def lanes_module(module: ir.Module, size: int, func: str = "main", *,
                 symbolic: bool = False) -> ir.Module:
    """Rewrites in place a module whose @``func`` runs one ``sdy.manual_computation``
    over a mesh axis of ``size`` devices (or is plain SPMD code with
    collectives) into a one-device module whose collectives are marked as
    over the batch axis. Returns ``module``."""
    with module.context, ir.Location.unknown(module.context):
        _inline_manual_computations(module, func)
        _strip_sharding_ops(module)  # e.g. typed PRNG keys' constraints on @empty_mesh
        _drop_sdy(module)
        marked = [0]

        def mark(op):
            if op.name in COLLECTIVES:
                op.attributes[LANE_ATTR] = ir.UnitAttr.get()
                marked[0] += 1
            return ir.WalkResult.ADVANCE

        module.operation.walk(mark)
        _drop_lane_remainders(module, size)
        attrs = module.operation.attributes
        attrs[LANES_ATTR] = ir.IntegerAttr.get(ir.IntegerType.get_signless(64), size)
        if symbolic:  # lowered at a placeholder count: the batch size is read at run time
            attrs[SYMBOLIC_ATTR] = ir.UnitAttr.get()
        for name in ("mhlo.num_partitions", "mhlo.num_replicas"):
            if name in attrs:
                attrs[name] = ir.IntegerAttr.get(ir.IntegerType.get_signless(32), 1)
    return module


def _drop_lane_remainders(module: ir.Module, size: int):
    """jax lowers ``axis_index`` as ``partition_id / 1 % size``: a lane's index
    is below the batch size anyway, so the remainder (by a count that is only
    a placeholder when the batch size is symbolic) is dropped."""
    found = []

    def visit(op):
        if op.name == "stablehlo.remainder" and _lane_id(op.operands[0]) and \
                _constant_value(op.operands[1]) == size:
            found.append(op)
        return ir.WalkResult.ADVANCE
    module.operation.walk(visit)
    for op in found:
        op.results[0].replace_all_uses_with(op.operands[0])
        divisor = op.operands[1].owner
        op.erase()
        if not list(divisor.results[0].uses):
            divisor.erase()


def _lane_id(v) -> bool:
    """``v`` is partition_id, or partition_id divided by 1."""
    owner = v.owner
    if not isinstance(owner, (ir.Operation, ir.OpView)):
        return False
    owner = owner.operation
    if owner.name == "stablehlo.partition_id":
        return True
    return (owner.name == "stablehlo.divide" and _constant_value(owner.operands[1]) == 1
            and _lane_id(owner.operands[0]))


def _constant_value(v):
    owner = v.owner
    if not isinstance(owner, (ir.Operation, ir.OpView)) or \
            owner.operation.name != "stablehlo.constant":
        return None
    attr = owner.operation.attributes["value"]
    try:
        a = ir.DenseIntElementsAttr(attr)
    except (ValueError, TypeError):
        return None
    return int(a[0]) if a.is_splat or len(a) == 1 else None


def _inline_manual_computations(module: ir.Module, func: str):
    for top in module.body.operations:
        if top.operation.name != "func.func":
            continue
        ops = []
        top.operation.walk(lambda o: (ops.append(o) if o.name == "sdy.manual_computation"
                                      else None) or ir.WalkResult.ADVANCE)
        for mc in ops:
            body = mc.regions[0].blocks[0]
            for arg, operand in zip(body.arguments, mc.operands):
                arg.replace_all_uses_with(operand)
            inner = [o.operation for o in body.operations]
            for o in inner[:-1]:
                o.move_before(mc)
            for r, v in zip(mc.results, inner[-1].operands):
                r.replace_all_uses_with(v)
            mc.erase()


def _drop_sdy(module: ir.Module):
    """Removes the mesh declarations and sharding attributes of the SPMD module."""
    for op in list(module.body.operations):
        if op.operation.name == "sdy.mesh":
            op.operation.erase()

    def unshard(op):  # e.g. a host callback's custom_call, sharded on the mesh
        if "sdy.sharding" in op.attributes:
            del op.attributes["sdy.sharding"]
        return ir.WalkResult.ADVANCE
    module.operation.walk(unshard)
    for op in module.body.operations:
        op = op.operation
        if op.name != "func.func":
            continue
        for key in ("arg_attrs", "res_attrs"):
            if key not in op.attributes:
                continue
            cleaned = []
            for d in ir.ArrayAttr(op.attributes[key]):
                d = ir.DictAttr(d)
                keep = {d[i].name: d[i].attr for i in range(len(d))
                        if not d[i].name.startswith(("sdy.", "mhlo.sharding"))}
                cleaned.append(ir.DictAttr.get(keep))
            op.attributes[key] = ir.ArrayAttr.get(cleaned)


def lanes_exported(exp: jax.export.Exported, axis_name, size, what: str
                   ) -> jax.export.Exported:
    """``batch_exported`` / ``vmappable`` with ``axis_name``: ``exp`` is a
    per-example function lowered inside ``jax.shard_map`` over a mesh axis
    ``axis_name`` with every value replicated (``in_specs=P()``,
    ``out_specs=P()``), as ``export_named`` lowers one; device k becomes lane
    k of a batch of ``size`` (the axis' size). Returns a one-device
    ``Exported`` whose collectives are marked for the rewrite."""
    check_axis_name(axis_name)
    m = module_io.parse_module(exp.mlir_module_serialized)
    with m.context, ir.Location.unknown(m.context):
        mcs = []
        m.operation.walk(lambda o: (mcs.append(o) if o.name == "sdy.manual_computation"
                                    else None) or ir.WalkResult.ADVANCE)
        if not mcs:
            return exp  # nothing names the axis: the module batches as it is
        meshes = _meshes(m)
        n = None
        for mc in mcs:
            n = _lanes_of(mc, meshes, str(axis_name))
            for key in ("in_shardings", "out_shardings"):
                for i, (_, dims) in enumerate(_shardings(mc.attributes[key])):
                    if _split_dim(dims, str(axis_name), f"{key[:-10]} {i}") is not None:
                        raise ValueError(
                            f"{what}(axis_name={axis_name!r}): the module splits a value over "
                            f"{axis_name!r}; only replicated values (P()) are one example per "
                            "device (spmd_to_batch takes split ones)")
        if not isinstance(size, int):
            raise ValueError(
                f"{what}(axis_name={axis_name!r}) needs a static axis_size: the module was "
                f"lowered for {n} devices of {axis_name!r}")
        if n != size:
            raise ValueError(f"{what}(axis_name={axis_name!r}): the module was lowered for {n} "
                             f"devices of {axis_name!r}, the batch has {size}")
        lanes_module(m, n)
        _strip_sharding_ops(m)
    return dataclasses.replace(
        exp, mlir_module_serialized=module_io.module_to_portable_artifact(m), nr_devices=1,
        in_shardings_hlo=(None,) * len(exp.in_avals),
        out_shardings_hlo=(None,) * len(exp.out_avals), _get_vjp=None)


def resolve_names(axis_name, spmd_axis_name, mesh, stacklevel: int = 3):
    """``batch_lower``'s two names: (the name collectives use, the mesh axis
    that ``mesh=`` splits the batch over).

    Until this release ``axis_name`` meant the mesh axis (vmap's
    ``spmd_axis_name``). With ``mesh=`` and no ``spmd_axis_name``, an
    ``axis_name`` that is an axis of the mesh is still read that way, with a
    DeprecationWarning, and also bound for collectives: ``jax.vmap`` with
    ``axis_name == spmd_axis_name`` means the same, so either reading of the
    call computes what its author meant."""
    check_axis_name(axis_name)
    if mesh is None:
        if spmd_axis_name is not None:
            raise ValueError("spmd_axis_name needs mesh= (the mesh its axis belongs to)")
        return axis_name, None
    if spmd_axis_name is None:
        names = getattr(mesh, "axis_names", ())
        if axis_name is not None and axis_name in names:
            warnings.warn(
                "batch_lower(mesh=..., axis_name=...) names the mesh axis the batch is split "
                "over: pass spmd_axis_name= for that (as jax.vmap does); axis_name will only "
                "name the batch axis for collectives in the next release",
                DeprecationWarning, stacklevel=stacklevel)
            return axis_name, axis_name
        return axis_name, "batch"
    return axis_name, spmd_axis_name


# ---- SPMD programs as one batched module ----------------------------------------

def spmd_to_batch(module: module_io.ModuleSource, axis_name: str, *,
                  num_devices: int | None = None, func: str = "main",
                  debug_info: bool = False) -> str:
    """A module written for N devices with manual collectives over the mesh
    axis ``axis_name`` (a ``jax.shard_map`` program) as a one-device module
    computing the same global result: the axis becomes a batch dimension of
    size N and each collective batch-dimension ops. Returns the module text.

    Each ``sdy.manual_computation`` in @``func`` over ``axis_name`` becomes a
    call of its body batched over the N lanes: an operand split along
    dimension d over the axis is reshaped so that the lanes are dimension d;
    a result split along d is reshaped back; a replicated one is lane 0's.
    A module without ``manual_computation`` is taken as per-device code
    (plain SPMD: collectives with replica groups over ``num_devices``
    devices, by default ``mhlo.num_partitions``): every argument and result
    then gets a leading dimension of N, one entry per device."""
    m = module_io.parse_module(module)
    with m.context, ir.Location.unknown(m.context):
        table = ir.SymbolTable(m.operation)
        try:
            entry = table[func].operation
        except KeyError:
            raise BatchingError(f"function @{func} not found in the module") from None
        mcs = []
        entry.walk(lambda o: (mcs.append(o) if o.name == "sdy.manual_computation"
                              else None) or ir.WalkResult.ADVANCE)
        meshes = _meshes(m)
        if not mcs:
            n = num_devices or _num_partitions(m)
            if not n:
                raise BatchingError("the module has no sdy.manual_computation and no "
                                    "mhlo.num_partitions: pass num_devices")
            _mark_all(m, n)
            block = entry.regions[0].blocks[0]
            n_res = len(list(block.operations)[-1].operands)
            batch_function_with_report(m, func, [0] * len(block.arguments), [0] * n_res, n)
        else:
            n = None
            for i, mc in enumerate(mcs):
                n_mc = _lanes_of(mc, meshes, axis_name)
                if n is not None and n_mc != n:
                    raise BatchingError(f"manual computations over {axis_name!r} with "
                                        f"{n} and {n_mc} devices")
                n = n_mc
            _mark_all(m, n)
            for i, mc in enumerate(mcs):
                _batch_manual_computation(m, mc, axis_name, n, f"{func}_lanes_{i}",
                                          batch_function_with_report)
            passmanager.PassManager.parse("builtin.module(symbol-dce)").run(m.operation)
        _strip_sharding_ops(m)
        _drop_sdy(m)
        for name in ("mhlo.num_partitions", "mhlo.num_replicas"):
            if name in m.operation.attributes:
                m.operation.attributes[name] = ir.IntegerAttr.get(
                    ir.IntegerType.get_signless(32), 1)
        del m.operation.attributes[LANES_ATTR]
    verify(m, "spmd_to_batch")
    return module_io.module_to_text(m, debug_info=debug_info)


def _mark_all(m: ir.Module, n: int):
    def mark(op):
        if op.name in COLLECTIVES:
            op.attributes[LANE_ATTR] = ir.UnitAttr.get()
        return ir.WalkResult.ADVANCE
    m.operation.walk(mark)
    m.operation.attributes[LANES_ATTR] = ir.IntegerAttr.get(
        ir.IntegerType.get_signless(64), n)


def _num_partitions(m: ir.Module) -> int | None:
    attrs = m.operation.attributes
    for name in ("mhlo.num_partitions", "mhlo.num_replicas"):
        if name in attrs and ir.IntegerAttr(attrs[name]).value > 1:
            return ir.IntegerAttr(attrs[name]).value
    return None


def _meshes(m: ir.Module) -> dict[str, list[tuple[str, int]]]:
    """sdy.mesh name -> [(axis, size), ...]."""
    out = {}
    for op in m.body.operations:
        op = op.operation
        if op.name == "sdy.mesh":
            name = ir.StringAttr(op.attributes["sym_name"]).value
            text = str(op.attributes["mesh"])
            out[name] = [(a, int(s)) for a, s in re.findall(r'"([^"]+)"=(\d+)', text)]
    return out


def _shardings(attr) -> list[tuple[str, list[list[str]]]]:
    """A sdy.sharding_per_value as [(mesh name, [[axes of dim 0], ...]), ...]."""
    out = []
    for mesh, dims in re.findall(r'<@([\w.$-]+)\s*,\s*\[((?:\{[^}]*\}(?:\s*,\s*)?)*)\]',
                                 str(attr)):
        out.append((mesh, [re.findall(r'"([^"]+)"', d)
                           for d in re.findall(r'\{([^}]*)\}', dims)]))
    return out


def _lanes_of(mc, meshes, axis_name) -> int:
    manual = re.findall(r'"([^"]+)"', str(mc.attributes["manual_axes"]))
    if axis_name not in manual:
        raise BatchingError(f"the manual computation is over {manual}, not over "
                            f"{axis_name!r}")
    mesh_names = {mesh for mesh, _ in _shardings(mc.attributes["in_shardings"]) +
                  _shardings(mc.attributes["out_shardings"])}
    sizes = {}
    for name in mesh_names:
        sizes.update(dict(meshes.get(name, [])))
    if axis_name not in sizes:
        raise BatchingError(f"{axis_name!r} is not an axis of the module's mesh "
                            f"({sorted(sizes)})")
    others = [a for a, s in sizes.items() if a != axis_name and s > 1]
    if others:
        raise BatchingError(f"the mesh has axes {others} besides {axis_name!r}: only a "
                            "one-axis mesh can become a batch dimension")
    return sizes[axis_name]


def _split_dim(dims: list[list[str]], axis_name: str, what: str) -> int | None:
    found = [d for d, axes in enumerate(dims) if axis_name in axes]
    if any(len(axes) > 1 for axes in dims if axis_name in axes):
        raise BatchingError(f"{what} is split over {axis_name!r} together with other axes")
    return found[0] if found else None


def _batch_manual_computation(m, mc, axis_name, n, name, batch_fn):
    in_dims = [_split_dim(d, axis_name, f"operand {i}")
               for i, (_, d) in enumerate(_shardings(mc.attributes["in_shardings"]))]
    out_dims = [_split_dim(d, axis_name, f"result {j}")
                for j, (_, d) in enumerate(_shardings(mc.attributes["out_shardings"]))]
    body = mc.regions[0].blocks[0]
    term = list(body.operations)[-1].operation
    fn_type = ir.FunctionType.get([a.type for a in body.arguments],
                                  [v.type for v in term.operands])
    with ir.InsertionPoint(m.body):
        f = func_d.FuncOp(name, fn_type)
    block = f.add_entry_block()
    mapping = dict(zip(body.arguments, block.arguments))
    with ir.InsertionPoint(block):
        outs = bld.clone_block_ops(body, mapping)
        func_d.ReturnOp(outs)
    batch_fn(m, name, in_dims, [0 if d is None else d for d in out_dims], n)
    with ir.InsertionPoint(mc), mc.location:
        args = []
        for v, d in zip(mc.operands, in_dims):
            if d is not None:
                s = bld.shape_of(v)
                v = bld.reshape(v, s[:d] + [n, s[d] // n] + s[d + 1:])
            args.append(v)
        ftype = ir.FunctionType(ir.TypeAttr(f.operation.attributes["function_type"]).value)
        call = func_d.CallOp(list(ftype.results), ir.FlatSymbolRefAttr.get(name), args)
        for r, v, d in zip(mc.results, call.results, out_dims):
            if d is None:  # replicated: every lane holds it, lane 0's is the result
                s = bld.shape_of(v)
                v = bld.reshape(bld.slice_(v, [0] * len(s), [1] + s[1:], [1] * len(s)), s[1:])
            else:
                v = bld.reshape(v, bld.shape_of(r))
            r.replace_all_uses_with(v)
    mc.erase()
    f.operation.attributes["sym_visibility"] = ir.StringAttr.get("private")


def _strip_sharding_ops(m: ir.Module):
    """Sharding constraints mean nothing on one device: their operand replaces them."""
    ops = []
    m.operation.walk(lambda o: (ops.append(o) if o.name in (
        "sdy.sharding_constraint", "sdy.reshard") else None) or ir.WalkResult.ADVANCE)
    for op in ops:
        op.results[0].replace_all_uses_with(op.operands[0])
        op.erase()


class UsesEnclosingAxis(Exception):
    """Raised while planning a ``batch_lower`` call whose function has
    collectives over an enclosing batch's name that the call itself does not
    bind: ``vmap_inside`` is then the route."""


def check_enclosing_axes(closed_jaxpr, own_name) -> None:
    """Raises ``UsesEnclosingAxis`` when the traced per-example function uses
    an axis name bound only by an enclosing transformation."""
    used = jax_internals.named_axes_used(closed_jaxpr)
    if own_name is not None:
        used.discard(own_name)
    if used:
        raise UsesEnclosingAxis(sorted(map(str, used)))


def bound_outside(err: NameError) -> bool:
    """True when ``err`` is jax's unbound-axis error for a name that an
    enclosing transformation (an outer ``jax.vmap`` or ``batch_lower``) binds."""
    m = re.search(r"unbound axis name: (\S+?)\.?(\s|$)", str(err))
    if m is None:
        return False
    return m.group(1) in jax_internals.enclosing_axis_names()


def vmap_inside(bf, args, kwargs):
    """An inner ``batch_lower`` whose collectives name an outer batch axis
    has no module of its own to batch (its collectives span the outer lanes):
    it is traced by ``jax.vmap`` into the enclosing function instead, whose
    own batching (our rewrite, for an outer ``batch_lower``) then sees it."""
    return jax.vmap(bf.fn, bf.in_axes, bf.out_axes, axis_name=bf.axis_name,
                    axis_size=bf.axis_size)(*args, **kwargs)
