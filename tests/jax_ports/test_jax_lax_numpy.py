"""Regression tests after the vmap uses in JAX's tests/lax_numpy_test.py (jax-v0.10.2).

testArrayCopyVmap and testArgpartition's value check, which maps
``x[ind]`` over every axis but the partitioned one (nested vmaps with equal
in_axes / out_axes), including an array with a size-0 axis.
"""
from __future__ import annotations

import numpy as np
import pytest

import jax
import jax.numpy as jnp

import stablehlo_batch as sb
from conftest import assert_same_tree, check_vmap


def test_array_copy_returns_a_new_array():
    x = jnp.ones(4)
    y = check_vmap(lambda x: jnp.array(x, copy=True), x)
    assert y is not x


def _values_at(batch, arg, ind, axis):
    getvals = lambda x, i: x[i]
    for ax in range(arg.ndim):
        if ax != range(arg.ndim)[axis]:
            getvals = batch(getvals, in_axes=ax, out_axes=ax)
    return getvals(arg, ind)


@pytest.mark.parametrize("shape,axis,dtype", [((3, 5), -1, np.float32), ((4, 2, 3), 1, np.int32),
                                              ((2, 6), 0, np.uint8)])
def test_argpartition_values_over_every_other_axis(shape, axis, dtype):
    arg = (np.random.default_rng(2).integers(0, 9, shape)).astype(dtype)
    ind = jnp.argpartition(arg, axis=axis, kth=1)
    assert_same_tree(_values_at(sb.batch_lower, arg, ind, axis),
                     _values_at(jax.vmap, arg, ind, axis))


def test_argpartition_values_with_a_size_zero_axis():
    arg = np.zeros((0, 4), np.float32)
    ind = jnp.argpartition(arg, axis=1, kth=1)
    assert_same_tree(_values_at(sb.batch_lower, arg, ind, 1), _values_at(jax.vmap, arg, ind, 1))
