"""jax transformations *of* a batched function: batch_lower against jax.vmap
under jax.grad, jax.jvp, jax.hessian-vector products and an outer jax.vmap.

Each case is a function ``use(batching)`` that builds a jitted program with
``batching`` = ``sb.batch_lower`` or ``jax.vmap``; both run in this process in
alternating rounds. Reported: median times, the median of per-round ratios,
XLA's optimized instruction counts and temporary memory, and the largest
difference between the two results. ``python -m bench.transforms`` writes
bench/results/transforms.md.
"""
from __future__ import annotations

import argparse
import pathlib
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

import stablehlo_batch as sb
from bench.harness import max_diff, memory, timed, hlo_instruction_count
from bench.workloads import mlp_params, normal, mlp


def _loss(params, x, y):
    return jnp.mean((mlp(params, x) - y) ** 2)


def cases(batch: int, rng):
    """(name, what, use, args): ``use(batching)`` returns a jitted function."""
    members = mlp_params(rng, [32, 128, 128, 10], batch)
    x, y = normal(rng, 64, 32), normal(rng, 64, 10)
    params = mlp_params(rng, [32, 128, 128, 10])
    xs = normal(rng, batch, 32)
    tangent = jax.tree.map(jnp.ones_like, params)

    def ensemble_grad(b):
        ens = b(_loss, in_axes=(0, None, None))
        return jax.jit(jax.grad(lambda ps, x, y: jnp.sum(ens(ps, x, y))))

    def ensemble_value_and_grad(b):
        ens = b(_loss, in_axes=(0, None, None))
        return jax.jit(jax.value_and_grad(lambda ps, x, y: jnp.sum(ens(ps, x, y))))

    def jvp_weights(b):
        f = b(mlp, in_axes=(None, 0))
        return jax.jit(lambda p, t, xs: jax.jvp(lambda p: f(p, xs), (p,), (t,)))

    def jacfwd_bias(b):
        f = b(mlp, in_axes=(None, 0))
        return jax.jit(lambda p, xs: jax.jacfwd(
            lambda bias: f(p[:-1] + [(p[-1][0], bias)], xs))(p[-1][1]))

    def hvp(b):
        f = b(lambda p, x: jnp.sum(mlp(p, x) ** 2), in_axes=(None, 0))
        loss = lambda p, xs: jnp.sum(f(p, xs))
        return jax.jit(lambda p, t, xs: jax.jvp(lambda p: jax.grad(loss)(p, xs), (p,), (t,)))

    def nested_vmap(b):
        f = b(mlp, in_axes=(None, 0))
        return jax.jit(jax.vmap(f, in_axes=(None, 0)))

    xs4 = normal(rng, 4, batch, 32)
    return [
        ("ensemble_grad", "grad of an ensemble's summed loss (weights batched, data shared)",
         ensemble_grad, (members, x, y)),
        ("ensemble_value_and_grad", "value_and_grad of the same", ensemble_value_and_grad,
         (members, x, y)),
        ("jvp_weights", "jvp of an MLP over a batch, tangents on the shared weights",
         jvp_weights, (params, tangent, xs)),
        ("jacfwd_bias", "jacfwd of the batched outputs w.r.t. the shared last bias",
         jacfwd_bias, (params, xs)),
        ("hvp", "Hessian-vector product jvp(grad) of a batched loss", hvp, (params, tangent, xs)),
        ("nested_vmap", "jax.vmap(batched MLP) over 4 groups", nested_vmap, (params, xs4)),
    ]


def measure(use, args, budget_s: float, min_rounds: int = 7) -> dict:
    fns = {"bl": use(sb.batch_lower), "vmap": use(jax.vmap)}
    out = {k: f(*args) for k, f in fns.items()}
    res = {"max_diff": max_diff(out["bl"], out["vmap"])}
    for k, f in fns.items():
        compiled = f.lower(*args).compile()
        res[f"{k}_instr"] = hlo_instruction_count(compiled.as_text())
        res[f"{k}_temp"] = memory(compiled).get("temp")
    times = {k: [] for k in fns}
    ratios = []
    start = time.perf_counter()
    while len(ratios) < min_rounds or time.perf_counter() - start < budget_s:
        t = {k: timed(f, args)[0] for k, f in fns.items()}
        for k in fns:
            times[k].append(t[k])
        ratios.append(t["bl"] / t["vmap"])
    res.update({f"{k}_ms": 1e3 * statistics.median(v) for k, v in times.items()})
    res["ratio"] = statistics.median(ratios)
    res["rounds"] = len(ratios)
    return res


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", type=int, nargs="+", default=[8, 64, 512])
    p.add_argument("--budget", type=float, default=2.0, help="seconds of timing per case")
    p.add_argument("--out", default=str(pathlib.Path(__file__).parent / "results" / "transforms.md"))
    a = p.parse_args(argv)
    rows = []
    for batch in a.batches:
        for name, what, use, args in cases(batch, np.random.default_rng(0)):
            r = measure(use, args, a.budget)
            rows.append((name, what, batch, r))
            print(f"{name:24s} batch {batch:4d}  bl {r['bl_ms']:8.3f} ms  vmap {r['vmap_ms']:8.3f} ms"
                  f"  ratio {r['ratio']:.3f}  instr {r['bl_instr']}/{r['vmap_instr']}"
                  f"  max diff {r['max_diff']:.1e}", flush=True)
    ratios = [r["ratio"] for *_, r in rows]
    lines = [
        "# Transformations of a batched function: batch_lower vs jax.vmap", "",
        f"jax {jax.__version__}, {jax.default_backend()}, {jax.device_count()} device(s); "
        f"load average before the run {__import__('os').getloadavg()[0]:.1f}. Medians of "
        "alternating rounds; `bl/vmap` is the median of per-round ratios (below 1: "
        "batch_lower is faster). `python -m bench.transforms`.", "",
        f"Geometric mean bl/vmap: **{float(np.exp(np.mean(np.log(ratios)))):.3f}**, "
        f"largest **{max(ratios):.3f}**.", "",
        "| case | batch | bl ms | vmap ms | bl/vmap | HLO instr bl / vmap | temp KiB bl / vmap | max diff |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    kib = lambda b: "-" if b is None else f"{b / 1024:.0f}"
    for name, what, batch, r in rows:
        lines.append(f"| {name} | {batch} | {r['bl_ms']:.3f} | {r['vmap_ms']:.3f} | "
                     f"{r['ratio']:.3f} | {r['bl_instr']} / {r['vmap_instr']} | "
                     f"{kib(r['bl_temp'])} / {kib(r['vmap_temp'])} | {r['max_diff']:.1e} |")
    lines += ["", "Cases:", ""] + [f"- `{n}`: {w}" for n, w, *_ in rows[:len(rows) // len(a.batches)]]
    pathlib.Path(a.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
