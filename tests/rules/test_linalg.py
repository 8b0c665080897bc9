"""Linear algebra ops with a native StableHLO form (passes/rules/linalg.py):
stablehlo.cholesky, triangular_solve and batch_norm_*. jax does not emit them
on CPU in f32, so they are batched from hand-written modules and compared
with the module run once per lane (batch_cases.check_module); f16 triangular
solves do lower to stablehlo.triangular_solve and are checked against vmap.
(The LAPACK custom calls jax emits are in test_custom_calls.py.)

Every check runs strict: a per-lane fallback would be an error here, since
each of these ops has a vectorized rule.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import stablehlo_batch as sb
from batch_cases import check_module, make, x64
from conftest import assert_same_tree, check_vmap
from stablehlo_batch.passes.fallback import strict_mode

from .test_custom_calls import _conditioned, _tol

f16, f32, f64, c64 = jnp.float16, jnp.float32, jnp.float64, jnp.complex64


@pytest.mark.parametrize("in_axes,left_side,size", [((None, 0), True, 3), ((None, 1), False, 1),
                                                    ((0, None), True, 8), ((1, 0), False, 3)])
def test_native_triangular_solve_f16(rng, in_axes, left_side, size):
    """f16 has no LAPACK kernel: jax emits stablehlo.triangular_solve."""
    def fn(a, b):
        return lax.linalg.triangular_solve(_conditioned(a), b, left_side=left_side,
                                           lower=left_side, transpose_a=not left_side)
    a = make(rng, (3, 3), f16, in_axes[0], size)
    b = make(rng, (3, 2) if left_side else (2, 3), f16, in_axes[1], size)
    with strict_mode(True):
        check_vmap(fn, a, b, in_axes=in_axes)
        text = sb.batch_lower(fn, in_axes=in_axes).lower(a, b).as_text()
    assert "stablehlo.triangular_solve" in text
    if in_axes[0] is None:  # the shared triangle is not copied per lane
        assert "(tensor<3x3xf16>, tensor<" in text


def test_native_triangular_solve_symbolic_batch(rng):
    """With a symbolic batch size the lanes cannot become a static number of
    columns: the matrix is broadcast instead, still one solve."""
    def fn(a, b):
        return lax.linalg.triangular_solve(_conditioned(a), b, left_side=True, lower=True)
    bl = sb.batch_lower(fn, in_axes=(None, 0), axis_size="b")
    a = make(rng, (3, 3), f16, None, 0)
    for size in (1, 3):
        b = make(rng, (3, 2), f16, 0, size)
        assert_same_tree(bl(a, b), jax.vmap(fn, in_axes=(None, 0))(a, b), rtol=2e-2, atol=2e-2)
    assert "tensor<?x3x3xf16>" in bl.lower(a, b).as_text()


# ---- hand-written modules: cholesky, triangular_solve, batch_norm -------------

def _module(body, args, results):
    sig = ", ".join(f"%a{i}: {t}" for i, t in enumerate(args))
    return (f"func.func @main({sig}) -> ({', '.join(results)}) {{\n{body}\n"
            f"  return %0 : {results[0]}\n}}\n") if len(results) == 1 else (
        f"func.func @main({sig}) -> ({', '.join(results)}) {{\n{body}\n"
        f"  return {', '.join(f'%0#{i}' for i in range(len(results)))} : "
        f"{', '.join(results)}\n}}\n")


def _matrices(rng, shape, dtype, axis, size, make_matrix):
    """Per-lane ``make_matrix(random [.., m, m])`` carrying ``size`` at ``axis``
    (one of them when ``axis`` is None)."""
    x = make_matrix(rng.standard_normal((size,) + tuple(shape)))
    if axis is None:
        return jnp.asarray(x[0], dtype)
    return jnp.asarray(np.moveaxis(x, 0, axis), dtype)


def _spd_np(a):
    return a @ np.swapaxes(a, -1, -2) + a.shape[-1] * np.eye(a.shape[-1])


@pytest.mark.parametrize("lower,shape,dtype,axis,size", [
    (True, (4, 4), f32, 0, 3), (False, (2, 3, 3), f64, 1, 1), (True, (3, 3), f32, 2, 8)])
def test_native_cholesky(rng, lower, shape, dtype, axis, size):
    t = f"tensor<{'x'.join(map(str, shape))}x{'f32' if dtype == f32 else 'f64'}>"
    text = _module(f"  %0 = stablehlo.cholesky %a0, lower = {str(lower).lower()} : {t}", [t], [t])
    with x64(dtype), strict_mode(True):
        x = _matrices(rng, shape, dtype, axis, size, _spd_np)
        check_module(text, [x], [axis], [axis], size, **_tol(dtype))


@pytest.mark.parametrize("left,lower,trans,unit,batch,in_axes,size", [
    (True, True, "NO_TRANSPOSE", False, (), (None, 0), 3),
    (False, False, "TRANSPOSE", True, (2,), (None, 1), 3),
    (True, False, "ADJOINT", False, (2,), (0, None), 1),
    (False, True, "NO_TRANSPOSE", False, (), (2, 0), 8),
    (True, True, "TRANSPOSE", True, (), (None, 2), 1),
])
def test_native_triangular_solve(rng, left, lower, trans, unit, batch, in_axes, size):
    m, k = 3, 2
    a_shape = batch + (m, m)
    b_shape = batch + ((m, k) if left else (k, m))
    ta = "tensor<" + "x".join(map(str, a_shape)) + "xf32>"
    tb = "tensor<" + "x".join(map(str, b_shape)) + "xf32>"
    text = _module(
        f'  %0 = "stablehlo.triangular_solve"(%a0, %a1) {{left_side = {str(left).lower()}, '
        f'lower = {str(lower).lower()}, unit_diagonal = {str(unit).lower()}, '
        f'transpose_a = #stablehlo<transpose {trans}>}} : ({ta}, {tb}) -> {tb}', [ta, tb], [tb])
    a = _matrices(rng, a_shape, f32, in_axes[0], size, lambda x: x + 4 * np.eye(m))
    b = make(rng, b_shape, f32, in_axes[1], size)
    out_axis = 0 if in_axes[1] is None else in_axes[1]
    with strict_mode(True):
        check_module(text, [a, b], list(in_axes), [out_axis], size, rtol=1e-4, atol=1e-4)


_BN_VEC = "tensor<3xf32>"


def _bn_case(kind, x_shape, fi):
    tx = "tensor<" + "x".join(map(str, x_shape)) + "xf32>"
    attrs = f"{{epsilon = 1.0e-3 : f32, feature_index = {fi} : i64}}"
    v = _BN_VEC
    if kind == "inference":
        ins, outs = [tx, v, v, v, v], [tx]
    elif kind == "training":
        ins, outs = [tx, v, v], [tx, v, v]
    else:
        ins, outs = [tx, v, v, v, tx], [tx, v, v]
    res = f"%0:{len(outs)}" if len(outs) > 1 else "%0"
    body = (f'  {res} = "stablehlo.batch_norm_{kind}"'
            f'({", ".join(f"%a{i}" for i in range(len(ins)))}) {attrs} : '
            f'({", ".join(ins)}) -> ({", ".join(outs)})')
    return _module(body, ins, outs), ins, outs


@pytest.mark.parametrize("kind,x_shape,fi,in_axes,size", [
    ("inference", (2, 3, 4), 1, (0, None, None, None, None), 3),
    ("inference", (3, 5), 0, (1, 0, None, 0, None), 3),
    ("inference", (4, 3), 1, (None, None, None, 0, 0), 1),
    ("training", (3, 6), 0, (0, None, None), 3),
    ("training", (2, 3, 4), 1, (2, 0, None), 8),
    ("training", (5, 3), 1, (None, None, 0), 3),
    ("grad", (5, 3), 1, (None, None, None, None, 0), 3),
    ("grad", (3, 2, 2), 0, (0, 0, 0, 0, 1), 1),
    ("grad", (2, 4, 3), 2, (None, 0, 0, None, None), 3),
])
def test_batch_norm(rng, kind, x_shape, fi, in_axes, size):
    text, ins, outs = _bn_case(kind, x_shape, fi)
    args = []
    for t, ax in zip(ins, in_axes):
        shape = [int(d) for d in t[len("tensor<"):-len("xf32>")].split("x")]
        v = make(rng, shape, f32, ax, size)
        if len(shape) == 1 and len(args) in ((4,) if kind == "inference" else (3,)):
            v = jnp.abs(v) + 0.5  # a variance
        args.append(v)
    out_axes = [(0, 1, -1)[j % 3] for j in range(len(outs))]
    with strict_mode(True):
        check_module(text, args, list(in_axes), out_axes, size, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kind", ["training", "grad"])
def test_batch_norm_no_lanes(kind):
    """Axis size 0: the lanes folded into the features split back to
    [0, ...] shapes (found by the CLI fuzzer as a division by zero)."""
    text, ins, outs = _bn_case(kind, (5, 3), 1)
    with strict_mode(True):
        batched = sb.batch_module(text, [0] * len(ins), [0] * len(outs), 0)
    assert "tensor<0x5x3xf32>" in batched and "tensor<0x3xf32>" in batched
