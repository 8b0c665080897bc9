"""batch_lower under load: many threads, many calls, a bounded plan cache.

* 16 threads call one batched function at once with a mix of shapes: every
  result is right and each signature is built (rewritten) and compiled by
  XLA exactly once;
* 10 000 calls keep the process's memory flat;
* ``cache_size`` bounds the plans kept (least recently used dropped first)
  and an evicted signature is rebuilt correctly.
"""
from __future__ import annotations

import collections
import threading

import jax
import jax.numpy as jnp
import numpy as np

import stablehlo_batch as sb
from stablehlo_batch import api

_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


def _model(x, w):
    return jnp.tanh(x @ w).sum(-1) + jnp.cos(w).sum()


def _reference(x, w):
    return np.tanh(x @ w).sum(-1) + np.cos(w).sum()


class _Counters:
    """Counts plan builds per signature and XLA backend compiles."""

    def __init__(self, monkeypatch):
        self.builds = collections.Counter()
        self.compiles = 0
        self._lock = threading.Lock()
        original = api.BatchedFunction._build

        def counting_build(bf, in_tree, avals, dims, size, platform, **kw):
            with self._lock:
                self.builds[tuple(a.shape for a in avals)] += 1
            return original(bf, in_tree, avals, dims, size, platform, **kw)
        monkeypatch.setattr(api.BatchedFunction, "_build", counting_build)

        def on_event(event, duration, **kw):
            if event == _COMPILE_EVENT:
                with self._lock:
                    self.compiles += 1
        jax.monitoring.register_event_duration_secs_listener(on_event)
        self._listener = on_event

    def close(self):
        from jax._src import monitoring
        monitoring.unregister_event_duration_listener(self._listener)


def _shapes():
    # (batch, n, k) -> x: [batch, n], w: [n, k] (w unbatched)
    return [(2, 3, 4), (5, 3, 4), (2, 6, 1), (7, 2, 2)]


def test_sixteen_threads_mixed_shapes(monkeypatch):
    counters = _Counters(monkeypatch)
    try:
        bf = sb.batch_lower(_model, in_axes=(0, None))
        rng = np.random.default_rng(0)
        inputs = [(rng.standard_normal((b, n), np.float32), rng.standard_normal((n, k), np.float32))
                  for b, n, k in _shapes()]
        wants = [_reference(x, w) for x, w in inputs]
        errors, barrier = [], threading.Barrier(16)

        def worker(t):
            try:
                barrier.wait()
                for r in range(12):
                    i = (t + r) % len(inputs)
                    got = np.asarray(bf(*inputs[i]))
                    np.testing.assert_allclose(got, wants[i], rtol=1e-5, atol=1e-5)
            except BaseException as e:  # reported in the main thread
                errors.append(e)
        threads = [threading.Thread(target=worker, args=(t,)) for t in range(16)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout=300)
        assert not errors, errors[0]
        assert len(counters.builds) == len(inputs)
        assert all(n == 1 for n in counters.builds.values()), counters.builds
        # XLA compiles: the batched executable once per shape (the export of
        # the per-example function compiles nothing).
        assert counters.compiles == len(inputs), counters.compiles
    finally:
        counters.close()


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    import resource
    return pages * resource.getpagesize()


def test_ten_thousand_calls_keep_memory_flat():
    bf = sb.batch_lower(_model, in_axes=(0, None))
    x = np.ones((4, 3), np.float32)
    w = np.ones((3, 2), np.float32)
    for _ in range(1000):  # warm-up: caches, allocator pools
        bf(x, w)
    before = _rss_bytes()
    for _ in range(10_000):
        out = bf(x, w)
    out.block_until_ready()
    grown = _rss_bytes() - before
    assert grown < 32 * 2**20, f"RSS grew by {grown / 2**20:.1f} MiB over 10 000 calls"
    assert bf.cache_info().currsize == 1


def test_cache_is_bounded_lru(monkeypatch):
    counters = _Counters(monkeypatch)
    try:
        bf = sb.batch_lower(_model, in_axes=(0, None), cache_size=2)
        rng = np.random.default_rng(1)
        inputs = [(rng.standard_normal((b, n), np.float32), rng.standard_normal((n, k), np.float32))
                  for b, n, k in _shapes()[:3]]
        for x, w in inputs + inputs[2:]:  # a, b, c, c
            np.testing.assert_allclose(bf(x, w), _reference(x, w), rtol=1e-5, atol=1e-5)
        assert bf.cache_info() == (1, 3, 2, 2)
        x, w = inputs[0]  # evicted: rebuilt, still right
        np.testing.assert_allclose(bf(x, w), _reference(x, w), rtol=1e-5, atol=1e-5)
        assert counters.builds[((2, 3), (3, 4))] == 2
        assert sum(counters.builds.values()) == 4
        assert bf.cache_info().currsize == 2
        unbounded = sb.batch_lower(_model, in_axes=(0, None), cache_size=None)
        for x, w in inputs:
            unbounded(x, w)
        assert unbounded.cache_info() == (0, 3, None, 3)
    finally:
        counters.close()


def test_parse_context_reused_per_thread_and_renewed(monkeypatch):
    # parse_module's default context: one per thread, reused, replaced after
    # _CONTEXT_USES parses (a context keeps every constant it has uniqued)
    import threading
    from stablehlo_batch import module_io
    text = "func.func @main(%x: tensor<2xf32>) -> tensor<2xf32> { return %x : tensor<2xf32> }"
    monkeypatch.setattr(module_io, "_SHARED", threading.local())
    monkeypatch.setattr(module_io, "_CONTEXT_USES", 3)
    a, b, c = (module_io.parse_module(text) for _ in range(3))
    assert a.context is b.context is c.context
    assert module_io.parse_module(text).context is not a.context  # the 4th: a new one
    other = []
    t = threading.Thread(target=lambda: other.append(module_io.parse_module(text).context))
    t.start()
    t.join()
    assert other[0] is not a.context
    assert module_io.parse_module(text, a.context).context is a.context  # given: used
