"""stablehlo-batch: jax.vmap for StableHLO modules.

``batch_lower(fn, in_axes, out_axes)`` behaves like ``jax.vmap`` but batches
the lowered IR; ``batch_module`` batches a module given as text or bytecode;
``stablehlo-batch-opt`` is the command-line tool.
"""
from passes.errors import (AxisSpecError, BatchingError, UnsupportedOpError,
                           VerificationError)
from stablehlo_batch.api import (BatchedFunction, Compiled, Lowered, batch_lower,
                                 batch_module)
from stablehlo_batch.module_io import ModuleParseError

__all__ = ["batch_lower", "batch_module", "BatchedFunction", "Lowered", "Compiled",
           "BatchingError", "UnsupportedOpError", "VerificationError",
           "AxisSpecError", "ModuleParseError"]
__version__ = "0.1.0"
