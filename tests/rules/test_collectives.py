"""vmap's axis_name in batch_lower: every collective over the batch axis
against jax.vmap(axis_name=...), under jit / grad / jvp, in loops and
branches, nested; spmd_to_batch on shard_map programs; the errors.

Ideas from JAX's tests/batching_test.py (the cases that use axis_name) are
ported here as our own tests.
"""
from __future__ import annotations

import functools
import os
import subprocess
import sys
import textwrap
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax._src.lax import parallel

import stablehlo_batch as sb
from conftest import assert_same_tree


def both(fn, *args, in_axes=0, out_axes=0, axis_size=None, name="i", **kw):
    """batch_lower and jax.vmap, both with ``name`` bound, agree on ``args``."""
    want = jax.vmap(fn, in_axes, out_axes, axis_name=name, axis_size=axis_size)(*args)
    got = sb.batch_lower(fn, in_axes, out_axes, axis_name=name, axis_size=axis_size,
                         **kw)(*args)
    assert_same_tree(got, want, rtol=1e-5, atol=1e-5)
    return got


def arange(*shape, dtype=jnp.float32):
    return (jnp.arange(np.prod(shape)) % 7 - 2).astype(dtype).reshape(shape) * (
        1 if jnp.issubdtype(dtype, jnp.integer) else 0.5)


# ---- each collective, batched and unbatched operands, in/out axes -------------------

COLLECTIVES = {
    "psum": lambda x, w: lax.psum(x, "i") * w,
    "pmean": lambda x, w: x - lax.pmean(x * w, "i"),
    "pmax": lambda x, w: lax.pmax(x, "i") + lax.pmax(w, "i"),
    "pmin": lambda x, w: lax.pmin(x - w, "i"),
    "psum_unbatched": lambda x, w: (x, lax.psum(w, "i")),
    "all_gather": lambda x, w: lax.all_gather(x, "i") + w,
    "all_gather_axis1": lambda x, w: lax.all_gather(x * w, "i", axis=1),
    "all_gather_tiled": lambda x, w: lax.all_gather(x, "i", axis=1, tiled=True),
    "all_gather_unbatched": lambda x, w: (lax.all_gather(w, "i"), x),
    "psum_scatter": lambda x, w: lax.psum_scatter(jnp.stack([x, 2 * x, -x]), "i"),
    "psum_scatter_tiled_dim1": lambda x, w: lax.psum_scatter(
        jnp.tile(x, (1, 3)) * w[0, 0], "i", scatter_dimension=1, tiled=True),
    "all_to_all": lambda x, w: lax.all_to_all(jnp.stack([x, 2 * x, -x]), "i", 0, 2),
    "all_to_all_tiled": lambda x, w: lax.all_to_all(jnp.tile(x, (1, 3)), "i", 1, 0,
                                                    tiled=True),
    "ppermute": lambda x, w: lax.ppermute(x, "i", [(0, 1), (1, 2), (2, 0)]) * w,
    "pshuffle": lambda x, w: lax.pshuffle(x, "i", [2, 0, 1]),
    "axis_index": lambda x, w: x + lax.axis_index("i"),
    "pargmax": lambda x, w: parallel.pargmax(x, "i"),
    "pargmin": lambda x, w: parallel.pargmin(x, "i"),
}


@pytest.mark.parametrize("name", sorted(COLLECTIVES))
def test_collective_matches_vmap(name):
    fn = COLLECTIVES[name]
    x, w = arange(3, 2, 4), arange(2, 4) + 1
    both(fn, x, w, in_axes=(0, None))


@pytest.mark.parametrize("name,in_axes,out_axes,dtype", [
    ("psum", (2, 0), -1, jnp.int32),
    ("all_gather_tiled", (1, None), 1, jnp.float32),
    ("psum_scatter", (1, None), 0, jnp.int32),
    ("all_to_all", (2, None), 1, jnp.float32),
    ("ppermute", (1, 0), 2, jnp.int32),
    ("axis_index", (1, None), 1, jnp.int32),
])
def test_collective_axes_and_dtypes(name, in_axes, out_axes, dtype):
    x = jnp.moveaxis(arange(3, 2, 4, dtype=dtype), 0, in_axes[0])
    w = arange(2, 4, dtype=dtype) + 1
    if in_axes[1] is not None:
        w = jnp.stack([w, w * 2, w - 1], axis=in_axes[1])
    both(COLLECTIVES[name], x, w, in_axes=in_axes, out_axes=out_axes)


def test_reduction_body_without_an_identity():
    # Complex pmax / pmin: a multi-op body; reduced by halves with stablehlo.map.
    x = (jnp.arange(10) % 3 + 1j * (jnp.arange(10) % 4)).reshape(5, 2).astype(jnp.complex64)
    both(lambda x: (lax.pmax(x, "i"), lax.pmin(x, "i"), lax.psum(x, "i")), x)


def test_batch_of_one_and_unmapped_results():
    x = arange(1, 3)
    both(lambda x: (lax.psum(x, "i"), lax.all_gather(x, "i")), x, out_axes=None)
    x = jnp.arange(15).reshape((3, 5))
    # The mapped axis becomes the first axis of the unmapped gather.
    got = both(lambda x: lax.all_gather(x, "i"), x, in_axes=1, out_axes=None)
    np.testing.assert_array_equal(got, x.T)
    got = both(lambda x: lax.all_gather(x[None], "i", tiled=True), x, in_axes=1,
               out_axes=None)
    a, b = both(lambda x: (lax.all_gather(jnp.ones_like(x), "i"), lax.all_gather(1, "i")),
                x, in_axes=1, out_axes=None)
    np.testing.assert_array_equal(b, np.ones(5, b.dtype))


def test_all_to_all_every_split_and_concat():
    x = arange(4, 4, 4)
    f = sb.batch_lower(lambda x: [lax.all_to_all(x, "i", s, c) for s in range(2)
                                  for c in range(2)], axis_name="i")
    got = f(x)
    for k, (s, c) in enumerate([(s, c) for s in range(2) for c in range(2)]):
        ref = jnp.moveaxis(x, (0, s + 1), (c + 1, 0))
        np.testing.assert_array_equal(got[k], ref)


def test_ppermute_random_permutation_and_partial():
    x = jnp.arange(6.0)
    perm = np.random.default_rng(0).permutation(6)
    pairs = [(int(s), int(t)) for s, t in zip(range(6), perm)]
    got = both(lambda x: x - lax.ppermute(x, "i", pairs), x)
    np.testing.assert_array_equal(got, x - x[np.argsort(perm)])
    # A lane that no pair sends to receives zeros (jax.vmap refuses this perm).
    got = sb.batch_lower(lambda x: lax.ppermute(x, "i", [(0, 1), (1, 2)]), axis_name="i")(x)
    np.testing.assert_array_equal(got, [0, 0, 1, 0, 0, 0])


def test_pbroadcast_and_replica_groups():
    x = arange(4, 3)
    got = sb.batch_lower(lambda x: lax.pbroadcast(x, "i", 2), axis_name="i")(x)
    np.testing.assert_array_equal(got, jnp.broadcast_to(x[2], x.shape))
    # jax.vmap has no axis_index_groups; shard_map semantics: each group reduces.
    got = sb.batch_lower(lambda x: (lax.psum(x, "i", axis_index_groups=[[0, 2], [1, 3]]),
                                    lax.pmax(x, "i", axis_index_groups=[[3, 1], [2, 0]]),
                                    lax.psum(x, "i", axis_index_groups=[[0, 3, 1], [2]])),
                         axis_name="i")(x)
    pairs = jnp.stack([x[0] + x[2], x[1] + x[3]])
    np.testing.assert_allclose(got[0], pairs[jnp.array([0, 1, 0, 1])])
    maxes = jnp.stack([jnp.maximum(x[1], x[3]), jnp.maximum(x[0], x[2])])
    np.testing.assert_allclose(got[1], maxes[jnp.array([1, 0, 1, 0])])
    # Groups of unequal sizes: one reduce per group.
    unequal = jnp.stack([x[0] + x[1] + x[3], x[2]])
    np.testing.assert_allclose(got[2], unequal[jnp.array([0, 0, 1, 0])])


# ---- transformations ---------------------------------------------------------------

def test_jit_grad_jvp_through_batched_function():
    def f(x, w):
        return jnp.tanh(x * w - lax.pmean(x, "i")) / lax.psum(jnp.abs(x).sum() + 1, "i")
    x, w = arange(3, 4), arange(4) + 1
    bl = sb.batch_lower(f, (0, None), axis_name="i")
    vm = jax.vmap(f, (0, None), axis_name="i")
    assert_same_tree(jax.jit(bl)(x, w), vm(x, w))
    loss = lambda g: lambda x, w: (g(x, w) ** 2).sum()
    assert_same_tree(jax.grad(loss(bl), (0, 1))(x, w), jax.grad(loss(vm), (0, 1))(x, w),
                     rtol=1e-5, atol=1e-6)


def test_grad_inside_the_batched_function():
    a = jnp.ones(5)
    both(jax.grad(lambda x: -lax.psum(x, "i")), a, out_axes=None)
    both(jax.grad(lambda x: lax.ppermute(x, "i", perm=[[0, 1], [1, 0]])), jnp.array([1., 2.]))
    x, y_bar = arange(3, 4), arange(3, 3, 4)
    got = both(lambda x, y_bar: jax.vjp(lambda x: lax.all_gather(x, "i"), x)[1](y_bar),
               x, y_bar)
    np.testing.assert_allclose(got[0], y_bar.sum(0))
    # psum_scatter's derivatives, both ways (JAX's testReduceScatterAutodiff).
    x = arange(3, 3, 4)
    rs = functools.partial(lax.psum_scatter, axis_name="i")
    bl, vm = sb.batch_lower(rs, axis_name="i"), jax.vmap(rs, axis_name="i")
    assert_same_tree(jax.jvp(bl, (x,), (x * 2,)), jax.jvp(vm, (x,), (x * 2,)))
    ct = vm(x) + 1
    assert_same_tree(jax.vjp(bl, x)[1](ct), jax.vjp(vm, x)[1](ct))


# ---- control flow --------------------------------------------------------------------

def test_collectives_in_scan_cond_and_while():
    def scan(x):
        def body(c, _):
            c = c + lax.axis_index("i") + lax.psum(c, "i") * 0.1
            return c, lax.pmax(c.sum(), "i")
        return lax.scan(body, x, None, length=3)
    both(scan, arange(3, 2))
    # A loop whose carry is unbatched until the axis index enters it.
    count = lambda: lax.scan(lambda c, _: (c + lax.axis_index("i"), c), 0, None, length=3)
    both(count, axis_size=4)
    # A batched predicate, collectives in both branches.
    cond = lambda x: lax.cond(x.sum() > 1, lambda: lax.psum(x, "i"), lambda: lax.pmin(x, "i"))
    both(cond, arange(3, 2))
    # A while loop whose trip count is the same on every lane (a psum'd bound).
    def loop(x):
        n = lax.psum(1, "i")
        return lax.while_loop(lambda c: c[0] < n, lambda c: (c[0] + 1, c[1] + lax.pmean(c[1], "i")),
                              (0, x))[1]
    both(loop, arange(3, 2))


# ---- nesting -------------------------------------------------------------------------

@pytest.mark.parametrize("collective,bulk", [(lax.psum, jnp.sum), (lax.pmax, jnp.max)])
def test_tuple_of_names_with_inner_vmap(collective, bulk):
    x = arange(2, 3, 2)
    for names in [("i", "j"), ("j", "i"), ("i",)]:
        inner = jax.vmap(lambda y: y - collective(y, names), axis_name="j", in_axes=1,
                         out_axes=1)
        got = sb.batch_lower(inner, axis_name="i")(x)
        axes = tuple(a for a, n in ((0, "i"), (2, "j")) if n in names)
        np.testing.assert_allclose(got, x - bulk(x, axis=axes, keepdims=True))


def test_tuple_of_names_across_nested_batch_lowers():
    # JAX's testCommAssocCollective with batch_lower in every vmap's place:
    # the inner function names the outer axis too, so it is traced into the
    # outer one (named_axes.vmap_inside), whose module our rewrite batches.
    x = arange(2, 2, 2)
    for names in [("j", "i"), ("j",)]:
        f = lambda y: y - lax.psum(y, names)
        for i, name in enumerate(("i", "j")):
            f = sb.batch_lower(f, axis_name=name, in_axes=i, out_axes=i)
        axes = tuple(a for a, n in enumerate(("i", "j")) if n in names)
        np.testing.assert_allclose(f(x), x - x.sum(axes, keepdims=True))
    got = jax.vmap(sb.batch_lower(lambda y: lax.pmax(y, ("i", "j")), axis_name="i"),
                   axis_name="j")(x)
    np.testing.assert_allclose(got, jnp.broadcast_to(x.max((0, 1)), x.shape))
    # An inner batch_lower with no name of its own over the outer's name
    # (JAX's testBatchedAllGatherTiled).
    x = jnp.arange(24.0).reshape(4, 3, 2)
    f = lambda y: lax.all_gather(y, "i", tiled=True)
    got = sb.batch_lower(sb.batch_lower(f, in_axes=1, out_axes=1), axis_name="i", in_axes=1,
                         out_axes=None)(x)
    np.testing.assert_array_equal(got, jnp.transpose(x, (1, 0, 2)).reshape(12, 2))


def test_vmap_around_and_batch_lower_inside_batch_lower():
    x = arange(2, 3, 4)
    k = lambda x: lax.pmean(x, "i") - x
    assert_same_tree(jax.vmap(sb.batch_lower(k, axis_name="i"))(x),
                     jax.vmap(jax.vmap(k, axis_name="i"))(x))
    inner = lambda y: lax.psum(y, "j") - y
    outer = lambda x: sb.batch_lower(inner, axis_name="j")(x) + lax.psum(x, "i")
    want = jax.vmap(lambda x: jax.vmap(inner, axis_name="j")(x) + lax.psum(x, "i"),
                    axis_name="i")(x)
    assert_same_tree(sb.batch_lower(outer, axis_name="i")(x), want)


# ---- errors and options -----------------------------------------------------------

def test_unbound_name_is_a_name_error_at_the_user_line():
    def f(x):
        return lax.psum(x, "j")  # the line the error must point at
    with pytest.raises(NameError, match="unbound axis name: j") as info:
        sb.batch_lower(f, axis_name="i")(jnp.ones((2, 3)))
    assert any(t.name == "f" for t in info.traceback)
    with pytest.raises(NameError, match="unbound axis name: i"):
        sb.batch_lower(lambda x: lax.psum(x, "i"))(jnp.ones((2, 3)))


def test_refused_combinations():
    f = lambda x: lax.psum(x, "i")
    with pytest.raises(ValueError, match="chunk_size cannot be combined with axis_name"):
        sb.batch_lower(f, axis_name="i", chunk_size=2)
    with pytest.raises(ValueError, match="check=True cannot be combined with axis_name"):
        sb.batch_lower(f, axis_name="i", check=True)
    with pytest.raises(TypeError, match="one axis name"):
        sb.batch_lower(f, axis_name=("i", "j"))
    with pytest.raises(ValueError, match="spmd_axis_name needs mesh"):
        sb.batch_lower(f, spmd_axis_name="data")


def test_collectives_with_a_host_callback():
    # The callback route (an in-process lowering) binds the name too.
    def f(x):
        y = jax.pure_callback(lambda v: np.sin(v), jax.ShapeDtypeStruct(x.shape, x.dtype), x,
                              vmap_method="sequential")
        return lax.psum(y, "i") - y
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sb.FallbackWarning)
        both(f, arange(3, 2))
        # A symbolic size: the plan builds one executable per batch size
        # (before, a second size hit the first size's executable).
        bl = sb.batch_lower(f, axis_name="i", axis_size="b")
        for n in (2, 4):
            assert_same_tree(bl(arange(n, 2)), jax.vmap(f, axis_name="i")(arange(n, 2)),
                             rtol=1e-5, atol=1e-5)


def test_collectives_with_typed_prng_keys():
    # Typed keys' sharding constraints (on the lowering's empty mesh) go with the mesh.
    def f(k):
        return lax.psum(1.0, "i") + jax.random.normal(k, ()) - lax.pmean(
            jax.random.uniform(k, (2,)), "i")
    both(f, jax.random.split(jax.random.key(0), 3))


def test_symbolic_batch_size():
    # One plan for every batch size: reductions over the whole axis, pmean's
    # divisor, psum of a number, axis_index and pbroadcast read the batch
    # size at run time.
    def f(x, s):
        m = lax.pmean(x, "i")
        v = lax.pmean((x - m) ** 2, "i")
        y = (x - m) * lax.rsqrt(v + 1e-5) * s + lax.axis_index("i")
        return (y, lax.pmax(x, "i") - lax.pmin(s, "i") * lax.psum(1, "i"),
                parallel.pargmax(x, "i"))
    g = lambda x, s: (f(x, s), lax.pbroadcast(x, "i", 1))
    bl = sb.batch_lower(g, (0, None), axis_name="i", axis_size="b")
    s = arange(4) + 3
    for n in (2, 5):
        x = arange(n, 4) * (1 + jnp.arange(n * 4.0).reshape(n, 4) % 3)
        got, bcast = bl(x, s)
        assert_same_tree(got, jax.vmap(f, (0, None), axis_name="i")(x, s),
                         rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(bcast, jnp.broadcast_to(x[1], x.shape))
    assert bl._misses == 1
    assert "dynamic_iota" in bl.lower(x, s).as_text()
    # Collectives that need the number of lanes other than as a dimension of
    # its own: a typed error naming the op.
    for fn, why in [
            (lambda x: lax.all_gather(x, "i", tiled=True),
             "all_gather.*symbolic batch size.*k times the number of lanes"),
            (lambda x: lax.psum_scatter(jnp.tile(x, 3), "i", tiled=True),
             "psum_scatter.*divided by"),
            (lambda x: lax.all_to_all(jnp.tile(x, 3), "i", 0, 0, tiled=True),
             "all_to_all.*split dimension is not the number of lanes"),
            (lambda x: lax.ppermute(x, "i", [(0, 1)]), "ppermute.*pairs name lanes")]:
        with pytest.raises(sb.UnsupportedOpError, match=why):
            sb.batch_lower(fn, axis_name="i", axis_size="b")(x)
    for fn in (lambda x: x * lax.axis_size("i"),
               # a shape (slice bound) or constant from the number of lanes
               lambda x: lax.all_gather(x, "i")[:2],
               lambda x: jnp.mean(lax.all_gather(x, "i"), 0)):
        with pytest.raises(ValueError, match="symbolic batch size"):
            sb.batch_lower(fn, axis_name="i", axis_size="b")(x)


# all_gather, psum_scatter and all_to_all over a symbolic batch size: the
# per-example dimension that is the number of lanes is the batch size (`?`).
SYMBOLIC_LANE_SHAPED = {
    "gather": lambda x: lax.all_gather(x, "i"),
    "gather_axis1": lambda x: lax.all_gather(x, "i", axis=1),
    "gather_tiled_one": lambda x: lax.all_gather(x[:1], "i", tiled=True),
    "gather_then": lambda x: (jnp.sin(lax.all_gather(x, "i")).sum(0) * x,
                              lax.all_gather(x, "i") - x[None],
                              jax.nn.softmax(lax.all_gather(x, "i") @ x)),
    "scatter": lambda x: lax.psum_scatter(lax.all_gather(x, "i") * x, "i"),
    "scatter_tiled": lambda x: lax.psum_scatter(lax.all_gather(x, "i") * x, "i", tiled=True),
    "all_to_all": lambda x: lax.all_to_all(lax.all_gather(x, "i") * x, "i", 0, 0),
    "all_to_all_concat": lambda x: lax.all_to_all(
        (lax.all_gather(x, "i", axis=1) * x[:, None])[..., None], "i", 1, 2),
    # a slice of the whole lane dimension, a callee (jnp.where's) given the
    # gathered value, sorting, padding and a cond along it
    "column": lambda x: lax.all_gather(x, "i")[:, 1] * x[0],
    "where": lambda x: jnp.where(lax.all_gather(x, "i") > 2, lax.all_gather(x, "i"), 0.0).max(0),
    "sort_pad_cond": lambda x: lax.cond(
        x[0] > 1, lambda g: g + 1, lambda g: g - 1,
        jnp.pad(jnp.sort(lax.all_gather(x, "i"), 0), ((0, 0), (1, 1)))),
}


@pytest.mark.parametrize("name", sorted(SYMBOLIC_LANE_SHAPED))
def test_symbolic_lane_shaped_collectives(name):
    f = SYMBOLIC_LANE_SHAPED[name]
    bl = sb.batch_lower(f, axis_name="i", axis_size="b")
    for n in (1, 2, 3, 5):
        x = arange(n, 4) * (1 + jnp.arange(n * 4.0).reshape(n, 4) % 3)
        assert_same_tree(bl(x), jax.vmap(f, axis_name="i")(x), rtol=1e-5, atol=1e-5)
    assert bl._misses == 1
    # One serialized artifact serves every batch size.
    exp = jax.export.deserialize(bl.lower(arange(2, 4)).exported.serialize())
    assert "b" in str(exp.in_avals[0].shape[0])
    for n in (1, 4, 7):
        x = arange(n, 4) + 1
        assert_same_tree(tuple(jax.tree.leaves(exp.call(x))),
                         tuple(jax.tree.leaves(jax.vmap(f, axis_name="i")(x))),
                         rtol=1e-5, atol=1e-5)


def test_symbolic_all_gather_unbatched_result_and_derivatives():
    def f(x):
        g = lax.all_gather(x, "i")
        return jnp.sin(g).sum(0) * x, g
    bl = sb.batch_lower(f, axis_name="i", axis_size="b", out_axes=(0, None))
    ref = jax.vmap(f, axis_name="i", out_axes=(0, None))
    for n in (2, 3):
        x = arange(n, 4) + 1
        assert_same_tree(bl(x), ref(x), rtol=1e-5, atol=1e-5)
        assert_same_tree(jax.jit(bl)(x), ref(x), rtol=1e-5, atol=1e-5)
        loss = lambda g: lambda x: g(x)[0].sum() + (g(x)[1] ** 2).sum()
        assert_same_tree(jax.grad(loss(bl))(x), jax.grad(loss(ref))(x), rtol=1e-5, atol=1e-5)
        t = jnp.ones_like(x)
        assert_same_tree(jax.jvp(bl, (x,), (t,)), jax.jvp(ref, (x,), (t,)),
                         rtol=1e-5, atol=1e-5)
    # Closing over a traced value: the jaxpr holds the symbolic size and
    # cannot be lowered again at a placeholder: a typed error naming the op.
    w = jnp.arange(4.0)

    def outer(w):
        return sb.batch_lower(lambda x: jnp.sin(lax.all_gather(x * w, "i")).sum(0),
                              axis_name="i", axis_size="b")(arange(3, 4)).sum()
    with pytest.raises(sb.UnsupportedOpError, match="all_gather.*closes over traced"):
        jax.grad(outer)(w)


def test_batch_exported_and_vmappable_take_axis_name():
    P = jax.sharding.PartitionSpec

    def f(x, w):
        return x * w - lax.pmean(x, "i") + lax.axis_index("i"), lax.psum(w, "i")
    x, w = arange(3, 4), arange(4) + 1
    sm = jax.shard_map(f, mesh=jax.sharding.AbstractMesh((3,), ("i",)), in_specs=P(),
                       out_specs=P(), check_vma=False)
    exp = jax.export.export(jax.jit(sm), platforms=("cpu",))(x[0], w)
    want = jax.vmap(f, (0, None), axis_name="i")(x, w)
    b = sb.batch_exported(exp, (0, None), axis_size=3, axis_name="i")
    assert_same_tree(jax.export.deserialize(b.serialize()).call(x, w), want, rtol=1e-6)
    assert_same_tree(jax.vmap(sb.vmappable(exp, axis_name="i"), (0, None))(x, w), want,
                     rtol=1e-6)
    with pytest.raises(ValueError, match="lowered for 3 devices"):
        sb.batch_exported(exp, (0, None), axis_size=4, axis_name="i")
    with pytest.raises(ValueError, match="static axis_size"):
        sb.batch_exported(exp, (0, None), axis_size="b", axis_name="i")
    with pytest.raises(sb.UnsupportedOpError, match="shard_map body.*axis_name="):
        sb.batch_exported(exp, (0, None), axis_size=3)  # the name not given


def test_mesh_axis_name_is_deprecated_for_spmd_axis_name():
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("data",))
    f = lambda x: x - lax.pmean(x, "data")
    with pytest.warns(DeprecationWarning, match="spmd_axis_name"):
        old = sb.batch_lower(f, mesh=mesh, axis_name="data")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        new = sb.batch_lower(f, mesh=mesh, axis_name="data", spmd_axis_name="data")
    x = arange(2, 3)
    want = jax.vmap(f, axis_name="data")(x)
    assert_same_tree(old(x), want)
    assert_same_tree(new(x), want)


# ---- spmd_to_batch -------------------------------------------------------------------

def _abstract_program(fn, in_specs, out_specs, *args, n=4):
    mesh = jax.sharding.AbstractMesh((n,), ("d",))
    sm = jax.jit(jax.shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=out_specs))
    return sm.trace(*args).lower(lowering_platforms=("cpu",)).as_text()


def test_spmd_to_batch_without_devices(tmp_path, capsys):
    from stablehlo_batch.selfcheck import run_module
    P = jax.sharding.PartitionSpec

    def prog(x, w):
        y = x * w + lax.axis_index("d")
        return y - lax.pmean(y, "d"), lax.psum(y.sum(), "d")
    x, w = np.arange(8.0, dtype=np.float32).reshape(8, 1), np.float32(2)
    text = _abstract_program(prog, (P("d"), P()), (P("d"), P()), x, w)
    out = sb.spmd_to_batch(text, "d")
    assert "manual_computation" not in out and "all_reduce" not in out
    y = (x * w).reshape(4, 2, 1) + np.arange(4.0, dtype=np.float32)[:, None, None]
    got = run_module(out, [x, w])
    np.testing.assert_allclose(got[0], (y - y.mean(0)).reshape(8, 1))
    np.testing.assert_allclose(got[1], y.sum(), rtol=1e-6)
    # The command line: one `error:` line for an axis the module does not have.
    path = tmp_path / "prog.mlir"
    path.write_text(text)
    from stablehlo_batch import cli
    assert cli.main([str(path), "--spmd-axis=d", "-o", str(tmp_path / "out.mlir")]) == 0
    assert "partition_id" not in (tmp_path / "out.mlir").read_text()
    capsys.readouterr()
    assert cli.main([str(path), "--spmd-axis=x"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "'x'" in err, err


_DEVICES_SCRIPT = textwrap.dedent("""
    import numpy as np, jax, jax.numpy as jnp
    from jax import lax
    from jax.sharding import Mesh, PartitionSpec as P
    import stablehlo_batch as sb
    from stablehlo_batch.selfcheck import run_module
    N = 4
    mesh = Mesh(np.array(jax.devices()), ("d",))

    def ring_allreduce(x):
        def step(c, _):
            acc, buf = c
            buf = lax.ppermute(buf, "d", [(k, (k + 1) % N) for k in range(N)])
            return (acc + buf, buf), None
        return lax.scan(step, (x, x), None, length=N - 1)[0][0]

    def train_step(w, x, y):
        g = jax.grad(lambda w: ((x @ w - y) ** 2).mean())(w)
        return w - 0.1 * lax.pmean(g, "d")

    def transpose(x):  # rows split over devices -> columns split over devices
        return lax.all_to_all(x, "d", 1, 0, tiled=True)

    rng = np.random.default_rng(0)
    programs = [
        (ring_allreduce, (P("d"),), P("d"), (rng.standard_normal((8, 3), np.float32),)),
        (train_step, (P(), P("d"), P("d")), P(),
         (rng.standard_normal((3, 2), np.float32), rng.standard_normal((8, 3), np.float32),
          rng.standard_normal((8, 2), np.float32))),
        (transpose, (P("d"),), P("d"), (np.arange(64, dtype=np.float32).reshape(8, 8),)),
    ]
    for fn, ins, out, args in programs:
        f = jax.jit(jax.shard_map(fn, mesh=mesh, in_specs=ins, out_specs=out))
        want = np.asarray(f(*args))
        text = sb.spmd_to_batch(f.lower(*args).as_text(), "d")
        got = run_module(text, list(args))[0]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        print("spmd ok", fn.__name__)

    # mesh= with collectives: the batch split over the 4 devices.
    g = lambda x: x - lax.pmean(x, "i") + lax.axis_index("i")
    x = np.arange(24, dtype=np.float32).reshape(8, 3)
    got = sb.batch_lower(g, axis_name="i", mesh=mesh, spmd_axis_name="d")(x)
    np.testing.assert_allclose(got, jax.vmap(g, axis_name="i")(x), rtol=1e-6)
    # jax.vmap around it: the vmapped module is exported for one device, so
    # the inner call's module is built again without the mesh.
    xs = np.stack([x, 2 * x])
    got = jax.vmap(sb.batch_lower(g, axis_name="i", mesh=mesh, spmd_axis_name="d"))(xs)
    np.testing.assert_allclose(got, jax.vmap(jax.vmap(g, axis_name="i"))(xs), rtol=1e-6)
    got = jax.vmap(sb.batch_lower(lambda x: x * 2 + 1, mesh=mesh, spmd_axis_name="d"))(xs)
    np.testing.assert_allclose(got, xs * 2 + 1)
    print("mesh ok")
""")


def test_spmd_programs_match_their_run_on_four_devices():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
               JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", _DEVICES_SCRIPT], capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("spmd ok") == 3 and "mesh ok" in proc.stdout, proc.stdout


def test_named_axis_at_batch_size_zero():
    # jax.vmap binds a name over 0 lanes; a mesh cannot have 0 devices (that
    # raised jax's "shard_map requires a non-empty mesh"): lowered for one
    # lane, reductions over the empty batch give their identity, axis_index
    # an empty iota; collectives that need a lane: a typed error.
    w = jnp.array([1.0, 2.0])
    x = jnp.zeros((0, 2))
    fs = [lambda x: (jnp.sin(w), x * w),
          lambda x: (lax.psum(x, "i"), x - lax.pmax(x, "i"), lax.psum(w, "i") + x),
          lambda x: x + lax.axis_index("i")]
    outs = [(None, 0), (None, 0, 0), 0]
    for f, o in zip(fs, outs):
        assert_same_tree(sb.batch_lower(f, out_axes=o, axis_name="i")(x),
                         jax.vmap(f, out_axes=o, axis_name="i")(x))
    # jax.grad of an out_axes=None result at batch size 0 (as jax.vmap)
    loss = lambda B: lambda w: B(lambda x: (jnp.sin(w), x * w), out_axes=(None, 0),
                                 axis_name="i")(x)[0].sum()
    assert_same_tree(jax.grad(loss(sb.batch_lower))(w), jax.grad(loss(jax.vmap))(w))
    with pytest.raises(sb.UnsupportedOpError, match="all_gather.*batch size 0"):
        sb.batch_lower(lambda x: lax.all_gather(x, "i"), axis_name="i")(x)
    # an unbatched result that a collective computes: refused under grad
    loss2 = lambda w: sb.batch_lower(lambda x: (lax.psum(x * w, "i"), x), out_axes=(None, 0),
                                     axis_name="i")(x)[0].sum()
    with pytest.raises(sb.UnsupportedOpError, match="out_axes=None at batch size 0"):
        jax.grad(loss2)(w)


def test_named_axis_at_batch_size_zero_forwarded_all_to_all():
    # all_to_all over the one lane the size-0 module is lowered for is the
    # operand itself (jax elides it), so the result forwards the argument;
    # the forwarding check traced fn with the name bound to 0 lanes, where
    # jax's all_to_all divides by the axis size: a ZeroDivisionError (found
    # by the generated programs). The name is bound to the lane it was
    # lowered for now; each lane's result has the operand's shape, so the
    # empty batch is (0, 4). jax.vmap itself raises the ZeroDivisionError.
    f = lambda x: lax.all_to_all(x, "i", 0, 0, tiled=True)
    x = jnp.zeros((0, 4))
    with pytest.raises(ZeroDivisionError):
        jax.vmap(f, axis_name="i")(x)
    got = sb.batch_lower(f, axis_name="i")(x)
    assert got.shape == (0, 4) and got.dtype == x.dtype
    # traced (under jit): the name was bound to 0 lanes there too, and with
    # axis_size="b" to the symbolic size (size 0 takes a plan of its own):
    # jax's ValueError that 4 does not split over "b" lanes
    for kw in ({}, dict(axis_size="b")):
        got = jax.jit(sb.batch_lower(f, axis_name="i", **kw))(x)
        assert got.shape == (0, 4) and got.dtype == x.dtype
    # a psum_scatter of it is not elided: the documented typed refusal
    with pytest.raises(sb.UnsupportedOpError, match="reduce_scatter.*batch size 0"):
        sb.batch_lower(lambda x: lax.psum_scatter(x, "i", tiled=True), axis_name="i")(x)


def test_symbolic_size_all_to_all_of_an_argument_dimension_is_a_documented_error():
    # an argument's dimension is static, so it is not "the number of lanes"
    # of a symbolic size: refused, called directly (lowered at a placeholder
    # lane count) and traced under jit (at the symbolic size, where jax's own
    # ValueError had no word of the symbolic size; found by the generated
    # programs): the same note names the cause
    f = lambda x: lax.all_to_all(x, "i", 0, 0, tiled=True)
    x = jnp.ones((8, 8, 3), jnp.int32)
    np.testing.assert_array_equal(sb.batch_lower(f, axis_name="i")(x),
                                  jax.vmap(f, axis_name="i")(x))
    for wrap in (lambda g: g, jax.jit):
        with pytest.raises(ValueError) as info:
            wrap(sb.batch_lower(f, axis_name="i", axis_size="b"))(x)
        assert "symbolic axis_size" in " ".join(getattr(info.value, "__notes__", ()))


def test_symbolic_size_lowerings_compared_in_one_context(monkeypatch):
    # the two placeholder lowerings were parsed each in the thread's shared
    # context, which is replaced every _CONTEXT_USES parses: across a
    # replacement every type differed (types of two contexts never compare
    # equal), a false UnsupportedOpError on the first op (found by the
    # generated programs, after some hundred programs in one process)
    from stablehlo_batch import module_io
    monkeypatch.setattr(module_io, "_CONTEXT_USES", 1)  # a new context every parse
    f = lambda x, y: jnp.where(y > 0.5, lax.all_gather(x, "i").sum(0), y)
    bl = sb.batch_lower(f, axis_name="i", axis_size="b")
    for n in (3, 5):  # one artifact for both sizes
        x, y = np.arange(4.0 * n).reshape(n, 4), np.linspace(0, 1, 4 * n).reshape(n, 4)
        np.testing.assert_allclose(bl(x, y), jax.vmap(f, axis_name="i")(x, y), rtol=1e-6)
    assert bl.cache_info().misses == 1


def test_named_axis_at_batch_size_zero_counts_no_lane():
    # the size-0 module is lowered for one lane, and jax folded pmean's
    # divisor and psum(1) to that 1: pmean over the empty batch gave 0 where
    # jax.vmap gives 0 / 0 = nan, psum(1) gave 1 for 0 lanes (found by the
    # generated programs). They count the lanes as a collective now.
    f = lambda x: (lax.pmean(x, "i"), lax.psum(1, "i") * jnp.ones(2), x * lax.psum(1, "i"))
    x = jnp.ones((0, 2))
    kw = dict(out_axes=(None, None, 0), axis_name="i")
    want = jax.vmap(f, **kw)(x)
    assert np.isnan(want[0]).all() and (want[1] == 0).all()
    for size_kw in ({}, dict(axis_size="b")):
        for wrap in (lambda g: g, jax.jit):
            assert_same_tree(wrap(sb.batch_lower(f, **kw, **size_kw))(x), want)
        xs = jnp.ones((2, 0, 2))  # under an outer jax.vmap
        assert_same_tree(jax.vmap(sb.batch_lower(f, **kw, **size_kw))(xs),
                         jax.vmap(jax.vmap(f, **kw))(xs))


def test_named_axis_at_batch_size_zero_with_host_callbacks():
    # the host-callback route built its shard_map over a mesh of 0 devices
    # (jax's "shard_map requires a non-empty mesh"; found by the generated
    # programs): lowered for one lane and marked, as without callbacks
    cb = lambda v: jax.pure_callback(np.square, jax.ShapeDtypeStruct(v.shape, v.dtype), v,
                                     vmap_method="sequential")
    f = lambda x, w: (lax.pmean(w, "i"), cb(x) + lax.psum(1.0, "i"), cb(w))
    x, w = jnp.ones((0, 3)), jnp.arange(3.0)
    kw = dict(in_axes=(0, None), out_axes=(None, 0, None), axis_name="i")
    assert_same_tree(sb.batch_lower(f, **kw)(x, w), jax.vmap(f, **kw)(x, w))
    with pytest.raises(sb.UnsupportedOpError, match="all_gather.*batch size 0"):
        sb.batch_lower(lambda x: cb(lax.all_gather(x, "i")), axis_name="i")(x)
