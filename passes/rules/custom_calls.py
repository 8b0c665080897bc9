"""Ops that annotate a value without changing it: sharding constraints
(``sdy.sharding_constraint``, ``custom_call @Sharding``) and the custom-call
dispatch by target name that later rules (linear algebra) extend.
"""
from __future__ import annotations

from jaxlib.mlir import ir

from passes.rules import register, retype_batched

# custom_call target name -> rule, like RULES but keyed by call_target_name.
CUSTOM_CALL_RULES: dict = {}


def register_custom_call(*targets: str):
    def wrap(fn):
        for t in targets:
            CUSTOM_CALL_RULES[t] = fn
        return fn
    return wrap


@register("stablehlo.custom_call")
def custom_call(fb, op, flags):
    target = ir.StringAttr(op.attributes["call_target_name"]).value
    rule = CUSTOM_CALL_RULES.get(target)
    if rule is None:
        from passes.fallback import fallback
        return fallback(fb, op, flags, f"custom call target @{target} has no batching rule")
    return rule(fb, op, flags)


@register("sdy.sharding_constraint")
def sharding_constraint(fb, op, flags):
    # The constraint names one sharding per dim of the per-example value; the
    # values are unchanged by it, so the batched value goes through
    # unannotated and XLA's partitioner decides for the batch dim.
    return [(op.operands[0], True)]


@register_custom_call("Sharding")
def sharding_marker(fb, op, flags):
    sharding = op.attributes["mhlo.sharding"] if "mhlo.sharding" in op.attributes else None
    if sharding is not None and ir.StringAttr(sharding).value.strip() in (
            "{replicated}", "{maximal device=0}"):
        return retype_batched(fb, op)  # still true of the batched value
    return [(op.operands[0], True)]
