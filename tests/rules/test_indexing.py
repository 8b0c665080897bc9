"""Differential tests of gather, scatter, dynamic_slice and
dynamic_update_slice against jax.vmap: every mix of batched operand,
indices and updates, the jnp spellings that lower to them (take,
take_along_axis, fancy indexing, ``x.at[i].set/add/mul/min/max/get``,
segment_sum, embedding lookups), and IR checks that an unbatched table
stays unbatched and unbatched start indices keep a plain dynamic slice.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import stablehlo_batch as sb
from batch_cases import SIZES, axis_size_for, make
from conftest import check_vmap

f32, i32, f64 = jnp.float32, jnp.int32, jnp.float64

# (operand, indices, updates) in_axes: every batched / unbatched mix.
MIXES = [(0, None, None), (None, 0, None), (None, None, 0), (0, 0, None),
         (0, None, 0), (None, 0, 0), (0, 0, 0), (1, -1, 1)]


def _indices(rng, shape, hi, axis, size):
    full = list(shape)
    if axis is not None:
        full.insert(axis % (len(full) + 1), size)
    return jnp.asarray(rng.integers(0, hi, full), i32)


AT_OPS = {
    "set": lambda x, i, u: x.at[i].set(u),
    "add": lambda x, i, u: x.at[i].add(u),
    "mul": lambda x, i, u: x.at[i].multiply(u),
    "min": lambda x, i, u: x.at[i].min(u),
    "max": lambda x, i, u: x.at[i].max(u),
}


@pytest.mark.parametrize("k,name", list(enumerate(AT_OPS)) + [(5 + k, n) for k, n in
                                                              enumerate(AT_OPS)])
def test_at_update(rng, k, name):
    """Scatter with each update computation, every operand mix, repeated
    indices (so the combiner matters), float and integer values."""
    ax = MIXES[k % len(MIXES)]
    size = SIZES[k % 3]
    dtype = (f32, i32)[k % 2]
    x = make(rng, (6, 3), dtype, ax[0], size)
    i = _indices(rng, (4,), 6, ax[1], size)
    u = make(rng, (4, 3), dtype, ax[2], size)
    check_vmap(AT_OPS[name], x, i, u, in_axes=ax, out_axes=(0, 1, -1)[k % 3],
               axis_size=axis_size_for(ax, size))


@pytest.mark.parametrize("k", range(len(MIXES)))
def test_at_get_and_fancy_indexing(rng, k):
    ax = MIXES[k][:2]
    size = SIZES[k % 3]
    x = make(rng, (5, 4, 3), f32, ax[0], size)
    i = _indices(rng, (2,), 5, ax[1], size)
    j = jnp.asarray([3, 0], i32)
    check_vmap(lambda a, b: (a.at[b].get(mode="fill", fill_value=-1.0), a[b, j], a[:, b]),
               x, i, in_axes=ax, out_axes=(0, 1, -1)[k % 3], axis_size=axis_size_for(ax, size))


@pytest.mark.parametrize("mode", ["clip", "fill", "wrap"])
@pytest.mark.parametrize("ax,size", [((0, None), 3), ((None, 0), 1), ((1, 0), 3)])
def test_take_modes_out_of_bounds(rng, mode, ax, size):
    """Out-of-range indices keep their per-lane clamping / filling."""
    x = make(rng, (4, 5), f32, ax[0], size)
    i = jnp.asarray(rng.integers(-6, 9, (size, 3) if ax[1] is not None else (3,)), i32)
    check_vmap(lambda a, b: jnp.take(a, b, axis=0, mode=mode), x, i, in_axes=ax)


@pytest.mark.parametrize("ax,size", [((0, 0), 3), ((None, 1), 1), ((1, None), 8)])
def test_take_along_axis(rng, ax, size):
    x = make(rng, (4, 5), f32, ax[0], size)
    i = _indices(rng, (4, 2), 5, ax[1], size)
    check_vmap(lambda a, b: jnp.take_along_axis(a, b, axis=1), x, i, in_axes=ax,
               out_axes=-1)


@pytest.mark.parametrize("ax,size", [((0, None), 3), ((None, 0), 3), ((0, 0), 1)])
def test_segment_sum(rng, ax, size):
    data = make(rng, (6, 2), f32, ax[0], size)
    seg = _indices(rng, (6,), 4, ax[1], size)
    check_vmap(lambda d, s: (jax.ops.segment_sum(d, s, num_segments=4),
                             jax.ops.segment_max(d, s, num_segments=4)),
               data, seg, in_axes=ax)


@pytest.mark.parametrize("sorted_", [True, False])
def test_segment_sum_sorted_flag(rng, sorted_):
    """indices_are_sorted holds per lane but not across interleaved lanes."""
    data = make(rng, (6,), f32, 0, 3)
    seg = jnp.sort(_indices(rng, (6,), 4, 0, 3), axis=1)
    check_vmap(lambda d, s: jax.ops.segment_sum(d, s, num_segments=4,
                                                indices_are_sorted=sorted_), data, seg)


def test_embedding_table_stays_unbatched(rng):
    table = make(rng, (10, 4), f32, None, 3)
    ids = _indices(rng, (5,), 10, 0, 3)
    fn = lambda t, i: t[i].sum(0)
    check_vmap(fn, table, ids, in_axes=(None, 0))
    text = sb.batch_lower(fn, in_axes=(None, 0)).lower(table, ids).as_text()
    gathers = [l for l in text.splitlines() if "stablehlo.gather" in l]
    assert gathers and all("(tensor<10x4xf32>, tensor<3x5x1xi32>)" in l for l in gathers), gathers
    assert "tensor<3x10x4xf32>" not in text


@pytest.mark.parametrize("k", range(6))
def test_dynamic_slice_mixes(rng, k):
    """Per-lane start indices (a gather) with the original clamping, and
    unbatched ones (a plain dynamic slice)."""
    x_ax, i_ax, j_ax = [(0, None, None), (None, 0, None), (0, 0, 0), (1, None, 0),
                        (None, 0, 0), (-1, 0, None)][k]
    size = SIZES[k % 3]
    dtype = (f32, i32)[k % 2]
    x = make(rng, (6, 5), dtype, x_ax, size)
    i = jnp.asarray(rng.integers(-3, 9, (size,) if i_ax is not None else ()), i32)
    j = jnp.asarray(rng.integers(-3, 9, (size,) if j_ax is not None else ()), i32)
    check_vmap(lambda a, p, q: lax.dynamic_slice(a, (p, q), (3, 2)), x, i, j,
               in_axes=(x_ax, i_ax, j_ax), out_axes=(0, 1, -1)[k % 3],
               axis_size=axis_size_for((x_ax, i_ax, j_ax), size))


@pytest.mark.parametrize("k", range(6))
def test_dynamic_update_slice_mixes(rng, k):
    ax = [(0, None, None), (None, 0, None), (None, None, 0), (0, 0, 0), (1, None, 0),
          (None, 1, 0)][k]
    size = SIZES[k % 3]
    x = make(rng, (6, 5), f32, ax[0], size)
    u = make(rng, (3, 2), f32, ax[1], size)
    i = jnp.asarray(rng.integers(-3, 9, (size,) if ax[2] is not None else ()), i32)
    check_vmap(lambda a, b, p: lax.dynamic_update_slice(a, b, (p, 4)), x, u, i,
               in_axes=ax, out_axes=(0, 1, -1)[k % 3])


def test_dynamic_slice_unbatched_index_stays_slice(rng):
    x = make(rng, (6, 5), f32, 0, 3)
    fn = lambda a, p: lax.dynamic_slice(a, (p, 1), (2, 2))
    text = sb.batch_lower(fn, in_axes=(0, None)).lower(x, jnp.int32(2)).as_text()
    assert "stablehlo.dynamic_slice" in text and "stablehlo.gather" not in text


def test_gather_f64_batched_operand_and_indices(rng):
    with jax.enable_x64(True):
        x = make(rng, (5, 3), f64, 0, 3)
        i = _indices(rng, (2,), 5, 0, 3)
        check_vmap(lambda a, b: a[b] * 2, x, i)


def test_scatter_custom_combiner(rng):
    """A scatter whose update computation is not a single op (from a
    user-written lax.scatter_apply)."""
    x = make(rng, (5,), f32, 0, 3)
    i = _indices(rng, (3, 1), 5, None, 3)
    dn = lax.ScatterDimensionNumbers(update_window_dims=(), inserted_window_dims=(0,),
                                     scatter_dims_to_operand_dims=(0,))
    check_vmap(lambda a, b: lax.scatter_apply(a, b, lambda v: v * v + 1.0, dn,
                                              update_shape=(3,)), x, i, in_axes=(0, None))


@pytest.mark.parametrize("axis_size", [None, "b"])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.int32])
def test_scalar_dynamic_slice_any_size(axis_size, dtype):
    """A dynamic_slice of a scalar (no start indices) is the scalar: the rule
    returns the operand, also at a symbolic batch size, where it once raised
    an IndexError (stablehlo-batch-opt --axis-size=abc, make fuzz stop 21)."""
    x = jnp.arange(3, dtype=dtype) * 2
    w = jnp.asarray(5, dtype)
    fn = lambda x, w: lax.dynamic_slice(x * w, [], [])  # noqa: E731
    for in_axes in ((0, None), (0, 0)):
        ws = w if in_axes[1] is None else jnp.stack([w, w + 1, w + 2])
        got = sb.batch_lower(fn, in_axes=in_axes, axis_size=axis_size)(x, ws)
        np.testing.assert_array_equal(got, jax.vmap(fn, in_axes=in_axes)(x, ws))
    text = sb.batch_module("""
      func.func @main(%x: tensor<f32>) -> tensor<f32> {
        %0 = stablehlo.dynamic_slice %x, sizes = [] : (tensor<f32>) -> tensor<f32>
        return %0 : tensor<f32>
      }""", [0], [0], axis_size or 3)
    assert "dynamic_slice" not in text
