"""dot_general.

When one side is batched its batch dimension becomes one more free dimension
of that side: one larger matrix product, no batching dimension, and the other
side (usually a weight) is never broadcast. When both sides are batched the
batch dimension becomes a leading batching dimension.
"""
from __future__ import annotations

from jaxlib.mlir import ir
from jaxlib.mlir.dialects import stablehlo

from stablehlo_batch.passes import builders as bld
from stablehlo_batch.passes.rules import register
from stablehlo_batch.passes.rules.helpers import retype_batched, shift_dims as _plus1

_DN = "dot_dimension_numbers"


def _numbers(op):
    dn = stablehlo.DotDimensionNumbers(op.attributes[_DN])
    return (list(dn.lhs_batching_dimensions), list(dn.rhs_batching_dimensions),
            list(dn.lhs_contracting_dimensions), list(dn.rhs_contracting_dimensions))


@register("stablehlo.dot_general", costly=True)
def dot_general(fb, op, flags):
    lhs, rhs = op.operands
    lhs_b, rhs_b = flags
    lbd, rbd, lcd, rcd = _numbers(op)
    out = bld.shape_of(op.results[0])
    elem = bld.element_type(op.results[0])
    size = fb.batch_dim
    if lhs_b and rhs_b:
        op.attributes[_DN] = stablehlo.DotDimensionNumbers.get(
            [0] + _plus1(lbd), [0] + _plus1(rbd), _plus1(lcd), _plus1(rcd))
        return retype_batched(fb, op)

    attrs = bld.attributes_of(op)
    nb = len(lbd)
    lhs_free = bld.rank_of(lhs) - lhs_b - nb - len(lcd)
    rhs_free = bld.rank_of(rhs) - rhs_b - nb - len(rcd)
    if lhs_b:
        numbers = (_plus1(lbd), rbd, _plus1(lcd), rcd)
        batch_pos = nb
        operands = [lhs, rhs]
    elif nb == 0 and rhs_free == 0 and lhs_free > 0 and "algorithm" not in attrs:
        # lhs[m, k] . rhs[B, k]: swapping the sides yields [B, m] directly,
        # where the unswapped product would need a transpose of [m, B].
        numbers = ([], [], _plus1(rcd), lcd)
        batch_pos = 0
        operands = [rhs, lhs]
        if "precision_config" in attrs:
            pc = ir.ArrayAttr(attrs["precision_config"])
            attrs["precision_config"] = ir.ArrayAttr.get([pc[1], pc[0]])
    else:
        numbers = (lbd, _plus1(rbd), lcd, _plus1(rcd))
        batch_pos = nb + lhs_free
        operands = [lhs, rhs]
    attrs[_DN] = stablehlo.DotDimensionNumbers.get(*numbers)
    shape = out[:batch_pos] + [size] + out[batch_pos:]
    new = bld.create("stablehlo.dot_general", [bld.tensor_type(shape, elem)],
                     operands, attrs).result
    return [(bld.move_axis(new, batch_pos, 0), True)]
