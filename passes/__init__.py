"""The IR rewrite: a batching engine over StableHLO and per-op batching rules.

``batch_function_in_module`` is the entry point; ``rules.RULES`` is the rule
table (op names and custom call targets -> batching rules).
"""
from stablehlo_batch.passes.errors import (AxisSpecError, BatchingError, UnsupportedOpError,
                           VerificationError)
from stablehlo_batch.passes.engine import ModuleBatcher, batch_function_in_module
from stablehlo_batch.passes.rules import RULES, RuleTable, register_rule, unregister_rule
from stablehlo_batch.passes.fallback import FallbackWarning, per_lane, strict_mode

__all__ = ["AxisSpecError", "BatchingError", "UnsupportedOpError",
           "VerificationError", "ModuleBatcher", "batch_function_in_module",
           "RULES", "RuleTable", "register_rule", "unregister_rule", "FallbackWarning", "per_lane",
           "strict_mode"]
