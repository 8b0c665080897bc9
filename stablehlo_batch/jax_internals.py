"""Every private jax / jaxlib API this package uses, in one place (the one
exception is ``callbacks.py``, which swaps a jax lowering's module and needs
jax's callback and effect classes throughout: see its docstring).

Each function below wraps one private use: why we need it, and what breaks
if jax changes it. They are written against jax / jaxlib 0.10; when a jax
upgrade breaks one, this file is where to look (and the tests named below
are what notice).

- ``is_top_level_trace`` (``jax._src.core.trace_ctx``): whether
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
- ``collective_broadcast_lowering`` (``jax._src.interpreters.mlir``'s
  per-platform lowering table, ``jax._src.lax.parallel.pbroadcast_p`` and its
  lowering rule): ``lax.pbroadcast`` lowers to ``collective_broadcast`` for
  GPUs only; our rewrite takes it on any platform, so while a function is
  exported for a named batch axis it is lowered that way for the export's
  platform too. If it breaks, ``pbroadcast`` over a batch axis fails to
  export on CPU / TPU (tests/rules/test_collectives.py).
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
"""
from __future__ import annotations

import contextlib
import threading
from typing import Callable

from jax._src import config as jax_config, core, source_info_util, util
from jax._src.interpreters import mlir as jax_mlir
from jax._src.lax import parallel
from jaxlib.mlir import ir
from jaxlib.mlir._mlir_libs import _jax_mlir_ext

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

def is_top_level_trace() -> bool:
    """True outside every jax trace (jit, grad, vmap, scan, ...)."""
    return core.trace_ctx.is_top_level()


def exclude_from_source_info(path: str) -> None:
    """jax's source locations skip frames of files under ``path``."""
    source_info_util.register_exclusion(path)


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


def refine_shapes(bytecode: bytes) -> bytes | str:
    """A module with static argument shapes that calls shape-polymorphic
    functions (an ``Exported`` whose ``uses_global_constants`` is set, e.g.
    the call of a ``batch_lower(axis_size="b")`` plan), with every shape
    refined to a static one: jax runs this before XLA compiles such a module
    (``mlir.refine_polymorphic_shapes``); the rewrite needs it first."""
    return jax_mlir._jax.mlir.refine_polymorphic_shapes(
        mlir_module=bytecode, enable_shape_assertions=True, validate_static_shapes=True,
        enable_shardy=jax_config.use_shardy_partitioner.value)
