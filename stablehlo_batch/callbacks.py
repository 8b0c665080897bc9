"""batch_lower for functions with host callbacks (pure_callback, io_callback,
jax.debug.callback).

jax.export refuses them ("serialization of host_callbacks is not yet
implemented"): a callback's custom call names its Python callable only by an
index (``mhlo.backend_config = {index = k}``) into the list of callables that
jax hands to XLA with the module at compile time. So such a function is
lowered in-process with ``jax.jit(fn).lower`` instead, its module is batched
(the callback custom calls run once per lane through the fallback), and it is
compiled by a jax lowering of the batched signature whose module is swapped
for ours and whose callable list, keep-alives and effects are the original
lowering's: indices keep meaning the same callables.

The result is an AOT executable: it is called directly (not inside another
``jax.jit``; that raises a TypeError saying so). One ordered effect
(``io_callback(ordered=True)`` or ``jax.debug.callback(ordered=True)``) is
supported: the token it adds to main stays unbatched and the per-lane loop
threads it through the lanes in order. Several kinds of ordered effects at
once, and hoisted constant arguments, are refused.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any

import jax
import jax.numpy as jnp
from jax import tree_util

from passes import AxisSpecError, UnsupportedOpError
from passes.engine import batch_function_with_report
from stablehlo_batch import axes as ax
from stablehlo_batch import module_io


def needs_callback_route(err: Exception) -> bool:
    """True when ``err`` is jax.export's refusal of host callbacks."""
    return isinstance(err, NotImplementedError) and "host_callbacks" in str(err)


@dataclasses.dataclass
class CallbackBuild:
    module: Any
    result_batched: list
    rewrite_seconds: float
    compiled: Any
    call: Any
    report: Any = None  # passes.report.BatchingReport


def _insert(shape, d, size):
    shape = list(shape)
    if d is not None:
        shape.insert(d % (len(shape) + 1), size)
    return tuple(shape)


def _ordered_twin(effect):
    """A no-op that has ``effect`` (an ordered effect), or None."""
    from jax._src import callback as jcb
    from jax._src import debugging
    if isinstance(effect, jcb.OrderedIOEffect):
        from jax.experimental import io_callback
        return lambda: io_callback(lambda: None, None, ordered=True)
    if isinstance(effect, debugging.OrderedDebugEffect):
        return lambda: jax.debug.callback(lambda: None, ordered=True)
    return None


def build(fn, in_tree, avals, dims, size, platform, out_axes, what="batch_lower"):
    """Lowers ``fn`` for one example in-process, batches it and compiles it
    keeping its host callbacks; ``avals``/``dims`` are the flat batched
    arguments and where each carries the batch (None: unbatched)."""
    def unbatched(a, d):
        shape = a.shape if d is None else a.shape[:d] + a.shape[d + 1:]
        return jax.ShapeDtypeStruct(shape, a.dtype, weak_type=a.weak_type)

    ex_args, ex_kwargs = tree_util.tree_unflatten(
        in_tree, [unbatched(a, d) for a, d in zip(avals, dims)])
    lowered = jax.jit(fn, keep_unused=True).trace(*ex_args, **ex_kwargs).lower(
        lowering_platforms=(platform,))
    lowering = lowered._lowering
    cargs = lowering.compile_args
    ordered = list(cargs.get("ordered_effects") or [])
    if len(ordered) > 1 or (ordered and _ordered_twin(ordered[0]) is None):
        raise UnsupportedOpError(
            "stablehlo.custom_call", "main", "unknown",
            "host callbacks with the ordered effects "
            f"{', '.join(type(e).__name__ for e in ordered)} cannot be batched (one kind "
            "of ordered effect at most)")
    n_tok = len(ordered)  # main takes and returns one token per ordered effect
    if getattr(lowering, "const_args", None):
        raise UnsupportedOpError("func.func", "main", "unknown",
                                 "a host-callback function with hoisted constants")
    out_tree = lowered.out_tree
    out_dims = ax.flatten_axes(f"{what} out_axes", out_tree, out_axes)

    start = time.perf_counter()
    module = module_io.parse_module(
        lowered.compiler_ir("stablehlo").operation.get_asm(enable_debug_info=True))
    from stablehlo_batch.export import readable_mlir_errors
    try:
        with readable_mlir_errors(what):
            result_batched, report = batch_function_with_report(
                module, "main", [None] * n_tok + list(dims),
                [None] * n_tok + list(out_dims), size)
        result_batched = result_batched[n_tok:]
    except AxisSpecError as e:
        if e.result_index is None:
            raise
        j = e.result_index - n_tok
        path = ax.leaf_path(out_tree, j, "out_axes")
        if out_dims[j] is None:
            raise ValueError(f"{what} has mapped output ({path}) but out_axes "
                             "is None") from None
        raise ValueError(f"at {what} {path}: {e}") from None
    rewrite_seconds = time.perf_counter() - start
    report.rewrite_seconds = rewrite_seconds

    out_avals = cargs["global_out_avals"]
    out_specs = [jax.ShapeDtypeStruct(_insert(a.shape, d, size), a.dtype)
                 for a, d in zip(out_avals, out_dims)]
    in_specs = [jax.ShapeDtypeStruct(a.shape, a.dtype, weak_type=a.weak_type)
                for a in avals]
    # A lowering with the batched signature: its calling convention (avals,
    # shardings, layouts) is right; module, callables and effects are swapped.
    def template_fn(*a):
        if ordered:  # the same ordered effect: the same tokens in main's signature
            _ordered_twin(ordered[0])()
        return tuple(jnp.zeros(s.shape, s.dtype) for s in out_specs)

    template = jax.jit(template_fn, keep_unused=True).trace(*in_specs).lower(
        lowering_platforms=(platform,))
    t = template._lowering
    t._hlo = module_io.parse_module(module_io.module_to_text(module, debug_info=True),
                                    context=template.compiler_ir("stablehlo").context)
    for name in ("host_callbacks", "keepalive", "unordered_effects", "ordered_effects"):
        t.compile_args[name] = cargs[name]
    compiled = template.compile()

    effect_names = sorted({type(e).__name__ for e in
                           list(cargs.get("unordered_effects") or []) + ordered})

    def call(*args, **kwargs):
        leaves = tree_util.tree_leaves((args, kwargs))
        if any(isinstance(x, jax.core.Tracer) for x in leaves):
            raise TypeError(f"{what} of a function with host callbacks (effects: "
                            f"{', '.join(effect_names) or 'none'}) runs as a compiled "
                            "executable and cannot be traced (call it outside "
                            "jax.jit / jax.grad / jax.vmap)")
        return tree_util.tree_unflatten(out_tree, list(compiled(*leaves)))

    return CallbackBuild(module, result_batched, rewrite_seconds, compiled, call, report)
