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
import dataclasses
import functools
import threading
import time
from typing import Any, Callable, Sequence

import jax
from jax import tree_util
from jaxlib.mlir import ir

from passes import AxisSpecError, batch_function_in_module
from passes.engine import batch_function_with_report
from passes.fallback import strict_mode
from passes.rules import RULES
from stablehlo_batch import axes as ax
from stablehlo_batch import callbacks, module_io, primitive


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
    report: Any = None  # passes.report.BatchingReport
    compiled: Any = None  # the executable, for host callbacks (no Exported then)
    traceable: bool = False  # exported.call may be traced inside another jit
    fn: Any = None  # primitive.BatchedFn: what jax's transformations see


class Compiled:
    """An XLA executable of the batched function (mirrors jax.stages.Compiled)."""

    def __init__(self, compiled: jax.stages.Compiled):
        self._compiled = compiled

    def __call__(self, *args, **kwargs):
        return self._compiled(*args, **kwargs)

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
            return Compiled(self._plan.compiled)
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

    def values(self):
        with self._lock:
            return list(self._d.values())


class _NotTraceable(Exception):
    """Raised while jax.jit traces a call whose plan must be called directly."""


class BatchedFunction:
    """What ``batch_lower`` returns: call it like ``jax.vmap(fn, ...)``."""

    def __init__(self, fn: Callable, in_axes, out_axes, axis_size: int | None,
                 backend: str | None, strict: bool = False, check: bool = False,
                 cache_size: int | None = 256, scale_options: dict | None = None):
        if not callable(fn):
            raise TypeError(f"batch_lower requires a callable, got {fn!r}")
        self.fn = fn
        self.in_axes = ax.canonicalize_in_axes(in_axes)
        ax.check_out_axes(out_axes)
        self.out_axes = out_axes
        # A name ("b") asks for one module for every batch size (symbolic).
        self.symbolic = axis_size if isinstance(axis_size, str) else None
        self.axis_size = None if axis_size is None or self.symbolic else int(axis_size)
        self.backend = backend
        self.strict = bool(strict)
        self.check = bool(check)
        self.cache_size = cache_size
        # chunk_size / memory_limit_bytes / mesh / axis_name (export.batch_with_options)
        self._scale_options = dict(scale_options or {})
        # Calls go through jax.jit's own dispatch, which looks the signature
        # up in C++: a cached call costs what a call of jax.jit(jax.vmap(f))
        # does. Plans whose call cannot be traced (chunked or sharded calls,
        # host callbacks) are called directly instead. Evicting a plan also
        # drops jit's executables, so cache_size bounds those too.
        # The rules' generation is a static argument: registering a rule
        # makes the next call build (and jit trace) again.
        self._dispatch = jax.jit(self._traced_call, static_argnames="_rules")
        self._plans = _LRU(cache_size, on_evict=self._dispatch.clear_cache)
        self._by_signature = _LRU(cache_size)
        self._lock = threading.Lock()
        self._direct = bool(self._scale_options)
        functools.update_wrapper(self, fn, updated=())

    def __call__(self, *args, **kwargs):
        if not (self._direct or self.check):
            try:
                return self._dispatch(*args, _rules=RULES.generation, **kwargs)
            except _NotTraceable:
                self._direct = True
            except TypeError:
                pass  # e.g. a non-array argument: the direct path names it as vmap would
        plan = self._plan_for(args, kwargs)
        out = plan.call(*args, **kwargs)
        if self.check and not getattr(plan, "checked", False):
            from stablehlo_batch.check import check_call
            check_call(self, args, kwargs, out)
            plan.checked = True
        return out

    def _traced_call(self, *args, _rules=None, **kwargs):
        plan = self._plan_for(args, kwargs)
        if not plan.traceable:
            raise _NotTraceable()
        if plan.fn is None:
            return plan.exported.call(*args, **kwargs)
        return primitive.call(plan.fn, plan.exported.out_tree, *args, **kwargs)

    def lower(self, *args, **kwargs) -> Lowered:
        return Lowered(self._plan_for(args, kwargs), args, kwargs)

    # ---- building ----------------------------------------------------------
    def _plan_for(self, args, kwargs) -> _Plan:
        if isinstance(self.in_axes, tuple) and len(self.in_axes) != len(args):
            raise ValueError(
                "batch_lower in_axes must be an int, None, or a tuple of entries "
                "corresponding to the positional arguments passed to the function, "
                f"but got len(in_axes)={len(self.in_axes)}, len(args)={len(args)}")
        leaves, in_tree = tree_util.tree_flatten((args, kwargs))
        avals = ax.avals_of(self.fn, in_tree, leaves)
        rules = RULES.generation  # plans depend on the rules in force here
        plan = self._by_signature.get((in_tree, avals, rules))
        if plan is not None:  # the hot path: one dict lookup per call
            return plan
        dims = ax.flatten_axes("batch_lower in_axes", in_tree, (self.in_axes, 0))
        dims, size = ax.normalize_in_axes(self.fn, in_tree, [a.shape for a in avals],
                                          avals, dims, self.axis_size)
        platform = _platform(self.backend)
        key = (in_tree, avals, tuple(dims), size, platform, rules)
        if self.symbolic:  # one plan, whatever the batch size
            key = (in_tree, tuple(a if d is None else a.update(shape=a.shape[:d] + a.shape[d + 1:])
                                  for a, d in zip(avals, dims)), tuple(dims), None, platform,
                   rules)
        plan = self._plans.get(key)
        if plan is None:
            with self._lock:
                plan = self._plans.get(key)
                if plan is None:
                    with strict_mode(self.strict):
                        plan = self._build(in_tree, avals, dims, size, platform)
                    self._plans[key] = plan
        self._by_signature[(in_tree, avals, rules)] = plan
        return plan

    def _build(self, in_tree, avals, dims, size, platform) -> _Plan:
        def unbatched(a, d):
            shape = a.shape if d is None else a.shape[:d] + a.shape[d + 1:]
            return jax.ShapeDtypeStruct(shape, a.dtype, weak_type=a.weak_type)

        ex_args, ex_kwargs = tree_util.tree_unflatten(
            in_tree, [unbatched(a, d) for a, d in zip(avals, dims)])
        try:
            exp = jax.export.export(jax.jit(self.fn), platforms=(platform,))(
                *ex_args, **ex_kwargs)
        except NotImplementedError as e:
            if not callbacks.needs_callback_route(e):
                raise
            cb = callbacks.build(self.fn, in_tree, avals, dims, size, platform,
                                 self.out_axes)
            return _Plan(None, cb.module, cb.result_batched, cb.rewrite_seconds,
                         cb.call, cb.report, compiled=cb.compiled)
        out_dims = ax.flatten_axes("batch_lower out_axes", exp.out_tree, self.out_axes)
        from stablehlo_batch.export import batch_with_options
        from stablehlo_batch.export import symbolic_size
        if self.symbolic:
            size = symbolic_size(self.symbolic)
        built = batch_with_options(exp, dims, out_dims, size, what="batch_lower",
                                   **self._scale_options)
        batched, module = built.exported, built.module
        result_batched, rewrite_seconds = built.result_batched, built.rewrite_seconds
        fn, call = None, built.call
        if (call is None or built.shardings) and not (
                exp.ordered_effects or exp.unordered_effects):
            # Our own primitive, so that jax.jvp, jax.grad and jax.vmap see
            # through the call (stablehlo_batch/primitive.py).
            fn = primitive.BatchedFn(
                primitive.flat_function(self.fn, in_tree),
                tree_util.tree_leaves((ex_args, ex_kwargs)), dims, out_dims, size, platform,
                exported=batched, example_out_avals=exp.out_avals,
                chunk_size=built.chunk_size)
            in_sh, out_sh = built.shardings or (None, None)
            # With a mesh, the shardings of the call's jit put the batch axis
            # on the devices; derivative modules inherit it by propagation.
            call = jax.jit(functools.partial(primitive.call, fn, batched.out_tree),
                           **({} if in_sh is None else dict(in_shardings=in_sh,
                                                            out_shardings=out_sh)))
        return _Plan(batched, module, result_batched, rewrite_seconds,
                     call or jax.jit(batched.call), built.report,
                     traceable=built.call is None,
                     fn=fn)


def batch_lower(fn: Callable, in_axes=0, out_axes=0, *, axis_size: int | None = None,
                backend: str | None = None, strict: bool = False,
                chunk_size: int | str | None = None, memory_limit_bytes: int | None = None,
                mesh: jax.sharding.Mesh | None = None,
                axis_name: str = "batch", check: bool = False,
                cache_size: int | None = 256) -> BatchedFunction:
    """Batches ``fn`` like ``jax.vmap(fn, in_axes, out_axes, axis_size=axis_size)``,
    by rewriting its lowered StableHLO instead of re-tracing it.

    ``backend`` picks the platform the module is lowered and compiled for
    (``"cpu"``, ``"cuda"``, ``"tpu"``, ...; default: jax's default backend).
    An op without a batching rule runs once per lane (a ``FallbackWarning``
    names it); ``strict=True`` raises ``UnsupportedOpError`` instead. A
    function with host callbacks (``jax.pure_callback``, ...) is compiled
    in-process (stablehlo_batch/callbacks.py) and cannot be called inside
    ``jax.jit``.
    ``chunk_size=K`` computes the batch K lanes at a time inside the module
    (a loop over chunks; ``"auto"`` picks K from XLA's memory analysis under
    ``memory_limit_bytes``). ``mesh`` (a ``jax.sharding.Mesh``) splits the
    batch axis over the mesh axis ``axis_name`` with XLA's SPMD partitioner.
    ``check=True`` runs the first call of each signature also as a loop of
    the unbatched function and raises ``BatchMismatchError`` (naming the
    first op that differs, with a minimal reproducer) when they disagree.
    ``cache_size`` bounds the signatures kept compiled (least recently used
    dropped first; None: unbounded).
    """
    options = dict(chunk_size=chunk_size, memory_limit_bytes=memory_limit_bytes, mesh=mesh)
    options = {k: v for k, v in options.items() if v is not None}
    if options:
        options["axis_name"] = axis_name
    return BatchedFunction(fn, in_axes, out_axes, axis_size, backend, strict, check=check,
                           cache_size=cache_size, scale_options=options)


def batch_module(module: module_io.ModuleSource, in_axes: Sequence[int | None],
                 out_axes: Sequence[int | None], axis_size: int, *,
                 func: str = "main", debug_info: bool = False,
                 strict: bool | None = None) -> str:
    """Batches @``func`` of a StableHLO module and returns the new module as text.

    ``in_axes`` / ``out_axes`` have one entry per argument / result of the
    function (an int, possibly negative, or None for unbatched). A single
    int or None is applied to every argument / result. ``debug_info`` keeps
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
    m = module_io.parse_module(module)
    fn_block = _func_block(m, func)
    n_args = len(fn_block.arguments)
    n_res = len(list(fn_block.operations)[-1].operands)
    in_axes = _flat_axes(in_axes, n_args)
    out_axes = _flat_axes(out_axes, n_res)
    start = time.perf_counter()
    _, report = batch_function_with_report(m, func, in_axes, out_axes, axis_size,
                                           strict=strict)
    report.rewrite_seconds = time.perf_counter() - start
    return module_io.module_to_text(m, debug_info=debug_info), report


def _func_block(module: ir.Module, func: str) -> ir.Block:
    try:
        op = ir.SymbolTable(module.operation)[func]
    except KeyError:
        raise AxisSpecError(f"function @{func} not found in the module") from None
    if op.operation.name != "func.func" or not len(op.operation.regions[0].blocks):
        raise AxisSpecError(f"@{func} is not a function with a body")
    return op.operation.regions[0].blocks[0]


def _flat_axes(spec, n: int) -> list[int | None]:
    if spec is None or isinstance(spec, int):
        return [spec] * n
    spec = list(spec)
    for a in spec:
        if a is not None and type(a) is not int:
            raise AxisSpecError(f"axes must be ints or None, got {a!r}")
    return spec
