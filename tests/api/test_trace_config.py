"""Plans are keyed by jax's trace configuration (issue 15).

The same batched function called under other settings of x64, matmul
precision, rank promotion or the default PRNG implementation must not reuse
a plan traced under the first: each call matches jax.vmap under its own
settings (values, dtypes, errors), directly and inside an outer jax.jit.
"""
import contextlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import stablehlo_batch as sb
from tests.conftest import assert_same_tree


@contextlib.contextmanager
def _config(name, value):
    old = getattr(jax.config, name)
    jax.config.update(name, value)
    try:
        yield
    finally:
        jax.config.update(name, old)


def _plus_iota(x):
    return x + jnp.arange(3)  # int64 under x64, int32 without


@pytest.mark.parametrize("jit", [False, True])
def test_x64_changes_between_calls(jit):
    xs = np.arange(12, dtype=np.int32).reshape(4, 3)
    bl = sb.batch_lower(_plus_iota)
    call = jax.jit(lambda x: bl(x)) if jit else bl
    first = call(xs)
    assert_same_tree(first, jax.vmap(_plus_iota)(xs))
    assert first.dtype == np.int32
    with _config("jax_enable_x64", True):
        got = call(xs)
        want = jax.vmap(_plus_iota)(xs)
        assert want.dtype == np.int64
        assert_same_tree(got, want)
    assert_same_tree(call(xs), jax.vmap(_plus_iota)(xs))  # back: the first plan again
    assert call(xs).dtype == np.int32


def _matmul(a, b):
    return a @ b


def test_matmul_precision_changes_between_calls(rng):
    a = rng.standard_normal((5, 4, 8)).astype(np.float32)
    b = rng.standard_normal((8, 3)).astype(np.float32)
    bl = sb.batch_lower(_matmul, in_axes=(0, None))
    outer = jax.jit(lambda a, b: bl(a, b))
    assert_same_tree(bl(a, b), jax.vmap(_matmul, in_axes=(0, None))(a, b), rtol=1e-5)
    assert_same_tree(outer(a, b), jax.vmap(_matmul, in_axes=(0, None))(a, b), rtol=1e-5)
    assert "HIGHEST" not in bl.lower(a, b).as_text()
    misses = bl.cache_info().misses
    with jax.default_matmul_precision("highest"):
        want = jax.vmap(_matmul, in_axes=(0, None))(a, b)
        assert_same_tree(bl(a, b), want, rtol=1e-5)
        assert_same_tree(outer(a, b), want, rtol=1e-5)
        assert "HIGHEST" in bl.lower(a, b).as_text()
        assert "HIGHEST" in outer.lower(a, b).as_text()
    misses_highest = bl.cache_info().misses
    assert misses_highest > misses
    assert "HIGHEST" not in bl.lower(a, b).as_text()
    assert_same_tree(outer(a, b), jax.vmap(_matmul, in_axes=(0, None))(a, b), rtol=1e-5)
    assert bl.cache_info().misses == misses_highest  # the first plans again


def _add_rows(x, y):
    return x + y  # (3,) + (2, 3): rank promotion


def test_rank_promotion_changes_between_calls(rng):
    xs = rng.standard_normal((4, 3)).astype(np.float32)
    y = rng.standard_normal((2, 3)).astype(np.float32)
    bl = sb.batch_lower(_add_rows, in_axes=(0, None))
    assert_same_tree(bl(xs, y), jax.vmap(_add_rows, in_axes=(0, None))(xs, y))
    with jax.numpy_rank_promotion("raise"):
        with pytest.raises(ValueError, match="rank_promotion"):
            jax.vmap(_add_rows, in_axes=(0, None))(xs, y)
        with pytest.raises(ValueError, match="rank_promotion"):
            bl(xs, y)
    assert_same_tree(bl(xs, y), jax.vmap(_add_rows, in_axes=(0, None))(xs, y))


def _noisy(x):
    return x + jax.random.normal(jax.random.key(0), x.shape)


def test_default_prng_impl_changes_between_calls(rng):
    xs = rng.standard_normal((4, 3)).astype(np.float32)
    bl = sb.batch_lower(_noisy)
    first = bl(xs)
    assert_same_tree(first, jax.vmap(_noisy)(xs))
    with _config("jax_default_prng_impl", "rbg"):
        want = jax.vmap(_noisy)(xs)
        assert not np.allclose(np.asarray(want), np.asarray(first))
        assert_same_tree(bl(xs), want)
    assert_same_tree(bl(xs), first)


def test_gradient_under_two_precisions(rng):
    """Derivatives of the batched call follow the settings of their call too."""
    a = rng.standard_normal((5, 4, 8)).astype(np.float32)
    b = rng.standard_normal((8, 3)).astype(np.float32)
    bl = sb.batch_lower(_matmul, in_axes=(0, None))

    def loss(f):
        return jax.jit(jax.grad(lambda b: jnp.sum(jnp.tanh(f(a, b)))))
    vm = jax.vmap(_matmul, in_axes=(0, None))
    assert_same_tree(loss(bl)(b), loss(vm)(b), rtol=1e-5, atol=1e-6)
    assert "HIGHEST" not in loss(bl).lower(b).as_text()
    with jax.default_matmul_precision("highest"):
        assert_same_tree(loss(bl)(b), loss(vm)(b), rtol=1e-5, atol=1e-6)
        assert "HIGHEST" in loss(bl).lower(b).as_text()


def _highest(fn, *args) -> int:
    return jax.jit(fn).lower(*args).as_text().count("HIGHEST")


def test_derivative_traced_under_another_precision_is_not_reused(rng):
    """A derivative (here the transpose) was kept per batched function by the
    rules alone: a pullback called under default_matmul_precision("highest")
    traced it with HIGHEST products (as jax's own transpose does), and every
    later gradient under the default precision reused it (jax.vmap's has
    none). Derivatives are keyed by jax's trace configuration too."""
    a = rng.standard_normal((5, 4, 8)).astype(np.float32)
    b = rng.standard_normal((8, 3)).astype(np.float32)
    ct = np.ones((5, 4, 3), np.float32)
    bl = sb.batch_lower(_matmul, in_axes=(0, None))
    vm = jax.vmap(_matmul, in_axes=(0, None))
    pull = {f: jax.vjp(lambda b: f(a, b), b)[1] for f in (bl, vm)}
    with jax.default_matmul_precision("highest"):
        assert _highest(pull[bl], ct) == _highest(pull[vm], ct) > 0
        assert_same_tree(pull[bl](ct), pull[vm](ct), rtol=1e-5, atol=1e-6)

    def grad(f):
        return jax.grad(lambda b: jnp.sum(jnp.tanh(f(a, b))))
    assert _highest(grad(vm), b) == 0
    assert _highest(grad(bl), b) == 0
    assert_same_tree(grad(bl)(b), grad(vm)(b), rtol=1e-5, atol=1e-6)
    assert _highest(pull[bl], ct) == _highest(pull[vm], ct) == 0
    with jax.default_matmul_precision("highest"):  # and back: that one again
        assert _highest(grad(bl), b) == _highest(grad(vm), b) > 0


_DERIVATIVE_FNS = {
    "ints": lambda x, w: jnp.cumsum(x * w) / jnp.arange(1, 4) + (jnp.argmax(x) + 1) * w,
    "noise": lambda x, w: x * w * jax.random.normal(jax.random.key(0), x.shape),
    "sort": lambda x, w: jnp.sort(x * w) ** 3 + jnp.mean(x * w),
}


@pytest.mark.parametrize("setting", ["x64", "rbg"])
@pytest.mark.parametrize("name", sorted(_DERIVATIVE_FNS))
def test_derivatives_across_x64_and_prng_switches(rng, setting, name):
    """Pullbacks made under the defaults and called under x64 or the rbg
    PRNG, then gradients under the defaults and under the switch: each as
    jax.vmap's (values and dtypes), whichever derivative was traced first."""
    f = _DERIVATIVE_FNS[name]
    x = rng.standard_normal((4, 3)).astype(np.float32)
    w = rng.standard_normal((3,)).astype(np.float32)
    switch = (lambda: jax.enable_x64(True)) if setting == "x64" else \
        (lambda: _config("jax_default_prng_impl", "rbg"))
    bl = sb.batch_lower(f, in_axes=(0, None))
    vm = jax.vmap(f, in_axes=(0, None))
    outs, pulls = {}, {}
    for g in (bl, vm):
        outs[g], pulls[g] = jax.vjp(lambda w: g(x, w), w)
    assert_same_tree(outs[bl], outs[vm], rtol=1e-5, atol=1e-5)
    ct = np.ones(outs[vm].shape, outs[vm].dtype)

    def grad(g):
        return jax.grad(lambda w: jnp.sum(jnp.tanh(g(x, w))))(w)
    with switch():
        assert_same_tree(pulls[bl](ct), pulls[vm](ct), rtol=1e-5, atol=1e-5)
        assert_same_tree(grad(bl), grad(vm), rtol=1e-5, atol=1e-5)
    assert_same_tree(grad(bl), grad(vm), rtol=1e-5, atol=1e-5)
    assert_same_tree(pulls[bl](ct), pulls[vm](ct), rtol=1e-5, atol=1e-5)
