"""Program structure: func.call (a nested jax.jit lowers to a call of a private
function), stablehlo.composite, optimization_barrier and tuples,
differentially against jax.vmap.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import stablehlo_batch as sb
from batch_cases import SIZES, axis_size_for, check_module, make, x64
from conftest import assert_same_tree, check_vmap

f32, f64, i32, c64, bf16 = jnp.float32, jnp.float64, jnp.int32, jnp.complex64, jnp.bfloat16


@jax.jit
def _affine(a, b):
    """Two results: one depends on both arguments, one on b only."""
    return a * 2.0 + b, jnp.sin(b)


def _two_call_sites(x, y):
    # The same private callee, called with (x, y) and with (y, y): when only
    # x is batched the two sites need different batched clones.
    p, q = _affine(x, y)
    r, s = _affine(y, y)
    return p + r, q * s


@jax.jit
def _outer_callee(a, b):
    return _affine(a, b)[0] @ b.T  # a call inside a callee


CALL_AXES = [(0, None), (None, 0), (0, 0), (1, -1), (-1, None), (None, None)]


@pytest.mark.parametrize("k,in_axes", list(enumerate(CALL_AXES)), ids=str)
def test_call_patterns(rng, k, in_axes):
    size = SIZES[k % 3]
    x = make(rng, (2, 3), f32, in_axes[0], size)
    y = make(rng, (2, 3), f32, in_axes[1], size)
    check_vmap(_affine, x, y, in_axes=in_axes, out_axes=((0, 1, -1)[k % 3], -1),
               axis_size=axis_size_for(in_axes, size))


@pytest.mark.parametrize("k,in_axes", list(enumerate(CALL_AXES)), ids=str)
def test_same_callee_two_call_sites(rng, k, in_axes):
    size = SIZES[(k + 1) % 3]
    x = make(rng, (2, 3), f32, in_axes[0], size)
    y = make(rng, (2, 3), f32, in_axes[1], size)
    check_vmap(_two_call_sites, x, y, in_axes=in_axes, out_axes=(1, 0),
               axis_size=axis_size_for(in_axes, size))


@pytest.mark.parametrize("in_axes", [(0, None), (None, 1), (0, 0)], ids=str)
def test_nested_calls(rng, in_axes):
    x = make(rng, (2, 3), f32, in_axes[0], 3)
    y = make(rng, (2, 3), f32, in_axes[1], 3)
    check_vmap(lambda a, b: _outer_callee(a, b) + _affine(b, a)[1].sum(), x, y,
               in_axes=in_axes, out_axes=-1)


_matmul = jax.jit(lambda a, b: a @ b)
_diff = jax.jit(lambda p, q: _matmul(p, q) - _matmul(q, q))


@pytest.mark.parametrize("in_axes", [(0, None), (None, -1)], ids=str)
def test_callee_patterns_inside_callees(rng, in_axes):
    """_diff is called as (b, u), (u, b) and (u, u): the last call stays
    unbatched, and each batched clone calls _matmul with its own patterns."""
    x = make(rng, (2, 2), f32, in_axes[0], 3)
    y = make(rng, (2, 2), f32, in_axes[1], 3)
    check_vmap(lambda a, b: _diff(a, b) + _diff(b, a) + _diff(b, b), x, y, in_axes=in_axes,
               out_axes=-1, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("k,dtype", list(enumerate(
    [f64, i32, c64, bf16, jnp.bool_, jnp.uint32, jnp.float16])), ids=str)
def test_call_dtypes(rng, k, dtype):
    g = jax.jit(lambda a, b: (jnp.where(a != b, a, b), b))
    in_axes = [(0, None), (None, -1), (1, 0)][k % 3]
    with x64(dtype):
        x = make(rng, (2, 3), dtype, in_axes[0], SIZES[k % 3])
        y = make(rng, (2, 3), dtype, in_axes[1], SIZES[k % 3])
        check_vmap(lambda a, b: g(a, b) + g(b, b), x, y, in_axes=in_axes,
                   out_axes=(0, 1, -1)[k % 3])


def test_callee_result_unbatched_but_out_axes_set(rng):
    g = jax.jit(lambda a, b: (a + 1, b * 3))
    x = make(rng, (2,), f32, 0, 3)
    y = make(rng, (2,), f32, None, 3)
    check_vmap(g, x, y, in_axes=(0, None), out_axes=(0, 1))


def test_call_jit_and_cache(rng):
    x = make(rng, (2, 3), f32, 0, 8)
    y = make(rng, (2, 3), f32, None, 8)
    check_vmap(_two_call_sites, x, y, in_axes=(0, None), jit=True)


def test_recursion_free_deep_chain(rng):
    """The same callee called in a loop of Python-level calls (many sites)."""
    step = jax.jit(lambda s, x: jnp.tanh(s * 0.5 + x))

    def fn(x, s0):
        s = s0
        for _ in range(4):
            s = step(s, x)
        return s
    x = make(rng, (4,), f32, 0, 3)
    s0 = make(rng, (4,), f32, None, 3)
    check_vmap(fn, x, s0, in_axes=(0, None), out_axes=-1)


# ---- composite: named ops with a decomposition ------------------------------
@pytest.mark.parametrize("in_axes", [(0, None), (None, 1), (0, 0)], ids=str)
def test_custom_composite(rng, in_axes):
    # jax.vmap has no rule for composites: the oracle is vmap of the decomposition.
    decomposition = lambda a, b: (a * b + 1.0, jnp.sum(b, axis=0))
    fma = lax.composite(decomposition, name="test.fma")
    x = make(rng, (2, 3), f32, in_axes[0], 3)
    y = make(rng, (2, 3), f32, in_axes[1], 3)
    want = jax.vmap(decomposition, in_axes=in_axes, out_axes=1)(x, y)
    assert_same_tree(sb.batch_lower(fma, in_axes=in_axes, out_axes=1)(x, y), want)


def test_composite_without_results():
    """A composite without results became a call of its batched
    decomposition, but nothing replaced the composite itself (no result to
    replace), which stayed with batched operands and failed verification."""
    text = """
    func.func private @dec(%a: tensor<3xf32>) {
      return
    }
    func.func @main(%x: tensor<3xf32>) -> tensor<3xf32> {
      "stablehlo.composite"(%x) {name = "test.no_result", decomposition = @dec} : (tensor<3xf32>) -> ()
      %0 = stablehlo.sine %x : tensor<3xf32>
      return %0 : tensor<3xf32>
    }
    """
    x = jnp.arange(6.0, dtype=f32).reshape(2, 3)
    check_module(text, [x], [0], [0], 2)
    assert "stablehlo.composite" not in sb.batch_module(text, [0], [0], 2)


@pytest.mark.parametrize("in_axes", [(0, None), (None, -1), (1, 0)], ids=str)
def test_elementwise_composite_mixed_operands(rng, in_axes):
    # jax.export turns chlo.mulhi into a composite named "chlo.mulhi"
    x = make(rng, (2, 3), jnp.uint32, in_axes[0], 3) * 123456789
    y = make(rng, (2, 3), jnp.uint32, in_axes[1], 3) * 987654321
    check_vmap(lax.mulhi, x, y, in_axes=in_axes)


# ---- optimization_barrier ---------------------------------------------------
@pytest.mark.parametrize("k,in_axes", list(enumerate(
    [(0, None, None), (None, 0, 1), (1, None, -1), (0, 0, 0), (None, None, None)])), ids=str)
def test_optimization_barrier(rng, k, in_axes):
    size = SIZES[k % 3]
    x = make(rng, (2, 3), f32, in_axes[0], size)
    n = make(rng, (), i32, None if in_axes[1] is None else 0, size)
    z = make(rng, (3,), c64, in_axes[2], size)

    def fn(a, m, c):
        a, m, c = lax.optimization_barrier((a * 2, m + 1, c))
        return a.sum(axis=0) * m, jnp.abs(c), m
    check_vmap(fn, x, n, z, in_axes=in_axes, out_axes=((0, 1, -1)[k % 3], 0, -1),
               axis_size=axis_size_for(in_axes, size))


def test_optimization_barrier_partial_use(rng):
    x = make(rng, (4,), f32, 0, 8)
    y = make(rng, (4,), f32, None, 8)
    check_vmap(lambda a, b: lax.optimization_barrier((a, b))[1] * 2 + 1, x, y,
               in_axes=(0, None), out_axes=0)


# ---- tuple / get_tuple_element (hand-written module) ------------------------
TUPLES = """
func.func public @main(%a: tensor<2xf32>, %b: tensor<f32>) -> (tensor<2xf32>, tensor<f32>) {
  %t = stablehlo.tuple %a, %b : tuple<tensor<2xf32>, tensor<f32>>
  %0 = stablehlo.get_tuple_element %t[0] : (tuple<tensor<2xf32>, tensor<f32>>) -> tensor<2xf32>
  %1 = stablehlo.get_tuple_element %t[1] : (tuple<tensor<2xf32>, tensor<f32>>) -> tensor<f32>
  %2 = stablehlo.broadcast_in_dim %1, dims = [] : (tensor<f32>) -> tensor<2xf32>
  %3 = stablehlo.multiply %0, %2 : tensor<2xf32>
  return %3, %1 : tensor<2xf32>, tensor<f32>
}"""


@pytest.mark.parametrize("in_axes,out_axes,size", [([0, None], [0, 0], 3),
                                                   ([None, 0], [1, 0], 8),
                                                   ([-1, 0], [-1, -1], 1)])
def test_tuple_and_get_tuple_element(rng, in_axes, out_axes, size):
    a = make(rng, (2,), f32, in_axes[0], size)
    b = make(rng, (), f32, in_axes[1], size)
    check_module(TUPLES, [a, b], in_axes, out_axes, size)
