"""jax.export artifacts in and out.

``batch_exported`` turns a ``jax.export.Exported`` (or its serialized bytes)
into a new ``Exported`` of the batched function: it serializes, and a process
with only jax installed can deserialize and call it. ``batch_flat`` is the
shared core (``batch_lower`` builds its batched function with it too); it
also gives the result a VJP that is itself a batched module, so ``jax.grad``
through the batched call works. ``vmappable`` wraps an ``Exported`` so that
its call works under ``jax.vmap`` (jax has no batching rule for
``call_exported``): the batching rule batches the module with our rewrite.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import re
import time
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import tree_util
from jaxlib.mlir import ir

from passes import AxisSpecError
from passes.errors import VerificationError, format_location
from passes.engine import batch_function_with_report
from passes.sum_lanes import sum_results_over_lanes
from stablehlo_batch import axes as ax
from stablehlo_batch import module_io


@dataclasses.dataclass
class BatchedExport:
    """The batched function as an ``Exported`` plus what building it learnt."""
    exported: jax.export.Exported
    module: ir.Module
    result_batched: list[bool]
    rewrite_seconds: float
    report: Any = None  # passes.report.BatchingReport
    chunk_size: int | None = None  # lanes per chunk when computed in chunks
    call: Any = None  # how to call it when jax.jit(exported.call) is not enough
    shardings: Any = None  # (in_shardings, out_shardings) for jax.jit, with mesh=


_UNSTABLE_TARGETS = "custom calls whose targets have no compatibility guarantees"


@contextlib.contextmanager
def readable_mlir_errors(what: str):
    """MLIR's errors from inside the rewrite (a pass pipeline or a verifier
    that failed) as one ``VerificationError`` listing each diagnostic with
    the op and the user's source line, without the pass-manager text."""
    try:
        yield
    except ir.MLIRError as e:
        diags = "; ".join(f"{d.message} at {format_location(d.location)}"
                          for d in e.error_diagnostics)
        if not diags:
            diags = str(e).replace("Failure while executing pass pipeline:", "").strip()
        raise VerificationError(f"{what}: the batched", diags) from None


def export_in_process(fn, platforms, disabled_checks=(), keep_unused=False):
    """``jax.export.export(jax.jit(fn), platforms=...)`` for use in this process.

    jax.export refuses custom calls without a serialization guarantee (e.g.
    ``lapack_sgeqp3_ffi`` of a pivoted QR); a module that is batched and run
    here needs no such guarantee, so the export is retried with exactly the
    refused targets allowed. The ``Exported`` lists them in
    ``disabled_safety_checks``, which is what ``batch_exported`` callers see.
    ``keep_unused`` keeps arguments the function ignores (a symbolic batch
    size is read from a batched argument of the module)."""
    platforms = (platforms,) if isinstance(platforms, str) else tuple(platforms)
    checks = list(disabled_checks)

    def export(*args, **kwargs):
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


def _insert(a, d, size):
    if d is None:
        return a
    shape = list(a.shape)
    shape.insert(d, size)
    return a.update(shape=tuple(shape))


def _normalize(what: str, avals, dims) -> list[int | None]:
    out = []
    for i, (a, d) in enumerate(zip(avals, dims)):
        if d is None:
            out.append(None)
            continue
        r = len(a.shape)
        if type(d) is not int or not -r - 1 <= d <= r:
            raise ValueError(f"{what}[{i}]={d!r} is out of range for a value of rank {r}")
        out.append(d % (r + 1))
    return out


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
    if exp.uses_global_constants or any(
            not all(isinstance(s, int) for s in a.shape) for a in exp.in_avals):
        raise ValueError(f"{what}: the exported function is already shape-polymorphic; "
                         "export it with static shapes")
    dims = _normalize(f"{what} in_axes", exp.in_avals, dims)
    # Negative out_axes count from the end of the value's own rank: for a
    # typed PRNG key the IR has a hidden trailing dimension (the key data),
    # so the engine must get them resolved. Out-of-range ones go through
    # unchanged: the engine names them.
    out_dims = [d if d is None or type(d) is not int or d >= 0
                or d < -len(a.shape) - 1 else d % (len(a.shape) + 1)
                for d, a in zip(out_dims, exp.out_avals)]
    # The module's main takes a platform index when lowered for several
    # platforms, and tokens first for ordered effects: never batched.
    n_extra_in = (1 if len(exp.platforms) > 1 else 0) + len(exp.ordered_effects)
    n_extra_out = len(exp.ordered_effects)
    start = time.perf_counter()
    module = module_io.parse_module(exp.mlir_module_serialized)
    symbolic = is_symbolic(size)
    try:
        with readable_mlir_errors(what):
            result_batched, report = batch_function_with_report(
                module, "main",
                [None] * n_extra_in + [dims[i] for i in exp.module_kept_var_idx],
                [None] * n_extra_out + list(out_dims),
                "?" if symbolic else int(size))
    except AxisSpecError as e:
        if e.result_index is None:
            raise
        j = e.result_index - n_extra_out
        path = ax.leaf_path(exp.out_tree, j, "out_axes")
        if out_dims[j] is None:
            raise ValueError(f"{what} has mapped output ({path}) but out_axes "
                             "is None") from None
        raise ValueError(f"at {what} {path}: {e}") from None
    result_batched = result_batched[n_extra_out:]
    if summed:
        sum_results_over_lanes(module, "main", [n_extra_out + j for j in summed],
                               [out_dims[j] % (len(exp.out_avals[j].shape) + 1)
                                for j in summed])
    if rewrite_hook is not None:
        rewrite_hook(module)
    if symbolic:
        with module.context:
            module.operation.attributes["jax.uses_shape_polymorphism"] = ir.BoolAttr.get(True)
    rewrite_seconds = time.perf_counter() - start
    report.rewrite_seconds = rewrite_seconds
    batched = dataclasses.replace(
        exp,
        in_avals=tuple(_insert(a, d, size) for a, d in zip(exp.in_avals, dims)),
        out_avals=tuple(_insert(a, None if d is None or j in summed
                                else d % (len(a.shape) + 1), size)
                        for j, (a, d) in enumerate(zip(exp.out_avals, out_dims))),
        mlir_module_serialized=module_io.module_to_portable_artifact(module),
        uses_global_constants=exp.uses_global_constants or symbolic,
        _get_vjp=None)
    if exp.has_vjp() and not summed:
        batched = dataclasses.replace(
            batched, _get_vjp=functools.partial(_batched_vjp, exp, dims, out_dims, size))
    return BatchedExport(batched, module, result_batched, rewrite_seconds, report)


def _batched_vjp(exp, dims, out_dims, size, batched: jax.export.Exported):
    """The VJP of the batched function, as an Exported: the per-example VJP
    module of ``exp`` batched by our rewrite; cotangents of unbatched
    arguments are summed over the batch, as jax.vmap's transpose does."""
    vjp = exp.vjp()  # (primals..., output cotangents...) -> input cotangents
    float0 = jax.dtypes.float0
    out_dims = [None if d is None else d % (len(a.shape) + 1)
                for a, d in zip(exp.out_avals, out_dims)]
    # An unbatched output's cotangent must count once, not once per lane:
    # it goes to lane 0 only (the other lanes get zeros).
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
        for j, z in enumerate(to_lane0):
            if z:
                ct = cts[j]
                cts[j] = jnp.zeros((size,) + ct.shape, ct.dtype).at[0].set(ct)
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


def load(exp) -> jax.export.Exported:
    """An ``Exported`` from itself or its serialized bytes."""
    if isinstance(exp, jax.export.Exported):
        return exp
    if isinstance(exp, (bytes, bytearray, memoryview)):
        return jax.export.deserialize(bytearray(exp))
    raise TypeError(f"expected a jax.export.Exported or its serialized bytes, got "
                    f"{type(exp).__name__}")


def batch_exported(exp, in_axes=0, out_axes=0, *, axis_size) -> jax.export.Exported:
    """The batched function of ``exp`` (an ``Exported`` or serialized bytes) as a
    new ``Exported``, like ``jax.export.export(jax.jit(jax.vmap(f, in_axes,
    out_axes)))`` of the original ``f``.

    ``in_axes`` is a vmap-style prefix of the positional arguments (keyword
    arguments are batched along 0), ``out_axes`` a prefix of the results.
    ``axis_size`` is the batch size, or a name such as ``"b"`` for one
    artifact that runs at every batch size (shape polymorphism)."""
    exp = load(exp)
    in_axes = ax.canonicalize_in_axes(in_axes)
    ax.check_out_axes(out_axes)
    if axis_size is None:
        raise ValueError("batch_exported needs axis_size (an int or a name like 'b')")
    args_tree = exp.in_tree.children()[0]
    if isinstance(in_axes, tuple) and len(in_axes) != args_tree.num_leaves and \
            len(in_axes) != len(args_tree.children()):
        raise ValueError(f"batch_exported in_axes has {len(in_axes)} entries but the "
                         f"function takes {len(args_tree.children())} positional arguments")
    dims = ax.flatten_axes("batch_exported in_axes", exp.in_tree, (in_axes, 0))
    out_dims = ax.flatten_axes("batch_exported out_axes", exp.out_tree, out_axes)
    size = symbolic_size(axis_size)
    if not is_symbolic(size) and int(size) < 0:
        raise ValueError(f"axis_size must be >= 0, got {size}")
    return batch_flat(exp, dims, out_dims, size, what="batch_exported").exported


# ---- jax.vmap of an Exported ---------------------------------------------------

@functools.lru_cache(maxsize=256)
def _batched_for(exp: jax.export.Exported, pattern: tuple[bool, ...],
                 size: int) -> jax.export.Exported:
    dims = [0 if b else None for b in pattern]
    return batch_flat(exp, dims, [0] * len(exp.out_avals), size,
                      what="vmappable").exported


@functools.lru_cache(maxsize=64)
def _vjp_of(exp: jax.export.Exported):
    return vmappable(exp.vjp())


def vmappable(exp) -> Any:
    """A function calling ``exp`` (an ``Exported`` or its bytes) that also works
    under ``jax.vmap`` (nested too), ``jax.jit`` and ``lax.map``: vmap's
    batching rule batches the module with our rewrite, keeping arguments that
    vmap does not batch unbatched."""
    exp = load(exp)

    @jax.custom_batching.custom_vmap
    def call_flat(*flat):
        args, kwargs = tree_util.tree_unflatten(exp.in_tree, flat)
        return tuple(tree_util.tree_flatten(exp.call(*args, **kwargs))[0])

    @call_flat.def_vmap
    def rule(axis_size, in_batched, *flat):
        bexp = _batched_for(exp, tuple(bool(b) for b in in_batched), int(axis_size))
        # Under an outer vmap the batched call is batched again the same way.
        return vmappable(bexp).flat(*flat), (True,) * len(bexp.out_avals)

    if exp.has_vjp():
        # custom_vmap has no autodiff: gradients go through the exported VJP,
        # itself vmappable, so grad-of-vmap and vmap-of-grad both batch it.
        batched_call = call_flat

        @jax.custom_vjp
        def call_flat(*flat):
            return batched_call(*flat)

        def fwd(*flat):
            return batched_call(*flat), flat

        def bwd(flat, cts):
            return tuple(_vjp_of(exp).flat(*flat, *cts))

        call_flat.defvjp(fwd, bwd)

    def call(*args, **kwargs):
        flat, tree = tree_util.tree_flatten((args, kwargs))
        if tree != exp.in_tree:
            return exp.call(*args, **kwargs)  # jax's own error message
        return tree_util.tree_unflatten(exp.out_tree, list(call_flat(*flat)))

    call.flat = call_flat
    call.exported = exp
    return call


def batch_with_options(exp, dims, out_dims, size, *, what: str = "batch_lower",
                       chunk_size=None, memory_limit_bytes=None, mesh=None,
                       axis_name: str = "batch") -> BatchedExport:
    """``batch_flat`` plus the scaling options of ``batch_lower``: computing in
    chunks (stablehlo_batch/chunking.py) and splitting the batch axis over a
    device mesh (stablehlo_batch/sharding.py)."""
    if chunk_size is None and memory_limit_bytes is not None:
        raise ValueError('memory_limit_bytes needs chunk_size="auto"')
    if chunk_size is not None and mesh is not None:
        raise ValueError("chunk_size and mesh cannot be combined yet")
    if chunk_size is not None and is_symbolic(size):
        raise ValueError("chunk_size needs a static axis_size")
    if mesh is not None and is_symbolic(size):
        raise ValueError("mesh needs a static axis_size")
    dims = _normalize(f"{what} in_axes", exp.in_avals, dims)
    if chunk_size == "auto":
        from stablehlo_batch.chunking import auto_chunk
        return auto_chunk(exp, dims, out_dims, size, memory_limit_bytes, what=what)
    if chunk_size is not None:
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)):
            raise TypeError(f'chunk_size must be an int or "auto", got {chunk_size!r}')
        from stablehlo_batch.chunking import chunk_flat
        return chunk_flat(exp, dims, out_dims, size, chunk_size, what=what)
    if mesh is not None:
        from stablehlo_batch.sharding import shard_flat
        return shard_flat(exp, dims, out_dims, size, mesh, axis_name, what=what)
    return batch_flat(exp, dims, out_dims, size, what=what)
