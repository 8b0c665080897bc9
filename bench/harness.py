"""Measuring one workload: batch_lower vs jax.jit(jax.vmap(f)) vs jax.lax.map
(and, on request, ``lax.map(batch_size=K)`` for several K and
``batch_lower(tune=True)``).

All contenders run in one process. Run times are taken in alternating
rounds (each contender once a round, in a new random order) so that drift on
a shared machine hits all of them alike; we report medians and the median of the per-round
ratios. Time to first result is measured from a fresh function object,
jax's caches cleared before each side (neither profits from the other),
after one unmeasured jit(vmap) run that pays XLA's once-per-process costs
and a full garbage collection:
batch_lower's covers export + rewrite + compile + run; vmap's covers trace +
lower + compile + run. It is taken ``first_calls`` times per side (default 3),
the order alternating, and reported as medians and the median of the
per-pair CPU ratios. A workload that fails to batch is reported as
``unsupported: <error>`` instead of stopping the run.
"""
from __future__ import annotations

import dataclasses
import gc
import random
import re
import statistics
import time
from collections import Counter
from typing import Any

import jax
import numpy as np

from jaxlib.mlir import ir

import stablehlo_batch as sb
from bench.workloads import Workload
# The package imports its API on first use (PEP 562); import it here, as a
# user's ``from stablehlo_batch import batch_lower`` does, so that the first
# time to first result does not include it (jax's import is not in vmap's).
sb.batch_lower  # noqa: B018
from stablehlo_batch import module_io
from stablehlo_batch.rewrite import batch_function

_INSTR = re.compile(r"^\s*(ROOT\s+)?%?[\w.\-]+\s*=\s")
_SHAPE_OP = re.compile(r"=\s*(.*?)\s([\w\-]+)\(")


def hlo_instruction_count(hlo_text: str) -> int:
    """Instructions in every computation of an optimized HLO module."""
    return sum(1 for line in hlo_text.splitlines() if _INSTR.match(line))


def hlo_signature(hlo_text: str) -> Counter:
    """The multiset of (result type, opcode) of an optimized HLO module: equal
    for two modules that differ only in names and metadata."""
    sig: Counter = Counter()
    for line in hlo_text.splitlines():
        if _INSTR.match(line):
            m = _SHAPE_OP.search(line.split(", metadata=")[0])
            if m:
                sig[(m.group(1), m.group(2))] += 1
    return sig


@dataclasses.dataclass
class Measurement:
    workload: str
    batch: int
    status: str = "ok"              # "ok" or "unsupported: ..." / "error: ..."
    times: dict = dataclasses.field(default_factory=dict)        # median seconds per call
    ratio_vmap: float | None = None  # median of per-round bl / vmap
    ratio_map: float | None = None   # median of per-round bl / lax.map
    times_cpu: dict = dataclasses.field(default_factory=dict)    # median CPU seconds per call
    ratio_vmap_cpu: float | None = None  # median of per-round bl / vmap in CPU time
    ratio_vmap_best: float | None = None  # fastest bl / fastest vmap call (load adds, never subtracts)
    first_result: dict = dataclasses.field(default_factory=dict)  # seconds
    first_result_cpu: dict = dataclasses.field(default_factory=dict)  # CPU seconds (all threads)
    # median of the per-pair CPU ratios bl / vmap of the first calls, and every sample
    first_result_ratio_cpu: float | None = None
    first_result_samples_cpu: dict = dataclasses.field(default_factory=dict)
    rewrite_seconds: float | None = None
    hlo_instructions: dict = dataclasses.field(default_factory=dict)
    same_hlo: bool | None = None     # same optimized HLO as vmap's, up to names
    memory: dict = dataclasses.field(default_factory=dict)       # name -> {temp, argument, output}
    rounds: int = 0
    report: Any = None
    max_abs_diff: float | None = None
    # with map_chunks / with_tune (issue 15's columns)
    best_map_chunk: int | None = None     # K of the fastest lax.map(batch_size=K)
    fastest_alternative: str | None = None  # fastest of vmap, lax.map, lax.map(batch_size=K)
    ratio_tune_fastest: float | None = None  # median of per-round bl(tune) / that one
    ratio_tune_vmap: float | None = None
    tuning: Any = None                    # tuning.TuningResult of batch_lower(tune=True)

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["report"] = None if self.report is None else self.report.as_dict()
        d["tuning"] = None if self.tuning is None else self.tuning.as_dict()
        return d


def _block(x):
    return jax.block_until_ready(x)


def timed(fn, args) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one call. CPU time does
    not count the time other processes take the cores from us: on a shared
    machine it is the steadier measure of the same executable."""
    start, cpu = time.perf_counter(), time.process_time()
    _block(fn(*args))
    return time.perf_counter() - start, time.process_time() - cpu


def _lax_map_fn(f, in_axes, n_args, batch_size: int | None = None):
    """jit(f mapped with lax.map over the batched arguments): a loop baseline
    (``batch_size``: lax.map's chunks of lanes, vmapped inside). A batch
    axis other than 0 is moved to the front first, as lax.map needs."""
    axes = in_axes if isinstance(in_axes, tuple) else (in_axes,) * n_args

    def front(a, ax):
        return jax.tree_util.tree_map(lambda x: jax.numpy.moveaxis(x, ax, 0), a)

    def looped(*args):
        batched = [front(a, ax) for a, ax in zip(args, axes) if ax is not None]

        def one(xs):
            it = iter(xs)
            full = [next(it) if ax is not None else a for a, ax in zip(args, axes)]
            return f(*full)
        return jax.lax.map(one, batched, batch_size=batch_size)
    return jax.jit(looped)


def memory(compiled) -> dict:
    try:
        m = compiled.memory_analysis()
        return {"temp": int(m.temp_size_in_bytes), "argument": int(m.argument_size_in_bytes),
                "output": int(m.output_size_in_bytes)}
    except Exception:  # not every backend has it
        return {}


def max_diff(a, b) -> float:
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    return max((float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))
                if np.size(x) else 0.0) for x, y in zip(la, lb))


def measure(w: Workload, batch: int, *, budget_s: float = 2.0, min_rounds: int = 5,
            max_rounds: int = 200, seed: int = 0, with_map: bool = True,
            map_chunks=(), with_tune: bool = False, first_calls: int = 3) -> Measurement:
    """Measures ``w`` at ``batch``; ``budget_s`` bounds the timed rounds.
    ``map_chunks``: also ``lax.map(batch_size=K)`` for each K below ``batch``;
    ``with_tune``: also ``batch_lower(tune=True)`` (its first result includes
    the tuning; records go where ``stablehlo_batch.tuning.records_dir`` says);
    ``first_calls``: fresh first calls per side for the time to first result."""
    m = Measurement(w.name, batch)
    args = w.make(batch, np.random.default_rng(seed))
    n = len(args)

    # time to first result, fresh objects so that no cache helps either side:
    # jax's caches (traces of jnp's inner jits, lowerings, executables) are
    # cleared before each, or the second would profit from the first's work.
    # XLA's once-per-process costs of a kind of op (the first convolution's
    # compile and run: 20-40 ms) are not cleared: one unmeasured jit(vmap)
    # run first pays them, or whichever side went first would. A full
    # garbage collection (gc.collect) before each side: a pending one (50 ms
    # and more once jax has built many objects) would fall on either at random.
    # One first call per side is one sample of a 50-400 ms event on a shared
    # machine (+-20%): ``first_calls`` fresh first calls per side, the order
    # alternating (bl first, then vmap first, ...); reported: the medians per
    # side and the median of the per-pair CPU ratios (first_result_ratio_cpu).
    try:
        jax.clear_caches()
        _block(jax.jit(jax.vmap(lambda *a: w.fn(*a), in_axes=w.in_axes,
                                out_axes=w.out_axes))(*args))
    except Exception:  # noqa: BLE001 - vmap's own failure shows below
        pass

    def first_bl():
        jax.clear_caches()
        gc.collect()
        start, cpu = time.perf_counter(), time.process_time()
        f = sb.batch_lower(lambda *a: w.fn(*a), in_axes=w.in_axes, out_axes=w.out_axes)
        out = _block(f(*args))
        return time.perf_counter() - start, time.process_time() - cpu, out

    def first_vmap():
        jax.clear_caches()
        gc.collect()
        start, cpu = time.perf_counter(), time.process_time()
        f = jax.jit(jax.vmap(lambda *a: w.fn(*a), in_axes=w.in_axes, out_axes=w.out_axes))
        out = _block(f(*args))
        return time.perf_counter() - start, time.process_time() - cpu, out

    samples = {"batch_lower": [], "vmap": []}
    got = want = None
    for i in range(max(1, first_calls)):
        order = (("batch_lower", first_bl), ("vmap", first_vmap))
        for side, fn in (order if i % 2 == 0 else order[::-1]):
            try:
                wall_s, cpu_s, out = fn()
            except Exception as e:  # noqa: BLE001 - any failure is reported, not raised
                if side == "vmap":
                    raise
                kind = "unsupported" if isinstance(e, NotImplementedError) else "error"
                m.status = f"{kind}: {type(e).__name__}: {' '.join(str(e).split())[:300]}"
                return m
            samples[side].append((wall_s, cpu_s))
            if side == "batch_lower":
                got = out
            else:
                want = out
    for side, ss in samples.items():
        m.first_result[side] = statistics.median(s[0] for s in ss)
        m.first_result_cpu[side] = statistics.median(s[1] for s in ss)
    m.first_result_samples_cpu = {side: [s[1] for s in ss] for side, ss in samples.items()}
    m.first_result_ratio_cpu = statistics.median(
        b[1] / v[1] if v[1] > 0 else 1.0
        for b, v in zip(samples["batch_lower"], samples["vmap"]))
    bl = sb.batch_lower(w.fn, in_axes=w.in_axes, out_axes=w.out_axes)
    _block(bl(*args))
    vm = jax.jit(jax.vmap(w.fn, in_axes=w.in_axes, out_axes=w.out_axes))
    _block(vm(*args))
    m.max_abs_diff = max_diff(got, want)
    contenders = {"batch_lower": bl, "vmap": vm}
    if with_map and w.out_axes == 0:
        lm = _lax_map_fn(w.fn, w.in_axes, n)
        _block(lm(*args))
        contenders["lax_map"] = lm
        for k in sorted({int(k) for k in map_chunks if 1 < int(k) < batch}):
            lk = _lax_map_fn(w.fn, w.in_axes, n, batch_size=k)
            _block(lk(*args))
            contenders[f"lax_map_{k}"] = lk
    if with_tune:
        try:
            start = time.perf_counter()
            bt = sb.batch_lower(w.fn, in_axes=w.in_axes, out_axes=w.out_axes, tune=True)
            _block(bt(*args))
            m.first_result["batch_lower_tune"] = time.perf_counter() - start
            m.tuning = bt.lower(*args).report().tuning
            contenders["batch_lower_tune"] = bt
        except Exception as e:  # noqa: BLE001 - tuning failing is a result too
            m.status = f"error: tune: {type(e).__name__}: {' '.join(str(e).split())[:300]}"

    lowered = bl.lower(*args)
    m.report = lowered.report()
    m.rewrite_seconds = lowered.rewrite_seconds
    bl_c = lowered.compile()
    vm_c = vm.lower(*args).compile()
    bl_hlo, vm_hlo = bl_c.as_text(), vm_c.as_text()
    m.hlo_instructions = {"batch_lower": hlo_instruction_count(bl_hlo),
                          "vmap": hlo_instruction_count(vm_hlo)}
    m.same_hlo = hlo_signature(bl_hlo) == hlo_signature(vm_hlo)
    m.memory = {"batch_lower": memory(bl_c), "vmap": memory(vm_c)}

    # alternating rounds
    for fn in contenders.values():  # warm
        _block(fn(*args))
    one_round = sum(timed(fn, args)[0] for fn in contenders.values())
    rounds = int(min(max_rounds, max(min_rounds, budget_s / max(one_round, 1e-6))))
    times = {k: [] for k in contenders}
    cpu = {k: [] for k in contenders}
    order = list(contenders)
    shuffle = random.Random(seed).shuffle
    for r in range(rounds):
        # a new random order each round: a call runs 5-8% slower right after
        # another kind of program (after a single-threaded lax.map loop XLA's
        # intra-op threads must wake up), and a rotation of one fixed order
        # gives each contender the same predecessor in all but one position
        # (batch_lower(tune=True), last, always ran after lax.map(32))
        shuffle(order)
        for k in order:
            wall_s, cpu_s = timed(contenders[k], args)
            times[k].append(wall_s)
            cpu[k].append(cpu_s)
    m.rounds = rounds
    m.times = {k: statistics.median(v) for k, v in times.items()}
    m.times_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    m.ratio_vmap_best = min(times["batch_lower"]) / min(times["vmap"])
    m.ratio_vmap_cpu = statistics.median(a / b if b > 0 else 1.0
                                         for a, b in zip(cpu["batch_lower"], cpu["vmap"]))
    m.ratio_vmap = statistics.median(a / b for a, b in zip(times["batch_lower"], times["vmap"]))
    if "lax_map" in times:
        m.ratio_map = statistics.median(a / b for a, b in zip(times["batch_lower"],
                                                              times["lax_map"]))
    maps = [k for k in times if k.startswith("lax_map_")]
    if maps:
        best = min(maps, key=lambda k: m.times[k])
        m.best_map_chunk = int(best.rsplit("_", 1)[1])
    alternatives = [k for k in times if k == "vmap" or k.startswith("lax_map")]
    m.fastest_alternative = min(alternatives, key=lambda k: m.times[k])
    if "batch_lower_tune" in times:
        tt = times["batch_lower_tune"]
        m.ratio_tune_fastest = statistics.median(
            a / b for a, b in zip(tt, times[m.fastest_alternative]))
        m.ratio_tune_vmap = statistics.median(a / b for a, b in zip(tt, times["vmap"]))
    return m


# ---- rewrite cost against module size -------------------------------------------------

def count_ops(module) -> int:
    n = 0

    def visit(op):
        nonlocal n
        n += 1
        return ir.WalkResult.ADVANCE
    module.operation.walk(visit)
    return n - 1  # not the module itself


def rewrite_cost(fn, args, in_axes, batch: int, repeats: int = 3) -> dict:
    """Rewrite time of ``fn``'s per-example module against jax's trace+lower
    of ``jax.vmap(fn)``; ``args`` are one example's arguments."""
    exp = jax.export.export(jax.jit(fn))(*args)
    flat_axes = jax.tree_util.tree_leaves(
        jax.tree_util.tree_map(lambda ax, a: jax.tree_util.tree_map(lambda _: ax, a),
                               in_axes, args, is_leaf=lambda x: x is None),
        is_leaf=lambda x: x is None)
    dims = [flat_axes[i] for i in exp.module_kept_var_idx]
    ops = count_ops(module_io.parse_module(exp.mlir_module_serialized))
    rewrites = []
    for _ in range(repeats):
        module = module_io.parse_module(exp.mlir_module_serialized)
        start = time.perf_counter()
        batch_function(module, "main", dims, [0] * len(exp.out_avals), batch)
        rewrites.append(time.perf_counter() - start)

    def batched_arg(a, ax):
        return a if ax is None else np.broadcast_to(np.asarray(a), (batch,) + np.shape(a))
    bargs = jax.tree_util.tree_map(
        lambda ax, a: jax.tree_util.tree_map(lambda leaf: batched_arg(leaf, ax), a),
        in_axes, args, is_leaf=lambda x: x is None)
    traces = []
    for _ in range(repeats):
        f = lambda *a: fn(*a)  # a fresh function: jax's caches cannot help  # noqa: E731
        start = time.perf_counter()
        jax.jit(jax.vmap(f, in_axes=in_axes)).trace(*bargs).lower()
        traces.append(time.perf_counter() - start)
    return {"ops": ops, "rewrite_s": min(rewrites), "vmap_trace_lower_s": min(traces)}
