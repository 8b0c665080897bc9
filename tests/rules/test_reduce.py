"""reduce (single and variadic), differentially against jax.vmap: sum / max /
min / prod / argmax / argmin / any / all over some, all or no axes, with
keepdims, and the jnp / jax.nn functions built on them.

Each case runs at case numbers ``k`` that rotate in_axes (0 / 1 / -1 /
None), out_axes (0 / 1 / -1), the batch size (1 / 3 / 8) and the dtype.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from batch_cases import SIZES, check_case, dname, make, x64
from conftest import check_vmap

import stablehlo_batch as sb

f32, f64, bf16, f16 = jnp.float32, jnp.float64, jnp.bfloat16, jnp.float16
c64, i32, u32, BOOL = jnp.complex64, jnp.int32, jnp.uint32, jnp.bool_

NUM = [f32, i32, f64, bf16, u32, c64, f16]
REAL = [f32, i32, f64, bf16, u32, f16]
FLOAT = [f32, f64, bf16, f16]
SHAPE = (2, 3, 4)

# name -> (fn, dtypes); every fn takes one (2, 3, 4) example
CASES = {
    "sum_all": (jnp.sum, NUM + [BOOL]),
    "sum_axis0": (lambda x: jnp.sum(x, axis=0), NUM),
    "sum_axis_last_keepdims": (lambda x: jnp.sum(x, axis=-1, keepdims=True), NUM),
    "sum_axes_0_2": (lambda x: jnp.sum(x, axis=(0, 2)), NUM),
    "sum_no_axes": (lambda x: lax.reduce(x, np.array(0, x.dtype), lax.add, ()), REAL),
    "max_axis1": (lambda x: jnp.max(x, axis=1), REAL + [BOOL]),
    "max_all_keepdims": (lambda x: jnp.max(x, keepdims=True), REAL),
    "min_axis2": (lambda x: jnp.min(x, axis=2), REAL),
    "min_all": (jnp.min, REAL + [BOOL]),
    "prod_axis0": (lambda x: jnp.prod(x, axis=0), [f32, i32, c64, f64]),
    "argmax_axis1": (lambda x: jnp.argmax(x, axis=1), REAL),
    "argmax_all": (jnp.argmax, [f32, i32, bf16]),
    "argmin_axis0_keepdims": (lambda x: jnp.argmin(x, axis=0, keepdims=True), REAL),
    "argmin_last": (lambda x: jnp.argmin(x, axis=-1), [f32, u32, f64]),
    "any_axis1": (lambda x: jnp.any(x, axis=1), [BOOL]),
    "any_all": (jnp.any, [BOOL, f32]),
    "all_axes_1_2": (lambda x: jnp.all(x, axis=(1, 2)), [BOOL]),
    "all_all_keepdims": (lambda x: jnp.all(x, keepdims=True), [BOOL, i32]),
    "count_nonzero": (lambda x: jnp.count_nonzero(x, axis=0), [i32, BOOL]),
    "mean": (lambda x: jnp.mean(x, axis=(0, 1)), FLOAT + [c64]),
    "var": (lambda x: jnp.var(x, axis=1), FLOAT),
    "std_ddof": (lambda x: jnp.std(x, axis=-1, ddof=1), [f32, f64]),
    "logsumexp": (lambda x: jax.nn.logsumexp(x, axis=1), FLOAT),
    "softmax": (lambda x: jax.nn.softmax(x, axis=-1), FLOAT),
    "log_softmax": (lambda x: jax.nn.log_softmax(x, axis=0), [f32, f64]),
    "norm": (lambda x: jnp.linalg.norm(x, axis=-1), [f32, c64]),
}


def _params(reps=1):
    params, n = [], 0
    for name, (fn, dtypes) in CASES.items():
        for rep in range(min(reps, len(dtypes)) if len(dtypes) > 1 else 1):
            dt = dtypes[0] if rep == 0 else dtypes[1 + n % (len(dtypes) - 1)]
            params.append(pytest.param(fn, dt, n, id=f"{name}-{dname(dt)}-k{n}"))
            n += 1
    return params


@pytest.mark.parametrize("fn,dtype,k", _params())
def test_reduce(rng, fn, dtype, k):
    check_case(rng, fn, [SHAPE], dtype, k, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("fn,in_axis,size", [(jnp.sum, 0, 1), (jnp.max, 1, 3), (jnp.argmin, -1, 8),
                                             (jnp.any, 0, 8), (jnp.sum, -1, 3), (jnp.argmin, 1, 1)])
def test_reduce_all_sizes(rng, fn, in_axis, size):
    dtype = BOOL if fn is jnp.any else f32
    x = make(rng, (3, 4), dtype, in_axis, size)
    check_vmap(lambda a: fn(a, axis=0), x, in_axes=in_axis, out_axes=(0, 1, -1)[size % 3])


def _sum_and_argmax(xs, init):
    """A variadic reduce: (sum of x, first index of the max of y)."""
    def body(a, b):
        (s, m, i), (t, n, j) = a, b
        pick = (n > m) | ((n == m) & (j < i))
        return s + t, jnp.where(pick, n, m), jnp.where(pick, j, i)
    return lax.reduce(xs, init, body, (1,))


@pytest.mark.parametrize("axes", [(0, None, None), (None, 0, None), (1, 1, None),
                                  (None, -1, 0), (0, 0, 0)])
def test_variadic_reduce_mixed_operands(rng, axes):
    x = make(rng, (2, 5), f32, axes[0], 3)
    y = make(rng, (2, 5), i32, axes[1], 3)
    idx = make(rng, (2, 5), i32, axes[2], 3)
    check_vmap(lambda a, b, c: _sum_and_argmax((a, b, c), (np.float32(0), np.int32(-100),
                                                           np.int32(10**6))),
               x, y, idx, in_axes=axes, out_axes=(0, 1, -1), rtol=1e-5, atol=1e-5)


def test_reduce_chain_jit(rng):
    x = make(rng, (4, 6), f32, 1, 8)
    w = make(rng, (6,), f32, None, 8)
    check_vmap(lambda a, b: (jax.nn.softmax(a * b, axis=1).max(axis=0), (a - a.mean()).std()),
               x, w, in_axes=(1, None), out_axes=(0, -1), jit=True, rtol=1e-5, atol=1e-5)


def test_batched_init_value_runs_per_lane(rng):
    """jax.vmap has no batching rule for per-example init values; the rule
    declines them (fb.decline): a per-lane loop with a FallbackWarning, and
    under strict the typed error."""
    x = make(rng, (3, 4), f32, 0, 3)
    init = make(rng, (), f32, 0, 3)
    fn = lambda a, i: lax.reduce(a, i, lax.add, (0,))
    with pytest.raises(NotImplementedError):
        jax.vmap(fn)(x, init)
    with pytest.warns(sb.FallbackWarning, match="init values differ per batch element"):
        got = sb.batch_lower(fn)(x, init)
    want = np.stack([fn(x[i], init[i]) for i in range(3)])  # each lane alone
    np.testing.assert_allclose(got, want, rtol=1e-6)
    with pytest.raises(sb.UnsupportedOpError, match="init values"):
        sb.batch_lower(fn, strict=True)(x, init)
