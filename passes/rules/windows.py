"""Windowed ops: convolution, reduce_window, select_and_scatter, and map.

``convolution`` never broadcasts an operand. The batch is folded into a
dimension the convolution already has, so the result is still ONE
convolution: into the input's batch dimension when only the input is
batched, into the kernel's output features when only the kernel is, and into
extra feature groups (or batch groups) when both are. Group counts split
those dimensions into contiguous, group-major chunks, so the batch is folded
in *inside* each group: a fold is "split off the groups, move the batch next
to the dimension, merge", and the result is unfolded the same way.

``reduce_window`` and ``select_and_scatter`` give the batch dimension a
window of 1 (stride 1, no padding, no dilation); ``map`` applies its body
per element, so only its dimensions shift. An init value is folded in an
implementation-defined number of times, so a per-lane one (which jax.vmap
refuses) has no one-op equivalent: such an op, like one whose body uses a
batched outer value, is declined (``fb.decline``): the engine runs it per
lane with a warning, or raises the typed error under ``strict``.
"""
from __future__ import annotations

import numpy as np
from jaxlib.mlir import ir
from jaxlib.mlir.dialects import stablehlo

from stablehlo_batch.passes import builders as bld
from stablehlo_batch.passes.rules import register
from stablehlo_batch.passes.rules.helpers import i64_dims as _dims, materialize_operands, retype_batched, shift_dims


def _i64(op, name) -> int:
    return ir.IntegerAttr(op.attributes[name]).value


# ---- convolution ---------------------------------------------------------------

def _fold(v, d: int, groups: int = 1) -> ir.Value:
    """Folds the leading batch dim of ``v`` into per-example dim ``d``, whose
    ``groups`` contiguous chunks each take the whole batch: the new dim
    orders its elements (group, lane, rest)."""
    shape = bld.shape_of(v)
    size, per_example = shape[0], shape[1:]
    rest = per_example[d] // groups
    head = [groups] if groups > 1 else []
    split = per_example[:d] + head + [rest] + per_example[d + 1:]
    v = bld.reshape(v, [size] + split)
    # The lane dim (0) goes right before ``rest`` (batched dim d+1+len(head)).
    at = d + 1 + len(head)
    perm = list(range(1, at)) + [0] + list(range(at, len(split) + 1))
    v = bld.transpose(v, perm)
    merged = per_example[:d] + [groups * size * rest] + per_example[d + 1:]
    return bld.reshape(v, merged)


def _unfold(v, d: int, size: int, groups: int = 1) -> ir.Value:
    """The inverse of ``_fold`` on a result: dim ``d`` of ``v`` is ordered
    (group, lane, rest); the lanes become a new leading dim."""
    shape = bld.shape_of(v)
    rest = shape[d] // (groups * size)
    head = [groups] if groups > 1 else []
    split = shape[:d] + head + [size, rest] + shape[d + 1:]
    v = bld.reshape(v, split)
    lane = d + len(head)
    v = bld.transpose(v, [lane] + [i for i in range(len(split)) if i != lane])
    return bld.reshape(v, [size] + shape[:d] + [groups * rest] + shape[d + 1:])


@register("stablehlo.convolution", costly=True)
def convolution(fb, op, flags):
    lhs, rhs = op.operands
    lhs_b, rhs_b = flags
    size = fb.axis_size
    dn = stablehlo.ConvDimensionNumbers(op.attributes["dimension_numbers"])
    fgc, bgc = _i64(op, "feature_group_count"), _i64(op, "batch_group_count")
    in_batch, in_feature = dn.input_batch_dimension, dn.input_feature_dimension
    out_batch, out_feature = dn.output_batch_dimension, dn.output_feature_dimension
    kernel_out = dn.kernel_output_feature_dimension
    attrs = bld.attributes_of(op)
    if size == 0:  # no lane: folding would make a group count of 0
        out_type = fb.batched_type(op.results[0].type)
        zeros = bld.splat(ir.IntegerType.get_signless(32), bld.shape_of(out_type), 0)
        return [(bld.create("stablehlo.convert", [out_type], [zeros]).result, True)]
    if lhs_b and rhs_b:
        # Lane b's input features (batch groups) meet only lane b's kernels:
        # the lanes become more groups, lane-major.
        if bgc > 1:
            lhs = _fold(lhs, in_batch)
            attrs["batch_group_count"] = bld.i64_attr(bgc * size)
        else:
            lhs = _fold(lhs, in_feature)
            attrs["feature_group_count"] = bld.i64_attr(fgc * size)
        rhs = _fold(rhs, kernel_out)
        out_dim, out_groups = out_feature, 1
        fb.note("grouped_convolution", op,
                "input and kernel both batched: the batch became "
                f"{'batch' if bgc > 1 else 'feature'} groups of one convolution")
    elif lhs_b:
        # More images through the same kernel; with batch groups the lanes go
        # inside each group, which becomes (lane, image) on the output batch.
        lhs = _fold(lhs, in_batch, bgc)
        out_dim, out_groups = out_batch, 1
    else:
        # More kernels over the same image; each feature / batch group keeps
        # its own chunk of output features, lanes inside it.
        rhs = _fold(rhs, kernel_out, max(fgc, bgc))
        out_dim, out_groups = out_feature, max(fgc, bgc)
    out_type = op.results[0].type
    out_shape = bld.shape_of(out_type)
    out_shape[out_dim] *= size
    conv = bld.create("stablehlo.convolution",
                      [bld.tensor_type(out_shape, bld.element_type(out_type))],
                      [lhs, rhs], attrs).result
    return [(_unfold(conv, out_dim, size, out_groups), True)]


# ---- reduce_window, select_and_scatter --------------------------------------

def _lead_window_dim(op, names_one=(), padding="padding"):
    """Prepends 1 to each array attribute in ``names_one`` that the op has and
    a zero row to its padding."""
    for name in names_one:
        if name in op.attributes:
            op.attributes[name] = bld.i64_array([1] + _dims(op, name))
    if padding in op.attributes:
        pads = np.asarray(ir.DenseIntElementsAttr(op.attributes[padding]),
                          np.int64).reshape(-1, 2)
        op.attributes[padding] = ir.DenseIntElementsAttr.get(
            np.concatenate([np.zeros((1, 2), np.int64), pads]))


def _decline_per_lane(fb, op, flags):
    """Declines ``op`` when it cannot be one batched op: a per-lane init value
    (it is folded in an implementation-defined number of times) or a body
    that uses a batched outer value (a body sees scalars only)."""
    n_inputs = {"stablehlo.reduce_window": len(op.operands) // 2,
                "stablehlo.select_and_scatter": 2}.get(op.name, len(op.operands))
    if any(flags[n_inputs:]):
        fb.decline(op, "an init value differs per batch element")
    if fb.region_captures_batched(op):
        fb.decline(op, "the body uses a batched value from outside the op")


@register("stablehlo.reduce_window", costly=True)
def reduce_window(fb, op, flags):
    _decline_per_lane(fb, op, flags)
    # Inputs reduced together share a shape: an unbatched one is broadcast.
    materialize_operands(fb, op, flags, range(len(op.operands) // 2))
    _lead_window_dim(op, ("window_dimensions", "window_strides", "base_dilations",
                          "window_dilations"))
    return retype_batched(fb, op)


@register("stablehlo.select_and_scatter", costly=True)
def select_and_scatter(fb, op, flags):
    _decline_per_lane(fb, op, flags)
    # The source is one value per window of the operand: both need the batch.
    materialize_operands(fb, op, flags, range(2))
    _lead_window_dim(op, ("window_dimensions", "window_strides"))
    return retype_batched(fb, op)


# ---- map -----------------------------------------------------------------------

@register("stablehlo.map", costly=True)
def map_(fb, op, flags):
    _decline_per_lane(fb, op, flags)
    materialize_operands(fb, op, flags)
    op.attributes["dimensions"] = bld.i64_array([0] + shift_dims(_dims(op, "dimensions")))
    return retype_batched(fb, op)
