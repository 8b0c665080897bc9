"""The sweep: 100+ public jax.numpy, jax.numpy.linalg, jax.scipy (special,
linalg, signal, stats, ndimage) and jax.nn functions, each batched with
batch_lower and compared with jax.vmap, with no FallbackWarning allowed (a
function that needs the per-lane loop is a missing rule). Host callbacks are
the one exception: they are expected to fall back.

To keep the compile count low, the functions are grouped: one test case
batches one function that calls a group of them, and compares each output
(the failure names the function). Two configurations per group: every
argument batched at axis 0, and a mix (the first argument batched at another
axis, the others unbatched; single-argument functions alternate between
batched at -1 and unbatched). ``SWEEP_ONE=name`` runs that function alone.
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
            lanes = [_gen(kind, shape, rng) for _ in range(size)]
            out.append(jnp.asarray(np.stack(lanes, axis=ax)))
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


@pytest.mark.parametrize("config,size", [("all0", 3), ("mixed", 2)])
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
