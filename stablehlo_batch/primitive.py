"""The batched call as a jax primitive (``batched_call``), so that jax's
transformations see through a ``batch_lower``ed function: ``jax.jit``,
``jax.jvp`` / ``jax.linearize`` (forward mode), ``jax.grad`` / ``jax.vjp``
(reverse mode) and ``jax.vmap`` (nested batching).

A ``BatchedFn`` is a per-example function with flat arguments and results
(``src``) and its batching spec; its module is ``src`` exported by jax.export
and batched by our rewrite, built on first use. Each rule of the primitive
emits ``batched_call`` of another ``BatchedFn``:

- JVP: the tangents come from the *tangent map*, per example
  ``jax.jvp(src)`` restricted to the non-zero tangents, linear in them;
- transpose (of a tangent map): per example ``jax.vjp(src)``. A cotangent of
  a result that is not batched counts once, so it goes to lane 0 (the other
  lanes get zeros); cotangents of arguments that are not batched are summed
  over the lanes, as jax.vmap's transpose does;
- batching: the batched function itself, batched again by our rewrite.

Reverse mode never builds a JVP module: jax stages the tangent map and
transposes it, so only the VJP is exported. That keeps ``jax.grad`` working
for functions that jax can only differentiate in reverse mode (a
``custom_vjp`` inside).
"""
from __future__ import annotations

import contextlib
import functools
import threading
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
from jax import tree_util
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir
from jaxlib.mlir import ir

from stablehlo_batch import axes as ax
from stablehlo_batch.chunking import chunk_flat
from stablehlo_batch import custom_vmap, inline, jax_internals, module_io, named_axes
from stablehlo_batch.flat import (batch_flat, export_in_process, is_symbolic, spread_to_lanes,
                                  without_unused)
from stablehlo_batch.passes.errors import UnsupportedOpError, format_location
from stablehlo_batch.passes.rules import RULES

batched_call_p = Primitive("stablehlo_batch_call")
batched_call_p.multiple_results = True


def _inexact(dtype) -> bool:
    return jnp.issubdtype(dtype, jnp.inexact)


def _struct(a) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct(tuple(a.shape), a.dtype, weak_type=getattr(a, "weak_type", False))


def _tangent_struct(a) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct(tuple(a.shape), a.dtype)


def _restricted(src: Callable, xs, idx, keep) -> Callable:
    """``src`` as a function of its arguments ``idx`` alone (the others fixed
    at ``xs``), returning its results ``keep`` alone."""
    def g(*x_idx):
        args = list(xs)
        for i, x in zip(idx, x_idx):
            args[i] = x
        outs = src(*args)
        return [outs[j] for j in keep]
    return g


class BatchedFn:
    """One per-example function and how it is batched. Compared by identity:
    it is a parameter of ``batched_call`` and keys jax's caches."""

    def __init__(self, src: Callable, example_avals: Sequence, dims: Sequence[int | None],
                 out_dims: Sequence[int | None], size, platform: str, *,
                 exported: jax.export.Exported | None = None,
                 example_out_avals: Sequence | None = None,
                 chunk_size: int | None = None, summed: Sequence[bool] = (),
                 what: str = "batch_lower", effects=frozenset(), axis_name=None,
                 module: ir.Module | None = None, meshed: bool = False,
                 drop_unused: bool = False):
        # drop_unused: the arguments ``exported``'s module does not use
        # (jax.export's keep_unused=False left them out) are no arguments
        # of the primitive: ``call`` binds the others (``kept``, indices of
        # the flat arguments), so a jax.jit around the call (the plan's own,
        # the dispatch's, the user's) drops them from its executable as
        # jax.jit(jax.vmap(f)) does, donated ones included; their
        # derivatives are zeros, as jax's for an argument a jaxpr ignores.
        self.kept: tuple[int, ...] | None = None
        if drop_unused and exported is not None and \
                len(exported.module_kept_var_idx) < len(exported.in_avals):
            self.kept = tuple(exported.module_kept_var_idx)
            src = _without_arguments(src, example_avals, self.kept)
            example_avals = [example_avals[i] for i in self.kept]
            dims = [dims[i] for i in self.kept]
            exported = without_unused(exported)
        self.src = src
        # ``exported`` was built for a device mesh (mesh=: sharding.py).
        self.meshed = meshed
        # The batched module as plain MLIR bytecode (``module``: the one
        # ``exported`` serializes), inlined by the lowering (_inline_call).
        self.module_bytecode = None if module is None else module_io.module_to_bytecode(module)
        # The module's unordered effects (an ffi_call with side effects): the
        # primitive carries them, so jax does not drop the call. jax.vmap of
        # it inherits them; derivatives do not (jax's remat refuses effects in
        # the staged part of a gradient). A dce_sink's NoDCEEffect only keeps
        # values alive inside the module, which it does without the primitive
        # carrying it (and with it, jax.checkpoint would refuse the call).
        self.effects = frozenset(e for e in effects if type(e).__name__ != "NoDCEEffect")
        self.example_avals = tuple(_struct(a) for a in example_avals)
        self.dims = tuple(ax.batch_position(d, len(a.shape))
                          for a, d in zip(self.example_avals, dims))
        self._raw_out_dims = tuple(out_dims)
        # Results summed over the batch inside the module (passes/sum_lanes.py).
        self.summed = tuple(summed) or (False,) * len(self._raw_out_dims)
        self.size = size
        self.platform = platform
        self.what = what
        # Computed K lanes at a time (chunk_size=); its derivatives are too.
        self.chunk_size = chunk_size
        # The batch axis' name for collectives in src (stablehlo_batch/named_axes.py).
        self.axis_name = axis_name
        self._exported = exported
        self._plain: jax.export.Exported | None = None  # exported() without the mesh
        self._example_out_avals = (None if example_out_avals is None else
                                   tuple(_struct(a) for a in example_out_avals))
        self._lock = threading.Lock()
        self._derived: dict = {}
        self.jitted = jax.jit(functools.partial(_bind, fun=self))
        # Set on tangent maps: (the function differentiated, its non-zero tangents).
        self.tangent_of: tuple[BatchedFn, tuple[bool, ...]] | None = None
        # Set on transposes: which cotangents go to lane 0.
        self.lane0: tuple[bool, ...] = ()

    # ---- shapes -----------------------------------------------------------
    @property
    def example_out_avals(self) -> tuple[jax.ShapeDtypeStruct, ...]:
        if self._example_out_avals is None:
            outs = jax.eval_shape(self.src, *self.example_avals)
            self._example_out_avals = tuple(_struct(a) for a in outs)
        return self._example_out_avals

    @functools.cached_property
    def out_dims(self) -> tuple[int | None, ...]:
        return tuple(ax.batch_position(d, len(a.shape))
                     for a, d in zip(self.example_out_avals, self._raw_out_dims))

    def batch_size(self, avals):
        """The batch size of one call, read from its batched arguments."""
        for a, d in zip(avals, self.dims):
            if d is not None:
                return a.shape[d]
        return self.size

    def out_avals(self, avals) -> list:
        n = self.batch_size(avals)
        out = []
        for a, d, summed in zip(self.example_out_avals, self.out_dims, self.summed):
            # a per-example dimension that is the number of lanes (all_gather
            # over a symbolic batch: named_axes._lane_count_avals) is the batch size
            shape = tuple(s if isinstance(s, int) else n for s in a.shape)
            shape = shape if d is None or summed else shape[:d] + (n,) + shape[d:]
            out.append(jax.core.ShapedArray(shape, a.dtype, weak_type=a.weak_type))
        return out

    # ---- the module -------------------------------------------------------
    def exported(self, devices: int | None = None) -> jax.export.Exported:
        """The batched module; ``devices``: the number of devices of the
        context it is called in. A module built for a mesh (``mesh=``) whose
        call is lowered elsewhere (under an outer ``jax.vmap``, whose module
        is exported for one device) or into a module our rewrite batches
        (an outer ``batch_lower``: jax_internals.tracing_to_batch) is built
        again without the mesh."""
        with self._lock:
            if self._exported is not None and devices is not None and (
                    self._exported.nr_devices not in (1, devices) or
                    (self.meshed and jax_internals.is_tracing_to_batch())):
                if self._plain is None:
                    self._plain = self._build_exported().exported
                return self._plain
            if self._exported is None:
                built = self._build_exported()
                self.module_bytecode = module_io.module_to_bytecode(built.module)
                self._exported = built.exported
            return self._exported

    def _build_exported(self):
        """The batched module as batch_flat / chunk_flat build it."""
        if self.axis_name is not None:
            exp = named_axes.export_named(self.src, tuple(self.example_avals), {},
                                          self.axis_name, self.size, self.platform)
        else:
            # a symbolic size is read from a batched argument: keep those the
            # function ignores (a tangent map may)
            exp = export_in_process(self.src, self.platform,
                                    keep_unused=is_symbolic(self.size))(*self.example_avals)
        summed = [j for j, s in enumerate(self.summed) if s]
        if self.chunk_size:
            built = chunk_flat(exp, self.dims, self._raw_out_dims, self.size,
                               self.chunk_size, what=self.what, summed=summed)
        else:
            built = batch_flat(exp, self.dims, self._raw_out_dims, self.size,
                               what=self.what, summed=summed)
        return built

    def _cached(self, key, build: Callable[[], "BatchedFn"]) -> "BatchedFn":
        # Derived functions build their modules with the rules in force and
        # under jax's trace configuration of the moment (matmul precision,
        # x64, PRNG implementation: jax_internals.trace_context, as plans
        # are keyed). jax's own transpose rules read it where they run (a
        # transposed dot_general takes the default precision of the
        # pullback's call), so a derivative traced under one configuration
        # must not serve another: a pullback called under
        # default_matmul_precision("highest") made every later gradient
        # under the default precision HIGHEST (tests/api/test_trace_config.py).
        key = (key, RULES.generation, jax_internals.trace_context())
        with self._lock:
            fn = self._derived.get(key)
        if fn is None:
            fn = build()
            with self._lock:
                fn = self._derived.setdefault(key, fn)
        return fn

    # ---- derived functions ------------------------------------------------
    def tangent_map(self, nz: tuple[bool, ...]) -> "BatchedFn":
        """(primals..., tangents of the ``nz`` arguments...) -> tangents of the
        inexact results."""
        def build():
            src, idx = self.src, [i for i, z in enumerate(nz) if z]
            keep = [j for j, a in enumerate(self.example_out_avals) if _inexact(a.dtype)]

            def tangents(*flat):
                xs, ts = flat[:len(nz)], flat[len(nz):]
                g = _differentiable(src, xs, idx, keep, self.axis_name)
                with _extrema(self.axis_name):
                    return list(jax.jvp(g, [xs[i] for i in idx], list(ts))[1])

            fn = BatchedFn(
                tangents, self.example_avals + tuple(_tangent_struct(self.example_avals[i])
                                                     for i in idx),
                self.dims + tuple(self.dims[i] for i in idx),
                [self.out_dims[j] for j in keep], self.size, self.platform,
                example_out_avals=[_tangent_struct(self.example_out_avals[j]) for j in keep],
                chunk_size=self.chunk_size, summed=[self.summed[j] for j in keep],
                what=f"JVP of {self.what}", axis_name=self.axis_name)
            fn.tangent_of = (self, nz)
            return fn
        return self._cached(("jvp", nz), build)

    def transpose(self) -> "BatchedFn":
        """For a tangent map: (primals..., cotangents of its results...) ->
        cotangents of its tangent arguments, one per lane."""
        fun, nz = self.tangent_of
        return self._cached("vjp", lambda: _cotangent_fn(fun, nz, self.size, self.platform))

    def linear_transpose(self, nz: tuple[bool, ...]) -> "BatchedFn":
        """This function's transpose in its arguments ``nz``, which jax found
        it linear in (a batch_lower call on tangents inside a custom_jvp
        rule): (arguments, zeros at ``nz``..., cotangents of its results...)
        -> cotangents of the ``nz`` arguments, one per lane. Traced with
        ``jax.linear_transpose``, which refuses a function that is not linear
        in them, as jax.vmap's transpose would."""
        return self._cached(("linear vjp", nz),
                            lambda: _cotangent_fn(self, nz, self.size, self.platform,
                                                  linear=True))

    def vmapped(self, avals, bdims, size) -> "BatchedFn":
        """This batched function, batched again (jax.vmap of it)."""
        example = tuple(ax.unbatched_struct(a, d) for a, d in zip(avals, bdims))
        key = ("vmap", example, tuple(bdims), size)

        def build():
            return BatchedFn(functools.partial(_bind, fun=self), example, bdims,
                             [0] * len(self.out_dims), size, self.platform,
                             what=f"jax.vmap of {self.what}", effects=self.effects)
        return self._cached(key, build)


def _without_arguments(src: Callable, avals: Sequence, kept: Sequence[int]) -> Callable:
    """``src`` (flat arguments) as a function of its arguments ``kept`` alone;
    the others, which it does not use, are zeros of their avals (any value
    would do; a PRNG key's dtype makes zero keys)."""
    avals = [_struct(a) for a in avals]

    def restricted(*flat):
        args = [None] * len(avals)
        for i, x in zip(kept, flat):
            args[i] = x
        return src(*[jnp.zeros(a.shape, a.dtype) if x is None else x
                     for x, a in zip(args, avals)])
    return restricted


def _differentiable(src, xs, idx, keep, axis_name):
    """``src`` as a function of the arguments ``idx`` alone (the others
    ``xs``), returning its results ``keep``; with ``axis_name``, marked for
    jax's differentiation of the collectives over the batch axis."""
    g = _restricted(src, xs, idx, keep)
    return g if axis_name is None else jax_internals.differentiated(g)


def _extrema(axis_name):
    """pmax / pmin over the batch axis differentiable while the per-example
    derivative is traced (jax has no JVP for them; jax.vmap's rule returns
    an unbatched operand as it is, so its grad never meets them)."""
    if axis_name is None:
        return contextlib.nullcontext()
    return jax_internals.differentiable_extrema(axis_name)

def _bind(*flat, fun: BatchedFn):
    return batched_call_p.bind(*flat, fun=fun)


def call(fun: BatchedFn, out_tree, *args, **kwargs):
    """Calls ``fun`` with a pytree of arguments, as ``Exported.call`` would."""
    leaves = tree_util.tree_leaves((args, kwargs))
    if fun.kept is not None:  # the arguments its module uses
        leaves = [leaves[i] for i in fun.kept]
    return tree_util.tree_unflatten(out_tree, batched_call_p.bind(*leaves, fun=fun))


def _cotangent_fn(fun: BatchedFn, nz, size, platform, *, linear: bool = False) -> BatchedFn:
    """(arguments of ``fun``..., cotangents of its inexact results...) ->
    cotangents of its arguments ``nz``, one per lane: the VJP of ``fun`` at
    the arguments (the transpose of its tangent map), or with ``linear``
    the transpose of ``fun`` itself in those arguments (they are then zeros)."""
    src, idx = fun.src, [i for i, z in enumerate(nz) if z]
    keep = [j for j, a in enumerate(fun.example_out_avals) if _inexact(a.dtype)]

    def cotangents(*flat):
        xs, cts = flat[:len(nz)], flat[len(nz):]
        g = _differentiable(src, xs, idx, keep, fun.axis_name)
        with _extrema(fun.axis_name):
            if linear:
                return list(jax.linear_transpose(g, *[xs[i] for i in idx])(list(cts)))
            try:
                return list(jax.vjp(g, *[xs[i] for i in idx])[1](list(cts)))
            except ValueError as e:
                if "Linearization failed" in str(e):
                    custom_vmap.refuse_reverse_mode(g, [xs[i] for i in idx], e)
                raise

    # A summed result's cotangent is the same for every lane; an
    # unbatched result's goes to lane 0 only.
    lane0 = tuple(fun.out_dims[j] is None and not fun.summed[j] for j in keep)
    ct_dims = tuple(None if fun.summed[j] else 0 if fun.out_dims[j] is None
                    else fun.out_dims[j] for j in keep)
    out = BatchedFn(
        cotangents, fun.example_avals + tuple(_tangent_struct(fun.example_out_avals[j])
                                              for j in keep),
        fun.dims + ct_dims,
        [0 if fun.dims[i] is None else fun.dims[i] for i in idx],
        size, platform,
        example_out_avals=[_tangent_struct(fun.example_avals[i]) for i in idx],
        chunk_size=fun.chunk_size, summed=[fun.dims[i] is None for i in idx],
        what=f"{'transpose' if linear else 'gradient'} of {fun.what}",
        axis_name=fun.axis_name)
    out.lane0 = lane0
    return out


# ---- the primitive's rules ----------------------------------------------------

def _abstract_eval(*avals, fun: BatchedFn):
    return fun.out_avals(avals), fun.effects


def _lower(*flat, fun: BatchedFn, devices=None):
    exp = fun.exported(devices)
    args, kwargs = tree_util.tree_unflatten(exp.in_tree, flat)
    return tree_util.tree_leaves(exp.call(*args, **kwargs))


def _zero(x):
    return ad.Zero(jax.typeof(x).to_tangent_aval())


def _jvp(primals, tangents, *, fun: BatchedFn):
    out = batched_call_p.bind(*primals, fun=fun)
    nz = tuple(type(t) is not ad.Zero and _inexact(p.dtype)
               for p, t in zip(primals, tangents))
    if not any(nz):
        return out, [_zero(o) for o in out]
    tangent_map = fun.tangent_map(nz)
    ts = iter(batched_call_p.bind(*primals, *[t for t, z in zip(tangents, nz) if z],
                                  fun=tangent_map))
    return out, [next(ts) if _inexact(o.dtype) else _zero(o) for o in out]


def _transpose(cts, *args, fun: BatchedFn):
    if fun.tangent_of is None:
        return _linear_transpose(cts, args, fun)
    n = len(fun.tangent_of[1])
    xs, ts = args[:n], args[n:]
    if any(ad.is_undefined_primal(x) for x in xs):
        raise NotImplementedError(f"the transpose of the JVP of {fun.what} needs its "
                                  "primal arguments")
    undefined = [ad.is_undefined_primal(t) for t in ts]
    if all(type(ct) is ad.Zero for ct in cts):
        return [None] * n + [ad.Zero(t.aval) if u else None for t, u in zip(ts, undefined)]
    vjp = fun.transpose()
    size = fun.batch_size([x.aval if ad.is_undefined_primal(x) else jax.typeof(x)
                           for x in args])
    if size == 0 and any(lane0 and type(ct) is not ad.Zero for ct, lane0 in zip(cts, vjp.lane0)):
        # A result with out_axes=None counts once; its cotangent rides on
        # lane 0, and at batch size 0 there is none.
        return [None] * n + _transpose_no_lanes(cts, xs, ts, undefined, fun, vjp.lane0)
    cts = [(jnp.zeros((size,) + ct.aval.shape, ct.aval.dtype) if type(ct) is ad.Zero
            else spread_to_lanes(ct, size)) if lane0 else ad.instantiate_zeros(ct)
           for ct, lane0 in zip(cts, vjp.lane0)]
    in_cts = batched_call_p.bind(*xs, *cts, fun=vjp)
    return [None] * n + [ct if u else None for ct, u in zip(in_cts, undefined)]


def _linear_transpose(cts, args, fun: BatchedFn):
    """The transpose of a batched call that jax found linear in its undefined
    arguments (a batch_lower call on tangents in a custom_jvp rule, which
    jax.grad transposes): the per-example function transposed in those
    arguments, batched (``BatchedFn.linear_transpose``)."""
    undefined = [ad.is_undefined_primal(a) for a in args]
    nz = tuple(u and _inexact(a.aval.dtype) for a, u in zip(args, undefined))
    zero_cts = [ad.Zero(a.aval) if u else None for a, u in zip(args, undefined)]
    if not any(nz) or all(type(ct) is ad.Zero for ct in cts):
        return zero_cts
    vjp = fun.linear_transpose(nz)
    # the cotangents of the inexact results, which the transpose takes
    cts = [ct for ct, a in zip(cts, fun.example_out_avals) if _inexact(a.dtype)]
    avals = [a.aval if u else jax.typeof(a) for a, u in zip(args, undefined)]
    size = fun.batch_size(avals)
    if size == 0:
        if any(lane0 and type(ct) is not ad.Zero for ct, lane0 in zip(cts, vjp.lane0)):
            raise UnsupportedOpError(
                batched_call_p.name, None, f"the batched call of {fun.what}",
                "the transpose at batch size 0 of a result with out_axes=None")
        return zero_cts  # no lane: batched results add nothing
    xs = [jnp.zeros(av.shape, av.dtype) if u else a
          for a, u, av in zip(args, undefined, avals)]
    cts = [(jnp.zeros((size,) + ct.aval.shape, ct.aval.dtype) if type(ct) is ad.Zero
            else spread_to_lanes(ct, size)) if lane0 else ad.instantiate_zeros(ct)
           for ct, lane0 in zip(cts, vjp.lane0)]
    in_cts = iter(batched_call_p.bind(*xs, *cts, fun=vjp))
    return [next(in_cts) if z else (ad.Zero(a.aval) if u else None)
            for a, u, z in zip(args, undefined, nz)]


def _transpose_no_lanes(cts, xs, ts, undefined, fun: BatchedFn, lane0) -> list:
    """The transpose at batch size 0 where results with out_axes=None have
    cotangents: as ``jax.vmap``, whose unbatched results are computed
    outside the batch, their cotangents reach the unbatched arguments; the
    batched arguments' cotangents are empty and the batched results, with
    no lane, add nothing. The unbatched results depend on no batched
    argument (else they could not be unbatched), so they are differentiated
    per example with a placeholder (zeros) for each batched argument.
    With a named axis an unbatched result may still read the (empty) batch
    through a collective: refused where it does, never a wrong value."""
    primal, nz = fun.tangent_of
    idx = [i for i, z in enumerate(nz) if z]
    keep = [j for j, a in enumerate(primal.example_out_avals) if _inexact(a.dtype)]
    unbatched = [k for k, l in enumerate(lane0) if l]
    example = [x if d is None else jnp.zeros(a.shape, a.dtype)
               for x, d, a in zip(xs, primal.dims, primal.example_avals)]
    g = _restricted(primal.src, example, idx, [keep[k] for k in unbatched])
    bound = contextlib.nullcontext()
    if primal.axis_name is not None:  # bound, to find whether g uses it
        bound = jax_internals.axis_bound(primal.axis_name, 1)
    with bound:
        if primal.axis_name is not None and primal.axis_name in jax_internals.named_axes_used(
                jax.make_jaxpr(g)(*[example[i] for i in idx])):
            raise UnsupportedOpError(
                batched_call_p.name, None, f"the batched call of {fun.what}",
                "the gradient of a result with out_axes=None at batch size 0 that a "
                f"collective over {primal.axis_name!r} computes (it would see no lane)")
        _, pull = jax.vjp(g, *[example[i] for i in idx])
        got = pull([ad.instantiate_zeros(cts[k]) for k in unbatched])
    out = []
    for i, ct, t, u in zip(idx, got, ts, undefined):
        if not u:
            out.append(None)
        elif primal.dims[i] is None:
            out.append(ct)
        else:  # a batched argument of 0 lanes
            out.append(jnp.zeros(t.aval.shape, t.aval.dtype))
    return out


def _batch(args, bdims, *, fun: BatchedFn):
    size = next(a.shape[d] for a, d in zip(args, bdims) if d is not None)
    avals = [jax.typeof(a) for a in args]
    inner = fun.vmapped(avals, tuple(bdims), size)
    out = batched_call_p.bind(*args, fun=inner)
    return out, [0] * len(out)


def _impl(*args, fun: BatchedFn):
    # Eager evaluation runs the compiled module, also under jax.disable_jit
    # (jax.grad's backward pass evaluates our transposes eagerly there), where
    # jit would call this impl again.
    with jax.disable_jit(False):
        return fun.jitted(*args)


_lower_rule = mlir.lower_fun(_lower, multiple_results=True)


def _lowering(ctx, *args, fun: BatchedFn):
    # Exported.call's lowering would initialize LAPACK for any CPU module
    # (~0.1 s once per process): only when the module calls it.
    devices = jax_internals.context_devices(ctx)
    exp = fun.exported(devices)
    if devices is not None and exp.nr_devices not in (1, devices):
        raise _device_count_error(exp, devices, fun)
    with jax_internals.lapack_unless_needed(exp.mlir_module_serialized):
        out = _inline_call(ctx, args, fun, exp)
        if out is not None:
            return out
        return _lower_rule(ctx, *args, fun=fun, devices=devices)


def _device_count_error(exp: jax.export.Exported, devices: int, fun: BatchedFn):
    """UnsupportedOpError naming the op of the per-example function that
    asks for ``exp.nr_devices`` devices (a ``with_sharding_constraint`` to a
    mesh of that many) and the user's line, for a call in a context of
    ``devices`` (jax's own error names neither)."""
    name, where = "sdy.sharding_constraint", "unknown"
    for e in _modules_of(fun, exp):
        m = module_io.parse_module(e.mlir_module_serialized)
        found = []

        def visit(op):
            if not found and (op.name in ("sdy.sharding_constraint", "sdy.reshard") or (
                    op.name == "stablehlo.custom_call" and "call_target_name" in op.attributes
                    and ir.StringAttr(op.attributes["call_target_name"]).value == "Sharding")):
                found.append(op)
            return ir.WalkResult.ADVANCE
        m.operation.walk(visit)
        if found:
            name, where = found[0].name, format_location(found[0].location)
            if where != "unknown":
                break
    return UnsupportedOpError(
        name, "main", where,
        f"a sharding constraint of {fun.what}'s function names a mesh of {exp.nr_devices} "
        f"devices, and the batched call runs in a context of {devices} (jax.vmap's jit "
        f"would run on the mesh's {exp.nr_devices}): call it with its arguments on those "
        "devices (jax.device_put(x, NamedSharding(mesh, P()))), or pass mesh= to batch_lower")


def _modules_of(fun: BatchedFn, exp):
    """``exp``, then the modules of the functions ``fun`` derives from (their
    source locations name the user's lines)."""
    yield exp
    inner = getattr(fun.src, "keywords", {}).get("fun")
    derived = False
    for f in (inner, fun.tangent_of[0] if fun.tangent_of else None):
        if isinstance(f, BatchedFn) and f._exported is not None:
            derived = True
            yield from _modules_of(f, f._exported)
    if not derived and fun.axis_name is None:
        try:  # the per-example module: the rewrite drops sharding constraints
            yield export_in_process(fun.src, fun.platform)(*fun.example_avals)
        except Exception:  # noqa: BLE001 -- only for the error's location
            return


def _inline_call(ctx, args, fun: BatchedFn, exp: jax.export.Exported):
    """The batched module merged into the caller's module and called
    (inline.merge_call), from the plain bytecode kept at build time; None
    where Exported.call's lowering is needed (or for the mesh-less rebuild)."""
    code = fun.module_bytecode if exp is fun._exported else None  # not the mesh-less rebuild
    return inline.merge_call(ctx, args, exp, code)


batched_call_p.def_impl(_impl)
batched_call_p.def_effectful_abstract_eval(_abstract_eval)
mlir.register_lowering(batched_call_p, _lowering)
ad.primitive_jvps[batched_call_p] = _jvp
ad.primitive_transposes[batched_call_p] = _transpose
batching.primitive_batchers[batched_call_p] = _batch


def flat_function(fn: Callable, in_tree) -> Callable:
    """``fn`` with its argument pytree flattened and its results flat."""
    def flat(*leaves):
        args, kwargs = tree_util.tree_unflatten(in_tree, leaves)
        return tree_util.tree_leaves(fn(*args, **kwargs))
    return flat
