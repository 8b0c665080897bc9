"""Linear algebra ops with a native StableHLO form: cholesky,
triangular_solve and batch_norm_inference / _training / _grad. (The
LAPACK / cuSOLVER custom calls jax emits live in custom_calls.py.)

cholesky and triangular_solve accept leading batch dimensions, so the batch
dim simply becomes one more of them -- except for a triangular_solve whose
matrix is unbatched: then the lanes' right-hand sides become extra columns
(left side) or rows (right side) of one solve with the shared matrix, the way
jax.vmap does it, and the matrix is never copied per lane.

batch_norm: with only the operand batched, inference just moves its feature
index. Everything else (per-lane scale / mean / ..., and training or grad,
whose statistics must be per lane) folds the batch into the feature
dimension: feature f of lane b becomes feature b * C + f of one op on a
[.., B*C, ..] operand. Per-feature statistics over the other dims are then
exactly the per-lane statistics.
"""
from __future__ import annotations

from jaxlib.mlir import ir

from stablehlo_batch.passes import builders as bld
from stablehlo_batch.passes.rules import register
from stablehlo_batch.passes.rules.helpers import materialize_operands, retype_batched


@register("stablehlo.cholesky", costly=True)
def cholesky(fb, op, flags):
    return retype_batched(fb, op)


@register("stablehlo.triangular_solve", costly=True)
def triangular_solve(fb, op, flags):
    a, b = op.operands
    a_batched = flags[0]
    if a_batched or getattr(fb, "symbolic", False):
        # (A symbolic batch size cannot be folded into a static column count:
        # the matrix is broadcast instead.)
        materialize_operands(fb, op, flags)
        return retype_batched(fb, op)
    left = ir.BoolAttr(op.attributes["left_side"]).value
    fb.note("rhs_lanes_folded", op, "unbatched matrix: the lanes are more right-hand-side "
            f"{'columns' if left else 'rows'} of one solve")
    folded, unfold = fold_rhs_lanes(b, left)
    attrs = bld.attributes_of(op)
    x = bld.create("stablehlo.triangular_solve", [folded.type], [a, folded], attrs).result
    return [(unfold(x), True)]


def fold_rhs_lanes(b, left_side: bool):
    """Batched right-hand sides ``b`` ([B, *batch, M, K] for a left-side solve,
    [B, *batch, K, M] for a right-side one) as one right-hand side of a solve
    with an unbatched matrix: lanes become columns (left) or rows (right),
    lane-minor as jax.vmap lays them out. Returns it and the function that
    takes the solution back to [B, ...]."""
    shape = bld.shape_of(b)
    size, rank = shape[0], len(shape)
    # left: [*batch, M, K, B] -> [*batch, M, K*B]; right: [*batch, K, B, M] -> [*batch, K*B, M]
    at = rank - 1 if left_side else rank - 2
    moved = bld.move_axis(b, 0, at)
    mshape = bld.shape_of(moved)
    flat = mshape[:at - 1] + [mshape[at - 1] * size] + mshape[at + 1:]
    folded = bld.reshape(moved, flat)

    def unfold(x):
        return bld.move_axis(bld.reshape(x, mshape), at, 0)
    return folded, unfold


# ---- batch_norm ---------------------------------------------------------------

def _feature_index(op) -> int:
    return ir.IntegerAttr(op.attributes["feature_index"]).value


def _merge_lanes(fb, v, fi):
    """Batched ``v`` [B, ..., C (at fi + 1), ...] -> [..., B*C (at fi), ...]."""
    v = bld.move_axis(fb.materialize(v), 0, fi)
    shape = bld.shape_of(v)
    return bld.reshape(v, shape[:fi] + [shape[fi] * shape[fi + 1]] + shape[fi + 2:])


def _split_lanes(fb, v, fi, features):
    """The inverse of _merge_lanes; ``features`` is the per-lane size of dim
    ``fi`` (not derived from the merged size, which is 0 for no lanes)."""
    shape = bld.shape_of(v)
    v = bld.reshape(v, shape[:fi] + [fb.axis_size, features] + shape[fi + 1:])
    return bld.move_axis(v, fi, 0)


def _merged_batch_norm(fb, op, big_operands, big_results=(0,)):
    """Runs ``op`` once with the lanes folded into the feature dim.
    ``big_operands`` / ``big_results``: the positions of the operands and
    results shaped like the operand; the others are per-feature vectors."""
    fi = _feature_index(op)
    fb.note("lanes_into_features", op, "lane b's feature f is feature b*C+f of one op")
    operands = [_merge_lanes(fb, v, fi if i in big_operands else 0)
                for i, v in enumerate(op.operands)]
    big, vec = operands[0], operands[1]
    types = [bld.tensor_type(bld.shape_of(like), bld.element_type(like))
             for like in (big if i in big_results else vec for i in range(len(op.results)))]
    new = bld.create(op.name, types, operands, bld.attributes_of(op))
    results = []
    for i, (r, old) in enumerate(zip(new.results, op.results)):
        d = fi if i in big_results else 0
        results.append((_split_lanes(fb, r, d, bld.shape_of(old)[d]), True))
    return results


@register("stablehlo.batch_norm_inference")
def batch_norm_inference(fb, op, flags):
    if flags[0] and not any(flags[1:]):
        op.attributes["feature_index"] = bld.i64_attr(_feature_index(op) + 1)
        return retype_batched(fb, op)
    return _merged_batch_norm(fb, op, (0,))


@register("stablehlo.batch_norm_training")
def batch_norm_training(fb, op, flags):
    return _merged_batch_norm(fb, op, (0,))


@register("stablehlo.batch_norm_grad")
def batch_norm_grad(fb, op, flags):
    return _merged_batch_norm(fb, op, (0, 4))
