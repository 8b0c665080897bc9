"""Regression tests after the vmap tests of JAX's tests/lax_control_flow_test.py (jax-v0.10.2).

while / fori / cond / switch / scan / associative_scan / platform_dependent
under batch_lower with batched predicates, batched loop constants and
unbatched carries, compared with jax.vmap.
"""
from __future__ import annotations

import numpy as np
import pytest

import jax
import jax.numpy as jnp
from jax import lax

import stablehlo_batch as sb
from conftest import assert_same_tree, check_vmap

R = np.random.default_rng(3)


def randn(*shape):
    return R.standard_normal(shape).astype(np.float32)


def test_while_with_batched_predicate_and_under_jit():
    fun = lambda x: lax.while_loop(lambda x: x < 3, lambda x: x + 2, x)
    x = np.array([0, 1, 2, 3], np.int32)
    check_vmap(fun, x)
    check_vmap(jax.jit(fun), x)


def test_while_whose_body_ignores_the_carry():
    f = lambda x: lax.while_loop(lambda _: jnp.logical_not(False) == False,  # noqa: E712
                                 lambda _: jnp.asarray(0., jnp.float32), x)
    check_vmap(f, np.arange(5, dtype=np.float32))


@pytest.mark.parametrize("where", ["cond", "body"])
def test_while_with_batched_constants_and_unbatched_init(where):
    if where == "cond":
        fun = lambda x, y: lax.while_loop(lambda x: x < y, lambda x: x + 2, x)
    else:
        fun = lambda x, y: lax.while_loop(lambda x: x < 3, lambda x: x + y, x)
    check_vmap(fun, np.int32(0), np.array([2, 3], np.int32), in_axes=(None, 0))


def test_while_with_tuple_carry():
    fun = lambda x, y: lax.while_loop(lambda c: c[0] + c[1] < 5, lambda c: (c[0] + 1, c[1]), (x, y))
    check_vmap(fun, np.array([0, 0], np.int32), np.array([1, 2], np.int32))


def test_nested_while_loops_with_batched_bounds():
    def fun(a, b):
        def outer(inp):
            val, i, _ = inp
            inner = lax.while_loop(lambda c: c[2] < b + 1,
                                   lambda c: (c[0] + c[1] + c[2], c[1], c[2] + 1), (val, i, 0))
            return inner[0], i + 1, inner[2]
        return lax.while_loop(lambda c: c[1] < a + 1, outer, (0, 0, 0))[0]
    arr = np.arange(4, dtype=np.int32)
    check_vmap(fun, arr, arr)


def test_fori_with_unbatched_carry_part():
    fun = lambda x: lax.fori_loop(0, 10, lambda i, c: (c[0] + 1, c[1] + 2), (x, 0))
    check_vmap(fun, np.array([0, 1], np.int32))


def test_gradient_of_batched_cond_has_no_nan():
    eps = 1e-3
    safe = lambda x: lax.cond(x < eps, lambda _: eps, lambda _: jnp.sqrt(x), ())
    x = np.zeros(4, np.float32)
    got = jax.grad(lambda x: sb.batch_lower(safe)(x).sum())(x)
    want = jax.grad(lambda x: jax.vmap(safe)(x).sum())(x)
    assert_same_tree(got, want)
    assert not np.isnan(np.asarray(got)).any()


@pytest.mark.parametrize("cond", ["cond", "switch"])
def test_per_example_gradient_through_cond(cond):
    f1, f2 = (lambda x: x ** 2), (lambda x: x ** 3)
    if cond == "cond":
        f = lambda x: lax.cond(x > 0, f1, f2, x)
    else:
        f = lambda x: lax.switch((x > 0).astype(np.int32), [f2, f1], x)
    check_vmap(jax.grad(f), np.linspace(-1, 1, 6, dtype=np.float32), rtol=1e-6, atol=1e-6)


def test_fori_drawing_bernoulli_to_pick_a_cond_branch():
    def g(key, x):
        def body(i, state):
            k, x = state
            k, sub = jax.random.split(k)
            pick = jax.random.bernoulli(sub)
            return k, lax.cond(pick, lambda x, _: x, lambda _, x: x, x, jnp.abs(x) - 1.)
        return lax.fori_loop(0, 4, body, (key, x))
    check_vmap(g, jax.random.split(jax.random.PRNGKey(0), 3), np.ones((3, 4), np.float32))


@pytest.mark.parametrize("in_axes", [(0, None), (None, 1), (1, 2)])
def test_scan_with_batched_carry_or_xs(in_axes):
    d = randn(2)

    def f(c, a):
        b = jnp.cos(jnp.sum(jnp.sin(a)) + jnp.sum(jnp.cos(c)) + jnp.sum(d))
        return jnp.sin(c * b), b
    c_shape, as_shape = [4], [5, 3]
    if in_axes[0] is not None:
        c_shape.insert(in_axes[0], 3)
    if in_axes[1] is not None:
        as_shape.insert(in_axes[1], 3)
    check_vmap(lambda c, xs: lax.scan(f, c, xs), randn(*c_shape), randn(*as_shape),
               in_axes=in_axes, rtol=1e-5, atol=1e-5)


def test_scan_with_tuple_carry_and_tuple_xs_on_different_axes():
    def f(c, a):
        a1, a2 = a
        c1, c2 = c
        b = jnp.sum(jnp.cos(a1)) * jnp.sum(c2 * a2)
        return (c1 * jnp.sin(jnp.sum(a1 * a2)), c2 * jnp.cos(jnp.sum(a1))), b
    check_vmap(lambda c, xs: lax.scan(f, c, xs), (randn(3, 2), randn(3)),
               (randn(2, 3), randn(2, 4, 3)), in_axes=(0, (1, 2)), rtol=1e-5, atol=1e-5)


def test_scan_whose_batched_carry_shifts_into_unbatched_slots():
    def f(init):
        return lax.scan(lambda c, _: ((c[1], c[2], c[3], 0.), None), (0., 1., 2., init),
                        jnp.zeros(2))
    check_vmap(f, np.array([3., 4., 5.], np.float32))


def test_batched_cond_and_while_under_disable_jit():
    fn = lambda t: lax.cond(t > 0, lambda x, _: 0, lambda _, x: 1, 0, 0)
    loop = lambda x: lax.while_loop(lambda x: x < 3, lambda x: x + 2, x)
    t = jnp.array([1, -1])
    with jax.disable_jit():
        assert_same_tree(sb.batch_lower(fn)(t), jax.vmap(fn)(t))
        assert_same_tree(sb.batch_lower(loop)(t), jax.vmap(loop)(t))


def test_nested_maps_of_a_fori_with_batched_trip_count():
    f = lambda x, n: lax.fori_loop(0, n, lambda _, x: x + 1, x)
    x, n = np.arange(3, dtype=np.int32), np.arange(4, dtype=np.int32)
    got = sb.batch_lower(sb.batch_lower(f, (None, 0)), (0, None))(x, n)
    want = jax.vmap(jax.vmap(f, (None, 0)), (0, None))(x, n)
    assert_same_tree(got, want)


def test_associative_scan_of_a_batched_solve():
    def fn(a, b):
        m1, v1 = a
        m2, v2 = b
        return m1 + m2, jax.scipy.linalg.solve(m1, v2) + jax.scipy.linalg.solve(m2, v1)
    ms = np.repeat(np.eye(2, dtype=np.float32)[None] * 2, 4, axis=0)
    vs = np.ones((4, 2), np.float32)
    got = lax.associative_scan(sb.batch_lower(fn), elems=(ms, vs))
    want = lax.associative_scan(jax.vmap(fn), elems=(ms, vs))
    assert_same_tree(got, want, rtol=1e-5, atol=1e-5)


def test_while_closing_over_a_constant_batched_along_axis_one():
    def f(i, x):
        return lax.while_loop(lambda c: c[0] < 5, lambda c: (c[0] + 1, c[1] + x),
                              (i, jnp.ones(3)))[1]
    check_vmap(f, np.arange(4, dtype=np.int32), np.ones((3, 4), np.float32), in_axes=(0, 1))


def test_jacrev_of_nested_identity_conds():
    cond_id = lambda x: lax.cond(x < 0., lambda x: x, lambda x: x, x)
    check_vmap(jax.jacrev(lambda x: cond_id(cond_id(x))), np.ones(2, np.float32))


def test_platform_dependent_picks_the_cpu_branch():
    f = lambda x: lax.platform_dependent(x, cpu=jnp.sin, default=jnp.cos)
    check_vmap(f, np.arange(3, dtype=np.float32))


def test_cond_with_unbatched_passthrough_output():
    def f(x, y):
        return lax.cond(x < 3, lambda x, y: (x * 2, y), lambda x, y: (x * 3, y), x, y)
    check_vmap(f, np.arange(3, dtype=np.int32), np.float32(3), in_axes=(0, None),
               out_axes=(0, None))


def test_while_with_read_only_carry_returned_unbatched():
    def foo(w, x, c_max):
        _, x, w = lax.while_loop(lambda v: v[0] < c_max, lambda v: (v[0] + 1, v[1] @ v[2], v[2]),
                                 (0, x, w))
        return w, x
    check_vmap(foo, np.ones((2, 2), np.float32), np.ones((4, 2), np.float32),
               np.arange(4, dtype=np.int32), in_axes=(None, 0, 0), out_axes=(None, 0))
