"""Elementwise ops of stablehlo and chlo, differentially against jax.vmap.

Every op is reached through the jax.lax / jax.scipy function that lowers to
it; the few that jax never emits (stablehlo.logistic, scalar-bound clamp,
chlo.is_inf, chlo.conj, chlo.tan, chlo.broadcast_*) are checked on
hand-written modules against the unbatched module run per example.
Axis configurations are spread over each family's cases (see batch_cases).
"""
from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import jax.scipy.special as jss
import numpy as np
import pytest
from jax import lax

import stablehlo_batch as sb
from batch_cases import (IN_AXES, OUT_AXES, PAIRS, SIZES, UNARY_CONFIGS, axis_size_for,
                         check_module, dname, make, spread, x64)
from conftest import check_vmap, random_array

f32, f64, bf16, f16 = jnp.float32, jnp.float64, jnp.bfloat16, jnp.float16
c64, c128 = jnp.complex64, jnp.complex128
i32, u32, i8, u8 = jnp.int32, jnp.uint32, jnp.int8, jnp.uint8
BOOL = jnp.bool_

F = [f32, f64, bf16, f16]
FC = F + [c64]
INT = [i32, u32]
SHAPE = (2, 3)


def _domain(x, domain):
    """Moves random inputs into an op's domain (complex inputs stay as they are).

    Works in numpy: eager jnp ops would compile a kernel per shape and dtype."""
    if domain is None or jnp.iscomplexobj(x):
        return x
    dt = x.dtype
    is_int = jnp.issubdtype(dt, jnp.integer)
    v = np.asarray(x, np.int64 if is_int else np.float64)
    if domain == "pos":
        v = np.abs(v) + 0.5
    elif domain == "unit":
        v = np.tanh(v) * 0.9
    elif domain == "ge1":
        v = np.abs(v) + 1.1
    elif domain == "nonzero":  # divisors: no zeros, for ints no -1 (INT_MIN / -1)
        v = np.where(v <= 0, 3 - v, v) if is_int else np.where(np.abs(v) < 0.1, 1.5, v)
    elif domain == "order":  # polygamma's order: small non-negative integers
        v = np.floor(np.abs(v) * 1.5)
    elif domain == "zeta_x":
        v = np.abs(v) + 1.5
    elif domain == "special":  # inf, -inf and nan among ordinary values
        flat = v.reshape(-1).copy()
        flat[0::4], flat[1::4], flat[2::5] = np.inf, -np.inf, np.nan
        v = flat.reshape(v.shape)
    elif domain == "shift":  # shift amounts incl. out-of-range ones
        v = np.abs(v) * 4
    else:
        raise ValueError(domain)
    return jnp.asarray(v.astype(dt) if is_int else v, dt)


# name -> (fn, dtypes, domain)
UNARY = {
    "abs": (lax.abs, [f32, c64, i32, f64, bf16, f16], None),
    "cbrt": (lax.cbrt, F, None),
    "ceil": (lax.ceil, F, None),
    "floor": (lax.floor, F, None),
    "cosine": (lax.cos, FC, None),
    "sine": (lax.sin, FC, None),
    "exponential": (lax.exp, [f32, c64, f64, bf16, f16], None),
    "exponential_minus_one": (lax.expm1, FC, None),
    "log": (lax.log, [f32, c64, f64, bf16, f16], "pos"),
    "log_plus_one": (lax.log1p, FC, "pos"),
    "sqrt": (lax.sqrt, [f32, c64, f64, bf16, f16], "pos"),
    "rsqrt": (lax.rsqrt, FC, "pos"),
    "tan": (lax.tan, FC, None),
    "tanh": (lax.tanh, [f32, c64, f64, bf16, f16], None),
    "logistic": (lax.logistic, FC, None),
    "is_finite": (lax.is_finite, F, "special"),
    "negate": (lax.neg, FC + INT, None),
    "sign": (lax.sign, [f32, c64, i32, f64, bf16, f16], None),
    "round_nearest_afz": (lambda x: lax.round(x, lax.RoundingMethod.AWAY_FROM_ZERO), F, None),
    "round_nearest_even": (lambda x: lax.round(x, lax.RoundingMethod.TO_NEAREST_EVEN), F, None),
    "reduce_precision": (lambda x: lax.reduce_precision(x, exponent_bits=5, mantissa_bits=2), F, None),
    "reduce_precision_bf16": (lambda x: lax.reduce_precision(x, exponent_bits=8, mantissa_bits=7), [f32, f64], "special"),
    "not": (lax.bitwise_not, INT + [BOOL], None),
    "count_leading_zeros": (lax.clz, INT + [i8], None),
    "popcnt": (lax.population_count, INT + [u8], None),
    "real": (lax.real, [c64, c128], None),
    "imag": (lax.imag, [c64, c128], None),
    "conj": (lax.conj, [c64, c128, f32], None),
    # chlo
    "chlo.erf": (lax.erf, F, None),
    "chlo.erfc": (lax.erfc, F, None),
    "chlo.erf_inv": (lax.erf_inv, F, "unit"),
    "chlo.lgamma": (lax.lgamma, F, None),
    "chlo.digamma": (lax.digamma, F, "pos"),
    "chlo.asin": (lax.asin, [f32, f64, bf16, c64], "unit"),
    "chlo.acos": (lax.acos, [f32, f64, f16, c64], "unit"),
    "chlo.atan": (lax.atan, FC, None),
    "chlo.asinh": (lax.asinh, FC, None),
    "chlo.acosh": (lax.acosh, [f32, f64, bf16, c64], "ge1"),
    "chlo.atanh": (lax.atanh, [f32, f64, f16, c64], "unit"),
    "chlo.sinh": (lax.sinh, FC, None),
    "chlo.cosh": (lax.cosh, FC, None),
    "chlo.bessel_i1e": (lax.bessel_i1e, [f32, f64], None),
    "chlo.square": (lax.square, [f32, f64, c64, i32], None),
    "isinf": (jnp.isinf, F, "special"),
    "isneginf": (jnp.isneginf, [f32, f64], "special"),
    "i1": (jss.i1, [f32, f64], None),
    "ndtri": (jss.ndtri, [f32], "unit"),
}

def _grouped(table, extra=1):
    """One case per op and dtype group. Each op runs its first dtype and
    ``extra`` more, rotating through the rest so that the family as a whole
    meets every dtype; a 64-bit dtype forms its own group, run under
    jax.enable_x64. ``k`` (the case number) rotates the axis configuration."""
    params = []
    for n, (name, (fn, dtypes, *domains)) in enumerate(table.items()):
        rest = dtypes[1:]
        chosen = [dtypes[0]] + [rest[(n + i) % len(rest)]
                                for i in range(min(extra, len(rest)))]
        wide = [d for d in chosen if jnp.dtype(d) in (jnp.dtype(f64), jnp.dtype(c128))]
        narrow = [d for d in chosen if d not in wide]
        for tag, group in (("", narrow), ("-x64", wide)):
            if group:
                params.append(pytest.param(
                    fn, tuple(group), tuple(domains), len(params),
                    id="-".join([name] + [dname(d) for d in group])))
    return params


def _config(k, n_args):
    """in_axes (one per argument), out_axes (one per dtype) and the size for case k."""
    size = SIZES[k % 3]
    out_axes = tuple(OUT_AXES[(k + 2 * j + k // 3) % 3] for j in range(n_args))
    return size, out_axes


@pytest.mark.parametrize("fn,dtypes,domains,k", _grouped(UNARY))
def test_unary(rng, fn, dtypes, domains, k):
    """One vmap per op: every dtype is its own argument with its own in_axes
    (batched at 0 / 1 / -1 or unbatched) and out_axes, under one batch size."""
    size, out_axes = _config(k, len(dtypes))
    in_axes = tuple(IN_AXES[(k + j) % 4] for j in range(len(dtypes)))
    with x64(*dtypes):
        xs = [_domain(make(rng, SHAPE, dt, ax, size), domains[0])
              for dt, ax in zip(dtypes, in_axes)]
        check_vmap(lambda *a: tuple(fn(x) for x in a), *xs, in_axes=in_axes,
                   out_axes=out_axes, axis_size=axis_size_for(in_axes, size))


@pytest.mark.parametrize("dtype,in_axis,out_axis", [
    (f32, 0, 0), (i32, -1, -1), (c64, None, 0), (BOOL, 0, -1), (bf16, -1, 0)])
def test_unary_scalar_per_example(rng, dtype, in_axis, out_axis):
    fn = lax.bitwise_not if dtype == BOOL else lax.neg
    x = make(rng, (), dtype, in_axis, 3)
    check_vmap(fn, x, in_axes=in_axis, out_axes=out_axis,
               axis_size=axis_size_for(in_axis, 3))


# name -> (fn, dtypes, domain of the lhs, domain of the rhs)
BINARY = {
    "add": (lax.add, FC + INT, None, None),
    "subtract": (lax.sub, FC + INT, None, None),
    "multiply": (lax.mul, FC + INT, None, None),
    "divide": (lax.div, FC + INT, None, "nonzero"),
    "maximum": (lax.max, F + INT + [BOOL], None, None),
    "minimum": (lax.min, F + INT + [BOOL], None, None),
    "power": (lax.pow, [f32, f64, f16, c64], "pos", None),
    "remainder": (lax.rem, F + INT, None, "nonzero"),
    "atan2": (lax.atan2, F, None, None),
    "and": (lax.bitwise_and, INT + [BOOL], None, None),
    "or": (lax.bitwise_or, INT + [BOOL], None, None),
    "xor": (lax.bitwise_xor, INT + [BOOL, u8], None, None),
    "shift_left": (lax.shift_left, INT + [u8], None, "shift"),
    "shift_right_arithmetic": (lax.shift_right_arithmetic, INT, None, "shift"),
    "shift_right_logical": (lax.shift_right_logical, INT + [i8], None, "shift"),
    "complex": (lax.complex, [f32, f64], None, None),
    "chlo.next_after": (lax.nextafter, [f32, f64], None, None),
    "chlo.polygamma": (lax.polygamma, [f32, f64], "order", "pos"),
    "chlo.zeta": (lax.zeta, [f32, f64], "zeta_x", "pos"),
    "chlo.mulhi": (lax.mulhi, INT, None, None),
    "xlogy": (jss.xlogy, [f32], None, "pos"),
}
for _d in ("eq", "ne", "lt", "le", "gt", "ge"):
    BINARY[f"compare_{_d}"] = (getattr(lax, _d), [f32, i32, u32, BOOL, bf16] + (
        [c64] if _d in ("eq", "ne") else [f64] if _d == "lt" else []), None, None)
BINARY["compare_nan"] = (lax.lt, [f32], "special", "special")

@pytest.mark.parametrize("fn,dtypes,domains,k", _grouped(BINARY))
def test_binary(rng, fn, dtypes, domains, k):
    """One vmap per op: each dtype is a pair of arguments, both batched or one
    of them, at various positions."""
    size, out_axes = _config(k, len(dtypes))
    pairs = [PAIRS[(k + 3 * j) % len(PAIRS)] for j in range(len(dtypes))]
    with x64(*dtypes):
        args = []
        for dt, (ax_l, ax_r) in zip(dtypes, pairs):
            args += [_domain(make(rng, SHAPE, dt, ax_l, size), domains[0]),
                     _domain(make(rng, SHAPE, dt, ax_r, size), domains[1])]
        check_vmap(lambda *a: tuple(fn(a[i], a[i + 1]) for i in range(0, len(a), 2)),
                   *args, in_axes=tuple(ax for p in pairs for ax in p), out_axes=out_axes)


@pytest.mark.parametrize("k,in_axes", list(enumerate(
    [(0, 0), (0, None), (None, 0), (1, -1), (None, None)])))
def test_binary_every_pattern_x64(rng, k, in_axes):
    """atan2 over batched/unbatched patterns, in float64."""
    size = SIZES[k % 3]
    with x64(f64):
        x = make(rng, SHAPE, f64, in_axes[0], size)
        y = make(rng, SHAPE, f64, in_axes[1], size)
        check_vmap(lax.atan2, x, y, in_axes=in_axes, out_axes=-1,
                   axis_size=axis_size_for(in_axes, size))


@pytest.mark.parametrize("in_axes", [(0, None), (None, 0), (-1, 0)])
def test_implicit_broadcasting_in_jnp(rng, in_axes):
    # jnp broadcasting lowers to broadcast_in_dim before the elementwise op.
    x = make(rng, (2, 3), f32, in_axes[0], 3)
    y = make(rng, (3,), f32, in_axes[1], 3)
    check_vmap(lambda a, b: a * b + 1.0 - b / 2, x, y, in_axes=in_axes, out_axes=1)


def test_elementwise_chain_jit(rng):
    x = make(rng, SHAPE, f32, 1, 8)
    y = make(rng, SHAPE, f32, None, 8)
    check_vmap(lambda a, b: jnp.where(a > b, jnp.exp(a) * b, jnp.sin(b) - a), x, y,
               in_axes=(1, None), out_axes=-1, jit=True)


# ---- select and clamp -----------------------------------------------------
SELECT_DTYPES = [f32, i32, BOOL, c64, bf16, f64, u32, f16]
# Every other batched/unbatched pattern of (pred, on_true, on_false).
SELECT_AXES = [p for p in itertools.product((0, -1, None), repeat=3) if p != (None,) * 3][::2]


@pytest.mark.parametrize("k,axes", list(enumerate(SELECT_AXES)),
                         ids=[f"{a}" for a in SELECT_AXES])
def test_select_full_pred(rng, k, axes):
    dtype = SELECT_DTYPES[k % len(SELECT_DTYPES)]
    size = SIZES[k % 3]
    with x64(dtype):
        p = make(rng, SHAPE, BOOL, axes[0], size)
        a = make(rng, SHAPE, dtype, axes[1], size)
        b = make(rng, SHAPE, dtype, axes[2], size)
        check_vmap(lax.select, p, a, b, in_axes=axes, out_axes=(0, 1, -1)[k % 3])


@pytest.mark.parametrize("axes,dtype,size", [
    ((0, None, None), f32, 3), ((0, 0, None), i32, 1), ((0, 1, -1), c64, 8),
    ((None, 0, 0), BOOL, 3), ((None, None, 1), bf16, 8), ((-1, 0, 0), u32, 1),
    ((0, 0, 0), f16, 3)])
def test_select_scalar_pred(rng, axes, dtype, size):
    p = make(rng, (), BOOL, axes[0], size)
    a = make(rng, SHAPE, dtype, axes[1], size)
    b = make(rng, SHAPE, dtype, axes[2], size)
    check_vmap(lax.select, p, a, b, in_axes=axes, out_axes=1)


@pytest.mark.parametrize("axes", [(0, None, None), (None, 0, None), (0, 0, 0)])
def test_select_all_scalar(rng, axes):
    p, a, b = (make(rng, (), dt, ax, 3) for dt, ax in zip((BOOL, f32, f32), axes))
    check_vmap(lax.select, p, a, b, in_axes=axes)


@pytest.mark.parametrize("k,axes", list(enumerate(
    [p for p in itertools.product((0, 1, None), repeat=3) if p != (None,) * 3][1::2])))
def test_clamp_full_bounds(rng, k, axes):
    dtype = [f32, i32, bf16, u32, f64][k % 5]
    size = SIZES[k % 3]
    with x64(dtype):
        lo = make(rng, SHAPE, dtype, axes[0], size)
        x = make(rng, SHAPE, dtype, axes[1], size)
        hi = make(rng, SHAPE, dtype, axes[2], size)
        check_vmap(lax.clamp, lo, x, hi, in_axes=axes, out_axes=(0, 1, -1)[k % 3])


@pytest.mark.parametrize("axes,dtype", [((None, 0, None), f32), ((0, 1, None), i32),
                                        ((0, None, 0), bf16), ((None, None, -1), f32),
                                        ((0, 0, 0), u32)])
def test_clamp_scalar_bounds_jax(rng, axes, dtype):
    lo = make(rng, (), dtype, axes[0], 3) - 1
    x = make(rng, SHAPE, dtype, axes[1], 3)
    hi = make(rng, (), dtype, axes[2], 3) + 1
    check_vmap(lax.clamp, lo, x, hi, in_axes=axes, out_axes=-1)


CLAMP_SCALAR = """
func.func public @main(%lo: tensor<f32>, %x: tensor<2x3xf32>, %hi: tensor<f32>) -> tensor<2x3xf32> {
  %0 = stablehlo.clamp %lo, %x, %hi : (tensor<f32>, tensor<2x3xf32>, tensor<f32>) -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}"""

CLAMP_MIXED = """
func.func public @main(%lo: tensor<f32>, %x: tensor<2x3xf32>, %hi: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %0 = stablehlo.clamp %lo, %x, %hi : (tensor<f32>, tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}"""


@pytest.mark.parametrize("text,axes,size", [
    (CLAMP_SCALAR, (None, 0, None), 3), (CLAMP_SCALAR, (0, None, None), 1),
    (CLAMP_SCALAR, (0, 1, 0), 8), (CLAMP_SCALAR, (None, None, 0), 3),
    (CLAMP_MIXED, (0, None, None), 3), (CLAMP_MIXED, (None, 2, 1), 8),
    (CLAMP_MIXED, (None, None, -1), 1), (CLAMP_MIXED, (0, 0, 0), 3)])
def test_clamp_scalar_bounds_module(rng, text, axes, size):
    hi_shape = () if text is CLAMP_SCALAR else SHAPE
    lo = make(rng, (), f32, axes[0], size) - 0.5
    x = make(rng, SHAPE, f32, axes[1], size)
    hi = make(rng, hi_shape, f32, axes[2], size) + 0.5
    check_module(text, [lo, x, hi], list(axes), [1], size)


# ---- convert, bitcast_convert, complex -----------------------------------
CONVERT_PAIRS = [(f32, i32), (i32, f32), (f32, bf16), (bf16, f32), (f16, f32), (f32, f64),
                 (f64, f16), (BOOL, f32), (f32, BOOL), (u32, i32), (i32, c64), (c64, c128),
                 (u32, f16), (i8, u32), (bf16, f16)]


@pytest.mark.parametrize("pair,cfg", [pytest.param(p, c, id=f"{dname(p[0])}->{dname(p[1])}")
                                      for p, c in spread(CONVERT_PAIRS, UNARY_CONFIGS, 5)])
def test_convert(rng, pair, cfg):
    src, dst = pair
    in_axis, out_axis, size = cfg
    with x64(src, dst):
        x = make(rng, SHAPE, src, in_axis, size)
        check_vmap(lambda a: lax.convert_element_type(a, dst), x, in_axes=in_axis,
                   out_axes=out_axis, axis_size=axis_size_for(in_axis, size))


# (source dtype, target dtype, per-example shape): same width and width-changing
BITCAST = [(f32, u8, (2, 3)), (u8, f32, (2, 4)), (f32, i32, (2, 3)), (i32, f32, (2, 3)),
           (bf16, jnp.int16, (2, 3)), (f16, jnp.uint16, (2, 3)), (u32, f32, (2, 3)),
           (i32, u8, (2, 3)), (i8, i32, (3, 4)), (i8, u8, (2, 3)), (f64, u32, (2, 3)),
           (u32, f64, (3, 2)), (f32, bf16, (2, 3)), (jnp.uint16, f16, (2, 3)),
           (u8, i8, (2, 3))]


@pytest.mark.parametrize("src,dst,shape,cfg", [
    pytest.param(s, d, sh, c, id=f"{dname(s)}{list(sh)}->{dname(d)}-in{c[0]}-out{c[1]}-B{c[2]}")
    for (s, d, sh), c in spread(BITCAST, UNARY_CONFIGS, 5)])
def test_bitcast_convert(rng, src, dst, shape, cfg):
    in_axis, out_axis, size = cfg
    if jnp.dtype(src).itemsize < jnp.dtype(dst).itemsize and in_axis == -1:
        in_axis = 1  # jax.vmap itself fails there: its rule keeps the batch dim last
    with x64(src, dst):
        x = make(rng, shape, src, in_axis, size)
        got = check_vmap(lambda a: lax.bitcast_convert_type(a, dst), x, in_axes=in_axis,
                         out_axes=out_axis, axis_size=axis_size_for(in_axis, size))
        assert got.dtype == jnp.dtype(dst)


@pytest.mark.parametrize("in_axes", [(0, 0), (None, 1), (-1, None), (None, None)])
def test_complex_real_imag_roundtrip(rng, in_axes):
    x = make(rng, SHAPE, f32, in_axes[0], 3)
    y = make(rng, SHAPE, f32, in_axes[1], 3)

    def fn(a, b):
        z = lax.complex(a, b)
        return lax.real(z) * 2, lax.imag(lax.conj(z)), jnp.abs(z)
    check_vmap(fn, x, y, in_axes=in_axes, out_axes=(0, 1, -1),
               axis_size=axis_size_for(in_axes, 3))


# ---- ops jax never emits: hand-written modules ------------------------------
def _unary_module(op, dt, res_dt=None):
    res_dt = res_dt or dt
    return f"""
func.func public @main(%a: tensor<2x3x{dt}>) -> tensor<2x3x{res_dt}> {{
  %0 = "{op}"(%a) : (tensor<2x3x{dt}>) -> tensor<2x3x{res_dt}>
  return %0 : tensor<2x3x{res_dt}>
}}"""


MODULE_UNARY = [("stablehlo.logistic", "f32", None, f32, None),
                ("stablehlo.logistic", "f16", None, f16, None),
                ("chlo.is_inf", "f32", "i1", f32, "special"),
                ("chlo.is_neg_inf", "f32", "i1", f32, "special"),
                ("chlo.is_pos_inf", "bf16", "i1", bf16, "special"),
                ("chlo.conj", "complex<f32>", None, c64, None),
                ("chlo.tan", "f32", None, f32, None),
                ("chlo._asin_acos_kernel", "complex<f32>", None, c64, None)]


@pytest.mark.parametrize("op,dt,res_dt,dtype,domain,cfg", [
    pytest.param(*case, cfg, id=f"{case[0]}-{case[1]}")
    for case, cfg in spread(MODULE_UNARY, [c for c in UNARY_CONFIGS if c[0] is not None], 5)])
def test_unary_module(rng, op, dt, res_dt, dtype, domain, cfg):
    in_axis, out_axis, size = cfg
    x = _domain(make(rng, SHAPE, dtype, in_axis, size), domain)
    check_module(_unary_module(op, dt, res_dt), [x], [in_axis], [out_axis], size)


# (op, lhs type, rhs type, result type, attributes, numpy dtypes of lhs / rhs)
_LT = '{comparison_direction = #chlo<comparison_direction LT>}'
BROADCASTING = [
    ("add", "2x3xf32", "3xf32", "2x3xf32", "", f32, f32),
    ("subtract", "2x1xf32", "1x3xf32", "2x3xf32", "", f32, f32),
    ("multiply", "f32", "2x3xf32", "2x3xf32", "", f32, f32),
    ("divide", "2x3xf32", "f32", "2x3xf32", "", f32, f32),
    ("maximum", "3xi32", "2x3xi32", "2x3xi32", "", i32, i32),
    ("minimum", "2x3xf32", "2x3xf32", "2x3xf32", "", f32, f32),
    ("power", "2x3xf32", "3xf32", "2x3xf32", "", f32, f32),
    ("remainder", "2x3xi32", "i32", "2x3xi32", "", i32, i32),
    ("atan2", "1x3xf32", "2x1xf32", "2x3xf32", "", f32, f32),
    ("and", "2x3xi1", "3xi1", "2x3xi1", "", BOOL, BOOL),
    ("or", "2x3xui32", "ui32", "2x3xui32", "", u32, u32),
    ("xor", "3xi32", "2x3xi32", "2x3xi32", "", i32, i32),
    ("shift_left", "2x3xi32", "3xi32", "2x3xi32", "", i32, i32),
    ("shift_right_arithmetic", "2x3xi32", "i32", "2x3xi32", "", i32, i32),
    ("shift_right_logical", "2x3xui32", "3xui32", "2x3xui32", "", u32, u32),
    ("compare", "2x3xf32", "3xf32", "2x3xi1", _LT, f32, f32),
    ("complex", "2x3xf32", "3xf32", "2x3xcomplex<f32>", "", f32, f32),
    ("next_after", "2x3xf32", "f32", "2x3xf32", "", f32, f32),
    ("polygamma", "f32", "2x3xf32", "2x3xf32", "", f32, f32),
    ("zeta", "2x3xf32", "3xf32", "2x3xf32", "", f32, f32),
]
_BROADCAST_AXES = [(0, 0), (0, None), (None, 0), (-1, None), (None, -1), (-1, 0)]


def _rank(t):
    return t.count("x")


@pytest.mark.parametrize("case,cfg", [
    pytest.param(case, cfg, id=f"{case[0]}-{case[1]}-{case[2]}-in{cfg[0]}-B{cfg[1]}")
    for case, cfg in spread(BROADCASTING, list(itertools.product(_BROADCAST_AXES, SIZES)), 5)])
def test_chlo_implicit_broadcasting(rng, case, cfg):
    op, lt, rt, res, attrs, dl, dr = case
    axes, size = cfg
    text = f"""
func.func public @main(%a: tensor<{lt}>, %b: tensor<{rt}>) -> tensor<{res}> {{
  %0 = "chlo.broadcast_{op}"(%a, %b) {attrs} : (tensor<{lt}>, tensor<{rt}>) -> tensor<{res}>
  return %0 : tensor<{res}>
}}"""
    shapes = [tuple(int(d) for d in t.split("x")[:-1]) for t in (lt, rt)]
    a = make(rng, shapes[0], dl, axes[0], size)
    b = make(rng, shapes[1], dr, axes[1], size)
    if op == "polygamma":
        a = _domain(a, "order")
        b = _domain(b, "pos")
    if op == "zeta":
        a, b = _domain(a, "zeta_x"), _domain(b, "pos")
    if op in ("divide", "remainder"):
        b = _domain(b, "nonzero")
    if op.startswith("shift"):
        b = _domain(b, "shift")
    check_module(text, [a, b], list(axes), [(0, 1, -1)[size % 3]], size)


def test_chlo_broadcast_select(rng):
    text = """
func.func public @main(%p: tensor<2x3xi1>, %a: tensor<3xf32>, %b: tensor<f32>) -> tensor<2x3xf32> {
  %0 = "chlo.broadcast_select"(%p, %a, %b) : (tensor<2x3xi1>, tensor<3xf32>, tensor<f32>) -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}"""
    for axes in ([0, None, 0], [None, 0, None], [1, -1, None]):
        args = [make(rng, s, d, ax, 3) for s, d, ax in zip((SHAPE, (3,), ()), (BOOL, f32, f32), axes)]
        check_module(text, args, axes, [-1], 3)


def test_chlo_broadcast_dimensions_attribute_is_unsupported():
    text = """
func.func public @main(%a: tensor<2x3xf32>, %b: tensor<2xf32>) -> tensor<2x3xf32> {
  %0 = chlo.broadcast_add %a, %b {broadcast_dimensions = array<i64: 0>} : (tensor<2x3xf32>, tensor<2xf32>) -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}"""
    with pytest.raises(sb.UnsupportedOpError, match="broadcast_dimensions"):
        sb.batch_module(text, [0, None], [0], 3)
