"""Arguments the function does not use: jax.jit(jax.vmap(f)) drops them from
its executable (jit's keep_unused=False); batch_lower's executables drop them
too (primitive.BatchedFn's ``kept``), with the values, derivatives, donation
and caching of jax.vmap (issue 15: HLO instructions never above vmap's)."""
import re
import warnings

import numpy as np
import pytest

import jax
import jax.numpy as jnp

import stablehlo_batch as sb
from conftest import assert_same_tree

X = jnp.arange(32.0).reshape(8, 4)
Y = jnp.ones((8, 3))
W = jnp.linspace(0.0, 1.0, 4)


def entry_parameters(hlo: str) -> list[str]:
    """The shapes of the ENTRY computation's parameters in optimized HLO text."""
    entry = hlo[hlo.index("\nENTRY"):]
    entry = entry[:entry.index("\n}")]
    return re.findall(r"= ([^{\s]+)\S* parameter\(\d+\)", entry)


def ignores_y(x, y, w):
    return jnp.sin(x) * w


@pytest.mark.parametrize("in_axes", [(0, 0, None), (0, None, None), (None, 0, None),
                                     (1, 0, None), (0, 1, 0)])
def test_compiled_executable_has_no_parameter_for_an_ignored_argument(in_axes):
    base = [(4,), (3,), (4,)]
    args = []
    for i, (shape, ax) in enumerate(zip(base, in_axes)):
        shape = list(shape)
        if ax is not None:
            shape.insert(ax, 8)
        args.append(jnp.asarray(np.random.default_rng(i).standard_normal(shape), jnp.float32))
    bl = sb.batch_lower(ignores_y, in_axes=in_axes, tune=False)
    vm = jax.vmap(ignores_y, in_axes=in_axes)
    assert_same_tree(bl(*args), vm(*args))
    want = entry_parameters(jax.jit(vm).lower(*args).compile().as_text())
    # the plan's own executable (Lowered.compile) and a jax.jit around the call
    got = entry_parameters(bl.lower(*args).compile().as_text())
    got_jit = entry_parameters(jax.jit(bl).lower(*args).compile().as_text())
    assert got == want and got_jit == want
    assert len(got) == 2  # x and w


def test_compiled_executable_still_takes_every_argument():
    bl = sb.batch_lower(ignores_y, in_axes=(0, 0, None), tune=False)
    compiled = bl.lower(X, Y, W).compile()
    assert_same_tree(compiled(X, Y, W), jax.vmap(ignores_y, in_axes=(0, 0, None))(X, Y, W))


def test_every_argument_ignored():
    f = lambda x, y: jnp.float32(2.0)  # noqa: E731
    bl = sb.batch_lower(f, tune=False)
    assert_same_tree(bl(X, Y), jax.vmap(f)(X, Y))
    assert entry_parameters(bl.lower(X, Y).compile().as_text()) == []


def test_ignored_keyword_argument():
    f = lambda x, *, y: x * 2.0  # noqa: E731
    bl = sb.batch_lower(f, tune=False)
    assert_same_tree(bl(X, y=Y), jax.vmap(f)(X, y=Y))
    assert entry_parameters(bl.lower(X, y=Y).compile().as_text()) == ["f32[8,4]"]


def test_derivatives_of_an_ignored_argument_are_zeros_as_under_vmap():
    bl = sb.batch_lower(ignores_y, in_axes=(0, 0, None), tune=False)
    vm = jax.vmap(ignores_y, in_axes=(0, 0, None))
    loss = lambda g: lambda x, y, w: (g(x, y, w) ** 2).sum()  # noqa: E731
    got = jax.grad(loss(bl), argnums=(0, 1, 2))(X, Y, W)
    want = jax.grad(loss(vm), argnums=(0, 1, 2))(X, Y, W)
    assert_same_tree(got, want, rtol=1e-5)
    assert not np.any(np.asarray(got[1]))
    assert_same_tree(jax.jvp(bl, (X, Y, W), (X, Y, W)), jax.jvp(vm, (X, Y, W), (X, Y, W)))
    assert_same_tree(jax.jit(jax.grad(loss(bl), argnums=1))(X, Y, W),
                     jax.grad(loss(vm), argnums=1)(X, Y, W))


def test_vmap_over_the_ignored_argument_alone():
    bl = sb.batch_lower(ignores_y, in_axes=(0, 0, None), tune=False)
    vm = jax.vmap(ignores_y, in_axes=(0, 0, None))
    ys = jnp.stack([Y, 2 * Y])
    assert_same_tree(jax.vmap(bl, in_axes=(None, 0, None))(X, ys, W),
                     jax.vmap(vm, in_axes=(None, 0, None))(X, ys, W))
    xs = jnp.stack([X, X + 1])
    assert_same_tree(jax.vmap(bl, in_axes=(0, 0, None))(xs, ys, W),
                     jax.vmap(vm, in_axes=(0, 0, None))(xs, ys, W))


def test_donated_ignored_argument_as_jit_of_vmap():
    """jax.jit drops a donated argument its jaxpr ignores with the others:
    that buffer is not donated (not deleted); ours the same."""
    outcome = {}
    for name, fn in (("vmap", jax.vmap(ignores_y, in_axes=(0, 0, None))),
                     ("ours", sb.batch_lower(ignores_y, in_axes=(0, 0, None), tune=False))):
        x, y = X + 0.0, Y + 0.0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # CPU: "donated buffers were not usable"
            out = jax.jit(fn, donate_argnums=(0, 1))(x, y, W)
        outcome[name] = (x.is_deleted(), y.is_deleted(), np.asarray(out))
    assert outcome["ours"][:2] == outcome["vmap"][:2]
    np.testing.assert_allclose(outcome["ours"][2], outcome["vmap"][2], rtol=1e-6)


def test_ignored_key_argument():
    keys = jax.random.split(jax.random.key(0), 8)
    f = lambda k, x: x * 2.0  # noqa: E731
    bl = sb.batch_lower(f, tune=False)
    assert_same_tree(bl(keys, X), jax.vmap(f)(keys, X))
    assert entry_parameters(bl.lower(keys, X).compile().as_text()) == ["f32[8,4]"]
    assert_same_tree(jax.grad(lambda x: bl(keys, x).sum())(X),
                     jax.grad(lambda x: jax.vmap(f)(keys, x).sum())(X))
    # a used key next to an ignored array
    g = lambda k, x, y: jax.random.normal(k, x.shape) + x  # noqa: E731
    assert_same_tree(sb.batch_lower(g, tune=False)(keys, X, Y), jax.vmap(g)(keys, X, Y),
                     rtol=1e-5, atol=1e-5)


def test_ignored_argument_with_static_and_closed_over_values():
    f = lambda x, n, y: x * n  # noqa: E731
    bl = sb.batch_lower(f, in_axes=(0, None, 0), tune=False)
    assert_same_tree(bl(X, 3, Y), jax.vmap(f, in_axes=(0, None, 0))(X, 3, Y))
    # the Python scalar is a weakly typed argument, as jax.jit makes it; y is dropped
    want = entry_parameters(jax.jit(jax.vmap(f, in_axes=(0, None, 0))).lower(X, 3, Y)
                            .compile().as_text())
    assert entry_parameters(bl.lower(X, 3, Y).compile().as_text()) == want == [
        "f32[8,4]", "s32[]"]

    def outer(batched):
        def run(x, y, c):
            return batched(lambda x, y: x * c)(x, y).sum()
        return run
    ours = outer(lambda g: sb.batch_lower(g, tune=False))
    theirs = outer(jax.vmap)
    assert_same_tree(jax.jit(ours)(X, Y, 2.0), jax.jit(theirs)(X, Y, 2.0))
    assert_same_tree(jax.grad(ours, argnums=(0, 1, 2))(X, Y, 2.0),
                     jax.grad(theirs, argnums=(0, 1, 2))(X, Y, 2.0))
    want = entry_parameters(jax.jit(theirs).lower(X, Y, 2.0).compile().as_text())
    assert entry_parameters(jax.jit(ours).lower(X, Y, 2.0).compile().as_text()) == want


def test_ignored_argument_with_a_symbolic_size():
    # the module keeps its arguments there (the size is read from them)
    bl = sb.batch_lower(ignores_y, in_axes=(0, 0, None), axis_size="b", tune=False)
    vm = jax.vmap(ignores_y, in_axes=(0, 0, None))
    for n in (8, 3):
        assert_same_tree(bl(X[:n], Y[:n], W), vm(X[:n], Y[:n], W))
    assert bl.cache_info().misses == 1
    only = sb.batch_lower(lambda x, w: w * 2.0, in_axes=(0, None), axis_size="b", tune=False)
    assert_same_tree(only(X, W), jax.vmap(lambda x, w: w * 2.0, in_axes=(0, None))(X, W))


def test_plan_cache_and_forwarding_with_an_ignored_argument():
    bl = sb.batch_lower(lambda x, y: x, tune=False)
    for _ in range(3):
        out = bl(X, Y)
    assert out is X  # forwarded, as jax.vmap forwards it
    info = bl.cache_info()
    assert info.misses == 1 and info.hits == 2
    assert entry_parameters(bl.lower(X, Y).compile().as_text()) == ["f32[8,4]"]
