"""reduce (variadic, any dimensions, any body).

The body works on scalars and stays as it is; only the reduced dimensions
shift by one. Inputs reduced together must share a shape, so an unbatched
input is broadcast when another input is batched. Per-lane init values
and a body that uses a batched outer value have no one-op form: the rule
declines them (a per-lane loop, or an error under strict).
"""
from __future__ import annotations

from stablehlo_batch.passes.rules import register
from stablehlo_batch.passes.rules.helpers import materialize_operands, retype_batched, shift_dims_attr


@register("stablehlo.reduce", costly=True)
def reduce(fb, op, flags):
    n = len(op.operands) // 2
    if any(flags[n:]):
        # Folded in an implementation-defined number of times: no one-op form.
        fb.decline(op, "init values differ per batch element")
    if fb.region_captures_batched(op):
        fb.decline(op, "the reduction body uses a batched value from outside the op")
    materialize_operands(fb, op, flags, range(n))
    shift_dims_attr(op, "dimensions")
    return retype_batched(fb, op)
