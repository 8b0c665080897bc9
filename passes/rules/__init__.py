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


def all_batched(op) -> list:
    return [(r, True) for r in op.results]


def retype_batched(fb, op) -> list:
    """Prepends the batch dimension to every result type of ``op`` in place."""
    for r in op.results:
        r.set_type(fb.batched_type(r.type))
    return all_batched(op)


# Importing the family modules fills RULES.
from passes.rules import (elementwise, shape_ops, dot, reduce, structural,  # noqa: E402,F401
                          control_flow, indexing, custom_calls, random,
                          windows, linalg)
