"""Strategy selection by measurement: ``batch_lower(..., tune=True)``.

A batched function can run as one program over the whole batch (the plan
``batch_lower`` builds by default, what ``jax.vmap`` does), or K lanes at a
time in a loop over chunks (``chunking.chunk_flat``, like
``jax.lax.map(batch_size=K)``; K = 1 is the per-lane loop). Which is fastest
depends on the function, the batch size and the device: on a CPU a loop over
small chunks often beats the full batch because its working set stays in
cache. ``select`` builds the candidates, runs each on the real arguments on
the real device in rounds of random order within a small time budget, and
keeps the fastest: the full batch unless another is clearly better in a
screening, (for ``tune=True``) a refinement around the best chunk size and a
second, independent confirmation against the full batch. "Better" is a
``score`` that weighs a quiet machine (the fastest calls) against a loaded
one (CPU time), so that a loop is not chosen only because another process
held the second core while we measured (docs/tuning.md). It writes the
choice to a small JSON record on disk, so that the next process (or another
``batch_lower`` of the same function) reads it instead of measuring again.

Records are keyed by a fingerprint of the unbatched module (its text without
locations, the batch axes of arguments and results), the batch size, the
platform and device kind, and the jax version. They live in, by priority:
``$STABLEHLO_BATCH_TUNING_DIR``; ``<jax_compilation_cache_dir>/stablehlo_batch_tuning``
when jax's persistent compilation cache is configured; else
``$XDG_CACHE_HOME/stablehlo_batch/tuning`` (``~/.cache/...``). A record that
cannot be read, or that was written for something else, is ignored.

Measuring needs concrete arguments: inside ``jax.jit`` tracing (or for a
platform this machine lacks) the plan uses the record when there is one and
the cost model's choice (``costmodel.decide``, as without ``tune``)
otherwise (``TuningResult.pending`` says it was not measured).
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import random
import statistics
import tempfile
import threading
import time
from typing import Sequence

import jax
import numpy as np
from jax import tree_util

from stablehlo_batch import costmodel, module_io
from stablehlo_batch import axes as ax
from stablehlo_batch.chunking import chunk_flat
from stablehlo_batch.flat import BatchedExport, batch_flat, is_symbolic

DEFAULT_CHUNKS = (1, 8, 32)
ENV_DIR = "STABLEHLO_BATCH_TUNING_DIR"
# 2: the three-stage protocol (random order, refinement, confirmation); a
# record of the first protocol (fixed rotation, one measurement) is measured again.
RECORD_VERSION = 3  # 3: the score lets CPU time weigh in only near a wall-clock tie
# A loop over chunks is kept only when it beats the full batch by this much,
# in the screening and again in the confirmation: below it, timing noise
# would decide, and the full batch is vmap's program.
MARGIN = 0.97
# The screening goes on to a second stage (refinement / confirmation) when
# the best loop's score is below this: it may beat the full batch. (1.10 at
# first, to give close losers a second chance: on the bench points that only
# added two compiles and two stages to ties such as sort_topk; the score's
# CPU-time view already credits the loops that lose in wall time only on a
# quiet machine.)
SECOND_LOOK = 1.0
# Seconds of timed rounds of the screening of every candidate (after each
# one's compile and warm-up run); the refinement around the best chunk size
# and the confirmation (the winner against the full batch alone) get these
# shares of it.
BUDGET_S = 1.0
REFINE_SHARE = 0.6
CONFIRM_SHARE = 0.6
MIN_ROUNDS, MAX_ROUNDS = 3, 200
# A candidate whose first timed run is this much slower than the best is
# dropped before the rounds: it cannot win and would eat the budget.
DROP_FACTOR = 3.0


@dataclasses.dataclass
class Candidate:
    """One strategy and what measuring it found."""
    chunk_size: int | None           # None: the full batch; 1: the per-lane loop
    seconds: float | None = None     # median seconds per call (None: not measured)
    ratio: float | None = None       # median of per-round time / full batch's
    build_seconds: float | None = None    # rewrite (and chunk loop export)
    first_call_seconds: float | None = None  # XLA compile + one run
    note: str = ""                   # why it was not measured, or dropped
    cpu_ratio: float | None = None   # median of per-round CPU time / full batch's
    ratios: dict = dataclasses.field(default_factory=dict)  # stage -> median (wall) ratio
    scores: dict = dataclasses.field(default_factory=dict)  # stage -> score (select)

    @property
    def name(self) -> str:
        return strategy_name(self.chunk_size)


@dataclasses.dataclass
class TuningResult:
    """What ``select`` did for one plan; ``.report().tuning`` of a tuned plan."""
    choice: int | None                 # chunk size chosen; None: the full batch
    source: str                        # "measured", "record", "pending", "fixed" or "model"
    candidates: list[Candidate]
    batch_size: int
    device: str
    record_path: str | None = None
    seconds: float | None = None       # time spent building and measuring
    rounds: int = 0
    reason: str = ""                   # "model" / "pending": why (costmodel.Decision.reason)

    @property
    def pending(self) -> bool:
        """Not measured (no concrete arguments yet, no record): the cost
        model's choice (``choice``, ``reason``) runs, and the first direct
        call with arrays measures."""
        return self.source == "pending"

    def as_dict(self) -> dict:
        return {"choice": self.choice, "choice_name": strategy_name(self.choice),
                "source": self.source, "batch_size": self.batch_size,
                "device": self.device, "record_path": self.record_path,
                "seconds": self.seconds, "rounds": self.rounds, "reason": self.reason,
                "candidates": [dict(dataclasses.asdict(c), name=c.name)
                               for c in self.candidates]}

    def summary(self) -> str:
        return f"tuned: {strategy_name(self.choice)} ({self.source})"

    def __str__(self) -> str:
        head = {"measured": f"measured on {self.device}, {self.rounds} rounds"
                + (f", {self.seconds:.2f} s" if self.seconds is not None else ""),
                "record": f"from the record {self.record_path}",
                "pending": "not measured yet (traced arguments): the cost model's choice "
                           "runs; the first call with arrays measures"
                           + (f" (model: {self.reason})" if self.reason else ""),
                "fixed": "nothing to choose" + (f": {self.reason}" if self.reason else ""),
                "model": f"cost model, not measured: {self.reason}"}.get(self.source, self.source)
        lines = [f"  strategy: {strategy_name(self.choice)} -- {head}"]
        for c in self.candidates:
            t = "" if c.seconds is None else f"{c.seconds * 1e3:10.3f} ms"
            r = "" if c.ratio is None else f"  x{c.ratio:.2f} of full batch"
            if c.cpu_ratio is not None:
                r += f", CPU x{c.cpu_ratio:.2f}"
            if c.scores and c.chunk_size is not None:
                r += "; score " + ", ".join(f"{k} {v:.2f}" for k, v in c.scores.items())
            mark = "*" if c.chunk_size == self.choice else " "
            lines.append(f"   {mark} {c.name:<16}{t:>14}{r}" + (f"  ({c.note})" if c.note else ""))
        return "\n".join(lines)


def strategy_name(chunk_size: int | None) -> str:
    if chunk_size is None:
        return "full batch"
    return "lane loop" if chunk_size == 1 else f"chunks of {chunk_size}"


def canonicalize_tune(tune, scale_options: dict, symbolic) -> tuple[int, ...] | None:
    """``batch_lower``'s ``tune=`` as the chunk sizes to try (None: no tuning)."""
    if tune is None or tune is False:
        return None
    if tune is True:
        chunks = DEFAULT_CHUNKS
    else:
        try:
            chunks = tuple(tune)
        except TypeError:
            raise TypeError(f"tune must be a bool or a tuple of chunk sizes, got {tune!r}") from None
        if not chunks or any(isinstance(k, bool) or not isinstance(k, int) or k < 1
                             for k in chunks):
            raise ValueError(f"tune's chunk sizes must be positive ints, got {tune!r}")
    if scale_options:
        raise ValueError("tune cannot be combined with chunk_size, memory_limit_bytes or "
                         "mesh: it chooses the chunk size itself")
    if symbolic:
        raise ValueError("tune needs a static batch size (axis_size must not be a name)")
    return tuple(chunks)


# ---- where records live ------------------------------------------------------------

def records_dir() -> str:
    """The directory of tuning records (see the module docstring)."""
    env = os.environ.get(ENV_DIR)
    if env:
        return env
    jax_dir = getattr(jax.config, "jax_compilation_cache_dir", None)
    if jax_dir:
        return os.path.join(str(jax_dir), "stablehlo_batch_tuning")
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "stablehlo_batch", "tuning")


def clear_records(directory: str | None = None) -> int:
    """Deletes the tuning records in ``directory`` (default: ``records_dir()``)
    and forgets the choices held in memory; returns how many files went."""
    clear_memory()
    directory = directory or records_dir()
    n = 0
    try:
        names = os.listdir(directory)
    except OSError:
        return 0
    for name in names:
        if name.endswith(".json"):
            with contextlib.suppress(OSError):
                os.remove(os.path.join(directory, name))
                n += 1
    return n


# Choices made in this process, by record key: a second batch_lower of the
# same function neither measures nor reads the disk.
_memory: dict[str, TuningResult] = {}
_memory_lock = threading.Lock()


def clear_memory():
    """Forgets the choices held in memory (the records on disk stay)."""
    with _memory_lock:
        _memory.clear()


def fingerprint(exp: jax.export.Exported, dims: Sequence[int | None],
                out_dims: Sequence[int | None]) -> str:
    """Hash of the unbatched module (text without locations, so moving the
    source code does not matter) and the batch axes of its arguments and results."""
    text = module_io.module_to_text(module_io.parse_module(exp.mlir_module_serialized))
    h = hashlib.sha256(text.encode())
    h.update(repr((list(dims), list(out_dims), [str(a) for a in exp.in_avals],
                   [str(a) for a in exp.out_avals])).encode())
    return h.hexdigest()


def _device(platform: str):
    """The first device of ``platform``, or None when this process has none."""
    try:
        return jax.devices(platform)[0]
    except RuntimeError:
        return None


def _identity(fp: str, size: int, platform: str, device_kind: str,
              chunks: Sequence[int]) -> dict:
    """The fields a record must match to be used."""
    return {"version": RECORD_VERSION, "fingerprint": fp, "batch_size": int(size),
            "platform": platform, "device_kind": device_kind, "jax": jax.__version__,
            "chunk_sizes": list(chunks)}


def _key(identity: dict) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:32]


def _load(path: str, identity: dict) -> TuningResult | None:
    """The record at ``path`` if it is well formed and written for ``identity``;
    anything else (missing, corrupt, foreign, impossible choice) is None."""
    try:
        with open(path) as f:
            rec = json.load(f)
        if not isinstance(rec, dict) or any(rec.get(k) != v for k, v in identity.items()):
            return None
        choice = rec["choice"]
        if choice is not None and (type(choice) is not int or not 1 <= choice < rec["batch_size"]
                                   or choice not in [c["chunk_size"] for c in rec["candidates"]]):
            return None
        cands = [Candidate(c["chunk_size"], c.get("seconds"), c.get("ratio"),
                           c.get("build_seconds"), c.get("first_call_seconds"),
                           str(c.get("note", "")), c.get("cpu_ratio"),
                           dict(c.get("ratios") or {}), dict(c.get("scores") or {}))
                 for c in rec.get("candidates", [])]
        return TuningResult(choice, "record", cands, identity["batch_size"],
                            identity["device_kind"],
                            record_path=path, seconds=rec.get("seconds"),
                            rounds=int(rec.get("rounds", 0)))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _save(path: str, identity: dict, result: TuningResult):
    """Writes the record atomically; a directory we cannot write is no error
    (the choice still holds for this process)."""
    rec = dict(identity, choice=result.choice, seconds=result.seconds, rounds=result.rounds,
               candidates=[dataclasses.asdict(c) for c in result.candidates],
               written=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(rec, f, indent=1)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError, UnboundLocalError):
            os.remove(tmp)


# ---- tracing -------------------------------------------------------------------------

_state = threading.local()


@contextlib.contextmanager
def allow_untuned():
    """Within: a plan that could not be measured may run (the full batch);
    ``api`` uses it when the call is traced by an outer ``jax.jit``."""
    old = getattr(_state, "untuned_ok", False)
    _state.untuned_ok = True
    try:
        yield
    finally:
        _state.untuned_ok = old


class NeedsArguments(Exception):
    """Raised by ``select`` when it could measure with concrete arguments but
    has none (the call is being traced) and ``allow_untuned`` is not on: the
    caller retries with its arrays, or within ``allow_untuned``."""


def untuned_ok() -> bool:
    return getattr(_state, "untuned_ok", False)


def is_concrete(leaves) -> bool:
    """Whether every argument is a value we can run on (no tracer)."""
    return not any(isinstance(x, jax.core.Tracer) for x in tree_util.tree_leaves(leaves))


# ---- candidates and measurement ----------------------------------------------------------

def chunk_sizes(size: int, chunks: Sequence[int] = DEFAULT_CHUNKS) -> list[int]:
    """The chunk sizes worth trying at batch ``size``: those below it."""
    out = sorted({int(k) for k in chunks if 1 <= int(k) < int(size)})
    return out


def build(exp, dims, out_dims, size: int, chunk: int | None, *, what: str = "batch_lower",
          full: BatchedExport | None = None) -> BatchedExport:
    """The batched function for one strategy (``chunk`` None: the full batch)."""
    if full is None:
        full = batch_flat(exp, dims, out_dims, size, what=what)
    if chunk is None:
        return full
    return chunk_flat(exp, dims, out_dims, size, chunk, what=what, full=full)


def _block(x):
    return jax.block_until_ready(x)


def measure(calls: dict, args: tuple, kwargs: dict, *, budget_s: float | None = None,
            min_rounds: int | None = None, max_rounds: int | None = None,
            reference=None, seed: int = 0, drop: bool = True,
            compiled: Sequence = ()) -> tuple[dict, dict, dict, dict, int, dict]:
    """Times ``calls`` (name -> function, compiled on their first call) on the
    same arguments in rounds, each round in a new random order.
    Returns (median seconds, median of per-round ratio to ``reference``,
    notes of dropped ones, seconds of the first call (compile), rounds,
    {"cpu": median of per-round CPU-time ratio to ``reference``,
    "min": fastest call / ``reference``'s fastest}).

    Random order, not a rotation of one order: a call runs measurably slower
    right after another kind of program (after a single-threaded loop, XLA's
    intra-op threads must wake up: 5-8% on the 2-core CPU for the same
    executable), and a rotation gives every candidate the same predecessor in
    all but one position -- the full batch always after the last loop.
    ``drop``: a candidate whose first timed run is ``DROP_FACTOR`` times the
    fastest's leaves before the rounds (one run decides: only for a first
    look at many candidates). ``compiled``: names already compiled and run
    (no warm-up call)."""
    budget_s = BUDGET_S if budget_s is None else budget_s
    min_rounds = MIN_ROUNDS if min_rounds is None else min_rounds
    max_rounds = MAX_ROUNDS if max_rounds is None else max_rounds
    first, warm, failed = {}, {}, {}
    for name, fn in calls.items():
        if name not in compiled:
            start = time.perf_counter()
            try:
                _block(fn(*args, **kwargs))  # compile and warm up
            except Exception as e:  # noqa: BLE001 - the reference's failure is the user's
                if name == reference:
                    raise
                failed[name] = _failed(e)
                continue
            warm[name] = time.perf_counter() - start
        start = time.perf_counter()
        _block(fn(*args, **kwargs))
        first[name] = time.perf_counter() - start
    best = min(first.values())
    notes = {n: f"dropped: first run {t / best:.1f}x the fastest" for n, t in first.items()
             if drop and t > DROP_FACTOR * best and n != reference}
    notes.update(failed)
    live = [n for n in first if n not in notes]
    one_round = sum(first[n] for n in live)
    rounds = int(max(min_rounds, min(max_rounds, budget_s / max(one_round, 1e-6))))
    if one_round * rounds > 3 * budget_s:  # slow calls: fewer rounds, at least one
        rounds = max(1, int(3 * budget_s / max(one_round, 1e-6)))
    times = {n: [] for n in live}
    cpu = {n: [] for n in live}
    rng = random.Random(seed)
    order = list(live)
    for _ in range(rounds):
        rng.shuffle(order)
        for n in order:
            start, cpu_start = time.perf_counter(), time.process_time()
            _block(calls[n](*args, **kwargs))
            times[n].append(time.perf_counter() - start)
            cpu[n].append(time.process_time() - cpu_start)
    medians = {n: statistics.median(v) for n, v in times.items()}
    for n in notes:
        if n in first:
            medians[n] = first[n]
    ratios, extra = {}, {"cpu": {}, "min": {}}
    if reference in times:
        ref, ref_cpu = times[reference], cpu[reference]
        ratios = {n: statistics.median(a / b for a, b in zip(v, ref) if b > 0)
                  for n, v in times.items()}
        extra["min"] = {n: min(v) / min(ref) for n, v in times.items() if min(ref) > 0}
        extra["cpu"] = {n: statistics.median([a / b for a, b in zip(v, ref_cpu) if b > 0]
                                             or [1.0]) for n, v in cpu.items()}
    return medians, ratios, notes, warm, rounds, extra


# how much slower in wall time a loop may look and still have its CPU time
# count (score)
WALL_SLACK = 1.05


def score(ratio: float, min_ratio: float | None = None, cpu_ratio: float | None = None
          ) -> float:
    """How a loop compares with the full batch, from one measurement: the
    square root of (the loop's ratio to the full batch where the loop looks
    worst) / (the full batch's ratio to the loop where the full batch looks
    worst), over three views of the same rounds -- the median of the
    per-round wall-time ratios, the ratio of the fastest calls (a quiet
    machine: load adds, never subtracts) and the median of the per-round
    CPU-time ratios (a loaded machine: a program that needs both cores runs
    at about its CPU time when another process holds one). Below 1: the
    loop's worst case is better than the full batch's (the minimax choice).
    With the wall-time ratio alone it is that ratio.

    CPU time only weighs in where a wall-clock view sees the loop within
    ``WALL_SLACK`` of the full batch: slower in both (median and fastest
    call) by more, the score is the wall-clock ratio. The full batch's CPU
    time counts XLA's worker threads, which spin between the short ops of a
    small call (``scan_rnn``@8: 0.28 ms of wall time, six times the CPU
    time of chunks of 2 that took 1.28x as long; ``cnn``@8's lane loop
    1.13x, CPU 0.73x), so there the CPU view would choose a loop that is
    slower on any machine."""
    wall = [r for r in (ratio, min_ratio) if r is not None and r > 0]
    if wall and min(wall) > WALL_SLACK:
        return max(wall)
    rs = [r for r in (ratio, min_ratio, cpu_ratio) if r is not None and r > 0]
    worst_loop = max(rs)
    worst_full = max(1 / r for r in rs)
    return (worst_loop / worst_full) ** 0.5


def _failed(e: Exception) -> str:
    return f"failed: {type(e).__name__}: {' '.join(str(e).split())[:200]}"


def select(exp: jax.export.Exported, dims: Sequence[int | None],
           out_dims: Sequence[int | None], size: int, platform: str, *,
           args: Sequence | None = None, chunks: Sequence[int] = DEFAULT_CHUNKS,
           what: str = "batch_lower", budget_s: float | None = None,
           coupled: bool = False, refine: bool | None = None
           ) -> tuple[BatchedExport, TuningResult]:
    """The batched function for the fastest strategy, and what was measured.

    ``dims`` / ``out_dims`` as for ``flat.batch_flat`` (non-negative
    argument axes); ``args`` the flat concrete batched arguments in the
    order of ``exp.in_tree`` (None or traced: no measuring). The record (in
    memory, then on disk) is used when there is one; otherwise, with
    concrete arguments, the candidates are measured and the record written.
    Without arguments to measure on and no record, it raises
    ``NeedsArguments`` unless within ``allow_untuned()`` (then: the full
    batch, ``pending``). ``coupled``: collectives over the named axis couple
    the lanes, so neither chunks nor the lane loop compute the same values:
    the full batch, nothing measured. ``refine`` (default: ``chunks`` are
    ``DEFAULT_CHUNKS``, i.e. ``tune=True``): also try the powers of two next
    to the best chunk size of the screening.

    The protocol (docs/tuning.md): a screening of every candidate; when the
    best loop's ``score`` is below ``SECOND_LOOK``, the refinement and a
    confirmation, the winner against the full batch alone in fresh rounds.
    A loop is chosen only when the confirmation scores it below ``MARGIN``
    (or the refinement, when the screening's best wins it again: that was
    the second, independent measurement); otherwise the full batch.
    """
    size = int(size)
    if refine is None:
        refine = tuple(chunks) == DEFAULT_CHUNKS
    dev = _device(platform)
    device_kind = f"{platform}:{dev.device_kind}" if dev is not None else f"{platform}:none"
    fp = fingerprint(exp, dims, out_dims)
    ks = [] if coupled else chunk_sizes(size, chunks)
    identity = _identity(fp, size, platform, device_kind, ks)
    key = _key(identity)
    path = os.path.join(records_dir(), key + ".json")

    def finish(choice, result):
        if choice is not None:
            try:
                return build(exp, dims, out_dims, size, choice, what=what), result
            except Exception as e:  # noqa: BLE001 - a recorded loop that no longer builds
                result.candidates.append(Candidate(choice, note=_failed(e)))
                result.choice = None
        return build(exp, dims, out_dims, size, None, what=what), result

    with _memory_lock:
        known = _memory.get(key)
    if known is None:
        known = _load(path, identity)
        if known is not None:
            with _memory_lock:
                _memory[key] = known
    if known is not None:
        return finish(known.choice, known)
    can_measure = (args is not None and dev is not None and is_concrete(args) and ks)
    if not can_measure and ks and dev is not None and not untuned_ok():
        raise NeedsArguments()
    if not can_measure:
        note = ("nothing to choose: collectives over the named axis need the whole batch"
                if coupled else
                "nothing to choose: the batch is no larger than every chunk size" if not ks
                else "no device for this platform" if dev is None else "")
        cands = [Candidate(None, note=note)] + [Candidate(k) for k in ks]
        source = "fixed" if not ks else "pending"
        result = TuningResult(None, source, cands, size, device_kind)
        if not ks:  # a decision, not a deferral: remember it
            with _memory_lock:
                _memory[key] = result
            return finish(None, result)
        # Not measured yet (traced by an outer jax.jit, no record): the cost
        # model's choice runs, as without tune=; the first direct call with
        # arrays still measures (``pending``).
        full = build(exp, dims, out_dims, size, None, what=what)
        if exp.ordered_effects or exp.unordered_effects:
            result.reason = "effects: the full batch"
            return full, result
        built, modeled = by_model(exp, dims, out_dims, size, platform, full, what=what)
        result.choice, result.reason = modeled.choice, modeled.reason
        for c in modeled.candidates:
            if c.chunk_size is not None:
                known = [k for k in result.candidates if k.chunk_size == c.chunk_size]
                if known:
                    known[0].note = c.note or "the cost model's choice"
                else:
                    result.candidates.append(dataclasses.replace(
                        c, note=c.note or "the cost model's choice"))
        return built, result

    start = time.perf_counter()
    a, k = tree_util.tree_unflatten(exp.in_tree, list(args))
    built, calls, cands = {}, {}, {}

    def add(chunk):
        """Builds ``chunk``'s candidate; False when it cannot be built."""
        t0 = time.perf_counter()
        try:
            b = build(exp, dims, out_dims, size, chunk, what=what, full=built.get(None))
        except Exception as e:  # noqa: BLE001 - a loop we cannot build is no candidate
            if chunk is None:
                raise
            cands[chunk] = Candidate(chunk, note=_failed(e))
            return False
        built[chunk] = b
        calls[chunk] = jax.jit(b.exported.call)
        cands[chunk] = Candidate(chunk, build_seconds=time.perf_counter() - t0)
        return True

    rounds = 0

    def stage(label, chunks, budget, seed):
        """One independent measurement of ``chunks`` (and the full batch):
        their scores against the full batch (``score``); a dropped or failed
        one is noted and leaves the tuning."""
        nonlocal rounds
        chunks = [c for c in chunks if c in built and not cands[c].note]
        named = {strategy_name(c): calls[c] for c in [None] + chunks}
        # only the screening drops on one slow first run; later stages
        # measure what the screening kept (a load spike must not drop it)
        got = measure(
            named, a, k, budget_s=budget, reference=strategy_name(None), seed=seed,
            drop=label == "screen",
            compiled=[strategy_name(c) for c in [None] + chunks
                      if cands[c].first_call_seconds is not None])
        medians, ratios, notes, warm, n = got[:5]
        extra = got[5] if len(got) > 5 else {}
        rounds += n
        out = {}
        for c in [None] + chunks:
            cand, name = cands[c], strategy_name(c)
            if cand.first_call_seconds is None:
                cand.first_call_seconds = warm.get(name)
            if name in notes:
                cand.note, cand.seconds = notes[name], medians.get(name)
                continue
            cand.seconds, cand.ratio = medians[name], ratios[name]
            cand.cpu_ratio = extra.get("cpu", {}).get(name)
            cand.ratios[label] = round(ratios[name], 4)
            if c is not None:
                out[c] = score(ratios[name], extra.get("min", {}).get(name), cand.cpu_ratio)
                cand.scores[label] = round(out[c], 4)
        return out

    for chunk in [None] + ks:
        add(chunk)
    budget = BUDGET_S if budget_s is None else budget_s
    # 1. screening: every candidate
    ratios = stage("screen", ks, budget, 0)
    choice = None
    best = min(ratios, key=ratios.get, default=None)
    if best is not None and ratios[best] < SECOND_LOOK:
        # 2. refinement (tune=True): the powers of two next to the best chunk
        # size, measured afresh with it; the best of them goes on
        confirmed = False
        if refine:
            near = [n for n in (best // 2, best * 2)
                    if 1 <= n < size and n not in cands and n == 1 << (n.bit_length() - 1)]
            near = [n for n in near if add(n)]
            if near:
                again = stage("refine", sorted([best] + near), REFINE_SHARE * budget, 1)
                if again:
                    winner = min(again, key=again.get)
                    # the screening's best wins again in fresh rounds: that
                    # was the second, independent measurement
                    confirmed = winner == best and again[best] < MARGIN
                    best, ratios = winner, again
        # 3. confirmation: the winner against the full batch alone, fresh rounds
        if confirmed:
            choice = best
        elif best in ratios and ratios[best] < SECOND_LOOK:
            confirm = stage("confirm", [best], CONFIRM_SHARE * budget, 2)
            if confirm.get(best, SECOND_LOOK) < MARGIN:
                choice = best
    cand_list = [cands[c] for c in [None] + sorted(c for c in cands if c is not None)]
    result = TuningResult(choice, "measured", cand_list, size, device_kind,
                          record_path=path, seconds=time.perf_counter() - start, rounds=rounds)
    _save(path, identity, result)
    with _memory_lock:
        _memory[key] = result
    return built[choice], result


def by_model(exp: jax.export.Exported, dims: Sequence[int | None],
             out_dims: Sequence[int | None], size, platform: str,
             full: BatchedExport, *, what: str = "batch_lower"
             ) -> tuple[BatchedExport, TuningResult]:
    """``batch_lower``'s default: the strategy ``costmodel.decide`` picks from
    the batched module ``full`` (nothing measured, nothing compiled), built.
    A loop that fails to build leaves the full batch (noted)."""
    decision = costmodel.decide(full.module, size, platform)
    cands = [Candidate(None)]
    result = TuningResult(decision.chunk, "model", cands, int(size), platform,
                          reason=decision.reason)
    if decision.chunk is None:
        return full, result
    cand = Candidate(decision.chunk)
    cands.append(cand)
    start = time.perf_counter()
    try:
        built = build(exp, dims, out_dims, size, decision.chunk, what=what, full=full)
    except Exception as e:  # noqa: BLE001 - the full batch is always right
        cand.note = _failed(e)
        result.choice = None
        return full, result
    cand.build_seconds = time.perf_counter() - start
    return built, result


def example_arguments(avals, seed: int = 0) -> list:
    """Arrays of the given avals to measure on when the caller has none:
    standard normal floats, zeros for integers and booleans (valid indices)."""
    rng = np.random.default_rng(seed)
    out = []
    for a in avals:
        dt = np.dtype(a.dtype)
        if np.issubdtype(dt, np.inexact):
            x = rng.standard_normal(a.shape).astype(dt)
        else:
            x = np.zeros(a.shape, dt)
        out.append(jax.numpy.asarray(x))
    return out


def model_exported(exp: jax.export.Exported, dims, out_dims, size, full: BatchedExport, *,
                   coupled: bool = False, what: str = "batch_exported"
                   ) -> tuple[BatchedExport, TuningResult]:
    """``batch_exported``'s default (``tune=None``): the cost model's choice
    for an artifact exported for the CPU alone (the model's thresholds were
    measured on XLA:CPU); the full batch for other platforms, several
    platforms, a symbolic size, coupled lanes (``axis_name``) or effects."""
    why = ("a symbolic batch size" if is_symbolic(size) else
           "collectives over the named axis need the whole batch" if coupled else
           "the function has effects" if exp.ordered_effects or exp.unordered_effects else
           f"exported for {', '.join(exp.platforms)}: the cost model's thresholds are "
           f"for the CPU alone" if tuple(exp.platforms) != ("cpu",) else "")
    if why:
        return full, TuningResult(None, "model", [Candidate(None)],
                                  size if isinstance(size, int) else 0,
                                  ",".join(exp.platforms), reason=f"{why}: the full batch")
    dims = ax.batch_positions(f"{what} in_axes", exp.in_avals, dims)
    return by_model(exp, dims, out_dims, int(size), "cpu", full, what=what)


def select_exported(exp: jax.export.Exported, dims, out_dims, size, tune,
                    tune_args=None, coupled: bool = False, what: str = "batch_exported"
                    ) -> tuple[BatchedExport, TuningResult]:
    """``batch_exported(..., tune=...)``: the fastest strategy, and what was measured."""
    chunks = canonicalize_tune(tune, {}, is_symbolic(size))
    dims = ax.batch_positions("batch_exported in_axes", exp.in_avals, dims)
    batched_avals = [a if d is None else a.update(shape=a.shape[:d] + (int(size),) + a.shape[d:])
                     for a, d in zip(exp.in_avals, dims)]
    if tune_args is None:
        leaves = example_arguments(batched_avals)
    else:
        leaves, tree = tree_util.tree_flatten((tuple(tune_args), {}))
        if tree != exp.in_tree:
            raise ValueError(f"tune_args must be the batched positional arguments "
                             f"({exp.in_tree}), got {tree}")
    platform = jax.default_backend()
    if platform not in exp.platforms:
        platform, leaves = exp.platforms[0], None
    with allow_untuned():
        return select(exp, dims, out_dims, int(size), platform, args=leaves,
                      chunks=chunks, what=what, coupled=coupled)
