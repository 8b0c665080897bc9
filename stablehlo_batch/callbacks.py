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

The result is an AOT executable: it is called directly (traced, it raises a
TypeError naming the effects; ``batch_lower`` under jax's transformations
runs such a function lane by lane in a ``lax.map`` instead, api.py). One ordered effect
(``io_callback(ordered=True)`` or ``jax.debug.callback(ordered=True)``) is
supported: the token it adds to main stays unbatched and the per-lane loop
threads it through the lanes in order. Several kinds of ordered effects at
once, and hoisted constant arguments, are refused.
"""
from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from jax import tree_util
# jax private APIs: only this module uses them (the ordered-effect classes,
# the lowering's compile arguments below, the executable's C++ call, weakly
# typed zeros for the template's results).
from jax._src import callback as jcb
from jax._src import debugging
from jax._src.interpreters import pxla
from jax._src.lax import lax as lax_internal
from jax.experimental import io_callback

from stablehlo_batch import axes as ax
from stablehlo_batch import jax_internals, module_io, named_axes
from stablehlo_batch.passes.errors import UnsupportedOpError
from stablehlo_batch.passes.report import BatchingReport
from stablehlo_batch.rewrite import batch_function


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
    report: BatchingReport | None = None
    forwarded: tuple = ()  # as flat.BatchedExport.forwarded


def _ordered_twin(effect):
    """A no-op that has ``effect`` (an ordered effect), or None."""
    if isinstance(effect, jcb.OrderedIOEffect):
        return lambda: io_callback(lambda: None, None, ordered=True)
    if isinstance(effect, debugging.OrderedDebugEffect):
        return lambda: jax.debug.callback(lambda: None, ordered=True)
    return None


def build(fn, in_tree, avals, dims, size, platform, out_axes, what="batch_lower",
          axis_name=None):
    """Lowers ``fn`` for one example in-process, batches it and compiles it
    keeping its host callbacks; ``avals``/``dims`` are the flat batched
    arguments and where each carries the batch (None: unbatched).
    ``axis_name``: the batch axis' name for collectives in ``fn`` (lowered
    as ``named_axes.export_named`` lowers it)."""
    ex_args, ex_kwargs = tree_util.tree_unflatten(
        in_tree, [ax.unbatched_struct(a, d) for a, d in zip(avals, dims)])
    ctx = contextlib.nullcontext()
    if axis_name is not None:
        if not isinstance(size, int):
            raise UnsupportedOpError(
                "stablehlo.custom_call", "main", "unknown",
                f"host callbacks with axis_name={axis_name!r} and a symbolic batch size "
                "(pass a static axis_size)")
        # batch size 0: lowered for one lane and marked, the lane count
        # (pmean's divisor) a collective, as named_axes.export_named does
        fn = named_axes.named_wrapper(fn, in_tree, axis_name, max(size, 1))
        ctx = contextlib.ExitStack()
        ctx.enter_context(named_axes.named_lowering(platform))
        if size == 0:
            ctx.enter_context(jax_internals.traced_axis_size(axis_name))
    with ctx, jax_internals.tracing_to_batch():  # a mesh= batch_lower inside drops its mesh
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

    module = module_io.parse_module(
        lowered.compiler_ir("stablehlo").operation.get_asm(enable_debug_info=True))
    if axis_name is not None:
        named_axes.lanes_module(module, max(size, 1))
        if size == 0:
            named_axes.mark_empty_lanes(module)
    out_avals = cargs["global_out_avals"]
    forwarded = module_io.forwarded_arguments(
        module, dims, [ax.batch_position(d, len(a.shape)) for a, d in zip(out_avals, out_dims)],
        n_leading_in=n_tok, n_leading_out=n_tok)
    result_batched, report = batch_function(
        module, "main", dims, out_dims, size, n_leading_in=n_tok, n_leading_out=n_tok,
        out_tree=out_tree, out_avals=out_avals, what=what)
    rewrite_seconds = report.rewrite_seconds

    # the results' weak types are the function's (``cb(x) * 2.5`` of an int
    # ``x`` is weakly typed, as under jax.vmap): the template's results have them
    out_specs = [jax.ShapeDtypeStruct(ax.insert_batch(a.shape, d, size), a.dtype,
                                      weak_type=a.weak_type)
                 for a, d in zip(out_avals, out_dims)]
    in_specs = [jax.ShapeDtypeStruct(a.shape, a.dtype, weak_type=a.weak_type)
                for a in avals]
    # A lowering with the batched signature: its calling convention (avals,
    # shardings, layouts) is right; module, callables and effects are swapped.
    def template_fn(*a):
        if ordered:  # the same ordered effect: the same tokens in main's signature
            _ordered_twin(ordered[0])()
        return tuple(_zeros(s) for s in out_specs)

    template = jax.jit(template_fn, keep_unused=True).trace(*in_specs).lower(
        lowering_platforms=(platform,))
    t = template._lowering
    t._hlo = module_io.parse_module(module_io.module_to_text(module, debug_info=True),
                                    context=template.compiler_ir("stablehlo").context)
    for name in ("host_callbacks", "keepalive", "unordered_effects", "ordered_effects"):
        t.compile_args[name] = cargs[name]
    compiled = template.compile()
    run = _fast_call(compiled)

    effect_names = sorted({type(e).__name__ for e in
                           list(cargs.get("unordered_effects") or []) + ordered})

    def call(*args, **kwargs):
        leaves = tree_util.tree_leaves((args, kwargs))
        if any(isinstance(x, jax.core.Tracer) for x in leaves):
            raise TypeError(f"{what} of a function with host callbacks (effects: "
                            f"{', '.join(effect_names) or 'none'}) runs as a compiled "
                            "executable and cannot be traced (call it outside "
                            "jax.jit / jax.grad / jax.vmap)")
        return tree_util.tree_unflatten(out_tree, list(run(*leaves)))

    return CallbackBuild(module, result_batched, rewrite_seconds, compiled, call, report,
                         forwarded)


def _zeros(spec):
    """Zeros of ``spec``'s shape, dtype and weak type (``jnp.zeros`` makes
    no weakly typed array: jax's own conversion does)."""
    z = jnp.zeros(spec.shape, spec.dtype)
    return lax_internal._convert_element_type(z, weak_type=True) if spec.weak_type else z


def _fast_call(compiled):
    """``compiled``'s C++ call, as ``jax.jit``'s own dispatch makes it.

    jit runs an executable with host callbacks through its C++ fast path
    (``pjit._get_fastpath_data`` does not refuse them: ``jax.jit(jax.vmap(f))``
    of a ``pure_callback`` does), but an ahead-of-time ``Compiled`` does not
    (``MeshExecutable.create_cpp_call``), which cost ~60 us a call (1.13x
    jit(vmap) on the bench's host_callback at batch 8). The C++ call is made
    as jit's is; its first call (a cache miss) still runs through
    ``Compiled.call`` with the runtime tokens. Ordered or unordered effects
    keep the Python path, as under jit."""
    exe = compiled._executable
    uc = getattr(exe, "unsafe_call", None)
    if (not isinstance(uc, pxla.ExecuteReplicated) or uc.ordered_effects
            or uc.has_unordered_effects or not uc.has_host_callbacks):
        return compiled
    uc.has_host_callbacks = False
    try:
        fast = exe.create_cpp_call(compiled._params)
    except Exception:  # noqa: BLE001 - another jax's executable: the plain call
        fast = None
    finally:
        uc.has_host_callbacks = True
    return fast or compiled


def per_size(first: CallbackBuild, build_at, avals, dims, size):
    """A call for a plan that serves every batch size (``axis_size="b"``):
    a host-callback function is compiled for one size, so each new batch
    size builds its own executable (``build_at(avals, size)``)."""
    builds = {size: first}

    def call(*args, **kwargs):
        leaves = tree_util.tree_leaves((args, kwargs))
        n = next((jax.typeof(x).shape[d] for x, d in zip(leaves, dims) if d is not None),
                 size)
        b = builds.get(n)
        if b is None:
            b = builds[n] = build_at(
                [a if d is None else a.update(shape=a.shape[:d] + (n,) + a.shape[d + 1:])
                 for a, d in zip(avals, dims)], n)
        return b.call(*args, **kwargs)
    return call
