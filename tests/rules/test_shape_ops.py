"""Data-movement ops (broadcast_in_dim, reshape, transpose, slice,
concatenate, pad, reverse, iota / constant, broadcast, get_dimension_size),
differentially against jax.vmap.

Each case runs at a few case numbers ``k``, which rotate the in_axes of
every argument (0 / 1 / -1 / None), the out_axes (0 / 1 / -1), the batch size
(1 / 3 / 8) and the dtype (see batch_cases.check_case).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import stablehlo_batch as sb
from batch_cases import (SIZES, axis_size_for, check_case, check_module, dname, make, x64)
from conftest import check_vmap

f32, f64, bf16, f16 = jnp.float32, jnp.float64, jnp.bfloat16, jnp.float16
c64, i32, u32, BOOL = jnp.complex64, jnp.int32, jnp.uint32, jnp.bool_
ALL = [f32, i32, bf16, BOOL, c64, f64, u32, f16]

# name -> (fn, per-example shapes of the arguments)
CASES = {
    # broadcast_in_dim
    "broadcast_in_dim_row": (lambda x: lax.broadcast_in_dim(x, (2, 3), (1,)), [(3,)]),
    "broadcast_in_dim_unit_dims": (lambda x: lax.broadcast_in_dim(x, (3, 4, 2), (0, 2)), [(3, 1)]),
    "broadcast_in_dim_scalar": (lambda x: lax.broadcast_in_dim(x, (2, 3), ()), [()]),
    "broadcast_to": (lambda x: jnp.broadcast_to(x, (4, 2, 3)), [(2, 1)]),
    "broadcast_prepend": (lambda x: lax.broadcast(x, (2,)), [(3, 2)]),
    "expand_dims": (lambda x: jnp.expand_dims(x, (0, 2)), [(2, 3)]),
    # reshape
    "reshape_merge": (lambda x: x.reshape(6, 4), [(2, 3, 4)]),
    "reshape_split": (lambda x: x.reshape(2, 2, 6), [(4, 6)]),
    "ravel": (jnp.ravel, [(2, 3, 2)]),
    "reshape_scalar": (lambda x: x.reshape(1, 1), [()]),
    "squeeze": (lambda x: jnp.squeeze(x, (0, 2)), [(1, 3, 1)]),
    # transpose
    "transpose_2d": (lambda x: x.T, [(2, 3)]),
    "transpose_3d": (lambda x: lax.transpose(x, (2, 0, 1)), [(2, 3, 4)]),
    "moveaxis": (lambda x: jnp.moveaxis(x, 0, -1), [(2, 3, 4)]),
    "swapaxes": (lambda x: jnp.swapaxes(x, 0, 2), [(2, 3, 4)]),
    # slice
    "slice_strided": (lambda x: lax.slice(x, (0, 1), (4, 5), (2, 2)), [(4, 6)]),
    "slice_basic": (lambda x: x[1:3, ::2], [(4, 5)]),
    "slice_in_dim": (lambda x: lax.slice_in_dim(x, 1, 7, stride=3, axis=1), [(2, 8)]),
    "split": (lambda x: tuple(jnp.split(x, 3, axis=1)), [(2, 6)]),
    # reverse
    "reverse": (lambda x: lax.rev(x, (0,)), [(3, 4)]),
    "flip_all": (lambda x: jnp.flip(x), [(2, 3, 2)]),
    "negative_stride": (lambda x: x[::-2, 1:], [(5, 3)]),
    # concatenate
    "concatenate_2": (lambda x, y: jnp.concatenate([x, y], axis=0), [(2, 3), (4, 3)]),
    "concatenate_3_axis1": (lambda x, y, z: lax.concatenate([x, y, z], 1),
                            [(2, 1), (2, 3), (2, 2)]),
    "stack": (lambda x, y: jnp.stack([x, y, x], axis=1), [(2, 3), (2, 3)]),
    "roll": (lambda x: jnp.roll(x, 2, axis=1), [(2, 5)]),
    "tile": (lambda x: jnp.tile(x, (2, 1)), [(2, 3)]),
    "repeat": (lambda x: jnp.repeat(x, 2, axis=0), [(2, 3)]),
    # constant pad (the padding value is a constant)
    "pad_const": (lambda x: jnp.pad(x, ((1, 2), (0, 1))), [(2, 3)]),
    # iota and constants mixed with batched values
    "iota_add": (lambda x: x + lax.iota(x.dtype, 3), [(2, 3)]),
    "arange_mul": (lambda x: x * jnp.arange(6, dtype=x.dtype).reshape(2, 3), [(2, 3)]),
    "constant_concat": (lambda x: jnp.concatenate([x, jnp.ones((1, 3), x.dtype)]), [(2, 3)]),
}
# Cases whose ops do not take every dtype.
NO_BOOL = {"iota_add", "arange_mul"}


def _params(reps=1):
    params, k = [], 0
    for name, (fn, shapes) in CASES.items():
        for _ in range(reps):
            dts = [d for d in ALL if not (name in NO_BOOL and d == BOOL)]
            dt = dts[k % len(dts)]
            params.append(pytest.param(fn, shapes, dt, k, id=f"{name}-{dname(dt)}-k{k}"))
            k += 1
    return params


@pytest.mark.parametrize("fn,shapes,dtype,k", _params())
def test_shape_op(rng, fn, shapes, dtype, k):
    check_case(rng, fn, shapes, dtype, k)


# ---- concatenate with explicit batched / unbatched mixes -------------------
@pytest.mark.parametrize("in_axes,size,axis", [((0, None, None), 3, 0), ((None, 1, None), 8, 1),
                                               ((None, None, -1), 1, 0), ((0, 1, -1), 3, 1),
                                               ((None, 0, 0), 8, 0)])
def test_concatenate_mixed(rng, in_axes, size, axis):
    shapes = [(2, 3), (2, 3), (2, 3)]
    args = [make(rng, s, f32, ax, size) for s, ax in zip(shapes, in_axes)]
    check_vmap(lambda *a: jnp.concatenate(a, axis=axis), *args, in_axes=in_axes,
               out_axes=(0, 1, -1)[size % 3])


# ---- pad, with the padding value traced -------------------------------------
PAD_CONFIGS = [
    [(1, 2, 0), (0, 1, 0)],       # edge padding
    [(0, 0, 1), (2, 0, 2)],       # interior
    [(-1, 2, 1), (2, -1, 0)],     # negative edges with interior
    [(-2, -1, 0), (1, 1, 1)],     # negative edges only cut
]
PAD_AXES = [(0, None), (None, 0), (0, 0), (1, -1), (-1, None), (None, -1)]
PAD_DTYPES = [f32, i32, BOOL, bf16, f64, u32, c64, f16]


@pytest.mark.parametrize("k", range(8))
def test_pad_traced_value(rng, k):
    config = PAD_CONFIGS[k % len(PAD_CONFIGS)]
    in_axes = PAD_AXES[k % len(PAD_AXES)]
    dtype = PAD_DTYPES[k % len(PAD_DTYPES)]
    size = SIZES[k % 3]
    with x64(dtype):
        x = make(rng, (4, 3), dtype, in_axes[0], size)
        pv = make(rng, (), dtype, None if in_axes[1] is None else 0, size)
        check_vmap(lambda a, v: lax.pad(a, v, config), x, pv, in_axes=in_axes,
                   out_axes=(0, 1, -1)[k % 3])


@pytest.mark.parametrize("dtype", [c64, f32, BOOL], ids=dname)
def test_pad_batched_value_only(rng, dtype):
    """Only the padding value is batched: the data is padded once, unbatched."""
    x = make(rng, (2, 3), dtype, None, 3)
    pv = make(rng, (), dtype, 0, 3)
    check_vmap(lambda a, v: lax.pad(a, v, [(1, 0, 1), (0, 2, 0)]), x, pv, in_axes=(None, 0))


def test_pad_value_computed_from_batched_data(rng):
    x = make(rng, (3, 4), f32, 1, 8)
    check_vmap(lambda a: lax.pad(a, jnp.max(a), [(1, 1, 0), (-1, 2, 1)]), x, in_axes=1,
               out_axes=-1)


# ---- nothing batched: axis_size gives the size --------------------------------
@pytest.mark.parametrize("out_axes,size", [(0, 1), (1, 3), (-1, 8)])
def test_unbatched_inputs_with_axis_size(rng, out_axes, size):
    x = make(rng, (2, 3), f32, None, size)
    check_vmap(lambda a: (a.T @ a + jnp.arange(3.0), jnp.ones((2,))), x, in_axes=None,
               out_axes=out_axes, axis_size=size)


@pytest.mark.parametrize("size", [1, 3])
def test_only_constants(size):
    check_vmap(lambda: (jnp.arange(4), jnp.eye(2, dtype=jnp.bfloat16)), in_axes=(),
               axis_size=size, out_axes=(0, 1))


def test_constant_result_with_batched_input(rng):
    x = make(rng, (3,), f32, 0, 3)
    check_vmap(lambda a: (a * 2, jnp.full((2,), 7, jnp.int32)), x, out_axes=(0, -1))


def test_shape_ops_chain_jit(rng):
    x = make(rng, (2, 3, 4), f32, 2, 8)
    y = make(rng, (4,), f32, None, 8)

    def fn(a, b):
        a = jnp.transpose(a, (2, 0, 1)).reshape(4, 6)[::-1, 1::2]
        return jnp.concatenate([a, jnp.broadcast_to(b[:, None], (4, 2))], axis=1)
    check_vmap(fn, x, y, in_axes=(2, None), out_axes=1, jit=True)


# ---- ops jax does not emit directly: hand-written modules ----------------------
BROADCAST = """
func.func public @main(%a: tensor<2x3xf32>) -> tensor<4x5x2x3xf32> {
  %0 = stablehlo.broadcast %a, sizes = [4, 5] : (tensor<2x3xf32>) -> tensor<4x5x2x3xf32>
  return %0 : tensor<4x5x2x3xf32>
}"""

GET_DIMENSION_SIZE = """
func.func public @main(%a: tensor<2x3xf32>) -> (tensor<2x3xf32>, tensor<i32>) {
  %0 = stablehlo.get_dimension_size %a, dim = 1 : (tensor<2x3xf32>) -> tensor<i32>
  %1 = stablehlo.convert %0 : (tensor<i32>) -> tensor<f32>
  %2 = stablehlo.broadcast_in_dim %1, dims = [] : (tensor<f32>) -> tensor<2x3xf32>
  %3 = stablehlo.multiply %a, %2 : tensor<2x3xf32>
  return %3, %0 : tensor<2x3xf32>, tensor<i32>
}"""


@pytest.mark.parametrize("in_axis,out_axis,size", [(0, 0, 3), (1, -1, 8), (-1, 2, 1)])
def test_broadcast_module(rng, in_axis, out_axis, size):
    x = make(rng, (2, 3), f32, in_axis, size)
    check_module(BROADCAST, [x], [in_axis], [out_axis], size)


@pytest.mark.parametrize("in_axis,out_axes,size", [(0, [0, 0], 3), (1, [-1, 0], 8)])
def test_get_dimension_size_module(rng, in_axis, out_axes, size):
    x = make(rng, (2, 3), f32, in_axis, size)
    got = check_module(GET_DIMENSION_SIZE, [x], [in_axis], out_axes, size)
    np.testing.assert_array_equal(got[1], np.full((size,), 3, np.int32))
