"""Running an op once per lane: a ``stablehlo.while`` over the batch.

Correct for any op whose values are static-shape tensors, tuples of them or
tokens: each iteration slices lane i out of every batched operand (and out
of every batched outer value the op's regions capture), runs a copy of the
op (regions included) on the per-example values and writes its results into
row i of batched accumulators. Unbatched operands go in as they are. Lanes run
in order, and a token the op consumes and produces is threaded from lane to
lane, so ops with side effects keep their order. Rules use it where a lane
must see exactly what it would see alone (a random generator's own state); it
is also the body of the generic fallback (passes/fallback.py).
"""
from __future__ import annotations

from jaxlib.mlir import ir

from stablehlo_batch.passes import builders as bld


def _is_token(t: ir.Type) -> bool:
    return str(t) == "!stablehlo.token"


def _leaf_types(t: ir.Type) -> list[ir.Type]:
    """The tensor leaves of a (possibly nested) tuple type, in order."""
    if bld.is_tuple(t):
        tt = ir.TupleType(t)
        return [leaf for i in range(tt.num_types) for leaf in _leaf_types(tt.get_type(i))]
    return [t]


def _leaves(v: ir.Value) -> list[ir.Value]:
    """The tensor leaves of a tuple value (get_tuple_element at the insertion point)."""
    if not bld.is_tuple(v.type):
        return [v]
    tt = ir.TupleType(v.type)
    out = []
    for i in range(tt.num_types):
        part = bld.create("stablehlo.get_tuple_element", [tt.get_type(i)], [v],
                          {"index": ir.IntegerAttr.get(ir.IntegerType.get_signless(32), i)}
                          ).result
        out.extend(_leaves(part))
    return out


def _rebuild(t: ir.Type, leaves: list[ir.Value], batched: bool, size: int) -> ir.Value:
    """A value of (per-example) type ``t`` from its leaves, consumed from the
    front of ``leaves``; ``batched`` adds the batch dim to every leaf type."""
    if not bld.is_tuple(t):
        return leaves.pop(0)
    tt = ir.TupleType(t)
    parts = [_rebuild(tt.get_type(i), leaves, batched, size) for i in range(tt.num_types)]
    out_t = bld.insert_dim(t, size, 0) if batched else t
    return bld.create("stablehlo.tuple", [out_t], parts).result


def _check_type(fb, op, t: ir.Type, what: str):
    if _is_token(t):
        return
    for leaf in _leaf_types(t):
        rt = bld.ranked(leaf)
        # The batch dim of a batched operand may be the symbolic `?`.
        if rt is None or any(d < 0 for d in list(rt.shape)[1 if what == "an operand" else 0:]):
            raise fb.unsupported(op, f"a per-lane loop cannot carry {what} of type {t}")


def _zeros(t: ir.Type) -> ir.Value:
    """A zero tensor of type ``t``; converting from i32 covers every element type."""
    shape = bld.shape_of(t)
    i32 = ir.IntegerType.get_signless(32)
    zero = bld.splat(i32, shape, 0)
    if zero.type == t:
        return zero
    return bld.create("stablehlo.convert", [t], [zero]).result


def _join(tokens: list[ir.Value]) -> ir.Value:
    if len(tokens) == 1:
        return tokens[0]
    return bld.create("stablehlo.after_all", [ir.Type.parse("!stablehlo.token")],
                      tokens).result


def _lane(v: ir.Value, i: ir.Value, zero: ir.Value) -> ir.Value:
    """Row ``i`` of the batched tensor ``v``, without the batch dim."""
    shape = bld.shape_of(v)
    row = bld.create("stablehlo.dynamic_slice",
                     [bld.tensor_type([1] + shape[1:], bld.element_type(v))],
                     [v, i] + [zero] * (len(shape) - 1),
                     {"slice_sizes": bld.i64_array([1] + shape[1:])}).result
    return bld.reshape(row, shape[1:])


def _lane_value(v: ir.Value, i: ir.Value, zero: ir.Value, per_example: ir.Type) -> ir.Value:
    if not bld.is_tuple(v.type):
        return _lane(v, i, zero)
    leaves = [_lane(leaf, i, zero) for leaf in _leaves(v)]
    return _rebuild(per_example, leaves, False, 0)


def _per_example_type(fb, v: ir.Value) -> ir.Type:
    """The type of one lane of the batched value ``v``."""
    if bld.is_tuple(v.type):
        tt = ir.TupleType(v.type)
        return ir.TupleType.get_tuple([_strip(tt.get_type(i)) for i in range(tt.num_types)])
    return _strip(v.type)


def _strip(t: ir.Type) -> ir.Type:
    if bld.is_tuple(t):
        tt = ir.TupleType(t)
        return ir.TupleType.get_tuple([_strip(tt.get_type(i)) for i in range(tt.num_types)])
    rt = ir.RankedTensorType(t)
    return bld.tensor_type(list(rt.shape)[1:], rt.element_type, like=t)


def _captured_batched(fb, op) -> list[ir.Value]:
    """Batched values defined outside ``op`` that ops in its regions use."""
    found: list[ir.Value] = []
    for inner in bld.nested_ops(op):
        for v in inner.operands:
            if fb.is_batched(v) and v not in found:
                found.append(v)
    return found


def lane_loop(fb, op, flags) -> list[ir.Value]:
    """Emits the loop at the current insertion point; returns one value per
    result of ``op``: batched for tensors and tuples, the lanes' last token
    for a token result."""
    for v, batched in zip(op.operands, flags):
        if batched:
            _check_type(fb, op, v.type, "an operand")
    for r in op.results:
        _check_type(fb, op, r.type, "a result")
    size = fb.batch_dim  # bld.DYN for a symbolic batch size
    token_type = ir.Type.parse("!stablehlo.token")
    tokens_in = [v for v in op.operands if _is_token(v.type)]
    token_results = [k for k, r in enumerate(op.results) if _is_token(r.type)]
    threaded = bool(tokens_in or token_results)
    leaf_results = [(k, t) for k, r in enumerate(op.results) if not _is_token(r.type)
                    for t in _leaf_types(r.type)]
    acc_types = [fb.batched_type(t) for _, t in leaf_results]

    if size == 0:  # no lane runs: empty results, the token passes through
        token = _join(tokens_in) if tokens_in else None
        leaves = [_zeros(t) for t in acc_types]
        return _assemble(fb, op, leaves, token, token_type)

    i32 = ir.IntegerType.get_signless(32)
    scalar_i32 = bld.tensor_type([], i32)
    init = [bld.splat(i32, [], 0)] + [_zeros(t) for t in acc_types]
    if threaded:
        init.append(_join(tokens_in) if tokens_in else
                    bld.create("stablehlo.after_all", [token_type], []).result)
    loop = bld.create("stablehlo.while", [v.type for v in init], init, regions=2)

    cond = loop.regions[0].blocks.append(*[v.type for v in init])
    with ir.InsertionPoint(cond):
        # A symbolic batch size is read at run time.
        limit = bld.reshape(bld.batch_size_1d(), []) if size == bld.DYN else \
            bld.splat(i32, [], size)
        bld.create("stablehlo.return", [], [bld.compare(cond.arguments[0], limit, "LT")])

    body = loop.regions[1].blocks.append(*[v.type for v in init])
    with ir.InsertionPoint(body):
        i = body.arguments[0]
        accs = list(body.arguments[1:1 + len(acc_types)])
        token = body.arguments[-1] if threaded else None
        zero = bld.splat(i32, [], 0)
        lane_operands = []
        for v, batched in zip(op.operands, flags):
            if _is_token(v.type):
                lane_operands.append(token)
            elif batched:
                lane_operands.append(_lane_value(v, i, zero, _per_example_type(fb, v)))
            else:
                lane_operands.append(v)
        captured = {v: _lane_value(v, i, zero, _per_example_type(fb, v))
                    for v in _captured_batched(fb, op)}
        copy = op.clone()
        for k, v in enumerate(lane_operands):
            copy.operands[k] = v
        if captured:
            def remap(inner):
                if inner.operation != copy:
                    for k, v in enumerate(inner.operands):
                        if v in captured:
                            inner.operands[k] = captured[v]
                return ir.WalkResult.ADVANCE
            copy.walk(remap)
        with copy.location:
            updated = []
            leaves = [leaf for r in copy.results if not _is_token(r.type)
                      for leaf in _leaves(r)]
            for acc, r in zip(accs, leaves):
                shape = bld.shape_of(r)
                row = bld.reshape(r, [1] + shape)
                updated.append(bld.create("stablehlo.dynamic_update_slice", [acc.type],
                                          [acc, row, i] + [zero] * len(shape)).result)
            if threaded:
                out_tokens = [copy.results[k] for k in token_results]
                updated.append(_join(out_tokens) if out_tokens else token)
            one = bld.splat(i32, [], 1)
            next_i = bld.create("stablehlo.add", [scalar_i32], [i, one]).result
            bld.create("stablehlo.return", [], [next_i] + updated)
    results = list(loop.results)
    token = results[-1] if threaded else None
    return _assemble(fb, op, results[1:1 + len(acc_types)], token, token_type)


def _assemble(fb, op, leaves, token, token_type) -> list[ir.Value]:
    leaves = list(leaves)
    out = []
    for r in op.results:
        if _is_token(r.type):
            out.append(token if token is not None else
                       bld.create("stablehlo.after_all", [token_type], []).result)
        else:
            out.append(_rebuild(r.type, leaves, True, fb.batch_dim))
    return out
