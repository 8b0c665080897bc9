"""The rule table: every batching rule -- built-in op rules, custom-call
target rules and users' rules -- in one object with one lookup.

An entry is a rule plus what the rule knows about its op, which other
passes ask instead of keeping lists of other families' ops:

* ``predict(p, op, ins) -> [bool]``: which results batching makes batched,
  without rewriting (the while rule's carry prediction); without it every
  result of a batched op is predicted batched.
* ``costly``: whether the op is worth skipping at run time (the cond rule's
  "do all lanes agree" test). An op with no rule is costly: batched, it runs
  once per lane.

Lookup goes through three layers, innermost first: rules registered in the
current context (``register_rule``: a ``ContextVar``, so two threads or two
asyncio tasks can batch with different rules), rules registered for the
whole process (``register_rule(..., scope="process")``), then the built-in
rules. In each layer a custom call's target rule wins over an op-name rule.

Every change makes a new *generation*; caches of batched modules keep the
generation they were built with in their key, so a rule registered after a
first call takes effect on the next one.
"""
from __future__ import annotations

import contextvars
import dataclasses
import itertools
import threading
from types import MappingProxyType
from typing import Callable, Mapping

from jaxlib.mlir import ir

Rule = Callable  # (fb, op, flags) -> [(new value, is batched), ...]
Predict = Callable  # (predictor, op, in_flags) -> [bool] per result

_generations = itertools.count(1)

# Dialects whose op names register_rule recognises; any other name is taken
# to be a custom call target.
DIALECTS = ("stablehlo.", "chlo.", "mhlo.", "sdy.", "func.", "shape.", "tensor.",
            "arith.", "vhlo.")


@dataclasses.dataclass(frozen=True)
class RuleEntry:
    """One registered rule and what it knows about its op."""
    rule: Rule
    predict: Predict | None = None
    costly: bool = False


@dataclasses.dataclass(frozen=True)
class _Layer:
    """Immutable rules of one scope: op name -> entry, target -> entry."""
    ops: Mapping[str, RuleEntry]
    targets: Mapping[str, RuleEntry]
    gen: int

    def get(self, name: str, target: str | None) -> RuleEntry | None:
        if target is not None and target in self.targets:
            return self.targets[target]
        return self.ops.get(name)

    def with_entry(self, key: str, custom_call: bool, entry: RuleEntry | None) -> "_Layer":
        ops, targets = dict(self.ops), dict(self.targets)
        table = targets if custom_call else ops
        if entry is None:
            table.pop(key, None)
        else:
            table[key] = entry
        return _Layer(MappingProxyType(ops), MappingProxyType(targets), next(_generations))

    def has(self, key: str, custom_call: bool) -> bool:
        return key in (self.targets if custom_call else self.ops)


_EMPTY = _Layer(MappingProxyType({}), MappingProxyType({}), 0)

# The rules of the current context, over every table that is ``scoped``.
_CONTEXT: contextvars.ContextVar[_Layer] = contextvars.ContextVar(
    "stablehlo_batch_user_rules", default=_EMPTY)
# For hot paths that compare ``RuleTable.snapshot()`` of a scoped table
# inline: ``CONTEXT.get() is snapshot[0] and table.own_layers is snapshot[1]``.
CONTEXT = _CONTEXT


def call_target(op) -> str | None:
    """The target name of a ``stablehlo.custom_call`` (None for other ops)."""
    if op.name == "stablehlo.custom_call" and "call_target_name" in op.attributes:
        return ir.StringAttr(op.attributes["call_target_name"]).value
    return None


def is_custom_call_name(name: str, custom_call: bool | None) -> bool:
    return (not name.startswith(DIALECTS)) if custom_call is None else bool(custom_call)


def _check(name, rule):
    if not callable(rule):
        raise TypeError(f"a batching rule must be callable, got {rule!r}")
    if not isinstance(name, str) or not name:
        raise TypeError(f"a batching rule needs an op name or custom call target, got {name!r}")


class RuleTable:
    """Built-in rules and users' rules for ops and custom call targets.

    ``scoped`` tables (the global ``RULES``) also see the rules registered
    in the current context; other tables (``copy()``, for a test or a tool
    that batches with its own rules) hold only their own."""

    def __init__(self, *, scoped: bool = False):
        self.scoped = scoped
        self._lock = threading.Lock()
        # (process layer, built-in layer): one object, replaced on every
        # change, so that a caller can tell "same rules" by identity
        # (``snapshot``) without building the generation tuple.
        self.own_layers = (_EMPTY, _EMPTY)

    @property
    def _process(self) -> _Layer:
        return self.own_layers[0]

    @_process.setter
    def _process(self, layer: _Layer):
        self.own_layers = (layer, self.own_layers[1])

    @property
    def _builtin(self) -> _Layer:
        return self.own_layers[1]

    @_builtin.setter
    def _builtin(self, layer: _Layer):
        self.own_layers = (self.own_layers[0], layer)

    # ---- registration -------------------------------------------------------
    def add(self, name: str, rule: Rule, *, custom_call: bool = False,
            predict: Predict | None = None, costly: bool = False, builtin: bool = True):
        """Adds a rule for an op name (or a custom call target); a second
        rule for the same name in the same layer is refused."""
        _check(name, rule)
        entry = RuleEntry(rule, predict, costly)
        with self._lock:
            layer = self._builtin if builtin else self._process
            if layer.has(name, custom_call):
                raise ValueError(_duplicate(name, custom_call))
            layer = layer.with_entry(name, custom_call, entry)
            if builtin:
                self._builtin = layer
            else:
                self._process = layer

    def remove(self, name: str, *, custom_call: bool = False, builtin: bool = False):
        with self._lock:
            if builtin:
                self._builtin = self._builtin.with_entry(name, custom_call, None)
            else:
                self._process = self._process.with_entry(name, custom_call, None)

    def register(self, *names: str, predict: Predict | None = None, costly: bool = False):
        """Decorator: the built-in rule for each op name in ``names``."""
        def wrap(fn):
            for name in names:
                self.add(name, fn, predict=predict, costly=costly)
            return fn
        return wrap

    def register_custom_call(self, *targets: str, costly: bool = False):
        """Decorator: the built-in rule for each custom call target in ``targets``."""
        def wrap(fn):
            for target in targets:
                self.add(target, fn, custom_call=True, costly=costly)
            return fn
        return wrap

    # ---- lookup ---------------------------------------------------------------
    def _layers(self):
        if self.scoped:
            return (_CONTEXT.get(), self._process, self._builtin)
        return (self._process, self._builtin)

    def entry(self, op) -> RuleEntry | None:
        """The entry that batches ``op`` (None: it has no rule)."""
        name, target = op.name, call_target(op)
        for layer in self._layers():
            found = layer.get(name, target)
            if found is not None:
                return found
        return None

    def lookup(self, op) -> Rule | None:
        entry = self.entry(op)
        return None if entry is None else entry.rule

    def is_costly(self, op) -> bool:
        """Whether ``op`` is worth skipping at run time: its rule says so, or
        it has no rule and operands (batched, it would run once per lane)."""
        entry = self.entry(op)
        if entry is None:
            return len(op.operands) > 0 or len(op.regions) > 0
        return entry.costly

    def has(self, name: str, *, custom_call: bool = False) -> bool:
        return any(layer.has(name, custom_call) for layer in self._layers())

    def get(self, name: str, *, custom_call: bool = False) -> Rule | None:
        """The rule registered here for an op name (or a custom call target)."""
        for layer in self._layers():
            found = (layer.targets if custom_call else layer.ops).get(name)
            if found is not None:
                return found.rule
        return None

    def __contains__(self, name: str) -> bool:
        return self.has(name)

    def __getitem__(self, name: str) -> Rule:
        rule = self.get(name)
        if rule is None:
            raise KeyError(name)
        return rule

    def names(self, *, custom_call: bool = False, builtin_only: bool = False) -> list[str]:
        """The registered op names (or custom call targets), sorted."""
        layers = (self._builtin,) if builtin_only else self._layers()
        out: set[str] = set()
        for layer in layers:
            out.update(layer.targets if custom_call else layer.ops)
        return sorted(out)

    @property
    def generation(self) -> tuple[int, ...]:
        """Changes whenever the rules this table would use here change."""
        return self.generation_of(self.snapshot())

    def snapshot(self) -> tuple:
        """The rules in force here, as two objects: while both are the same
        objects (``is``) as in an earlier snapshot, the generation is the
        same. For hot paths: cheaper than ``generation``'s tuple."""
        return (_CONTEXT.get() if self.scoped else _EMPTY, self.own_layers)

    def generation_of(self, snapshot) -> tuple[int, ...]:
        context, (process, builtin) = snapshot
        if self.scoped:
            return (context.gen, process.gen, builtin.gen)
        return (process.gen, builtin.gen)

    def copy(self) -> "RuleTable":
        """An unscoped table with the rules this one uses here (for batching
        with a modified set of rules without touching the global table)."""
        new = RuleTable()
        ops, targets = {}, {}
        for layer in reversed(self._layers()):
            ops.update(layer.ops)
            targets.update(layer.targets)
        new._builtin = _Layer(MappingProxyType(ops), MappingProxyType(targets),
                              next(_generations))
        return new


def _duplicate(name: str, custom_call: bool) -> str:
    what = "custom call target" if custom_call else "op"
    return (f"duplicate batching rule for {what} {name!r}: remove the registration "
            "that is there first")


# ---- users' rules (stablehlo_batch.register_rule) ---------------------------------

class RuleRegistration:
    """What ``register_rule`` returns: ``.remove()`` takes the rule out again;
    used as a context manager it does so on exit."""

    def __init__(self, table: RuleTable, name: str, custom_call: bool, scope: str,
                 before: _Layer | None, after: _Layer | None):
        self.table, self.name, self.custom_call, self.scope = table, name, custom_call, scope
        self._before, self._after = before, after
        self._removed = False

    def remove(self):
        if self._removed:
            return
        self._removed = True
        if self.scope == "process":
            self.table.remove(self.name, custom_call=self.custom_call)
            return
        current = _CONTEXT.get()
        if current is self._after:
            # Nothing registered since: back to the very layer before, whose
            # generation the caches already know.
            _CONTEXT.set(self._before)
        else:
            _CONTEXT.set(current.with_entry(self.name, self.custom_call, None))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


def register_user_rule(table: RuleTable, name: str, rule: Rule, *,
                       custom_call: bool | None = None, scope: str = "context",
                       predict: Predict | None = None, costly: bool = True
                       ) -> RuleRegistration:
    _check(name, rule)
    custom_call = is_custom_call_name(name, custom_call)
    if scope == "process":
        table.add(name, rule, custom_call=custom_call, predict=predict, costly=costly,
                  builtin=False)
        return RuleRegistration(table, name, custom_call, scope, None, None)
    if scope != "context":
        raise ValueError(f"scope must be 'context' or 'process', got {scope!r}")
    before = _CONTEXT.get()
    if before.has(name, custom_call):
        raise ValueError(_duplicate(name, custom_call))
    after = before.with_entry(name, custom_call, RuleEntry(rule, predict, costly))
    _CONTEXT.set(after)
    return RuleRegistration(table, name, custom_call, scope, before, after)


def unregister_user_rule(table: RuleTable, name: str, *, custom_call: bool | None = None):
    custom_call = is_custom_call_name(name, custom_call)
    current = _CONTEXT.get()
    if current.has(name, custom_call):
        _CONTEXT.set(current.with_entry(name, custom_call, None))
    else:
        table.remove(name, custom_call=custom_call)

