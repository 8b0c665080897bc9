"""Ops that move data without arithmetic: broadcast_in_dim, reshape,
transpose, slice, concatenate, pad, reverse, broadcast, get_dimension_size.

With the batch dimension first, each of these only shifts its dimension
attributes by one and prepends the batch size to its result type.
"""
from __future__ import annotations

from jaxlib.mlir import ir

from stablehlo_batch.passes import builders as bld
from stablehlo_batch.passes.rules import register
from stablehlo_batch.passes.rules.helpers import (i64_dims as _dims, materialize_operands, retype_batched,
                                   shift_dim_attr, shift_dims, shift_dims_attr)


@register("stablehlo.reshape")
def reshape(fb, op, flags):
    if fb.symbolic:  # reshape needs a static result: dynamic_reshape instead
        return [(bld.reshape(op.operands[0], [fb.batch_dim] + bld.shape_of(op.results[0])),
                 True)]
    return retype_batched(fb, op)


@register("stablehlo.broadcast_in_dim")
def broadcast_in_dim(fb, op, flags):
    dims = [0] + shift_dims(_dims(op, "broadcast_dimensions"))
    if fb.symbolic:  # a static result type is required: the dynamic op instead
        return [(bld.broadcast_in_dim(op.operands[0],
                                      [fb.batch_dim] + bld.shape_of(op.results[0]), dims),
                 True)]
    op.attributes["broadcast_dimensions"] = bld.i64_array(dims)
    return retype_batched(fb, op)


@register("stablehlo.broadcast")
def broadcast(fb, op, flags):
    # broadcast prepends its new dims, which would land before the batch dim.
    x = op.operands[0]
    out_shape = [fb.batch_dim] + bld.shape_of(op.results[0])
    n_new = len(_dims(op, "broadcast_sizes"))
    dims = [0] + list(range(1 + n_new, len(out_shape)))
    return [(bld.broadcast_in_dim(x, out_shape, dims), True)]


@register("stablehlo.transpose")
def transpose(fb, op, flags):
    op.attributes["permutation"] = bld.i64_array([0] + shift_dims(_dims(op, "permutation")))
    return retype_batched(fb, op)


@register("stablehlo.slice")
def slice_(fb, op, flags):
    if fb.symbolic:  # the batch dim's limit is only known at run time
        return [(bld.slice_(op.operands[0], [0] + _dims(op, "start_indices"),
                            [fb.batch_dim] + _dims(op, "limit_indices"),
                            [1] + _dims(op, "strides")), True)]
    _shift_slice(fb, op)
    return retype_batched(fb, op)


def _shift_slice(fb, op):
    op.attributes["start_indices"] = bld.i64_array([0] + _dims(op, "start_indices"))
    op.attributes["limit_indices"] = bld.i64_array(
        [fb.axis_size] + _dims(op, "limit_indices"))
    op.attributes["strides"] = bld.i64_array([1] + _dims(op, "strides"))


@register("stablehlo.reverse")
def reverse(fb, op, flags):
    shift_dims_attr(op, "dimensions")
    return retype_batched(fb, op)


@register("stablehlo.concatenate")
def concatenate(fb, op, flags):
    materialize_operands(fb, op, flags)
    shift_dim_attr(op, "dimension")
    return retype_batched(fb, op)


@register("stablehlo.pad")
def pad(fb, op, flags):
    x, padding_value = op.operands
    x_batched, pv_batched = flags
    if not pv_batched:
        for name in ("edge_padding_low", "edge_padding_high", "interior_padding"):
            shift_dims_attr(op, name, head=0)
        return retype_batched(fb, op)
    # A per-lane padding value: pad with a placeholder, pad a mask the same
    # way, and pick each lane's padding value where the mask says "padding".
    lo, hi, interior = (_dims(op, n) for n in
                        ("edge_padding_low", "edge_padding_high", "interior_padding"))
    elem = bld.element_type(padding_value)
    pv_shape = bld.shape_of(op.results[0])
    if isinstance(elem, ir.ComplexType):
        # splat makes no complex constants; the placeholder's value is unused.
        zero = bld.create("stablehlo.convert", [bld.tensor_type([], elem)],
                          [bld.splat(ir.ComplexType(elem).element_type, [], 0)]).result
    else:
        zero = bld.splat(elem, [], 0)
    data = _pad(x, zero, lo, hi, interior, x_batched)
    in_shape = bld.shape_of(x)[1 if x_batched else 0:]
    mask = _pad(bld.splat(ir.IntegerType.get_signless(1), in_shape, 1),
                bld.splat(ir.IntegerType.get_signless(1), [], 0), lo, hi, interior, False)
    full = [fb.batch_dim] + pv_shape
    pv = bld.broadcast_in_dim(padding_value, full, [0])
    mask = bld.broadcast_in_dim(mask, full, list(range(1, len(full))))
    return [(bld.select(mask, fb.materialize(data) if not x_batched else data, pv), True)]


def _pad(x, pv, lo, hi, interior, batched):
    head = [0] if batched else []
    shape = bld.shape_of(x)
    lo, hi, interior = head + lo, head + hi, head + interior
    out = [lo[d] + hi[d] + s + max(s - 1, 0) * interior[d] for d, s in enumerate(shape)]
    return bld.create("stablehlo.pad", [bld.tensor_type(out, bld.element_type(x))],
                      [x, pv], {"edge_padding_low": bld.i64_array(lo),
                                "edge_padding_high": bld.i64_array(hi),
                                "interior_padding": bld.i64_array(interior)}).result


# The size of a per-example dim is the same in every lane: never batched.
@register("stablehlo.get_dimension_size", predict=lambda p, op, ins: [False])
def get_dimension_size(fb, op, flags):
    shift_dim_attr(op, "dimension")
    return [(op.results[0], False)]
