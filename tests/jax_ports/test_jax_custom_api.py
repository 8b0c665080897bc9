"""custom_vmap and custom_jvp under batch_lower, after the ideas of JAX's tests/custom_api_test.py
(CustomVmapTest, CustomJVPTest; jax-v0.10.2).

A ``jax.custom_batching.custom_vmap`` function lowers to its own body; its
rule is Python that the module does not hold. jax.vmap runs the rule, so where
the rule may compute something else, batch_lower refuses with
UnsupportedOpError (never the body's values in place of the rule's).
``sequential_vmap`` (a loop of the body over the lanes) and our own
``vmappable`` (the module batched by this rewrite) batch like their bodies.
"""
from __future__ import annotations

from functools import partial

import numpy as np
import pytest

import jax
import jax.numpy as jnp

import stablehlo_batch as sb
from conftest import assert_same_tree, check_vmap

XS = np.arange(3, dtype=np.float32) / 2


def _sin_with_cos_rule():
    @jax.custom_batching.custom_vmap
    def f(x):
        return jnp.sin(x)

    @f.def_vmap
    def rule(axis_size, in_batched, xs):
        return jnp.cos(xs), in_batched[0]
    return f


def test_custom_vmap_rule_that_differs_from_its_function_is_refused():
    f = _sin_with_cos_rule()
    # The oracle uses the rule: its values are not the function's.
    assert_same_tree(jax.vmap(f)(XS), np.cos(XS), rtol=1e-6, atol=1e-6)
    g = lambda x: f(x) * 2  # noqa: E731
    with pytest.raises(sb.UnsupportedOpError, match=r"custom_vmap.*test_jax_custom_api.py:\d+"):
        sb.batch_lower(g)(XS)
    # The custom_vmap function itself: no user line calls it; the rule's is named.
    with pytest.raises(sb.UnsupportedOpError,
                       match=r"custom_vmap.*test_jax_custom_api.py:\d+ \(the custom_vmap rule"):
        sb.batch_lower(f)(XS)


def test_custom_vmap_refused_under_jit_and_grad_too():
    f = _sin_with_cos_rule()
    with pytest.raises(sb.UnsupportedOpError, match="custom_vmap"):
        jax.jit(sb.batch_lower(lambda x: f(x) + 1))(XS)
    w = np.float32(1.5)
    with pytest.raises(sb.UnsupportedOpError, match="custom_vmap"):
        jax.grad(lambda w: sb.batch_lower(lambda x: f(x * w))(XS).sum())(w)


def test_custom_vmap_outside_batch_lower_is_untouched():
    f = _sin_with_cos_rule()
    assert_same_tree(jax.jit(f)(XS), np.sin(XS), rtol=1e-6, atol=1e-6)
    assert_same_tree(jax.jit(jax.vmap(f))(XS), np.cos(XS), rtol=1e-6, atol=1e-6)


def test_sequential_vmap_batches_like_its_function():
    g = jax.custom_batching.sequential_vmap(lambda x, y: jnp.sin(x) * y + 1)
    check_vmap(g, XS, np.float32(3.0), in_axes=(0, None))
    check_vmap(lambda x: g(x, x) * 2, XS, jit=True)


def test_vmappable_of_an_export_under_batch_lower():
    w = np.ones((3, 2), np.float32)
    exp = jax.export.export(jax.jit(lambda x, w: jnp.tanh(x @ w)))(
        jax.ShapeDtypeStruct((3,), np.float32), jax.ShapeDtypeStruct((3, 2), np.float32))
    f = sb.vmappable(exp)
    xs = np.arange(12, dtype=np.float32).reshape(4, 3) / 10
    check_vmap(f, xs, w, in_axes=(0, None), rtol=1e-5, atol=1e-5)


def _scale_with_nondiff_factor():
    @partial(jax.custom_jvp, nondiff_argnums=(0,))
    def f(x, y):
        return x * y

    @f.defjvp
    def f_jvp(x, primals, tangents):
        (y,), (t_y,) = primals, tangents
        return f(x, y), 5 * t_y
    return f


def test_custom_jvp_with_a_batched_nondiff_argument():
    f = _scale_with_nondiff_factor()
    check_vmap(f, XS, XS + 1)


def test_custom_jvp_rule_holding_a_traced_argument_under_jvp_is_a_typed_error():
    # The rule sees the batched function's argument from its own trace; a
    # derivative taken after that trace cannot (jax.jit(f) fails alike), so the
    # error is ours, typed, not jax's ValueError from inside the export.
    f = _scale_with_nondiff_factor()
    ys, ts = XS + 1, np.ones(3, np.float32)
    want = jax.jvp(lambda y: jax.vmap(f)(XS, y), (ys,), (ts,))
    assert_same_tree(want[1], 5 * ts)
    with pytest.raises(Exception):
        jax.jvp(lambda y: jax.jit(f)(XS[0], y), (ys[0],), (ts[0],))
    with pytest.raises(sb.UnsupportedOpError, match="nondiff_argnums"):
        jax.jvp(lambda y: sb.batch_lower(f)(XS, y), (ys,), (ts,))


def _sum_sin_with_batched_tangent_rule(bl):
    @jax.custom_jvp
    def f(mat, aux):
        return jnp.sum(jnp.sin(mat), axis=1) * aux

    @f.defjvp
    def f_jvp(primals, tangents):
        mat, aux = primals
        dmat, _ = tangents
        # The batched call is applied to a tangent: jax.grad transposes it.
        t = bl(lambda m, v: jnp.dot(jnp.cos(m), v) * aux)(mat, dmat)
        return f(mat, aux), t
    return f


@pytest.mark.parametrize("jit", [False, True])
def test_batched_call_on_tangents_in_a_custom_jvp_rule_is_transposed(jit):
    mat = np.arange(6, dtype=np.float32).reshape(2, 3) / 5
    grads = []
    for bl in (jax.vmap, sb.batch_lower):
        f = _sum_sin_with_batched_tangent_rule(bl)
        g = jax.grad(lambda m, a: jnp.sum(f(m, a) ** 2), argnums=(0, 1))
        grads.append((jax.jit(g) if jit else g)(mat, np.float32(0.5)))
    assert_same_tree(grads[1], grads[0], rtol=1e-5, atol=1e-5)


def test_transposing_a_batched_call_that_is_not_linear_is_refused_as_under_vmap():
    def make(bl):
        @jax.custom_jvp
        def f(x):
            return x

        @f.defjvp
        def f_jvp(primals, tangents):
            return primals[0], bl(jnp.sin)(tangents[0])
        return f
    x = np.ones(3, np.float32)
    for bl in (jax.vmap, sb.batch_lower):
        with pytest.raises(NotImplementedError, match="Transpose rule .* for 'sin'"):
            jax.grad(lambda x: make(bl)(x).sum())(x)


def test_transposed_batched_call_with_an_integer_result():
    # The transpose takes the cotangents of the inexact results only.
    def make(bl):
        @jax.custom_jvp
        def f(x):
            return jnp.sin(x)

        @f.defjvp
        def f_jvp(primals, tangents):
            (x,), (t,) = primals, tangents
            count, lin = bl(lambda c, v: (jnp.int32(1), c * v))(jnp.cos(x), t)
            return jnp.sin(x), lin + 0 * count
        return f
    x = np.linspace(0, 1, 4, dtype=np.float32)
    want = jax.grad(lambda x: make(jax.vmap)(x).sum())(x)
    got = jax.grad(lambda x: make(sb.batch_lower)(x).sum())(x)
    assert_same_tree(got, want, rtol=1e-6, atol=1e-6)
