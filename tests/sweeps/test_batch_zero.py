"""Batch size 0 (and the rules fixed with it): every op that batches at size 1
batches at size 0 too and gives jax.vmap's empty results, with vmap's shapes
and dtypes. Also scalar dynamic slices (no start indices) and the ApproxTopK
custom call (lax.approx_max_k / approx_min_k), which has a vectorized rule.

The batch-0 cases are grouped like tests/test_public_functions.py: one
batched function calls a group of them (one compile per group); a failure
names the case. ``SWEEP_FULL=1`` also runs the whole public-function sweep
at batch 0 (tests/test_public_functions.py).
"""
from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np
import pytest
from jax import lax

import stablehlo_batch as sb
from conftest import assert_same_tree, check_vmap

f32, i32 = np.float32, np.int32


def _z(*shape, dtype=f32):
    return np.zeros(shape, dtype)


def _while(x):
    # A batched predicate: the trip count depends on the lane's data.
    return lax.while_loop(lambda c: c[0] < 5, lambda c: (c[0] + 1, c[1] * 2),
                          (x.astype(jnp.int32).sum(), x))[1]


def _lane_callback(x):
    return jax.pure_callback(lambda a: np.sin(a), jax.ShapeDtypeStruct((3,), jnp.float32), x,
                             vmap_method="sequential")


# name: (function, per-case batch-0 arguments, in_axes)
CASES = {
    "gather_both_batched": (lambda x, i: x[i], (_z(0, 6), _z(0, 2, dtype=i32)), 0),
    "gather_unbatched_table": (lambda x, i: x[i], (_z(6), _z(0, 2, dtype=i32)), (None, 0)),
    "dynamic_slice_batched_start": (lambda x, i: lax.dynamic_slice(x, (i,), (2,)),
                                    (_z(0, 6), _z(0, dtype=i32)), 0),
    "dynamic_update_slice": (lambda x, u, i: lax.dynamic_update_slice(x, u, (i,)),
                             (_z(0, 6), _z(0, 2), _z(0, dtype=i32)), 0),
    "scalar_dynamic_slice": (lambda x: lax.dynamic_slice(x, [], []), (_z(0),), 0),
    "take_along_axis": (lambda x, i: jnp.take_along_axis(x, i, axis=0),
                        (_z(0, 6), _z(0, 3, dtype=i32)), 0),
    "searchsorted": (jnp.searchsorted, (_z(0, 6), _z(0, 3)), 0),
    "argsort_unique": (lambda x: jnp.unique(jnp.argsort(x), size=4), (_z(0, 6),), 0),
    "sort_two_operands": (lambda x, y: lax.sort((x, y), num_keys=1),
                          (_z(0, 6), _z(0, 6, dtype=i32)), 0),
    "top_k": (lambda x: lax.top_k(x, 2), (_z(0, 6),), 0),
    "scatter": (lambda x, i, u: x.at[i].set(u), (_z(0, 6), _z(0, 2, dtype=i32), _z(0, 2)), 0),
    "scatter_add_unbatched_operand": (lambda x, i, u: x.at[i].add(u),
                                      (_z(6), _z(0, 2, dtype=i32), _z(2)), (None, 0, None)),
    "linalg_solve": (jnp.linalg.solve, (_z(0, 3, 3), _z(0, 3)), 0),
    "linalg_solve_unbatched_matrix": (jnp.linalg.solve, (np.eye(3, dtype=f32), _z(0, 3)),
                                      (None, 0)),
    "expm": (jsl.expm, (_z(0, 3, 3),), 0),
    "eigh": (jnp.linalg.eigh, (_z(0, 3, 3),), 0),
    "svd": (jnp.linalg.svd, (_z(0, 3, 2),), 0),
    "qr": (jnp.linalg.qr, (_z(0, 3, 3),), 0),
    "eigvals": (jnp.linalg.eigvals, (_z(0, 3, 3),), 0),
    "schur": (jsl.schur, (_z(0, 3, 3),), 0),
    "while_batched_predicate": (_while, (_z(0, 3),), 0),
    "fori_loop_batched_count": (lambda x, n: lax.fori_loop(0, n, lambda i, c: c * 2, x),
                                (_z(0, 3), _z(0, dtype=i32)), 0),
    "cond_batched_predicate": (lambda p, x: lax.cond(p > 0, jnp.sin, jnp.cos, x),
                               (_z(0), _z(0, 3)), 0),
    "switch": (lambda i, x: lax.switch(i, [jnp.sin, jnp.cos, jnp.tanh], x),
               (_z(0, dtype=i32), _z(0, 3)), 0),
    "scan": (lambda x: lax.scan(lambda c, a: (c + a, c * a), 0.0, x), (_z(0, 4),), 0),
    "maxpool_grad": (jax.grad(lambda x: lax.reduce_window(x, -jnp.inf, lax.max, (2,), (2,),
                                                          "VALID").sum()), (_z(0, 6),), 0),
    "fft": (jnp.fft.fft, (_z(0, 8),), 0),
    "random_normal": (lambda k: jax.random.normal(jax.random.wrap_key_data(k), (3,)),
                      (_z(0, 2, dtype=np.uint32),), 0),
    "approx_max_k": (lambda x: lax.approx_max_k(x, 2), (_z(0, 6),), 0),
}

GROUPS = {
    "indexing": ["gather_both_batched", "gather_unbatched_table", "dynamic_slice_batched_start",
                 "dynamic_update_slice", "scalar_dynamic_slice", "take_along_axis",
                 "searchsorted", "scatter", "scatter_add_unbatched_operand"],
    "sorting": ["argsort_unique", "sort_two_operands", "top_k", "approx_max_k"],
    "linalg": ["linalg_solve", "linalg_solve_unbatched_matrix", "expm", "eigh", "svd", "qr",
               "eigvals", "schur"],
    "control_flow": ["while_batched_predicate", "fori_loop_batched_count",
                     "cond_batched_predicate", "switch", "scan", "maxpool_grad", "fft",
                     "random_normal"],
}


def test_groups_cover_every_case():
    assert sorted(n for g in GROUPS.values() for n in g) == sorted(CASES)


@pytest.mark.parametrize("group", list(GROUPS))
def test_batch_zero(group):
    names = GROUPS[group]
    fns = [CASES[n][0] for n in names]
    args = tuple(CASES[n][1] for n in names)
    axes = tuple(CASES[n][2] for n in names)

    def grouped(*per_case):
        return tuple(f(*a) for f, a in zip(fns, per_case))

    want = jax.jit(jax.vmap(grouped, in_axes=axes))(*args)
    got = sb.batch_lower(grouped, in_axes=axes)(*args)
    for name, g, w in zip(names, got, want):
        try:
            assert_same_tree(g, w)
        except AssertionError as e:
            raise AssertionError(f"{name}: {e}") from None


def test_batch_zero_reproducers_of_the_issue():
    x, i = _z(0, 6), _z(0, 2, dtype=i32)
    assert sb.batch_lower(lambda x, i: x[i])(x, i).shape == (0, 2)
    got = sb.batch_lower(jnp.linalg.solve)(_z(0, 3, 3), _z(0, 3))
    assert got.shape == (0, 3) and got.dtype == jnp.float32


def test_batch_zero_per_lane_fallback_runs_no_lane():
    # A host callback goes through the per-lane loop: zero lanes, zero calls.
    calls = []

    def f(x):
        def host(a):
            calls.append(a)
            return np.sin(a)
        return jax.pure_callback(host, jax.ShapeDtypeStruct((3,), jnp.float32), x,
                                 vmap_method="sequential")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sb.FallbackWarning)
        got = sb.batch_lower(f)(_z(0, 3))
    assert_same_tree(got, jax.vmap(f)(_z(0, 3)))
    assert calls == []


def test_batch_zero_out_axes_and_unbatched_inputs():
    w = np.arange(18, dtype=f32).reshape(6, 3)
    got = check_vmap(lambda x, w, i: (x[i] @ w, w), _z(4, 0, 6), w, _z(0, 2, dtype=i32),
                     in_axes=(1, None, 0), out_axes=(1, None))
    assert got[0].shape == (2, 0, 3)


# ---- scalar dynamic slices (jax's batching_test.py::testIssue3883) ------------

@pytest.mark.parametrize("dtype", [np.float32, np.int32])
@pytest.mark.parametrize("size", [1, 3])
def test_scalar_dynamic_slices(size, dtype):
    x = np.arange(size, dtype=dtype)
    check_vmap(lambda x: lax.dynamic_slice(x, [], []), x)
    check_vmap(lambda x: lax.dynamic_update_slice(x, dtype(7), []), x)
    u = np.arange(size, dtype=dtype) + 10
    check_vmap(lambda x, u: lax.dynamic_update_slice(x, u, []), x[0], u, in_axes=(None, 0))
    check_vmap(lambda x, u: lax.dynamic_update_slice(x, u, []), x, u[0], in_axes=(0, None))


# ---- ApproxTopK -------------------------------------------------------------------

def _no_fallback(fn, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("error", sb.FallbackWarning)
        return check_vmap(fn, *args, **kw)


@pytest.mark.parametrize("size", [1, 3])
def test_approx_top_k_is_vectorized(size):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((size, 8, 5)).astype(np.float32)
    # reduction dim 0 of each example (1 after the batch), at several in_axes
    for ax in (0, 2):
        xs = np.moveaxis(x, 0, ax)
        _no_fallback(lambda x: lax.approx_max_k(x, 3, reduction_dimension=0), xs, in_axes=ax)
    _no_fallback(lambda x: lax.approx_min_k(x, 2), x, out_axes=1)
    _no_fallback(lambda x: lax.approx_max_k(x, 2, reduction_dimension=-2,
                                            aggregate_to_topk=False), x)
    # an unbatched addend; bfloat16 values (the kernel is generic in the type)
    xb = rng.standard_normal((size, 6, 4)).astype(jnp.bfloat16)
    _no_fallback(lambda x, y: lax.approx_max_k(x + y, 2, reduction_dimension=1), xb, xb[0],
                 in_axes=(0, None))


def test_approx_top_k_tpu_lowering_runs_here():
    # The TPU form (no is_fallback) is XLA's approximate algorithm; XLA's CPU
    # compiler still runs it, so the batched TPU module is checked per lane.
    from batch_cases import check_module
    from stablehlo_batch.passes.fallback import strict_mode
    fn = lambda x: lax.approx_max_k(x, 4, reduction_dimension=1, recall_target=0.9)
    spec = jax.ShapeDtypeStruct((3, 64), jnp.float32)
    text = jax.jit(fn).trace(spec).lower(lowering_platforms=("tpu",)).as_text()
    assert "is_fallback" not in text
    x = np.random.default_rng(1).standard_normal((2, 3, 64)).astype(np.float32)
    with strict_mode(True):
        check_module(text, [x], [0], [0, 0], 2)


# ---- custom calls jax emits, per platform --------------------------------------
# Modules lowered for cpu / cuda / rocm / tpu (IR only: only cpu runs here).
# Every kernel target must get its vectorized rule: batched with strict=True
# (no per-lane fallback), and the target is still called once, on batched types.

_SQ = jax.ShapeDtypeStruct((3, 3), jnp.float32)
_VEC = jax.ShapeDtypeStruct((3,), jnp.float32)
_PLATFORM_CASES = [
    ("solve", jnp.linalg.solve, (_SQ, _VEC), ("cpu", "cuda", "rocm", "tpu")),
    ("cholesky", jnp.linalg.cholesky, (_SQ,), ("cpu", "cuda", "rocm")),
    ("eigh", jnp.linalg.eigh, (_SQ,), ("cpu", "cuda", "rocm", "tpu")),
    ("eig", jnp.linalg.eig, (_SQ,), ("cpu", "cuda", "rocm")),
    ("svd", jnp.linalg.svd, (_SQ,), ("cpu", "cuda", "rocm")),
    ("svd_qr", lambda a: lax.linalg.svd(a, algorithm=lax.linalg.SvdAlgorithm.QR), (_SQ,),
     ("cpu", "cuda", "rocm")),
    ("qr_pivoting", lambda a: jsl.qr(a, pivoting=True), (_SQ,), ("cpu", "cuda", "rocm")),
    ("qr", jnp.linalg.qr, (_SQ,), ("tpu",)),
    ("schur", jsl.schur, (_SQ,), ("cpu",)),
    ("hessenberg", jsl.hessenberg, (_SQ,), ("cpu",)),
    ("tridiagonal", lax.linalg.tridiagonal, (_SQ,), ("cpu", "cuda", "rocm")),
    ("tridiagonal_solve", lambda d, b: lax.linalg.tridiagonal_solve(d * 0, d + 3, d * 0,
                                                                     b[:, None]),
     (_VEC, _VEC), ("cpu", "cuda", "rocm")),
    ("approx_max_k", lambda x: lax.approx_max_k(x, 2), (_SQ,), ("cpu", "cuda", "rocm", "tpu")),
]


@pytest.mark.parametrize("platform", ["cpu", "cuda", "rocm", "tpu"])
def test_custom_calls_of_every_platform_are_vectorized(platform):
    import re
    seen = set()
    for name, fn, specs, platforms in _PLATFORM_CASES:
        if platform not in platforms:
            continue
        text = jax.jit(fn).trace(*specs).lower(lowering_platforms=(platform,)).as_text()
        targets = re.findall(r"custom_call @([\w$.]+)", text)
        assert targets, name
        n_out = len(jax.tree_util.tree_leaves(jax.eval_shape(fn, *specs)))
        batched = sb.batch_module(text, [0] * len(specs), [0] * n_out, 2, strict=True)
        # each call is still one call, now on batch-first types
        assert sorted(re.findall(r"custom_call @([\w$.]+)", batched)) == sorted(targets), name
        assert "stablehlo.while" not in batched or "stablehlo.while" in text, name
        seen.update(targets)
    assert seen



def test_batch_zero_shape_assertion():
    # jax's shape_assertion with a batched message input: at batch 0 there is
    # no lane to read it from (a size-1 slice of it was invalid IR). XLA does
    # not run the call (jax's shape refinement removes it), so IR only.
    text = """
func.func @main(%p: tensor<i1>, %n: tensor<i32>) -> tensor<i32> {
  stablehlo.custom_call @shape_assertion(%p, %n) {api_version = 2 : i32,
      error_message = "bad {0}", has_side_effect = true} : (tensor<i1>, tensor<i32>) -> ()
  return %n : tensor<i32>
}"""
    out = sb.batch_module(text, [0, 0], [0], 0)  # verified before it returns
    assert "dynamic_slice" not in out and "@shape_assertion" in out
    assert "tensor<0xi32>" in out
