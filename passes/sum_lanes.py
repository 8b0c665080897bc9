"""Summing results over the batch inside a batched module.

The gradient of a weight that every lane shares is the sum over lanes of the
per-lane gradients. Computed per lane and then summed, a weight gradient
``x_i^T g_i`` becomes B outer products and a reduction (XLA turns the batched
outer product into a broadcast multiply: no matrix product, B times the
memory). Summing inside the module lets the sum sink into the op that made
the lanes: a ``dot_general`` whose batching dimension is summed becomes one
with that dimension contracted, a single matrix product as jax.vmap's own
transpose produces. The sum sinks through ``transpose`` and ``add``; where it
stops, a ``reduce`` adds the lanes.
"""
from __future__ import annotations

from typing import Sequence

from jaxlib.mlir import ir
from jaxlib.mlir.dialects import stablehlo

from stablehlo_batch.passes import builders as bld

_DN = "dot_dimension_numbers"


def sum_results_over_lanes(module: ir.Module, func: str, results: Sequence[int],
                           dims: Sequence[int]) -> None:
    """Replaces each of ``results`` (indices into ``func``'s results) by its
    sum over the batch, which it carries at ``dims`` (one per result), in
    place."""
    with module.context, ir.Location.unknown():
        fn = next(op for op in module.body.operations
                  if op.operation.name == "func.func"
                  and ir.StringAttr(op.attributes["sym_name"]).value == func)
        block = fn.regions[0].blocks[0]
        ret = block.operations[len(block.operations) - 1]
        replaced: list[ir.Operation] = []
        with ir.InsertionPoint(ret):
            for i, d in zip(results, dims):
                ret.operands[i] = _summed(ret.operands[i], d, replaced)
        for op in replaced:  # outermost first: each is dead once those after it are
            if all(not list(r.uses) for r in op.results):
                op.erase()
        ftype = ir.FunctionType(ir.TypeAttr(fn.attributes["function_type"]).value)
        fn.attributes["function_type"] = ir.TypeAttr.get(ir.FunctionType.get(
            ftype.inputs, [v.type for v in ret.operands]))


def _only_use(v: ir.Value) -> bool:
    return len(list(v.uses)) == 1


def _summed(v: ir.Value, d: int, replaced: list) -> ir.Value:
    """``v`` summed over dimension ``d``, built before the current insertion
    point. The ops that made ``v`` are rewritten when nothing else uses
    them; ``replaced`` collects them, to be erased."""
    owner = v.owner
    if isinstance(owner, ir.OpView):
        owner = owner.operation
    name = owner.name if isinstance(owner, ir.Operation) else ""
    if name and _only_use(v):
        if name == "stablehlo.dot_general":
            out = _contract_batching_dim(owner, d)
            if out is not None:
                replaced.append(owner)
                return out
        elif name == "stablehlo.transpose":
            perm = list(ir.DenseI64ArrayAttr(owner.attributes["permutation"]))
            src = perm[d]
            replaced.append(owner)
            inner = _summed(owner.operands[0], src, replaced)
            return bld.transpose(inner, [p - (p > src) for p in perm if p != src])
        elif name == "stablehlo.add":
            replaced.append(owner)
            a, b = owner.operands
            return bld.create("stablehlo.add", [_drop(v.type, d)],
                              [_summed(a, d, replaced), _summed(b, d, replaced)]).result
    return _reduce_sum(v, d)


def _drop(t: ir.Type, d: int) -> ir.Type:
    shape = bld.shape_of(t)
    return bld.tensor_type(shape[:d] + shape[d + 1:], bld.element_type(t))


def _contract_batching_dim(op: ir.Operation, d: int) -> ir.Value | None:
    """A dot_general whose result dimension ``d`` is a batching dimension,
    rebuilt with that dimension contracted instead."""
    dn = stablehlo.DotDimensionNumbers(op.attributes[_DN])
    lb, rb = list(dn.lhs_batching_dimensions), list(dn.rhs_batching_dimensions)
    if d >= len(lb):  # a free dimension: the lanes are not summed by the product
        return None
    attrs = bld.attributes_of(op)
    attrs[_DN] = stablehlo.DotDimensionNumbers.get(
        lb[:d] + lb[d + 1:], rb[:d] + rb[d + 1:],
        list(dn.lhs_contracting_dimensions) + [lb[d]],
        list(dn.rhs_contracting_dimensions) + [rb[d]])
    return bld.create("stablehlo.dot_general", [_drop(op.results[0].type, d)],
                      list(op.operands), attrs).result


def _reduce_sum(v: ir.Value, d: int) -> ir.Value:
    elem = bld.element_type(v)
    scalar = bld.tensor_type([], elem)
    zero = bld.splat(elem, [], False if _is_bool(elem) else 0)
    op = bld.create("stablehlo.reduce", [_drop(v.type, d)], [v, zero],
                    {"dimensions": bld.i64_array([d])}, regions=1)
    block = op.regions[0].blocks.append(scalar, scalar)
    with ir.InsertionPoint(block):
        combiner = "stablehlo.or" if _is_bool(elem) else "stablehlo.add"
        total = bld.create(combiner, [scalar], list(block.arguments)).result
        bld.create("stablehlo.return", [], [total])
    return op.result


def _is_bool(elem: ir.Type) -> bool:
    return str(elem) == "i1"
