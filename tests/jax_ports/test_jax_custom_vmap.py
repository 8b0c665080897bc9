"""custom_vmap under batch_lower, after the ideas of JAX's tests/custom_api_test.py
(CustomVmapTest, jax-v0.10.2).

A ``jax.custom_batching.custom_vmap`` function lowers to its own body; its
rule is Python that the module does not hold. jax.vmap runs the rule, so where
the rule may compute something else, batch_lower refuses with
UnsupportedOpError (never the body's values in place of the rule's).
``sequential_vmap`` (a loop of the body over the lanes) and our own
``vmappable`` (the module batched by this rewrite) batch like their bodies.
"""
from __future__ import annotations

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
    with pytest.raises(sb.UnsupportedOpError, match=r"custom_vmap.*test_jax_custom_vmap.py:\d+"):
        sb.batch_lower(g)(XS)


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
