"""The universal fallback: an op with no batching rule runs once per lane.

The engine sends here every batched op that has no rule (and the custom-call
rule sends custom calls whose target has none). The op is wrapped in a
``stablehlo.while`` over the lanes (passes/lane_loop.py): always correct, lane
order kept for side effects, but one small op per lane instead of one large
one. So every use is reported: a ``fallback`` note for the batching report
and a ``FallbackWarning`` (once per op name per function); with ``strict`` the
fallback is off and the op raises ``UnsupportedOpError`` instead.

Collectives are refused outright: a module that batch_lower sees was lowered
for one device, and a lane loop would change what a collective means.
"""
from __future__ import annotations

import contextlib
import contextvars
import warnings

from jaxlib.mlir import ir

from stablehlo_batch.passes.errors import format_location
from stablehlo_batch.passes.lane_loop import lane_loop


class FallbackWarning(UserWarning):
    """An op had no batching rule and was batched by a per-lane loop."""


# The strictness of batchings that do not say: the API sets it around a whole
# build (export, rewrite, compile), so layers in between need not pass it on.
_STRICT = contextvars.ContextVar("stablehlo_batch_strict", default=False)


def is_strict() -> bool:
    return _STRICT.get()


@contextlib.contextmanager
def strict_mode(strict: bool = True):
    """Inside, batchings that are not told otherwise are strict (or not)."""
    token = _STRICT.set(bool(strict))
    try:
        yield
    finally:
        _STRICT.reset(token)


# Cross-device communication: meaningless inside a one-device function's lanes.
COLLECTIVES = frozenset({
    "stablehlo.all_reduce", "stablehlo.all_gather", "stablehlo.all_to_all",
    "stablehlo.reduce_scatter", "stablehlo.collective_permute",
    "stablehlo.collective_broadcast", "stablehlo.partition_id",
    "stablehlo.replica_id", "stablehlo.send", "stablehlo.recv",
    "mhlo.all_reduce", "mhlo.all_gather", "mhlo.all_to_all", "mhlo.reduce_scatter",
    "mhlo.collective_permute", "mhlo.collective_broadcast",
})


def op_label(op: ir.Operation) -> str:
    """The op name, with the target for a custom call (``stablehlo.custom_call @foo``)."""
    if op.name == "stablehlo.custom_call" and "call_target_name" in op.attributes:
        return f"{op.name} @{ir.StringAttr(op.attributes['call_target_name']).value}"
    return op.name


def per_lane(fb, op, flags, why: str = "registered to run once per lane"):
    """A rule that batches ``op`` by a per-lane loop, with a note but no warning:
    for ``register_rule(name, per_lane)`` when a loop is the wanted behaviour."""
    fb.note("per_lane_loop", op, why)
    return _loop(fb, op, flags)


def fallback(fb, op, flags, why: str | None = None):
    """Batches an op that has no rule by a per-lane loop, or raises when the
    op is a collective or the batching is strict."""
    label = op_label(op)
    if why is None and label != op.name:
        why = f"custom call target {label.split()[-1]} has no batching rule"
    why = why or "no batching rule"
    if op.name in COLLECTIVES:
        raise fb.unsupported(op, "a collective cannot be batched: the module must be "
                                 "lowered for one device")
    if op.name == "sdy.manual_computation":
        raise fb.unsupported(op, "a shard_map body runs on the devices of its mesh, not once "
                                 "per lane (an Exported whose mesh axis is the batch axis: "
                                 "batch_exported / vmappable with axis_name=; an SPMD "
                                 "program: spmd_to_batch)")
    if fb.program.strict:
        raise fb.unsupported(op, f"{why} (strict mode: no per-lane fallback)")
    fb.note("fallback", op, f"{why}; runs once per lane in a stablehlo.while")
    key = (fb.func_name, label)
    if key not in fb.program.fallback_warned:
        fb.program.fallback_warned.add(key)
        warnings.warn(FallbackWarning(
            f"'{label}' in function @{fb.func_name} runs once per lane in a loop "
            f"({why}; slow: register a vectorized rule with "
            f"stablehlo_batch.register_rule, or batch with strict=True / --strict to "
            f"make this an error) at {format_location(op.location)}"), stacklevel=2)
    return _loop(fb, op, flags)


def _loop(fb, op, flags):
    values = lane_loop(fb, op, flags)
    if not op.results:
        fb.drop(op)
    return [(v, str(v.type) != "!stablehlo.token") for v in values]
