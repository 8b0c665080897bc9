"""reduce (variadic, any dimensions, any body).

The body works on scalars and stays as it is; only the reduced dimensions
shift by one. Inputs reduced together must share a shape, so an unbatched
input is broadcast when another input is batched.
"""
from __future__ import annotations

from jaxlib.mlir import ir

from stablehlo_batch.passes import builders as bld
from stablehlo_batch.passes.rules import register, retype_batched


@register("stablehlo.reduce")
def reduce(fb, op, flags):
    n = len(op.operands) // 2
    if any(flags[n:]):
        raise fb.unsupported(op, "init values that differ per batch element "
                                 "are not supported")
    if fb.region_captures_batched(op):
        raise fb.unsupported(op, "the reduction body uses a batched value from "
                                 "outside the op")
    for i in range(n):
        if not flags[i]:
            op.operands[i] = fb.materialize(op.operands[i])
    dims = list(ir.DenseI64ArrayAttr(op.attributes["dimensions"]))
    op.attributes["dimensions"] = bld.i64_array([d + 1 for d in dims])
    return retype_batched(fb, op)
