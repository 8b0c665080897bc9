"""Probe: where does batch_lower's optimized HLO cost more than jax.vmap's?

For a broad set of per-example functions — hand-written ones covering the op
families the layout pass meets (elementwise, reduce, dot_general,
convolution, pad, concatenate, gather, scatter, select, iota, broadcast,
sort / top_k, scan / while, cumulative ops, dynamic slices), the bench
workloads, and optionally generated programs (tests/gen_programs.py) — and
for in_axes / out_axes variants (0, 1, -1, None mixes), compiles
``batch_lower(f, tune=False)`` and ``jax.jit(jax.vmap(f))`` for CPU and
compares XLA's optimized-HLO instruction counts and ``memory_analysis()``
temp bytes. Prints every case where ours is above vmap's, worst first
(issue 15: "HLO instructions and temp bytes never above vmap's").

Not a test (no assertion, not in ``make test``); run it on its own, e.g.

    nice python -m bench.hlo_parity                    # hand cases + bench workloads
    nice python -m bench.hlo_parity --generated 100    # + 100 generated programs
    nice python -m bench.hlo_parity -k conv --show     # HLO of the cases matching 'conv'
    nice python -m bench.hlo_parity --json out.json

Values are compared too (a case whose results differ from vmap's is listed
as WRONG: that is a bug, not a cost).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
import traceback
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

import stablehlo_batch as sb
from bench.harness import hlo_instruction_count, max_diff, memory

B = 8  # batch size of every case: small, so compiles stay cheap


@dataclasses.dataclass
class Case:
    name: str
    fn: Callable
    shapes: list            # per-example (shape, dtype) of each argument (leaves of a flat list)
    in_axes: tuple
    out_axes: Any = 0
    args: Any = None        # ready-made batched arguments (bench / generated), else made from shapes
    axis_size: int | None = None


@dataclasses.dataclass
class Result:
    name: str
    status: str = "ok"
    instr: tuple = (0, 0)   # (ours, vmap's)
    params: tuple = (0, 0)  # parameter instructions among them (in every computation)
    temp: tuple = (0, 0)    # bytes
    diff: float | None = None
    seconds: float = 0.0

    @property
    def excess(self) -> tuple:
        """How much worse: (temp ratio, instruction difference) for sorting."""
        (ti, tv), (ii, iv) = self.temp, self.instr
        return ((ti + 1) / (tv + 1), ii - iv)

    @property
    def above(self) -> bool:
        return self.status == "ok" and (self.instr[0] > self.instr[1] or self.temp[0] > self.temp[1])


# ---- hand-written per-example functions ---------------------------------------------------

def _conv(x, w):  # x: (H, W, C) NHWC without N, w: (KH, KW, C, O)
    return jax.lax.conv_general_dilated(x[None], w, (1, 1), "SAME",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))[0]


def _conv_nchw(x, w):  # x: (C, H, W), w: (O, C, KH, KW)
    return jax.lax.conv_general_dilated(x[None], w, (1, 1), ((1, 1), (0, 1)))[0]


def _scan(xs):
    def step(h, x):
        h = jnp.tanh(0.5 * h + x)
        return h, h * 2.0
    return jax.lax.scan(step, jnp.zeros(xs.shape[1:]), xs)


def _scan_carry(h0, xs):
    def step(h, x):
        h = jnp.tanh(h * x)
        return h, jnp.sum(h)
    return jax.lax.scan(step, h0, xs)


def _fori(x):
    return jax.lax.fori_loop(0, 5, lambda i, c: jnp.sin(c) + i, x)


def _while(x):
    return jax.lax.while_loop(lambda c: jnp.max(c[0]) < 10.0,
                              lambda c: (c[0] * 2.0 + 1.0, c[1] + 1), (jnp.abs(x), 0))


def _scatter(x, i, y):
    return x.at[i].add(y)


def _gather(x, i):
    return x[i, :]


F = jnp.float32
I = jnp.int32

# name -> (fn, [(shape, dtype)...])
HAND: dict[str, tuple] = {
    "elementwise": (lambda x, y: jnp.tanh(x * y + 1.0), [((4, 6), F), ((4, 6), F)]),
    "elementwise3": (lambda x, y: jnp.exp(x) - y, [((3, 4, 5), F), ((3, 4, 5), F)]),
    "compare_select": (lambda x, y: jnp.where(x > y, x, 2.0 * y), [((4, 6), F), ((4, 6), F)]),
    "select_scalar_pred": (lambda p, x, y: jax.lax.select(jnp.broadcast_to(p, x.shape), x, y),
                           [((), jnp.bool_), ((4, 6), F), ((4, 6), F)]),
    "clamp": (lambda x, lo: jnp.clip(x, lo, 1.0), [((4, 6), F), ((4, 6), F)]),
    "broadcast_add": (lambda x, v: x + v[None, :], [((4, 6), F), ((6,), F)]),
    "broadcast_outer": (lambda a, b: a[:, None] * b[None, :], [((5,), F), ((6,), F)]),
    "broadcast_to": (lambda x: jnp.broadcast_to(x[:, None, :], (4, 3, 6)) + 1.0, [((4, 6), F)]),
    "iota_add": (lambda x: x + jnp.arange(6, dtype=F)[None, :], [((4, 6), F)]),
    "iota_2d": (lambda x: x * jax.lax.broadcasted_iota(F, (4, 6), 0), [((4, 6), F)]),
    "reduce_sum": (lambda x: jnp.sum(x, axis=0), [((4, 6), F)]),
    "reduce_last": (lambda x: jnp.max(x, axis=-1), [((3, 4, 6), F)]),
    "reduce_all": (lambda x: jnp.sum(x), [((4, 6), F)]),
    "argmax": (lambda x: jnp.argmax(x, axis=1), [((4, 6), F)]),
    "softmax": (lambda x: jax.nn.softmax(x, axis=-1), [((4, 6), F)]),
    "matvec": (lambda w, x: w @ x, [((5, 6), F), ((6,), F)]),
    "matmul": (lambda a, b: a @ b, [((4, 6), F), ((6, 5), F)]),
    "matmul_tanh": (lambda a, b: jnp.tanh(a @ b) @ b.T, [((6, 6), F), ((6, 6), F)]),
    "einsum_batch": (lambda a, b: jnp.einsum("bij,bjk->bik", a, b), [((3, 4, 5), F), ((3, 5, 2), F)]),
    "transpose": (lambda x: x.T + 1.0, [((4, 6), F)]),
    "transpose3": (lambda x: jnp.transpose(x, (2, 0, 1)) * 2.0, [((3, 4, 5), F)]),
    "reshape": (lambda x: x.reshape(24) * 2.0, [((4, 6), F)]),
    "reshape_split": (lambda x: x.reshape(2, 2, 6).sum(1), [((4, 6), F)]),
    "slice": (lambda x: x[1:3, ::2] + 1.0, [((4, 6), F)]),
    "reverse": (lambda x: x[::-1, :] * 2.0, [((4, 6), F)]),
    "pad": (lambda x: jnp.pad(x, ((1, 2), (0, 3))) + 1.0, [((4, 6), F)]),
    "pad_interior": (lambda x: jax.lax.pad(x, 0.0, ((1, 0, 1), (0, 1, 0))), [((4, 6), F)]),
    "concatenate": (lambda x, y: jnp.concatenate([x, y], axis=0) * 2.0, [((4, 6), F), ((2, 6), F)]),
    "concatenate_last": (lambda x, y: jnp.concatenate([x, y], axis=1), [((4, 6), F), ((4, 3), F)]),
    "dynamic_slice": (lambda x, i: jax.lax.dynamic_slice(x, (i, 0), (2, 6)), [((4, 6), F), ((), I)]),
    "dynamic_update_slice": (lambda x, y, i: jax.lax.dynamic_update_slice(x, y, (i, 0)),
                             [((4, 6), F), ((2, 6), F), ((), I)]),
    "gather_rows": (_gather, [((5, 6), F), ((3,), I)]),
    "take_along": (lambda x, i: jnp.take_along_axis(x, i, axis=1), [((4, 6), F), ((4, 2), I)]),
    "scatter_add": (_scatter, [((5, 6), F), ((3,), I), ((3, 6), F)]),
    "sort": (lambda x: jnp.sort(x, axis=-1), [((4, 16), F)]),
    "sort_axis0": (lambda x: jnp.sort(x, axis=0), [((16, 4), F)]),
    "top_k": (lambda x: jax.lax.top_k(x, 3), [((4, 16), F)]),
    "cumsum": (lambda x: jnp.cumsum(x, axis=0), [((6, 4), F)]),
    "cumsum_last": (lambda x: jnp.cumsum(x, axis=-1), [((4, 6), F)]),
    "reduce_window": (lambda x: jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (2, 2), (1, 2), "SAME"),
                      [((6, 6), F)]),
    "conv_nhwc": (_conv, [((8, 8, 2), F), ((3, 3, 2, 4), F)]),
    "conv_nchw": (_conv_nchw, [((2, 8, 8), F), ((4, 2, 3, 3), F)]),
    "scan": (_scan, [((7, 4), F)]),
    "scan_carry": (_scan_carry, [((4,), F), ((7, 4), F)]),
    "fori": (_fori, [((4, 6), F)]),
    "while": (_while, [((4, 6), F)]),
    "mlp": (lambda w1, w2, x: jnp.tanh(jnp.tanh(x @ w1) @ w2), [((6, 8), F), ((8, 3), F), ((5, 6), F)]),
    "layer_norm": (lambda x: (x - x.mean(-1, keepdims=True)) / (x.std(-1, keepdims=True) + 1e-5),
                   [((4, 6), F)]),
    "attention": (lambda q, k: jax.nn.softmax(q @ k.T, axis=-1) @ k, [((4, 6), F), ((5, 6), F)]),
    "grad_mlp": (jax.grad(lambda w, x: jnp.sum(jnp.tanh(x @ w) ** 2)), [((6, 4), F), ((5, 6), F)]),
}


def _variants(shapes) -> list[tuple]:
    """(in_axes, out_axes) pairs: every argument at 0 / 1 / -1, one batched
    and the rest shared, and the first shared with the rest batched; out at
    0 and -1, and 1 for some."""
    n = len(shapes)
    ranks = [len(s) for s, _ in shapes]

    def ok(ax, r):
        return ax is None or ax in (0, -1) or ax <= r

    ins = [(0,) * n, (1,) * n, (-1,) * n]
    if n > 1:
        ins += [(1,) + (None,) * (n - 1), (None,) * (n - 1) + (-1,), (None,) + (1,) * (n - 1)]
    ins = [tuple(ax if ok(ax, r) else 0 for ax, r in zip(axes, ranks)) for axes in ins]
    seen, out = set(), []
    for axes in ins:
        for oa in (0, -1, 1):
            if oa == 1 and axes[0] not in (1, None):
                continue
            if (axes, oa) not in seen:
                seen.add((axes, oa))
                out.append((axes, oa))
    return out


def _batched_shape(shape, axis, size):
    shape = list(shape)
    if axis is not None:
        shape.insert(axis % (len(shape) + 1), size)
    return tuple(shape)


def _rand(rng, shape, dtype):
    if dtype == jnp.bool_:
        return jnp.asarray(rng.random(shape) > 0.5)
    if jnp.issubdtype(dtype, jnp.integer):
        return jnp.asarray(rng.integers(0, 3, shape).astype(dtype))
    return jnp.asarray(rng.standard_normal(shape).astype(dtype))


def _out_axes_for(fn, shapes, oa):
    """``oa`` for every output leaf, 0 where the leaf's rank does not allow it."""
    out = jax.eval_shape(fn, *[jax.ShapeDtypeStruct(s, d) for s, d in shapes])
    leaves, tree = jax.tree_util.tree_flatten(out)
    axes = [oa if oa in (0, -1) or oa <= len(leaf.shape) else 0 for leaf in leaves]
    return jax.tree_util.tree_unflatten(tree, axes)


def hand_cases() -> list[Case]:
    cases = []
    for name, (fn, shapes) in HAND.items():
        for axes, oa in _variants(shapes):
            tag = ",".join("N" if a is None else str(a) for a in axes)
            cases.append(Case(f"{name}[in={tag} out={oa}]", fn, shapes, axes,
                              _out_axes_for(fn, shapes, oa)))
    return cases


# ---- bench workloads ----------------------------------------------------------------------

def _move_batch(args, in_axes, new_axis):
    """The workload's batched arguments with the batch moved to ``new_axis``
    (where the leaf's rank allows; None stays None)."""
    axes = in_axes if isinstance(in_axes, tuple) else (in_axes,) * len(args)
    new_args, new_axes = [], []
    for a, ax in zip(args, axes):
        if ax is None:
            new_args.append(a)
            new_axes.append(None)
            continue
        leaves = jax.tree_util.tree_leaves(a)
        if not all(np.ndim(x) >= 2 for x in leaves):
            return None
        new_args.append(jax.tree_util.tree_map(lambda x: jnp.moveaxis(x, ax, new_axis), a))
        new_axes.append(new_axis)
    return tuple(new_args), tuple(new_axes)


def bench_cases(batch: int = B) -> list[Case]:
    from bench.workloads import WORKLOADS  # noqa: PLC0415
    cases = []
    for w in WORKLOADS:
        if w.name == "host_callback":
            continue  # the per-lane fallback: a loop by design
        args = w.make(batch, np.random.default_rng(0))
        cases.append(Case(f"bench:{w.name}[own axes]", w.fn, None, w.in_axes, w.out_axes, args))
        if w.out_axes != 0:
            continue
        for new in (1, -1):
            moved = _move_batch(args, w.in_axes, new)
            if moved is not None and moved[1] != (w.in_axes if isinstance(w.in_axes, tuple)
                                                  else (w.in_axes,) * len(args)):
                cases.append(Case(f"bench:{w.name}[in={new}]", w.fn, None, moved[1], 0, moved[0]))
    return cases


# ---- generated programs -------------------------------------------------------------------

def generated_cases(n: int) -> list[Case]:
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sys.path[:0] = [os.path.join(here, "tests"), here]
    from hypothesis import Phase, given, seed, settings  # noqa: PLC0415
    import gen_programs  # noqa: PLC0415
    skip = {"collective", "callback", "key", "static", "linalg"}
    families = [f for f in gen_programs.families() if f not in skip]
    strata = [(f, v) for f, v in gen_programs.strata() if f in families]
    cases = []
    for i in range(n):
        # hypothesis' first examples are its simplest: keep the last of a
        # few, and start program i with family i % len(strata) (as
        # tests/sweeps/test_generated.py's sample does)
        first, variant = strata[i % len(strata)]

        @seed(1000 + i)
        @settings(max_examples=4, database=None, phases=[Phase.generate], deadline=None)
        @given(gen_programs.programs(max_steps=4, ops=families, first=first, variant=variant,
                                     use="direct", option="none"))
        def collect(p):
            got[:] = [p]
        got = []
        collect()
        p = got[0]
        if p.use != "direct" or p.options or p.size == 0:
            continue
        explicit, closed = p.make_args()
        cases.append(Case(f"gen:{i}", p.fn(closed), None, p.in_axes, tuple(p.out_axes),
                          tuple(explicit), p.axis_size))
    return cases


# ---- measuring ----------------------------------------------------------------------------

def measure(case: Case, rng, show: bool = False) -> Result:
    res = Result(case.name)
    start = time.perf_counter()
    try:
        if case.args is None:
            args = tuple(_rand(rng, _batched_shape(s, ax, B), d)
                         for (s, d), ax in zip(case.shapes, case.in_axes))
            axis_size = B if all(a is None for a in case.in_axes) else None
        else:
            args, axis_size = case.args, case.axis_size
        vm = jax.jit(jax.vmap(case.fn, in_axes=case.in_axes, out_axes=case.out_axes,
                              axis_size=axis_size))
        try:
            vm_c = vm.lower(*args).compile()
        except Exception as e:  # noqa: BLE001 - vmap cannot: nothing to compare with
            res.status = f"vmap-failed: {type(e).__name__}"
            return res
        bl = sb.batch_lower(case.fn, in_axes=case.in_axes, out_axes=case.out_axes,
                            axis_size=axis_size, tune=False)
        bl_c = bl.lower(*args).compile()
        bl_hlo, vm_hlo = bl_c.as_text(), vm_c.as_text()
        res.instr = (hlo_instruction_count(bl_hlo), hlo_instruction_count(vm_hlo))
        res.params = (bl_hlo.count(" parameter("), vm_hlo.count(" parameter("))
        mb, mv = memory(bl_c), memory(vm_c)
        res.temp = (mb.get("temp", 0), mv.get("temp", 0))
        res.diff = max_diff(bl(*args), vm(*args))
        scale = max((float(np.max(np.abs(np.asarray(x, np.float64)))) if np.size(x) else 0.0)
                    for x in jax.tree_util.tree_leaves(vm(*args))) if jax.tree_util.tree_leaves(
                        vm(*args)) else 0.0
        if res.diff > 1e-4 * max(1.0, scale):
            res.status = f"WRONG: max diff {res.diff:.3g}"
        if show:
            print(f"==== {case.name}\n---- batch_lower StableHLO\n{bl.lower(*args).as_text()}"
                  f"\n---- batch_lower HLO\n{bl_hlo}\n---- vmap HLO\n{vm_hlo}")
    except Exception as e:  # noqa: BLE001 - a failure is a result
        res.status = f"error: {type(e).__name__}: {' '.join(str(e).split())[:200]}"
        if show:
            traceback.print_exc()
    finally:
        res.seconds = time.perf_counter() - start
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--generated", type=int, default=0, help="also N generated programs")
    ap.add_argument("--no-bench", action="store_true", help="skip the bench workloads")
    ap.add_argument("--no-hand", action="store_true", help="skip the hand-written cases")
    ap.add_argument("-k", default="", help="only cases whose name contains this")
    ap.add_argument("--show", action="store_true", help="print the modules of every case")
    ap.add_argument("--json", help="write every result here")
    ap.add_argument("--top", type=int, default=40, help="list at most this many cases above vmap")
    opts = ap.parse_args(argv)
    jax.config.update("jax_platforms", "cpu")

    cases = [] if opts.no_hand else hand_cases()
    if not opts.no_bench:
        cases += bench_cases()
    if opts.generated:
        cases += generated_cases(opts.generated)
    cases = [c for c in cases if opts.k in c.name]
    rng = np.random.default_rng(0)
    results = []
    t0 = time.perf_counter()
    for c in cases:
        results.append(measure(c, rng, opts.show))
    ok = [r for r in results if r.status == "ok"]
    above = sorted((r for r in ok if r.above), key=lambda r: r.excess, reverse=True)
    above_instr = [r for r in ok if r.instr[0] > r.instr[1]]
    above_temp = [r for r in ok if r.temp[0] > r.temp[1]]
    below = [r for r in ok if r.instr[0] < r.instr[1] or r.temp[0] < r.temp[1]]
    # instructions not counting parameters: a module that keeps arguments
    # jit(vmap) drops (unused ones) has more parameters, not more work
    above_ops = [r for r in ok if r.instr[0] - r.params[0] > r.instr[1] - r.params[1]]
    print(f"{len(results)} cases in {time.perf_counter() - t0:.0f} s: {len(ok)} compared, "
          f"{len(above)} above vmap ({len(above_instr)} in instructions, {len(above_ops)} of "
          f"them not counting parameters, {len(above_temp)} in temp bytes), {len(below)} "
          f"below in one or the other")
    if above:
        print(f"\n{'case':<52} {'instr ours/vmap':>16} {'params':>8} "
              f"{'temp ours/vmap (bytes)':>26}")
        for r in above[:opts.top]:
            print(f"{r.name:<52} {r.instr[0]:>7}/{r.instr[1]:<8} {r.params[0]:>3}/{r.params[1]:<4} "
                  f"{r.temp[0]:>12}/{r.temp[1]:<12}")
        if len(above) > opts.top:
            print(f"... {len(above) - opts.top} more")
    bad = [r for r in results if r.status != "ok"]
    if bad:
        print("\nnot compared:")
        for r in bad:
            print(f"  {r.name}: {r.status}")
    if opts.json:
        with open(opts.json, "w") as f:
            json.dump([dataclasses.asdict(r) for r in results], f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
