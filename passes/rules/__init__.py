"""The batching rules, one module per op family, all in one table: ``RULES``.

A rule is ``rule(fb, op, flags) -> [(new_value, is_batched), ...]`` with one
pair per result of ``op``. ``fb`` is the engine's FunctionBatcher (axis size,
``materialize``, ``is_batched``, ``decline``, ``unsupported``); ``flags[i]``
says whether operand i is batched (batch dimension first). The engine calls a
rule only when at least one operand, or a value captured by a region, is
batched, and inside ``with ir.InsertionPoint(op), op.location`` so builders
need neither. A rule may retype ``op`` in place and return its own results,
or build new ops and return their results (the engine then erases ``op``).
A rule that has no vectorized form for this use of its op calls
``fb.decline(op, why)`` before changing anything; the engine then runs the op
once per lane (or raises UnsupportedOpError under strict). Shared pieces of
rules live in passes/rules/helpers.py; the table in passes/rules/table.py.
"""
from __future__ import annotations

from typing import Callable

from stablehlo_batch.passes.rules.table import (RuleEntry, RuleRegistration, RuleTable,  # noqa: F401
                                register_user_rule, unregister_user_rule)

# The one table: built-in rules are added by the family modules below, users'
# rules by register_rule (per context) on top of them.
RULES = RuleTable(scoped=True)
register = RULES.register
register_custom_call = RULES.register_custom_call


def register_rule(name: str, rule: Callable, *, custom_call: bool | None = None,
                  scope: str = "context", costly: bool = True,
                  predict: Callable | None = None) -> RuleRegistration:
    """Registers a user batching rule for an op name (``"stablehlo.sort"``)
    or a custom call target (``"my_kernel"``); it overrides the built-in rule
    and the per-lane fallback. ``custom_call`` says which kind ``name`` is
    when its prefix does not (names of the stablehlo/chlo/mhlo/... dialects
    are op names). ``rule(fb, op, flags)`` has the built-in rules' contract
    (see this module's docstring).

    ``scope="context"`` (the default) registers for the current context only
    (the current thread, or asyncio task): other threads keep their rules.
    ``scope="process"`` registers for every thread. A second rule for the
    same name in the same scope is refused (ValueError) until the first is
    removed. ``costly``: whether a branch that uses the op is worth skipping
    at run time; ``predict``: which results come out batched (see
    passes/rules/table.py). Batchings started after the registration use it,
    also for argument signatures already compiled before."""
    return register_user_rule(RULES, name, rule, custom_call=custom_call, scope=scope,
                              costly=costly, predict=predict)


def unregister_rule(name: str, *, custom_call: bool | None = None):
    """Removes a user rule registered under ``name`` in this context (or, if
    there is none, for the process); no error if there is none."""
    unregister_user_rule(RULES, name, custom_call=custom_call)


def find_rule(op, rules: RuleTable | None = None) -> Callable | None:
    """The rule that batches ``op``, None when there is none."""
    return (RULES if rules is None else rules).lookup(op)


# Importing the family modules fills RULES.
from stablehlo_batch.passes.rules import (  # noqa: E402,F401
    elementwise, shape_ops, dot, reduce, structural, control_flow, indexing, custom_calls,
    random, windows, linalg, fft, collectives)
