"""Regression tests after the ideas of JAX's tests/batching_test.py (jax-v0.10.2).

Each case runs batch_lower and jax.vmap on the same function and arguments
(``check_vmap``). Cases that need vmap's ``axis_name`` (collectives) are in
tests/rules/test_collectives.py.
"""
from __future__ import annotations

from functools import partial

import numpy as np
import pytest

import jax
import jax.numpy as jnp
from jax import lax

import stablehlo_batch as sb
from conftest import assert_same_tree, check_vmap

R = np.random.default_rng(0)


def randn(*shape, dtype=np.float32):
    return R.standard_normal(shape).astype(dtype)


def test_constant_function_keeps_vmaps_dtype():
    # The result does not depend on the batched argument at all.
    check_vmap(lambda x: 3, np.ones(4, np.float32))


def test_nested_matmat_from_vdot():
    # vmap of vmap with an unbatched operand in each level and out_axes=1.
    def matmat(bl):
        matvec = bl(jnp.vdot, in_axes=(0, None))
        return bl(matvec, in_axes=(None, 1), out_axes=1)
    a, b = randn(4, 3), randn(3, 2)
    got = matmat(sb.batch_lower)(a, b)
    want = matmat(jax.vmap)(a, b)
    assert_same_tree(got, want, rtol=1e-5, atol=1e-5)


def test_per_example_gradients_of_an_mlp():
    def loss(params, data):
        inputs, targets = data
        for w, b in params:
            out = jnp.dot(w, inputs) + b
            inputs = jnp.tanh(out)
        return jnp.sum((out - targets) ** 2)
    sizes = [3, 2, 4]
    params = [(randn(m, n), randn(m)) for m, n in zip(sizes[1:], sizes[:-1])]
    batch = (randn(5, 3), randn(5, 4))
    check_vmap(partial(jax.grad(loss), params), batch, rtol=1e-5, atol=1e-5)


def test_jacobian_rows_from_a_pullback_with_out_axes_ndim():
    a, b, x = randn(4, 3), randn(4), randn(3)
    f = lambda x: jnp.tanh(a @ x + b)
    y, pullback = jax.vjp(f, x)
    basis = np.eye(y.size, dtype=np.float32)
    check_vmap(pullback, basis, out_axes=y.ndim, rtol=1e-5, atol=1e-5)


def test_jvp_pushforward_with_unbatched_primal_output():
    a, x = randn(4, 3), randn(3)
    push = lambda v: jax.jvp(lambda x: jnp.sin(a @ x), (x,), (v,))
    check_vmap(push, np.eye(3, dtype=np.float32), out_axes=(None, 0), rtol=1e-5, atol=1e-5)


def test_jit_of_batched_jitted_function_traces_once():
    traced = []

    @jax.jit
    def f(x):
        traced.append(None)
        return x + x

    g = jax.jit(sb.batch_lower(f))
    assert_same_tree(g(np.ones(2, np.float32)), 2 * np.ones(2, np.float32))
    n = len(traced)
    assert_same_tree(g(2 * np.ones(2, np.float32)), 4 * np.ones(2, np.float32))
    assert len(traced) == n


@pytest.mark.parametrize("in_axes,out_axes", [(0, 0), (1, 1), (2, 2), (2, 0)])
def test_reverse_and_slice_along_moved_axes(in_axes, out_axes):
    x = randn(3, 2, 4)
    check_vmap(lambda x: lax.rev(x[:, 1:], [0]), x, in_axes=in_axes, out_axes=out_axes)


@pytest.mark.parametrize("in_axes", [(0, 0), (2, 1), (3, None), (None, 2)])
def test_dot_general_with_its_own_batch_dims(in_axes):
    fun = lambda x, y: lax.dot_general(x, y, (((2,), (1,)), ((0,), (0,))))
    x_shape, y_shape = [3, 4, 5], [3, 5, 6]
    if in_axes[0] is not None:
        x_shape.insert(in_axes[0], 2)
    if in_axes[1] is not None:
        y_shape.insert(in_axes[1], 2)
    check_vmap(fun, randn(*x_shape), randn(*y_shape), in_axes=in_axes, rtol=1e-5, atol=1e-5)


def test_dot_of_vectors_nested_to_rank_three():
    def vecvec(bl, a, b):
        dot = jnp.dot
        for ndim in range(1, max(a.ndim, b.ndim)):
            dot = bl(dot, in_axes=(0 if a.ndim > ndim else None, 0 if b.ndim > ndim else None))
        return dot(a, b)
    a, b = randn(4, 2, 3), randn(3)
    assert_same_tree(vecvec(sb.batch_lower, a, b), vecvec(jax.vmap, a, b), rtol=1e-5, atol=1e-5)


def test_dot_with_batched_middle_axis_and_unbatched_matrix():
    check_vmap(jnp.dot, randn(5, 8, 10), randn(10, 1), in_axes=(1, None), rtol=1e-5, atol=1e-5)


def test_interior_padding():
    check_vmap(lambda x: lax.pad(x, np.float32(0), [(1, 2, 1), (0, 1, 0)]), randn(5, 4, 3))


@pytest.mark.parametrize("dim,in_axes,shapes", [
    (0, (0, 1, None), [(4, 2, 3), (1, 4, 3), (4, 3)]),
    (1, (0, None, 2), [(4, 2, 1), (2, 3), (2, 4, 4)]),
])
def test_concatenate_mixed_axes_and_unbatched(dim, in_axes, shapes):
    check_vmap(lambda *xs: lax.concatenate(xs, dimension=dim), *[randn(*s) for s in shapes],
               in_axes=in_axes)


def test_any_of_booleans():
    check_vmap(jnp.any, np.array([[True, False], [False, False]]))


@pytest.mark.parametrize("in_axes", [(0, None), (0, 0), (None, 0)])
def test_dynamic_index_batched_or_not(in_axes):
    x = np.arange(30, dtype=np.int32).reshape(10, 3)
    idx = np.array([0, 1, 2, 1, 0] * 2, np.int32)
    args = (x if in_axes[0] == 0 else x[0], idx if in_axes[1] == 0 else np.int32(1))
    check_vmap(lambda x, i: jnp.asarray(x)[i], *args, in_axes=in_axes)


@pytest.mark.parametrize("in_axes", [(0, 0, None), (None, 0, 0)])
def test_dynamic_update_index(in_axes):
    x, y = randn(10, 3), randn(10)
    idx = np.array([0, 1, 2, 1, 0] * 2, np.int32)
    args = (x if in_axes[0] == 0 else x[0], y, idx if in_axes[2] == 0 else np.int32(1))
    check_vmap(lambda x, y, i: lax.dynamic_update_index_in_dim(x, y, i, axis=0), *args,
               in_axes=in_axes)


def test_raw_prng_keys_then_normal():
    seeds = np.arange(4, dtype=np.uint32)
    keys = check_vmap(jax.random.PRNGKey, seeds)
    out = check_vmap(partial(jax.random.normal, shape=(3, 2)), keys)
    assert len(np.unique(np.asarray(out))) == out.size


@pytest.mark.parametrize("dimension,in_axes,out_axes", [(0, 0, 0), (-1, 0, 0), (0, 1, 0), (0, 1, 1)])
def test_sort_along_axes(dimension, in_axes, out_axes):
    v = np.arange(12, dtype=np.int32)[::-1].reshape(3, 4)
    check_vmap(partial(lax.sort, dimension=dimension), v, in_axes=in_axes, out_axes=out_axes)


_KEYS = np.arange(12, dtype=np.int32)[::-1].reshape(3, 4)
_VALS = R.permutation(12).astype(np.float32).reshape(3, 4)


@pytest.mark.parametrize("in_axes,out_axes,args", [
    ((0, 1), 0, (_KEYS, _VALS.T)),
    ((1, 1), 1, (_KEYS, _VALS)),
    ((None, 0), 0, (_KEYS[0], _VALS)),
    ((1, None), 0, (_KEYS.T, _VALS[0])),
])
def test_sort_key_val(in_axes, out_axes, args):
    check_vmap(partial(lax.sort_key_val, dimension=0), *args, in_axes=in_axes, out_axes=out_axes)


def _conv(params, x, dims=("NHWC", "HWIO", "NHWC")):
    return lax.conv_general_dilated(x, params, (1, 1), "SAME", (1, 1), (1, 1), dims)


def test_conv_per_example_forward_and_gradient():
    w, x = randn(3, 3, 1, 2), randn(3, 1, 5, 5, 1)
    check_vmap(partial(_conv, w), x, rtol=1e-5, atol=1e-5)
    grad_loss = jax.grad(lambda p, x: jnp.mean(_conv(p, x) ** 2))
    check_vmap(partial(grad_loss, w), x, rtol=1e-4, atol=1e-5)


def test_conv_whose_batch_dimension_is_not_major():
    w, x = randn(3, 3, 1, 2), randn(3, 5, 2, 5, 1)
    check_vmap(partial(_conv, w, dims=("HNWC", "HWIO", "HWNC")), x, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("op,init", [(lax.max, -np.inf)])
def test_pooling_gradient_per_example(op, init):
    def f(p, x):
        y = _conv(p, x)
        return lax.reduce_window(y, np.float32(init), op, (1, 2, 2, 1), (1, 1, 1, 1), "SAME")
    w, x = randn(3, 3, 1, 2), randn(3, 1, 4, 4, 1)
    grad_loss = jax.grad(lambda p, x: jnp.mean(f(p, x) ** 2))
    check_vmap(partial(grad_loss, w), x, rtol=1e-4, atol=1e-5)


def test_cumprod_last_axis():
    check_vmap(lambda x: jnp.cumprod(x, axis=-1), np.arange(9, dtype=np.int32).reshape(3, 3) + 1)


@pytest.mark.parametrize("in_axes,out_axes,args", [
    (0, 0, (np.array([True, False]), np.array([0, 1]), np.array([2, 3]))),
    ((0, None, None), 0, (np.array([False, True]), np.array([0, 1]), np.array([2, 3]))),
    ((None, 0, None), 0, (True, np.array([0, 1], np.float32), np.array(3, np.float32))),
    ((0, None, 1), 1, (np.array([False, True]), np.array([2], np.float32),
                       np.array([[3, 4]], np.float32))),
])
def test_select_with_unbatched_predicate_or_branches(in_axes, out_axes, args):
    check_vmap(lax.select, *args, in_axes=in_axes, out_axes=out_axes)


def test_cholesky_batched_along_axis_one():
    b = randn(4, 3, 3)
    b = np.matmul(b, np.swapaxes(b, -1, -2)) + 3 * np.eye(3, dtype=np.float32)
    check_vmap(lax.linalg.cholesky, np.swapaxes(b, 0, 1), in_axes=1, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("in_axes", [(1, 2), (None, 2), (1, None)])
def test_triangular_solve_mixed_axes(in_axes):
    a = randn(4, 3, 4) + np.eye(4, dtype=np.float32)[:, None, :] * 4
    b = randn(2, 4, 3)
    args = (a if in_axes[0] is not None else a[:, 0], b if in_axes[1] is not None else b[..., 0])
    check_vmap(lax.linalg.triangular_solve, *args, in_axes=in_axes, rtol=1e-4, atol=1e-4)


def test_tridiagonal_solve_batched_along_axis_one():
    dl, d, du = randn(4, 3), randn(4, 3) + 4, randn(4, 3)
    dl[0], du[-1] = 0, 0
    check_vmap(lax.linalg.tridiagonal_solve, dl, d, du, randn(4, 2, 3), in_axes=(1, 1, 1, 2),
               rtol=1e-4, atol=1e-4)


_GATHER_1 = lax.GatherDimensionNumbers(offset_dims=(1,), collapsed_slice_dims=(0,),
                                       start_index_map=(0,))
_GATHER_2 = lax.GatherDimensionNumbers(offset_dims=(1,), collapsed_slice_dims=(0,),
                                       start_index_map=(0, 1))


@pytest.mark.parametrize("in_axes,shape,idxs,dnums", [
    ((1, None), (10, 3, 5), np.array([[0], [2], [1]]), _GATHER_1),
    ((None, 1), (10, 5), np.array([[0, 2, 1], [0, 3, 3]]).T[..., None], _GATHER_1),
    ((2, 0), (10, 5, 2), np.array([[[0, 2], [1, 0]], [[1, 0], [2, 0]]]), _GATHER_2),
])
def test_gather_and_its_gradient(in_axes, shape, idxs, dnums):
    fun = partial(lax.gather, dimension_numbers=dnums, slice_sizes=(1, 3))
    operand = randn(*shape)
    idxs = idxs.astype(np.int32)
    check_vmap(fun, operand, idxs, in_axes=in_axes)
    gfun = jax.grad(lambda x, i: jnp.sum(jnp.sin(fun(x, i))))
    check_vmap(gfun, operand, idxs, in_axes=in_axes, rtol=1e-5, atol=1e-6)


def test_numpy_fancy_indexing():
    a = np.arange(24, dtype=np.int32).reshape(2, 3, 4)
    check_vmap(lambda a, i: jnp.asarray(a)[:, i], a, np.array([[0, 1], [2, 0]], np.int32), in_axes=(None, 0))
    check_vmap(lambda a: jnp.asarray(a)[:, jnp.array([0, 2])], a, in_axes=1)


def test_transposes_with_moved_batch_axis():
    x = np.arange(6 * 3 * 4 * 5, dtype=np.int32).reshape(3, 4, 6, 5)
    check_vmap(lambda x: jnp.transpose(x, (1, 2, 0)), x, in_axes=2)
    check_vmap(lambda x: x + x.T, np.arange(36, dtype=np.int32).reshape(4, 3, 3))


def test_gradient_through_batched_cholesky():
    m = randn(20, 5).astype(np.float64).astype(np.float32)
    psd, vec = m.T @ m, randn(5)

    def f(scale):
        chol = jnp.linalg.cholesky(scale[jnp.newaxis] * psd)
        return -0.5 * jnp.sum((chol @ vec) ** 2)
    scales = np.array([[0.1], [0.2], [0.3]], np.float32)
    got = jax.grad(lambda s: jnp.sum(sb.batch_lower(f)(s)))(scales)
    want = jax.grad(lambda s: jnp.sum(jax.vmap(f)(s)))(scales)
    assert_same_tree(got, want, rtol=1e-3, atol=1e-3)


def test_while_loop_drawing_from_batched_keys():
    def f(key):
        def body(uk):
            u = jax.random.uniform(uk[1], ())
            return u, jax.random.split(uk[1])[0]
        return lax.while_loop(lambda uk: uk[0] > 0.5, body, (np.float32(1), key))[0]
    with jax.debug_key_reuse(False):
        check_vmap(f, jax.random.split(jax.random.PRNGKey(0), 3))


def test_empty_tuples_in_and_out():
    check_vmap(lambda x, _: x + 1, np.array([0, 1], np.int32), ())
    check_vmap(lambda x: (x + 1, ()), np.array([0, 1], np.int32))


def test_index_add_with_only_the_indices_batched():
    check_vmap(lambda x, i, y: jnp.asarray(x).at[i].add(y), np.zeros(4, np.float32),
               np.arange(4, dtype=np.int32), np.float32(1), in_axes=(None, 0, None))


def test_scalar_dynamic_slice_and_update():
    xs = np.array([1, 2, 3, 4], np.int32)
    check_vmap(lambda x: lax.dynamic_slice(x, [], []), xs)
    check_vmap(lambda x: lax.dynamic_update_slice(x, np.int32(7), []), xs)


@pytest.mark.parametrize("in_axes", [-3, -2, -1])
def test_negative_in_axes(in_axes):
    check_vmap(jnp.sum, np.arange(60, dtype=np.int32).reshape(3, 4, 5), in_axes=in_axes)


@pytest.mark.parametrize("out_axes", [-3, -1])
def test_negative_out_axes(out_axes):
    check_vmap(lambda y: y, np.arange(60, dtype=np.int32).reshape(3, 4, 5), out_axes=out_axes)


def test_negative_out_axis_of_an_unbatched_output_broadcasts():
    check_vmap(lambda *xs: xs, np.arange(5, dtype=np.int32), np.int32(7), in_axes=(0, None),
               out_axes=(0, -1))


@pytest.mark.parametrize("in_axes,out_axes,args", [
    (-4, 0, (np.zeros((3, 4, 5), np.float32),)),
    (0, -4, (np.zeros((3, 4, 5), np.float32),)),
    ((0, None), (0, -2), (np.arange(5, dtype=np.int32), np.int32(7))),
])
def test_axes_out_of_bounds_raise_value_error(in_axes, out_axes, args):
    fun = lambda *xs: xs
    with pytest.raises(ValueError):
        jax.vmap(fun, in_axes=in_axes, out_axes=out_axes)(*args)
    with pytest.raises(ValueError):
        sb.batch_lower(fun, in_axes=in_axes, out_axes=out_axes)(*args)


def test_keyword_arguments_are_batched():
    f = lambda a, b: (2 * a, 3 * b)
    check_vmap(f, a=np.array([1], np.int32), b=np.array([2], np.int32))
    check_vmap(f, np.array([1], np.int32), b=np.array([2], np.int32))


def test_non_jax_typed_output_raises_type_error():
    # vmap's text (JAX's testNonJaxTypedOutput matches it)
    with pytest.raises(TypeError, match="Output from batched function.*is not a valid JAX type"):
        sb.batch_lower(lambda x: "hello")(np.arange(5))


# ---- custom vmappable types (batching.register_vmappable; JAX's VmappableTest) ----

class _Named:
    """An array with axis names, a pytree too; vmapped by name (JAX's NamedArray)."""

    def __init__(self, names, data):
        assert len(names) == data.ndim
        self.names, self.data = list(names), data


jax.tree_util.register_pytree_node(_Named, lambda x: ((x.data,), x.names),
                                   lambda names, xs: _Named(names, xs[0]))


class _NamedSpec:
    def __init__(self, name, axis):
        self.name, self.axis = name, axis


class _Boxed:  # no pytree: only its to_elt / from_elt know it
    def __init__(self, data):
        self.data = data


def _named_to_elt(cont, _, val, spec):
    names = list(val.names)
    assert names.pop(spec.axis) == spec.name
    return _Named(names, cont(val.data, spec.axis))


def _named_from_elt(cont, size, elt, spec):
    names = list(elt.names)
    names.insert(spec.axis, spec.name)
    return _Named(names, cont(size, elt.data, spec.axis))


@pytest.fixture
def vmappables():
    """Registers the custom types for one test, and removes them from jax's
    tables afterwards (``unregister_vmappable`` keeps them)."""
    from jax._src.interpreters import batching as jb
    from jax.interpreters import batching
    batching.register_vmappable(_Named, _NamedSpec, int, _named_to_elt, _named_from_elt, None)
    batching.register_vmappable(  # to_elt and from_elt compute around cont
        _Boxed, int, int, lambda cont, _, v, spec: _Boxed(cont(v.data + 1, spec)),
        lambda cont, size, e, spec: _Boxed(cont(size, e.data * 2, spec)), None)
    yield
    for t in (_Named, _Boxed):
        for table in (jb.vmappables, jb.to_elt_handlers, jb.from_elt_handlers):
            table.pop(t, None)
    jb.spec_types.discard(_NamedSpec)


@pytest.mark.parametrize("jit", [False, True])
def test_custom_vmappable_type_in_and_out(vmappables, jit):
    x = _Named(["i", "j"], jnp.arange(12.0).reshape(3, 4))
    f = lambda x: _Named(x.names, x.data * x.data + jnp.sum(x.data))
    g = sb.batch_lower(jax.jit(f) if jit else f, in_axes=_NamedSpec("i", 0),
                       out_axes=_NamedSpec("i", 1))
    got = g(x)
    data = np.arange(12.0, dtype=np.float32).reshape(3, 4)
    assert got.names == ["j", "i"]
    np.testing.assert_allclose(got.data, (data ** 2 + data.sum(1, keepdims=True)).T)


def test_custom_vmappable_to_elt_and_from_elt_bind_primitives(vmappables):
    @jax.jit
    def f(x):
        out = sb.batch_lower(lambda b, y: _Boxed(b.data - y), in_axes=(0, None))(_Boxed(x), 1.0)
        return out.data
    np.testing.assert_allclose(f(jnp.arange(3.0)), (np.arange(3.0) + 1 - 1) * 2)


def test_custom_vmappable_plan_is_cached(vmappables, monkeypatch):
    """A second call with other values (of the same types) reuses the plan:
    no export, rewrite or compile again; the values it closes over are
    arguments of the plan, so a changed one still gives the right result.
    Another shape, another function body or other settings: a new plan."""
    from stablehlo_batch import api
    builds = []
    real = api.BatchedFunction._build
    monkeypatch.setattr(api.BatchedFunction, "_build",
                        lambda self, *a, **k: builds.append(1) or real(self, *a, **k))
    state = {"scale": jnp.float32(2.0), "shift": jnp.ones(4)}

    def f(x):
        return _Named(x.names, x.data * state["scale"] + state["shift"])
    spec = _NamedSpec("i", 0)
    g = sb.batch_lower(f, in_axes=spec, out_axes=spec)

    def check(x):  # (jax.vmap refuses these types in this jax version: by hand)
        got = g(x)
        assert got.names == ["i", "j"]
        np.testing.assert_allclose(
            got.data, np.asarray(x.data) * np.asarray(state["scale"]) + np.asarray(state["shift"]),
            rtol=1e-6)

    x = _Named(["i", "j"], jnp.arange(12.0).reshape(3, 4))
    check(x)
    n = len(builds)
    assert n >= 1
    check(_Named(["i", "j"], jnp.arange(12.0).reshape(3, 4) + 5))  # other values
    state["scale"] = jnp.float32(-3.0)  # closed-over values change
    state["shift"] = jnp.arange(4.0)
    check(x)
    assert len(builds) == n  # the same plan every time
    state["shift"] = jnp.ones(5)
    check(_Named(["i", "j"], jnp.arange(15.0).reshape(3, 5)))  # other shapes
    assert len(builds) == n + 1
    g.cache_clear()
    check(_Named(["i", "j"], jnp.arange(15.0).reshape(3, 5)))
    assert len(builds) == n + 2
    with jax.default_matmul_precision("highest"):  # other settings: another plan
        check(_Named(["i", "j"], jnp.arange(15.0).reshape(3, 5)))
    assert len(builds) == n + 3


def test_betainc_with_unbatched_constant_arguments():
    check_vmap(lambda x: jax.scipy.special.betainc(jnp.ones(3), 1.0, x),
               np.full((2, 3), 0.5, np.float32), rtol=1e-5, atol=1e-6)


def test_weak_type_is_preserved():
    x = jnp.ravel(1)
    assert x.weak_type
    want = jax.vmap(lambda x: x * 2)(x)
    got = sb.batch_lower(lambda x: x * 2)(x)
    assert_same_tree(got, want)
    assert got.weak_type == want.weak_type


# The cases with vmap's axis_name (collectives over the batch) are in
# tests/rules/test_collectives.py.
