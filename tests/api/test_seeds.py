"""The examples of the two seed tutorials, reproduced literally."""
import itertools

import numpy as np
import pytest

import jax
import jax.numpy as jnp

import stablehlo_batch as sb
from conftest import assert_same_tree, check_vmap


def convolve(x, w):
    output = []
    for i in range(1, len(x) - 1):
        output.append(jnp.dot(x[i - 1:i + 2], w))
    return jnp.array(output)


X = jnp.arange(5)
W = jnp.array([2., 3., 4.])
XS = jnp.stack([X, X])
WS = jnp.stack([W, W])


def test_convolve_unbatched_matches_tutorial():
    np.testing.assert_allclose(convolve(X, W), [11., 20., 29.])


def test_auto_batch_convolve():
    got = check_vmap(convolve, XS, WS)
    np.testing.assert_allclose(got, [[11., 20., 29.], [11., 20., 29.]])


def test_batch_convolve_in_axes_list_0_none():
    got = check_vmap(convolve, XS, W, in_axes=[0, None])
    np.testing.assert_allclose(got, [[11., 20., 29.], [11., 20., 29.]])


def test_batch_convolve_in_axes_tuple_0_none_jitted():
    check_vmap(convolve, XS, W, in_axes=(0, None), jit=True)


def test_jitted_batch_convolve():
    jitted = jax.jit(sb.batch_lower(convolve))
    assert_same_tree(jitted(XS, WS), jax.jit(jax.vmap(convolve))(XS, WS))


def test_square_example():
    check_vmap(lambda x: x * x, jnp.array([1, 2, 3]), in_axes=(0,))


A = jnp.array([[1, 2], [3, 4]])
B = jnp.array([[5, 6], [7, 8]])
AXES = [0, 1, -1, -2, None]


@pytest.mark.parametrize("in_axes", [p for p in itertools.product(AXES, AXES)
                                     if p != (None, None)])
@pytest.mark.parametrize("out_axes", [0, 1])
def test_add_2x2_all_axes(in_axes, out_axes):
    check_vmap(jnp.add, A, B, in_axes=in_axes, out_axes=out_axes)


A5 = jnp.arange(2 * 3 * 5 * 7 * 9).reshape(2, 3, 5, 7, 9)
B5 = -jnp.arange(2 * 3 * 5 * 7 * 9).reshape(2, 3, 5, 7, 9)


@pytest.mark.parametrize("out_axes", [0, 1, 2, 3, 4, 5, -1])
def test_add_5d_none_0(out_axes):
    got = check_vmap(jnp.add, A5, B5, in_axes=(None, 0), out_axes=out_axes)
    want_shape = [2, 3, 5, 7, 9]
    want_shape.insert(out_axes % 6, 2)
    assert got.shape == tuple(want_shape)


def test_add_5d_mismatched_sizes_raises_like_vmap():
    with pytest.raises(ValueError) as vmap_err:
        jax.vmap(jnp.add, in_axes=(0, 1), out_axes=0)(A5, B5)
    with pytest.raises(ValueError, match="inconsistent sizes") as ours:
        sb.batch_lower(jnp.add, in_axes=(0, 1), out_axes=0)(A5, B5)
    assert "size 2" in str(ours.value) and "size 3" in str(ours.value)
    assert "inconsistent sizes" in str(vmap_err.value)
