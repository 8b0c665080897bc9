"""``make demo``: batch the seed tutorial's convolution through its IR.

Prints the per-example and the batched StableHLO, checks the result against
``jax.vmap`` and times batch_lower, ``jax.jit(jax.vmap(f))`` and a Python
loop over the examples (alternating runs, medians).
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

import jax
import jax.numpy as jnp

import stablehlo_batch as sb
from stablehlo_batch.export import batch_exported


def convolve(x, w):
    output = []
    for i in range(1, len(x) - 1):
        output.append(jnp.dot(x[i - 1:i + 2], w))
    return jnp.array(output)


def _median_times(fns: dict, args, repeats: int, calls: int = 1):
    """Medians of the time per call of each of ``fns`` (``calls`` calls per
    timing) and the rounds' timings, contender by contender."""
    for fn in fns.values():  # warm up: compile and cache
        jax.block_until_ready(fn(*args))
    times = {name: [] for name in fns}
    names = list(fns)
    for r in range(repeats):
        # Alternate so drift hits every contender alike, and rotate the order
        # so that none is always first in a round.
        for name in names[r % len(names):] + names[:r % len(names)]:
            fn = fns[name]
            start = time.perf_counter()
            for _ in range(calls):
                out = fn(*args)
            jax.block_until_ready(out)
            times[name].append((time.perf_counter() - start) / calls)
    return {name: statistics.median(t) for name, t in times.items()}, times


# Run by a fresh interpreter that cannot import stablehlo_batch: only jax.
_JAX_ONLY = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "stablehlo_batch":
            raise ImportError(name)
sys.meta_path.insert(0, Block())
import jax, jax.numpy as jnp
exp = jax.export.deserialize(bytearray(open(sys.argv[1], "rb").read()))
w = jnp.array([2., 3., 4.])
for batch in (2, 5):
    xs = jnp.arange(batch * 5.).reshape(batch, 5)
    print(f"  batch {batch}:", exp.call(xs, w).tolist())
"""


def export_round_trip() -> None:
    """Export one example, batch the artifact for every batch size, serialize
    it, and run it in a process that has only jax."""
    print("== export round trip: jax.export -> batch_exported(axis_size='b') -> "
          "a process with only jax ==")
    exp = jax.export.export(jax.jit(convolve))(jnp.zeros(5), jnp.zeros(3))
    batched = batch_exported(exp, in_axes=(0, None), axis_size="b")
    print("batched in_avals:", batched.in_avals)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "convolve_b.jax_exported")
        with open(path, "wb") as f:
            f.write(batched.serialize())
        out = subprocess.run([sys.executable, "-I", "-c", _JAX_ONLY, path],
                             capture_output=True, text=True, check=True).stdout
    print(out, end="")
    w = jnp.array([2., 3., 4.])
    for batch in (2, 5):
        xs = jnp.arange(batch * 5.).reshape(batch, 5)
        want = jax.vmap(convolve, in_axes=(0, None))(xs, w).tolist()
        assert f"  batch {batch}: {want}" in out, (out, want)
    print("OK: the same as jax.vmap at both batch sizes, one artifact\n")


def main() -> None:
    x = jnp.arange(5.)
    w = jnp.array([2., 3., 4.])
    print("== convolve(x, w) for one example, as StableHLO ==")
    print(jax.jit(convolve).lower(x, w).as_text())

    xs = jnp.stack([x, x])
    bconv = sb.batch_lower(convolve, in_axes=(0, None))
    print("== batch_lower(convolve, in_axes=(0, None)) for a batch of 2 ==")
    print(bconv.lower(xs, w).as_text())
    got = bconv(xs, w)
    want = jax.vmap(convolve, in_axes=(0, None))(xs, w)
    print("batch_lower:", np.asarray(got).tolist())
    print("jax.vmap:   ", np.asarray(want).tolist())
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    jitted = jax.jit(lambda a, b: bconv(a, b) * 2)(xs, w)
    np.testing.assert_array_equal(np.asarray(jitted), np.asarray(want) * 2)
    print("OK: identical to jax.vmap (also inside jax.jit)\n")

    export_round_trip()

    vmapped = jax.jit(jax.vmap(convolve, in_axes=(0, None)))
    single = jax.jit(convolve)

    def python_loop(a, b):
        return jnp.stack([single(a[i], b) for i in range(a.shape[0])])

    print("== median time per call (alternating rounds; the ratio is the median of")
    print("   the rounds' ratios, each round timing 20 calls of each) ==")
    print(f"{'batch':>6} | {'batch_lower':>12} | {'jit(vmap)':>12} | {'python loop':>12} | ratio bl/vmap")
    print("-" * 70)
    rng = np.random.default_rng(0)
    for batch, repeats in ((8, 100), (1024, 30)):
        xb = jnp.asarray(rng.standard_normal((batch, 5)), jnp.float32)
        # The Python loop is timed on its own: after its thousand small calls
        # the next call pays ~0.3 ms for waking XLA's threads up, which would
        # land on whichever contender follows it.
        t, rounds = _median_times({"bl": bconv, "vmap": vmapped}, (xb, w), repeats, calls=20)
        t["ratio"] = statistics.median(a / b for a, b in zip(rounds["bl"], rounds["vmap"]))
        t.update(_median_times({"loop": python_loop}, (xb, w), 3)[0])
        print(f"{batch:>6} | {t['bl'] * 1e6:>10.1f}us | {t['vmap'] * 1e6:>10.1f}us | "
              f"{t['loop'] * 1e6:>10.1f}us | {t['ratio']:.2f}")


if __name__ == "__main__":
    main()
