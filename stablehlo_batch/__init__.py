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

_EXPORTS = {
    "batch_lower": "stablehlo_batch.api", "batch_module": "stablehlo_batch.api",
    "BatchedFunction": "stablehlo_batch.api", "Lowered": "stablehlo_batch.api",
    "Compiled": "stablehlo_batch.api",
    "BatchingError": "passes.errors", "UnsupportedOpError": "passes.errors",
    "VerificationError": "passes.errors", "AxisSpecError": "passes.errors",
    "ModuleParseError": "stablehlo_batch.module_io",
    "FallbackWarning": "passes.fallback", "per_lane": "passes.fallback",
    "register_rule": "passes.rules", "unregister_rule": "passes.rules",
    "batch_exported": "stablehlo_batch.export", "vmappable": "stablehlo_batch.export",
    "batching_pass": "stablehlo_batch.pipeline",
    "spmd_to_batch": "stablehlo_batch.named_axes",
}
__all__ = list(_EXPORTS)
__version__ = "0.1.0"


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'stablehlo_batch' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
