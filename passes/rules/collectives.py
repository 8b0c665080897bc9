"""Collectives over the batch axis: device k of a named axis is lane k.

A module lowered for a named batch axis (stablehlo_batch/named_axes.py:
``fn`` traced inside ``shard_map`` over an abstract mesh of B devices, or an
SPMD program given to ``spmd_to_batch``) has collectives whose replica groups
list devices of that axis. Those ops carry the unit attribute ``LANE_ATTR``
and the module ``LANES_ATTR`` (B); the rules below turn each into ops on the
batch dimension, with no collective and no per-lane loop:

- ``all_reduce``: a ``reduce`` over the lanes of each replica group with the
  op's own combiner (a body with no known identity: the body applied to
  halves with ``stablehlo.map``, log2(B) times), the group's result given back to each of its lanes (one
  group of all lanes: an unbatched result, as ``jax.vmap``'s psum gives);
- ``all_gather``: the batched operand itself, the lanes folded into the
  gather dimension (unbatched for one group of all lanes);
- ``reduce_scatter``: the group reduction, each lane keeping its block;
- ``all_to_all``: chunk j of lane i becomes chunk i of lane j (a transpose);
- ``collective_permute`` / ``collective_broadcast``: a gather along the batch
  (zeros for lanes that no pair sends to);
- ``partition_id``: an iota over the batch.

Unmarked collectives go on to the fallback, which refuses them.
"""
from __future__ import annotations

import numpy as np
from jaxlib.mlir import ir
from jaxlib.mlir.dialects import stablehlo

from stablehlo_batch.passes import builders as bld
from stablehlo_batch.passes.fallback import fallback
from stablehlo_batch.passes.rules import register

# Unit attribute on a collective over the named batch axis.
LANE_ATTR = "stablehlo_batch.lane"
# Module attribute: the number of devices the collectives were lowered for.
LANES_ATTR = "stablehlo_batch.lanes"
# Module attribute: that number was a placeholder for a symbolic batch size
# (the module lowers the same at any count; named_axes.export_named).
SYMBOLIC_ATTR = "stablehlo_batch.symbolic_lanes"
# Module attribute: lowered at 1 lane for a batch of 0 (a mesh has a device at
# least): collectives over the whole axis reduce over the empty batch.
EMPTY_ATTR = "stablehlo_batch.empty_lanes"
# Unit attribute on a dynamic_broadcast_in_dim / dynamic_reshape / dynamic_iota
# of such a module whose ``?`` dims are the number of lanes (a symbolic batch
# size: named_axes._dynamic_shape_ops): each ``?`` is the batch size.
LANE_SHAPE_ATTR = "stablehlo_batch.lane_shape"
# On such a real_dynamic_slice (a slice of a whole dimension of the number of
# lanes): its start, limit (-1: the number of lanes) and strides, in one array.
LANE_SLICE_ATTR = "stablehlo_batch.lane_slice"


def marked(op) -> bool:
    return LANE_ATTR in op.attributes


def _lanes(fb, op) -> int:
    """The batch size, checked against the device count of the lowering;
    ``bld.DYN`` for a symbolic batch size."""
    attrs = fb.program.module.operation.attributes
    if fb.symbolic:
        if LANES_ATTR in attrs and SYMBOLIC_ATTR not in attrs:
            raise fb.unsupported(op, f"the collectives were lowered for "
                                     f"{ir.IntegerAttr(attrs[LANES_ATTR]).value} lanes; the "
                                     "batch size is symbolic")
        return bld.DYN
    n = fb.axis_size
    if n == 0 and EMPTY_ATTR in attrs:
        if not (op.name == "stablehlo.partition_id" or
                (op.name == "stablehlo.all_reduce" and _whole_axis(fb, op))):
            raise fb.unsupported(op, "a collective whose per-example shape or value needs a "
                                 "lane at batch size 0 (only axis_index and reductions over "
                                 "the whole axis, psum, pmean, pmax, pmin, take no lane)")
        return 0
    if LANES_ATTR in attrs and ir.IntegerAttr(attrs[LANES_ATTR]).value != n:
        raise fb.unsupported(op, f"the collectives were lowered for "
                                 f"{ir.IntegerAttr(attrs[LANES_ATTR]).value} lanes but the "
                                 f"batch has {n} (chunk_size cannot split a named axis)")
    return n


def _groups(fb, op, n, equal: bool = True) -> list[list[int]]:
    """The replica groups as lists of lanes: each lane once, of equal sizes
    unless ``equal`` is False (reductions and broadcasts allow any sizes).
    With a symbolic batch size only one group of every lane can be known:
    ``[ALL]``."""
    if n == bld.DYN or n == 0:  # (0: checked by _lanes)
        return [ALL] if _whole_axis(fb, op) else _refuse_symbolic(fb, op, "replica groups "
                                                                   "that split the batch axis")
    if "replica_groups" not in op.attributes:
        return [list(range(n))]
    rows = np.array(ir.DenseIntElementsAttr(op.attributes["replica_groups"]))
    groups = [[int(v) for v in row if v >= 0] for row in rows.reshape(rows.shape[0], -1)]
    groups = [g for g in groups if g] or [list(range(n))]
    flat = sorted(v for g in groups for v in g)
    if flat != list(range(n)):
        raise fb.unsupported(op, f"replica groups {groups} do not cover each of the {n} "
                                 "lanes once")
    if equal and len({len(g) for g in groups}) != 1:
        raise fb.unsupported(op, f"replica groups {groups} are of unequal sizes: each "
                                 "lane's result would have its own shape")
    return groups


# The one replica group of every lane when the batch size is symbolic.
ALL = None


def _whole_axis(fb, op) -> bool:
    """With a placeholder lowering (symbolic size): whether the op's replica
    groups are the one group of all placeholder lanes."""
    if "replica_groups" not in op.attributes:
        return True
    p = ir.IntegerAttr(fb.program.module.operation.attributes[LANES_ATTR]).value
    rows = np.array(ir.DenseIntElementsAttr(op.attributes["replica_groups"]))
    groups = [sorted(int(v) for v in row if v >= 0) for row in rows.reshape(rows.shape[0], -1)]
    groups = [g for g in groups if g]
    return not groups or groups == [list(range(p))]


def _refuse_symbolic(fb, op, what: str):
    raise fb.unsupported(op, f"{what} over a symbolic batch size: the number of lanes must "
                             "be known (pass a static axis_size)")


def take(x: ir.Value, idx) -> ir.Value:
    """``x[idx]`` along dim 0 for constant indices (one gather)."""
    idx = [int(i) for i in idx]
    shape = bld.shape_of(x)
    if idx == list(range(shape[0])):
        return x
    i64 = ir.IntegerType.get_signless(64)
    itype = ir.RankedTensorType.get([len(idx), 1], i64)
    indices = bld.constant(ir.DenseElementsAttr.get(np.asarray(idx, np.int64).reshape(-1, 1),
                                                    type=itype))
    r = len(shape)
    numbers = stablehlo.GatherDimensionNumbers.get(
        offset_dims=list(range(1, r)), collapsed_slice_dims=[0], operand_batching_dims=[],
        start_indices_batching_dims=[], start_index_map=[0], index_vector_dim=1)
    out = bld.tensor_type([len(idx)] + shape[1:], bld.element_type(x))
    return bld.create("stablehlo.gather", [out], [x, indices],
                      {"dimension_numbers": numbers,
                       "slice_sizes": bld.i64_array([1] + shape[1:]),
                       "indices_are_sorted": ir.BoolAttr.get(False)}).result


def _example_shape(x, batched) -> list[int]:
    return bld.shape_of(x)[1:] if batched else bld.shape_of(x)


def _grouped(fb, x, batched, groups) -> ir.Value:
    """(B, ...) -> (number of groups, group size, ...), lanes in group order."""
    x = x if batched else fb.materialize(x)
    y = take(x, [v for g in groups for v in g])
    return bld.reshape(y, [len(groups), len(groups[0])] + bld.shape_of(x)[1:])


def _by_group(per_group: ir.Value, groups, n) -> tuple[ir.Value, bool]:
    """(number of groups, ...) -> each lane its group's value."""
    if len(groups) == 1:
        return bld.reshape(per_group, bld.shape_of(per_group)[1:]), False
    where = [0] * n
    for k, g in enumerate(groups):
        for v in g:
            where[v] = k
    return take(per_group, where), True


def _by_position(per_slot: ir.Value, groups, n) -> ir.Value:
    """(groups * group size, ...) -> lane at position p of group k gets slot k*size+p."""
    where = [0] * n
    for k, g in enumerate(groups):
        for p, v in enumerate(g):
            where[v] = k * len(g) + p
    return take(per_slot, where)


# ---- reductions ---------------------------------------------------------------

def _combiner(fb, op) -> str | None:
    """The name of the binary op that the reduction body applies to its
    arguments; None for any other body."""
    block = op.regions[0].blocks[0]
    ops = [o.operation for o in block.operations]
    args = list(block.arguments)
    if (len(ops) == 2 and len(args) == 2 and len(ops[0].operands) == 2
            and set(ops[0].operands) == set(args) and ops[1].operands[0] == ops[0].results[0]):
        return ops[0].name
    return None


def _pairwise(fb, op, x: ir.Value, dim: int) -> ir.Value:
    """Reduces ``dim`` of ``x`` with the op's own body applied elementwise
    (``stablehlo.map``) to halves, log2(n) times: for bodies with no known
    identity (complex max, a multi-op body)."""
    if bld.shape_of(x)[dim] == bld.DYN:
        _refuse_symbolic(fb, op, "a reduction body with no known identity")
    body = op.regions[0].blocks[0]
    elem = bld.element_type(x)
    scalar = bld.tensor_type([], elem)
    while True:
        shape = bld.shape_of(x)
        n = shape[dim]
        if n == 1:
            return bld.reshape(x, shape[:dim] + shape[dim + 1:])
        h = n // 2

        def part(lo, hi):
            start, limit = [0] * len(shape), list(shape)
            start[dim], limit[dim] = lo, hi
            return bld.slice_(x, start, limit, [1] * len(shape))
        a, b = part(0, h), part(h, 2 * h)
        rest = part(2 * h, n) if n % 2 else None
        mapped = bld.create("stablehlo.map", [a.type], [a, b],
                            {"dimensions": bld.i64_array(range(len(shape)))}, regions=1)
        block = mapped.regions[0].blocks.append(scalar, scalar)
        with ir.InsertionPoint(block):
            outs = bld.clone_block_ops(body, dict(zip(body.arguments, block.arguments)))
            bld.create("stablehlo.return", [], outs)
        x = mapped.result
        if rest is not None:
            x = bld.create("stablehlo.concatenate",
                           [bld.tensor_type(shape[:dim] + [h + 1] + shape[dim + 1:], elem)],
                           [x, rest], {"dimension": bld.i64_attr(dim)}).result


def _reduce_lanes(fb, op, x: ir.Value, dim: int, combiner: str | None) -> ir.Value:
    if combiner is not None:
        try:
            identity = _identity(fb, op, combiner, bld.element_type(x))
        except LookupError:
            identity = None
        if identity is not None:
            return _reduce(fb, op, x, dim, combiner, identity)
    return _pairwise(fb, op, x, dim)


def _identity(fb, op, combiner: str, elem: ir.Type):
    floating = not isinstance(bld.down(elem), ir.IntegerType)
    if isinstance(bld.down(elem), ir.ComplexType):
        table = {"stablehlo.add": 0, "stablehlo.multiply": 1}
    elif floating:
        table = {"stablehlo.add": 0.0, "stablehlo.multiply": 1.0,
                 "stablehlo.maximum": -np.inf, "stablehlo.minimum": np.inf}
    else:
        it = ir.IntegerType(elem)
        w = it.width
        if w == 1:
            lo, hi = 0, 1
        elif it.is_unsigned:
            lo, hi = 0, 2 ** w - 1
        else:
            lo, hi = -2 ** (w - 1), 2 ** (w - 1) - 1
        ones = 1 if w == 1 else (hi if it.is_unsigned else -1)
        table = {"stablehlo.add": 0, "stablehlo.multiply": 1, "stablehlo.maximum": lo,
                 "stablehlo.minimum": hi, "stablehlo.or": 0, "stablehlo.xor": 0,
                 "stablehlo.and": ones}
    return table[combiner]  # a KeyError: no identity known


def _reduce(fb, op, x: ir.Value, dim: int, combiner: str, value) -> ir.Value:
    elem = bld.element_type(x)
    scalar = bld.tensor_type([], elem)
    shape = bld.shape_of(x)
    if isinstance(bld.down(elem), ir.ComplexType):
        width = ir.FloatType(ir.ComplexType(elem).element_type).width
        init = bld.constant(ir.DenseElementsAttr.get(
            np.asarray(value, np.complex64 if width == 32 else np.complex128), type=scalar))
    else:
        init = bld.splat(elem, [], value)
    red = bld.create("stablehlo.reduce", [bld.tensor_type(shape[:dim] + shape[dim + 1:], elem)],
                     [x, init], {"dimensions": bld.i64_array([dim])}, regions=1)
    block = red.regions[0].blocks.append(scalar, scalar)
    with ir.InsertionPoint(block):
        out = bld.create(combiner, [scalar], list(block.arguments)).result
        bld.create("stablehlo.return", [], [out])
    return red.result


@register("stablehlo.all_reduce")
def all_reduce(fb, op, flags):
    if not marked(op):
        return fallback(fb, op, flags)
    n = _lanes(fb, op)
    groups = _groups(fb, op, n, equal=False)
    combiner = _combiner(fb, op)
    if groups == [ALL]:  # a symbolic batch: one reduce over it, unbatched results
        return [(_times_lanes(x) if combiner == "stablehlo.add" and not batched and n != 0
                 else _reduce_lanes(fb, op, fb.materialize(x), 0, combiner), False)
                for x, batched in zip(op.operands, flags)]
    out = []
    for x, batched in zip(op.operands, flags):
        if len({len(g) for g in groups}) == 1:
            per_group = _reduce_lanes(fb, op, _grouped(fb, x, batched, groups), 1, combiner)
        else:  # groups of unequal sizes: one reduce per group, stacked
            x = x if batched else fb.materialize(x)
            s = bld.shape_of(x)[1:]
            parts = [bld.reshape(_reduce_lanes(fb, op, take(x, g), 0, combiner), [1] + s)
                     for g in groups]
            per_group = bld.create(
                "stablehlo.concatenate", [bld.tensor_type([len(groups)] + s, bld.element_type(x))],
                parts, {"dimension": bld.i64_attr(0)}).result
        out.append(_by_group(per_group, groups, n))
    return out


def _times_lanes(x: ir.Value) -> ir.Value:
    """The sum over a symbolic batch of a value every lane holds: ``x`` times
    the batch size (as jax.vmap's psum of an unmapped operand), read with
    get_dimension_size so that shape refinement folds it (a lane count that
    shapes use: named_axes.lane_count)."""
    elem = bld.element_type(x)
    shape = bld.shape_of(x)
    n = bld.reshape(bld.batch_size_1d(), [])
    if elem != bld.element_type(n):
        n = bld.create("stablehlo.convert", [bld.tensor_type([], elem)], [n]).result
    if shape:
        n = bld.broadcast_in_dim(n, shape, [])
    if _constant_one(x):
        return n
    return bld.create("stablehlo.multiply", [x.type], [x, n]).result


def _constant_one(x: ir.Value) -> bool:
    owner = x.owner
    if not isinstance(owner, (ir.Operation, ir.OpView)) or \
            owner.operation.name != "stablehlo.constant":
        return False
    attr = ir.DenseElementsAttr(owner.operation.attributes["value"])
    if not attr.is_splat:
        return False
    try:
        return int(ir.IntegerAttr(attr.get_splat_value()).value) == 1
    except (ValueError, TypeError):
        return False


@register("stablehlo.reduce_scatter")
def reduce_scatter(fb, op, flags):
    if not marked(op):
        return fallback(fb, op, flags)
    n = _lanes(fb, op)
    groups = _groups(fb, op, n)
    if groups == [ALL]:  # a symbolic batch (named_axes._lane_count_dims)
        return [_reduce_scatter_symbolic(fb, op, flags)]
    ng, gs = len(groups), len(groups[0])
    a = ir.IntegerAttr(op.attributes["scatter_dimension"]).value
    s = _example_shape(op.operands[0], flags[0])
    summed = _reduce_lanes(fb, op, _grouped(fb, op.operands[0], flags[0], groups), 1,
                           _combiner(fb, op))  # (ng, s...)
    split = bld.reshape(summed, [ng] + s[:a] + [gs, s[a] // gs] + s[a + 1:])
    slots = bld.move_axis(split, 1 + a, 1)
    slots = bld.reshape(slots, [ng * gs] + s[:a] + [s[a] // gs] + s[a + 1:])
    return [(_by_position(slots, groups, n), True)]


# ---- data movement ---------------------------------------------------------------

@register("stablehlo.all_gather")
def all_gather(fb, op, flags):
    if not marked(op):
        return fallback(fb, op, flags)
    n = _lanes(fb, op)
    groups = _groups(fb, op, n)
    if groups == [ALL]:  # a symbolic batch (named_axes._lane_count_dims)
        return [_all_gather_symbolic(fb, op, x, batched)
                for x, batched in zip(op.operands, flags)]
    ng, gs = len(groups), len(groups[0])
    a = ir.IntegerAttr(op.attributes["all_gather_dim"]).value
    out = []
    for x, batched, r in zip(op.operands, flags, op.results):
        s = _example_shape(x, batched)
        g = bld.move_axis(_grouped(fb, x, batched, groups), 1, 1 + a)
        g = bld.reshape(g, [ng] + s[:a] + [gs * s[a]] + s[a + 1:])
        out.append(_by_group(g, groups, n))
    return out


@register("stablehlo.all_to_all")
def all_to_all(fb, op, flags):
    if not marked(op):
        return fallback(fb, op, flags)
    n = _lanes(fb, op)
    groups = _groups(fb, op, n)
    if groups == [ALL]:  # a symbolic batch (named_axes._lane_count_dims)
        return [_all_to_all_symbolic(fb, op, x, batched)
                for x, batched in zip(op.operands, flags)]
    ng, gs = len(groups), len(groups[0])
    sd = ir.IntegerAttr(op.attributes["split_dimension"]).value
    cd = ir.IntegerAttr(op.attributes["concat_dimension"]).value
    out = []
    for x, batched, res in zip(op.operands, flags, op.results):
        s = _example_shape(x, batched)
        r = len(s)
        # (ng, src, s[:sd], chunk, s[sd] / gs, s[sd+1:])
        g = bld.reshape(_grouped(fb, x, batched, groups),
                        [ng, gs] + s[:sd] + [gs, s[sd] // gs] + s[sd + 1:])

        def full(i):  # where dim i of the split shape (chunk removed) is in g
            return 2 + i + (1 if i >= sd else 0)

        perm = [0, 2 + sd]  # the chunk a lane receives is indexed by the receiver
        for i in range(r):
            if i == cd:
                perm.append(1)  # the senders, in group order, before the concat dim
            perm.append(full(i))
        moved = bld.transpose(g, perm)
        out_shape = bld.shape_of(res.type)
        slots = bld.reshape(moved, [ng * gs] + out_shape)
        out.append((_by_position(slots, groups, n), True))
    return out


# ---- a symbolic batch size --------------------------------------------------
# The per-example module was lowered at placeholder lane counts; a dimension
# that is the number of lanes there is ``?`` (bld.DYN), which is the batch
# size (named_axes._lane_count_dims). A dimension that would be a multiple or
# a fraction of it was refused there; the checks below guard the rules.

def _all_gather_symbolic(fb, op, x, batched):
    """Gathering one element per lane along ``all_gather_dim``: the batched
    operand with its lanes moved there (unbatched: every lane gets it)."""
    a = ir.IntegerAttr(op.attributes["all_gather_dim"]).value
    s = _example_shape(x, batched)
    if s[a] != 1:
        raise fb.unsupported(op, f"all_gather over a symbolic batch size: a tiled all_gather "
                                 f"of {s[a]} elements per lane has a per-example dimension of "
                                 f"{s[a]} times the batch size (pass a static axis_size)")
    x = x if batched else fb.materialize(x)
    g = bld.move_axis(x, 0, a)  # s[:a] + [lanes, 1] + s[a+1:]
    return bld.reshape(g, s[:a] + [bld.DYN] + s[a + 1:]), False


def _reduce_scatter_symbolic(fb, op, flags):
    """A scatter dimension of one block per lane: the reduction over the
    lanes, lane i keeping block i."""
    a = ir.IntegerAttr(op.attributes["scatter_dimension"]).value
    x, batched = op.operands[0], flags[0]
    s = _example_shape(x, batched)
    if s[a] != bld.DYN:
        _refuse_symbolic(fb, op, "a reduce_scatter whose scatter dimension is not the "
                                 "number of lanes")
    combiner = _combiner(fb, op)
    summed = (_times_lanes(x) if combiner == "stablehlo.add" and not batched else
              _reduce_lanes(fb, op, fb.materialize(x), 0, combiner))  # s, s[a] = lanes
    moved = bld.move_axis(summed, a, 0)
    return bld.reshape(moved, [bld.DYN] + s[:a] + [1] + s[a + 1:]), True


def _all_to_all_symbolic(fb, op, x, batched):
    """A split dimension of one chunk per lane: chunk j of lane i becomes
    chunk i of lane j, a transpose of the lanes with the split dimension."""
    sd = ir.IntegerAttr(op.attributes["split_dimension"]).value
    cd = ir.IntegerAttr(op.attributes["concat_dimension"]).value
    s = _example_shape(x, batched)
    if s[sd] != bld.DYN or (cd != sd and s[cd] != 1):
        _refuse_symbolic(fb, op, "an all_to_all whose split dimension is not the number of "
                                 "lanes (or whose concat dimension is not of size 1)")
    x = x if batched else fb.materialize(x)
    r = len(s) + 1
    perm = list(range(r))
    if cd == sd:
        perm[0], perm[1 + sd] = 1 + sd, 0
    else:  # out[j, .., 0 (sd), .., i (cd)] = x[i, .., j (sd), .., 0 (cd)]
        perm[0], perm[1 + sd], perm[1 + cd] = 1 + sd, 1 + cd, 0
    return bld.transpose(x, perm), True


@register("stablehlo.dynamic_broadcast_in_dim")
def dynamic_broadcast_in_dim(fb, op, flags):
    """A broadcast to a shape with the number of lanes in it (marked): each
    ``?`` is the batch size, which the builders read at run time."""
    if LANE_SHAPE_ATTR not in op.attributes or any(flags[1:]):
        return fallback(fb, op, flags)
    dims = list(ir.DenseI64ArrayAttr(op.attributes["broadcast_dimensions"]))
    shape = bld.shape_of(op.results[0].type)
    return [(bld.broadcast_in_dim(op.operands[0], [bld.DYN] + shape,
                                  [0] + [d + 1 for d in dims]), True)]


@register("stablehlo.dynamic_reshape")
def dynamic_reshape(fb, op, flags):
    """A reshape to a shape with the number of lanes in it (marked)."""
    if LANE_SHAPE_ATTR not in op.attributes or any(flags[1:]):
        return fallback(fb, op, flags)
    return [(bld.reshape(op.operands[0], [bld.DYN] + bld.shape_of(op.results[0].type)), True)]


@register("stablehlo.real_dynamic_slice")
def real_dynamic_slice(fb, op, flags):
    """A slice of whole dimensions of the number of lanes (marked): each
    such limit is the batch size."""
    if LANE_SLICE_ATTR not in op.attributes or any(flags[1:]):
        return fallback(fb, op, flags)
    v = list(ir.DenseI64ArrayAttr(op.attributes[LANE_SLICE_ATTR]))
    r = len(v) // 3
    start, limit, strides = v[:r], [bld.DYN if x == -1 else x for x in v[r:2 * r]], v[2 * r:]
    return [(bld.slice_(op.operands[0], [0] + start, [bld.DYN] + limit, [1] + strides), True)]


@register("stablehlo.collective_permute")
def collective_permute(fb, op, flags):
    if not marked(op):
        return fallback(fb, op, flags)
    n = _lanes(fb, op)
    if n == bld.DYN:
        raise fb.unsupported(op, "collective_permute (ppermute / pshuffle) over a symbolic "
                                 "batch size: its source-target pairs name lanes explicitly, "
                                 "which needs a concrete number of lanes (pass a static "
                                 "axis_size)")
    pairs = np.array(ir.DenseIntElementsAttr(op.attributes["source_target_pairs"]))
    source = {int(t): int(s) for s, t in pairs.reshape(-1, 2)}
    x, batched = op.operands[0], flags[0]
    if not batched and len(source) == n:
        return [(x, False)]  # every lane receives the same value
    x = fb.materialize(x)
    moved = take(x, [source.get(t, 0) for t in range(n)])
    if len(source) == n:
        return [(moved, True)]
    shape = bld.shape_of(moved)
    i1 = ir.IntegerType.get_signless(1)
    has = bld.constant(ir.DenseElementsAttr.get(
        np.array([t in source for t in range(n)]), type=bld.tensor_type([n], i1)))
    has = bld.broadcast_in_dim(has, shape, [0])
    zeros = bld.splat(bld.element_type(moved), shape, 0)
    return [(bld.select(has, moved, zeros), True)]


@register("stablehlo.collective_broadcast")
def collective_broadcast(fb, op, flags):
    if not marked(op):
        return fallback(fb, op, flags)
    n = _lanes(fb, op)
    groups = _groups(fb, op, n, equal=False)
    if not flags[0]:
        return [(op.operands[0], False)]
    if groups == [ALL]:  # the source lane's value, for every lane
        src = int(np.array(ir.DenseIntElementsAttr(op.attributes["replica_groups"]))
                  .reshape(-1)[0]) if "replica_groups" in op.attributes else 0
        x = op.operands[0]
        s = bld.shape_of(x)
        one = bld.slice_(x, [src] + [0] * (len(s) - 1), [src + 1] + s[1:], [1] * len(s))
        return [(bld.reshape(one, s[1:]), False)]
    where = [0] * n
    for g in groups:
        for v in g:
            where[v] = g[0]
    return [(take(op.operands[0], where), True)]


@register("stablehlo.partition_id")
def partition_id(fb, op, flags):
    if not marked(op):
        return fallback(fb, op, flags)
    n = _lanes(fb, op)  # bld.DYN: a dynamic_iota over the batch
    return [(bld.iota([n], 0, bld.element_type(op.results[0])), True)]
