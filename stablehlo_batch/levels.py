"""Several batch dimensions at once (``axis_size=(10, 3)``, ``--axis-size=10,3``).

Like ``enzyme.batch``'s ``batch_shape``: the module is batched once per
dimension, the innermost (last) first, exactly as nested ``jax.vmap`` does::

    batch_module(m, in_axes, out_axes, axis_size=(10, 3))
    == jax.vmap(jax.vmap(f, in_axes[1], out_axes[1], axis_size=3),
                in_axes[0], out_axes[0], axis_size=10)

With several sizes, ``in_axes`` / ``out_axes`` are either one int or None
(every argument / result, at every level) or a sequence with one entry per
level, outer first, each an int, None or a per-argument list as for one
level. An axis of level k counts the dimensions of levels k+1.. as part of
the value, as nested vmaps do: with ``in_axes=0`` everywhere an argument of
shape ``S`` becomes ``(10, 3, *S)``. On the command line each level's axes
are one ``--in-axes`` / ``--out-axes`` flag, outer first (a single flag
applies to every level).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

from stablehlo_batch.passes.errors import AxisSpecError


@dataclasses.dataclass(frozen=True)
class Level:
    in_axes: Any
    out_axes: Any
    size: int | str


def is_multi(axis_size) -> bool:
    return isinstance(axis_size, (tuple, list))


def split(in_axes, out_axes, axis_size: Sequence[int | str]) -> list[Level]:
    """The levels of a multi-dimensional batch, outer first."""
    sizes = list(axis_size)
    if not sizes:
        raise AxisSpecError("axis_size=() has no batch dimension")
    n = len(sizes)

    def per_level(spec, name):
        if spec is None or isinstance(spec, int):
            return [spec] * n
        spec = list(spec)
        if len(spec) != n:
            raise AxisSpecError(
                f"with axis_size={tuple(sizes)}, {name} has one entry per batch "
                f"dimension (outer first), each an int, None or a list per value; got "
                f"{len(spec)} entries for {n} dimensions")
        return spec
    return [Level(i, o, s) for i, o, s in zip(per_level(in_axes, "in_axes"),
                                               per_level(out_axes, "out_axes"), sizes)]


class LevelReports(list):
    """One ``BatchingReport`` per level, outer first; prints them all."""

    def __init__(self, reports, levels: Sequence[Level]):
        super().__init__(reports)
        self.sizes = [lv.size for lv in levels]

    def __str__(self) -> str:
        return "\n".join(f"batch dimension {k} (size {s}):\n{r}"
                         for k, (s, r) in enumerate(zip(self.sizes, self)))


def batch_levels(module, levels: Sequence[Level], batch_one, debug_info: bool):
    """Applies ``batch_one(module, in_axes, out_axes, size, debug_info)`` ->
    ``(text, report)`` once per level, innermost first."""
    reports = []
    text = module
    for k in reversed(range(len(levels))):
        lv = levels[k]
        text, report = batch_one(text, lv.in_axes, lv.out_axes, lv.size,
                                 debug_info if k == 0 else True)
        reports.append(report)
    return text, LevelReports(reversed(reports), levels)
