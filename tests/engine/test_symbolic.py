"""A symbolic batch size (axis_size="b"): one artifact, in jax.export's
shape-polymorphic form, that runs at every batch size with no re-export;
each call compared with jax.vmap."""
import io
import sys
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import stablehlo_batch as sb
from batch_cases import make, mlp, newton_sqrt
from conftest import assert_same_tree
from stablehlo_batch.export import batch_exported

TOL = dict(rtol=1e-5, atol=1e-5)


def branches(x, k):
    y = jax.lax.cond(jnp.sum(x) > 0, lambda v: jnp.sin(v) * 2, lambda v: jnp.cos(v) - 1, x)
    return jax.lax.switch(k, [lambda v: v + 1, lambda v: v * 3, lambda v: -v], y), \
        jnp.arange(3) * k


def shapes(x, w):
    y = jnp.concatenate([x, x[::-1]]) @ w
    y = jnp.pad(y, (1, 2)).reshape(3, 3)[:, 1:]
    return jnp.sort(y, axis=1), jnp.cumsum(x), x[1:3], jnp.broadcast_to(x, (2, 3))


def _params(rng):
    return [(make(rng, (a, b), jnp.float32, None, 0), make(rng, (b,), jnp.float32, None, 0))
            for a, b in ((4, 5), (5, 3))]


def _lanes(rng, per_example, axes, size):
    out = []
    for a, d in zip(per_example, axes):
        if d is None:
            out.append(a)
        elif a.dtype == jnp.int32:
            out.append(jnp.asarray(rng.integers(0, 3, (size,) + a.shape), jnp.int32))
        else:
            out.append(jnp.abs(make(rng, a.shape, a.dtype, d, size)) + 0.5)
    return out


@pytest.mark.parametrize("name", ["mlp", "while", "cond"])
def test_one_artifact_every_batch_size(rng, name):
    params = _params(rng)
    fn, example, axes = {
        "mlp": (lambda x, p: mlp(p, x), (jnp.zeros(4), params), (0, None)),
        "while": (newton_sqrt, (jnp.ones(3), jnp.float32(1e-4)), (0, None)),
        "cond": (branches, (jnp.ones(3), jnp.int32(0)), (0, 0)),
    }[name]
    exp = jax.export.export(jax.jit(fn))(*example)
    artifact = batch_exported(exp, axes, axis_size="b").serialize()
    loaded = jax.export.deserialize(artifact)
    assert "b" in str(loaded.in_avals[0].shape[0])
    assert loaded.mlir_module().count("tensor<?x") > 0
    for size in (1, 7, 512):
        args = _lanes(rng, example, axes, size)
        assert_same_tree(jax.jit(loaded.call)(*args), jax.vmap(fn, in_axes=axes)(*args), **TOL)


def test_batch_lower_symbolic_one_plan(rng):
    """batch_lower(axis_size="b") builds one module for every batch size; axes,
    ints, shape ops and gradients."""
    w = make(rng, (6, 6), jnp.float32, None, 0)
    bl = sb.batch_lower(shapes, in_axes=(1, None), out_axes=(0, -1, 1, 0), axis_size="b")
    for size in (1, 5):
        x = make(rng, (3,), jnp.float32, 1, size)
        assert_same_tree(bl(x, w), jax.vmap(shapes, (1, None), (0, -1, 1, 0))(x, w), **TOL)
    assert bl.cache_info().currsize == 1
    assert "?" in bl.lower(x, w).as_text()
    ints = sb.batch_lower(lambda a, b: (a * b) % 7 + jnp.arange(3), in_axes=(0, None),
                          axis_size="b")
    a, b = make(rng, (3,), jnp.int32, 0, 4), make(rng, (3,), jnp.int32, None, 0)
    assert_same_tree(ints(a, b), jax.vmap(lambda a, b: (a * b) % 7 + jnp.arange(3),
                                          (0, None))(a, b))
    params = _params(rng)
    xs = make(rng, (4,), jnp.float32, 0, 3)
    loss = lambda p, f: jnp.sum(f(mlp, in_axes=(None, 0))(p, xs))
    got = jax.grad(loss)(params, lambda *a, **k: sb.batch_lower(*a, **k, axis_size="b"))
    assert_same_tree(got, jax.grad(loss)(params, jax.vmap), rtol=1e-4, atol=1e-4)


def test_cli_symbolic_exported(rng, tmp_path, monkeypatch, capsysbinary):
    from stablehlo_batch import cli
    src = tmp_path / "f.jax_exported"
    src.write_bytes(jax.export.export(jax.jit(newton_sqrt))(
        jnp.ones(3), jnp.float32(1e-4)).serialize())
    dst = tmp_path / "f_b.jax_exported"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"")))
    assert cli.main([str(src), "--axis-size=b", "--in-axes=0,none", "-o", str(dst)]) == 0
    loaded = jax.export.deserialize(bytearray(dst.read_bytes()))
    for size in (2, 9):
        x = jnp.abs(make(rng, (3,), jnp.float32, 0, size)) + 0.5
        assert_same_tree(loaded.call(x, jnp.float32(1e-4)),
                         jax.vmap(newton_sqrt, (0, None))(x, jnp.float32(1e-4)), **TOL)


def test_indexing_and_sort_symbolic(rng):
    def f(v, i):
        return (jnp.sort(v), jax.lax.top_k(v, 2)[0], v.at[i].set(1.0),
                jax.lax.dynamic_update_slice(v, jnp.ones(2), (i,)), jnp.cumsum(v), v[i],
                jax.lax.dynamic_slice(v, (i,), (3,)), v[jnp.array([1, 3])],
                jax.lax.fori_loop(0, 3, lambda k, c: c + v[k], 0.0))
    for in_axes in ((0, 0), (0, None)):  # per-lane and shared (clamped) starts
        bl = sb.batch_lower(f, in_axes=in_axes, axis_size="b")
        for size in (1, 6):
            v = make(rng, (8,), jnp.float32, 0, size)
            i = jnp.asarray(rng.integers(0, 8, (size,)), jnp.int32) if in_axes[1] == 0 \
                else jnp.int32(7)
            assert_same_tree(bl(v, i), jax.vmap(f, in_axes)(v, i), **TOL)


def test_per_lane_custom_calls_and_generators(rng):
    """Custom calls (LAPACK here) and rng_bit_generator need static shapes:
    they run per lane, in a loop over the run-time batch size."""
    a = make(rng, (4, 4), jnp.float32, 0, 5)
    a = a @ jnp.swapaxes(a, 1, 2) + 4 * jnp.eye(4)
    keys = jax.random.split(jax.random.key(0, impl="rbg"), 5)
    bits = lambda k: jax.random.bits(k, (3,))
    with pytest.warns(sb.FallbackWarning):
        chol = sb.batch_lower(jnp.linalg.cholesky, axis_size="b")
        gen = sb.batch_lower(bits, axis_size="b")
        for size in (1, 5):
            assert_same_tree(chol(a[:size]), jax.vmap(jnp.linalg.cholesky)(a[:size]), **TOL)
            assert_same_tree(gen(keys[:size]), jnp.stack([bits(k) for k in keys[:size]]))


def test_symbolic_errors(rng):
    with pytest.raises(sb.UnsupportedOpError, match="custom_call.*symbolic"):
        sb.batch_lower(jnp.linalg.cholesky, axis_size="b", strict=True)(jnp.ones((2, 3, 3)))
    conv = lambda v: jnp.convolve(v, jnp.ones(3), mode="same")
    with pytest.raises(sb.UnsupportedOpError, match="convolution.*symbolic batch size"):
        sb.batch_lower(conv, axis_size="b")(jnp.ones((3, 8)))
    with pytest.raises(ValueError, match="static axis_size"):
        sb.batch_lower(jnp.sin, axis_size="b", chunk_size=2)(jnp.ones((3, 4)))
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("batch",))
    with pytest.raises(ValueError, match="static axis_size"):
        sb.batch_lower(jnp.sin, axis_size="b", mesh=mesh)(jnp.ones((3, 4)))
    exp = jax.export.export(jax.jit(jnp.sin))(jnp.ones(3))
    with pytest.raises(sb.AxisSpecError, match="at least one batched argument"):
        batch_exported(exp, None, axis_size="b")


def test_bitcasts_symbolic(rng):
    """An equal-width bitcast stays one op; a width-changing one (a new
    trailing dim) runs per lane with a symbolic size. Both match vmap."""
    import warnings
    same = lambda v: jax.lax.bitcast_convert_type(v, jnp.int32)
    wide = lambda v: jax.lax.bitcast_convert_type(v, jnp.uint8)
    for fn, per_lane in ((same, False), (wide, True)):
        bl = sb.batch_lower(fn, axis_size="b")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for size in (1, 4):
                v = make(rng, (3,), jnp.float32, 0, size)
                assert_same_tree(bl(v), jax.vmap(fn)(v))
        fell_back = any(issubclass(w.category, sb.FallbackWarning) for w in caught)
        assert fell_back == per_lane
        assert bl.lower(v).as_text().count("stablehlo.while") == int(per_lane)


@pytest.mark.parametrize("with_callback", [False, True])
def test_symbolic_size_with_a_static_argument_one_plan(with_callback):
    """make fuzz (stop 22): a Python scalar under in_axes=None takes the
    static path, whose plan key held the batched avals, so a symbolic size
    built a plan per batch size (values right); with a host callback too."""
    def cb(x):
        return jax.pure_callback(np.square, jax.ShapeDtypeStruct(x.shape, x.dtype), x,
                                 vmap_method="sequential")

    def f(x, s):
        y = x * s
        return cb(y) if with_callback else jnp.sin(y)

    bl = sb.batch_lower(f, in_axes=(0, None), axis_size="b")
    first = None
    for n in (3, 1, 5, 5):
        x = jnp.arange(2.0 * n).reshape(n, 2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", sb.FallbackWarning)  # the callback's lane loop
            assert_same_tree(bl(x, 3), jax.vmap(f, in_axes=(0, None))(x, 3))
        first = bl.cache_info().misses if first is None else first
    assert bl.cache_info().misses == first

