"""``make bench`` / ``make bench-quick``: run the benchmark, write the results.

    python -m bench.run            # every workload at 8, 64, 512 + rewrite scaling
    python -m bench.run --quick    # a subset in about a minute

Writes ``bench/results/latest.md`` (tables, targets, batching reports),
``latest.json`` and PNG plots (``ratio.png``: batch_lower / vmap run
time per workload; ``tune_ratio.png``: batch_lower(tune=True) / the fastest
of vmap, lax.map and lax.map(batch_size=K); ``rewrite_scaling.png``: rewrite
time against op count). Targets are reported, never asserted. Tuning
records go to a fresh temporary directory unless STABLEHLO_BATCH_TUNING_DIR
is set, so every run measures its own choices.
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import sys
import time
import warnings

import numpy as np

from bench import harness
from bench.workloads import BY_NAME, WORKLOADS, scaling_models

QUICK_WORKLOADS = ["ensemble_mlp", "transformer_block", "newton", "embed_scatter",
                   "host_callback"]
SCALING = {"mlp": (3, 33, 333, 1700), "transformer": (1, 10, 50)}
QUICK_SCALING = {"mlp": (3, 33, 333), "transformer": (1, 4)}
MAP_CHUNKS = (8, 32)  # lax.map(batch_size=K) contenders
FIRST_CALLS = 3  # fresh first calls per side for the time to first result (--first-calls)


class Progress:
    """A one-line progress bar on stderr (no dependency)."""

    def __init__(self, total: int):
        self.total, self.done, self.start = total, 0, time.perf_counter()

    def step(self, label: str):
        self.done += 1
        elapsed = time.perf_counter() - self.start
        eta = elapsed / self.done * (self.total - self.done)
        width = 30
        fill = int(width * self.done / self.total)
        sys.stderr.write(f"\r[{'#' * fill}{'.' * (width - fill)}] {self.done}/{self.total} "
                         f"{elapsed:5.0f}s elapsed, ~{eta:4.0f}s left  {label:<34}")
        sys.stderr.flush()
        if self.done == self.total:
            sys.stderr.write("\n")

    def note(self, label: str):
        sys.stderr.write(f"\r{' ' * 110}\r  ... {label}")
        sys.stderr.flush()


def machine() -> dict:
    import jax
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [l.split(":", 1)[1].strip() for l in f if l.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "jax": jax.__version__, "device": str(jax.devices()[0].device_kind),
            "platform": platform.platform(),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "load_before": round(load[0], 2)}


def geomean(xs):
    xs = [x for x in xs if x and x > 0]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def _ms(s):
    return "" if s is None else f"{s * 1e3:.3f}"


def _first_cpu_ratio(m) -> str:
    """The median of the per-pair CPU ratios of the fresh first calls."""
    r = getattr(m, "first_result_ratio_cpu", None)
    if r is not None:
        return f"{r:.2f}"
    c = getattr(m, "first_result_cpu", None) or {}
    if not c.get("vmap"):
        return "-"
    return f"{c['batch_lower'] / c['vmap']:.2f}"


def _mib(b):
    return "" if b is None else f"{b / 2**20:.2f}"


def tune_targets(results) -> dict:
    """batch_lower(tune=True) against the fastest alternative (issue 15)."""
    tuned = [m for m in results if m.status == "ok" and m.ratio_tune_fastest is not None]
    r = [m.ratio_tune_fastest for m in tuned]
    return {"geomean_tune_fastest": geomean(r),
            "max_tune_fastest": max(r) if r else float("nan"),
            "tune_over_1_10": sorted(f"{m.workload}@{m.batch} ({m.ratio_tune_fastest:.2f})"
                                     for m in tuned if m.ratio_tune_fastest > 1.10)}


def tune_table(results) -> list[str]:
    """Issue 15's columns: every contender, the fastest alternative and
    batch_lower(tune=True) against it."""
    rows = [m for m in results if m.status == "ok" and m.ratio_tune_fastest is not None]
    if not rows:
        return []
    L = ["## Strategy selection: batch_lower(tune=True) against the fastest alternative\n",
         "Median ms per call. `lax.map(K)`: `lax.map(batch_size=K)` at its best K of "
         f"{', '.join(map(str, MAP_CHUNKS))}. Ratios are medians of per-round ratios; "
         "`tune/fastest` below 1: the tuned function beats every alternative.\n",
         "| workload | batch | jit(vmap) | lax.map | lax.map(K) | fastest alternative "
         "| batch_lower | bl(tune) | choice | tune/fastest | tune/vmap | first result tune (s) |",
         "|---|---:|---:|---:|---:|---|---:|---:|---|---:|---:|---:|"]
    for m in rows:
        t = m.times
        k = m.best_map_chunk
        fa = m.fastest_alternative.replace("lax_map_", "lax.map(").replace("lax_map", "lax.map")
        fa = fa + ")" if "(" in fa else fa
        choice = "" if m.tuning is None else m.tuning.summary().removeprefix("tuned: ")
        L.append(f"| {m.workload} | {m.batch} | {_ms(t.get('vmap'))} | {_ms(t.get('lax_map'))} | "
                 f"{'' if k is None else _ms(t.get(f'lax_map_{k}')) + f' (K={k})'} | {fa} | "
                 f"{_ms(t.get('batch_lower'))} | {_ms(t.get('batch_lower_tune'))} | {choice} | "
                 f"{m.ratio_tune_fastest:.3f} | {m.ratio_tune_vmap:.3f} | "
                 f"{m.first_result.get('batch_lower_tune', float('nan')):.2f} |")
    return L + [""]


def targets(results) -> dict:
    big = [m for m in results if m.status == "ok" and m.batch >= 64]
    ratios = [m.ratio_vmap for m in big]
    cpu_ratios = [m.ratio_vmap_cpu for m in big]
    best_ratios = [m.ratio_vmap_best for m in big]
    over = sorted({f"{m.workload}@{m.batch} ({m.ratio_vmap:.2f})" for m in big
                   if m.ratio_vmap > 1.10})
    more_hlo = sorted({f"{m.workload}@{m.batch} ({m.hlo_instructions['batch_lower']} > "
                       f"{m.hlo_instructions['vmap']})" for m in results if m.status == "ok"
                       and m.hlo_instructions["batch_lower"] > m.hlo_instructions["vmap"]})
    more_temp = sorted({f"{m.workload}@{m.batch} ({_mib(m.memory['batch_lower'].get('temp'))}"
                        f" > {_mib(m.memory['vmap'].get('temp'))} MiB)" for m in results
                        if m.status == "ok" and m.memory.get("batch_lower")
                        and m.memory["batch_lower"]["temp"] > m.memory["vmap"]["temp"]})
    same = [m for m in results if m.status == "ok" and m.same_hlo]
    return {"same_hlo": f"{len(same)}/{sum(m.status == 'ok' for m in results)}",
            "geomean_ratio_batch_ge_64": geomean(ratios), "max_ratio_batch_ge_64":
            max(ratios) if ratios else float("nan"), "over_1_10": over,
            "geomean_cpu_ratio_batch_ge_64": geomean(cpu_ratios),
            "geomean_best_ratio_batch_ge_64": geomean(best_ratios),
            "max_best_ratio_batch_ge_64": max(best_ratios) if best_ratios else float("nan"),
            "max_cpu_ratio_batch_ge_64": max(cpu_ratios) if cpu_ratios else float("nan"),
            "hlo_above_vmap": more_hlo, "temp_above_vmap": more_temp,
            "first_result_over_1_30": sorted(
                f"{m.workload}@{m.batch} ({m.first_result_ratio_cpu:.2f})" for m in results
                if m.status == "ok" and (m.first_result_ratio_cpu or 0) > 1.30),
            "max_first_result_ratio_cpu": max(
                (m.first_result_ratio_cpu for m in results
                 if m.status == "ok" and m.first_result_ratio_cpu), default=float("nan")),
            "unsupported": sorted({f"{m.workload}@{m.batch}: {m.status}" for m in results
                                   if m.status != "ok"})}


def _model_choice(m) -> str:
    """The loop the default batch_lower's cost model chose ('' for the full batch)."""
    t = getattr(m.report, "tuning", None)
    if t is None or getattr(t, "source", None) != "model" or t.choice is None:
        return ""
    return t.summary().removeprefix("tuned: ").removesuffix(" (model)")


def summary_table(results) -> list[str]:
    """One row per workload: bl/vmap (median of pairs; fastest against fastest)
    per batch size, and whether XLA's optimized HLO is vmap's."""
    sizes = sorted({m.batch for m in results})
    rows = ["## Summary: batch_lower / jit(vmap) run time\n",
            "Median of per-round ratios (fastest call / fastest call); below 1: "
            "batch_lower is faster. [lane loop] / [chunks of K]: the default's cost "
            "model ran a loop instead of the full batch (docs/tuning.md).\n",
            "| workload | " + " | ".join(f"batch {b}" for b in sizes) + " | same optimized HLO |",
            "|---|" + "---:|" * len(sizes) + ":---:|"]
    for name in dict.fromkeys(m.workload for m in results):
        ms = {m.batch: m for m in results if m.workload == name}
        cells = []
        for b in sizes:
            m = ms.get(b)
            if m is None:
                cells.append("")
            elif m.status != "ok":
                cells.append(m.status.split(":")[0])
            else:
                cells.append(f"{m.ratio_vmap:.2f} ({m.ratio_vmap_best:.2f})"
                             + (f" [{_model_choice(m)}]" if _model_choice(m) else ""))
        ok = [m for m in ms.values() if m.status == "ok"]
        same = "yes" if ok and all(m.same_hlo for m in ok) else (
            "no" if ok else "")
        rows.append(f"| {name} | " + " | ".join(cells) + f" | {same} |")
    return rows + [""]


def write_markdown(path, info, results, scaling, tg, plots):
    L = []
    L.append("# Benchmark: batch_lower vs jax.jit(jax.vmap(f)) vs jax.lax.map\n")
    L.append(f"Machine: {info['cpu']}, {info['cores']} cores, {info['device']}; "
             f"Python {info['python']}, jax {info['jax']}; {info['date']}; "
             f"load average before the run {info['load_before']} "
             "(other work shares these cores: expect +-10% noise).\n")
    L.append("Run times are medians of alternating rounds; `bl/vmap` and `bl/map` are "
             "medians of the per-round ratios (below 1: batch_lower is faster). \"same HLO\" "
             "means XLA's optimized module for batch_lower has the same instructions (result "
             "types and opcodes) as vmap's: any run-time difference there is noise or the "
             "per-call dispatch. `bl/vmap best` compares the fastest call of each (other "
             "load only ever adds time).\n")
    L.append("## Targets\n")
    L.append(f"- geometric mean bl/vmap at batch >= 64: **{tg['geomean_ratio_batch_ge_64']:.3f}** "
             "(target <= 1.00)")
    L.append(f"- largest bl/vmap at batch >= 64: **{tg['max_ratio_batch_ge_64']:.3f}** "
             f"(target <= 1.10); above 1.10: {', '.join(tg['over_1_10']) or 'none'}")
    L.append(f"- the same in CPU time of the process (not counting time other processes "
             f"took): geometric mean **{tg['geomean_cpu_ratio_batch_ge_64']:.3f}**, largest "
             f"**{tg['max_cpu_ratio_batch_ge_64']:.3f}**; fastest call against fastest call: "
             f"geometric mean **{tg['geomean_best_ratio_batch_ge_64']:.3f}**, largest "
             f"**{tg['max_best_ratio_batch_ge_64']:.3f}**")
    L.append(f"- measurements whose optimized HLO is the same as vmap's: {tg['same_hlo']}")
    L.append(f"- optimized HLO instructions above vmap's: {', '.join(tg['hlo_above_vmap']) or 'none'}")
    L.append(f"- temp memory above vmap's: {', '.join(tg['temp_above_vmap']) or 'none'}")
    if "max_first_result_ratio_cpu" in tg:
        L.append(f"- time to first result, CPU, batch_lower / jit(vmap) (median of "
                 f"{FIRST_CALLS} fresh pairs): largest "
                 f"**{tg['max_first_result_ratio_cpu']:.2f}** (target <= 1.30); above 1.30: "
                 f"{', '.join(tg['first_result_over_1_30']) or 'none'}")
    for kind in dict.fromkeys(r["kind"] for r in scaling):
        big = max((r for r in scaling if r["kind"] == kind), key=lambda r: r["ops"])
        L.append(f"- rewrite of the largest {kind} ({big['ops']} ops): "
                 f"**{big['rewrite_s']:.3f} s** (target < 1 s) vs jax's trace+lower of vmap(f) "
                 f"{big['vmap_trace_lower_s']:.3f} s")
    if tg["unsupported"]:
        L.append(f"- did not batch: {'; '.join(tg['unsupported'])}")
    L.append("")
    if plots:
        L.append(" ".join(f"![{p}]({p})" for p in plots) + "\n")
    if not math.isnan(tg.get("geomean_tune_fastest", float("nan"))):
        L.append(f"- batch_lower(tune=True) / fastest alternative: geometric mean "
                 f"**{tg['geomean_tune_fastest']:.3f}** (target <= 0.95), largest "
                 f"**{tg['max_tune_fastest']:.3f}** (target <= 1.10); above 1.10: "
                 f"{', '.join(tg['tune_over_1_10']) or 'none'}\n")
    L.extend(summary_table(results))
    L.extend(tune_table(results))
    L.append("## Run time per call (ms)\n")
    L.append("| workload | batch | batch_lower | jit(vmap) | lax.map | bl/vmap | bl/map "
             "| bl/vmap CPU time | bl/vmap best | rounds |")
    L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for m in results:
        if m.status != "ok":
            L.append(f"| {m.workload} | {m.batch} | {m.status} | | | | | | | |")
            continue
        t = m.times
        L.append(f"| {m.workload} | {m.batch} | {_ms(t.get('batch_lower'))} | {_ms(t.get('vmap'))} "
                 f"| {_ms(t.get('lax_map'))} | {m.ratio_vmap:.3f} | "
                 f"{'' if m.ratio_map is None else f'{m.ratio_map:.3f}'} | "
                 f"{m.ratio_vmap_cpu:.3f} | {m.ratio_vmap_best:.3f} | {m.rounds} |")
    L.append("\n## Compilation, HLO and memory\n")
    L.append("First result = lowering + rewrite + compile + one run (batch_lower: "
             "jax.export + rewrite + XLA; vmap: trace + lower + XLA), each from a fresh "
             "function with jax's caches cleared and a full garbage collection, "
             f"{FIRST_CALLS} times per side in alternating order; seconds are medians, the CPU "
             "ratio (this process' CPU time, all threads) is the median of the per-pair "
             "ratios, the steadier one on a shared machine. Memory from "
             "`memory_analysis()` in MiB.\n")
    L.append("| workload | batch | first result bl (s) | first result vmap (s) "
             "| first result CPU bl / vmap | rewrite (ms) "
             "| HLO instr bl / vmap | same HLO | temp bl / vmap | args bl / vmap | out bl / vmap "
             "| max abs diff |")
    L.append("|---|---:|---:|---:|---:|---:|---:|:---:|---:|---:|---:|---:|")
    for m in results:
        if m.status != "ok":
            continue
        mb, mv = m.memory.get("batch_lower", {}), m.memory.get("vmap", {})
        L.append(f"| {m.workload} | {m.batch} | {m.first_result['batch_lower']:.2f} | "
                 f"{m.first_result['vmap']:.2f} | {_first_cpu_ratio(m)} | "
                 f"{m.rewrite_seconds * 1e3:.1f} | "
                 f"{m.hlo_instructions['batch_lower']} / {m.hlo_instructions['vmap']} | "
                 f"{'yes' if m.same_hlo else 'no'} | {_mib(mb.get('temp'))} / {_mib(mv.get('temp'))} | "
                 f"{_mib(mb.get('argument'))} / {_mib(mv.get('argument'))} | "
                 f"{_mib(mb.get('output'))} / {_mib(mv.get('output'))} | {m.max_abs_diff:.2g} |")
    if scaling:
        L.append("\n## Rewrite time against module size\n")
        L.append("Per-example module of a deep MLP / transformer stack, rewritten for batch 8 "
                 "(best of 3), against jax's own trace + lower of `jax.jit(jax.vmap(f))`.\n")
        L.append("| model | depth | ops | rewrite (ms) | us / op | vmap trace+lower (ms) | rewrite / vmap |")
        L.append("|---|---:|---:|---:|---:|---:|---:|")
        for r in scaling:
            L.append(f"| {r['kind']} | {r['depth']} | {r['ops']} | {r['rewrite_s'] * 1e3:.1f} | "
                     f"{r['rewrite_s'] / r['ops'] * 1e6:.1f} | {r['vmap_trace_lower_s'] * 1e3:.1f} | "
                     f"{r['rewrite_s'] / r['vmap_trace_lower_s']:.2f} |")
    L.append("\n## Batching reports\n")
    seen = set()
    for m in results:
        if m.report is None or m.workload in seen:
            continue
        seen.add(m.workload)
        L.append(f"<details><summary>{m.workload}: {m.report.summary()}</summary>\n")
        L.append("```\n" + str(m.report) + "\n```\n</details>\n")
    with open(path, "w") as f:
        f.write("\n".join(L) + "\n")


def plot(out_dir, results, scaling, prefix: str = "") -> list[str]:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing (pip install -e '.[bench]'): no plots", file=sys.stderr)
        return []
    names = []
    ok = [m for m in results if m.status == "ok"]
    workloads = list(dict.fromkeys(m.workload for m in ok))
    sizes = sorted({m.batch for m in ok})
    if ok:
        fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(workloads) + 2), 4))
        width = 0.8 / max(1, len(sizes))
        for j, b in enumerate(sizes):
            ys = [next((m.ratio_vmap for m in ok if m.workload == w and m.batch == b), np.nan)
                  for w in workloads]
            ax.bar(np.arange(len(workloads)) + j * width, ys, width, label=f"batch {b}")
        ax.axhline(1.0, color="k", lw=0.8)
        ax.axhline(1.1, color="r", lw=0.8, ls="--")
        ax.set_xticks(np.arange(len(workloads)) + width * (len(sizes) - 1) / 2)
        ax.set_xticklabels(workloads, rotation=30, ha="right")
        ax.set_ylabel("run time batch_lower / jit(vmap)")
        ax.legend(ncol=len(sizes), loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, prefix + "ratio.png"), dpi=110)
        plt.close(fig)
        names.append(prefix + "ratio.png")
    tuned = [m for m in ok if m.ratio_tune_fastest is not None]
    if tuned:
        labels = [f"{m.workload}@{m.batch}" for m in tuned]
        fig, ax = plt.subplots(figsize=(max(6, 0.7 * len(tuned) + 2), 4))
        x = np.arange(len(tuned))
        ax.bar(x - 0.2, [m.ratio_tune_fastest for m in tuned], 0.4,
               label="batch_lower(tune=True) / fastest alternative")
        ax.bar(x + 0.2, [m.ratio_vmap for m in tuned], 0.4, label="batch_lower / jit(vmap)")
        ax.axhline(1.0, color="k", lw=0.8)
        ax.axhline(1.1, color="r", lw=0.8, ls="--")
        ax.set_xticks(x)
        ax.set_xticklabels(labels, rotation=30, ha="right")
        ax.set_ylabel("run time ratio")
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False, ncol=2)
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, prefix + "tune_ratio.png"), dpi=110)
        plt.close(fig)
        names.append(prefix + "tune_ratio.png")
    if scaling:
        fig, ax = plt.subplots(figsize=(6, 4))
        for kind, marker in (("mlp", "o"), ("transformer", "s")):
            rs = [r for r in scaling if r["kind"] == kind]
            if not rs:
                continue
            ax.loglog([r["ops"] for r in rs], [r["rewrite_s"] for r in rs], marker + "-",
                      label=f"rewrite ({kind})")
            ax.loglog([r["ops"] for r in rs], [r["vmap_trace_lower_s"] for r in rs],
                      marker + "--", label=f"jax trace+lower vmap ({kind})")
        ops = np.array(sorted(r["ops"] for r in scaling), float)
        ref = scaling[0]["rewrite_s"] / scaling[0]["ops"]
        ax.loglog(ops, ops * ref, "k:", lw=0.8, label="linear")
        ax.set_xlabel("ops in the per-example module")
        ax.set_ylabel("seconds")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, prefix + "rewrite_scaling.png"), dpi=110)
        plt.close(fig)
        names.append(prefix + "rewrite_scaling.png")
    return names


def main(argv=None):
    global FIRST_CALLS
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a subset in about a minute")
    p.add_argument("--workloads", help="comma-separated names (default: all)")
    p.add_argument("--sizes", help="comma-separated batch sizes (default 8,64,512)")
    p.add_argument("--budget", type=float, help="seconds of timed rounds per measurement")
    p.add_argument("--no-scaling", action="store_true")
    p.add_argument("--first-calls", type=int,
                   help=f"fresh first calls per side for the time to first result "
                        f"(default {FIRST_CALLS}, --quick 1)")
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    p.add_argument("--name", default="latest", help="base name of the output files")
    p.add_argument("--no-tune", action="store_true",
                   help="skip batch_lower(tune=True) and lax.map(batch_size=K)")
    args = p.parse_args(argv)
    warnings.simplefilter("ignore")  # fallback warnings are in the reports
    from stablehlo_batch import tuning
    if not os.environ.get(tuning.ENV_DIR):  # every run measures its own choices
        import tempfile
        os.environ[tuning.ENV_DIR] = tempfile.mkdtemp(prefix="sb_bench_tuning_")

    names = args.workloads.split(",") if args.workloads else (
        QUICK_WORKLOADS if args.quick else [w.name for w in WORKLOADS])
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else (
        [64] if args.quick else [8, 64, 512])
    budget = args.budget if args.budget is not None else (0.4 if args.quick else 2.5)
    FIRST_CALLS = args.first_calls if args.first_calls else (1 if args.quick else FIRST_CALLS)
    scaling_plan = {} if args.no_scaling else (QUICK_SCALING if args.quick else SCALING)
    os.makedirs(args.out, exist_ok=True)

    info = machine()
    steps = [(n, b) for n in names
             for b in (sizes if args.sizes or not BY_NAME[n].sizes else BY_NAME[n].sizes)]
    bar = Progress(len(steps) + sum(len(d) for d in scaling_plan.values()))
    results = []
    for n, b in steps:
        bar.note(f"{n} @ {b}")
        m = harness.measure(BY_NAME[n], b, budget_s=budget,
                            min_rounds=3 if args.quick else 15,
                            map_chunks=() if args.no_tune else MAP_CHUNKS,
                            with_tune=not args.no_tune, first_calls=FIRST_CALLS)
        results.append(m)
        bar.step(f"{n} @ {b}: " + (f"{m.ratio_vmap:.2f}x vmap" if m.status == "ok"
                                   else m.status.split(":")[0]))
    scaling = []
    rng = np.random.default_rng(0)
    for kind, depths in scaling_plan.items():
        for d in depths:
            bar.note(f"rewrite scaling {kind} depth {d}")
            fn, ex_args, in_axes = scaling_models(kind, d, rng)
            r = harness.rewrite_cost(fn, ex_args, in_axes, batch=8)
            r.update(kind=kind, depth=d)
            scaling.append(r)
            bar.step(f"{kind} x{d}: {r['ops']} ops {r['rewrite_s'] * 1e3:.0f} ms")

    tg = targets(results)
    tg.update(tune_targets(results))
    plots = plot(args.out, results, scaling,
                 "" if args.name == "latest" else args.name + "_")
    md = os.path.join(args.out, f"{args.name}.md")
    write_markdown(md, info, results, scaling, tg, plots)
    with open(os.path.join(args.out, f"{args.name}.json"), "w") as f:
        json.dump({"machine": info, "targets": tg, "scaling": scaling,
                   "results": [m.as_dict() for m in results]}, f, indent=1, default=str)
    for m in results:
        if m.report is not None and m.batch == max(sizes):
            print(f"\n== {m.workload} @ {m.batch} ==\n{m.report}")
    print(f"\ngeomean bl/vmap (batch >= 64): {tg['geomean_ratio_batch_ge_64']:.3f}; "
          f"max {tg['max_ratio_batch_ge_64']:.3f}; wrote {md}")


if __name__ == "__main__":
    main()
