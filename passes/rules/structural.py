"""Ops that structure a program: func.call, optimization_barrier, tuple and
get_tuple_element.
"""
from __future__ import annotations

from jaxlib.mlir import ir

from passes.rules import all_batched, register, retype_batched


@register("func.call")
def call(fb, op, flags):
    callee = ir.FlatSymbolRefAttr(op.attributes["callee"]).value
    new_name, result_flags = fb.program.batch_callee(callee, tuple(flags))
    op.attributes["callee"] = ir.FlatSymbolRefAttr.get(new_name)
    for r, batched in zip(op.results, result_flags):
        if batched:
            r.set_type(fb.batched_type(r.type))
    return list(zip(op.results, result_flags))


@register("stablehlo.optimization_barrier")
def optimization_barrier(fb, op, flags):
    # Each result aliases its operand, so batched-ness passes straight through.
    for r, batched in zip(op.results, flags):
        if batched:
            r.set_type(fb.batched_type(r.type))
    return list(zip(op.results, flags))


@register("stablehlo.tuple")
def tuple_(fb, op, flags):
    # A tuple value has one batched flag, so its elements are all made batched.
    for i, (v, batched) in enumerate(zip(list(op.operands), flags)):
        if not batched:
            op.operands[i] = fb.materialize(v)
    return retype_batched(fb, op)


@register("stablehlo.get_tuple_element")
def get_tuple_element(fb, op, flags):
    return retype_batched(fb, op)
