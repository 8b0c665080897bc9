"""dot_general, differentially against jax.vmap: only the lhs batched, only
the rhs, both, or neither (axis_size), over matrix-vector, vector-matrix,
matmul, batched matmul, outer products and contractions in the middle, with
precision, preferred_element_type and integer / complex / 64-bit dtypes.
"""
from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from batch_cases import SIZES, axis_size_for, check_case, dname, make, x64
from conftest import check_vmap

f32, f64, bf16, f16 = jnp.float32, jnp.float64, jnp.bfloat16, jnp.float16
c64, i32, u32, i8 = jnp.complex64, jnp.int32, jnp.uint32, jnp.int8

# name -> (fn, lhs shape, rhs shape) for one example
PRODUCTS = {
    "matvec": (jnp.dot, (3, 4), (4,)),
    "vecmat": (jnp.dot, (4,), (4, 5)),
    "matmul": (jnp.matmul, (3, 4), (4, 5)),
    "vecvec": (jnp.dot, (4,), (4,)),
    "outer": (jnp.outer, (3,), (4,)),
    "einsum_batched_matmul": (lambda a, b: jnp.einsum("bij,bjk->bik", a, b), (2, 3, 4), (2, 4, 5)),
    "einsum_rhs_transposed": (lambda a, b: jnp.einsum("bij,bkj->bik", a, b), (2, 3, 4), (2, 5, 4)),
    "einsum_middle_contraction": (lambda a, b: jnp.einsum("ijk,jl->ikl", a, b), (2, 3, 4), (3, 5)),
    "tensordot_2": (lambda a, b: jnp.tensordot(a, b, axes=2), (2, 3, 4), (3, 4, 5)),
    "tensordot_to_vector": (lambda a, b: jnp.tensordot(a, b, axes=2), (3, 4, 5), (4, 5)),
    "einsum_batched_matvec": (lambda a, b: jnp.einsum("bij,bj->bi", a, b), (2, 3, 4), (2, 4)),
    "dot_general_batch_last": (lambda a, b: lax.dot_general(a, b, (((0,), (1,)), ((2,), (0,)))),
                               (3, 4, 2), (2, 3, 5)),
}

# (lhs axis, rhs axis): only one side batched, both, at various positions
PATTERNS = [(0, None), (None, 0), (0, 0), (1, None), (None, -1), (-1, 1), (None, None)]
DTYPES = [f32, bf16, i32, c64, f64, f16]


def _params():
    params = []
    for k, ((name, (fn, ls, rs)), pattern) in enumerate(
            itertools.product(PRODUCTS.items(), PATTERNS)):
        if k % 2:  # every other pattern, per product
            continue
        dt = DTYPES[len(params) % len(DTYPES)]
        params.append(pytest.param(fn, ls, rs, pattern, dt, k,
                                   id=f"{name}-{pattern}-{dname(dt)}"))
    return params


@pytest.mark.parametrize("fn,lhs_shape,rhs_shape,pattern,dtype,k", _params())
def test_product(rng, fn, lhs_shape, rhs_shape, pattern, dtype, k):
    check_case(rng, fn, [lhs_shape, rhs_shape], dtype, k, in_axes=pattern, rtol=1e-5,
               atol=1e-5)


@pytest.mark.parametrize("pattern,size", [((0, None), 1), ((None, 0), 3), ((0, 0), 8),
                                          ((None, 1), 1), ((1, None), 8), ((0, 0), 1)])
def test_matmul_every_pattern_and_size(rng, pattern, size):
    lhs = make(rng, (3, 4), f32, pattern[0], size)
    rhs = make(rng, (4, 5), f32, pattern[1], size)
    check_vmap(jnp.matmul, lhs, rhs, in_axes=pattern, out_axes=(0, 1, -1)[size % 3],
               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("pattern", [(None, 0), (None, -1), (0, None)])
@pytest.mark.parametrize("precision", [lax.Precision.HIGHEST,
                                       (lax.Precision.HIGHEST, lax.Precision.DEFAULT)],
                         ids=["highest", "highest_default"])
def test_precision(rng, pattern, precision):
    # (None, 0) on a matrix-vector product swaps the sides (and the precisions).
    lhs = make(rng, (3, 4), f32, pattern[0], 3)
    rhs = make(rng, (4,), f32, pattern[1], 3)
    check_vmap(lambda a, b: jnp.dot(a, b, precision=precision), lhs, rhs, in_axes=pattern,
               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype,preferred,pattern", [
    (bf16, f32, (0, None)), (i8, i32, (None, 1)), (i32, i32, (0, 0)), (f16, f32, (None, 1)),
    (u32, u32, (0, None)), (f32, f64, (0, 0)), (bf16, f32, (None, 0))],
    ids=lambda d: dname(d) if not isinstance(d, tuple) else str(d))
def test_preferred_element_type(rng, dtype, preferred, pattern):
    with x64(dtype, preferred):
        lhs = make(rng, (3, 4), dtype, pattern[0], 3)
        rhs = make(rng, (4, 5), dtype, pattern[1], 3)
        got = check_vmap(lambda a, b: lax.dot(a, b, preferred_element_type=preferred),
                         lhs, rhs, in_axes=pattern, out_axes=-1, rtol=1e-5, atol=1e-5)
        assert got.dtype == jnp.dtype(preferred)


@pytest.mark.parametrize("pattern", [(None, 0), (0, None), (0, 0)])
def test_integer_matvec(rng, pattern):
    lhs = make(rng, (3, 4), i32, pattern[0], 8)
    rhs = make(rng, (4,), i32, pattern[1], 8)
    check_vmap(jnp.dot, lhs, rhs, in_axes=pattern, out_axes=1)


@pytest.mark.parametrize("pattern", [(None, 0), (None, -1)])
def test_int8_matvec_preferred_swapped(rng, pattern):
    # An unbatched matrix times a batched vector swaps the sides; the result
    # type (int32 from int8) must survive the swap.
    lhs = make(rng, (3, 4), i8, pattern[0], 3)
    rhs = make(rng, (4,), i8, pattern[1], 3)
    check_vmap(lambda a, b: lax.dot(a, b, preferred_element_type=i32), lhs, rhs,
               in_axes=pattern, out_axes=-1)


def test_mlp_layer_jit(rng):
    """A weight shared by every example (unbatched) against batched inputs."""
    w = make(rng, (4, 5), f32, None, 8)
    b = make(rng, (5,), f32, None, 8)
    x = make(rng, (2, 4), f32, 0, 8)
    check_vmap(lambda w, b, x: jax.nn.relu(x @ w + b) @ w.T, w, b, x, in_axes=(None, None, 0),
               out_axes=1, jit=True, rtol=1e-5, atol=1e-5)


def test_dot_algorithm_preset(rng):
    lhs = make(rng, (3, 4), f32, None, 3)
    rhs = make(rng, (4,), f32, 0, 3)
    try:
        jax.jit(lambda a, b: jnp.dot(a, b, precision=lax.DotAlgorithmPreset.F32_F32_F32)
                ).lower(lhs, rhs[0]).compile()
    except Exception as e:  # a backend without the algorithm
        pytest.skip(f"algorithm not supported here: {e}")
    check_vmap(lambda a, b: jnp.dot(a, b, precision=lax.DotAlgorithmPreset.F32_F32_F32),
               lhs, rhs, in_axes=(None, 0), rtol=1e-5, atol=1e-5)
