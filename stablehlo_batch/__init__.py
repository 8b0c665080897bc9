"""stablehlo-batch: jax.vmap for StableHLO modules.

``batch_lower(fn, in_axes, out_axes)`` behaves like ``jax.vmap`` but batches
the lowered IR; ``batch_module`` batches a module given as text or bytecode;
``stablehlo-batch-opt`` is the command-line tool; ``register_rule`` adds a
user's batching rule for an op or a custom call target; ``batch_exported``
and ``vmappable`` batch ``jax.export.Exported`` artifacts.

The names are imported on first use (PEP 562), so that importing
``stablehlo_batch.cli`` can configure XLA's logging before jax loads.
"""
import importlib
import importlib.metadata

_P = "stablehlo_batch.passes"
_EXPORTS = {
    "batch_lower": "stablehlo_batch.api", "batch_module": "stablehlo_batch.api",
    "BatchedFunction": "stablehlo_batch.api", "Lowered": "stablehlo_batch.api",
    "Compiled": "stablehlo_batch.api",
    "BatchingError": f"{_P}.errors", "UnsupportedOpError": f"{_P}.errors",
    "VerificationError": f"{_P}.errors", "AxisSpecError": f"{_P}.errors",
    "ModuleParseError": "stablehlo_batch.module_io",
    "FallbackWarning": f"{_P}.fallback", "per_lane": f"{_P}.fallback",
    "register_rule": f"{_P}.rules", "unregister_rule": f"{_P}.rules",
    "batch_exported": "stablehlo_batch.export", "vmappable": "stablehlo_batch.export",
    "batching_pass": "stablehlo_batch.pipeline",
    "spmd_to_batch": "stablehlo_batch.named_axes",
    "BatchMismatchError": "stablehlo_batch.selfcheck",
}
__all__ = list(_EXPORTS)
try:  # the one version number is pyproject.toml's, read from the installed metadata
    __version__ = importlib.metadata.version("stablehlo-batch")
except importlib.metadata.PackageNotFoundError:  # a source tree that is not installed
    __version__ = "0+unknown"


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'stablehlo_batch' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
