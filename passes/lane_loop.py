"""Running an op once per lane: a ``stablehlo.while`` over the batch.

Correct for any op whose results are tensors: each iteration slices lane i
out of every batched operand, runs a copy of the op (regions included) on the
per-example values and writes its results into row i of batched
accumulators. Lanes run in order, so ops with side effects keep their order.
Rules use it where a lane must see exactly what it would see alone (a random
generator's own state) and it is the shape of the generic fallback.
"""
from __future__ import annotations

from jaxlib.mlir import ir

from passes import builders as bld


def _zeros(t: ir.Type) -> ir.Value:
    """A zero tensor of type ``t``; converting from i32 covers every element type."""
    shape = bld.shape_of(t)
    i32 = ir.IntegerType.get_signless(32)
    zero = bld.splat(i32, shape, 0)
    return bld.create("stablehlo.convert", [t], [zero]).result


def lane_loop(fb, op, flags) -> list[ir.Value]:
    """Emits the loop at the current insertion point; returns batched results."""
    for r in op.results:
        if bld.ranked(r.type) is None:
            raise fb.unsupported(op, f"a per-lane loop cannot carry a result of type {r.type}")
    size = fb.axis_size
    i32 = ir.IntegerType.get_signless(32)
    scalar_i32 = bld.tensor_type([], i32)
    acc_types = [fb.batched_type(r.type) for r in op.results]
    init = [bld.splat(i32, [], 0)] + [_zeros(t) for t in acc_types]
    loop = bld.create("stablehlo.while", [v.type for v in init], init, regions=2)

    cond = loop.regions[0].blocks.append(*[v.type for v in init])
    with ir.InsertionPoint(cond):
        limit = bld.splat(i32, [], size)
        bld.create("stablehlo.return", [], [bld.compare(cond.arguments[0], limit, "LT")])

    body = loop.regions[1].blocks.append(*[v.type for v in init])
    with ir.InsertionPoint(body):
        i = body.arguments[0]
        zero = bld.splat(i32, [], 0)
        lane_operands = []
        for v, batched in zip(op.operands, flags):
            if not batched:
                lane_operands.append(v)
                continue
            shape = bld.shape_of(v)
            row = bld.create("stablehlo.dynamic_slice",
                             [bld.tensor_type([1] + shape[1:], bld.element_type(v))],
                             [v, i] + [zero] * (len(shape) - 1),
                             {"slice_sizes": bld.i64_array([1] + shape[1:])}).result
            lane_operands.append(bld.reshape(row, shape[1:]))
        copy = op.clone()
        for k, v in enumerate(lane_operands):
            copy.operands[k] = v
        updated = []
        for acc, r in zip(body.arguments[1:], copy.results):
            shape = bld.shape_of(r)
            row = bld.reshape(r, [1] + shape)
            updated.append(bld.create("stablehlo.dynamic_update_slice", [acc.type],
                                      [acc, row, i] + [zero] * len(shape)).result)
        one = bld.splat(i32, [], 1)
        next_i = bld.create("stablehlo.add", [scalar_i32], [i, one]).result
        bld.create("stablehlo.return", [], [next_i] + updated)
    return list(loop.results)[1:]
