"""Shared test helpers: the differential oracle against jax.vmap."""
from __future__ import annotations

import numpy as np
import pytest

import jax
import jax.numpy as jnp
from jax import tree_util

import stablehlo_batch as sb


def assert_same_tree(got, want, *, rtol=1e-6, atol=1e-6):
    """Same pytree structure, shapes, dtypes and (numerically) values."""
    got_leaves, got_tree = tree_util.tree_flatten(got)
    want_leaves, want_tree = tree_util.tree_flatten(want)
    assert got_tree == want_tree, f"tree {got_tree} != {want_tree}"
    for g, w in zip(got_leaves, want_leaves):
        g, w = jnp.asarray(g), jnp.asarray(w)
        assert g.shape == w.shape, f"shape {g.shape} != {w.shape}"
        assert g.dtype == w.dtype, f"dtype {g.dtype} != {w.dtype}"
        if jnp.issubdtype(w.dtype, jnp.inexact):
            tol = dict(rtol=rtol, atol=atol)
            if w.dtype in (jnp.bfloat16, jnp.float16):
                tol = dict(rtol=2e-2, atol=2e-2)
            np.testing.assert_allclose(np.asarray(g, np.complex128 if jnp.iscomplexobj(w) else np.float64),
                                       np.asarray(w, np.complex128 if jnp.iscomplexobj(w) else np.float64),
                                       equal_nan=True, **tol)
        else:
            np.testing.assert_array_equal(np.asarray(g), np.asarray(w))


def check_vmap(fn, *args, in_axes=0, out_axes=0, axis_size=None, rtol=1e-6, atol=1e-6,
               jit=False, **kwargs):
    """batch_lower(fn) agrees with jax.vmap(fn) on ``args``; returns the result."""
    want = jax.vmap(fn, in_axes=in_axes, out_axes=out_axes, axis_size=axis_size)(*args, **kwargs)
    batched = sb.batch_lower(fn, in_axes=in_axes, out_axes=out_axes, axis_size=axis_size)
    got = batched(*args, **kwargs)
    assert_same_tree(got, want, rtol=rtol, atol=atol)
    if jit:
        got_jit = jax.jit(lambda *a, **k: batched(*a, **k))(*args, **kwargs)
        assert_same_tree(got_jit, want, rtol=rtol, atol=atol)
    return got


def random_array(rng: np.random.Generator, shape, dtype):
    """Random values that suit ``dtype`` (small ints, unit-range floats).
    Made by numpy and put on the device: jnp.asarray would compile an XLA
    convert_element_type (or stage) for every new shape (the generated programs make
    hundreds)."""
    dtype = jnp.dtype(dtype)
    if dtype == jnp.bool_:
        return jax.device_put(rng.random(shape) > 0.5)
    if jnp.issubdtype(dtype, jnp.unsignedinteger):
        return jax.device_put(np.asarray(rng.integers(0, 10, shape)).astype(dtype))
    if jnp.issubdtype(dtype, jnp.integer):
        return jax.device_put(np.asarray(rng.integers(-10, 10, shape)).astype(dtype))
    if jnp.issubdtype(dtype, jnp.complexfloating):
        return jax.device_put((rng.standard_normal(shape) + 1j * rng.standard_normal(shape))
                           .astype(dtype))
    return jax.device_put(np.asarray(rng.standard_normal(shape)).astype(dtype))


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def rule_override():
    """``rule_override(name, rule)`` registers a batching rule (an op name or
    a custom call target) in this test's context until the test ends;
    ``rule=None`` takes the rule away (the op then has the per-lane
    fallback, as an op with no rule does)."""
    from stablehlo_batch.passes.fallback import fallback
    registrations = []

    def override(name, rule, **kwargs):
        registrations.append(sb.register_rule(name, fallback if rule is None else rule,
                                              **kwargs))
        return registrations[-1]  # .remove() ends it early
    yield override
    for registration in reversed(registrations):
        registration.remove()
