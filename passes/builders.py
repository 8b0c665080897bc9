"""Small helpers that build StableHLO ops and types with the MLIR bindings.

All builders use the insertion point and location of the enclosing
``with ir.InsertionPoint(...), loc:`` block that the engine sets up around a
rule, so a rule never has to thread them through.
"""
from __future__ import annotations

import contextlib
import threading
from typing import Callable, Sequence

import numpy as np
from jaxlib.mlir import ir
from jaxlib.mlir.dialects import stablehlo

from stablehlo_batch.passes import report as _report


# ---- the symbolic batch size -------------------------------------------------
# With a symbolic batch size (``axis_size="b"``) the batch dim of every type
# is DYN (``?``). Shapes given to the builders below may contain DYN, which
# always means "the batch size"; the builders then emit the dynamic op
# (dynamic_broadcast_in_dim, dynamic_reshape, dynamic_iota,
# real_dynamic_slice) with a shape operand that reads the batch size at run
# time, which jax's shape refinement turns back into static ops per call.
DYN = ir.ShapedType.get_dynamic_size()

_local = threading.local()  # batch-size sources, per thread (rewrites may run in parallel)


def _size_sources() -> list[Callable[[], ir.Value]]:
    if not hasattr(_local, "sources"):
        _local.sources = []
    return _local.sources


class SymbolicShapeError(Exception):
    """A rule built a shape that a symbolic batch size cannot express (the
    engine turns it into UnsupportedOpError naming the op)."""


@contextlib.contextmanager
def batch_size_source(fn: Callable[[], ir.Value]):
    """Within: ``batch_size_1d()`` calls ``fn`` (which builds a tensor<1xi32>
    holding the batch size at the current insertion point)."""
    _size_sources().append(fn)
    try:
        yield
    finally:
        _size_sources().pop()


def batch_size_1d() -> ir.Value:
    sources = _size_sources()
    if not sources:
        raise SymbolicShapeError("no batched value to read the batch size from")
    return sources[-1]()


def is_dynamic(shape: Sequence[int]) -> bool:
    return any(s == DYN for s in shape)


def _check_shape(shape: Sequence[int]):
    for s in shape:
        if s < 0 and s != DYN:  # arithmetic on DYN (DYN * 3, DYN // 2, ...)
            raise SymbolicShapeError(
                "a shape depends on the batch size in a way that needs its value")


def shape_tensor(shape: Sequence[int]) -> ir.Value:
    """A tensor<Nxi32> holding ``shape``, DYN entries being the batch size."""
    i32 = ir.IntegerType.get_signless(32)
    parts, run = [], []

    def flush():
        if run:
            t = ir.RankedTensorType.get([len(run)], i32)
            parts.append(constant(ir.DenseElementsAttr.get(np.asarray(run, "int32"),
                                                           type=t)))
            run.clear()

    for s in shape:
        if s == DYN:
            flush()
            parts.append(batch_size_1d())
        else:
            run.append(int(s))
    flush()
    if len(parts) == 1:
        return parts[0]
    return create("stablehlo.concatenate", [ir.RankedTensorType.get([len(shape)], i32)],
                  parts, {"dimension": i64_attr(0)}).result


def iota(shape: Sequence[int], dim: int, elem: ir.Type) -> ir.Value:
    attrs = {"iota_dimension": i64_attr(dim)}
    if is_dynamic(shape):
        return create("stablehlo.dynamic_iota", [tensor_type(shape, elem)],
                      [shape_tensor(shape)], attrs).result
    return create("stablehlo.iota", [tensor_type(shape, elem)], [], attrs).result


def slice_(v: ir.Value, start: Sequence[int], limit: Sequence[int],
           strides: Sequence[int]) -> ir.Value:
    """stablehlo.slice; real_dynamic_slice when a limit is the symbolic batch size."""
    shape = [DYN if l == DYN else -(-(l - s) // st) for s, l, st in zip(start, limit, strides)]
    out = tensor_type(shape, element_type(v))
    if is_dynamic(limit):
        return create("stablehlo.real_dynamic_slice", [out],
                      [v, shape_tensor(start), shape_tensor(limit),
                       shape_tensor(strides)]).result
    return create("stablehlo.slice", [out], [v],
                  {"start_indices": i64_array(start), "limit_indices": i64_array(limit),
                   "strides": i64_array(strides)}).result


def down(t: ir.Type) -> ir.Type:
    """The most specific Python class of ``t`` (TupleType, RankedTensorType, ...)."""
    return t.maybe_downcast() if hasattr(t, "maybe_downcast") else t


def is_tuple(t: ir.Type) -> bool:
    return isinstance(down(t), ir.TupleType)


def i64_array(values: Sequence[int]) -> ir.Attribute:
    return ir.DenseI64ArrayAttr.get([int(v) for v in values])


def i64_attr(value: int) -> ir.Attribute:
    return ir.IntegerAttr.get(ir.IntegerType.get_signless(64), int(value))


def ranked(t: ir.Type) -> ir.RankedTensorType | None:
    return ir.RankedTensorType(t) if isinstance(down(t), ir.RankedTensorType) else None


def shape_of(v: ir.Value | ir.Type) -> list[int]:
    t = v if isinstance(v, ir.Type) else v.type
    return list(ir.RankedTensorType(t).shape)


def rank_of(v: ir.Value | ir.Type) -> int:
    return len(shape_of(v))


def element_type(v: ir.Value | ir.Type) -> ir.Type:
    t = v if isinstance(v, ir.Type) else v.type
    return ir.RankedTensorType(t).element_type


def tensor_type(shape: Sequence[int], elem: ir.Type,
                like: ir.Type | None = None) -> ir.Type:
    """A ranked tensor type; keeps the encoding of ``like`` when it has one."""
    _check_shape(shape)
    encoding = None
    if like is not None and isinstance(down(like), ir.RankedTensorType):
        encoding = ir.RankedTensorType(like).encoding
    if encoding is not None:
        return ir.RankedTensorType.get(list(shape), elem, encoding)
    return ir.RankedTensorType.get(list(shape), elem)


def insert_dim(t: ir.Type, size: int, axis: int = 0) -> ir.Type:
    """``t`` with a new dimension of ``size`` at ``axis`` (tuples elementwise)."""
    if is_tuple(t):
        tt = ir.TupleType(t)
        return ir.TupleType.get_tuple(
            [insert_dim(tt.get_type(i), size, axis) for i in range(tt.num_types)])
    rt = ir.RankedTensorType(t)
    shape = list(rt.shape)
    shape.insert(axis, size)
    return tensor_type(shape, rt.element_type, like=t)


def create(name: str, results: Sequence[ir.Type], operands: Sequence[ir.Value],
           attributes: dict | None = None, regions: int = 0) -> ir.Operation:
    op = ir.Operation.create(name, results=list(results), operands=list(operands),
                             attributes=attributes or {}, regions=regions)
    _report.created(op)  # the batching report counts what rules insert
    return op


def attributes_of(op: ir.Operation) -> dict[str, ir.Attribute]:
    return {name: op.attributes[name] for name in op.attributes}


def transpose(v: ir.Value, perm: Sequence[int]) -> ir.Value:
    perm = list(perm)
    if perm == list(range(len(perm))):
        return v
    shape = shape_of(v)
    out = tensor_type([shape[p] for p in perm], element_type(v))
    return create("stablehlo.transpose", [out], [v],
                  {"permutation": i64_array(perm)}).result


def move_axis(v: ir.Value, src: int, dst: int) -> ir.Value:
    """Moves dimension ``src`` of ``v`` to position ``dst`` with one transpose."""
    r = rank_of(v)
    perm = [d for d in range(r) if d != src]
    perm.insert(dst, src)
    return transpose(v, perm)


def broadcast_in_dim(v: ir.Value, shape: Sequence[int],
                     dims: Sequence[int]) -> ir.Value:
    out = tensor_type(shape, element_type(v))
    if is_dynamic(shape):
        return create("stablehlo.dynamic_broadcast_in_dim", [out], [v, shape_tensor(shape)],
                      {"broadcast_dimensions": i64_array(dims)}).result
    return create("stablehlo.broadcast_in_dim", [out], [v],
                  {"broadcast_dimensions": i64_array(dims)}).result


def reshape(v: ir.Value, shape: Sequence[int]) -> ir.Value:
    if list(shape) == shape_of(v):
        return v
    if is_dynamic(shape):
        return create("stablehlo.dynamic_reshape", [tensor_type(shape, element_type(v))],
                      [v, shape_tensor(shape)]).result
    return create("stablehlo.reshape", [tensor_type(shape, element_type(v))],
                  [v]).result


def constant(value: ir.Attribute) -> ir.Value:
    return create("stablehlo.constant", [value.type], [], {"value": value}).result


def splat(elem: ir.Type, shape: Sequence[int], scalar) -> ir.Value:
    """A constant tensor filled with ``scalar`` (a Python bool/int/float)."""
    if is_dynamic(shape):
        return broadcast_in_dim(splat(elem, [], scalar), shape, [])
    t = tensor_type(shape, elem)
    if isinstance(down(elem), ir.IntegerType):
        width = ir.IntegerType(elem).width
        attr = ir.IntegerAttr.get(elem, int(scalar) if width > 1 else int(bool(scalar)))
    else:
        attr = ir.FloatAttr.get(elem, float(scalar))
    return constant(ir.DenseElementsAttr.get_splat(t, attr))


def select(pred: ir.Value, on_true: ir.Value, on_false: ir.Value) -> ir.Value:
    return create("stablehlo.select", [on_true.type], [pred, on_true, on_false]).result


def reduce_all(v: ir.Value, combiner: str) -> ir.Value:
    """Reduces every dim of ``v`` with the binary op ``combiner`` (e.g.
    "stablehlo.or"); the init is that op's identity for booleans/integers."""
    elem = element_type(v)
    scalar = tensor_type([], elem)
    identity = {"stablehlo.or": 0, "stablehlo.and": 1, "stablehlo.add": 0}[combiner]
    op = create("stablehlo.reduce", [scalar], [v, splat(elem, [], identity)],
                {"dimensions": i64_array(range(rank_of(v)))}, regions=1)
    block = op.regions[0].blocks.append(scalar, scalar)
    with ir.InsertionPoint(block):
        combined = create(combiner, [scalar], list(block.arguments)).result
        create("stablehlo.return", [], [combined])
    return op.result


def compare(lhs: ir.Value, rhs: ir.Value, direction: str) -> ir.Value:
    """Elementwise comparison ("EQ", "LT", ...) giving an i1 tensor."""
    shape = shape_of(lhs)
    return create("stablehlo.compare", [tensor_type(shape, ir.IntegerType.get_signless(1))],
                  [lhs, rhs],
                  {"comparison_direction": stablehlo.ComparisonDirectionAttr.get(direction)}
                  ).result


def clone_block_ops(block: ir.Block, mapping: dict) -> list[ir.Value]:
    """Clones the ops of ``block`` (all but its terminator) at the current
    insertion point. Uses of keys of ``mapping`` (the block's arguments, say)
    become uses of their values. Returns the terminator's operands as they
    are in the copy."""
    ip = ir.InsertionPoint.current
    ops = [o.operation for o in block.operations]

    def remap(inner):
        for i, v in enumerate(inner.operands):
            if v in mapping:
                inner.operands[i] = mapping[v]
        return ir.WalkResult.ADVANCE

    for op in ops[:-1]:
        new = op.clone(ip=ip)
        new.walk(remap)
        for old_r, new_r in zip(op.results, new.results):
            mapping[old_r] = new_r
    return [mapping.get(v, v) for v in ops[-1].operands]


# ---- searching regions -------------------------------------------------------

def find_nested(op, predicate: Callable[[ir.Operation], bool]) -> ir.Operation | None:
    """The first op nested in ``op``'s regions (``op`` itself excluded) for
    which ``predicate`` holds, in walk order; None if there is none."""
    found = None
    this = op.operation

    def visit(inner):
        nonlocal found
        if inner.operation != this and predicate(inner.operation):
            found = inner.operation
            return ir.WalkResult.INTERRUPT
        return ir.WalkResult.ADVANCE

    this.walk(visit)
    return found


def nested_ops(op) -> list[ir.Operation]:
    """Every op nested in ``op``'s regions (``op`` itself excluded), in walk order."""
    out = []
    this = op.operation

    def visit(inner):
        if inner.operation != this:
            out.append(inner.operation)
        return ir.WalkResult.ADVANCE

    this.walk(visit)
    return out
