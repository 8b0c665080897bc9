"""Regression tests after JAX's tests/lax_vmap_op_test.py (jax-v0.10.2): every
elementwise lax op of jax's own op list, batched with mixed batch dimensions.

JAX runs one case per (op, shapes, bdims, dtype). Here each case batches
every op of one arity and dtype in one function, so a few compiles cover the
list; the ops come from jax's test-util list, so new ops are picked up.
"""
from __future__ import annotations

import numpy as np
import pytest

import jax
from jax import lax
lax_test_util = pytest.importorskip(
    "jax._src.internal_test_util.lax_test_util", reason="JAX's test utilities need absl-py")

import stablehlo_batch as sb
from conftest import assert_same_tree

R = np.random.RandomState(4)  # jax's rng factories want the legacy API


def _ops(nargs, dtype, skip=()):
    out = []
    for rec in lax_test_util.lax_ops():
        if rec.nargs == nargs and rec.op not in skip and any(np.dtype(d) == np.dtype(dtype) for d in rec.dtypes) \
                and rec.op not in [name for name, _ in out]:
            out.append((rec.op, rec.rng_factory))
    return out


def _arg(rng_factory, shape, dtype, bdim, size=3):
    rng = rng_factory(R)
    if bdim is None:
        return rng(shape, dtype)
    shape = list(shape)
    shape.insert(bdim, size)
    return rng(tuple(shape), dtype)


@pytest.mark.parametrize("dtype,nargs,bdims", [
    (np.float32, 1, (1,)), (np.float32, 2, (1, 0)), (np.float32, 3, (0, None, 1)),
    (np.int32, 1, (0,)), (np.int32, 2, (None, 1)), (np.complex64, 2, (0, 0)),
    (np.bool_, 2, (1, None)),
])
def test_every_elementwise_op(dtype, nargs, bdims):
    # mulhi after a transpose fails inside XLA's CPU compiler under plain
    # jax.jit(jax.vmap(...)) as well ("Unsupported elementwise operation").
    ops = _ops(nargs, dtype, skip=("mulhi",) if set(bdims) - {0, None} else ())
    if not ops:
        pytest.skip(f"no {nargs}-ary op for {np.dtype(dtype).name}")
    shape = (2, 4)
    # Each op draws its arguments from its own rng factory (positive for log, etc.).
    args = [[_arg(rf, shape, dtype, b) for b in bdims] for _, rf in ops]

    def fun(*flat):
        return tuple(getattr(lax, name)(*flat[i * nargs:(i + 1) * nargs])
                     for i, (name, _) in enumerate(ops))
    flat = [a for group in args for a in group]
    tol = 1e-2 if dtype == np.float16 else 1e-5
    in_axes = tuple(bdims) * len(ops)
    # jit(vmap) as the oracle: eager vmap would compile every op on its own.
    want = jax.jit(jax.vmap(fun, in_axes=in_axes))(*flat)
    got = sb.batch_lower(fun, in_axes=in_axes)(*flat)
    assert_same_tree(got, want, rtol=tol, atol=tol)
