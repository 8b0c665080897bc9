"""The rule table: op name -> batching rule, filled by the family modules.

A rule is ``rule(fb, op, flags) -> [(new_value, is_batched), ...]`` with one
pair per result of ``op``. ``fb`` is the engine's FunctionBatcher (axis size,
``materialize``, ``is_batched``, ``unsupported``); ``flags[i]`` says whether
operand i is batched (batch dimension first). The engine calls a rule only
when at least one operand, or a value captured by a region, is batched, and
inside ``with ir.InsertionPoint(op), op.location`` so builders need neither.
A rule may retype ``op`` in place and return its own results, or build new
ops and return their results (the engine then erases ``op``).
"""
from __future__ import annotations

from typing import Callable

from jaxlib.mlir import ir

RULES: dict[str, Callable] = {}


def register(*names: str):
    """Registers the decorated rule under each of ``names``."""
    def wrap(fn):
        for name in names:
            if name in RULES:
                raise ValueError(f"duplicate batching rule for {name}")
            RULES[name] = fn
        return fn
    return wrap


# Rules added by users (register_rule): they win over RULES, the custom-call
# targets' rules and the per-lane fallback. Keyed by op name / target name.
USER_RULES: dict[str, Callable] = {}
USER_CUSTOM_CALL_RULES: dict[str, Callable] = {}

# Dialects whose op names register_rule recognises; any other name is taken
# to be a custom call target.
_DIALECTS = ("stablehlo.", "chlo.", "mhlo.", "sdy.", "func.", "shape.", "tensor.",
             "arith.", "vhlo.")


class RuleRegistration:
    """What ``register_rule`` returns: ``.remove()`` restores what was
    registered before; used as a context manager it does so on exit."""

    def __init__(self, table: dict, name: str, rule: Callable):
        self._table, self.name = table, name
        self._previous = table.get(name)
        table[name] = rule

    def remove(self):
        if self._previous is None:
            self._table.pop(self.name, None)
        else:
            self._table[self.name] = self._previous

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


def register_rule(name: str, rule: Callable, *,
                  custom_call: bool | None = None) -> RuleRegistration:
    """Registers a user batching rule for an op name (``"stablehlo.sort"``)
    or a custom call target (``"my_kernel"``); it overrides the built-in rule
    and the per-lane fallback. ``custom_call`` says which kind ``name`` is
    when its prefix does not (names of the stablehlo/chlo/mhlo/... dialects
    are op names). ``rule(fb, op, flags)`` has the built-in rules' contract
    (see this module's docstring)."""
    if not callable(rule):
        raise TypeError(f"register_rule needs a callable rule, got {rule!r}")
    if not isinstance(name, str) or not name:
        raise TypeError(f"register_rule needs an op name or custom call target, got {name!r}")
    if custom_call is None:
        custom_call = not name.startswith(_DIALECTS)
    table = USER_CUSTOM_CALL_RULES if custom_call else USER_RULES
    return RuleRegistration(table, name, rule)


def unregister_rule(name: str, *, custom_call: bool | None = None):
    """Removes a user rule registered under ``name`` (no error if there is none)."""
    if custom_call is None:
        custom_call = not name.startswith(_DIALECTS)
    (USER_CUSTOM_CALL_RULES if custom_call else USER_RULES).pop(name, None)


def find_rule(op, rules: dict) -> Callable | None:
    """The rule for ``op``: a user rule (by custom call target, then by op
    name), else the one in ``rules``; None when there is none."""
    if USER_CUSTOM_CALL_RULES and op.name == "stablehlo.custom_call":
        target = ir.StringAttr(op.attributes["call_target_name"]).value
        if target in USER_CUSTOM_CALL_RULES:
            return USER_CUSTOM_CALL_RULES[target]
    return USER_RULES.get(op.name) or rules.get(op.name)


def all_batched(op) -> list:
    return [(r, True) for r in op.results]


def retype_batched(fb, op) -> list:
    """Prepends the batch dimension to every result type of ``op`` in place."""
    for r in op.results:
        r.set_type(fb.batched_type(r.type))
    return all_batched(op)


# Importing the family modules fills RULES.
from stablehlo_batch.passes.rules import (  # noqa: E402,F401
    elementwise, shape_ops, dot, reduce, structural, control_flow, indexing, custom_calls,
    random, windows, linalg, fft, collectives)
