"""The flat export core: batch a ``jax.export.Exported`` with one axis entry
per flat argument and result, and give the result a VJP.

``batch_flat`` parses the exported module, batches it through the rewrite
(stablehlo_batch/rewrite.py) and wraps it back into an ``Exported`` whose
avals carry the batch axis; its VJP (``batched_vjp``) is the per-example VJP
module batched the same way. Everything that builds a batched module from an
``Exported`` goes through here: ``batch_lower``, ``batch_exported``,
``vmappable``, chunking, sharding, the primitive's derivatives and the CLI.
"""
from __future__ import annotations

import dataclasses
import functools
import re
import time
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jaxlib.mlir import ir

from stablehlo_batch import axes as ax
from stablehlo_batch import jax_internals, module_io
from stablehlo_batch.passes.errors import UnsupportedOpError
from stablehlo_batch.passes.report import BatchingReport
from stablehlo_batch.passes.rules.collectives import SYMBOLIC_ATTR
from stablehlo_batch.passes.sum_lanes import sum_results_over_lanes
from stablehlo_batch.rewrite import batch_function


@dataclasses.dataclass
class BatchedExport:
    """The batched function as an ``Exported`` plus what building it learnt."""
    exported: jax.export.Exported
    module: ir.Module
    result_batched: list[bool]
    rewrite_seconds: float
    report: BatchingReport | None = None
    chunk_size: int | None = None  # lanes per chunk when computed in chunks
    call: Any = None  # how to call it when jax.jit(exported.call) is not enough
    shardings: Any = None  # (in_shardings, out_shardings) for jax.jit, with mesh=
    # (flat result, flat argument) pairs that the function returns unchanged,
    # its batch where the argument has it (module_io.forwarded_arguments): read
    # on the per-example module, so chunked, looped, sharded and symbolic
    # builds (whose modules return loop or call results) keep them too
    forwarded: tuple = ()


_UNSTABLE_TARGETS = "custom calls whose targets have no compatibility guarantees"


def export_in_process(fn, platforms, disabled_checks=(), keep_unused=False):
    """``jax.export.export(jax.jit(fn), platforms=...)`` for use in this process.

    jax.export refuses custom calls without a serialization guarantee (e.g.
    ``lapack_sgeqp3_ffi`` of a pivoted QR); a module that is batched and run
    here needs no such guarantee, so the export is retried with exactly the
    refused targets allowed. The ``Exported`` lists them in
    ``disabled_safety_checks``, which is what ``batch_exported`` callers see.
    ``keep_unused`` keeps arguments the function ignores (a symbolic batch
    size is read from a batched argument of the module).

    The module is stored as plain MLIR bytecode, not a portable artifact
    (jax_internals.plain_bytecode_exports): the result is for this process's
    rewrite only (module_io.parse_module reads it), never for ``call`` or
    ``serialize``; what we hand out is the batched Exported (batch_flat),
    which is portable. The trace is ``jax_internals.tracing_to_batch()``:
    a ``batch_lower(..., mesh=)`` inside ``fn`` leaves its mesh out."""
    platforms = (platforms,) if isinstance(platforms, str) else tuple(platforms)
    checks = list(disabled_checks)

    def export(*args, **kwargs):
        with jax_internals.plain_bytecode_exports(context=module_io.shared_context), \
                jax_internals.tracing_to_batch():
            try:
                return _export(*args, **kwargs)
            except Exception as e:
                _raise_if_stale_tracer(fn, args, kwargs, e)
                raise

    def _export(*args, **kwargs):
        try:
            return jax.export.export(jax.jit(fn, keep_unused=keep_unused), platforms=platforms,
                                     disabled_checks=checks)(*args, **kwargs)
        except ValueError as e:
            if _UNSTABLE_TARGETS not in str(e):
                raise
            targets = sorted(set(re.findall(r"stablehlo\.custom_call @([\w.$-]+)", str(e)) +
                                 re.findall(r'call_target_name = "([^"]+)"', str(e))))
            if not targets:
                raise
            more = [jax.export.DisabledSafetyCheck.custom_call(t) for t in targets]
            return jax.export.export(jax.jit(fn, keep_unused=keep_unused), platforms=platforms,
                                     disabled_checks=checks + more)(*args, **kwargs)
    return export


def _raise_if_stale_tracer(fn, args, kwargs, error: Exception) -> None:
    """After a failed export: where ``fn``'s trace holds a tracer of a trace
    that has ended as a constant (a ``custom_jvp`` / ``custom_vjp`` rule that
    closes over an argument of the batched function, or takes it in
    ``nondiff_argnums``, differentiated after that function was traced: a
    derivative of our call), raise UnsupportedOpError saying so instead of
    jax's error from deep in the export (``jax.jit(fn)`` under ``jax.jvp``
    fails the same way: "No constant handler for ... DynamicJaxprTracer")."""
    try:
        consts = jax.make_jaxpr(fn)(*args, **kwargs).consts
    except Exception:
        return
    if any(isinstance(c, jax.core.Tracer) for c in consts):
        raise UnsupportedOpError(
            "custom_jvp / custom_vjp", None, "unknown",
            reason="a custom derivative rule uses a traced value of the batched "
                   "function's own trace (a custom_jvp / custom_vjp rule that closes over "
                   "one of its arguments or takes it in nondiff_argnums), which its "
                   "derivative cannot see (as under jax.jit(fn)); pass the value as a "
                   "regular argument of the custom_jvp function") from error


def unstable_targets(exp: jax.export.Exported) -> list[str]:
    """Custom call targets ``exp`` was allowed to use without jax's
    serialization guarantee (see ``export_in_process``)."""
    out = []
    for c in exp.disabled_safety_checks:
        t = c.is_custom_call()
        if t is not None:
            out.append(t)
    return out


def symbolic_size(size):
    """``size`` as jax.export's symbolic dimension when it is a name ("b")."""
    if isinstance(size, str):
        return jax.export.symbolic_shape(size)[0]
    return size


def is_symbolic(size) -> bool:
    return not isinstance(size, (int, np.integer))


def load(exp) -> jax.export.Exported:
    """An ``Exported`` from itself or its serialized bytes."""
    if isinstance(exp, jax.export.Exported):
        return exp
    if isinstance(exp, (bytes, bytearray, memoryview)):
        return jax.export.deserialize(bytearray(exp))
    raise TypeError(f"expected a jax.export.Exported or its serialized bytes, got "
                    f"{type(exp).__name__}")


def replace_exported(exp: jax.export.Exported, *, vjp=None, **fields) -> jax.export.Exported:
    """``exp`` with ``fields`` replaced (a new module, new avals, ...) and
    ``vjp`` as its VJP (a function of the new ``Exported``; None: none).
    jax.export has no public way to set the VJP: its private field is set
    here only."""
    return dataclasses.replace(exp, _get_vjp=vjp, **fields)


def without_unused(exp: jax.export.Exported) -> jax.export.Exported:
    """``exp`` taking only the arguments its module uses (those of
    ``module_kept_var_idx``; jax.export's ``keep_unused=False`` dropped the
    others from the module), as flat positional arguments; ``exp`` itself
    where it uses them all. For a caller that passes those arguments alone
    (primitive.BatchedFn's ``kept``), so that a jax.jit around the call drops
    the others, as jax.jit does for an argument its jaxpr does not use. No
    VJP: the caller differentiates its own way."""
    kept = tuple(exp.module_kept_var_idx)
    if len(kept) == len(exp.in_avals):
        return exp

    def pick(xs):
        return tuple(xs[i] for i in kept)
    return replace_exported(
        exp, in_tree=jax.tree_util.tree_structure((tuple(range(len(kept))), {})),
        in_avals=pick(exp.in_avals), module_kept_var_idx=tuple(range(len(kept))),
        **jax_internals.exported_argument_shardings(exp, kept))


def _with_batch(a, d, size):
    return a.update(shape=ax.insert_batch(a.shape, d, size))


def batch_flat(exp: jax.export.Exported, dims: Sequence[int | None],
               out_dims: Sequence[int | None], size, *, what: str = "batch_lower",
               rewrite_hook=None, summed: Sequence[int] = ()) -> BatchedExport:
    """Batches ``exp`` with one axis entry per flat argument (``dims``, the
    position of the batch axis in the batched argument) and per flat result.
    The results listed in ``summed`` are summed over the batch inside the
    module (passes/sum_lanes.py): a shared weight's gradient, say.

    ``size`` is an int or a symbolic dimension (``symbolic_size("b")``).
    ``rewrite_hook(module)`` may change the batched module before it is
    serialized (sharding annotations use it)."""
    start = time.perf_counter()
    # Plain bytecode is what export_in_process stores: a module jax's
    # lowering verified in this process (mlir.lower_jaxpr_to_module), not
    # verified again (~0.3-2.5 ms of a first call); any other input is.
    verified = module_io.is_plain_bytecode(exp.mlir_module_serialized)
    module = module_io.parse_module(exp.mlir_module_serialized)
    # A module lowered for a named axis at placeholder lane counts may take
    # arguments with the number of lanes as a dimension (the cotangent of an
    # all_gather's result): that symbolic dimension is the batch size.
    lanes = is_symbolic(size) and SYMBOLIC_ATTR in module.operation.attributes
    if (exp.uses_global_constants and len(exp.platforms) > 1) or (not lanes and any(
            not all(isinstance(s, int) for s in a.shape) for a in exp.in_avals)):
        raise ValueError(f"{what}: the exported function is already shape-polymorphic; "
                         "export it with static shapes")
    dims = ax.batch_positions(f"{what} in_axes", exp.in_avals, dims)
    # The module's main takes a platform index when lowered for several
    # platforms, and tokens first for ordered effects: never batched.
    n_extra_in = (1 if len(exp.platforms) > 1 else 0) + len(exp.ordered_effects)
    n_extra_out = len(exp.ordered_effects)
    if exp.uses_global_constants and len(exp.platforms) == 1:
        # static arguments, but calls of shape-polymorphic modules inside
        # (jax.vmap or batch_lower of a batch_lower(axis_size="b") function)
        module = module_io.parse_module(
            jax_internals.refine_shapes(module_io.module_to_bytecode(module)))
        verified = False
    symbolic = is_symbolic(size)
    out_pos = [ax.batch_position(d, len(a.shape))
               for a, d in zip(exp.out_avals, out_dims)]
    forwarded = tuple(
        (j, i) for j, i in module_io.forwarded_arguments(
            module, dims, out_pos, n_leading_in=n_extra_in, n_leading_out=n_extra_out,
            kept=list(exp.module_kept_var_idx))
        if j not in summed)
    result_batched, report = batch_function(
        module, "main", [dims[i] for i in exp.module_kept_var_idx], out_dims,
        "?" if symbolic else int(size), n_leading_in=n_extra_in,
        n_leading_out=n_extra_out, out_tree=exp.out_tree, out_avals=exp.out_avals,
        what=what, verify_input=not verified)
    if summed:
        sum_results_over_lanes(module, "main", [n_extra_out + j for j in summed],
                               [out_pos[j] for j in summed])
    if rewrite_hook is not None:
        rewrite_hook(module)
    if symbolic:
        with module.context:
            module.operation.attributes["jax.uses_shape_polymorphism"] = ir.BoolAttr.get(True)
    rewrite_seconds = time.perf_counter() - start
    report.rewrite_seconds = rewrite_seconds
    vjp = (functools.partial(batched_vjp, exp, dims, out_dims, size)
           if exp.has_vjp() and not summed else None)
    batched = replace_exported(
        exp, vjp=vjp,
        in_avals=tuple(_with_batch(a, d, size) for a, d in zip(exp.in_avals, dims)),
        out_avals=tuple(_with_batch(a, None if j in summed else d, size)
                        for j, (a, d) in enumerate(zip(exp.out_avals, out_pos))),
        mlir_module_serialized=module_io.module_to_portable_artifact(module),
        uses_global_constants=exp.uses_global_constants or symbolic)
    return BatchedExport(batched, module, result_batched, rewrite_seconds, report,
                         forwarded=forwarded)


def spread_to_lanes(ct, size):
    """The cotangent of an unbatched result, as a batched cotangent: it must
    count once, not once per lane, so it goes to lane 0 (the other lanes get
    zeros). Used by every transpose of a batched call."""
    return jnp.zeros((size,) + ct.shape, ct.dtype).at[0].set(ct)


def batched_vjp(exp, dims, out_dims, size, batched: jax.export.Exported):
    """The VJP of the batched function, as an Exported: the per-example VJP
    module of ``exp`` batched by our rewrite; cotangents of unbatched
    arguments are summed over the batch, as jax.vmap's transpose does."""
    vjp = exp.vjp()  # (primals..., output cotangents...) -> input cotangents
    float0 = jax.dtypes.float0
    out_dims = [ax.batch_position(d, len(a.shape)) for a, d in zip(exp.out_avals, out_dims)]
    to_lane0 = [d is None and a.to_tangent_aval().dtype != float0
                for a, d in zip(exp.out_avals, out_dims)]
    ct_dims = [0 if z else d for z, d in zip(to_lane0, out_dims)]
    # Cotangents of unbatched arguments are summed inside the module, where
    # the sum becomes the contraction of the product that made them.
    summed = [i for i, (d, a) in enumerate(zip(dims, exp.in_avals))
              if d is None and a.to_tangent_aval().dtype != float0]
    inner = batch_flat(vjp, list(dims) + ct_dims,
                       [0 if d is None else d for d in dims], size,
                       what="gradient of the batched function", summed=summed).exported
    n_in = len(exp.in_avals)

    def bwd(*flat):
        primals, cts = list(flat[:n_in]), list(flat[n_in:])
        if not is_symbolic(size) and size == 0 and any(to_lane0):
            return _bwd_no_lanes(exp, vjp, dims, primals, cts, to_lane0)
        cts = [spread_to_lanes(ct, size) if z else ct for ct, z in zip(cts, to_lane0)]
        in_cts = inner.call(*primals, *cts)
        out = []
        for ct, d, a in zip(in_cts, dims, exp.in_avals):
            if d is None and ct.dtype == float0:
                ct = np.zeros(a.shape, float0)
            out.append(ct)
        return out

    vjp_avals = [jax.ShapeDtypeStruct(a.shape, a.dtype) for a in batched.in_avals] + \
        [jax.ShapeDtypeStruct(a.shape, a.to_tangent_aval().dtype) for a in batched.out_avals]
    return jax.export.export(jax.jit(bwd), platforms=batched.platforms,
                             disabled_checks=batched.disabled_safety_checks)(*vjp_avals)


def _bwd_no_lanes(exp, vjp, dims, primals, cts, to_lane0):
    """``batched_vjp``'s backward pass at batch size 0 where results with
    out_axes=None have cotangents: no lane 0 carries them (``spread_to_lanes``
    has none), so, as under ``jax.vmap``, whose unbatched results are
    computed outside the batch, they go through the per-example VJP with
    zeros for the batched arguments (an unbatched result depends on none of
    them) and for the batched results' cotangents (no lane: they add
    nothing). The batched arguments' cotangents are empty."""
    float0 = jax.dtypes.float0

    def zeros(shape, a):
        t = a.to_tangent_aval().dtype
        return np.zeros(shape, float0) if t == float0 else jnp.zeros(shape, t)
    example = [x if d is None else jnp.zeros(a.shape, a.dtype)
               for x, d, a in zip(primals, dims, exp.in_avals)]
    example_cts = [ct if z else zeros(a.shape, a) for ct, z, a in zip(cts, to_lane0, exp.out_avals)]
    in_cts = vjp.call(*example, *example_cts)
    out = []
    for ct, d, a in zip(in_cts, dims, exp.in_avals):
        if d is not None:
            ct = zeros(ax.insert_batch(a.shape, d, 0), a)
        elif a.to_tangent_aval().dtype == float0:
            ct = np.zeros(a.shape, float0)
        out.append(ct)
    return out
