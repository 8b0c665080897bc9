"""Indexing by computed positions: dynamic_slice and dynamic_update_slice.

Unbatched start indices keep the op a plain dynamic slice (start 0 on the
batch dim) -- the shape of a scan's per-step slice. Per-lane start indices
become a gather / scatter that uses StableHLO's batching dimensions, with the
same clamping as the original op. gather and scatter shift their
dimension numbers past the batch dim (or make it a batching dim); a scatter
whose update computation uses a batched outer value is declined (per lane).
"""
from __future__ import annotations

from jaxlib.mlir import ir
from jaxlib.mlir.dialects import stablehlo

from stablehlo_batch.passes import builders as bld
from stablehlo_batch.passes.rules import register
from stablehlo_batch.passes.rules.helpers import (i64_dims, materialize_operands, retype_batched,
                                   shift_dims as _shift)


def _lane_slice(fb) -> int:
    """The slice size of a gather's batching dim: one lane, or 0 when the
    batch is empty (a batching dim's slice must fit in the operand)."""
    return 0 if fb.batch_dim == 0 else 1


def _zero_start(indices) -> ir.Value:
    """The start index 0 for the new batch dim, of the other starts' type
    (i32 when the op has none: a slice of a scalar)."""
    elem = bld.element_type(indices[0]) if indices else ir.IntegerType.get_signless(32)
    return bld.splat(elem, [], 0)


def _index_vectors(fb, indices, flags, limits=None):
    """Per-lane start indices as one [B, n] tensor. ``limits[d]`` (if given)
    clamps index d to [0, limits[d]] as dynamic_update_slice does."""
    size = fb.batch_dim
    elem = bld.element_type(indices[0])
    columns = []
    for d, (v, batched) in enumerate(zip(indices, flags)):
        if bld.element_type(v) != elem:
            v = bld.create("stablehlo.convert", [bld.tensor_type(bld.shape_of(v), elem)],
                           [v]).result
        if limits is not None:
            v = bld.create("stablehlo.clamp", [v.type],
                           [bld.splat(elem, [], 0), v, bld.splat(elem, [], limits[d])]).result
        column = v if batched else bld.broadcast_in_dim(v, [size], [])
        columns.append(bld.reshape(column, [size, 1]))
    if len(columns) == 1:
        return columns[0]
    return bld.create("stablehlo.concatenate", [bld.tensor_type([size, len(columns)], elem)],
                      columns, {"dimension": bld.i64_attr(1)}).result


@register("stablehlo.dynamic_slice")
def dynamic_slice(fb, op, flags):
    operand, *indices = op.operands
    operand_b, index_flags = flags[0], flags[1:]
    sizes = i64_dims(op, "slice_sizes")
    if not indices:  # a slice of a scalar: the scalar (also at a symbolic size)
        return [(operand, operand_b)]
    # A symbolic batch size cannot be a slice size: the starts then go per
    # lane through the gather below (same clamping, batch kept as a batching dim).
    if not any(index_flags) and not fb.symbolic:
        zero = _zero_start(indices)
        new = bld.create("stablehlo.dynamic_slice",
                         [fb.batched_type(op.results[0].type)],
                         [operand, zero, *indices],
                         {"slice_sizes": bld.i64_array([fb.axis_size] + sizes)}).result
        return [(new, True)]
    n = len(sizes)
    starts = _index_vectors(fb, indices, index_flags)
    if operand_b:
        numbers = stablehlo.GatherDimensionNumbers.get(
            offset_dims=list(range(1, n + 1)), collapsed_slice_dims=[],
            operand_batching_dims=[0], start_indices_batching_dims=[0],
            start_index_map=list(range(1, n + 1)), index_vector_dim=1)
        slice_sizes = [_lane_slice(fb)] + sizes
    else:  # gather straight from the unbatched operand: it is never copied per lane
        numbers = stablehlo.GatherDimensionNumbers.get(
            offset_dims=list(range(1, n + 1)), collapsed_slice_dims=[],
            operand_batching_dims=[], start_indices_batching_dims=[],
            start_index_map=list(range(n)), index_vector_dim=1)
        slice_sizes = sizes
    new = bld.create("stablehlo.gather", [fb.batched_type(op.results[0].type)],
                     [operand, starts],
                     {"dimension_numbers": numbers,
                      "slice_sizes": bld.i64_array(slice_sizes),
                      "indices_are_sorted": ir.BoolAttr.get(False)}).result
    return [(new, True)]


@register("stablehlo.dynamic_update_slice")
def dynamic_update_slice(fb, op, flags):
    operand, update, *indices = op.operands
    index_flags = flags[2:]
    operand = fb.materialize(operand)
    update = fb.materialize(update)
    if not any(index_flags):
        zero = _zero_start(indices)
        new = bld.create("stablehlo.dynamic_update_slice", [operand.type],
                         [operand, update, zero, *indices]).result
        return [(new, True)]
    operand_shape = bld.shape_of(operand)[1:]
    update_shape = bld.shape_of(update)[1:]
    n = len(operand_shape)
    # scatter skips out-of-bounds windows where dynamic_update_slice clamps.
    limits = [o - u for o, u in zip(operand_shape, update_shape)]
    starts = _index_vectors(fb, indices, index_flags, limits)
    numbers = stablehlo.ScatterDimensionNumbers.get(
        update_window_dims=list(range(1, n + 1)), inserted_window_dims=[],
        input_batching_dims=[0], scatter_indices_batching_dims=[0],
        scattered_dims_to_operand_dims=list(range(1, n + 1)), index_vector_dim=1)
    scatter = bld.create("stablehlo.scatter", [operand.type], [operand, starts, update],
                         {"scatter_dimension_numbers": numbers,
                          "indices_are_sorted": ir.BoolAttr.get(True),
                          "unique_indices": ir.BoolAttr.get(True)}, regions=1)
    scalar = bld.tensor_type([], bld.element_type(operand))
    block = scatter.regions[0].blocks.append(scalar, scalar)
    with ir.InsertionPoint(block):
        bld.create("stablehlo.return", [], [block.arguments[1]])
    return [(scatter.result, True)]


@register("stablehlo.gather", costly=True)
def gather(fb, op, flags):
    operand, indices = op.operands
    operand_b, indices_b = flags
    dn = stablehlo.GatherDimensionNumbers(op.attributes["dimension_numbers"])
    offset, collapsed = list(dn.offset_dims), list(dn.collapsed_slice_dims)
    op_batching, idx_batching = list(dn.operand_batching_dims), list(dn.start_indices_batching_dims)
    index_map, ivd = list(dn.start_index_map), dn.index_vector_dim
    sizes = i64_dims(op, "slice_sizes")
    if operand_b and not indices_b and fb.symbolic:
        # A symbolic batch size cannot be a slice size: per-lane indices instead.
        op.operands[1] = fb.materialize(indices)
        indices_b = True
    if operand_b and not indices_b:
        # The batch becomes a full-size window dim; being the first operand
        # dim it lands on the first output dim.
        numbers = stablehlo.GatherDimensionNumbers.get(
            offset_dims=[0] + _shift(offset), collapsed_slice_dims=_shift(collapsed),
            operand_batching_dims=_shift(op_batching), start_indices_batching_dims=idx_batching,
            start_index_map=_shift(index_map), index_vector_dim=ivd)
        sizes = [fb.axis_size] + sizes
    elif indices_b and not operand_b:
        # The batch is one more index dim: a lookup into an unbatched table
        # (an embedding, say) that is never copied per lane.
        numbers = stablehlo.GatherDimensionNumbers.get(
            offset_dims=_shift(offset), collapsed_slice_dims=collapsed,
            operand_batching_dims=op_batching, start_indices_batching_dims=_shift(idx_batching),
            start_index_map=index_map, index_vector_dim=ivd + 1)
        op.attributes["indices_are_sorted"] = ir.BoolAttr.get(False)
    else:
        numbers = stablehlo.GatherDimensionNumbers.get(
            offset_dims=_shift(offset), collapsed_slice_dims=_shift(collapsed),
            operand_batching_dims=[0] + _shift(op_batching),
            start_indices_batching_dims=[0] + _shift(idx_batching),
            start_index_map=_shift(index_map), index_vector_dim=ivd + 1)
        sizes = [_lane_slice(fb)] + sizes
        op.attributes["indices_are_sorted"] = ir.BoolAttr.get(False)
    op.attributes["dimension_numbers"] = numbers
    op.attributes["slice_sizes"] = bld.i64_array(sizes)
    return retype_batched(fb, op)


@register("stablehlo.scatter", costly=True)
def scatter(fb, op, flags):
    if fb.region_captures_batched(op):
        fb.decline(op, "the update computation uses a batched value from outside the op")
    n = (len(op.operands) - 1) // 2
    indices_b = flags[n]
    dn = stablehlo.ScatterDimensionNumbers(op.attributes["scatter_dimension_numbers"])
    window, inserted = list(dn.update_window_dims), list(dn.inserted_window_dims)
    in_batching, idx_batching = list(dn.input_batching_dims), list(dn.scatter_indices_batching_dims)
    to_operand, ivd = list(dn.scattered_dims_to_operand_dims), dn.index_vector_dim
    # Every lane scatters into its own copy of the inputs.
    materialize_operands(fb, op, flags, [*range(n), *range(n + 1, 2 * n + 1)])
    if not indices_b:
        # The batch is a window dim of the updates covering the whole
        # operand dim: the same indices, one window per lane.
        numbers = stablehlo.ScatterDimensionNumbers.get(
            update_window_dims=[0] + _shift(window), inserted_window_dims=_shift(inserted),
            input_batching_dims=_shift(in_batching), scatter_indices_batching_dims=idx_batching,
            scattered_dims_to_operand_dims=_shift(to_operand), index_vector_dim=ivd)
    else:
        numbers = stablehlo.ScatterDimensionNumbers.get(
            update_window_dims=_shift(window), inserted_window_dims=_shift(inserted),
            input_batching_dims=[0] + _shift(in_batching),
            scatter_indices_batching_dims=[0] + _shift(idx_batching),
            scattered_dims_to_operand_dims=_shift(to_operand), index_vector_dim=ivd + 1)
        # Lanes' indices interleave once the batch is an index dim.
        op.attributes["indices_are_sorted"] = ir.BoolAttr.get(False)
    op.attributes["scatter_dimension_numbers"] = numbers
    return retype_batched(fb, op)
