"""Every private jax / jaxlib API this package uses, in one place (the one
exception is ``callbacks.py``, which swaps a jax lowering's module and needs
jax's callback and effect classes throughout: see its docstring).

Each function below wraps one private use: why we need it, and what breaks
if jax changes it. They are written against jax / jaxlib 0.10; when a jax
upgrade breaks one, this file is where to look (and the tests named below
are what notice).

- ``is_top_level_trace`` (``jax._src.core.trace_ctx.is_top_level``, inlined:
  ``trace_state_strong_ref``, ``eval_trace``, ``axis_env_state``, ``top_axis_env``): whether
  ``batch_lower``'s function is called outside every jax trace. Under
  ``jit`` / ``grad`` / ``vmap`` / ``scan`` the function may close over
  tracers, which then become arguments of the plan; at the top level it
  cannot. If it breaks, every call of a ``batch_lower`` function fails
  (tests/api/).
- ``exclude_from_source_info`` (``jax._src.source_info_util.register_exclusion``):
  jax's source locations skip our frames as they skip jax's own, so an
  error naming an op's line points at the user's code. If it breaks, those
  locations name our files instead (tests/api/test_api.py,
  test_error_unsupported_op_names_op_and_location).
- ``exclude_from_tracebacks`` (``jax._src.traceback_util.register_exclusion``):
  the tracebacks jax filters at its API boundaries (``jax.jit`` calls,
  inside ours) leave our frames out, as they leave jax's out, so an
  exception raised in the user's function shows the user's frames. If it
  breaks, those tracebacks show our frames too (tests/api/test_dropin.py).
- ``fun_name`` (``jax._src.util.fun_name``): the name ``jax.vmap`` uses in
  its docstring for a batched function (partials and callables without a
  ``__name__`` included); ours copies that form. If it breaks, the batched
  function's name and docstring differ from ``jax.vmap``'s
  (tests/api/test_dropin.py).
- ``enclosing_axis_names`` (``jax._src.core.get_axis_env``): the axis names
  bound by enclosing transformations, to tell a collective over an outer
  batch's name from a misspelt one (named_axes.bound_outside). If it breaks,
  nested ``batch_lower`` calls with collectives over the outer name fail
  (tests/rules/test_collectives.py).
- ``named_axes_used`` (``jax._src.core.NamedAxisEffect``): which axis names a
  traced function's collectives use, so that a ``batch_lower`` with no name
  of its own inside a named batch sees a collective over the outer name
  before lowering it. If it breaks, such calls fail in jax's lowering
  (tests/rules/test_collectives.py, jax's testBatchedAllGatherTiled).
- ``traced_axis_size`` (``jax._src.lax.parallel._axis_size`` / ``_psum`` /
  ``psum_p``): ``pmean``'s divisor and ``psum`` of a constant as a
  collective when the batch size is symbolic (see its docstring).
- ``vmappable_types`` / ``to_elt_handler`` / ``from_elt_handler``
  (``jax._src.interpreters.batching``'s tables behind the public
  ``jax.interpreters.batching.register_vmappable``): custom types that
  ``jax.vmap`` maps with their own ``to_elt`` / ``from_elt`` (vmappables.py).
  If it breaks, such types are refused as "not a valid JAX type"
  (tests/jax_ports/test_jax_batching.py, the vmappable tests).
- ``lower_custom_vmap_when_batching`` / ``apply_custom_vmap_rule`` /
  ``custom_vmap_body`` / ``custom_vmap_call_location``
  (``jax._src.custom_batching``: ``custom_vmap_p``, its lowering entry, its
  batching rule ``custom_vmap_batching``): a custom_vmap in a function we
  batch becomes a placeholder whose rewrite rule runs the user's rule
  (custom_vmap.py). If it breaks, such functions fail or are batched as
  their bodies (tests/jax_ports/test_jax_custom_api.py fails).
- ``prefix_error_details`` (``jax._src.tree_util.prefix_errors``,
  ``jax._src.api_util.PytreeLeaf``): the
  "Mismatch details" of vmap's error for an in_axes / out_axes that is not
  a tree prefix of the value. If it breaks, our message lacks the details
  (tests/jax_ports/test_jax_api.py).
- ``collective_broadcast_lowering`` (``jax._src.interpreters.mlir``'s
  per-platform lowering table, ``jax._src.lax.parallel.pbroadcast_p`` and its
  lowering rule): ``lax.pbroadcast`` lowers to ``collective_broadcast`` for
  GPUs only; our rewrite takes it on any platform, so while a function is
  exported for a named batch axis it is lowered that way for the export's
  platform too. If it breaks, ``pbroadcast`` over a batch axis fails to
  export on CPU / TPU (tests/rules/test_collectives.py).
- ``differentiable_extrema`` (``jax._src.lax.parallel.pmax_p`` / ``pmin_p``,
  a JVP rule in ``jax._src.interpreters.ad.primitive_jvps``, switched per
  thread): jax has no derivative for ``pmax`` / ``pmin``; ``jax.vmap``'s
  rule returns an unbatched operand as it is (so ``grad`` of ``vmap`` never
  meets the collective), while we differentiate the per-example function,
  which binds it. While our per-example JVP / VJP is traced, their
  derivative is the tangent at the lanes holding the extremum, ties
  shared (jax's ``reduce_max`` JVP rule across lanes). If it breaks,
  ``jax.grad`` through ``pmax`` / ``pmin`` inside ``batch_lower`` raises
  jax's "Differentiation rule for 'pmax' not implemented"
  (tests/sweeps/test_generated_regressions.py,
  test_grad_through_pmax_of_a_closed_over_value).
- ``lapack_unless_needed`` (``jax._src.export._export._ensure_backends_initialized``):
  lowering an ``Exported.call`` for CPU initializes jaxlib's LAPACK kernels
  (importing SciPy's BLAS: ~0.1 s of CPU, once per process) whether or not
  the module calls LAPACK. Our batched call's lowering skips that for a
  module without LAPACK targets (jax initializes LAPACK itself when it
  lowers a linear-algebra op, as our export of such a function does). If it
  breaks, the first call in a process costs that again (the bench's first
  result; tests/api/test_api.py checks the skip), nothing else.
- ``context_devices`` (``jax._src.sharding_impls.ShardingContext`` /
  ``SPMDAxisContext``): the number of devices of the lowering our batched
  call is lowered in, so that a module built for ``mesh=`` is not called
  from a one-device module (``jax.vmap`` around a ``batch_lower`` with a
  mesh; primitive.BatchedFn.exported). If it breaks, that combination fails
  with jax's "exported for N devices" error (tests/rules/test_collectives.py).
- ``register_jax_dialects`` (``jaxlib.mlir._mlir_libs._jax_mlir_ext``): the
  dialect registry of jax's own lowering context, so that our contexts parse
  every module jax emits (module_io.make_context). If it breaks, nothing
  parses: every test fails. (The CLI's bytecode-parsing child process repeats
  this set-up as source text, cli._CHILD_PARSE, so as not to load jax.)
- ``hlo_converter`` / ``stablehlo_to_hlo_converter`` (``jaxlib._hlo``,
  ``jaxlib._jax.mlir``): jaxlib's HLO <-> StableHLO converters, for reading
  and writing HLO (module_io.parse_hlo, module_to_hlo). Imported here once,
  guarded: a jaxlib without them still imports this package, and only
  reading or writing HLO raises ``PrivateAPIMissing`` (module_io turns it
  into a clear error). Checked by tests/tools/test_hlo_input.py.
- ``exported_argument_shardings`` (``jax.export.Exported._in_named_shardings``,
  a private field): an ``Exported`` restricted to the arguments its module
  uses (flat.without_unused) restricts every per-argument field, this one
  included. If it breaks, a ``batch_lower`` function that ignores an
  argument fails to build (tests/api/test_unused_arguments.py).
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import sys
import threading
from typing import Callable

import numpy as np
from jax import tree_util
from jax._src import api_util, core, sharding_impls, source_info_util, traceback_util, util
from jax._src import config as jax_config_impl
from jax._src import custom_batching
from jax._src import tree_util as jax_tree_util
from jax._src.export import _export as jax_export_impl
from jax._src.interpreters import ad as jax_ad
from jax._src.interpreters import batching as jax_batching
from jax._src.interpreters import mlir as jax_mlir
from jax._src.lax import lax as lax_internal
from jax._src.lax import parallel
from jaxlib.mlir import ir
from jaxlib.mlir._mlir_libs import _jax_mlir_ext

try:  # jaxlib's CPU LAPACK kernels (their target names: lapack_unless_needed)
    from jaxlib import lapack as jaxlib_lapack
except ImportError:
    jaxlib_lapack = None

try:  # private jaxlib modules (0.10); jax._src.lib.xla_client._xla is _jax
    from jaxlib import _hlo as jaxlib_hlo
    from jaxlib import _jax as jaxlib_jax
except ImportError as e:  # reported by the converters below, when asked for
    jaxlib_hlo = jaxlib_jax = None
    _HLO_IMPORT_ERROR = str(e)
else:
    _HLO_IMPORT_ERROR = ""


class PrivateAPIMissing(RuntimeError):
    """This jax / jaxlib lacks a private API that one feature needs."""


# ---- tracing ----------------------------------------------------------------------

# ``core.trace_ctx.is_top_level()`` spelt out, for callers on a hot path
# that inline it: (trace, eval trace, axes, no axes) -- top level when
# ``trace.value is eval_trace and axes.value is no_axes``.
TOP_LEVEL_PROBE = (core.trace_state_strong_ref, core.eval_trace, core.axis_env_state,
                   core.top_axis_env)


def is_top_level_trace(_probe=TOP_LEVEL_PROBE) -> bool:
    """True outside every jax trace (jit, grad, vmap, scan, ...)."""
    return _probe[0].value is _probe[1] and _probe[2].value is _probe[3]


def exclude_from_source_info(path: str) -> None:
    """jax's source locations skip frames of files under ``path``."""
    source_info_util.register_exclusion(path)


def exclude_from_tracebacks(path: str) -> None:
    """jax's filtered tracebacks skip frames of files under ``path``."""
    traceback_util.register_exclusion(path)


def fun_name(fn: Callable) -> str:
    """The name jax gives ``fn`` in messages and ``jax.vmap``'s docstring."""
    return util.fun_name(fn)


def axis_bound(name, size: int):
    """A context in which collectives over ``name`` (of ``size`` lanes) may
    be traced: ``batch_lower(axis_name=...)`` traces a function that closes
    over outer tracers to a jaxpr before lowering it with the name bound."""
    return core.extend_axis_env_nd([(name, size)])


def enclosing_axis_names() -> list[str]:
    """The axis names bound by the enclosing transformations, as strings."""
    return [str(n) for n in core.get_axis_env().axis_names()]


def named_axes_used(closed_jaxpr) -> set:
    """The axis names the collectives of a traced function use (jax records
    each as a ``NamedAxisEffect`` of the jaxpr)."""
    return {e.name for e in closed_jaxpr.effects if isinstance(e, core.NamedAxisEffect)}


def prefix_error_details(name: str, prefix, treedef) -> list[str]:
    """jax's description of each place where ``prefix`` is not a tree prefix
    of a value of tree ``treedef`` (as ``jax.vmap``'s error lists them)."""
    try:
        full = jax_tree_util.tree_unflatten(
            treedef, [api_util.PytreeLeaf()] * treedef.num_leaves)
        return [e(name).args[0] for e in jax_tree_util.prefix_errors(prefix, full)]
    except Exception:  # only a message: never fail while building it
        return []


# ---- custom vmappable types (jax.interpreters.batching.register_vmappable) ---------

def vmappable_types() -> dict:
    """{registered type: (its spec type, its axis-size type)}; empty unless
    someone called ``register_vmappable`` (unregistering keeps the entry)."""
    return jax_batching.vmappables


def is_vmappable(x) -> bool:
    return type(x) in jax_batching.vmappables


def to_elt_handler(typ: type):
    """The registered ``to_elt(cont, get_idx, value, spec)`` of ``typ``, or None."""
    return jax_batching.to_elt_handlers.get(typ)


def from_elt_handler(typ: type):
    """The registered ``from_elt(cont, axis_size, elt, spec)`` of ``typ``, or None."""
    return jax_batching.from_elt_handlers.get(typ)


# ---- lowering ---------------------------------------------------------------------

_LOWERING_LOCK = threading.RLock()  # re-entered by nested batch_lower calls


@contextlib.contextmanager
def collective_broadcast_lowering(platform: str):
    """While active, ``lax.pbroadcast`` lowers to ``collective_broadcast`` for
    ``platform`` as jax lowers it for GPUs (jax registers that lowering for
    GPUs only)."""
    table = jax_mlir._platform_specific_lowerings[platform]
    with _LOWERING_LOCK:
        added = parallel.pbroadcast_p not in table
        if added:
            table[parallel.pbroadcast_p] = jax_mlir.LoweringRuleEntry(
                parallel._pbroadcast_lowering, True)
        try:
            yield
        finally:
            if added:
                table.pop(parallel.pbroadcast_p, None)


@contextlib.contextmanager
def traced_axis_size(name):
    """While active, the size of axis ``name`` enters values as a collective
    (a ``psum`` of one, which the rewrite turns into the batch size read at
    run time) instead of the mesh's axis size, which is only a placeholder
    when the batch size is symbolic (named_axes.export_named): ``pmean``'s
    divisor and ``psum`` of a value that is no tracer (``lax.psum(1, "i")``).
    Patches ``jax._src.lax.parallel._axis_size`` (for calls from ``pmean``;
    other callers need an int and get the placeholder, which the comparison
    of two placeholder lowerings then refuses) and ``_psum`` (its constant
    case). If it breaks, those are refused as depending on the number of
    lanes (tests/rules/test_collectives.py, test_symbolic_batch_size)."""
    orig_size, orig_psum = parallel._axis_size, parallel._psum
    pmean_code = parallel.pmean.__code__

    def ours(axis_name, groups) -> bool:
        return groups is None and axis_name in (name, (name,), [name])

    def traced_one_sum(leaf):
        leaf = lax_internal.asarray(leaf)
        if leaf.dtype == np.bool_:
            leaf = lax_internal.convert_element_type(leaf, np.int32)
        out = parallel.psum_p.bind(leaf, axes=(name,), axis_index_groups=None)
        # a Python number's sum stays weakly typed, as jax's constant case gives
        weak = core.typeof(leaf).weak_type
        return lax_internal._convert_element_type(out, weak_type=True) if weak else out

    def axis_size(axis_name, axis_index_groups=None, /):
        if ours(axis_name, axis_index_groups):
            if sys._getframe(1).f_code is pmean_code:
                return traced_one_sum(1)
            return core.get_axis_env().axis_size(name)
        return orig_size(axis_name, axis_index_groups)

    def psum(x, axis_name, *, axis_index_groups, is_async):
        leaves, treedef = tree_util.tree_flatten(x)
        if ours(axis_name, axis_index_groups) and not is_async and \
                not any(isinstance(leaf, core.Tracer) for leaf in leaves):
            return tree_util.tree_unflatten(treedef, [traced_one_sum(leaf) for leaf in leaves])
        return orig_psum(x, axis_name, axis_index_groups=axis_index_groups, is_async=is_async)

    with _LOWERING_LOCK:
        parallel._axis_size, parallel._psum = axis_size, psum
        try:
            yield
        finally:
            parallel._axis_size, parallel._psum = orig_size, orig_psum


def _patch_per_thread(name: str, switch, while_on: Callable) -> None:
    """Replaces ``jax._src.export._export.<name>`` (once per process) by a
    function that calls ``while_on(original, *args)`` in a thread whose
    ``switch.on`` is set, and the original everywhere else."""
    original = getattr(jax_export_impl, name, None)
    if original is None or getattr(original, "_stablehlo_batch", False):
        return

    def patched(*args):
        if getattr(switch, "on", False):
            return while_on(original, *args)
        return original(*args)
    patched._stablehlo_batch = True
    setattr(jax_export_impl, name, patched)


@contextlib.contextmanager
def _switched_on(switch):
    """``switch.on`` set in this thread while active."""
    before = getattr(switch, "on", False)
    switch.on = True
    try:
        yield
    finally:
        switch.on = before



# ---- differentiation ----------------------------------------------------------------

_EXTREMA_AXES = threading.local()  # .names: axis names whose pmax / pmin we differentiate


def _extremum_jvp(prim, primals, tangents, *, axes, axis_index_groups):
    """JVP of ``pmax`` / ``pmin`` over axes all in this thread's switch:
    the tangent averaged over the lanes whose value is the result, which
    is jax's JVP of ``reduce_max`` / ``reduce_min`` taken across lanes (an
    operand equal in every lane keeps its tangent). Elsewhere jax's own
    error for a primitive without a JVP rule."""
    names = getattr(_EXTREMA_AXES, "names", frozenset())
    if not axes or not all(not isinstance(a, int) and a in names for a in axes) or \
            not _ours(_differentiating_trace(prim)):
        raise NotImplementedError(f"Differentiation rule for '{prim}' not implemented")
    (x,), (t,) = primals, tangents
    y = prim.bind(x, axes=axes, axis_index_groups=axis_index_groups)
    t = jax_ad.instantiate_zeros(t)
    hit = lax_internal.eq(x, y)
    count = parallel.psum(lax_internal.convert_element_type(hit, t.dtype), axes,
                          axis_index_groups=axis_index_groups)
    picked = lax_internal.select(hit, t, lax_internal.full_like(t, 0))
    return y, lax_internal.div(parallel.psum(picked, axes,
                                             axis_index_groups=axis_index_groups), count)


for _prim in (parallel.pmax_p, parallel.pmin_p):
    if _prim not in jax_ad.primitive_jvps:  # jax's own rule, once it has one
        jax_ad.primitive_jvps[_prim] = functools.partial(_extremum_jvp, _prim)


def _differentiating_trace(prim):
    """The JVP or linearize trace whose ``process_primitive`` asked for
    ``prim``'s derivative (found on the stack: jax passes the rule no
    trace), or None."""
    frame = sys._getframe(2)
    for _ in range(40):
        if frame is None:
            return None
        if frame.f_code.co_name == "process_primitive":
            trace = frame.f_locals.get("self")
            if isinstance(trace, (jax_ad.JVPTrace, jax_ad.LinearizeTrace)) and \
                    frame.f_locals.get("primitive") is prim:
                return trace
        frame = frame.f_back
    return None


def _ours(trace) -> bool:
    """Whether ``trace`` is the JVP / linearize trace of our own per-example
    derivative (``differentiated``): a ``jax.jvp`` / ``grad`` that the user
    wrote inside the function (a custom_jvp rule's, say) makes another, and
    there pmax / pmin fail as under jax.vmap. Unknown (None): ours."""
    if trace is None:
        return True
    tags = getattr(_EXTREMA_AXES, "tags", ())
    return any(trace.tag is t for t in tags)


def differentiated(g: Callable) -> Callable:
    """``g`` for ``jax.jvp`` / ``jax.vjp`` inside ``differentiable_extrema``:
    records the trace that calls it (that transformation's own) as one whose
    ``pmax`` / ``pmin`` get ``_extremum_jvp``."""
    def recorded(*args):
        tag = getattr(core.trace_ctx.trace, "tag", None)
        tags = getattr(_EXTREMA_AXES, "tags", None)
        if tag is not None and tags is not None:
            tags.append(tag)
        return g(*args)
    return recorded


@contextlib.contextmanager
def differentiable_extrema(axis_name):
    """While active (in this thread), ``pmax`` / ``pmin`` over ``axis_name``
    have a derivative (``_extremum_jvp``): for the per-example function
    that a batched function's JVP and VJP differentiate (traced by the
    ``jax.jvp`` / ``jax.vjp`` of a function wrapped in ``differentiated``;
    derivatives the user's code takes inside keep jax's error)."""
    before = getattr(_EXTREMA_AXES, "names", frozenset())
    before_tags = getattr(_EXTREMA_AXES, "tags", [])
    _EXTREMA_AXES.names = before | {axis_name}
    _EXTREMA_AXES.tags = list(before_tags)  # an enclosing derivative's stay ours
    try:
        yield
    finally:
        _EXTREMA_AXES.names = before
        _EXTREMA_AXES.tags = before_tags

_SKIP_BACKEND_INIT = threading.local()
_patch_per_thread("_ensure_backends_initialized", _SKIP_BACKEND_INIT,
                  lambda original, platforms: None)

_PLAIN_BYTECODE = threading.local()
_patch_per_thread("_module_to_bytecode", _PLAIN_BYTECODE,
                  lambda original, module: jax_mlir.module_to_bytecode(module))


# jax.export copies the lowered module into a new MLIR context before it
# serializes it (it may be cached: not to be mutated); a new context costs
# ~3 ms of CPU time (its dialects are loaded), a few percent of a small
# function's first call. For an in-process export (plain_bytecode_exports
# with a context provider) the copy goes into a context we reuse instead:
# jax's make_ir_context gives it while _export_lowered runs in this thread.
_EXPORT_COPY = threading.local()  # .context: what make_ir_context gives while set


def _install_export_copy_context() -> None:
    make = getattr(jax_mlir, "make_ir_context", None)
    lowered = getattr(jax_export_impl, "_export_lowered", None)
    if make is None or lowered is None or getattr(make, "_stablehlo_batch", False):
        return

    @functools.wraps(make)
    def make_ir_context():
        ctx = getattr(_EXPORT_COPY, "context", None)
        return make() if ctx is None else ctx
    make_ir_context._stablehlo_batch = True

    @functools.wraps(lowered)
    def export_lowered(*args, **kwargs):
        provider = getattr(_EXPORT_COPY, "provider", None)
        if provider is None or getattr(_EXPORT_COPY, "context", None) is not None:
            return lowered(*args, **kwargs)
        _EXPORT_COPY.context = provider()  # one context for every call in here
        try:
            return lowered(*args, **kwargs)
        finally:
            _EXPORT_COPY.context = None
    export_lowered._stablehlo_batch = True
    jax_mlir.make_ir_context = make_ir_context
    jax_export_impl._export_lowered = export_lowered


_install_export_copy_context()


@contextlib.contextmanager
def plain_bytecode_exports(context: Callable[[], ir.Context] | None = None):
    """While active (in this thread), ``jax.export`` stores the module as
    plain MLIR bytecode instead of a StableHLO portable artifact (the
    ``_module_to_bytecode`` of ``jax._src.export._export``, switched per
    thread): an export that only this process reads (flat.export_in_process,
    whose module is parsed by module_io and rewritten) skips the VHLO
    conversion both ways, ~2 ms of a small function's first call. Such an
    Exported is not portable (``serialize()`` / ``call`` need the real
    thing). If it breaks, exports keep the portable form: slower, never
    wrong (tests/api/test_api.py). ``context``: gives the MLIR context
    the export copies its module into (default: a new one, jax's), e.g.
    module_io's reused one (``_EXPORT_COPY``: ~3 ms)."""
    before = getattr(_EXPORT_COPY, "provider", None)
    _EXPORT_COPY.provider = context
    try:
        with _switched_on(_PLAIN_BYTECODE):
            yield
    finally:
        _EXPORT_COPY.provider = before


def _lapack_targets() -> tuple[bytes, ...]:
    """The custom call targets of jaxlib's CPU LAPACK kernels (those that need
    them initialized); a prefix that names them all if jaxlib hides them."""
    try:
        return tuple(sorted(name.encode() for name, _, _ in
                            jaxlib_lapack.registrations()["cpu"]))
    except Exception:  # noqa: BLE001 - any failure: the conservative prefixes
        return (b"lapack", b"tridiagonal")


_LAPACK_TARGETS = _lapack_targets()


@contextlib.contextmanager
def lapack_unless_needed(serialized_module: bytes):
    """While active (in this thread), lowering an ``Exported.call`` does not
    initialize jaxlib's CPU LAPACK kernels, unless ``serialized_module`` (the
    module's bytecode: its strings are stored as they are) holds the name of
    a LAPACK target (one in a location's text only costs the initialization)."""
    if any(t in serialized_module for t in _LAPACK_TARGETS):
        yield
        return
    with _switched_on(_SKIP_BACKEND_INIT):
        yield


def trace_context():
    """jax's configuration that changes what a trace gives (x64, matmul
    precision, ...: ``jax._src.config.trace_context()``, a hashable value
    that jax.jit puts in its own cache keys), for keys of our caches of
    traced work (api.BatchedFunction's plans and per-example exports,
    vmappables' plans). Plus the default PRNG implementation, which a trace
    reads (``jax.random.key(0)`` inside the function) but jax leaves out of
    its trace context: a plan traced with threefry keys must not serve a
    call under ``jax_default_prng_impl="rbg"``. If it breaks, every plan
    build fails (tests/api/test_api.py)."""
    return jax_config_impl.trace_context(), PRNG_IMPL.value


# The state of ``jax_default_prng_impl`` (``.value``): api.BatchedFunction's
# hot path checks it per call, since jax.jit's cache ignores it.
PRNG_IMPL = jax_config_impl.default_prng_impl


def ensure_backends_initialized(platforms) -> None:
    """What lowering an ``Exported.call`` does first
    (``jax._src.export._export._ensure_backends_initialized``: registers the
    FFI handlers of ``platforms``; honours ``lapack_unless_needed``), for the
    batched call's own inlining (primitive.py). If it breaks, a module that
    calls LAPACK may fail to compile in a fresh process (tests/api/test_api.py)."""
    jax_export_impl._ensure_backends_initialized(tuple(platforms))


# ---- jaxlib -----------------------------------------------------------------------

def register_jax_dialects(registry: ir.DialectRegistry) -> None:
    """Adds the dialects of jax's own lowering context to ``registry``."""
    _jax_mlir_ext.register_dialects(registry)


def hlo_converter() -> tuple[Callable[[str], bytes], Callable[[bytes], bytes]]:
    """(HLO text -> serialized HloModuleProto, serialized HloModuleProto ->
    StableHLO as MLIR bytecode); raises PrivateAPIMissing naming what this
    jaxlib lacks."""
    try:
        if jaxlib_hlo is None:
            raise ImportError(_HLO_IMPORT_ERROR)
        from_text = jaxlib_hlo.hlo_module_from_text
        convert = jaxlib_jax.mlir.hlo_to_stablehlo
    except (ImportError, AttributeError) as e:
        raise PrivateAPIMissing(f"jaxlib's private hlo_to_stablehlo / "
                                f"hlo_module_from_text: {e}") from None
    return (lambda text: from_text(text).as_serialized_hlo_module_proto()), convert


def stablehlo_to_hlo_converter() -> Callable[[bytes], object]:
    """StableHLO as MLIR bytecode -> an XlaComputation (``as_hlo_text()``,
    ``as_serialized_hlo_module_proto()``); raises PrivateAPIMissing naming
    what this jaxlib lacks."""
    try:
        if jaxlib_jax is None:
            raise ImportError(_HLO_IMPORT_ERROR)
        convert = jaxlib_jax.mlir.mlir_module_to_xla_computation
    except (ImportError, AttributeError) as e:
        raise PrivateAPIMissing(f"jaxlib's private mlir_module_to_xla_computation: "
                                f"{e}") from None
    return lambda bytecode: convert(bytecode, use_tuple_args=False, return_tuple=False)


def context_devices(ctx) -> int | None:
    """The number of devices of the lowering context ``ctx`` (a lowering
    rule's ``LoweringRuleContext``), None when it is neither kind jax
    exports for."""
    axis_context = ctx.module_context.axis_context
    if isinstance(axis_context, sharding_impls.ShardingContext):
        return axis_context.num_devices
    if isinstance(axis_context, sharding_impls.SPMDAxisContext):
        return axis_context.mesh.size
    return None


def exported_argument_shardings(exp, kept) -> dict:
    """The per-argument sharding fields of the ``Exported`` ``exp`` for the
    arguments ``kept`` alone, as keywords of ``dataclasses.replace``: its
    HLO shardings (public) and its named shardings (a private field, one
    entry per argument, all None unless exported with named shardings)."""
    return dict(in_shardings_hlo=tuple(exp.in_shardings_hlo[i] for i in kept),
                _in_named_shardings=tuple(exp._in_named_shardings[i] for i in kept))


def refine_shapes(bytecode: bytes) -> bytes | str:
    """A module with static argument shapes that calls shape-polymorphic
    functions (an ``Exported`` whose ``uses_global_constants`` is set, e.g.
    the call of a ``batch_lower(axis_size="b")`` plan), with every shape
    refined to a static one: jax runs this before XLA compiles such a module
    (``mlir.refine_polymorphic_shapes``); the rewrite needs it first."""
    return jax_mlir._jax.mlir.refine_polymorphic_shapes(
        mlir_module=bytecode, enable_shape_assertions=True, validate_static_shapes=True,
        enable_shardy=jax_config_impl.use_shardy_partitioner.value)


def _tracing_to_batch_state():
    """A jax configuration state of our own, part of jax's trace context
    (``include_in_trace_context``): set while a function is traced to be
    batched by our rewrite. Being in the trace context keeps jax's caches of
    traces made with and without it apart, so a ``jax.jit`` trace of the
    user's function made elsewhere (with an inner ``mesh=`` call's sharded
    jit in it) is never reused for a trace we batch, and the other way round.
    Registered once per process (``jax._src.config.bool_state``); a module
    reloaded finds it in jax's config."""
    name = "stablehlo_batch_tracing_to_batch"
    existing = jax_config_impl.config._value_holders.get(name)
    if existing is not None:
        return existing
    return jax_config_impl.bool_state(
        name, False, "Set by stablehlo_batch while it traces a function it then "
        "batches (internal; do not set).", include_in_trace_context=True)


_TRACING_TO_BATCH = _tracing_to_batch_state()


def tracing_to_batch():
    """A context (this thread) in which the functions traced are to be batched
    by our rewrite (flat.export_in_process, named_axes.export_named, the jaxpr
    of a call under outer transformations in api.py): a ``batch_lower(...,
    mesh=)`` called in there leaves its mesh out (its module is batched again
    and exported for one device, as under an outer ``jax.vmap``). If it
    breaks, a batch_lower around a mesh= one fails to verify (the sharding of
    the inner call has the wrong rank; tests/transforms/test_sharding.py)."""
    return _TRACING_TO_BATCH(True)


def is_tracing_to_batch() -> bool:
    """Whether this thread is inside ``tracing_to_batch()``."""
    return bool(_TRACING_TO_BATCH.value)


def symbolic_shaped_eqn(jaxpr):
    """(primitive name, "file:line") of the first equation of ``jaxpr``
    (nested ones too) whose result has a symbolic dimension (an
    ``all_gather`` over a batch axis bound at a symbolic size), or None."""
    for eqn in jaxpr.eqns:
        for v in eqn.outvars:
            shape = getattr(v.aval, "shape", ())
            if any(not isinstance(d, int) for d in shape):
                frame = source_info_util.user_frame(eqn.source_info.traceback)
                where = (f"{frame.file_name}:{frame.start_line}" if frame is not None
                         else "unknown")
                return eqn.primitive.name, where
        for sub in core.jaxprs_in_params(eqn.params):
            found = symbolic_shaped_eqn(sub)
            if found is not None:
                return found
    return None


# ---- custom_vmap -------------------------------------------------------------

def custom_vmap_call_location(jaxpr, differing_only: bool = False) -> str | None:
    """The user's "file:line" of the first ``custom_vmap_call`` in ``jaxpr``
    (a ClosedJaxpr; nested jaxprs too), None when there is none; with
    ``differing_only``, of the first whose rule may differ from its function
    (``custom_vmap_rule_batches_like_body``)."""
    for eqn in jaxpr.jaxpr.eqns if hasattr(jaxpr, "jaxpr") else jaxpr.eqns:
        if eqn.primitive is custom_batching.custom_vmap_p and not (
                differing_only and custom_vmap_rule_batches_like_body(eqn.params["rule"])):
            frame = source_info_util.user_frame(eqn.source_info.traceback)
            return f"{frame.file_name}:{frame.start_line}" if frame is not None else "unknown"
        for sub in core.jaxprs_in_params(eqn.params):
            found = custom_vmap_call_location(sub, differing_only)
            if found is not None:
                return found
    return None


_SAME_AS_BODY = "_stablehlo_batch_batches_like_its_body"


def mark_rule_batches_like_body(rule: Callable) -> Callable:
    """Marks a ``custom_vmap`` rule whose values are those of its function
    batched lane by lane (our ``vmappable``'s, which batches the same module
    with this rewrite), so a function using it can be batched by the rewrite."""
    setattr(rule, _SAME_AS_BODY, True)
    return rule


def _user_rules(rule):
    """The rules a ``custom_vmap_call``'s ``rule`` parameter applies: jax
    wraps the user's in a ``ClosedRule`` (``.rule``) and, under ``jax.jvp``,
    in a ``jvp_of_rule_rule`` closure over that."""
    if isinstance(rule, custom_batching.ClosedRule):
        yield from _user_rules(rule.rule)
    elif getattr(rule, "__name__", "") == "jvp_of_rule_rule" and \
            getattr(rule, "__module__", "") == custom_batching.__name__:
        for cell in rule.__closure__ or ():
            inner = cell.cell_contents
            if isinstance(inner, custom_batching.ClosedRule) or callable(inner) and \
                    getattr(inner, "__name__", "") == "jvp_of_rule_rule":
                yield from _user_rules(inner)
    else:
        yield rule


def custom_vmap_rule_batches_like_body(rule) -> bool:
    """Whether every user rule in a ``custom_vmap_call``'s ``rule`` gives the
    values of the function batched lane by lane: ``jax.custom_batching.
    sequential_vmap``'s (a ``lax.map`` of the function) and the rules marked
    by ``mark_rule_batches_like_body``. Any other rule may compute something
    else than the function (jax.vmap uses the rule, the rewrite sees only the
    function: a custom_vmap is inlined when lowered)."""
    rules = list(_user_rules(rule))
    return bool(rules) and all(
        getattr(r, _SAME_AS_BODY, False)
        or (getattr(r, "__module__", "") == custom_batching.__name__
            and getattr(r, "__qualname__", "") == "sequential_vmap.<locals>.rule")
        for r in rules)


def _custom_vmap_location(ctx, rule) -> str:
    """The user's "file:line" of a ``custom_vmap_call`` being lowered: the
    equation's user frame, else (no user line calls it: batch_lower of the
    custom_vmap function itself) the rule's own source, else MLIR's."""
    frame = (source_info_util.user_frame(ctx.traceback)
             if ctx.traceback is not None else None)
    if frame is not None:
        return f"{frame.file_name}:{frame.start_line}"
    debug = getattr(rule, "debug", None)  # a ClosedRule's: the rule's own source
    if getattr(debug, "func_filename", None):
        return (f"{debug.func_filename}:{debug.func_lineno} "
                f"(the custom_vmap rule {debug.func_name})")
    return str(ir.Location.current)


def lower_custom_vmap_when_batching(placeholder: Callable) -> None:
    """Wraps jax's lowering of ``custom_vmap_call`` (once per process): while
    a function is traced to be batched by our rewrite
    (``is_tracing_to_batch``), a custom_vmap whose rule may differ from its
    function is lowered by ``placeholder(ctx, args, params, location)``
    (``params``: the equation's, ``rule`` included; ``location``: the user's
    "file:line"), which emits an op the rewrite replaces by the rule's
    lowering (custom_vmap.py), instead of being inlined as the function,
    which the rewrite would batch without the rule; elsewhere jax's lowering
    runs unchanged. If jax renames the primitive or its lowering table, such
    functions are batched as their bodies again
    (``tests/jax_ports/test_jax_custom_api.py`` fails)."""
    prim = custom_batching.custom_vmap_p
    entry = jax_mlir._lowerings.get(prim)
    if entry is None or getattr(entry.rule, "_stablehlo_batch", False):
        return
    original = entry.rule

    def lowering(ctx, *args, rule, **params):
        if is_tracing_to_batch() and not custom_vmap_rule_batches_like_body(rule):
            return placeholder(ctx, list(args), dict(params, rule=rule),
                               _custom_vmap_location(ctx, rule))
        return original(ctx, *args, rule=rule, **params)
    lowering._stablehlo_batch = True
    jax_mlir._lowerings[prim] = dataclasses.replace(entry, rule=lowering)
    # Lowered inline (not through jax's per-module cache of lowerings), the
    # rule's context carries the equation's traceback, hence the user's line.
    jax_mlir._uncacheable_primitives.add(prim)


def custom_vmap_effects(params) -> bool:
    """Whether a ``custom_vmap_call`` (its equation's ``params``) has effects."""
    return bool(params["call"].effects)


def custom_vmap_body(params) -> Callable:
    """The function of a ``custom_vmap_call`` (its ``params``), flat:
    what jax's own lowering inlines."""
    return core.jaxpr_as_fun(params["call"])


def apply_custom_vmap_rule(params, flat_args, in_batched) -> tuple[list, list[bool]]:
    """What jax.vmap computes for a ``custom_vmap_call`` (its ``params``)
    whose flat arguments ``flat_args`` are batched on axis 0 where
    ``in_batched`` says: jax's batching rule of the primitive
    (``custom_batching.custom_vmap_batching``, which calls the user's rule
    with the axis size and the batched flags and checks its trees). Returns
    the flat results and which are batched (on axis 0). If jax changes the
    rule's signature, batch_lower of a custom_vmap fails
    (tests/jax_ports/test_jax_custom_api.py)."""
    dims = [0 if b else None for b in in_batched]
    outs, out_dims = custom_batching.custom_vmap_batching(list(flat_args), dims, **params)
    return list(outs), [d is not None for d in out_dims]
