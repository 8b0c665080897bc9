"""stablehlo-batch: jax.vmap for StableHLO modules.

``batch_lower(fn, in_axes, out_axes)`` behaves like ``jax.vmap`` but batches
the lowered IR; ``batch_module`` batches a module given as text or bytecode;
``stablehlo-batch-opt`` is the command-line tool; ``register_rule`` adds a
user's batching rule for an op or a custom call target; ``batch_exported``
and ``vmappable`` batch ``jax.export.Exported`` artifacts.
"""
from passes.errors import (AxisSpecError, BatchingError, UnsupportedOpError,
                           VerificationError)
from stablehlo_batch.api import (BatchedFunction, Compiled, Lowered, batch_lower,
                                 batch_module)
from stablehlo_batch.module_io import ModuleParseError
from stablehlo_batch.export import batch_exported, vmappable
from passes.fallback import FallbackWarning, per_lane
from passes.rules import register_rule, unregister_rule

__all__ = ["batch_lower", "batch_module", "BatchedFunction", "Lowered", "Compiled",
           "BatchingError", "UnsupportedOpError", "VerificationError",
           "AxisSpecError", "ModuleParseError", "FallbackWarning", "register_rule",
           "unregister_rule", "per_lane", "batch_exported", "vmappable"]
__version__ = "0.1.0"
