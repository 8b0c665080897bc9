"""The sweep: 250+ public jax.numpy, jax.numpy.linalg, jax.scipy (special,
linalg, signal, stats, ndimage), jax.nn, lax and jax.random functions, each
batched with batch_lower and compared with jax.vmap, with no FallbackWarning allowed (a
function that needs the per-lane loop is a missing rule). Host callbacks are
the one exception: they are expected to fall back.

To keep the compile count low, the functions are grouped: one test case
batches one function that calls a group of them, and compares each output
(the failure names the function). Two configurations per group: every
argument batched at axis 0, and a mix (the first argument batched at another
axis, the others unbatched; single-argument functions alternate between
batched at -1 and unbatched). ``SWEEP_ONE=name`` runs that function alone;
``SWEEP_FULL=1`` adds batch sizes 0, 1 and 5.

The list also covers lax (the ops jnp does not reach: windows, variadic
reductions, control flow, lax.linalg, ApproxTopK, ...) and jax.random (raw
key data in and out, wrapped into a typed key inside the function).
"""
from __future__ import annotations

import dataclasses
import os
import warnings
from typing import Callable

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import jax.scipy.signal as jsig
import jax.scipy.special as jsp
import jax.scipy.stats as jst
import numpy as np
import pytest
from jax import lax
from jax.scipy import ndimage

import stablehlo_batch as sb
from conftest import assert_same_tree

f32, i32 = jnp.float32, jnp.int32


# ---- per-example inputs -----------------------------------------------------
def _gen(kind: str, shape, rng: np.random.Generator):
    """One example's value of ``kind`` (the domain the function needs)."""
    if kind == "f":
        return rng.standard_normal(shape).astype(np.float32)
    if kind == "pos":
        return rng.uniform(0.5, 2.0, shape).astype(np.float32)
    if kind == "unit":
        return rng.uniform(0.05, 0.95, shape).astype(np.float32)
    if kind == "gt1":
        return rng.uniform(1.1, 3.0, shape).astype(np.float32)
    if kind == "i":
        return rng.integers(-5, 6, shape).astype(np.int32)
    if kind == "ni":
        return rng.integers(0, 5, shape).astype(np.int32)
    if kind == "b":
        return rng.random(shape) > 0.5
    if kind == "key":  # raw data of a threefry key
        return rng.integers(0, 2**32, tuple(shape) + (2,), dtype=np.uint32)
    if kind == "sorted":
        return np.sort(rng.standard_normal(shape), axis=-1).astype(np.float32)
    if kind == "prob":
        p = rng.uniform(0.1, 1.0, shape)
        return (p / p.sum(-1, keepdims=True)).astype(np.float32)
    n = shape[-1]
    a = rng.standard_normal(shape)
    if kind == "mat":  # well conditioned
        return (a + n * np.eye(n)).astype(np.float32)
    if kind == "spd":
        return (a @ np.swapaxes(a, -1, -2) + n * np.eye(n)).astype(np.float32)
    if kind == "tri":
        return (np.tril(a) + n * np.eye(n)).astype(np.float32)
    raise ValueError(kind)


@dataclasses.dataclass
class Fn:
    name: str
    fn: Callable
    args: tuple  # (kind, per-example shape) per argument
    tol: float = 1e-5
    xfail: str | None = None


def F(name, fn, *args, tol=1e-5, xfail=None):
    return Fn(name, fn, args, tol, xfail)


V, M, S = (5,), (3, 4), ()
SQ = (3, 3)

FUNCS = [
    # jax.numpy: elementwise
    F("jnp.sin", jnp.sin, ("f", M)),
    F("jnp.cos", jnp.cos, ("f", M)),
    F("jnp.tan", jnp.tan, ("unit", M)),
    F("jnp.arcsin", jnp.arcsin, ("unit", V)),
    F("jnp.arccos", jnp.arccos, ("unit", V)),
    F("jnp.arctan", jnp.arctan, ("f", V)),
    F("jnp.sinh", jnp.sinh, ("f", V)),
    F("jnp.cosh", jnp.cosh, ("f", V)),
    F("jnp.tanh", jnp.tanh, ("f", V)),
    F("jnp.arcsinh", jnp.arcsinh, ("f", V)),
    F("jnp.arccosh", jnp.arccosh, ("gt1", V)),
    F("jnp.arctanh", jnp.arctanh, ("unit", V)),
    F("jnp.exp", jnp.exp, ("f", M)),
    F("jnp.expm1", jnp.expm1, ("f", V)),
    F("jnp.exp2", jnp.exp2, ("f", V)),
    F("jnp.log", jnp.log, ("pos", M)),
    F("jnp.log1p", jnp.log1p, ("pos", V)),
    F("jnp.log2", jnp.log2, ("pos", V)),
    F("jnp.log10", jnp.log10, ("pos", V)),
    F("jnp.sqrt", jnp.sqrt, ("pos", V)),
    F("jnp.cbrt", jnp.cbrt, ("f", V)),
    F("jnp.reciprocal", jnp.reciprocal, ("pos", V)),
    F("jnp.abs", jnp.abs, ("i", M)),
    F("jnp.sign", jnp.sign, ("f", V)),
    F("jnp.floor", jnp.floor, ("f", V)),
    F("jnp.ceil", jnp.ceil, ("f", V)),
    F("jnp.round", lambda x: jnp.round(x, 2), ("f", V)),
    F("jnp.trunc", jnp.trunc, ("f", V)),
    F("jnp.sinc", jnp.sinc, ("f", V)),
    F("jnp.deg2rad", jnp.deg2rad, ("f", V)),
    F("jnp.hypot", jnp.hypot, ("f", M), ("f", M)),
    F("jnp.arctan2", jnp.arctan2, ("f", V), ("f", V)),
    F("jnp.logaddexp", jnp.logaddexp, ("f", M), ("f", (4,))),
    F("jnp.logaddexp2", jnp.logaddexp2, ("f", V), ("f", V)),
    F("jnp.maximum", jnp.maximum, ("i", M), ("i", (4,))),
    F("jnp.fmin", jnp.fmin, ("f", V), ("f", V)),
    F("jnp.power", jnp.power, ("pos", V), ("f", V)),
    F("jnp.copysign", jnp.copysign, ("f", V), ("f", V)),
    F("jnp.nextafter", jnp.nextafter, ("f", V), ("f", V)),
    F("jnp.heaviside", jnp.heaviside, ("f", V), ("f", V)),
    F("jnp.clip", lambda x, lo: jnp.clip(x, lo, 1.0), ("f", M), ("f", S)),
    F("jnp.where", jnp.where, ("b", M), ("f", M), ("f", S)),
    F("jnp.remainder", jnp.remainder, ("i", V), ("gt1", S)),
    F("jnp.floor_divide", jnp.floor_divide, ("i", V), ("ni", V)),
    F("jnp.fmod", jnp.fmod, ("f", V), ("pos", V)),
    F("jnp.left_shift", jnp.left_shift, ("ni", V), ("ni", V)),
    F("jnp.bitwise_xor", jnp.bitwise_xor, ("i", V), ("i", V)),
    F("jnp.logical_and", jnp.logical_and, ("b", V), ("b", V)),
    F("jnp.isclose", jnp.isclose, ("f", V), ("f", V)),
    F("jnp.nan_to_num", lambda x: jnp.nan_to_num(jnp.log(x)), ("f", V)),
    # jax.numpy: reductions and scans
    F("jnp.sum", lambda x: jnp.sum(x, axis=0), ("f", M)),
    F("jnp.prod", jnp.prod, ("pos", M)),
    F("jnp.mean", lambda x: jnp.mean(x, axis=1), ("f", M)),
    F("jnp.var", jnp.var, ("f", M)),
    F("jnp.std", lambda x: jnp.std(x, axis=0, ddof=1), ("f", M)),
    F("jnp.max", jnp.max, ("i", M)),
    F("jnp.argmax", lambda x: jnp.argmax(x, axis=1), ("f", M)),
    F("jnp.argmin", jnp.argmin, ("f", V)),
    F("jnp.all", jnp.all, ("b", M)),
    F("jnp.any", lambda x: jnp.any(x, axis=0), ("b", M)),
    F("jnp.count_nonzero", jnp.count_nonzero, ("i", M)),
    F("jnp.ptp", jnp.ptp, ("f", M)),
    F("jnp.average", lambda x, w: jnp.average(x, axis=1, weights=w), ("f", M), ("pos", (4,))),
    F("jnp.nanmean", lambda x: jnp.nanmean(jnp.where(x > 1, jnp.nan, x)), ("f", M)),
    F("jnp.median", lambda x: jnp.median(x, axis=-1), ("f", M)),
    F("jnp.quantile", lambda x, q: jnp.quantile(x, q), ("f", (7,)), ("unit", S)),
    F("jnp.cumsum", lambda x: jnp.cumsum(x, axis=1), ("f", M), tol=1e-4),
    F("jnp.cumprod", jnp.cumprod, ("pos", V), tol=1e-4),
    F("jnp.diff", jnp.diff, ("f", M)),
    F("jnp.trapezoid", jnp.trapezoid, ("f", V)),
    F("jnp.cov", jnp.cov, ("f", M), tol=1e-4),
    F("jnp.corrcoef", jnp.corrcoef, ("f", M), tol=1e-4),
    # jax.numpy: shapes and indexing
    F("jnp.transpose", jnp.transpose, ("f", (2, 3, 4))),
    F("jnp.flip", lambda x: jnp.flip(x, 1), ("f", M)),
    F("jnp.roll", lambda x: jnp.roll(x, 2, axis=1), ("f", M)),
    F("jnp.rot90", jnp.rot90, ("f", M)),
    F("jnp.tile", lambda x: jnp.tile(x, (2, 1)), ("f", M)),
    F("jnp.repeat", lambda x: jnp.repeat(x, 2, axis=0), ("f", M)),
    F("jnp.concatenate", lambda a, b: jnp.concatenate([a, b], 1), ("f", M), ("f", (3, 2))),
    F("jnp.stack", lambda a, b: jnp.stack([a, b], -1), ("f", V), ("f", V)),
    F("jnp.tril", jnp.tril, ("f", SQ)),
    F("jnp.diagonal", jnp.diagonal, ("f", SQ)),
    F("jnp.trace", jnp.trace, ("f", SQ)),
    F("jnp.pad", lambda x: jnp.pad(x, ((1, 0), (2, 1)), mode="reflect"), ("f", M)),
    F("jnp.take", lambda x, i: jnp.take(x, i, axis=1, mode="clip"), ("f", M), ("ni", (2,))),
    F("jnp.take_along_axis", lambda x, i: jnp.take_along_axis(x, i, axis=1),
      ("f", M), ("ni", (3, 2))),
    F("x.at[i].add", lambda x, i, u: x.at[i].add(u), ("f", V), ("ni", (2,)), ("f", (2,))),
    F("jnp.sort", jnp.sort, ("f", M)),
    F("jnp.argsort", jnp.argsort, ("f", V)),
    F("jnp.searchsorted", jnp.searchsorted, ("sorted", (6,)), ("f", (3,))),
    F("jnp.interp", jnp.interp, ("f", (4,)), ("sorted", (6,)), ("f", (6,))),
    F("jnp.digitize", jnp.digitize, ("f", (4,)), ("sorted", (5,))),
    F("jnp.bincount", lambda x: jnp.bincount(x, length=5), ("ni", (6,))),
    F("jnp.polyval", jnp.polyval, ("f", (3,)), ("f", V)),
    F("jnp.lexsort", lambda a, b: jnp.lexsort((a, b)), ("ni", (6,)), ("ni", (6,))),
    F("jnp.partition", lambda x: jnp.partition(x, 2), ("f", (6,))),
    F("jnp.nonzero", lambda x: jnp.nonzero(x, size=3)[0], ("b", (6,))),
    F("jnp.piecewise", lambda x: jnp.piecewise(x, [x < 0, x > 1], [-1.0, jnp.sin, 0.5]),
      ("f", V)),
    F("jnp.select", lambda x: jnp.select([x < 0, x > 1], [x, x * 2], 0.5), ("f", V)),
    F("jnp.gradient", jnp.gradient, ("f", (6,))),
    F("jnp.vander", lambda x: jnp.vander(x, 3), ("f", (4,))),
    F("jnp.tensordot", lambda a, b: jnp.tensordot(a, b, axes=1), ("f", M), ("f", (4, 2))),
    F("jnp.outer", jnp.outer, ("f", (3,)), ("f", (4,))),
    F("jnp.dot", jnp.dot, ("f", M), ("f", (4,))),
    F("jnp.matmul", jnp.matmul, ("f", M), ("f", (4, 2))),
    F("jnp.einsum", lambda a, b: jnp.einsum("ij,jk->ki", a, b), ("f", M), ("f", (4, 2))),
    F("jnp.kron", jnp.kron, ("f", (2, 2)), ("f", (2, 3))),
    F("jnp.cross", jnp.cross, ("f", (3,)), ("f", (3,))),
    F("jnp.convolve", jnp.convolve, ("f", (6,)), ("f", (3,)), tol=1e-4),
    F("jnp.correlate", lambda a, v: jnp.correlate(a, v, "same"), ("f", (6,)), ("f", (3,)),
      tol=1e-4),
    F("jnp.fft.fft", jnp.fft.fft, ("f", (8,)), tol=1e-4),
    F("jnp.fft.rfft", jnp.fft.rfft, ("f", M), tol=1e-4),
    F("jnp.fft.fft2", jnp.fft.fft2, ("f", M), tol=1e-4),
    F("jnp.fft.irfft", lambda x: jnp.fft.irfft(x.astype(jnp.complex64)), ("f", (5,)),
      tol=1e-4),
    # jax.numpy.linalg
    F("jnp.linalg.norm", jnp.linalg.norm, ("f", M)),
    F("jnp.linalg.det", jnp.linalg.det, ("mat", SQ), tol=1e-4),
    F("jnp.linalg.slogdet", jnp.linalg.slogdet, ("mat", SQ), tol=1e-4),
    F("jnp.linalg.inv", jnp.linalg.inv, ("mat", SQ), tol=1e-4),
    F("jnp.linalg.solve", jnp.linalg.solve, ("mat", SQ), ("f", (3,)), tol=1e-4),
    F("jnp.linalg.cholesky", jnp.linalg.cholesky, ("spd", SQ), tol=1e-4),
    F("jnp.linalg.eigvalsh", jnp.linalg.eigvalsh, ("spd", SQ), tol=1e-4),
    F("jnp.linalg.svdvals", lambda a: jnp.linalg.svd(a, compute_uv=False), ("f", M),
      tol=1e-4),
    F("jnp.linalg.qr", lambda a: jnp.abs(jnp.linalg.qr(a)[1]), ("mat", SQ), tol=1e-4),
    F("jnp.linalg.lstsq", lambda a, b: jnp.linalg.lstsq(a, b)[0], ("f", (4, 3)), ("f", (4,)),
      tol=1e-3),
    F("jnp.linalg.pinv", jnp.linalg.pinv, ("mat", SQ), tol=1e-4),
    F("jnp.linalg.matrix_power", lambda a: jnp.linalg.matrix_power(a, 3), ("f", SQ), tol=1e-4),
    F("jnp.linalg.eigvals", lambda a: jnp.sort_complex(jnp.linalg.eigvals(a)), ("mat", SQ),
      tol=1e-4),
    F("jnp.linalg.matrix_rank", jnp.linalg.matrix_rank, ("f", M)),
    F("jnp.linalg.multi_dot", lambda a, b, c: jnp.linalg.multi_dot([a, b, c]),
      ("f", M), ("f", (4, 2)), ("f", (2, 3)), tol=1e-4),
    # jax.scipy.special
    F("jsp.erf", jsp.erf, ("f", V)),
    F("jsp.erfc", jsp.erfc, ("f", V)),
    F("jsp.erfinv", jsp.erfinv, ("unit", V), tol=1e-4),
    F("jsp.gammaln", jsp.gammaln, ("pos", V)),
    F("jsp.digamma", jsp.digamma, ("pos", V), tol=1e-4),
    F("jsp.betaln", jsp.betaln, ("pos", V), ("pos", V), tol=1e-4),
    F("jsp.xlogy", jsp.xlogy, ("f", V), ("pos", V)),
    F("jsp.logit", jsp.logit, ("unit", V)),
    F("jsp.expit", jsp.expit, ("f", V)),
    F("jsp.ndtri", jsp.ndtri, ("unit", V), tol=1e-4),
    F("jsp.log_ndtr", jsp.log_ndtr, ("f", V), tol=1e-4),
    F("jsp.i0e", jsp.i0e, ("f", V)),
    F("jsp.i1", jsp.i1, ("f", V), tol=1e-4),
    F("jsp.entr", jsp.entr, ("unit", V)),
    F("jsp.rel_entr", jsp.rel_entr, ("unit", V), ("unit", V)),
    F("jsp.logsumexp", lambda x: jsp.logsumexp(x, axis=1), ("f", M)),
    F("jsp.zeta", jsp.zeta, ("gt1", V), ("pos", V), tol=1e-4),
    # jax.scipy.linalg
    F("jsl.solve_triangular", lambda a, b: jsl.solve_triangular(a, b, lower=True),
      ("tri", SQ), ("f", (3, 2)), tol=1e-4),
    F("jsl.lu", lambda a: jsl.lu(a)[1:], ("mat", SQ), tol=1e-4),
    F("jsl.lu_factor", lambda a: jsl.lu_factor(a), ("mat", SQ), tol=1e-4),
    F("jsl.cho_solve", lambda a, b: jsl.cho_solve(jsl.cho_factor(a), b), ("spd", SQ),
      ("f", (3,)), tol=1e-4),
    F("jsl.block_diag", jsl.block_diag, ("f", (2, 2)), ("f", (1, 3))),
    F("jsl.toeplitz", jsl.toeplitz, ("f", (3,)), ("f", (4,))),
    F("jsl.eigh", lambda a: jsl.eigh(a, eigvals_only=True), ("spd", SQ), tol=1e-4),
    # jax.scipy.signal and ndimage
    F("jsig.convolve", jsig.convolve, ("f", (7,)), ("f", (3,)), tol=1e-4),
    F("jsig.correlate2d", lambda a, b: jsig.correlate2d(a, b, mode="same"),
      ("f", (4, 5)), ("f", (2, 2)), tol=1e-4),
    F("jsig.fftconvolve", jsig.fftconvolve, ("f", (8,)), ("f", (3,)), tol=1e-4),
    F("jsig.detrend", jsig.detrend, ("f", (6,)), tol=1e-4),
    F("ndimage.map_coordinates",
      lambda img, c: ndimage.map_coordinates(img, [c, c[::-1]], order=1),
      ("f", M), ("unit", (4,)), tol=1e-5),
    # jax.scipy.stats
    F("jst.norm.logpdf", jst.norm.logpdf, ("f", V), ("f", S), ("pos", S)),
    F("jst.norm.cdf", jst.norm.cdf, ("f", V)),
    F("jst.expon.logpdf", jst.expon.logpdf, ("pos", V)),
    F("jst.laplace.cdf", jst.laplace.cdf, ("f", V), ("f", S)),
    F("jst.logistic.pdf", jst.logistic.pdf, ("f", V)),
    F("jst.cauchy.logpdf", jst.cauchy.logpdf, ("f", V), ("f", S), ("pos", S)),
    F("jst.bernoulli.logpmf", jst.bernoulli.logpmf, ("ni", V), ("unit", S)),
    F("jst.norm.ppf", jst.norm.ppf, ("unit", V), tol=1e-4),
    F("jst.t.logpdf", jst.t.logpdf, ("f", V), ("pos", S), tol=1e-4),
    F("jst.gamma.logpdf", jst.gamma.logpdf, ("pos", V), ("pos", S), tol=1e-4),
    F("jst.poisson.logpmf", jst.poisson.logpmf, ("ni", V), ("pos", S), tol=1e-4),
    F("jst.multivariate_normal.logpdf", jst.multivariate_normal.logpdf,
      ("f", (3,)), ("f", (3,)), ("spd", SQ), tol=1e-4),
    # jax.nn
    F("nn.relu", jax.nn.relu, ("f", M)),
    F("nn.relu6", jax.nn.relu6, ("f", V)),
    F("nn.sigmoid", jax.nn.sigmoid, ("f", V)),
    F("nn.softplus", jax.nn.softplus, ("f", V)),
    F("nn.silu", jax.nn.silu, ("f", V)),
    F("nn.gelu", jax.nn.gelu, ("f", V)),
    F("nn.elu", jax.nn.elu, ("f", V)),
    F("nn.selu", jax.nn.selu, ("f", V)),
    F("nn.leaky_relu", jax.nn.leaky_relu, ("f", V)),
    F("nn.celu", jax.nn.celu, ("f", V)),
    F("nn.glu", jax.nn.glu, ("f", (3, 4))),
    F("nn.log_sigmoid", jax.nn.log_sigmoid, ("f", V)),
    F("nn.softmax", jax.nn.softmax, ("f", M)),
    F("nn.log_softmax", lambda x: jax.nn.log_softmax(x, axis=0), ("f", M)),
    F("nn.standardize", jax.nn.standardize, ("f", M), tol=1e-4),
    F("nn.one_hot", lambda i: jax.nn.one_hot(i, 5), ("ni", (3,))),
    F("nn.hard_tanh", jax.nn.hard_tanh, ("f", V)),
    F("nn.mish", jax.nn.mish, ("f", V)),
    F("nn.squareplus", jax.nn.squareplus, ("f", V)),
    F("nn.dot_product_attention", jax.nn.dot_product_attention,
      ("f", (4, 2, 8)), ("f", (6, 2, 8)), ("f", (6, 2, 8)), tol=1e-4),
]

# lax: the ops jnp does not reach, control flow, linear algebra, windows.
# (Not lax.rng_bit_generator: with batched states it runs once per lane on
# purpose, where vmap draws every lane's bits from the first lane's state;
# see passes/rules/random.py.)
C, W = ("f", (2, 5, 5)), ("f", (3, 2, 2, 2))  # an image (CHW) and OIHW filters


def _maxpool_grad(x):
    return jax.grad(lambda x: lax.reduce_window(x, -jnp.inf, lax.max, (2,), (2,),
                                                "VALID").sum())(x)


def _variadic_reduce(x, y):
    return lax.reduce((x, y), (0.0, 0), lambda a, b: (a[0] + b[0], jnp.maximum(a[1], b[1])),
                      (0,))


LAX_FUNCS = [
    F("lax.conv_general_dilated", lambda x, w: lax.conv_general_dilated(
        x[None], w, (1, 1), "SAME", rhs_dilation=(2, 1))[0], C, W, tol=1e-4),
    F("lax.conv_transpose", lambda x, w: lax.conv_transpose(
        x[None], w, (2, 2), "SAME", dimension_numbers=("NCHW", "OIHW", "NCHW"))[0], C, W,
      tol=1e-4),
    F("lax.reduce_window", lambda x: lax.reduce_window(x, 0.0, lax.add, (2, 2), (1, 2), "SAME"),
      ("f", (4, 5))),
    F("lax.select_and_scatter_add", _maxpool_grad, ("f", (6,))),
    F("lax.cummax", lambda x: lax.cummax(x, axis=1), ("f", M)),
    F("lax.cumlogsumexp", lambda x: lax.cumlogsumexp(x, reverse=True), ("f", V)),
    F("lax.sort_key_val", lax.sort_key_val, ("f", V), ("i", V)),
    F("lax.top_k", lambda x: lax.top_k(x, 2), ("f", M)),
    F("lax.approx_max_k", lambda x: lax.approx_max_k(x, 2, reduction_dimension=0), ("f", (5, 3))),
    F("lax.approx_min_k", lambda x: lax.approx_min_k(x, 2), ("f", M)),
    F("lax.dynamic_slice", lambda x, i: lax.dynamic_slice(x, (i, 1), (2, 2)), ("f", M), ("ni", S)),
    F("lax.dynamic_update_slice", lambda x, u, i: lax.dynamic_update_slice(x, u, (i, 0)),
      ("f", M), ("f", (1, 4)), ("ni", S)),
    F("lax.dynamic_index_in_dim", lambda x, i: lax.dynamic_index_in_dim(x, i, 1), ("f", M),
      ("ni", S)),
    F("lax.scatter_max", lambda x, i, u: x.at[i].max(u), ("f", V), ("ni", (2,)), ("f", (2,))),
    F("lax.scatter_mul", lambda x, i, u: x.at[i].multiply(u), ("f", V), ("ni", (2,)),
      ("f", (2,))),
    F("x.at[i].get(fill)", lambda x, i: x.at[i].get(mode="fill", fill_value=-1.0), ("f", V),
      ("i", (3,))),
    F("lax.select_n", lax.select_n, ("b", V), ("f", V), ("f", V)),
    F("lax.clamp", lambda lo, x: lax.clamp(lo, x, 2.0), ("f", S), ("f", V)),
    F("lax.pad", lambda x: lax.pad(x, 0.0, ((1, -1, 1), (0, 2, 0))), ("f", M)),
    F("lax.rev", lambda x: lax.rev(x, (0,)), ("f", M)),
    F("lax.reduce_precision", lambda x: lax.reduce_precision(x, 5, 10), ("f", V)),
    F("lax.population_count", lax.population_count, ("i", V)),
    F("lax.clz", lax.clz, ("i", V)),
    F("lax.igamma", lax.igamma, ("pos", V), ("pos", V), tol=1e-4),
    F("lax.igammac", lax.igammac, ("pos", V), ("pos", V), tol=1e-4),
    F("lax.lgamma", lax.lgamma, ("pos", V), tol=1e-4),
    F("lax.polygamma", lambda x: lax.polygamma(jnp.ones_like(x), x), ("pos", V), tol=1e-4),
    F("lax.betainc", lax.betainc, ("pos", V), ("pos", V), ("unit", V), tol=1e-4),
    F("lax.bessel_i1e", lax.bessel_i1e, ("f", V)),
    F("lax.random_gamma_grad", lax.random_gamma_grad, ("pos", V), ("pos", V), tol=1e-3),
    F("lax.complex", lambda a, b: jnp.abs(lax.complex(a, b)) + lax.imag(lax.conj(
        lax.complex(a, b))), ("f", V), ("f", V)),
    F("lax.bitcast_convert_type", lambda x: lax.bitcast_convert_type(x, jnp.int32), ("f", V)),
    F("lax.shift_right_logical", lax.shift_right_logical, ("i", V), ("ni", V)),
    F("lax.argmax", lambda x: lax.argmax(x, 1, jnp.int32), ("f", M)),
    F("lax.reduce", _variadic_reduce, ("f", M), ("i", M)),
    F("lax.reduce_xor", lambda x: lax.reduce_xor(x, (1,)), ("i", M)),
    F("lax.reduce_and", lambda x: lax.reduce_and(x, (0,)), ("b", M)),
    F("lax.erf_inv", lax.erf_inv, ("unit", V), tol=1e-4),
    F("lax.rem", lax.rem, ("f", V), ("pos", V)),
    F("lax.integer_pow", lambda x: lax.integer_pow(x, 3), ("f", V)),
    F("lax.while_loop", lambda x: lax.while_loop(
        lambda c: c[0] < 10.0, lambda c: (c[0] * 2 + 1, c[1] + 1), (x, 0))[1], ("pos", S)),
    F("lax.fori_loop", lambda x, n: lax.fori_loop(0, n, lambda i, c: c * 1.5 + i, x),
      ("f", V), ("ni", S)),
    F("lax.scan", lambda xs: lax.scan(lambda c, x: (c * x + 1, c), 1.0, xs), ("f", V)),
    F("lax.cond", lambda p, x: lax.cond(p > 0, jnp.sin, jnp.cos, x), ("f", S), ("f", V)),
    F("lax.switch", lambda i, x: lax.switch(i, [jnp.sin, jnp.cos, jnp.exp], x), ("ni", S),
      ("f", V)),
    F("lax.map", lambda x: lax.map(jnp.cumsum, x), ("f", M)),
    F("lax.associative_scan", lambda x: lax.associative_scan(jnp.add, x, axis=1), ("f", M)),
    F("lax.linalg.eigh", lambda a: jnp.abs(lax.linalg.eigh(a)[0]), ("spd", SQ), tol=1e-3),
    F("lax.linalg.lu", lax.linalg.lu, ("mat", SQ), tol=1e-4),
    F("lax.linalg.qr", lambda a: jnp.abs(lax.linalg.qr(a)[1]), ("mat", SQ), tol=1e-4),
    F("lax.linalg.svd", lambda a: lax.linalg.svd(a, full_matrices=False)[1], ("f", M),
      tol=1e-4),
    F("lax.linalg.triangular_solve", lambda a, b: lax.linalg.triangular_solve(
        a, b, left_side=True, lower=True), ("tri", SQ), ("f", (3, 2)), tol=1e-4),
    F("lax.linalg.tridiagonal_solve", lambda d, b: lax.linalg.tridiagonal_solve(
        d * 0.1, d + 3, d * 0.2, b), ("pos", (4,)), ("f", (4, 2)), tol=1e-4),
    F("lax.linalg.hessenberg", lambda a: jnp.abs(lax.linalg.hessenberg(a)[0]), ("mat", SQ),
      tol=1e-4),
    F("lax.linalg.householder_product", lax.linalg.householder_product, ("mat", SQ),
      ("f", (2,)), tol=1e-4),
    F("lax.linalg.tridiagonal", lambda a: lax.linalg.tridiagonal(a)[1], ("spd", SQ), tol=1e-4),
    F("lax.linalg.schur", lambda a: jnp.abs(jnp.diagonal(lax.linalg.schur(a)[0])),
      ("spd", SQ), tol=1e-3),
    F("lax.fft", lambda x: lax.fft(x.astype(jnp.complex64), lax.FftType.FFT, (4,)), ("f", M),
      tol=1e-4),
    F("lax.split", lambda x: lax.split(x, (1, 3), axis=1), ("f", M)),
    F("lax.collapse", lambda x: lax.collapse(x, 0, 2), ("f", (2, 3, 2))),
    F("lax.dot_general", lambda a, b: lax.dot_general(a, b, (((2,), (1,)), ((0,), (0,)))),
      ("f", (2, 3, 4)), ("f", (2, 4, 2))),
    F("lax.optimization_barrier", lambda x, y: lax.optimization_barrier((x * 2, y)), ("f", V),
      ("f", V)),
    F("jax.checkpoint", jax.checkpoint(lambda x: jnp.sin(jnp.sin(x))), ("f", V)),
]

# jax.random, on raw key data (a typed key is wrapped inside the function)
R, K = jax.random, jax.random.wrap_key_data

RANDOM_FUNCS = [
    F("random.split", lambda k: R.key_data(R.split(K(k), 3)), ("key", S)),
    F("random.fold_in", lambda k, d: R.key_data(R.fold_in(K(k), d)), ("key", S), ("ni", S)),
    F("random.bits", lambda k: R.bits(K(k), (3,)), ("key", S)),
    F("random.uniform", lambda k: R.uniform(K(k), (3,)), ("key", S)),
    F("random.normal", lambda k: R.normal(K(k), (3,)), ("key", S)),
    F("random.bernoulli", lambda k, p: R.bernoulli(K(k), p, (3,)), ("key", S), ("unit", S)),
    F("random.randint", lambda k: R.randint(K(k), (3,), 0, 10), ("key", S)),
    F("random.choice", lambda k, x: R.choice(K(k), x, (2,), replace=False), ("key", S),
      ("f", V)),
    F("random.choice(p)", lambda k, x, p: R.choice(K(k), x, (2,), p=p), ("key", S), ("f", V),
      ("prob", V)),
    F("random.permutation", lambda k, x: R.permutation(K(k), x), ("key", S), ("f", V)),
    F("random.permutation(independent)", lambda k, x: R.permutation(K(k), x, axis=1,
                                                                    independent=True),
      ("key", S), ("f", M)),
    F("random.categorical", lambda k, logits: R.categorical(K(k), logits), ("key", S),
      ("f", M)),
    F("random.gamma", lambda k, a: R.gamma(K(k), a), ("key", S), ("pos", V), tol=1e-4),
    F("random.beta", lambda k, a: R.beta(K(k), a, 2.0), ("key", S), ("pos", V), tol=1e-4),
    F("random.dirichlet", lambda k, a: R.dirichlet(K(k), a), ("key", S), ("pos", (3,)),
      tol=1e-4),
    F("random.loggamma", lambda k, a: R.loggamma(K(k), a), ("key", S), ("pos", V), tol=1e-4),
    F("random.poisson", lambda k, lam: R.poisson(K(k), lam), ("key", S), ("pos", V)),
    F("random.binomial", lambda k, n, p: R.binomial(K(k), n, p), ("key", S), ("gt1", V),
      ("unit", V), tol=1e-4),
    F("random.geometric", lambda k, p: R.geometric(K(k), p), ("key", S), ("unit", V)),
    F("random.exponential", lambda k: R.exponential(K(k), (3,)), ("key", S)),
    F("random.truncated_normal", lambda k: R.truncated_normal(K(k), -1.0, 1.0, (3,)),
      ("key", S)),
    F("random.multivariate_normal", lambda k, m, c: R.multivariate_normal(K(k), m, c),
      ("key", S), ("f", (3,)), ("spd", SQ), tol=1e-3),
    F("random.orthogonal", lambda k: R.orthogonal(K(k), 3), ("key", S), tol=1e-4),
    F("random.gumbel", lambda k: R.gumbel(K(k), (3,)), ("key", S)),
    F("random.t", lambda k: R.t(K(k), 3.0, (3,)), ("key", S), tol=1e-4),
    F("random.ball", lambda k: R.ball(K(k), 3), ("key", S), tol=1e-4),
    F("random.rademacher", lambda k: R.rademacher(K(k), (3,)), ("key", S)),
    F("random.generalized_normal", lambda k: R.generalized_normal(K(k), 1.5, (3,)), ("key", S),
      tol=1e-4),
]

FUNCS += LAX_FUNCS + RANDOM_FUNCS

assert len({f.name for f in FUNCS}) == len(FUNCS), "duplicate names"


# ---- the two configurations ---------------------------------------------------
def _axes(fn: Fn, k: int, config: str) -> tuple:
    """in_axes of function number ``k`` in ``config``."""
    if config == "all0":
        return tuple(0 for _ in fn.args)
    first = fn.args[0][1]
    batched = -1 if len(first) else 0
    if len(fn.args) == 1 and k % 2:
        return (None,)
    return (batched,) + tuple(None for _ in fn.args[1:])


def _inputs(fn: Fn, axes: tuple, size: int, seed: int):
    rng = np.random.default_rng(seed)
    out = []
    for (kind, shape), ax in zip(fn.args, axes):
        if ax is None:
            out.append(jnp.asarray(_gen(kind, shape, rng)))
        else:
            lanes = [_gen(kind, shape, rng) for _ in range(max(size, 1))]
            stacked = np.stack(lanes, axis=ax)
            if size == 0:  # an empty batch, of the same per-example shape
                stacked = np.take(stacked, np.arange(0), axis=ax)
            out.append(jnp.asarray(stacked))
    return tuple(out)


def check_group(fns: list[Fn], config: str, size: int, seed: int = 0):
    axes = tuple(_axes(f, k, config) for k, f in enumerate(fns))
    args = tuple(_inputs(f, ax, size, seed + k) for k, (f, ax) in enumerate(zip(fns, axes)))

    def group(*per_fn):
        return tuple(f.fn(*a) for f, a in zip(fns, per_fn))

    want = jax.jit(jax.vmap(group, in_axes=axes))(*args)
    with warnings.catch_warnings():
        warnings.simplefilter("error", sb.FallbackWarning)
        got = sb.batch_lower(group, in_axes=axes)(*args)
    for f, g, w in zip(fns, got, want):
        try:
            assert_same_tree(g, w, rtol=f.tol, atol=f.tol)
        except AssertionError as e:
            raise AssertionError(f"{f.name} (in_axes {axes[fns.index(f)]}): {e}") from None


# ---- cases ----------------------------------------------------------------------
GROUP = 16  # functions per batched function: fewer compiles, still small modules
_ok = [f for f in FUNCS if f.xfail is None]
GROUPS = [_ok[i:i + GROUP] for i in range(0, len(_ok), GROUP)]


def _group_id(g):
    return f"{g[0].name}..{g[-1].name}"


# Exhaustive variants (SWEEP_FULL=1): batch sizes 1 and 0 (empty batches must
# give vmap's empty results), and a larger mixed batch.
CONFIGS = [("all0", 3), ("mixed", 2)]
if os.environ.get("SWEEP_FULL"):
    CONFIGS += [("all0", 1), ("all0", 0), ("mixed", 0), ("mixed", 5)]


@pytest.mark.parametrize("config,size", CONFIGS)
@pytest.mark.parametrize("fns", GROUPS, ids=_group_id)
def test_group(fns, config, size):
    only = os.environ.get("SWEEP_ONE")
    if only:
        fns = [f for f in fns if f.name == only]
        if not fns:
            pytest.skip("SWEEP_ONE names another function")
    check_group(fns, config, size)


@pytest.mark.parametrize("fn", [pytest.param(f, id=f.name, marks=pytest.mark.xfail(
    strict=True, reason=f.xfail)) for f in FUNCS if f.xfail])
def test_known_fallbacks(fn):
    check_group([fn], "all0", 3)


def test_list_is_long_enough():
    assert len(FUNCS) >= 100


def test_host_callback_is_the_allowed_fallback():
    def f(x, w):
        y = jax.pure_callback(lambda a: np.tanh(a).astype(a.dtype),
                              jax.ShapeDtypeStruct(x.shape, x.dtype), x,
                              vmap_method="sequential")
        return jnp.dot(y, w)

    x, w = _inputs(F("cb", f, ("f", M), ("f", (4,))), (0, None), 3, 0)
    with pytest.warns(sb.FallbackWarning, match="callback"):
        got = sb.batch_lower(f, in_axes=(0, None))(x, w)
    assert_same_tree(got, jax.vmap(f, in_axes=(0, None))(x, w), rtol=1e-5, atol=1e-5)
