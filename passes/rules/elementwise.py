"""Elementwise ops of stablehlo and chlo, and chlo's implicitly broadcasting ops.

Same-shape elementwise ops need every operand at the full batched shape, so
an unbatched operand is broadcast only there. ``select`` and ``clamp`` accept
scalar operands, which stay scalar while unbatched.
"""
from __future__ import annotations

from jaxlib.mlir import ir

from stablehlo_batch.passes import builders as bld
from stablehlo_batch.passes.rules import register
from stablehlo_batch.passes.rules.helpers import retype_batched

STABLEHLO_ELEMENTWISE = """
abs add and atan2 cbrt ceil complex compare convert cosine
count_leading_zeros divide exponential exponential_minus_one floor imag
is_finite log log_plus_one logistic maximum minimum multiply negate not or
popcnt power real reduce_precision remainder round_nearest_afz
round_nearest_even rsqrt select clamp shift_left shift_right_arithmetic
shift_right_logical sign sine sqrt subtract tan tanh xor
""".split()

CHLO_ELEMENTWISE = """
acos acosh asin asinh atan atanh bessel_i1e conj cosh sinh digamma erf erfc
erf_inv is_inf is_neg_inf is_pos_inf lgamma square tan polygamma zeta
next_after mulhi _asin_acos_kernel
""".split()

CHLO_BROADCASTING = """
broadcast_add broadcast_and broadcast_atan2 broadcast_compare
broadcast_complex broadcast_divide broadcast_maximum broadcast_minimum
broadcast_multiply broadcast_next_after broadcast_or broadcast_polygamma
broadcast_power broadcast_remainder broadcast_select broadcast_shift_left
broadcast_shift_right_arithmetic broadcast_shift_right_logical
broadcast_subtract broadcast_xor broadcast_zeta
""".split()

# Operand positions that may be a rank-0 tensor while the result is not.
_SCALAR_OPERANDS = {"stablehlo.select": (0,), "stablehlo.clamp": (0, 2)}


@register(*[f"stablehlo.{n}" for n in STABLEHLO_ELEMENTWISE],
          *[f"chlo.{n}" for n in CHLO_ELEMENTWISE])
def elementwise(fb, op, flags):
    out_shape = [fb.batch_dim] + bld.shape_of(op.results[0])
    scalar_ok = _SCALAR_OPERANDS.get(op.name, ())
    for i, (v, batched) in enumerate(zip(list(op.operands), flags)):
        per_example_rank = bld.rank_of(v) - batched
        if i in scalar_ok and per_example_rank == 0 and len(out_shape) > 1:
            if batched:  # a per-lane scalar must cover its lane's whole tensor
                op.operands[i] = bld.broadcast_in_dim(v, out_shape, [0])
            continue
        if not batched:
            op.operands[i] = fb.materialize(v)
    return retype_batched(fb, op)


@register(*[f"chlo.{n}" for n in CHLO_BROADCASTING])
def implicit_broadcasting(fb, op, flags):
    # Numpy-style broadcasting aligns trailing dims, so a batched operand gets
    # unit dims after its batch dim up to the result's rank; unbatched
    # operands broadcast against the batch dim by themselves.
    if "broadcast_dimensions" in op.attributes:
        raise fb.unsupported(op, "explicit broadcast_dimensions are not supported")
    result = bld.ranked(op.results[0].type)
    if result is None:
        raise fb.unsupported(op, "unranked results are not supported")
    rank = result.rank
    for i, (v, batched) in enumerate(zip(list(op.operands), flags)):
        if batched:
            shape = bld.shape_of(v)
            op.operands[i] = bld.reshape(
                v, shape[:1] + [1] * (rank + 1 - len(shape)) + shape[1:])
    return retype_batched(fb, op)


@register("stablehlo.bitcast_convert")
def bitcast_convert(fb, op, flags):
    # A width-changing bitcast adds or drops a trailing dim; with a symbolic
    # batch size shape refinement cannot infer that result, so it runs per
    # lane, each lane with static shapes.
    if fb.symbolic and bld.rank_of(op.operands[0]) - 1 != bld.rank_of(op.results[0]):
        fb.decline(op, "a width-changing bitcast_convert needs static shapes "
                       "and the batch size is symbolic")
    return elementwise(fb, op, flags)
