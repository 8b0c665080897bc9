"""Ops that structure a program: func.call, optimization_barrier, tuple and
get_tuple_element.
"""
from __future__ import annotations

from typing import Callable

from jaxlib.mlir import ir

from stablehlo_batch.passes.errors import UnsupportedOpError, format_location
from stablehlo_batch.passes.rules import register
from stablehlo_batch.passes.rules.helpers import materialize_operands, retype_batched, retype_results
from stablehlo_batch.passes.rules.elementwise import CHLO_ELEMENTWISE


# Private functions that stand for a call the rewrite must not batch as its
# body, by name prefix: ``rule(fb, op, flags)`` batches such a call instead
# (registered from the jax glue: a custom_vmap's function, whose batched form
# is its vmap rule, stablehlo_batch/custom_vmap.py).
CALL_RULES: dict[str, Callable] = {}


def register_call_rule(prefix: str, rule: Callable) -> None:
    """Calls of functions whose name starts with ``prefix`` are batched by ``rule``."""
    CALL_RULES[prefix] = rule


def _call_rule(callee: str) -> Callable | None:
    return next((r for prefix, r in CALL_RULES.items() if callee.startswith(prefix)), None)


def _predict_call(p, op, ins):
    """The callee's body decides which results are batched (a call with its
    own rule: every result, as for ops without a prediction)."""
    callee = ir.FlatSymbolRefAttr(op.attributes["callee"]).value
    if _call_rule(callee) is not None:
        return [True] * len(op.results)
    return p.callee(callee, ins)


@register("func.call", predict=_predict_call, costly=True)
def call(fb, op, flags):
    callee = ir.FlatSymbolRefAttr(op.attributes["callee"]).value
    special = _call_rule(callee)
    if special is not None:
        return special(fb, op, flags)
    declared = fb.program.lookup_func(callee)
    if not len(declared.regions[0].blocks):
        # An external declaration: nothing to batch (the engine adds the call site).
        raise UnsupportedOpError(op.name, fb.func_name, format_location(declared.location),
                                 f"@{callee} is only declared, it has no body to batch")
    new_name, result_flags = fb.program.batch_callee(callee, tuple(flags))
    op.attributes["callee"] = ir.FlatSymbolRefAttr.get(new_name)
    return retype_results(fb, op, result_flags)


# Each result aliases its operand, so batched-ness passes straight through.
@register("stablehlo.optimization_barrier", predict=lambda p, op, ins: list(ins))
def optimization_barrier(fb, op, flags):
    return retype_results(fb, op, flags)


@register("stablehlo.tuple")
def tuple_(fb, op, flags):
    # A tuple value has one batched flag, so its elements are all made batched.
    materialize_operands(fb, op, flags)
    return retype_batched(fb, op)


@register("stablehlo.get_tuple_element")
def get_tuple_element(fb, op, flags):
    return retype_batched(fb, op)


def _keeps_meaning_with_leading_dims(name: str) -> bool:
    """Composites whose named op means the same on tensors with extra leading
    dims (elementwise ops, top_k over the last dim): a backend that matches
    the name may still use its own kernel after batching."""
    return name == "chlo.top_k" or name.removeprefix("chlo.") in CHLO_ELEMENTWISE


@register("stablehlo.composite")
def composite(fb, op, flags):
    decomposition = ir.FlatSymbolRefAttr(op.attributes["decomposition"]).value
    name = ir.StringAttr(op.attributes["name"]).value
    keeps_name = _keeps_meaning_with_leading_dims(name)
    if keeps_name:
        # A backend may expand the name instead of the decomposition, and the
        # named op needs same-shape operands: broadcast the unbatched ones.
        materialize_operands(fb, op, flags)
        flags = (True,) * len(flags)
    new_name, result_flags = fb.program.batch_callee(decomposition, tuple(flags))
    if keeps_name:
        op.attributes["decomposition"] = ir.FlatSymbolRefAttr.get(new_name)
        return retype_results(fb, op, result_flags)
    # Any other composite becomes a call of its batched decomposition, which
    # is what it means; a backend must not match its name on batched shapes.
    types = [fb.batched_type(r.type) if b else r.type
             for r, b in zip(op.results, result_flags)]
    call_op = ir.Operation.create("func.call", results=types, operands=list(op.operands),
                                  attributes={"callee": ir.FlatSymbolRefAttr.get(new_name)})
    if not op.results:  # no result to replace tells the engine the op is gone
        fb.drop(op)
    return list(zip(call_op.results, result_flags))
