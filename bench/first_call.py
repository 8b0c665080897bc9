"""Time to first result, phase by phase: batch_lower against jax.jit(jax.vmap(f)).

    python -m bench.first_call matmul_chain@256 sort_topk@64 --pairs 7

For each point, ``--pairs`` fresh first calls per side in alternating order
(jax's caches cleared and a full garbage collection before each call, after
one unmeasured jit(vmap) run, as bench/harness.py does). Prints the medians
of each side's CPU time (this process, all threads), of jax's own phases
(tracing, lowering to MLIR, XLA's compile: jax.monitoring's duration events,
wall time, summed over every trace / lowering / compile of the call; for
batch_lower nested: the call's trace holds the per-example export, its
trace and lowering) and of batch_lower's
rewrite (its report), and the median of the per-pair CPU ratios bl / vmap
(issue 15's target: at most 1.3). docs/tuning.md has what was measured so.
"""
from __future__ import annotations

import argparse
import gc
import statistics
import time

import jax
import numpy as np

import stablehlo_batch as sb
from bench.workloads import BY_NAME

EVENTS = {"/jax/core/compile/jaxpr_trace_duration": "trace",
          "/jax/core/compile/jaxpr_to_mlir_module_duration": "lower",
          "/jax/core/compile/backend_compile_duration": "compile"}
_SEEN: dict = {}


def _listen(event, duration, **_):
    name = EVENTS.get(event)
    if name is not None:
        _SEEN[name] = _SEEN.get(name, 0.0) + duration


jax.monitoring.register_event_duration_secs_listener(_listen)


def first_call(w, args, side: str) -> dict:
    """One fresh first call of ``side`` ("batch_lower" or "vmap"): seconds
    of CPU time, wall time and jax's phases."""
    jax.clear_caches()
    gc.collect()
    _SEEN.clear()
    start, cpu = time.perf_counter(), time.process_time()
    f = (lambda *a: w.fn(*a))  # noqa: E731 - a fresh function: no cache helps
    if side == "batch_lower":
        g = sb.batch_lower(f, in_axes=w.in_axes, out_axes=w.out_axes)
    else:
        g = jax.jit(jax.vmap(f, in_axes=w.in_axes, out_axes=w.out_axes))
    jax.block_until_ready(g(*args))
    out = {"cpu": time.process_time() - cpu, "wall": time.perf_counter() - start, **_SEEN}
    if side == "batch_lower":
        out["rewrite"] = g.lower(*args).rewrite_seconds  # the plan the call built
    return out


def measure(w, batch: int, pairs: int = 5, seed: int = 0) -> dict:
    """``w``: a bench Workload or its name."""
    w = BY_NAME[w] if isinstance(w, str) else w
    args = w.make(batch, np.random.default_rng(seed))
    jax.clear_caches()
    jax.block_until_ready(jax.jit(jax.vmap(lambda *a: w.fn(*a), in_axes=w.in_axes,
                                           out_axes=w.out_axes))(*args))
    samples = {"batch_lower": [], "vmap": []}
    for i in range(pairs):
        sides = ("batch_lower", "vmap") if i % 2 == 0 else ("vmap", "batch_lower")
        for side in sides:
            samples[side].append(first_call(w, args, side))
    med = {side: {k: statistics.median(s.get(k, 0.0) for s in ss) for k in ss[0]}
           for side, ss in samples.items()}
    ratio = statistics.median(b["cpu"] / v["cpu"] for b, v in
                              zip(samples["batch_lower"], samples["vmap"]))
    return {"point": f"{w.name}@{batch}", "median": med, "ratio_cpu": ratio,
            "ratios": [b["cpu"] / v["cpu"] for b, v in
                       zip(samples["batch_lower"], samples["vmap"])]}


def _ms(x):
    return f"{x * 1e3:7.1f}"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("points", nargs="+", help="workload@batch, e.g. matmul_chain@256")
    p.add_argument("--pairs", type=int, default=5, help="fresh first calls per side")
    a = p.parse_args(argv)
    print(f"{'point':28s} {'side':12s} {'cpu ms':>7s} {'wall':>7s} {'trace':>7s} "
          f"{'lower':>7s} {'compile':>7s} {'rewrite':>7s}")
    for spec in a.points:
        name, batch = spec.rsplit("@", 1)
        r = measure(name, int(batch), a.pairs)
        for side, m in r["median"].items():
            print(f"{r['point']:28s} {side:12s} {_ms(m['cpu'])} {_ms(m['wall'])} "
                  f"{_ms(m.get('trace', 0))} {_ms(m.get('lower', 0))} "
                  f"{_ms(m.get('compile', 0))} "
                  f"{_ms(m['rewrite']) if 'rewrite' in m else '':>7s}")
        print(f"{r['point']:28s} CPU ratio bl / vmap, median of {a.pairs} pairs: "
              f"{r['ratio_cpu']:.2f}  ({' '.join(f'{x:.2f}' for x in r['ratios'])})")


if __name__ == "__main__":
    main()
