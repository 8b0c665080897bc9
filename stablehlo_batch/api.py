"""The Python API: ``batch_lower`` (a jax.vmap that batches the lowered IR)
and ``batch_module`` (batch a StableHLO module given as text, bytecode or an
``ir.Module``).

``batch_lower`` exports the function for one example with ``jax.export``,
batches the module with the ``passes`` rewrite and wraps the result back into
a ``jax.export.Exported``, whose ``call`` compiles with XLA, runs directly and
composes with ``jax.jit``. Everything is cached per argument signature.
"""
from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import itertools
import operator
import os
import threading
import warnings
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
from jax import tree_util
from jaxlib.mlir import ir

from stablehlo_batch.passes.rules import RULES
from stablehlo_batch.passes.rules import table as rule_table
from stablehlo_batch import axes as ax
from stablehlo_batch import (callbacks, jax_internals, levels, module_io, named_axes,
                             primitive, sharding, tuning, vmappables, xla_compat)
from stablehlo_batch.flat import export_in_process, symbolic_size
from stablehlo_batch.passes.errors import UnsupportedOpError
from stablehlo_batch.passes.fallback import FallbackWarning, strict_mode
from stablehlo_batch.passes.report import BatchingReport
from stablehlo_batch.rewrite import batch_function
from stablehlo_batch.scaling import batch_with_options
from stablehlo_batch.selfcheck import check_call


# The functions we trace for the user run under our frames; jax's source
# locations (hence every error naming an op's line) skip them, as they skip
# jax's own, so they point at the user's code. The same for the tracebacks
# jax filters (JAX_TRACEBACK_FILTERING): an exception raised in the user's
# function shows the user's frames, not ours.
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
jax_internals.exclude_from_source_info(_PACKAGE_DIR)
jax_internals.exclude_from_tracebacks(_PACKAGE_DIR)


# jax's table of custom vmappable types (register_vmappable fills it in
# place): empty unless someone registered one, so a call checks it first.
_VMAPPABLE_TYPES = jax_internals.vmappable_types()


def _platform(backend: str | None) -> str:
    """The jax.export platform name for a backend name (None: the default)."""
    name = (backend or jax.default_backend()).lower()
    if name == "gpu":
        try:
            version = jax.devices("gpu")[0].client.platform_version.lower()
        except RuntimeError:
            version = ""
        return "rocm" if "rocm" in version else "cuda"
    return name


@dataclasses.dataclass
class _Plan:
    """Everything built for one argument signature."""
    exported: jax.export.Exported
    module: ir.Module
    result_batched: list[bool]
    rewrite_seconds: float
    call: Callable
    report: BatchingReport | None = None
    compiled: Any = None  # the executable, for host callbacks (no Exported then)
    traceable: bool = False  # exported.call may be traced inside another jit
    fn: Any = None  # primitive.BatchedFn: what jax's transformations see
    traced_call: Callable | None = None  # the call under outer transformations
    tuning: Any = None  # tuning.TuningResult, with tune=
    # (flat result, flat argument) pairs where the module returns the
    # argument unchanged: the call returns the argument object itself, as
    # jax.vmap does (its forwarded outputs are its inputs).
    forwards: tuple = ()


class Compiled:
    """An XLA executable of the batched function (mirrors jax.stages.Compiled)."""

    def __init__(self, compiled: jax.stages.Compiled, call: Callable | None = None):
        self._compiled = compiled
        # host callbacks: the executable takes and returns flat values (its
        # template's signature); ``call`` takes fn's arguments, returns fn's tree
        self._call = call or compiled

    def __call__(self, *args, **kwargs):
        return self._call(*args, **kwargs)

    def as_text(self) -> str:
        """XLA's optimized HLO."""
        return self._compiled.as_text()

    def cost_analysis(self):
        return self._compiled.cost_analysis()

    def memory_analysis(self):
        return self._compiled.memory_analysis()

    @property
    def in_tree(self):
        return self._compiled.in_tree

    @property
    def out_tree(self):
        return self._compiled.out_tree


class Lowered:
    """The batched StableHLO for one argument signature (mirrors jax.stages.Lowered)."""

    def __init__(self, plan: _Plan, args, kwargs):
        self._plan = plan
        self._args = args
        self._kwargs = kwargs

    @property
    def module(self) -> ir.Module:
        return self._plan.module

    @property
    def exported(self) -> jax.export.Exported:
        """The batched function as a ``jax.export.Exported``."""
        return self._plan.exported

    @property
    def rewrite_seconds(self) -> float:
        return self._plan.rewrite_seconds

    def as_text(self, debug_info: bool = False) -> str:
        return module_io.module_to_text(self._plan.module, debug_info=debug_info)

    def report(self):
        """What batching did (``passes.report.BatchingReport``): ops by rule,
        transposes and broadcasts inserted with their bytes, branches turned
        into selects, loops with a batched predicate, per-lane loops and
        fallbacks. ``print(lowered.report())`` for the text."""
        return self._plan.report

    def compile(self) -> Compiled:
        specs = tree_util.tree_map(
            lambda x: jax.ShapeDtypeStruct(jax.typeof(x).shape, jax.typeof(x).dtype,
                                           weak_type=jax.typeof(x).weak_type),
            (self._args, self._kwargs))
        args, kwargs = specs
        if self._plan.compiled is not None:  # host callbacks: already compiled
            return Compiled(self._plan.compiled, self._plan.call)
        return Compiled(self._plan.call.lower(*args, **kwargs).compile())


class _LRU:
    """A dict of at most ``maxsize`` entries (None: unbounded) that drops the
    least recently used first; safe to use from several threads."""

    def __init__(self, maxsize: int | None, on_evict: Callable[[], None] | None = None):
        self.maxsize = maxsize
        self._on_evict = on_evict
        self._d: collections.OrderedDict = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, key, default=None):
        with self._lock:
            value = self._d.get(key, default)
            if key in self._d:
                self._d.move_to_end(key)
            return value

    def __setitem__(self, key, value):
        with self._lock:
            self._d[key] = value
            self._d.move_to_end(key)
            while self.maxsize is not None and len(self._d) > max(self.maxsize, 0):
                self._d.popitem(last=False)
                if self._on_evict is not None:
                    self._on_evict()

    def __len__(self):
        return len(self._d)

    def clear(self):
        with self._lock:
            self._d.clear()

    def values(self):
        with self._lock:
            return list(self._d.values())


class CacheInfo(NamedTuple):
    """``BatchedFunction.cache_info()``, like ``functools.lru_cache``'s:
    ``misses`` counts the plans built (one batched module each), ``hits``
    the calls and ``lower``s that found theirs, ``currsize`` the plans kept."""
    hits: int
    misses: int
    maxsize: int | None
    currsize: int


class _NotTraceable(Exception):
    """Raised while jax.jit traces a call whose plan must be called directly."""


class _DisableJit(Exception):
    """Raised when jit, under jax.disable_jit, calls our function with arrays."""


class _NeedsTuning(Exception):
    """Raised while jax.jit traces a call whose plan (tune=) is not measured yet."""


class BatchedFunction:
    """What ``batch_lower`` returns: call it like ``jax.vmap(fn, ...)``."""

    def __init__(self, fn: Callable, in_axes, out_axes, axis_size: int | None,
                 backend: str | None, strict: bool = False, check: bool = False,
                 cache_size: int | None = 256, scale_options: dict | None = None,
                 axis_name=None, tune=None):
        if not callable(fn):
            raise TypeError(f"batch_lower requires a callable, got {fn!r}")
        self.fn = fn
        self.in_axes = ax.canonicalize_in_axes(in_axes)
        ax.check_out_axes(out_axes)
        self.out_axes = out_axes
        # A name ("b") asks for one module for every batch size (symbolic).
        self.symbolic = axis_size if isinstance(axis_size, str) else None
        self.axis_size, self._axis_size_error = _check_axis_size(
            None if self.symbolic else axis_size)
        self.backend = backend
        self.axis_name = axis_name  # bound for collectives inside fn (named_axes.py)
        self.strict = bool(strict)
        self.check = bool(check)
        self.cache_size = cache_size
        # chunk_size / memory_limit_bytes / mesh / axis_name (export.batch_with_options)
        self._scale_options = dict(scale_options or {})
        self.tune = None  # chunk sizes to try against the full batch (tuning.py)
        if tune is not False and tune is not None:
            self.tune = tuning.canonicalize_tune(tune, self._scale_options, self.symbolic)
        # tune=None (the default): the static cost model (costmodel.py) picks the
        # full batch or a loop; tune=False: always the full batch. Not with the
        # scaling options (they fix the strategy), a symbolic size or axis_name
        # (collectives couple the lanes: the full batch).
        self._cost_model = (tune is None and not self._scale_options and not self.symbolic
                            and axis_name is None)
        # Calls go through jax.jit's own dispatch, which looks the signature
        # up in C++: a cached call costs what a call of jax.jit(jax.vmap(f))
        # does plus one Python frame (__call__'s checks: top-level trace,
        # the rules' generation). Plans whose call cannot be traced (chunked
        # or sharded calls, host callbacks) are called directly instead.
        # Evicting a plan also drops jit's executables, so cache_size bounds
        # those too. Each generation of the rule table has its own jit
        # (_dispatcher): registering a rule makes the next call build (and
        # jit trace) again, and a context with other rules never sees these
        # executables; nothing about the rules goes through jit's key.
        self._dispatchers = _LRU(_DISPATCHERS_KEPT)
        self._fast = None  # (*RULES.snapshot(), jit) of the hot path, or None
        self._plans = _LRU(cache_size, on_evict=self._clear_dispatch)
        self._by_signature = _LRU(cache_size)
        # per-example exports of self.fn, shared by plans that differ only in
        # the batch size (or the rules): _example_export
        self._exports = _LRU(_EXPORTS_KEPT)
        # calls with registered vmappable types: their flat functions' batch_lowers
        # by the flat function's jaxpr (vmappables.call)
        self._vmappable_plans = _LRU(cache_size)
        self._lock = threading.Lock()
        self._direct = bool(self._scale_options)
        self._static_seen = False
        self._forwarding = False  # some plan returns an argument unchanged
        self._count_lock = threading.Lock()
        self._calls = itertools.count()  # next() is atomic: no lock per call
        self._misses = 0
        functools.update_wrapper(self, fn, updated=())
        # jax.vmap's docstring form (jax/_src/api.py)
        name = jax_internals.fun_name(fn)
        self.__name__ = name
        self.__doc__ = (f"Vectorized version of {name}. Takes similar arguments as {name} "
                        f"but with additional array axes over which {name} is mapped.")
        if getattr(fn, "__doc__", None):
            self.__doc__ += "\n\nOriginal documentation:\n\n" + fn.__doc__

    def __call__(self, *args, **kwargs):
        # The hot path: a signature jit has compiled, at the top level, with
        # the rules of the last call. Anything else (a first call, an outer
        # trace, static arguments, tune=, check=, ...) goes through _call.
        fast = self._fast
        if (fast is not None and _TRACE.value is _EVAL_TRACE and _AXES.value is _NO_AXES
                and fast[0] is _RULE_CONTEXT.get() and fast[1] is RULES.own_layers
                and fast[3] == _PRNG_IMPL.value and not _VMAPPABLE_TYPES):
            try:
                out = fast[2](*args, **kwargs)
            except (_NotTraceable, _NeedsTuning, TypeError) as e:
                return self._after_dispatch(e, fast[2], args, kwargs)
            except _DisableJit:
                return self._slow_call(args, kwargs)
            next(self._calls)
            if self._forwarding:  # a plan traced by this call forwards an argument
                self._fast = None
                return self._forward_inputs(args, kwargs, out)
            return out
        return self._slow_call(args, kwargs)

    def _slow_call(self, args, kwargs):
        if _VMAPPABLE_TYPES and vmappables.involved(
                self.in_axes, self.out_axes, args, kwargs):
            return vmappables.call(self.fn, self.in_axes, self.out_axes, self.axis_size,
                                   args, kwargs, self._flat_batched,
                                   cache=self._vmappable_plans)
        if self.axis_name is None:
            if not jax_internals.enclosing_axis_names():
                return self._call(args, kwargs)
            try:
                return self._call(args, kwargs)
            except named_axes.UsesEnclosingAxis:
                # fn's collectives name an enclosing batch's axis: its module
                # cannot be batched on its own (named_axes.vmap_inside).
                return named_axes.vmap_inside(self, args, kwargs)
        if jax_internals.enclosing_axis_names():
            # Inside another named batch (an outer batch_lower or jax.vmap
            # with an axis_name): fn's collectives may span both axes, so it
            # is traced into the enclosing function (named_axes.vmap_inside).
            return named_axes.vmap_inside(self, args, kwargs)
        try:
            return self._call(args, kwargs)
        except NameError as e:  # a collective over an enclosing batch's name
            if not named_axes.bound_outside(e):
                raise
            return named_axes.vmap_inside(self, args, kwargs)

    def _flat_batched(self, fn, in_axes, out_axes, axis_size):
        """A batch_lower of ``fn`` with this one's options (vmappables.py)."""
        return BatchedFunction(fn, in_axes, out_axes, axis_size, self.backend, self.strict,
                               check=self.check, cache_size=self.cache_size,
                               scale_options=self._scale_options, axis_name=self.axis_name)

    def _call(self, args, kwargs):
        if self._axis_size_error:
            raise TypeError(self._axis_size_error)
        if jax.config.jax_disable_jit:
            # jax.disable_jit: the batched executable still runs (jax.jit of
            # our own call would otherwise re-enter the primitive's impl
            # forever); fn itself is traced once, as for any plan.
            with jax.disable_jit(False):
                return self(*args, **kwargs)
        if not jax_internals.is_top_level_trace():
            # Under jit / grad / vmap / scan / ...: fn may close over values
            # of those traces; they become arguments of the plan.
            plan, call_args = self._general_plan(args, kwargs, traced=True)
            next(self._calls)
            if plan.fn is not None and "mesh" in self._scale_options and \
                    jax_internals.is_tracing_to_batch():
                # Traced to be batched (inside an outer batch_lower): the
                # call without the mesh's shardings, as under an outer
                # jax.vmap; its lowering there uses the module built again
                # without the mesh (primitive.BatchedFn.exported).
                return primitive.call(plan.fn, plan.exported.out_tree, *call_args)
            return (plan.traced_call or plan.call)(*call_args)
        # Python scalars under in_axes=None reach fn as they are under vmap,
        # but the dispatch traces them (weakly typed, as jax.jit does): one
        # plan for every value. A function that needs them concrete raises a
        # TypeError there and the call then takes the static path (a plan
        # per value); one that does not gives the same values either way.
        # A plan the dispatch cannot call (host callbacks, ...) is called
        # directly with the scalars as those same arrays (_plan_and_args):
        # the first call builds one plan.
        if not (self._direct or self.check) and not (
                self._static_seen and not _all_jax_values((args, kwargs))):
            rules = RULES.snapshot()
            prng = _PRNG_IMPL.value
            dispatch = self._dispatcher((RULES.generation_of(rules), prng))
            try:
                out = dispatch(*args, **kwargs)
            except (_NotTraceable, _NeedsTuning, TypeError) as e:
                return self._after_dispatch(e, dispatch, args, kwargs)
            next(self._calls)
            if self._forwarding:  # not on the hot path: the argument objects
                return self._forward_inputs(args, kwargs, out)
            if not (self._direct or self.check or self._static_seen):
                self._fast = (*rules, dispatch, prng)
            return out
        return self._call_plan(args, kwargs)

    def _dispatcher(self, generation):
        """The jax.jit of ``_traced_call`` for the rules of ``generation``
        and the default PRNG implementation (a trace reads it, but jax.jit
        does not key its cache on it: one jit per implementation)."""
        dispatch = self._dispatchers.get(generation)
        if dispatch is None:
            with self._lock:
                dispatch = self._dispatchers.get(generation)
                if dispatch is None:
                    dispatch = jax.jit(self._traced_for_jit())
                    self._dispatchers[generation] = dispatch
        return dispatch

    def _traced_for_jit(self):
        """A new function for a new jax.jit (jax caches traces by the
        function: one per generation keeps their traces apart)."""
        def batch_lower_call(*args, **kwargs):
            if jax.config.jax_disable_jit and jax_internals.is_top_level_trace():
                # jax.disable_jit: jit calls us with the arrays. The batched
                # executable still runs (tracing here would re-enter the
                # primitive's impl forever): _call handles it.
                raise _DisableJit()
            return self._traced_call(*args, **kwargs)
        return batch_lower_call

    def _clear_dispatch(self):
        for dispatch in self._dispatchers.values():
            dispatch.clear_cache()

    def _after_dispatch(self, e, dispatch, args, kwargs):
        """A dispatch whose trace raised ``e``: the call by another route."""
        if isinstance(e, _NotTraceable):
            self._direct = True
            self._fast = None
        elif isinstance(e, _NeedsTuning):  # tune=: measure on these arrays first
            if not tuning.is_concrete((args, kwargs)):  # inside an outer jit
                with tuning.allow_untuned():
                    return self._traced_call(*args, **kwargs)
            # measures (Python scalars under in_axes=None as the dispatch
            # traced them, unless fn needs them concrete: then static)
            _, _, static = self._plan_and_args(args, kwargs, concrete=True)
            if static:  # some argument is static: the static path's plan
                self._static_seen = True
                self._fast = None
            else:
                # jit's C++ cache sends a signature whose trace raised to the
                # Python path for good (~0.3 ms a call): start it afresh.
                getattr(dispatch, "_clear_cache", lambda: None)()
                out = dispatch(*args, **kwargs)
                next(self._calls)
                if self._forwarding:  # the argument objects, as on every other call
                    return self._forward_inputs(args, kwargs, out)
                return out
        else:
            # TypeError, e.g. a non-array argument (static when its in_axes
            # is None): later calls check their leaves first, since jit's
            # TypeError costs milliseconds.
            self._static_seen = True
            self._fast = None
        return self._call_plan(args, kwargs)

    def _call_plan(self, args, kwargs):
        """The call without jit's dispatch: the plan's own call."""
        try:
            plan, call_args, static = self._plan_and_args(args, kwargs, concrete=True)
        except _NeedsTuning:  # traced arguments: the record or the full batch
            with tuning.allow_untuned():
                plan, call_args, static = self._plan_and_args(args, kwargs)
        out = plan.call(*call_args[0], **call_args[1])
        if self.check and not static and not getattr(plan, "checked", False):
            check_call(self, *call_args, out)
            plan.checked = True
        if plan.forwards:  # the argument objects themselves (a Python scalar too)
            out = _forward(plan.forwards, tree_util.tree_leaves(
                call_args if static else (args, kwargs)), out)
        next(self._calls)
        return out

    def _forward_inputs(self, args, kwargs, out):
        """``out`` with the results that the plan of these arguments
        forwards unchanged replaced by the argument objects."""
        leaves, in_tree = tree_util.tree_flatten((args, kwargs))
        try:
            avals = tuple(ax.aval_of(x) for x in leaves)
        except TypeError:
            return out
        plan = self._by_signature.get((in_tree, avals, RULES.generation,
                                       jax_internals.trace_context()))
        if plan is None or not plan.forwards:
            return out
        return _forward(plan.forwards, leaves, out)

    def cache_info(self) -> CacheInfo:
        """Hits, misses, maxsize (``cache_size``) and current size of the
        per-signature cache of batched modules, as ``functools`` reports them."""
        with self._count_lock:
            calls, misses = _count_of(self._calls), self._misses
        return CacheInfo(max(calls - misses, 0), misses, self.cache_size, len(self._plans))

    def cache_clear(self):
        """Drops every cached plan (and jax.jit's executables of them) and
        resets the statistics."""
        with self._lock:
            self._plans.clear()
            self._by_signature.clear()
            self._exports.clear()
            self._vmappable_plans.clear()
            self._clear_dispatch()
            with self._count_lock:
                self._calls = itertools.count()
                self._misses = 0

    def _traced_call(self, *args, **kwargs):
        plan = self._plan_for(args, kwargs)
        if not plan.traceable:
            raise _NotTraceable()
        if plan.tuning is not None and plan.tuning.pending:
            if not tuning.untuned_ok():
                raise _NeedsTuning()
        if plan.fn is None:
            return plan.exported.call(*args, **kwargs)
        if plan.exported.nr_devices > 1 and not plan.fn.meshed:
            # fn's sharding constraints name N devices: the plan's own call
            # puts the arguments there (jit's dispatch would run on theirs)
            raise _NotTraceable()
        return primitive.call(plan.fn, plan.exported.out_tree, *args, **kwargs)

    def lower(self, *args, **kwargs) -> Lowered:
        if self._axis_size_error:
            raise TypeError(self._axis_size_error)
        with tuning.allow_untuned():  # lowering runs nothing: tune= measures on a call
            plan, (args, kwargs), _ = self._plan_and_args(args, kwargs)
        next(self._calls)
        return Lowered(plan, args, kwargs)

    def _plan_and_args(self, args, kwargs, concrete: bool = False):
        """The plan, the (args, kwargs) to call it with and whether some
        argument is static: the arguments as they are; with Python scalars
        under in_axes=None, those as the (weakly typed) arrays the dispatch's
        jax.jit traces them as, so the plan the dispatch built (or would
        build) serves every value of them; the flat array leaves when some
        argument is static (not a JAX value, or a scalar ``fn`` needs
        concrete)."""
        try:
            return self._plan_for(args, kwargs, concrete=concrete), (args, kwargs), False
        except _HasStatic:
            pass
        scalars = self._scalars_as_arrays(args, kwargs)
        if scalars is not None:
            try:
                return self._plan_for(*scalars, concrete=concrete), scalars, False
            except TypeError:
                # fn needs them concrete (``jnp.tile(x, n)``, ``if flag:``):
                # static from now on, as after the dispatch's TypeError
                self._static_seen = True
                self._fast = None
        plan, flat = self._general_plan(args, kwargs, traced=False)
        return plan, (flat, {}), True

    def _scalars_as_arrays(self, args, kwargs):
        """``(args, kwargs)`` with each Python scalar leaf as the array
        jax.jit makes of it (``jnp.asarray``: ``~float32[]`` for a float, a
        weak type as jit's), or None where the call must take the static
        path: no Python scalar, another non-JAX leaf, or ``fn`` has needed
        a scalar concrete before (``_static_seen``)."""
        if self._static_seen:
            return None
        leaves = tree_util.tree_leaves((args, kwargs))
        if not any(ax.is_static_scalar(x) for x in leaves) or not all(
                ax.is_static_scalar(x) or ax.is_jax_value(x) for x in leaves):
            return None
        return tree_util.tree_map(
            lambda x: jnp.asarray(x) if ax.is_static_scalar(x) else x, (args, kwargs))

    # ---- building ----------------------------------------------------------
    def _plan_for(self, args, kwargs, concrete: bool = False) -> _Plan:
        if isinstance(self.in_axes, tuple) and len(self.in_axes) != len(args):
            raise ValueError(
                "batch_lower in_axes must be an int, None, or a tuple of entries "
                "corresponding to the positional arguments passed to the function, "
                f"but got len(in_axes)={len(self.in_axes)}, len(args)={len(args)}")
        leaves, in_tree = tree_util.tree_flatten((args, kwargs))
        try:
            avals = tuple(ax.aval_of(x) for x in leaves)
        except TypeError:
            raise _HasStatic() from None
        if any(type(x) in ax.PYTHON_SCALARS for x in leaves):
            raise _HasStatic()
        rules = RULES.generation  # plans depend on the rules in force here
        # ... and on jax's trace configuration (x64, matmul precision, rank
        # promotion, PRNG implementation, ...): what jax.jit keys its own
        # traces on, so a plan traced under other settings is never reused
        context = jax_internals.trace_context()
        plan = self._by_signature.get((in_tree, avals, rules, context))
        # concrete: arguments to measure a plan with tune= on, if it needs that
        retune = concrete and self.tune is not None
        if plan is not None and not (retune and plan.tuning is not None and plan.tuning.pending):
            return plan  # the hot path: one dict lookup per call
        dims = ax.flatten_axes("batch_lower in_axes", in_tree, (self.in_axes, 0))
        dims, size = ax.normalize_in_axes(self.fn, in_tree, [a.shape for a in avals],
                                          avals, dims, self.axis_size)
        platform = _platform(self.backend)
        key = (in_tree, avals, tuple(dims), size, platform, rules, context)
        # A symbolic size is a jax.export dimension variable, which is >= 1:
        # batch size 0 gets a plan of its own (a concrete size).
        symbolic = self.symbolic if size != 0 else None
        if symbolic:  # one plan, whatever the batch size
            key = (in_tree, tuple(a if d is None else a.update(shape=a.shape[:d] + a.shape[d + 1:])
                                  for a, d in zip(avals, dims)), tuple(dims), None, platform,
                   rules, context)
        def stale(plan):
            return plan is None or (retune and plan.tuning is not None and plan.tuning.pending)
        plan = self._plans.get(key)
        if stale(plan):
            with self._lock:
                plan = self._plans.get(key)
                if stale(plan):
                    with strict_mode(self.strict):
                        plan = self._build(in_tree, avals, dims, size, platform,
                                           leaves=leaves if retune else None,
                                           symbolic=symbolic)
                    self._plans[key] = plan
                    with self._count_lock:
                        self._misses += 1
        self._by_signature[(in_tree, avals, rules, context)] = plan
        return plan

    def _build(self, in_tree, avals, dims, size, platform, fn=None, leaves=None,
               symbolic=None) -> _Plan:
        """The plan for ``fn`` (default: the user's function) called with
        arguments of tree ``in_tree`` and avals ``avals`` (batched along
        ``dims``); ``leaves``: concrete arguments to measure ``tune=`` on;
        ``symbolic``: the name of a symbolic batch size (None: ``size``)."""
        src = ax.checking_outputs(self.fn if fn is None else fn)
        ex_args, ex_kwargs = tree_util.tree_unflatten(
            in_tree, [ax.unbatched_struct(a, d) for a, d in zip(avals, dims)])
        try:
            if self.axis_name is not None:
                exp = named_axes.export_named(src, ex_args, ex_kwargs, self.axis_name,
                                              symbolic_size(symbolic) if symbolic else size,
                                              platform)
            elif fn is None:
                exp = self._example_export(src, symbolic, in_tree, ex_args, ex_kwargs, platform)
            else:
                exp = export_in_process(src, platform, keep_unused=bool(symbolic))(
                    *ex_args, **ex_kwargs)
        except NotImplementedError as e:
            if not callbacks.needs_callback_route(e):
                raise
            if size is None:  # a symbolic size (static path): the callback
                # route is per batch size, and these avals carry it
                size = next(a.shape[d] for a, d in zip(avals, dims) if d is not None)

            def build_at(avals, size):
                return callbacks.build(src, in_tree, avals, dims, size, platform,
                                       self.out_axes, axis_name=self.axis_name)
            cb = build_at(avals, size)
            call = cb.call
            if symbolic:  # the plan serves every batch size: one executable per size
                call = callbacks.per_size(cb, build_at, avals, dims, size)
            return _Plan(None, cb.module, cb.result_batched, cb.rewrite_seconds,
                         call, cb.report, compiled=cb.compiled,
                         forwards=self._forwards(src, cb.forwarded, ex_args, ex_kwargs, size))
        out_dims = ax.flatten_axes("batch_lower out_axes", exp.out_tree, self.out_axes)
        if symbolic:  # the one of the module's avals (named_axes: lane-count dims)
            size = next((d for a in exp.out_avals for d in a.shape if not isinstance(d, int)),
                        None)
            if size is None:
                size = symbolic_size(symbolic)
        tuned = None
        if self.tune is not None:  # full batch or chunks, by measurement (tuning.py)
            try:
                built, tuned = tuning.select(exp, dims, out_dims, size, platform,
                                             args=leaves, chunks=self.tune, what="batch_lower",
                                             coupled=self.axis_name is not None)
            except tuning.NeedsArguments:
                raise _NeedsTuning() from None
            if built.report is not None:
                built.report.tuning = tuned
        else:
            built = batch_with_options(exp, dims, out_dims, size, what="batch_lower",
                                       **self._scale_options)
            if (self._cost_model and isinstance(size, int) and not exp.ordered_effects
                    and not exp.unordered_effects):
                built, tuned = tuning.by_model(exp, dims, out_dims, size, platform, built)
                if built.report is not None:
                    built.report.tuning = tuned
        batched, module = built.exported, built.module
        result_batched, rewrite_seconds = built.result_batched, built.rewrite_seconds
        fn, call = None, built.call
        if (call is None or built.shardings) and not exp.ordered_effects:
            # Our own primitive, so that jax.jvp, jax.grad and jax.vmap see
            # through the call (stablehlo_batch/primitive.py).
            fn = primitive.BatchedFn(
                primitive.flat_function(src, in_tree),
                tree_util.tree_leaves((ex_args, ex_kwargs)), dims, out_dims, size, platform,
                exported=batched, example_out_avals=exp.out_avals,
                chunk_size=built.chunk_size, effects=exp.unordered_effects,
                axis_name=self.axis_name, module=module, meshed=bool(built.shardings),
                drop_unused=True)
            in_sh, out_sh = built.shardings or (None, None)
            # With a mesh, the shardings of the call's jit put the batch axis
            # on the devices; derivative modules inherit it by propagation.
            shardings = {} if in_sh is None else dict(in_shardings=in_sh, out_shardings=out_sh)
            if in_sh is None and batched.nr_devices > 1:
                # fn's own sharding constraints name N devices (a
                # with_sharding_constraint to a mesh of N): jax.vmap's jit runs
                # on those; ours puts the arguments on N devices too
                shardings = sharding.replicated_on(batched.nr_devices, platform)
            call = jax.jit(functools.partial(primitive.call, fn, batched.out_tree), **shardings)
        return _Plan(batched, module, result_batched, rewrite_seconds,
                     call or jax.jit(batched.call), built.report,
                     traceable=built.call is None,
                     fn=fn, tuning=tuned,
                     forwards=self._forwards(src, built.forwarded, ex_args, ex_kwargs, size))

    def _forwards(self, src, candidates, ex_args, ex_kwargs, size) -> tuple:
        """The (flat result, flat argument) pairs of ``candidates`` -- those
        the per-example module returns unchanged, the batch at the same place
        (``module_io.forwarded_arguments``) -- that ``fn``'s jaxpr forwards
        too: jax.vmap returns those input objects themselves. A copy
        (``jnp.array(x, copy=True)``) lowers to nothing but is a new array
        under vmap. Read from the per-example module, so every way the plan
        is built (the full batch, chunks, a lane loop, a mesh, a symbolic
        size, host callbacks) forwards the same results."""
        if not candidates:
            return ()
        bound = contextlib.nullcontext()
        if self.axis_name is not None:  # fn's collectives trace as under vmap
            bound = jax_internals.axis_bound(
                self.axis_name, max(size, 1) if isinstance(size, int) else 2)
        with bound:
            jaxpr = jax.jit(src).trace(*ex_args, **ex_kwargs).jaxpr.jaxpr
        forwards = tuple((j, i) for j, i in candidates
                         if jaxpr.outvars[j] is jaxpr.invars[i])
        self._forwarding = self._forwarding or bool(forwards)
        return forwards


    def _example_export(self, src, symbolic, in_tree, ex_args, ex_kwargs, platform):
        """The user's function exported for one example, kept across plans:
        a plan for another batch size (or the same signature with other
        rules, or tune='s measured rebuild) has the same per-example module,
        so only the rewrite and the compile are paid again. Keyed by what
        the trace depends on: the pytree, the per-example avals, the
        platform and jax's trace configuration (x64, precision, ...)."""
        leaves = tree_util.tree_leaves((ex_args, ex_kwargs))
        key = (in_tree, tuple((tuple(x.shape), x.dtype, x.weak_type) for x in leaves),
               platform, bool(symbolic), jax_internals.trace_context())
        exp = self._exports.get(key)
        if exp is None:
            exp = export_in_process(src, platform, keep_unused=bool(symbolic))(
                *ex_args, **ex_kwargs)
            self._exports[key] = exp
        return exp

    def _general_plan(self, args, kwargs, *, traced: bool):
        """The plan for a call with static (non-array, ``in_axes=None``)
        arguments and/or, when ``traced``, values closed over from outer
        traces, and the flat arguments to call it with.

        Static arguments are baked into the plan: the key holds them by
        value when hashable, else by identity (the plan keeps them alive).
        When ``traced``, ``fn`` is traced to a jaxpr at the per-example avals;
        every constant of that jaxpr -- the tracers of outer transformations
        and concrete arrays alike -- becomes an unbatched argument, so the
        plan is keyed by the jaxpr's text and the constants' avals, never by
        their values, and one plan serves every value they take."""
        if isinstance(self.in_axes, tuple) and len(self.in_axes) != len(args):
            self._plan_for(args, kwargs)  # raises vmap's error
        leaves, in_tree = tree_util.tree_flatten((args, kwargs))
        dims = ax.flatten_axes("batch_lower in_axes", in_tree, (self.in_axes, 0))
        static = [d is None and (ax.is_static_scalar(x) or not ax.is_jax_value(x))
                  for x, d in zip(leaves, dims)]
        avals = ax.avals_of(self.fn, in_tree, leaves, static)
        shapes = [() if a is None else a.shape for a in avals]
        dims, size = ax.normalize_in_axes(self.fn, in_tree, shapes, avals, dims,
                                          self.axis_size)
        platform = _platform(self.backend)
        dyn = [i for i, s in enumerate(static) if not s]
        dyn_avals = tuple(avals[i] for i in dyn)
        dyn_dims = tuple(dims[i] for i in dyn)
        static_vals = {i: leaves[i] for i, s in enumerate(static) if s}
        static_key = tuple((i, _static_key(x)) for i, x in static_vals.items())
        fn = self.fn

        def src(*dyn_leaves):
            full = list(leaves)
            for i, x in zip(dyn, dyn_leaves):
                full[i] = x
            a, k = tree_util.tree_unflatten(in_tree, full)
            return fn(*a, **k)

        symbolic = self.symbolic if size != 0 else None  # as in _plan_for
        if symbolic:
            size = None
        consts = []
        # A symbolic size: one plan for every batch size (as in _plan_for),
        # so the key holds the per-example avals
        key_avals = dyn_avals if not symbolic else tuple(
            a if d is None else a.update(shape=a.shape[:d] + a.shape[d + 1:])
            for a, d in zip(dyn_avals, dyn_dims))
        key = ("static", in_tree, static_key, key_avals, dyn_dims, size, platform,
               RULES.generation, jax_internals.trace_context())
        if traced:
            examples = [ax.unbatched_struct(a, d) for a, d in zip(dyn_avals, dyn_dims)]
            bound = contextlib.ExitStack()
            if self.axis_name is not None and symbolic:
                # the size jax.vmap would bind, pmean's divisor as a collective
                # (named_axes.export_named)
                bound.enter_context(jax_internals.axis_bound(
                    self.axis_name, symbolic_size(symbolic)))
                bound.enter_context(jax_internals.traced_axis_size(self.axis_name))
            elif self.axis_name is not None:  # at size 0: the one lane it is lowered for
                bound.enter_context(jax_internals.axis_bound(self.axis_name, max(size, 1)))
                if size == 0:  # ... and the lane count (pmean's divisor) read as 0
                    bound.enter_context(jax_internals.traced_axis_size(self.axis_name))
            bound.enter_context(jax_internals.tracing_to_batch())
            with bound:  # collectives over our own axis trace like under vmap
                try:
                    closed, out_shape = jax.make_jaxpr(ax.checking_outputs(src),
                                                       return_shape=True)(*examples)
                except NameError:
                    raise
                except Exception as e:
                    if self.axis_name is not None and symbolic:
                        # jax's error where a collective's shape needs the number
                        # of lanes (an all_to_all of 8 over "b" lanes), as
                        # named_axes.export_named notes it at a placeholder count
                        e.add_note(f"(while tracing at the symbolic batch size: axis_name="
                                   f"{self.axis_name!r} with a symbolic axis_size takes "
                                   "collectives whose shapes and constants need at most the "
                                   "number of lanes as a dimension; docs/named-axes.md)")
                    raise
            if self.axis_name is None:
                named_axes.check_enclosing_axes(closed, None)
            consts = list(closed.consts)
            out_tree = tree_util.tree_structure(out_shape)
            jaxpr = closed.jaxpr
            const_avals = tuple(jax.typeof(c) for c in consts)
            key = ("traced", in_tree, static_key, key_avals, dyn_dims, size, platform,
                   RULES.generation, str(jaxpr), const_avals, out_tree,
                   jax_internals.trace_context())
            n = len(consts)
            lane_shaped = (self.axis_name is not None and symbolic and
                           jax_internals.symbolic_shaped_eqn(jaxpr))
            if lane_shaped and n:  # the jaxpr holds the symbolic size, and its
                # constants are tracers the function cannot be traced again without
                name, where = lane_shaped
                raise UnsupportedOpError(
                    name, "main", where,
                    f"{name} over a symbolic batch size in a function that closes over "
                    "traced values (a transformation's tracers): its per-example shape has "
                    "the batch size, and such a function cannot be lowered again at a "
                    "concrete number of lanes (pass a static axis_size, or those values as "
                    "arguments)")
            if not lane_shaped:
                def src(*flat):  # noqa: F811 -- the jaxpr, its constants as arguments
                    outs = jax.core.eval_jaxpr(jaxpr, flat[:n], *flat[n:])
                    return tree_util.tree_unflatten(out_tree, outs)
            # else: a collective's shape has the symbolic size (all_gather): the
            # function itself (it closes over no tracer) is lowered at each
            # placeholder lane count (named_axes.export_named)

            dyn_avals = const_avals + dyn_avals
            dyn_dims = (None,) * n + dyn_dims
        call_args = [*consts, *(leaves[i] for i in dyn)]
        plan = self._plans.get(key)
        if plan is None:
            shared_key = self._shared_key(key) if traced else None
            flat_tree = tree_util.tree_structure((tuple(call_args), {}))
            with self._lock:
                plan = self._plans.get(key)
                if plan is None and shared_key is not None:
                    plan = _SHARED_PLANS.get(shared_key)
                if plan is None:
                    # Static or closed-over arguments: tune= has no concrete
                    # batch to measure on here, so the record or the full batch.
                    with strict_mode(self.strict), tuning.allow_untuned():
                        plan = self._build(flat_tree, dyn_avals, list(dyn_dims),
                                           size, platform, fn=src, symbolic=symbolic)
                    # the static values stay alive: their ids stay unique
                    plan.static = static_vals
                    if traced and plan.compiled is not None:
                        # Host callbacks: the executable cannot be traced
                        # (callbacks.py); under a transformation the lanes
                        # run one by one in a jax loop instead.
                        plan.traced_call = functools.partial(
                            _lane_loop, src, list(dyn_dims), plan.result_batched,
                            ax.flatten_axes("batch_lower out_axes", out_tree,
                                            self.out_axes), size)
                    if shared_key is not None:
                        _SHARED_PLANS[shared_key] = plan
                    with self._count_lock:
                        self._misses += 1
                self._plans[key] = plan
        return plan, call_args

    def _shared_key(self, key):
        """The key of a traced plan across ``batch_lower`` objects, or None.

        ``jax.grad(lambda w: batch_lower(lambda x: x @ w)(xs).sum())`` makes
        a new ``batch_lower`` of a new lambda at every step; its plans are
        shared by the code of the function (same code, same jaxpr text, same
        options: same module), so a step does not rebuild and recompile."""
        code = _code_of(self.fn)
        if code is None:
            return None
        out_leaves, out_tree = tree_util.tree_flatten(self.out_axes,
                                                      is_leaf=lambda x: x is None)
        shared = (code, tuple(out_leaves), out_tree, self.symbolic, self.strict,
                  tuple(sorted(self._scale_options.items())), key)
        try:
            hash(shared)
        except TypeError:
            return None
        return shared


# Plans of functions traced under outer transformations, shared across
# BatchedFunction objects (BatchedFunction._shared_key).
_SHARED_PLANS = _LRU(256)


def _code_of(fn):
    """The code object behind ``fn`` (a function, method, partial or callable
    object), or None."""
    for _ in range(8):
        if isinstance(fn, functools.partial):
            fn = fn.func
            continue
        code = getattr(fn, "__code__", None)
        if code is not None:
            return code
        call = getattr(type(fn), "__call__", None)
        code = getattr(call, "__code__", None)
        return None if code is None else (type(fn), code)
    return None


def _lane_loop(src, dims, result_batched, out_dims, size, *flat):
    """``src`` (flat arguments, pytree result) batched as a ``lax.map`` over
    the lanes: for functions with host callbacks under jax's transformations,
    where their batched executable cannot be traced."""
    warnings.warn("batch_lower of a function with host callbacks under jax.jit / "
                  "jax.grad / jax.vmap runs once per lane in a loop (lax.map)",
                  FallbackWarning, stacklevel=4)
    batched = [i for i, d in enumerate(dims) if d is not None]
    lanes = [jnp.moveaxis(flat[i], dims[i], 0) for i in batched]

    def one_lane(xs):
        args = list(flat)
        for i, x in zip(batched, xs):
            args[i] = x
        return src(*args)

    if batched:
        out = jax.lax.map(one_lane, lanes)
    else:  # axis_size alone: the same lane repeated
        out = jax.lax.map(lambda _: one_lane([]), jnp.arange(size))
    leaves, tree = tree_util.tree_flatten(out)
    moved = [x[0] if d is None and not b else
             x if d is None else jnp.moveaxis(x, 0, d % x.ndim)
             for x, d, b in zip(leaves, out_dims, result_batched)]
    return tree_util.tree_unflatten(tree, moved)


# jax_internals.is_top_level_trace() inlined in BatchedFunction.__call__
_TRACE, _EVAL_TRACE, _AXES, _NO_AXES = jax_internals.TOP_LEVEL_PROBE
# RULES.snapshot() compared inline (passes/rules/table.py)
_RULE_CONTEXT = rule_table.CONTEXT
# jax's default PRNG implementation (jax_internals.trace_context), compared inline
_PRNG_IMPL = jax_internals.PRNG_IMPL

# jax.jit objects kept per BatchedFunction, one per generation of the rules
# (BatchedFunction._dispatcher); more only with rules registered per thread.
_DISPATCHERS_KEPT = 8

# Per-example exports kept per BatchedFunction (BatchedFunction._example_export).
_EXPORTS_KEPT = 8


def _count_of(counter: itertools.count) -> int:
    """The next value of an ``itertools.count`` (started at 0: the number of
    ``next`` calls so far), without advancing it."""
    return int(repr(counter)[len("count("):-1])


def _forward(forwards, in_leaves, out):
    """``out`` with flat result ``j`` replaced by ``in_leaves[i]`` for each
    ``(j, i)`` in ``forwards``."""
    leaves, tree = tree_util.tree_flatten(out)
    for j, i in forwards:
        leaves[j] = in_leaves[i]
    return tree_util.tree_unflatten(tree, leaves)


def _all_jax_values(tree) -> bool:
    """No leaf that may be static (a non-array, or a Python scalar)."""
    return all(not ax.is_static_scalar(x) and ax.is_jax_value(x)
               for x in tree_util.tree_leaves(tree))


def _check_axis_size(axis_size):
    """(the batch size or None, the message of vmap's TypeError or None):
    jax.vmap refuses a negative or non-integer axis_size with a TypeError
    when it is called; so do we."""
    if axis_size is None:
        return None, None
    try:
        n = operator.index(axis_size)
    except TypeError:
        return None, (f"batch_lower axis_size must be an int, got {axis_size!r} of type "
                      f"{type(axis_size).__name__}")
    if n < 0:
        return None, f"batch_lower axis_size must be a non-negative int, got {n}"
    return n, None


def _static_key(x):
    """A static argument in a plan key: by value when hashable, else by id."""
    try:
        hash(x)
    except TypeError:
        return ("id", type(x), id(x))
    return ("value", type(x), x)


class _HasStatic(Exception):
    """Some argument is not an array: the plan needs the general path."""


def batch_lower(fn: Callable, in_axes=0, out_axes=0, *, axis_size: int | None = None,
                backend: str | None = None, strict: bool = False,
                chunk_size: int | str | None = None, memory_limit_bytes: int | None = None,
                mesh: jax.sharding.Mesh | None = None,
                axis_name=None, spmd_axis_name=None, check: bool = False,
                cache_size: int | None = 256, tune=None) -> BatchedFunction:
    """Batches ``fn`` like ``jax.vmap(fn, in_axes, out_axes, axis_size=axis_size)``,
    by rewriting its lowered StableHLO instead of re-tracing it.

    ``backend`` picks the platform the module is lowered and compiled for
    (``"cpu"``, ``"cuda"``, ``"tpu"``, ...; default: jax's default backend).
    An op without a batching rule runs once per lane (a ``FallbackWarning``
    names it); ``strict=True`` raises ``UnsupportedOpError`` instead. A
    function with host callbacks (``jax.pure_callback``, ...) is compiled
    in-process (stablehlo_batch/callbacks.py); under ``jax.jit`` / ``jax.grad``
    / ``jax.vmap`` its lanes run in a ``lax.map`` (docs/dropin.md).
    ``chunk_size=K`` computes the batch K lanes at a time inside the module
    (a loop over chunks; ``"auto"`` picks K from XLA's memory analysis under
    ``memory_limit_bytes``). ``mesh`` (a ``jax.sharding.Mesh``) splits the
    batch axis over the mesh axis ``spmd_axis_name`` with XLA's SPMD partitioner.
    ``axis_name`` names the batch axis for collectives inside ``fn``
    (``lax.psum(x, axis_name)``, ``all_gather``, ``ppermute``, ``axis_index``,
    ...), as in ``jax.vmap`` (stablehlo_batch/named_axes.py);
    ``spmd_axis_name`` is the mesh axis of ``mesh`` (default ``"batch"``).
    ``check=True`` runs the first call of each signature also as a loop of
    the unbatched function and raises ``BatchMismatchError`` (naming the
    first op that differs, with a minimal reproducer) when they disagree.
    ``cache_size`` bounds the signatures kept compiled (least recently used
    dropped first; None: unbounded).
    ``tune=True`` (or a tuple of chunk sizes to try) measures, on the first
    call of a signature, the full batch against loops over chunks of lanes
    and keeps the fastest, remembered on disk (stablehlo_batch/tuning.py,
    docs/tuning.md). ``tune=None`` (the default) lets a static cost model
    (stablehlo_batch/costmodel.py) pick a loop where one reliably pays on
    this platform (CPU), else the full batch; ``tune=False`` always runs the
    full batch, ``jax.vmap``'s program.
    """
    axis_name, spmd_axis_name = named_axes.resolve_names(axis_name, spmd_axis_name, mesh)
    options = dict(chunk_size=chunk_size, memory_limit_bytes=memory_limit_bytes, mesh=mesh)
    options = {k: v for k, v in options.items() if v is not None}
    if options:
        options["axis_name"] = spmd_axis_name or "batch"
    if axis_name is not None and (chunk_size is not None or memory_limit_bytes is not None):
        raise ValueError("batch_lower: chunk_size cannot be combined with axis_name "
                         "(a collective over the batch axis must see every lane at once)")
    if axis_name is not None and check:
        raise ValueError("batch_lower: check=True cannot be combined with axis_name (its "
                         "reference runs the function once per lane, without the batch)")
    return BatchedFunction(fn, in_axes, out_axes, axis_size, backend, strict, check=check,
                           cache_size=cache_size, scale_options=options,
                           axis_name=axis_name, tune=tune)


def batch_module(module: module_io.ModuleSource, in_axes: Sequence[int | None],
                 out_axes: Sequence[int | None], axis_size: int, *,
                 func: str = "main", debug_info: bool = False,
                 strict: bool | None = None) -> str:
    """Batches @``func`` of a StableHLO module and returns the new module as text.

    ``in_axes`` / ``out_axes`` have one entry per argument / result of the
    function (an int, possibly negative, or None for unbatched). A single
    int or None is applied to every argument / result. ``axis_size=(10, 3)``
    adds several batch dimensions, as nested vmaps do (axes then per level,
    outer first: stablehlo_batch/levels.py). ``debug_info`` keeps
    the locations in the printed module. ``strict=True``: an op without a
    batching rule raises instead of running once per lane.
    """
    return batch_module_with_report(module, in_axes, out_axes, axis_size, func=func,
                                    debug_info=debug_info, strict=strict)[0]


def batch_module_with_report(module: module_io.ModuleSource,
                             in_axes: Sequence[int | None],
                             out_axes: Sequence[int | None], axis_size: int, *,
                             func: str = "main", debug_info: bool = False,
                             strict: bool | None = None):
    """``batch_module`` that also returns the batching report
    (``passes.report.BatchingReport``): ``(text, report)``."""
    if levels.is_multi(axis_size):  # several batch dims: once per dim, innermost first
        return levels.batch_levels(
            module, levels.split(in_axes, out_axes, axis_size),
            lambda m, i, o, s, d: batch_module_with_report(m, i, o, s, func=func,
                                                           debug_info=d, strict=strict),
            debug_info)
    m = xla_compat.legalize(module_io.parse_module(module))
    fn_block = module_io.func_block(m, func)
    n_args = len(fn_block.arguments)
    n_res = len(list(fn_block.operations)[-1].operands)
    in_axes = ax.flat_axes(in_axes, n_args)
    out_axes = ax.flat_axes(out_axes, n_res)
    _, report = batch_function(m, func, in_axes, out_axes, axis_size, strict=strict,
                               what="batch_module")
    return module_io.module_to_text(m, debug_info=debug_info), report

