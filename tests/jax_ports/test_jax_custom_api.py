"""custom_vmap and custom_jvp under batch_lower, after the ideas of JAX's tests/custom_api_test.py
(CustomVmapTest, CustomJVPTest; jax-v0.10.2).

A ``jax.custom_batching.custom_vmap`` function lowers to its own body; its
rule is Python that the module does not hold. While batch_lower traces a
function, such a call lowers to a placeholder whose rewrite rule traces the
user's rule at the batch size and inlines it (stablehlo_batch/custom_vmap.py),
so batch_lower gives jax.vmap's values: the rule's, never the body's.
``sequential_vmap`` (a loop of the body over the lanes) and our own
``vmappable`` (the module batched by this rewrite) keep the body.
"""
from __future__ import annotations

from functools import partial

import numpy as np
import pytest

import jax
import jax.numpy as jnp

import stablehlo_batch as sb
from conftest import assert_same_tree, check_vmap

XS = np.arange(3, dtype=np.float32) / 2


def _sin_with_cos_rule():
    @jax.custom_batching.custom_vmap
    def f(x):
        return jnp.sin(x)

    @f.def_vmap
    def rule(axis_size, in_batched, xs):
        return jnp.cos(xs), in_batched[0]
    return f


def _rule_recorder(add_size=True):
    """A custom_vmap of two arguments whose rule differs from its body, keeps
    an unbatched result unbatched and records the axis sizes it saw; with
    ``add_size`` its values depend on the axis size."""
    sizes = []

    @jax.custom_batching.custom_vmap
    def f(x, y):
        return jnp.sin(x) * y, jnp.sum(y)

    @f.def_vmap
    def rule(axis_size, in_batched, x, y):
        sizes.append(axis_size)
        xb, yb = in_batched
        s = jnp.sum(y) + 100.0  # differs from the body: the rule's values are seen
        if yb:
            s = jnp.sum(y, axis=-1) + 100.0
        return (jnp.cos(x) * y + (axis_size if add_size else 0), s), (xb or yb, yb)
    return f, sizes


def test_custom_vmap_uses_its_rule():
    f = _sin_with_cos_rule()
    # The oracle uses the rule: its values are not the function's.
    assert_same_tree(jax.vmap(f)(XS), np.cos(XS), rtol=1e-6, atol=1e-6)
    check_vmap(lambda x: f(x) * 2, XS, jit=True)
    check_vmap(f, XS)  # the custom_vmap function itself


@pytest.mark.parametrize("size", [1, 3, 0])
@pytest.mark.parametrize("in_axes", [(0, 0), (0, None), (None, 0), (1, 0), (None, 1)])
def test_custom_vmap_rule_sizes_and_axes(size, in_axes):
    f, sizes = _rule_recorder()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((size, 4) if in_axes[0] == 0 else (4, size) if in_axes[0] == 1
                            else (4,)).astype(np.float32)
    y = rng.standard_normal((size, 4) if in_axes[1] == 0 else (4, size) if in_axes[1] == 1
                            else (4,)).astype(np.float32)
    g = lambda x, y: f(x * 2, y)  # noqa: E731
    check_vmap(g, x, y, in_axes=in_axes, rtol=1e-5, atol=1e-5)
    check_vmap(g, x, y, in_axes=in_axes, out_axes=(1, 0), rtol=1e-5, atol=1e-5)
    assert size in sizes  # the rule ran at the batch size, as under vmap


def test_custom_vmap_unbatched_operands_run_the_body():
    f, sizes = _rule_recorder()
    x, y = XS, np.arange(3, dtype=np.float32)
    # only an operand the custom_vmap does not see is batched: vmap runs the body
    check_vmap(lambda b, x, y: (f(x, y)[0] + b[0], f(x, y)[1]), np.ones((3, 1), np.float32),
               x, y, in_axes=(0, None, None))
    assert not sizes


def test_custom_vmap_under_jit_and_in_a_loop():
    f, _ = _rule_recorder()
    x, y = np.ones((3, 4), np.float32), np.arange(12, dtype=np.float32).reshape(3, 4)

    def g(x, y):
        return jax.lax.fori_loop(0, 2, lambda i, c: f(c, y)[0], x)
    check_vmap(g, x, y, jit=True, rtol=1e-5, atol=1e-5)
    check_vmap(g, x, y[0], in_axes=(0, None), jit=True, rtol=1e-5, atol=1e-5)
    check_vmap(jax.jit(g), x, y[0], in_axes=(0, None), rtol=1e-5, atol=1e-5)


def test_custom_vmap_nested_batch_lower():
    f, _ = _rule_recorder()
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 10
    y = np.ones(4, np.float32)
    inner = lambda x: f(x, y)  # noqa: E731
    want = jax.vmap(jax.vmap(inner))(x)
    assert_same_tree(sb.batch_lower(sb.batch_lower(inner))(x), want, rtol=1e-5, atol=1e-5)
    assert_same_tree(jax.vmap(sb.batch_lower(inner))(x), want, rtol=1e-5, atol=1e-5)
    assert_same_tree(sb.batch_lower(jax.vmap(inner))(x), want, rtol=1e-5, atol=1e-5)


def test_custom_vmap_unbatched_by_the_inner_batching_batched_by_the_outer():
    # the inner batch_lower leaves f's call unbatched (its function runs); the
    # outer batches it: f's rule, as jax.vmap(jax.vmap(h)) does
    f = _sin_with_cos_rule()
    h = lambda x, y: f(y) + x  # noqa: E731
    x = np.arange(6, dtype=np.float32).reshape(2, 3) / 4
    y = np.arange(2, dtype=np.float32)
    want = jax.vmap(jax.vmap(h, in_axes=(0, None)))(x, y)
    inner = sb.batch_lower(h, in_axes=(0, None))
    assert_same_tree(sb.batch_lower(inner)(x, y), want, rtol=1e-6, atol=1e-6)
    assert_same_tree(jax.vmap(inner)(x, y), want, rtol=1e-6, atol=1e-6)
    assert_same_tree(inner(x[0], y[0]), jax.vmap(h, in_axes=(0, None))(x[0], y[0]),
                     rtol=1e-6, atol=1e-6)


def test_custom_vmap_rule_that_calls_another_custom_vmap_nested():
    g = _sin_with_cos_rule()

    @jax.custom_batching.custom_vmap
    def f(x):
        return x + 1.0

    @f.def_vmap
    def rule(axis_size, in_batched, xs):
        return g(xs) * 10, in_batched[0]  # g's operand is batched only by an outer vmap
    x = np.arange(6, dtype=np.float32).reshape(2, 3) / 4
    want = jax.vmap(jax.vmap(f))(x)
    assert_same_tree(sb.batch_lower(f)(x[0]), jax.vmap(f)(x[0]), rtol=1e-6, atol=1e-6)
    for got in (sb.batch_lower(sb.batch_lower(f))(x), jax.vmap(sb.batch_lower(f))(x),
                sb.batch_lower(jax.vmap(f))(x), jax.jit(sb.batch_lower(sb.batch_lower(f)))(x)):
        assert_same_tree(got, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("add_size", [False, True])
def test_custom_vmap_is_never_chunked(add_size):
    """A loop over chunks would call the rule at the chunk's size where
    jax.vmap calls it at the batch size (a rule reading axis_size gives
    other values): chunk_size= is a typed refusal naming the user's line;
    chunk_size >= the batch, the cost model and tune=True run one batch,
    the rule at the batch size, with vmap's values."""
    f, sizes = _rule_recorder(add_size=add_size)
    x = np.arange(24, dtype=np.float32).reshape(6, 4) / 10
    y = np.ones(4, np.float32)
    want = jax.vmap(f, in_axes=(0, None))(x, y)
    for chunk in (2, 4, 1):
        with pytest.raises(sb.UnsupportedOpError, match="custom_vmap") as err:
            sb.batch_lower(f, in_axes=(0, None), chunk_size=chunk)(x, y)
        assert "test_jax_custom_api.py" in str(err.value) and "all 6" in str(err.value)
    del sizes[:]
    for kw in (dict(chunk_size=6), dict(chunk_size=8), dict(tune=None), dict(tune=False)):
        got = sb.batch_lower(f, in_axes=(0, None), **kw)(x, y)
        assert_same_tree(got, want, rtol=1e-5, atol=1e-5)
    assert set(sizes) == {6}, sizes


def test_custom_vmap_with_tune_runs_one_batch(tmp_path, monkeypatch):
    monkeypatch.setenv("STABLEHLO_BATCH_TUNING_DIR", str(tmp_path))
    f, sizes = _rule_recorder(add_size=True)
    x = np.arange(24, dtype=np.float32).reshape(6, 4) / 10
    y = np.ones(4, np.float32)
    bl = sb.batch_lower(f, in_axes=(0, None), tune=True)
    assert_same_tree(bl(x, y), jax.vmap(f, in_axes=(0, None))(x, y), rtol=1e-5, atol=1e-5)
    assert set(sizes) == {6}, sizes


@pytest.mark.parametrize("add_size", [False, True])
def test_custom_vmap_with_a_symbolic_batch_size(add_size):
    f, sizes = _rule_recorder(add_size=add_size)
    y = np.ones(4, np.float32)
    bl = sb.batch_lower(f, in_axes=(0, None), axis_size="b")
    for n in (2, 5):
        x = np.arange(4 * n, dtype=np.float32).reshape(n, 4) / 10
        assert_same_tree(bl(x, y), jax.vmap(f, in_axes=(0, None))(x, y), rtol=1e-5, atol=1e-5)
    assert any(not isinstance(s, int) for s in sizes)  # traced at the symbolic size


def test_custom_vmap_rule_that_needs_a_static_size_is_refused_at_a_symbolic_one():
    @jax.custom_batching.custom_vmap
    def f(x):
        return x

    @f.def_vmap
    def rule(axis_size, in_batched, xs):
        return (xs * 2 if axis_size > 2 else xs), in_batched[0]
    check_vmap(f, XS)
    with pytest.raises(sb.UnsupportedOpError, match=r"custom_vmap.*symbolic batch size"):
        sb.batch_lower(lambda x: f(x) + 1, axis_size="b")(XS)


def test_custom_vmap_under_jvp_uses_jvp_of_the_rule():
    f = _sin_with_cos_rule()
    g = lambda x: f(x) * x  # noqa: E731
    ts = np.ones(3, np.float32)
    want = jax.jvp(jax.vmap(g), (XS,), (ts,))
    got = jax.jvp(sb.batch_lower(g), (XS,), (ts,))
    assert_same_tree(got, want, rtol=1e-5, atol=1e-5)
    assert_same_tree(jax.vmap(lambda x, t: jax.jvp(g, (x,), (t,)))(XS, ts),
                     sb.batch_lower(lambda x, t: jax.jvp(g, (x,), (t,)))(XS, ts),
                     rtol=1e-5, atol=1e-5)


def test_custom_vmap_under_a_custom_jvp_under_grad():
    f = _sin_with_cos_rule()

    @jax.custom_jvp
    def h(x):
        return f(x)

    @h.defjvp
    def h_jvp(primals, tangents):
        (x,), (t,) = primals, tangents
        return h(x), 3 * t
    w = np.float32(1.5)
    for loss in (lambda bl: lambda w: (bl(lambda x: h(x * w))(XS) ** 2).sum(),):
        want = jax.grad(loss(jax.vmap))(w)
        assert_same_tree(jax.grad(loss(sb.batch_lower))(w), want, rtol=1e-5, atol=1e-5)
        assert_same_tree(jax.jit(jax.grad(loss(sb.batch_lower)))(w), want, rtol=1e-5,
                         atol=1e-5)


def test_reverse_mode_of_a_custom_vmap_is_refused():
    # jax.grad(jax.vmap(f)) differentiates the rule's batched trace; our VJP
    # is the per-example function's, which jax cannot linearize.
    f = _sin_with_cos_rule()
    w = np.float32(1.5)
    with pytest.raises(sb.UnsupportedOpError,
                       match=r"custom_vmap.*reverse-mode.*test_jax_custom_api.py:\d+"):
        jax.grad(lambda w: sb.batch_lower(lambda x: f(x * w))(XS).sum())(w)


def test_check_true_with_a_custom_vmap_is_refused():
    # check=True compares with the function per lane; the rule need not match it
    f = _sin_with_cos_rule()
    with pytest.raises(sb.UnsupportedOpError, match=r"custom_vmap.*check=True"):
        sb.batch_lower(lambda x: f(x) * 2, check=True)(XS)
    g = jax.custom_batching.sequential_vmap(jnp.sin)  # batches like its function: checked
    assert_same_tree(sb.batch_lower(g, check=True)(XS), np.sin(XS), rtol=1e-6, atol=1e-6)


def test_custom_vmap_rule_with_a_wrong_shape_is_an_error():
    @jax.custom_batching.custom_vmap
    def f(x):
        return jnp.sin(x)

    @f.def_vmap
    def rule(axis_size, in_batched, xs):
        return jnp.sum(xs), True
    with pytest.raises(sb.UnsupportedOpError, match=r"custom_vmap.*returned"):
        sb.batch_lower(f)(XS)


def test_custom_vmap_outside_batch_lower_is_untouched():
    f = _sin_with_cos_rule()
    assert_same_tree(jax.jit(f)(XS), np.sin(XS), rtol=1e-6, atol=1e-6)
    assert_same_tree(jax.jit(jax.vmap(f))(XS), np.cos(XS), rtol=1e-6, atol=1e-6)


def test_sequential_vmap_batches_like_its_function():
    g = jax.custom_batching.sequential_vmap(lambda x, y: jnp.sin(x) * y + 1)
    check_vmap(g, XS, np.float32(3.0), in_axes=(0, None))
    check_vmap(lambda x: g(x, x) * 2, XS, jit=True)


def test_vmappable_of_an_export_under_batch_lower():
    w = np.ones((3, 2), np.float32)
    exp = jax.export.export(jax.jit(lambda x, w: jnp.tanh(x @ w)))(
        jax.ShapeDtypeStruct((3,), np.float32), jax.ShapeDtypeStruct((3, 2), np.float32))
    f = sb.vmappable(exp)
    xs = np.arange(12, dtype=np.float32).reshape(4, 3) / 10
    check_vmap(f, xs, w, in_axes=(0, None), rtol=1e-5, atol=1e-5)


def _scale_with_nondiff_factor():
    @partial(jax.custom_jvp, nondiff_argnums=(0,))
    def f(x, y):
        return x * y

    @f.defjvp
    def f_jvp(x, primals, tangents):
        (y,), (t_y,) = primals, tangents
        return f(x, y), 5 * t_y
    return f


def test_custom_jvp_with_a_batched_nondiff_argument():
    f = _scale_with_nondiff_factor()
    check_vmap(f, XS, XS + 1)


def test_custom_jvp_rule_holding_a_traced_argument_under_jvp_is_a_typed_error():
    # The rule sees the batched function's argument from its own trace; a
    # derivative taken after that trace cannot (jax.jit(f) fails alike), so the
    # error is ours, typed, not jax's ValueError from inside the export.
    f = _scale_with_nondiff_factor()
    ys, ts = XS + 1, np.ones(3, np.float32)
    want = jax.jvp(lambda y: jax.vmap(f)(XS, y), (ys,), (ts,))
    assert_same_tree(want[1], 5 * ts)
    with pytest.raises(Exception):
        jax.jvp(lambda y: jax.jit(f)(XS[0], y), (ys[0],), (ts[0],))
    with pytest.raises(sb.UnsupportedOpError, match="nondiff_argnums"):
        jax.jvp(lambda y: sb.batch_lower(f)(XS, y), (ys,), (ts,))


def _sum_sin_with_batched_tangent_rule(bl):
    @jax.custom_jvp
    def f(mat, aux):
        return jnp.sum(jnp.sin(mat), axis=1) * aux

    @f.defjvp
    def f_jvp(primals, tangents):
        mat, aux = primals
        dmat, _ = tangents
        # The batched call is applied to a tangent: jax.grad transposes it.
        t = bl(lambda m, v: jnp.dot(jnp.cos(m), v) * aux)(mat, dmat)
        return f(mat, aux), t
    return f


@pytest.mark.parametrize("jit", [False, True])
def test_batched_call_on_tangents_in_a_custom_jvp_rule_is_transposed(jit):
    mat = np.arange(6, dtype=np.float32).reshape(2, 3) / 5
    grads = []
    for bl in (jax.vmap, sb.batch_lower):
        f = _sum_sin_with_batched_tangent_rule(bl)
        g = jax.grad(lambda m, a: jnp.sum(f(m, a) ** 2), argnums=(0, 1))
        grads.append((jax.jit(g) if jit else g)(mat, np.float32(0.5)))
    assert_same_tree(grads[1], grads[0], rtol=1e-5, atol=1e-5)


def test_transposing_a_batched_call_that_is_not_linear_is_refused_as_under_vmap():
    def make(bl):
        @jax.custom_jvp
        def f(x):
            return x

        @f.defjvp
        def f_jvp(primals, tangents):
            return primals[0], bl(jnp.sin)(tangents[0])
        return f
    x = np.ones(3, np.float32)
    for bl in (jax.vmap, sb.batch_lower):
        with pytest.raises(NotImplementedError, match="Transpose rule .* for 'sin'"):
            jax.grad(lambda x: make(bl)(x).sum())(x)


def test_transposed_batched_call_with_an_integer_result():
    # The transpose takes the cotangents of the inexact results only.
    def make(bl):
        @jax.custom_jvp
        def f(x):
            return jnp.sin(x)

        @f.defjvp
        def f_jvp(primals, tangents):
            (x,), (t,) = primals, tangents
            count, lin = bl(lambda c, v: (jnp.int32(1), c * v))(jnp.cos(x), t)
            return jnp.sin(x), lin + 0 * count
        return f
    x = np.linspace(0, 1, 4, dtype=np.float32)
    want = jax.grad(lambda x: make(jax.vmap)(x).sum())(x)
    got = jax.grad(lambda x: make(sb.batch_lower)(x).sum())(x)
    assert_same_tree(got, want, rtol=1e-6, atol=1e-6)
