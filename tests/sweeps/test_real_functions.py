"""A sweep of held-out real functions: jax.numpy, jax.nn, jax.scipy, jax.lax
and small model code, each batched with ``batch_lower`` and compared with
``jax.vmap``.

Each case either matches ``jax.vmap`` (values, shapes, dtypes, pytrees) or
raises ``UnsupportedOpError`` naming the op and where it comes from. Any
other outcome (a wrong value, a verification error, any other exception) is
a bug. As rules are added, unsupported cases turn into matched ones without
changes here.

Run this file as a script to print which functions are matched and which
are unsupported (and by which op).
"""
from __future__ import annotations

import collections
import dataclasses
import functools
from typing import Any, Callable, Sequence

import numpy as np
import pytest

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import jax.scipy.special as jss
import jax.scipy.stats as jst
from jax import lax

import stablehlo_batch as sb
from conftest import assert_same_tree

N = 3  # batch size
f32, i32, u32 = jnp.float32, jnp.int32, jnp.uint32


# ---- argument generators: each makes ONE example ---------------------------
def F(*shape, dtype=f32):
    """Standard normal floats."""
    return lambda rng: np.asarray(rng.standard_normal(shape), dtype)


def P(*shape, lo=0.5, hi=2.0, dtype=f32):
    """Positive floats in [lo, hi)."""
    return lambda rng: np.asarray(rng.uniform(lo, hi, shape), dtype)


def U(*shape):
    """Probabilities strictly inside (0, 1)."""
    return P(*shape, lo=0.05, hi=0.95)


def I(*shape, lo=-10, hi=10, dtype=i32):
    """Integers in [lo, hi)."""
    return lambda rng: np.asarray(rng.integers(lo, hi, shape), dtype)


def B(*shape):
    return lambda rng: rng.random(shape) > 0.5


def C(*shape):
    return lambda rng: np.asarray(rng.standard_normal(shape)
                                  + 1j * rng.standard_normal(shape), jnp.complex64)


def SPD(n):
    """A well-conditioned symmetric positive definite matrix."""
    def gen(rng):
        a = rng.standard_normal((n, n))
        return np.asarray(a @ a.T / n + np.eye(n), f32)
    return gen


def WELL(n):
    """A well-conditioned square matrix."""
    return lambda rng: np.asarray(rng.standard_normal((n, n)) * 0.3 + 2 * np.eye(n), f32)


def TRI(n):
    """A well-conditioned lower-triangular matrix."""
    return lambda rng: np.asarray(np.tril(rng.standard_normal((n, n)) * 0.3)
                                  + 2 * np.eye(n), f32)


def PROBS(*shape):
    """Rows that sum to one."""
    def gen(rng):
        p = rng.uniform(0.1, 1.0, shape)
        return np.asarray(p / p.sum(-1, keepdims=True), f32)
    return gen


def KEY():
    """A raw uint32[2] PRNG key."""
    return lambda rng: np.asarray(rng.integers(0, 2**31, (2,)), u32)


def V(value):
    """A fixed value (the same for every example)."""
    return lambda rng: np.asarray(value)


# ---- the cases -------------------------------------------------------------
@dataclasses.dataclass
class Case:
    name: str
    fn: Callable
    args: Sequence[Callable]          # one generator per positional argument
    in_axes: Sequence[Any] = (0,)     # variants to try; each is jax.vmap's in_axes
    rtol: float = 1e-5
    atol: float = 1e-5
    xfail: str | None = None
    out_axes: Any = 0


CASES: list[Case] = []


def case(name, fn, *args, in_axes=(0,), rtol=1e-5, atol=1e-5, xfail=None, out_axes=0):
    CASES.append(Case(name, fn, args, tuple(in_axes), rtol, atol, xfail, out_axes))


# Single-argument families alternate the batch axis between cases, which
# keeps the sweep fast while each family still sees both a leading and an
# inner batch axis.
def _alternate(k, axes=(0, 1)):
    return (axes[k % len(axes)],)


# Elementwise unary jnp functions.
UNARY = {
    "sin": jnp.sin, "cos": jnp.cos, "tan": jnp.tan, "arcsin": (jnp.arcsin, U),
    "arccos": (jnp.arccos, U), "arctan": jnp.arctan, "sinh": jnp.sinh, "cosh": jnp.cosh,
    "tanh": jnp.tanh, "arcsinh": jnp.arcsinh, "arccosh": (jnp.arccosh, lambda *s: P(*s, lo=1.1, hi=3)),
    "arctanh": (jnp.arctanh, U), "exp": jnp.exp, "exp2": jnp.exp2, "expm1": jnp.expm1,
    "log": (jnp.log, P), "log1p": (jnp.log1p, P), "log2": (jnp.log2, P),
    "log10": (jnp.log10, P), "sqrt": (jnp.sqrt, P), "cbrt": jnp.cbrt,
    "square": jnp.square, "reciprocal": (jnp.reciprocal, P), "abs": jnp.abs,
    "sign": jnp.sign, "floor": jnp.floor, "ceil": jnp.ceil, "round": jnp.round,
    "rint": jnp.rint, "trunc": jnp.trunc, "sinc": jnp.sinc, "deg2rad": jnp.deg2rad,
    "isnan": jnp.isnan, "isfinite": jnp.isfinite, "signbit": jnp.signbit,
    "negative": jnp.negative, "i0": jnp.i0, "nan_to_num": jnp.nan_to_num,
    "round_2": functools.partial(jnp.round, decimals=2),
    "frexp": jnp.frexp, "modf": jnp.modf,
    "angle_complex": (jnp.angle, C), "abs_complex": (jnp.abs, C),
    "conj_complex": (jnp.conj, C), "exp_complex": (jnp.exp, C),
    "sqrt_complex": (jnp.sqrt, C), "real_imag": (lambda z: (jnp.real(z), jnp.imag(z)), C),
    "bitwise_not": (jnp.bitwise_not, I), "popcount": (lax.population_count, I),
    "clz": (lax.clz, I), "logical_not": (jnp.logical_not, B),
    "int_abs": (jnp.abs, I), "int_sign": (jnp.sign, I),
    "astype_int": lambda x: (x * 10).astype(jnp.int32),
    "astype_bf16": lambda x: x.astype(jnp.bfloat16),
    "bitcast": lambda x: lax.bitcast_convert_type(x, jnp.int32),
    "reduce_precision": lambda x: lax.reduce_precision(x, 5, 10),
    "integer_pow": lambda x: lax.integer_pow(x, 5),
    "rsqrt": (lax.rsqrt, P),
    "erf_inv": (lax.erf_inv, U),
    "is_finite": lax.is_finite,
}
for _k, (_name, _spec) in enumerate(UNARY.items()):
    _fn, _gen = _spec if isinstance(_spec, tuple) else (_spec, F)
    case(f"jnp.{_name}", _fn, _gen(4, 5), in_axes=_alternate(_k))

# Elementwise binary jnp functions: both batched, and one side unbatched.
BINARY = {
    "add": jnp.add, "subtract": jnp.subtract, "multiply": jnp.multiply,
    "divide": (jnp.divide, F, P), "power": (jnp.power, P, F), "float_power": (jnp.float_power, P, F),
    "arctan2": jnp.arctan2, "hypot": jnp.hypot, "maximum": jnp.maximum, "minimum": jnp.minimum,
    "fmax": jnp.fmax, "fmin": jnp.fmin, "mod": (jnp.mod, F, P), "fmod": (jnp.fmod, F, P),
    "floor_divide": (jnp.floor_divide, F, P), "copysign": jnp.copysign,
    "nextafter": jnp.nextafter, "logaddexp": jnp.logaddexp, "logaddexp2": jnp.logaddexp2,
    "heaviside": jnp.heaviside, "greater": jnp.greater, "less_equal": jnp.less_equal,
    "equal": jnp.equal, "isclose": jnp.isclose,
    "ldexp": (jnp.ldexp, F, lambda *s: I(*s, lo=-3, hi=4)),
    "int_floor_divide": (jnp.floor_divide, I, lambda *s: I(*s, lo=1, hi=5)),
    "int_remainder": (jnp.remainder, I, lambda *s: I(*s, lo=1, hi=5)),
    "gcd": (jnp.gcd, I, I), "lcm": (jnp.lcm, lambda *s: I(*s, lo=1, hi=12),
                                      lambda *s: I(*s, lo=1, hi=12)),
    "left_shift": (jnp.left_shift, I, lambda *s: I(*s, lo=0, hi=8)),
    "right_shift": (jnp.right_shift, I, lambda *s: I(*s, lo=0, hi=8)),
    "bitwise_and": (jnp.bitwise_and, I, I), "bitwise_xor": (jnp.bitwise_xor, I, I),
    "logical_or": (jnp.logical_or, B, B),
    "complex": lax.complex,
}
for _k, (_name, _spec) in enumerate(BINARY.items()):
    _fn, _ga, _gb = _spec if isinstance(_spec, tuple) else (_spec, F, F)
    case(f"jnp.{_name}", _fn, _ga(4, 5), _gb(4, 5), in_axes=_alternate(_k, ((0, 0), (None, 1))))

# Broadcasting between a batched matrix and an unbatched vector / scalar.
case("jnp.add_broadcast_row", jnp.add, F(4, 5), F(5), in_axes=((0, 0), (0, None), (None, 0)))
case("jnp.where_broadcast", jnp.where, B(4, 1), F(4, 5), F(5), in_axes=((0, 0, 0), (0, None, None), (None, 0, None)))
case("jnp.clip", jnp.clip, F(4, 5), F(), P(), in_axes=((0, 0, 0), (0, None, None), (None, 0, 0)))
case("jnp.where_1arg_sized", lambda x: jnp.where(x > 0, size=4, fill_value=-1), F(6))

# Reductions.
REDUCTIONS = {
    "sum": jnp.sum, "prod": jnp.prod, "mean": jnp.mean, "var": jnp.var, "std": jnp.std,
    "max": jnp.max, "min": jnp.min, "argmax": jnp.argmax, "argmin": jnp.argmin,
    "ptp": jnp.ptp, "nansum": jnp.nansum, "nanmean": jnp.nanmean,
    "sum_axis0": functools.partial(jnp.sum, axis=0),
    "mean_axis1_keepdims": functools.partial(jnp.mean, axis=1, keepdims=True),
    "argmax_axis1": functools.partial(jnp.argmax, axis=1),
    "max_axis0": functools.partial(jnp.max, axis=0),
    "all": lambda x: jnp.all(x > -1), "any": lambda x: jnp.any(x > 1),
    "count_nonzero": lambda x: jnp.count_nonzero(x > 0, axis=1),
    "average_weighted": lambda x: jnp.average(x, axis=1, weights=jnp.arange(1., 6.)),
    "median": jnp.median, "percentile": lambda x: jnp.percentile(x, 30.0),
    "quantile_axis": lambda x: jnp.quantile(x, jnp.array([0.25, 0.75]), axis=1),
    "cumsum": functools.partial(jnp.cumsum, axis=1),
    "cumprod": functools.partial(jnp.cumprod, axis=0),
    "cummax": functools.partial(lax.cummax, axis=1),
    "cumlogsumexp": functools.partial(lax.cumlogsumexp, axis=1),
    "diff": functools.partial(jnp.diff, axis=1),
    "logsumexp": jss.logsumexp,
    "logsumexp_axis": functools.partial(jss.logsumexp, axis=-1),
    "norm_vec_flat": lambda x: jnp.linalg.norm(x.ravel()),
    "norm_fro": jnp.linalg.norm,
    "norm_axis_ord1": lambda x: jnp.linalg.norm(x, ord=1, axis=1),
    "norm_inf": lambda x: jnp.linalg.norm(x, ord=jnp.inf),
    "norm_2_matrix": lambda x: jnp.linalg.norm(x, ord=2),
    "int_sum": lambda x: jnp.sum(x.astype(jnp.int32)),
}
for _k, (_name, _fn) in enumerate(REDUCTIONS.items()):
    case(f"jnp.{_name}", _fn, F(4, 5), in_axes=_alternate(_k, (0, 2)))

# Shape manipulation and indexing.
SHAPE = {
    "reshape": lambda x: x.reshape(5, 4), "ravel": jnp.ravel, "transpose": jnp.transpose,
    "swapaxes": lambda x: jnp.swapaxes(x[None], 0, 2), "moveaxis": lambda x: jnp.moveaxis(x[..., None], 2, 0),
    "expand_squeeze": lambda x: jnp.squeeze(jnp.expand_dims(x, 1), 1),
    "flip": jnp.flip, "fliplr": jnp.fliplr, "roll": lambda x: jnp.roll(x, 2, axis=1),
    "roll_flat": lambda x: jnp.roll(x, 3), "rot90": jnp.rot90,
    "tile": lambda x: jnp.tile(x, (2, 1)), "repeat": lambda x: jnp.repeat(x, 2, axis=0),
    "broadcast_to": lambda x: jnp.broadcast_to(x[:, :1], (4, 5)),
    "stack": lambda x: jnp.stack([x, 2 * x], axis=1), "hstack": lambda x: jnp.hstack([x, x[:, :2]]),
    "vstack": lambda x: jnp.vstack([x, x[:1]]), "split": lambda x: jnp.split(x, [1, 3], axis=0),
    "array_split": lambda x: jnp.array_split(x, 2, axis=1),
    "pad_constant": lambda x: jnp.pad(x, ((1, 2), (0, 1)), constant_values=3.0),
    "pad_edge": lambda x: jnp.pad(x, 2, mode="edge"),
    "pad_reflect": lambda x: jnp.pad(x, 2, mode="reflect"),
    "pad_wrap": lambda x: jnp.pad(x, ((1, 1), (2, 2)), mode="wrap"),
    "triu": jnp.triu, "tril": lambda x: jnp.tril(x, -1), "diagonal": jnp.diagonal,
    "trace": jnp.trace, "diag_embed": lambda x: jnp.diag(x[0]),
    "strided_slice": lambda x: x[::2, 1::2], "negative_slice": lambda x: x[::-1, -3:],
    "static_index": lambda x: x[2, 3], "newaxis_ellipsis": lambda x: x[None, ..., None],
    "sort": functools.partial(jnp.sort, axis=1), "argsort": jnp.argsort,
    "sort_axis0_desc": lambda x: jnp.sort(x, axis=0, descending=True),
    "lexsort": lambda x: jnp.lexsort((x[0], x[1])),
    "partition": lambda x: jnp.partition(x, 2, axis=1),
    "top_k": lambda x: lax.top_k(x, 2),
    "searchsorted": lambda x: jnp.searchsorted(jnp.sort(x[0]), x[1]),
    "nonzero_sized": lambda x: jnp.nonzero(x > 0, size=6, fill_value=0),
    "argwhere_sized": lambda x: jnp.argwhere(x > 0, size=5),
    "take_static": lambda x: jnp.take(x, jnp.array([3, 0, 2]), axis=1),
    "fancy_index_static": lambda x: x[jnp.array([0, 2]), jnp.array([1, 4])],
    "at_set_static": lambda x: x.at[1, 2].set(7.0),
    "at_add_slice": lambda x: x.at[1:3].add(1.0),
    "meshgrid": lambda x: jnp.meshgrid(x[0], x[1, :3]),
    "outer": lambda x: jnp.outer(x[0], x[1]),
    "kron": lambda x: jnp.kron(x[:2, :2], x[2:, 3:]),
    "vander": lambda x: jnp.vander(x[0], 3),
    "unravel_sum": lambda x: jnp.sum(x, axis=(0, 1)) + x.size,
}
for _k, (_name, _fn) in enumerate(SHAPE.items()):
    case(f"jnp.{_name}", _fn, F(4, 5), in_axes=_alternate(_k))

# Functions of two arrays with data-dependent indexing or products.
case("jnp.take_indices", lambda x, i: jnp.take(x, i, axis=0), F(6, 3), I(4, lo=0, hi=6),
     in_axes=((0, 0), (None, 0), (0, None)))
case("jnp.take_along_axis", lambda x, i: jnp.take_along_axis(x, i, axis=1), F(4, 5),
     I(4, 2, lo=0, hi=5), in_axes=((0, 0), (0, None)))
case("jnp.dynamic_index", lambda x, i: x[i], F(6, 3), I(lo=0, hi=6), in_axes=((0, 0), (None, 0)))
case("jnp.at_set_dynamic", lambda x, i: x.at[i].set(0.0), F(6), I(lo=0, hi=6),
     in_axes=((0, 0), (0, None)))
case("jnp.at_add_scatter", lambda x, i, u: x.at[i].add(u), F(6), I(4, lo=0, hi=6), F(4),
     in_axes=((0, 0, 0), (None, 0, None)))
case("lax.dynamic_slice", lambda x, i: lax.dynamic_slice(x, (i, 0), (2, 3)), F(6, 3),
     I(lo=0, hi=5), in_axes=((0, 0), (0, None), (None, 0)))
case("lax.dynamic_update_slice", lambda x, u, i: lax.dynamic_update_slice(x, u, (i,)),
     F(6), F(2), I(lo=0, hi=5), in_axes=((0, 0, 0), (0, None, None), (None, 0, None)))
case("jnp.searchsorted_sorted", jnp.searchsorted, V(np.linspace(-2, 2, 7).astype(np.float32)),
     F(5), in_axes=((None, 0),))
case("jnp.interp", lambda x: jnp.interp(x, jnp.linspace(-2, 2, 5), jnp.arange(5.)), F(6))
case("jnp.bincount", lambda i: jnp.bincount(i, length=6), I(8, lo=0, hi=6))
case("jnp.one_hot_argmax", lambda x: jax.nn.one_hot(jnp.argmax(x, -1), 5), F(4, 5))
case("jnp.dot", jnp.dot, F(4, 5), F(5, 2), in_axes=((0, 0), (0, None), (None, 0)))
case("jnp.matmul_batched", jnp.matmul, F(2, 4, 5), F(2, 5, 3), in_axes=((0, 0), (None, 0)))
case("jnp.vdot", jnp.vdot, F(6), F(6), in_axes=((0, 0), (0, None)))
case("jnp.inner", jnp.inner, F(3, 6), F(4, 6), in_axes=((0, 0), (None, 0)))
case("jnp.tensordot", lambda a, b: jnp.tensordot(a, b, axes=([1, 2], [0, 1])), F(2, 3, 4),
     F(3, 4, 5), in_axes=((0, 0), (0, None)))
case("jnp.einsum_bij_bjk", lambda a, b: jnp.einsum("bij,bjk->bki", a, b), F(2, 3, 4),
     F(2, 4, 5), in_axes=((0, 0), (None, 0)))
case("jnp.einsum_trace", lambda a: jnp.einsum("ii->", a), F(4, 4))
case("jnp.cross", jnp.cross, F(4, 3), F(4, 3), in_axes=((0, 0), (0, None)))
case("jnp.convolve", jnp.convolve, F(8), F(3), in_axes=((0, 0), (0, None)))
case("jnp.correlate", functools.partial(jnp.correlate, mode="same"), F(8), F(3),
     in_axes=((0, None),))
case("jnp.polyval", jnp.polyval, F(4), F(6), in_axes=((0, 0), (None, 0), (0, None)))
case("jnp.polyval_horner_loop", lambda c, x: functools.reduce(lambda acc, ci: acc * x + ci, c, 0.),
     F(4), F(6), in_axes=((None, 0),))
case("jnp.histogram", lambda x: jnp.histogram(x, bins=4, range=(-2, 2)), F(10))
case("jnp.allclose", lambda a, b: jnp.allclose(a, b, atol=0.5), F(5), F(5),
     in_axes=((0, 0), (0, None)))
case("jnp.array_equal", jnp.array_equal, I(5, lo=0, hi=2), I(5, lo=0, hi=2),
     in_axes=((0, 0), (0, None)))
case("jnp.select", lambda x: jnp.select([x < -0.5, x > 0.5], [x * 2, x * 3], 0.0), F(6))
case("jnp.piecewise", lambda x: jnp.piecewise(x, [x < 0], [lambda v: -v, lambda v: v ** 2]), F(6))
case("jnp.linspace_from_input", lambda a, b: jnp.linspace(a, b, 5), F(), F(),
     in_axes=((0, 0), (0, None)))
case("jnp.arange_scale", lambda x: x * jnp.arange(5.0), F())
case("jnp.eye_like", lambda x: x * jnp.eye(4) + jnp.ones((4, 4)), F(4, 4))
case("jnp.cov", jnp.cov, F(3, 8))
case("jnp.corrcoef", jnp.corrcoef, F(3, 8))
case("jnp.unwrap", jnp.unwrap, F(8))
case("jnp.gradient", jnp.gradient, F(8))
case("jnp.trapezoid", jnp.trapezoid, F(8))
case("jnp.isin", lambda x, t: jnp.isin(x, t), I(6, lo=0, hi=5), I(3, lo=0, hi=5),
     in_axes=((0, 0), (0, None), (None, 0)))
case("jnp.unique_sized", lambda x: jnp.unique(x, size=4, fill_value=-1), I(6, lo=0, hi=4))
case("jnp.einsum_3_operands", lambda a, b, c: jnp.einsum("ij,jk,k->i", a, b, c), F(2, 3),
     F(3, 4), F(4), in_axes=((0, 0, 0), (None, 0, None), (None, None, 0)))
case("jnp.fft.rfft", lambda x: jnp.abs(jnp.fft.rfft(x)), F(8))
case("jax.image.resize", lambda x: jax.image.resize(x, (6, 4), "linear"), F(3, 2))
case("jax.hessian", jax.hessian(lambda x: jnp.sum(jnp.sin(x) * x[::-1])), F(3))

# Linear algebra.
case("jnp.linalg.solve", jnp.linalg.solve, WELL(4), F(4), in_axes=((0, 0), (None, 0), (0, None)))
case("jnp.linalg.inv", jnp.linalg.inv, WELL(4))
case("jnp.linalg.det", jnp.linalg.det, WELL(3))
case("jnp.linalg.slogdet", jnp.linalg.slogdet, WELL(3))
case("jnp.linalg.cholesky", jnp.linalg.cholesky, SPD(4))
case("jnp.linalg.qr", jnp.linalg.qr, F(4, 3))
case("jnp.linalg.eigh", jnp.linalg.eigh, SPD(3))
case("jnp.linalg.eigvalsh", jnp.linalg.eigvalsh, SPD(3))
case("jnp.linalg.svd", lambda a: jnp.linalg.svd(a, compute_uv=False), F(4, 3))
case("jnp.linalg.pinv", jnp.linalg.pinv, F(4, 3), rtol=1e-4, atol=1e-4)
case("jnp.linalg.matrix_power", lambda a: jnp.linalg.matrix_power(a, 3), F(3, 3))
case("jnp.linalg.multi_dot", lambda a, b, c: jnp.linalg.multi_dot([a, b, c]), F(2, 3),
     F(3, 4), F(4, 2), in_axes=((0, 0, 0), (None, 0, None)))
case("jnp.linalg.lstsq", lambda a, b: jnp.linalg.lstsq(a, b)[0], F(5, 3), F(5),
     in_axes=((0, 0),), rtol=1e-4, atol=1e-4)
case("jsl.solve_triangular", lambda a, b: jsl.solve_triangular(a, b, lower=True), TRI(4),
     F(4), in_axes=((0, 0), (None, 0)))
case("jsl.cho_solve", lambda a, b: jsl.cho_solve(jsl.cho_factor(a), b), SPD(4), F(4),
     in_axes=((0, 0), (None, 0)))
case("jsl.lu", jsl.lu, WELL(3))
case("jsl.expm", jsl.expm, F(3, 3), rtol=1e-4, atol=1e-4)
case("jsl.toeplitz", jsl.toeplitz, F(4))
case("jsl.block_diag", jsl.block_diag, F(2, 2), F(1, 3), in_axes=((0, 0), (0, None)))
case("jsl.det", jsl.det, WELL(3))

# jax.nn.
NN = {
    "relu": jax.nn.relu, "relu6": jax.nn.relu6, "sigmoid": jax.nn.sigmoid,
    "softplus": jax.nn.softplus, "soft_sign": jax.nn.soft_sign, "silu": jax.nn.silu,
    "gelu_tanh": jax.nn.gelu, "gelu_exact": functools.partial(jax.nn.gelu, approximate=False),
    "elu": jax.nn.elu, "celu": jax.nn.celu, "selu": jax.nn.selu,
    "leaky_relu": jax.nn.leaky_relu, "hard_tanh": jax.nn.hard_tanh,
    "hard_sigmoid": jax.nn.hard_sigmoid, "hard_silu": jax.nn.hard_silu,
    "log_sigmoid": jax.nn.log_sigmoid, "mish": jax.nn.mish, "squareplus": jax.nn.squareplus,
    "sparse_plus": jax.nn.sparse_plus, "softmax": jax.nn.softmax,
    "log_softmax": jax.nn.log_softmax, "softmax_axis0": functools.partial(jax.nn.softmax, axis=0),
    "logsumexp": jax.nn.logsumexp, "standardize": jax.nn.standardize,
    "glu": jax.nn.glu, "logmeanexp": getattr(jax.nn, "logmeanexp", jss.logsumexp),
}
for _k, (_name, _fn) in enumerate(NN.items()):
    case(f"nn.{_name}", _fn, F(4, 6), in_axes=_alternate(_k))
case("nn.one_hot", lambda i: jax.nn.one_hot(i, 5), I(4, lo=0, hi=5))
case("nn.dot_product_attention_bias_mask", lambda q, k, v, b, m: jax.nn.dot_product_attention(
    q, k, v, bias=b, mask=m), F(4, 2, 8), F(6, 2, 8), F(6, 2, 8), F(2, 4, 6), B(2, 4, 6),
     in_axes=((0, 0, 0, None, None), (None, None, None, 0, 0)))
case("nn.dot_product_attention_causal", functools.partial(jax.nn.dot_product_attention,
                                                          is_causal=True),
     F(5, 2, 4), F(5, 2, 4), F(5, 2, 4))
case("nn.dot_product_attention", jax.nn.dot_product_attention, F(4, 2, 8), F(6, 2, 8),
     F(6, 2, 8), in_axes=((0, 0, 0), (0, None, None)))

# jax.scipy.special.
SPECIAL = {
    "erf": jss.erf, "erfc": jss.erfc, "erfinv": (jss.erfinv, U), "gammaln": (jss.gammaln, P),
    "digamma": (jss.digamma, P), "gamma": (jss.gamma, P), "expit": jss.expit,
    "logit": (jss.logit, U), "ndtr": jss.ndtr, "ndtri": (jss.ndtri, U),
    "log_ndtr": jss.log_ndtr, "i0e": jss.i0e, "i1e": jss.i1e, "i1": jss.i1,
    "entr": (jss.entr, P), "erfcx": jss.erfcx, "spence": (jss.spence, P),
    "factorial": (lambda x: jss.factorial(jnp.round(x)), lambda *s: P(*s, lo=0, hi=6)),
    "polygamma1": (lambda x: jss.polygamma(1, x), P), "exp1": (jss.exp1, P),
    "expi": (jss.expi, P), "dawsn": jss.dawsn, "multigammaln": (lambda x: jss.multigammaln(x + 2, 2), P),
    "loggamma": (jss.loggamma, P), "gammasgn": jss.gammasgn,
}
for _name, _spec in SPECIAL.items():
    _fn, _gen = _spec if isinstance(_spec, tuple) else (_spec, F)
    case(f"special.{_name}", _fn, _gen(5), in_axes=(0,), rtol=1e-4, atol=1e-5)
SPECIAL2 = {
    "xlogy": (jss.xlogy, F, P), "xlog1py": (jss.xlog1py, F, P), "betaln": (jss.betaln, P, P),
    "zeta": (jss.zeta, lambda *s: P(*s, lo=1.5, hi=4), P), "gammainc": (jss.gammainc, P, P),
    "gammaincc": (jss.gammaincc, P, P), "kl_div": (jss.kl_div, P, P),
    "rel_entr": (jss.rel_entr, P, P), "poch": (jss.poch, P, P),
}
for _k, (_name, (_fn, _ga, _gb)) in enumerate(SPECIAL2.items()):
    case(f"special.{_name}", _fn, _ga(5), _gb(5), in_axes=_alternate(_k, ((0, 0), (None, 0))),
         rtol=1e-4, atol=1e-5)
case("special.betainc", jss.betainc, P(5), P(5), U(5), in_axes=((None, 0, 0),),
     rtol=1e-4, atol=1e-5)
case("special.logsumexp_b", lambda a, b: jss.logsumexp(a, b=b, axis=-1), F(4, 5), P(4, 5),
     in_axes=((0, 0), (0, None)))
case("special.softmax", jss.softmax, F(5))

# jax.scipy.stats.
STATS = {
    "norm.pdf": (jst.norm.pdf, F), "norm.logpdf": (jst.norm.logpdf, F),
    "norm.cdf": (jst.norm.cdf, F), "norm.ppf": (jst.norm.ppf, U),
    "norm.logcdf": (jst.norm.logcdf, F), "norm.sf": (jst.norm.sf, F),
    "t.logpdf": (lambda x: jst.t.logpdf(x, 4.0), F),
    "laplace.logpdf": (jst.laplace.logpdf, F), "cauchy.logpdf": (jst.cauchy.logpdf, F),
    "logistic.cdf": (jst.logistic.cdf, F), "logistic.logpdf": (jst.logistic.logpdf, F),
    "expon.logpdf": (jst.expon.logpdf, P), "uniform.logpdf": (jst.uniform.logpdf, U),
    "chi2.logpdf": (lambda x: jst.chi2.logpdf(x, 3.0), P),
    "gamma.logpdf": (lambda x: jst.gamma.logpdf(x, 2.0), P),
    "beta.logpdf": (lambda x: jst.beta.logpdf(x, 2.0, 3.0), U),
    "gennorm.logpdf": (lambda x: jst.gennorm.logpdf(x, 1.5), F),
    "gumbel_r.logpdf": (jst.gumbel_r.logpdf, F),
    "pareto.logpdf": (lambda x: jst.pareto.logpdf(x + 1.0, 2.0), P),
    "vonmises.logpdf": (lambda x: jst.vonmises.logpdf(x, 1.5), F),
    "poisson.logpmf": (lambda k: jst.poisson.logpmf(k, 3.0), lambda *s: I(*s, lo=0, hi=8)),
    "bernoulli.logpmf": (lambda k: jst.bernoulli.logpmf(k, 0.3), lambda *s: I(*s, lo=0, hi=2)),
    "binom.logpmf": (lambda k: jst.binom.logpmf(k, 10, 0.4), lambda *s: I(*s, lo=0, hi=10)),
    "geom.logpmf": (lambda k: jst.geom.logpmf(k, 0.3), lambda *s: I(*s, lo=1, hi=8)),
    "beta.cdf": (lambda x: jst.beta.cdf(x, 2.0, 3.0), U),
    "gamma.cdf": (lambda x: jst.gamma.cdf(x, 2.0), P),
}
for _name, (_fn, _gen) in STATS.items():
    case(f"stats.{_name}", _fn, _gen(5), in_axes=(0,), rtol=1e-4, atol=1e-5)
case("stats.norm.logpdf_loc_scale", jst.norm.logpdf, F(5), F(5), P(5),
     in_axes=((0, 0, 0), (0, None, None), (None, 0, 0)))
case("stats.multivariate_normal.logpdf", jst.multivariate_normal.logpdf, F(3), F(3), SPD(3),
     in_axes=((0, 0, 0), (0, None, None)), rtol=1e-4, atol=1e-4)
case("stats.dirichlet.logpdf", jst.dirichlet.logpdf, PROBS(4), P(4), in_axes=((0, 0), (0, None)),
     rtol=1e-4, atol=1e-4)
case("stats.rankdata", jst.rankdata, F(6))
case("stats.mode", lambda x: jst.mode(x)[0], I(6, lo=0, hi=3))
case("stats.sem", jst.sem, F(6))

# jax.lax.
case("lax.conv_1d", lambda x, w: lax.conv_general_dilated(x[None], w, (1,), "SAME")[0],
     F(2, 8), F(3, 2, 3), in_axes=((0, 0), (0, None)))
case("lax.reduce_window_max", lambda x: lax.reduce_window(x, -jnp.inf, lax.max, (2, 2),
                                                          (1, 1), "VALID"), F(4, 5))
case("lax.avg_pool", lambda x: lax.reduce_window(x, 0.0, lax.add, (2,), (2,), "VALID") / 2,
     F(8))
case("lax.fori_loop", lambda x: lax.fori_loop(0, 3, lambda i, c: c * 0.5 + jnp.sin(c), x), F(4))
case("lax.scan_cumsum", lambda x: lax.scan(lambda c, v: (c + v, c * v), 0.0, x), F(5))
case("lax.while_loop", lambda x: lax.while_loop(lambda c: c[0] < 5, lambda c: (c[0] + 1, c[1] * 1.1),
                                                (0, x)), F(4))
case("lax.cond", lambda p, x: lax.cond(p, jnp.sin, jnp.cos, x), B(), F(4),
     in_axes=((0, 0), (None, 0)))
case("lax.switch", lambda i, x: lax.switch(i, [jnp.sin, jnp.cos, jnp.tanh], x), I(lo=0, hi=3),
     F(4), in_axes=((0, 0), (None, 0)))
case("lax.map", lambda x: lax.map(jnp.sum, x), F(3, 4))
case("lax.associative_scan", lambda x: lax.associative_scan(jnp.add, x), F(8))
case("lax.select", lax.select, B(4), F(4), F(4), in_axes=((0, 0, 0), (None, 0, None)))
case("lax.clamp", lax.clamp, F(), F(4), P(), in_axes=((0, 0, 0), (None, 0, None), (0, None, 0)))
case("lax.pad_interior_negative", lambda x, v: lax.pad(x, v, [(1, -1, 1), (-1, 2, 0)]),
     F(3, 4), F(), in_axes=((0, 0), (0, None), (None, 0)))
case("lax.rev", lambda x: lax.rev(x, (0, 1)), F(3, 4))
case("lax.broadcasted_iota", lambda x: x + lax.broadcasted_iota(jnp.float32, (3, 4), 1), F(3, 4))
case("lax.reduce_custom", lambda x: lax.reduce((x, jnp.abs(x)), (0.0, 0.0),
                                               lambda a, b: (a[0] + b[0], jnp.maximum(a[1], b[1])),
                                               (0,)), F(4, 5))
case("lax.argmax", lambda x: lax.argmax(x, 1, jnp.int32), F(4, 5))
case("lax.sort_multi", lambda k, v: lax.sort((k, v), num_keys=1), F(6), I(6),
     in_axes=((0, 0), (0, None)))
case("lax.collapse", lambda x: lax.collapse(x, 0, 2), F(2, 3, 4))
case("lax.batch_matmul", lax.batch_matmul, F(2, 3, 4), F(2, 4, 5), in_axes=((0, 0), (None, 0)))
case("lax.dot_general_contract2", lambda a, b: lax.dot_general(a, b, (((0, 2), (2, 0)), ((), ()))),
     F(2, 3, 4), F(4, 5, 2), in_axes=((0, 0), (0, None), (None, 2)))
case("lax.exp2_logistic", lambda x: lax.exp2(x) + lax.logistic(x), F(5))
case("lax.optimization_barrier", lambda x: lax.optimization_barrier((x, 2 * x)), F(4))
case("lax.random_bits", lambda k: jax.random.bits(jax.random.wrap_key_data(k), (4,)), KEY())
case("random.normal", lambda k: jax.random.normal(jax.random.wrap_key_data(k), (4,)), KEY())
case("random.uniform_unbatched_key", lambda k, x: x + jax.random.uniform(jax.random.wrap_key_data(k), (4,)),
     KEY(), F(4), in_axes=((None, 0),))


case("lax.reduce_batched_init", lambda x, v: lax.reduce(x, v, lax.add, (0,)), F(5), F(),
     in_axes=((0, 0), (None, 0)))


# Control flow with batched predicates, bounds, captures and indices.
def _collatz_steps(n):
    def body(c):
        x, k = c
        return jnp.where(x % 2 == 0, x // 2, 3 * x + 1), k + 1
    return lax.while_loop(lambda c: c[0] > 1, body, (n, 0))[1]


def _newton_converge(a):
    def body(c):
        x, it = c
        return 0.5 * (x + a / x), it + 1
    return lax.while_loop(lambda c: (jnp.abs(c[0] * c[0] - a) > 1e-4) & (c[1] < 50),
                          body, (a, 0))


def _nested_while(x):
    def outer(c):
        i, v = c
        v = lax.while_loop(lambda d: d[0] < i, lambda d: (d[0] + 1, d[1] * 0.9), (0, v))[1]
        return i + 1, v
    return lax.while_loop(lambda c: c[0] < 3, outer, (0, x))[1]


def _cond_in_scan(xs):
    def step(c, x):
        c = lax.cond(x > 0, lambda v: v + x, lambda v: v * 0.5, c)
        return c, c
    return lax.scan(step, 0.0, xs)


def _gather_in_loop(x, w):
    return lax.fori_loop(0, x.shape[0], lambda i, acc: acc + x[i] * w[i], 0.0)


def _update_in_loop(x):
    def body(i, out):
        return lax.dynamic_update_index_in_dim(out, x[i] * 2.0 + out[i - 1], i, 0)
    return lax.fori_loop(0, x.shape[0], body, jnp.zeros_like(x))


case("lax.while_collatz", _collatz_steps, I(lo=1, hi=30))
case("lax.while_newton_converge", _newton_converge, P())
case("lax.while_nested", _nested_while, F(4))
case("lax.fori_loop_batched_bound", lambda n, x: lax.fori_loop(0, n, lambda i, c: c * 1.5 + i, x),
     I(lo=0, hi=5), F(3), in_axes=((0, 0), (0, None), (None, 0)))
case("lax.scan_reverse_unroll", lambda xs, w: lax.scan(lambda c, x: (jnp.tanh(c * w + x), c),
                                                        jnp.zeros(2), xs, reverse=True, unroll=2),
     F(5, 2), F(2), in_axes=((0, 0), (None, 0), (0, None)))
case("lax.scan_closure_batched", lambda w, xs: lax.scan(lambda c, x: (c @ w + x, c.sum()),
                                                         jnp.ones(3), xs),
     F(3, 3), F(4, 3), in_axes=((0, None), (None, 0)))
case("lax.cond_in_scan", _cond_in_scan, F(6))
case("lax.cond_mixed_operands", lambda p, x, w: lax.cond(p, lambda a, b: a @ b,
                                                         lambda a, b: (a @ b) * 2.0, x, w),
     B(), F(4), F(4, 2), in_axes=((0, 0, None), (None, 0, None), (0, None, None), (None, None, 0)))
case("lax.cond_const_branch", lambda p, x: lax.cond(p, lambda v: (v, jnp.ones(2)),
                                                    lambda v: (-v, jnp.zeros(2)), x),
     B(), F(3), in_axes=((0, 0), (0, None), (None, 0)))
case("lax.switch_unbatched_operand", lambda i, x: lax.switch(i, [lambda v: v + 1.0,
                                                               lambda v: v * v], x),
     I(lo=-1, hi=3), F(4), in_axes=((0, None),))
case("lax.map_batch_size", lambda x: lax.map(lambda r: jnp.sort(r)[-1], x, batch_size=2), F(4, 3))
case("lax.gather_in_fori", _gather_in_loop, F(5), F(5), in_axes=((0, None), (0, 0)))
case("lax.update_in_fori", _update_in_loop, F(5))
case("lax.top_k_inner_axis", lambda x: lax.top_k(x.T, 3), F(5, 4), in_axes=(0, 1))
case("lax.sort_stable_desc", lambda k, v: lax.sort((-k, v), num_keys=1, is_stable=True),
     I(8, lo=0, hi=3), F(8), in_axes=((0, 0), (None, 0), (0, None)))
case("jnp.argsort_stable_desc", lambda x: jnp.argsort(x, stable=True, descending=True),
     I(3, 6, lo=0, hi=3), in_axes=(0, 2))
case("lax.dynamic_slice_batched_operand", lambda x, i, j: lax.dynamic_slice(x, (i, j), (2, 2)),
     F(4, 5), I(lo=-1, hi=4), I(lo=0, hi=6), in_axes=((0, None, None), (None, 0, None), (0, 0, 0)))
case("lax.dynamic_update_slice_2d", lambda x, u, i: lax.dynamic_update_slice(x, u, (i, 1)),
     F(4, 5), F(2, 3), I(lo=0, hi=4), in_axes=((0, None, 0), (None, 0, None), (None, None, 0)))
case("lax.grad_through_scan", jax.grad(lambda x: lax.scan(lambda c, a: (c * a + 1, c), 1.0, x)[0]),
     F(4))
case("lax.grad_through_cond", jax.grad(lambda x: lax.cond(x.sum() > 0, jnp.sin, jnp.cos, x).sum()),
     F(4))
case("lax.while_in_cond", lambda x: lax.cond(
    x[0] > 0, lambda v: lax.while_loop(lambda c: c[1] < 3 + 3 * jnp.abs(v[0]),
                                       lambda c: (c[0] * 1.1, c[1] + 1), (v, 0))[0],
    lambda v: -v, x), F(4))
case("random.split_normal", lambda k: jax.random.normal(
    jax.random.split(jax.random.wrap_key_data(k))[1], (3,)), KEY())
case("random.categorical", lambda k, logits: jax.random.categorical(jax.random.wrap_key_data(k), logits),
     KEY(), F(5), in_axes=((0, 0), (None, 0)))
case("random.permutation", lambda k, x: jax.random.permutation(jax.random.wrap_key_data(k), x),
     KEY(), F(6), in_axes=((0, None),))
case("random.fold_in", lambda k, i: jax.random.uniform(
    jax.random.fold_in(jax.random.wrap_key_data(k), i), (2,)), KEY(), I(lo=0, hi=100, dtype=u32),
     in_axes=((None, 0),))


# ---- small model code ------------------------------------------------------
def mlp_layer(params, x):
    w, b = params
    return jax.nn.relu(x @ w + b)


def layer_norm(x, gamma, beta, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) * lax.rsqrt(var + eps) * gamma + beta


def rms_norm(x, gamma):
    return x * lax.rsqrt(jnp.mean(x * x, -1, keepdims=True) + 1e-6) * gamma


def attention(q, k, v):
    s = q @ k.T / jnp.sqrt(q.shape[-1])
    return jax.nn.softmax(s, axis=-1) @ v


def causal_attention(x, wq, wk, wv):
    q, k, v = x @ wq, x @ wk, x @ wv
    s = q @ k.T / jnp.sqrt(q.shape[-1])
    mask = jnp.tril(jnp.ones((x.shape[0], x.shape[0]), bool))
    s = jnp.where(mask, s, -1e9)
    return jax.nn.softmax(s, axis=-1) @ v


def multihead_attention(x, wqkv, wo):
    t, d = x.shape
    h = 2
    qkv = (x @ wqkv).reshape(t, 3, h, d // h)
    q, k, v = qkv[:, 0], qkv[:, 1], qkv[:, 2]
    s = jnp.einsum("thd,shd->hts", q, k) / jnp.sqrt(d // h)
    o = jnp.einsum("hts,shd->thd", jax.nn.softmax(s, -1), v).reshape(t, d)
    return o @ wo


def gelu_mlp(x, w1, b1, w2, b2):
    return jax.nn.gelu(x @ w1 + b1) @ w2 + b2


def swiglu_mlp(x, wg, wu, wd):
    return (jax.nn.silu(x @ wg) * (x @ wu)) @ wd


def transformer_block(x, wqkv, wo, w1, w2, g1, g2):
    h = x + multihead_attention(rms_norm(x, g1), wqkv, wo)
    return h + jax.nn.gelu(rms_norm(h, g2) @ w1) @ w2


def mse_loss(params, x, y):
    w, b = params
    return jnp.mean((x @ w + b - y) ** 2)


def xent_onehot(logits, label):
    return -jnp.sum(jax.nn.one_hot(label, logits.shape[-1]) * jax.nn.log_softmax(logits))


def xent_loss(params, x, y):
    w, b = params
    return xent_onehot(x @ w + b, y)


def xent_take(logits, label):
    return -jnp.take_along_axis(jax.nn.log_softmax(logits), label[None], axis=-1)[0]


def mlp2_loss(params, x, y):
    (w1, b1), (w2, b2) = params
    h = jnp.tanh(x @ w1 + b1)
    return jnp.sum((h @ w2 + b2 - y) ** 2)


def rnn(h0, xs, wh, wx):
    h = h0
    outs = []
    for t in range(xs.shape[0]):
        h = jnp.tanh(h @ wh + xs[t] @ wx)
        outs.append(h)
    return jnp.stack(outs)


def rnn_scan(h0, xs, wh, wx):
    return lax.scan(lambda h, x: (jnp.tanh(h @ wh + x @ wx),) * 2, h0, xs)[1]


def lstm_cell(x, h, c, w):
    z = jnp.concatenate([x, h]) @ w
    i, f, g, o = jnp.split(z, 4)
    c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
    return jax.nn.sigmoid(o) * jnp.tanh(c), c


def gru_cell(x, h, wz, wr, wh):
    xh = jnp.concatenate([x, h])
    z = jax.nn.sigmoid(xh @ wz)
    r = jax.nn.sigmoid(xh @ wr)
    hh = jnp.tanh(jnp.concatenate([x, r * h]) @ wh)
    return (1 - z) * h + z * hh


def embed(table, ids):
    return table[ids].sum(0)


def conv1d_layer(x, w):
    return jax.nn.relu(jnp.stack([jnp.convolve(x[c], w[c], mode="same")
                                  for c in range(x.shape[0])]).sum(0))


def batchnorm_like(x, gamma, beta):
    mu = x.mean(0)
    var = x.var(0)
    return (x - mu) / jnp.sqrt(var + 1e-5) * gamma + beta


def adam_step(p, g, m, v, lr=1e-3, b1=0.9, b2=0.999, t=3):
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    mh, vh = m / (1 - b1 ** t), v / (1 - b2 ** t)
    return p - lr * mh / (jnp.sqrt(vh) + 1e-8), m, v


def pairwise_sqdist(x, y):
    return jnp.sum((x[:, None, :] - y[None, :, :]) ** 2, -1)


def rbf_kernel(x, y, ls):
    return jnp.exp(-pairwise_sqdist(x, y) / (2 * ls ** 2))


def cosine_similarity(a, b):
    return a @ b / (jnp.linalg.norm(a) * jnp.linalg.norm(b))


def huber(x, y, delta=1.0):
    r = jnp.abs(x - y)
    return jnp.mean(jnp.where(r < delta, 0.5 * r ** 2, delta * (r - 0.5 * delta)))


def focal_loss(logits, label, gamma=2.0):
    p = jax.nn.softmax(logits)
    pt = jnp.sum(p * jax.nn.one_hot(label, logits.shape[-1]))
    return -((1 - pt) ** gamma) * jnp.log(pt)


def gaussian_nll(mu, log_sigma, y):
    return jnp.sum(log_sigma + 0.5 * ((y - mu) / jnp.exp(log_sigma)) ** 2)


def newton_sqrt(a):
    x = a
    for _ in range(5):
        x = 0.5 * (x + a / x)
    return x


def positional_encoding(x):
    t, d = x.shape
    pos = jnp.arange(t)[:, None]
    i = jnp.arange(d // 2)[None, :]
    ang = pos / (10000 ** (2 * i / d))
    return x + jnp.concatenate([jnp.sin(ang), jnp.cos(ang)], -1)


def rotary(x):
    t, d = x.shape
    freqs = 1.0 / (10000 ** (jnp.arange(0, d, 2) / d))
    ang = jnp.arange(t)[:, None] * freqs[None]
    x1, x2 = x[:, ::2], x[:, 1::2]
    c, s = jnp.cos(ang), jnp.sin(ang)
    return jnp.stack([x1 * c - x2 * s, x1 * s + x2 * c], -1).reshape(t, d)


def dropout(key, x, rate=0.5):
    keep = jax.random.bernoulli(jax.random.wrap_key_data(key), 1 - rate, x.shape)
    return jnp.where(keep, x / (1 - rate), 0.0)


W45, B5 = F(4, 5), F(5)
case("model.mlp_layer", mlp_layer, (W45, B5), F(4), in_axes=((None, 0), (0, 0), ((None, 0), 0)))
case("model.mlp_layer_tokens", mlp_layer, (W45, B5), F(6, 4), in_axes=((None, 0), (None, 1)))
case("model.layer_norm", layer_norm, F(6, 8), F(8), F(8), in_axes=((0, None, None), (0, 0, 0)))
case("model.rms_norm", rms_norm, F(6, 8), F(8), in_axes=((0, None), (1, None)))
case("model.attention", attention, F(4, 8), F(5, 8), F(5, 8),
     in_axes=((0, 0, 0), (0, None, None), (None, 0, 0)))
case("model.causal_attention", causal_attention, F(5, 8), F(8, 8), F(8, 8), F(8, 8),
     in_axes=((0, None, None, None), (0, 0, 0, 0)))
case("model.multihead_attention", multihead_attention, F(5, 8), F(8, 24), F(8, 8),
     in_axes=((0, None, None), (None, 0, None)))
case("model.gelu_mlp", gelu_mlp, F(6), F(6, 16), F(16), F(16, 4), F(4),
     in_axes=((0, None, None, None, None), (0, 0, 0, 0, 0)))
case("model.swiglu_mlp", swiglu_mlp, F(5, 8), F(8, 16), F(8, 16), F(16, 8),
     in_axes=((0, None, None, None), (None, 0, 0, 0)))
case("model.transformer_block", transformer_block, F(5, 8), F(8, 24), F(8, 8), F(8, 16),
     F(16, 8), F(8), F(8), in_axes=((0,) + (None,) * 6,), rtol=1e-4, atol=1e-4)
case("model.per_example_grad_mse", jax.grad(mse_loss), (W45, B5), F(4), F(5),
     in_axes=((None, 0, 0), (None, 0, None)))
case("model.per_example_value_and_grad_xent", jax.value_and_grad(xent_loss), (W45, B5), F(4),
     I(lo=0, hi=5), in_axes=((None, 0, 0),))
case("model.per_example_grad_mlp2", jax.grad(mlp2_loss),
     ((F(4, 8), F(8)), (F(8, 2), F(2))), F(4), F(2), in_axes=((None, 0, 0),))
case("model.grad_wrt_input", jax.grad(lambda x, w: jnp.sum(jnp.tanh(x @ w) ** 2)), F(4),
     F(4, 3), in_axes=((0, None), (0, 0)))
case("model.xent_onehot", xent_onehot, F(5), I(lo=0, hi=5), in_axes=((0, 0), (0, None)))
case("model.xent_take_along_axis", xent_take, F(5), I(lo=0, hi=5), in_axes=((0, 0),))
case("model.binary_xent", lambda z, y: jnp.mean(jax.nn.softplus(z) - z * y), F(6), U(6),
     in_axes=((0, 0), (0, None)))
case("model.kl_divergence", lambda p, q: jnp.sum(jss.rel_entr(p, q)), PROBS(5), PROBS(5),
     in_axes=((0, 0), (None, 0)))
case("model.rnn_unrolled", rnn, F(4), F(3, 2), F(4, 4), F(2, 4),
     in_axes=((0, 0, None, None), (None, 0, None, None)))
case("model.rnn_scan", rnn_scan, F(4), F(3, 2), F(4, 4), F(2, 4),
     in_axes=((0, 0, None, None),))
case("model.lstm_cell", lstm_cell, F(3), F(4), F(4), F(7, 16),
     in_axes=((0, 0, 0, None), (0, None, None, None)))
case("model.gru_cell", gru_cell, F(3), F(4), F(7, 4), F(7, 4), F(7, 4),
     in_axes=((0, 0, None, None, None),))
case("model.embedding", embed, F(10, 4), I(5, lo=0, hi=10), in_axes=((None, 0), (0, None)))
case("model.conv1d_layer", conv1d_layer, F(2, 8), F(2, 3), in_axes=((0, None), (0, 0)))
case("model.batchnorm_like", batchnorm_like, F(6, 4), F(4), F(4), in_axes=((0, None, None),))
case("model.adam_step", adam_step, F(5), F(5), F(5), P(5), in_axes=((0, 0, 0, 0), (None, 0, None, None)))
case("model.pairwise_sqdist", pairwise_sqdist, F(4, 3), F(5, 3), in_axes=((0, 0), (0, None)))
case("model.rbf_kernel", rbf_kernel, F(4, 3), F(5, 3), P(), in_axes=((0, None, 0), (None, 0, None)))
case("model.cosine_similarity", cosine_similarity, F(6), F(6), in_axes=((0, 0), (0, None)))
case("model.huber", huber, F(6), F(6), in_axes=((0, 0), (0, None)))
case("model.focal_loss", focal_loss, F(5), I(lo=0, hi=5), in_axes=((0, 0),))
case("model.gaussian_nll", gaussian_nll, F(4), F(4), F(4), in_axes=((0, 0, 0), (None, None, 0)))
case("model.newton_sqrt", newton_sqrt, P(5))
case("model.positional_encoding", positional_encoding, F(5, 8))
case("model.rotary", rotary, F(5, 8))
case("model.dropout", dropout, KEY(), F(6), in_axes=((0, 0), (None, 0)))
case("model.logistic_regression_grad",
     jax.grad(lambda w, x, y: jnp.sum(jax.nn.softplus(x @ w) - y * (x @ w))), F(4), F(6, 4),
     U(6), in_axes=((None, 0, 0),))
case("model.hvp", lambda x, v: jax.jvp(jax.grad(lambda z: jnp.sum(jnp.sin(z) * z ** 2)), (x,), (v,))[1],
     F(5), F(5), in_axes=((0, 0), (None, 0)))
case("model.jacfwd", jax.jacfwd(lambda x: jnp.tanh(x) * x.sum()), F(4))
case("model.jacrev", jax.jacrev(lambda x: jax.nn.softmax(x)), F(4))
case("model.quadratic_form", lambda x, a: x @ a @ x, F(4), SPD(4), in_axes=((0, None), (0, 0)))
case("model.normalize", lambda x: x / jnp.linalg.norm(x, axis=-1, keepdims=True), F(4, 3))
case("model.pytree_out", lambda d: {"s": d["a"].sum(), "p": (d["a"] * d["b"], d["b"] - 1)},
     {"a": F(4), "b": F(4)}, in_axes=(0, ({"a": 0, "b": None},)))


def _twice_jitted(x, w):
    inner = jax.jit(lambda a, b: jnp.tanh(a @ b))
    return inner(x, w) + inner(w, x).T + inner(w, w)


# ---- edge cases real code runs into ---------------------------------------
case("edge.identity", lambda x: x, F(4, 5), in_axes=(0, 1))
case("edge.identity_out_axes", lambda x: (x, x), F(4, 5), in_axes=(1,), out_axes=(2, 0))
case("edge.unbatched_result", lambda x, w: (x @ w, w.sum(), jnp.ones(3)), F(4), F(4, 2),
     in_axes=((0, None),))
case("edge.out_axes_1", lambda x, w: x @ w, F(4), F(4, 2), in_axes=((0, None), (None, 0)),
     out_axes=1)
case("edge.out_axes_neg", lambda x: jnp.outer(x, x), F(4), out_axes=-1)
case("edge.empty", lambda x: (jnp.sum(x, 1), x * 2), F(4, 0))
case("edge.scalar_args", lambda a, b: a * b + jnp.sin(a), F(), F(), in_axes=((0, 0), (0, None)))
case("edge.nested_jit_calls", _twice_jitted, F(4, 4), F(4, 4), in_axes=((0, None), (0, 0)))
case("edge.remat_grad", jax.grad(jax.checkpoint(lambda x: jnp.sum(jnp.sin(x) ** 2))), F(5))
case("edge.select_scalar_pred", lax.select, B(), F(4), F(4), in_axes=((0, None, None), (0, 0, None)))
case("edge.max_initial", lambda x, v: jnp.max(x, initial=v), F(5), F(),
     in_axes=((0, 0), (0, None), (None, 0)))
case("edge.concat_mixed", lambda a, b: jnp.concatenate([a, b, jnp.zeros(2)]), F(3), F(4),
     in_axes=((0, None), (None, 0)))
case("edge.dot_precision_highest", lambda a, b: jnp.dot(a, b, precision="highest"), F(3, 4),
     F(4), in_axes=((None, 0), (0, None)))
case("edge.dot_int8_to_int32", lambda a, b: jnp.dot(a, b, preferred_element_type=jnp.int32),
     I(3, 4, dtype=jnp.int8), I(4, 2, dtype=jnp.int8), in_axes=((0, 0), (None, 0)))
case("edge.dot_bf16_f32_acc", lambda a, b: jnp.dot(a, b, preferred_element_type=jnp.float32),
     F(3, 4, dtype=jnp.bfloat16), F(4, 2, dtype=jnp.bfloat16), in_axes=((0, None), (None, 0)))
case("edge.complex_matmul", jnp.matmul, C(3, 4), C(4, 2), in_axes=((0, 0), (None, 0)),
     rtol=1e-4, atol=1e-4)
case("edge.float16_ops", lambda x: jnp.exp(x) * x.sum(), F(5, dtype=jnp.float16))
case("edge.uint8_ops", lambda x, y: (x >> 1) + y * 3, I(5, lo=0, hi=50, dtype=jnp.uint8),
     I(5, lo=0, hi=50, dtype=jnp.uint8), in_axes=((0, 0), (None, 0)))
case("edge.bool_reduce", lambda b: (jnp.all(b, 0), jnp.any(b), b.sum()), B(4, 3))
case("edge.int_sum_dtype", lambda x: jnp.sum(x, dtype=jnp.int32), I(6, dtype=jnp.int8))
case("edge.weak_type_scalar", lambda x: x * 2 + 1.5, F(3))
case("edge.x_T_x", lambda x: x.T @ x, F(4, 3), in_axes=(0, 1))
case("edge.closure_constant", lambda x: x @ jnp.asarray(np.arange(12.0, dtype=np.float32).reshape(4, 3)),
     F(2, 4))
case("edge.named_scope", lambda x: jax.named_call(jnp.sin, name="inner")(x) * 2, F(4))
case("edge.all_unbatched_inputs_but_one", lambda a, b, c: a @ b + c, F(2, 3), F(3, 4), F(4),
     in_axes=((None, None, 0), (None, 0, None)))


# ---- the test --------------------------------------------------------------
def make_args(c: Case, in_axes, seed: int):
    """Batched arguments: each leaf generator gives N examples stacked at its axis."""
    rng = np.random.default_rng(seed)
    axes = in_axes if isinstance(in_axes, tuple) else (in_axes,) * len(c.args)
    gens = tuple(c.args)

    def build(gen, ax):
        if ax is None:
            return jnp.asarray(gen(rng))
        return jnp.asarray(np.stack([gen(rng) for _ in range(N)], axis=ax))

    def build_tree(gen, ax):
        if callable(gen):
            return build(gen, ax)
        if isinstance(gen, dict):
            return {k: build_tree(g, ax[k] if isinstance(ax, dict) else ax)
                    for k, g in gen.items()}
        return type(gen)(build_tree(g, ax[i] if isinstance(ax, (tuple, list)) else ax)
                         for i, g in enumerate(gen))

    return [build_tree(gen, ax) for gen, ax in zip(gens, axes)]


def check_or_unsupported(fn, *args, in_axes=0, out_axes=0, rtol=1e-5, atol=1e-5):
    """batch_lower(fn) matches jax.vmap(fn), or raises UnsupportedOpError that
    names the op and a location. Returns "matched" or ("unsupported", op)."""
    batched = sb.batch_lower(fn, in_axes=in_axes, out_axes=out_axes)
    try:
        batched.lower(*args)  # export and rewrite: where UnsupportedOpError comes from
    except sb.UnsupportedOpError as e:
        msg = str(e)
        assert "cannot batch '" in msg, msg
        assert " at " in msg, msg
        assert e.op_name and f"'{e.op_name}'" in msg, msg
        return ("unsupported", e.op_name)
    # The batched module and the jax.vmap oracle go through one XLA compile;
    # this also checks that the batched function composes with jax.jit.
    vmapped = jax.vmap(fn, in_axes=in_axes, out_axes=out_axes)
    try:
        got, want = jax.jit(lambda *a: (batched(*a), vmapped(*a)))(*args)
    except NotImplementedError:
        # jax.vmap has no rule (lax.reduce with per-lane init values, say):
        # the oracle is the function run once per lane.
        got, want = batched(*args), _lane_loop(fn, args, in_axes, out_axes)
    assert_same_tree(got, want, rtol=rtol, atol=atol)
    return "matched"


def _lane_loop(fn, args, in_axes, out_axes):
    axes = in_axes if isinstance(in_axes, tuple) else (in_axes,) * len(args)
    size = next(a.shape[d] for a, d in zip(args, axes) if d is not None)
    lanes = [fn(*[a if d is None else jnp.take(a, i, axis=d) for a, d in zip(args, axes)])
             for i in range(size)]
    assert out_axes == 0, "the lane-loop oracle stacks results along axis 0"
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *lanes)


def run_case(c: Case):
    """Runs every in_axes variant of ``c``; returns one outcome per variant."""
    outcomes = []
    for k, in_axes in enumerate(c.in_axes):
        args = make_args(c, in_axes, seed=k)
        try:
            outcomes.append(check_or_unsupported(c.fn, *args, in_axes=in_axes,
                                                 out_axes=c.out_axes,
                                                 rtol=c.rtol, atol=c.atol))
        except Exception as e:  # name the variant that failed
            raise AssertionError(f"{c.name} with in_axes={in_axes}: "
                                 f"{type(e).__name__}: {e}") from e
    return outcomes


def _param(c: Case):
    marks = [pytest.mark.xfail(strict=True, reason=c.xfail)] if c.xfail else []
    return pytest.param(c, id=c.name, marks=marks)


assert len({c.name for c in CASES}) == len(CASES), "duplicate case names"


@pytest.mark.parametrize("c", [_param(c) for c in CASES])
def test_real_function(c):
    run_case(c)


if __name__ == "__main__":
    import sys
    import traceback

    summary = collections.defaultdict(list)
    blockers = collections.Counter()
    for c in CASES:
        try:
            outcomes = run_case(c)
        except Exception:
            summary["FAILED" + (" (xfail)" if c.xfail else "")].append(c.name)
            if "-v" in sys.argv:
                traceback.print_exc()
            continue
        ops = sorted({o[1] for o in outcomes if o != "matched"})
        if not ops:
            summary["matched"].append(c.name)
        elif len(ops) == len(outcomes) or all(o != "matched" for o in outcomes):
            summary["unsupported"].append(f"{c.name}: {', '.join(ops)}")
            blockers.update(ops)
        else:
            summary["partly matched"].append(f"{c.name}: {', '.join(ops)}")
            blockers.update(ops)
    for k, names in summary.items():
        print(f"\n== {k} ({len(names)})")
        for n in names:
            print("  ", n)
    print("\n== blocking ops (functions blocked)")
    for op, n in blockers.most_common():
        print(f"  {n:4d}  {op}")
