"""The batching report: what the rewrite did to one function, for the user.

``Collector`` is filled by the engine while it batches: which ops went
through which rule, which ops each rule created (``builders.create`` tells
it), the entry/exit axis moves and the decisions rules record with
``fb.note``. Everything it holds can be rolled back to a mark, so the
throw-away clones the while rule rewrites to find its fixed point leave no
trace. ``Collector.finish`` turns it into a ``BatchingReport``: structured
fields plus a readable ``__str__`` (what ``Lowered.report()`` and the CLI's
``--report`` print).
"""
from __future__ import annotations

import dataclasses
import threading
from collections import Counter
from typing import Iterable

from jaxlib.mlir import ir

# Pseudo-rule names for the ops the engine itself inserts.
ENTRY = "<entry: in_axes moves>"
EXIT = "<exit: out_axes moves>"

# Ops whose bytes say what batching cost in data movement.
_MOVES = {"stablehlo.transpose": "transposes", "stablehlo.broadcast_in_dim": "broadcasts"}
# A broadcast of a constant: XLA fuses it into its users, it moves no data.
CONST_BROADCAST = "broadcast_in_dim of a constant"

_local = threading.local()


def current() -> "Collector | None":
    """The collector of the rewrite running on this thread (None: none runs)."""
    return getattr(_local, "collector", None)


def created(op: ir.Operation):
    """Called by ``builders.create`` for every op it builds. Name and bytes
    are read now, while the op surely exists; bytes only for data movement
    (the report shows no others, and this runs for every op a rule builds)."""
    c = getattr(_local, "collector", None)
    if c is None:
        return
    name = op.name
    if name.endswith("return"):
        return
    size = 0
    if name in _MOVES:
        size = sum(type_bytes(r.type) for r in op.results)
        if name == "stablehlo.broadcast_in_dim" and _of_constant(op):
            name = CONST_BROADCAST
    c.pending.append((op, name, size))


def _of_constant(op: ir.Operation) -> bool:
    try:
        owner = op.operands[0].owner
        return getattr(owner, "name", None) == "stablehlo.constant"
    except Exception:  # a block argument has no owning op
        return False


def type_bytes(t: ir.Type) -> int:
    """Bytes of a ranked tensor type with static shape (0 for anything else).
    Never raises: the report must not break a rewrite."""
    try:
        t = _down(t)
        if not isinstance(t, ir.RankedTensorType) or not t.has_static_shape:
            return 0
        n = 1
        for d in t.shape:
            n *= d
        return n * _element_bytes(t.element_type)
    except Exception:  # an exotic type: count no bytes
        return 0


def _down(t: ir.Type) -> ir.Type:
    return t.maybe_downcast() if hasattr(t, "maybe_downcast") else t


def _element_bytes(e: ir.Type) -> int:
    e = _down(e)
    if isinstance(e, ir.ComplexType):
        return 2 * _element_bytes(e.element_type)
    width = getattr(e, "width", None)
    return max(1, (int(width) + 7) // 8) if width else 0


@dataclasses.dataclass(frozen=True)
class Inserted:
    """Ops of one name that batching created: how many and their result bytes."""
    count: int = 0
    bytes: int = 0

    def __add__(self, other: "Inserted") -> "Inserted":
        return Inserted(self.count + other.count, self.bytes + other.bytes)


@dataclasses.dataclass
class BatchingReport:
    """What batching did to one entry function (and the callees it batched)."""
    func: str
    axis_size: int
    # op name -> how many ops of that name went through its rule.
    ops_by_rule: dict[str, int]
    # ops none of whose inputs were batched, left exactly as they were.
    ops_kept_unbatched: int
    # rule (op name, or ENTRY / EXIT) -> created op name -> Inserted.
    inserted_by_rule: dict[str, dict[str, Inserted]]
    # every BatchNote the rules recorded (branches_to_selects, fallback, ...).
    notes: list
    rewrite_seconds: float | None = None
    # with batch_lower(tune=...): stablehlo_batch.tuning.TuningResult
    tuning: object = None

    # ---- derived fields ------------------------------------------------------
    def inserted(self, op_name: str) -> Inserted:
        """All ops of ``op_name`` that batching created (engine moves included)."""
        total = Inserted()
        for per_rule in self.inserted_by_rule.values():
            total = total + per_rule.get(op_name, Inserted())
        return total

    @property
    def transposes(self) -> Inserted:
        return self.inserted("stablehlo.transpose")

    @property
    def broadcasts(self) -> Inserted:
        """Broadcasts of values (arguments, computed values); see
        ``constant_broadcasts`` for those of constants."""
        return self.inserted("stablehlo.broadcast_in_dim")

    @property
    def constant_broadcasts(self) -> Inserted:
        return self.inserted(CONST_BROADCAST)

    def notes_of(self, kind: str) -> list:
        return [n for n in self.notes if n.kind == kind]

    @property
    def branches_to_selects(self) -> int:
        return len(self.notes_of("branches_to_selects"))

    @property
    def batched_predicate_loops(self) -> int:
        return len(self.notes_of("batched_predicate_loop"))

    @property
    def per_lane_loops(self) -> int:
        return len(self.notes_of("per_lane_loop"))

    @property
    def fallbacks(self) -> int:
        return len(self.notes_of("fallback"))

    def as_dict(self) -> dict:
        return {
            "func": self.func, "axis_size": self.axis_size,
            "ops_by_rule": dict(self.ops_by_rule),
            "ops_kept_unbatched": self.ops_kept_unbatched,
            "inserted_by_rule": {r: {k: dataclasses.asdict(v) for k, v in d.items()}
                                 for r, d in self.inserted_by_rule.items()},
            "transposes": dataclasses.asdict(self.transposes),
            "broadcasts": dataclasses.asdict(self.broadcasts),
            "constant_broadcasts": dataclasses.asdict(self.constant_broadcasts),
            "notes": [dataclasses.asdict(n) for n in self.notes],
            "rewrite_seconds": self.rewrite_seconds,
            "tuning": None if self.tuning is None else self.tuning.as_dict(),
        }

    # ---- text ------------------------------------------------------------------
    def summary(self) -> str:
        """One line: the numbers a benchmark table wants."""
        t, b = self.transposes, self.broadcasts
        parts = [f"{sum(self.ops_by_rule.values())} ops batched",
                 f"{self.ops_kept_unbatched} kept unbatched",
                 f"{t.count} transposes ({_fmt_bytes(t.bytes)})",
                 f"{b.count} broadcasts ({_fmt_bytes(b.bytes)})"]
        cb = self.constant_broadcasts
        if cb.count:
            parts.append(f"{cb.count} broadcasts of constants")
        for kind, n in Counter(n.kind for n in self.notes).items():
            parts.append(f"{n} {kind}")
        if self.tuning is not None:
            parts.append(self.tuning.summary())
        return ", ".join(parts)

    def __str__(self) -> str:
        lines = [f"batching report for @{self.func} (batch size {self.axis_size})"]
        if self.rewrite_seconds is not None:
            lines[0] += f", rewrite {self.rewrite_seconds * 1e3:.1f} ms"
        lines.append("  " + self.summary())
        if self.ops_by_rule:
            lines.append("  ops by rule:")
            for name, n in sorted(self.ops_by_rule.items(), key=lambda kv: (-kv[1], kv[0])):
                made = self.inserted_by_rule.get(name, {})
                lines.append(f"    {name:<34} {n:>5}" + _inserted_text(made))
        for pseudo in (ENTRY, EXIT):
            made = self.inserted_by_rule.get(pseudo)
            if made:
                lines.append(f"  {pseudo}:" + _inserted_text(made))
        if self.notes:
            lines.append("  decisions:")
            for n in self.notes:
                where = f" in @{n.func_name}" if n.func_name != self.func else ""
                lines.append(f"    {n.kind}: {n.op_name} at {n.location}{where}"
                             + (f" -- {n.detail}" if n.detail else ""))
        if self.tuning is not None:
            lines.append(str(self.tuning))
        return "\n".join(lines)


def _fmt_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _inserted_text(made: dict[str, Inserted]) -> str:
    if not made:
        return ""
    items = sorted(made.items(), key=lambda kv: (-kv[1].count, kv[0]))
    text = ", ".join(
        f"{v.count} {k.split('.')[-1]}" + (f" ({_fmt_bytes(v.bytes)})" if k in _MOVES else "")
        for k, v in items)
    return f"   inserted: {text}"


class Collector:
    """Mutable event log the engine fills; see the module docstring."""

    def __init__(self):
        # (op, name, bytes) created and not yet claimed by a rule.
        self.pending: list[tuple[ir.Operation, str, int]] = []
        # [rule, created op, its name, its bytes, still alive]
        self.claims: list[list] = []
        self._index: dict[ir.Operation, list] = {}  # created op -> its claim
        self.ruled: list[str] = []                 # op names handed to a rule
        self.replaced: list[str] = []              # ... whose op the engine erased
        self.kept = 0
        self.notes: list = []
        # Events ``keep`` moved out of reach of ``rollback``.
        self._kept_events: list[tuple] = []

    # ---- installation on this thread ---------------------------------------
    def __enter__(self):
        self._outer = current()
        _local.collector = self
        return self

    def __exit__(self, *exc):
        _local.collector = self._outer

    # ---- events -------------------------------------------------------------
    def mark(self) -> tuple[int, ...]:
        return (len(self.pending), len(self.claims), len(self.ruled), self.kept,
                len(self.notes), len(self.replaced))

    def rollback(self, mark: tuple[int, ...]):
        """Forgets everything recorded since ``mark`` (a throw-away clone)."""
        p, c, r, k, n, x = mark
        del self.pending[p:], self.claims[c:], self.ruled[r:], self.notes[n:]
        del self.replaced[x:]
        self.kept = k

    def keep(self, mark: tuple[int, ...]):
        """Makes what was recorded since ``mark`` permanent: a callee is
        batched once and memoized, possibly while a throw-away clone is
        rewritten, and its events must survive that clone's rollback."""
        p, c, r, k, n, x = mark
        self._kept_events.append((self.claims[c:], self.ruled[r:], self.kept - k,
                                  self.notes[n:], self.replaced[x:]))
        del self.claims[c:], self.ruled[r:], self.notes[n:], self.replaced[x:]
        self.kept = k

    def claim(self, rule: str, since: int):
        """Attributes the ops created since ``since`` (pending index) to ``rule``."""
        for op, name, size in self.pending[since:]:
            entry = [rule, op, name, size, True]
            self._index[op] = entry
            self.claims.append(entry)
        del self.pending[since:]

    def erased(self, op: ir.Operation, replaced: bool = False):
        """``op`` is about to be erased: it no longer counts as inserted.
        ``replaced``: its rule built a replacement, which is no insertion."""
        if replaced:
            self.replaced.append(op.name)
        entry = self._index.pop(op, None)
        if entry is not None and entry[1] == op:
            entry[4] = False

    # ---- the result ------------------------------------------------------------
    def finish(self, func: str, axis_size: int) -> BatchingReport:
        claims, ruled, kept = list(self.claims), list(self.ruled), self.kept
        notes, replaced = [], list(self.replaced)
        for c, r, k, n, x in self._kept_events:
            claims += c
            ruled += r
            kept += k
            notes += n
            replaced += x
        notes += self.notes
        by_rule: dict[str, dict[str, Inserted]] = {}
        for rule, _, name, size, alive in claims:
            if alive:
                per = by_rule.setdefault(rule, {})
                per[name] = per.get(name, Inserted()) + Inserted(1, size)
        for name, n in Counter(replaced).items():
            # An op its rule rebuilt (a new dot_general for the old one) is a
            # replacement: only the extra ops of its name count as inserted.
            per = by_rule.get(name, {})
            have = per.get(name)
            if have is not None:
                left = max(0, have.count - n)
                if left:
                    per[name] = Inserted(left, have.bytes * left // have.count)
                else:
                    del per[name]
                if not per:
                    del by_rule[name]
        return BatchingReport(func, axis_size, dict(Counter(ruled)), kept, by_rule,
                              notes)


def merge_counts(reports: Iterable[BatchingReport]) -> Counter:
    """Adds ops_by_rule over several reports (benchmark summaries)."""
    total: Counter = Counter()
    for r in reports:
        total.update(r.ops_by_rule)
    return total
