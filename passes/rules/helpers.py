"""Pieces that many batching rules share: batching the operands a rule needs
batched, retyping results, shifting dimension numbers past the batch dim,
and searching the ops nested in an op's regions.

Everything here works at the current insertion point and location, as the
engine sets them around a rule.
"""
from __future__ import annotations

from typing import Callable, Iterable, Sequence

from jaxlib.mlir import ir

from stablehlo_batch.passes import builders as bld
from stablehlo_batch.passes.builders import find_nested, nested_ops  # noqa: F401 (for rules)


def all_batched(op) -> list:
    return [(r, True) for r in op.results]


def retype_batched(fb, op) -> list:
    """Prepends the batch dimension to every result type of ``op`` in place."""
    for r in op.results:
        r.set_type(fb.batched_type(r.type))
    return all_batched(op)


def retype_results(fb, op, flags: Sequence[bool]) -> list:
    """Prepends the batch dimension to the result types of ``op`` flagged in
    ``flags``; returns the rule result (each result with its flag)."""
    for r, batched in zip(op.results, flags):
        if batched:
            r.set_type(fb.batched_type(r.type))
    return list(zip(op.results, flags))


def materialize_operands(fb, op, flags: Sequence[bool],
                         positions: Iterable[int] | None = None) -> int:
    """Replaces each unbatched operand of ``op`` (at ``positions``, default
    all) by its broadcast along a new leading batch dim, one broadcast per
    distinct value. Returns how many values were broadcast."""
    done: dict = {}
    for i in (range(len(flags)) if positions is None else positions):
        if flags[i]:
            continue
        v = op.operands[i]
        if v not in done:
            done[v] = fb.materialize(v)
        op.operands[i] = done[v]
    return len(done)


def shift_dims(dims: Iterable[int], by: int = 1) -> list[int]:
    """Dimension numbers of a per-example value, for the value with ``by``
    leading dims more."""
    return [d + by for d in dims]


def i64_dims(op, name: str) -> list[int]:
    """An array-of-i64 attribute of ``op`` as a list."""
    return list(ir.DenseI64ArrayAttr(op.attributes[name]))


def shift_dims_attr(op, name: str, head: int | None = None):
    """Re-indexes the dimension-array attribute ``name`` of ``op`` for a
    leading batch dim: entries shift by one, or, with ``head``, the array
    gets ``head`` as the batch dim's own entry in front."""
    dims = i64_dims(op, name)
    op.attributes[name] = bld.i64_array(shift_dims(dims) if head is None else [head] + dims)


def shift_dim_attr(op, name: str):
    """Shifts the single-dimension attribute ``name`` of ``op`` by one."""
    op.attributes[name] = bld.i64_attr(ir.IntegerAttr(op.attributes[name]).value + 1)


def captures(op, is_batched: Callable[[ir.Value], bool]) -> bool:
    """True when an op nested in ``op``'s regions uses a value for which
    ``is_batched`` holds (a batched outer value, as the regions' own block
    arguments are never batched while the op is unbatched)."""
    return find_nested(op, lambda inner: any(is_batched(v) for v in inner.operands)) is not None
