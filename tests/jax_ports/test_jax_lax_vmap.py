"""Regression tests after the ideas of JAX's tests/lax_vmap_test.py (jax-v0.10.2).

One lax primitive per case (a few cases group related ones to keep the
compile count low), batched along different axes with unbatched operands
mixed in, compared with jax.vmap by ``check_vmap``.
"""
from __future__ import annotations

from functools import partial

import numpy as np
import pytest

import jax
import jax.numpy as jnp
from jax import lax

from conftest import check_vmap

R = np.random.default_rng(1)


def randn(*shape, dtype=np.float32):
    return R.standard_normal(shape).astype(dtype)


def with_batch(x, axis, size=3):
    """``size`` copies-with-noise of ``x`` stacked along ``axis`` (None: ``x`` itself)."""
    if axis is None:
        return x
    xs = np.stack([x + np.asarray(i, x.dtype) for i in range(size)], axis=axis)
    return xs.astype(x.dtype)


@pytest.mark.parametrize("lhs_bdim,rhs_bdim,groups", [
    (0, None, (1, 1)), (None, 3, (1, 1)), (2, 1, (1, 2)), (1, 0, (2, 1)),
])
def test_conv_general_dilated_with_groups(lhs_bdim, rhs_bdim, groups):
    batch_group_count, feature_group_count = groups
    lhs = randn(2 * batch_group_count, 2 * feature_group_count, 6, 7)
    rhs = randn(2 * batch_group_count * feature_group_count, 2, 1, 2)
    conv = partial(lax.conv_general_dilated, window_strides=(1, 1), padding=((0, 0), (0, 0)),
                   lhs_dilation=(1, 1), rhs_dilation=(1, 1),
                   dimension_numbers=("NCHW", "OIHW", "NCHW"),
                   feature_group_count=feature_group_count, batch_group_count=batch_group_count)
    check_vmap(conv, with_batch(lhs, lhs_bdim), with_batch(rhs, rhs_bdim),
               in_axes=(lhs_bdim, rhs_bdim), rtol=1e-5, atol=1e-5)


def test_element_type_conversions():
    def f(x):
        return (lax.convert_element_type(x, np.int32), lax.reduce_precision(x, 3, 4),
                lax.bitcast_convert_type(x, np.int8), lax.bitcast_convert_type(x, np.uint32))
    check_vmap(f, randn(3, 2, 4), in_axes=1)


def test_bitcast_to_a_wider_type_drops_the_last_dimension():
    check_vmap(lambda x: lax.bitcast_convert_type(x, np.float32), np.arange(24, dtype=np.int8)
               .reshape(2, 3, 4), in_axes=1)


@pytest.mark.parametrize("in_axes", [(None, 0, None), (0, 1, None), (0, 0, 0)])
def test_clamp_with_scalar_or_array_bounds(in_axes):
    x = randn(3, 4)
    lo = np.float32(-0.5) if in_axes[0] is None else randn(3, 4) - 1
    hi = np.float32(0.5) if in_axes[2] is None else randn(3, 4) + 1
    check_vmap(lax.clamp, lo, x.T if in_axes[1] == 1 else x, hi, in_axes=in_axes)


@pytest.mark.parametrize("bdims", [(0, None), (None, 1), (2, 0)])
def test_dot_general_contract_and_batch(bdims):
    dn = (((2,), (1,)), ((0,), (0,)))
    lhs, rhs = randn(2, 3, 4), randn(2, 4, 5)
    check_vmap(lambda a, b: lax.dot_general(a, b, dn), with_batch(lhs, bdims[0]),
               with_batch(rhs, bdims[1]), in_axes=bdims, rtol=1e-5, atol=1e-5)


def test_shape_ops_on_a_middle_batch_axis():
    def f(x):
        return (lax.broadcast(x, (2,)), lax.broadcast_in_dim(x[:, :1], (2, 4, 5), (0, 2))[:, 0],
                lax.squeeze(x[:1], (0,)), lax.reshape(x, (5, 2), dimensions=(1, 0)),
                lax.pad(x, np.float32(0), [(-1, 2, 0), (1, -2, 1)]),
                lax.slice(x, (0, 1), (2, 5), (1, 2)), lax.transpose(x, (1, 0)),
                lax.split(x, (2, 3), axis=1))
    check_vmap(f, randn(2, 3, 5), in_axes=1, out_axes=-1)


def test_stack_and_unstack():
    check_vmap(lambda x, y: jnp.stack([x, y], axis=1), randn(3, 4), randn(4, 3), in_axes=(0, 1))
    check_vmap(lambda x: list(jnp.unstack(x, axis=1)), randn(2, 3, 4), in_axes=1)


@pytest.mark.parametrize("pred_bdim,arg_bdim", [(None, 0), (0, None), (1, 0)])
def test_select_n_with_array_predicate(pred_bdim, arg_bdim):
    pred = R.random((3, 4)) > 0.5
    a, b = randn(3, 4), randn(3, 4)
    pred_b = pred if pred_bdim is None else np.stack([pred, ~pred, pred], axis=pred_bdim)
    check_vmap(lax.select, pred_b, with_batch(a, arg_bdim), b,
               in_axes=(pred_bdim, arg_bdim, None))


@pytest.mark.parametrize("dtype", [np.float32, np.int32])
def test_reductions_and_argminmax(dtype):
    def f(x):
        return (lax.reduce(x, np.array(0, dtype), lax.add, (0,)),
                lax.reduce(x, np.array(np.iinfo(np.int32).min if dtype == np.int32 else -np.inf,
                                       dtype), lax.max, (1,)),
                lax.argmin(x, 0, np.int32), lax.argmax(x, 1, np.int32))
    x = randn(3, 4, 5) * 10
    check_vmap(f, x.astype(dtype), in_axes=2, rtol=1e-5, atol=1e-5)


def test_variadic_reduce():
    def f(x, y):
        def body(a, b):
            return a[0] + b[0], lax.max(a[1], b[1])
        return lax.reduce((x, y), (np.float32(0), np.int32(np.iinfo(np.int32).min)), body, (1,))
    check_vmap(f, randn(3, 4, 5), np.arange(60, dtype=np.int32).reshape(4, 5, 3) % 7,
               in_axes=(0, 2))


@pytest.mark.parametrize("padding", ["VALID", "SAME"])
def test_reduce_window_strided(padding):
    check_vmap(lambda x: lax.reduce_window(x, -np.inf, lax.max, (2, 3), (1, 2), padding),
               randn(4, 5, 3), in_axes=2)


@pytest.mark.parametrize("op,reverse", [(lax.cummax, False), (lax.cumsum, True),
                                        (lax.cumlogsumexp, False)])
def test_cumulative_reductions(op, reverse):
    check_vmap(partial(op, axis=1, reverse=reverse), randn(3, 4, 5), in_axes=1, rtol=1e-5,
               atol=1e-5)


def test_select_and_gather_add_and_select_and_scatter_add():
    # jvp of a max pool uses select_and_gather_add; its vjp select_and_scatter_add.
    pool = lambda x: lax.reduce_window(x, -np.inf, lax.max, (2, 2), (1, 1), "SAME")
    x, t = randn(3, 4, 5), randn(3, 4, 5)
    check_vmap(lambda x, t: jax.jvp(pool, (x,), (t,)), x, t)
    check_vmap(lambda x, c: jax.vjp(pool, x)[1](c)[0], x, t.transpose(1, 0, 2), in_axes=(0, 1))


@pytest.mark.parametrize("fft_type,fft_lengths", [("FFT", (4,)), ("RFFT", (4, 6))])
def test_fft_with_batched_second_axis(fft_type, fft_lengths):
    x = randn(4, 3, 6)
    if fft_type == "FFT":
        x = (x + 1j * randn(4, 3, 6)).astype(np.complex64)[..., :4]
    check_vmap(lambda x: lax.fft(x, fft_type, fft_lengths), x, in_axes=1, rtol=1e-4, atol=1e-4)


_OPERAND_BATCHED_GATHER = lax.GatherDimensionNumbers(
    offset_dims=(2,), collapsed_slice_dims=(), start_index_map=(2,),
    operand_batching_dims=(0, 1), start_indices_batching_dims=(1, 0))


@pytest.mark.parametrize("bdims", [(0, None), (None, 1), (2, 0)])
def test_gather_with_its_own_batching_dims(bdims):
    operand, idxs = randn(2, 3, 10), np.array([[[0], [1]], [[2], [3]], [[4], [5]]], np.int32)
    fun = partial(lax.gather, dimension_numbers=_OPERAND_BATCHED_GATHER, slice_sizes=(1, 1, 3))
    check_vmap(fun, with_batch(operand, bdims[0]), with_batch(idxs, bdims[1]), in_axes=bdims)


def test_gather_batch_size_zero():
    operand, idxs = np.zeros((0, 2, 3, 10), np.float32), np.zeros((0, 3, 2, 1), np.int32)
    fun = partial(lax.gather, dimension_numbers=_OPERAND_BATCHED_GATHER, slice_sizes=(1, 1, 3))
    check_vmap(fun, operand, idxs)


_OPERAND_BATCHED_SCATTER = lax.ScatterDimensionNumbers(
    update_window_dims=(2,), inserted_window_dims=(), scatter_dims_to_operand_dims=(2,),
    operand_batching_dims=(0, 1), scatter_indices_batching_dims=(1, 0))


@pytest.mark.parametrize("bdims", [(0, None, None), (None, 1, 0), (1, 0, 2)])
def test_scatter_add_with_its_own_batching_dims(bdims):
    operand, upd = randn(2, 3, 10), randn(3, 2, 3)
    idxs = np.array([[[0], [1]], [[2], [3]], [[4], [5]]], np.int32)
    fun = partial(lax.scatter_add, dimension_numbers=_OPERAND_BATCHED_SCATTER)
    check_vmap(fun, with_batch(operand, bdims[0]), with_batch(idxs, bdims[1]),
               with_batch(upd, bdims[2]), in_axes=bdims, rtol=1e-5, atol=1e-5)


def test_scatter_apply():
    dn = lax.ScatterDimensionNumbers(update_window_dims=(), inserted_window_dims=(0,),
                                     scatter_dims_to_operand_dims=(0,))
    fun = partial(lax.scatter_apply, func=jnp.sin, update_shape=(2,), dimension_numbers=dn)
    check_vmap(fun, randn(5, 3), np.array([[[0], [2]], [[1], [1]], [[4], [0]]], np.int32),
               in_axes=(1, 0), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("axis", [-1, 0])
def test_top_k_values_and_indices(axis):
    x = R.permutation(60).astype(np.float32).reshape(3, 4, 5)
    check_vmap(lambda x: lax.top_k(x, 2, axis=axis), x, in_axes=1)


def test_optimization_barrier_with_tuple_axes():
    x = np.arange(8, dtype=np.int32)
    check_vmap(lax.optimization_barrier, (x, x.reshape(1, 8)), in_axes=((0, 1),), out_axes=(0, 1))


@pytest.mark.parametrize("bdims,is_stable", [((0, 1), True), ((None, 0), False)])
def test_sort_several_operands(bdims, is_stable):
    a, b = randn(2, 3), randn(2, 3)
    check_vmap(lambda *xs: lax.sort(xs, dimension=0, is_stable=is_stable, num_keys=1),
               with_batch(a, bdims[0]), with_batch(b, bdims[1]), in_axes=bdims)


def test_variadic_reduce_window_picking_indices():
    def normpool(x):
        norms = jnp.linalg.norm(x, axis=-1)
        idxs = jnp.arange(x.shape[0])

        def pick(a, b):
            which = a[0] >= b[0]
            return jnp.where(which, a[0], b[0]), jnp.where(which, a[1], b[1])
        _, idxs = lax.reduce_window((norms, idxs), (-jnp.inf, jnp.array(-1, idxs.dtype)), pick,
                                    (2,), (2,), ((0, 0),))
        return x[idxs]
    check_vmap(normpool, randn(2, 4, 3))


@pytest.mark.parametrize("in_axes,out_axes", [(0, -1), (-1, 1)])
def test_tile(in_axes, out_axes):
    check_vmap(lambda x: lax.tile(x, (1, 2, 3)), with_batch(randn(2, 1, 3), in_axes),
               in_axes=in_axes, out_axes=out_axes)
