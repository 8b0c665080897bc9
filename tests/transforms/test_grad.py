"""Gradients through batch_lower: jax.grad / jax.vjp of a function that calls a
batched function run a backward pass that is itself a batched module (the
per-example VJP batched by our rewrite). Compared with the same through
jax.vmap."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import stablehlo_batch as sb
from batch_cases import make
from conftest import assert_same_tree

TOL = dict(rtol=2e-5, atol=2e-5)


def mlp(params, x):
    for w, b in params:
        x = jnp.tanh(x @ w + b)
    return x


def example_loss(params, x, y):
    return jnp.sum((mlp(params, x) - y) ** 2)


def _params(rng, lead=()):
    sizes = (4, 6, 2)
    return [(jnp.asarray(rng.standard_normal(lead + (a, b)) / np.sqrt(a), jnp.float32),
             jnp.asarray(rng.standard_normal(lead + (b,)) * 0.1, jnp.float32))
            for a, b in zip(sizes[:-1], sizes[1:])]


@pytest.mark.parametrize("size", [1, 3])
def test_grad_of_mean_loss_params_and_inputs(rng, size):
    params = _params(rng)
    xs, ys = make(rng, (4,), jnp.float32, 0, size), make(rng, (2,), jnp.float32, 0, size)

    def total(batched):
        return lambda p, x, y: jnp.mean(batched(example_loss, in_axes=(None, 0, 0))(p, x, y))

    got = jax.grad(total(sb.batch_lower), argnums=(0, 1))(params, xs, ys)
    want = jax.grad(total(jax.vmap), argnums=(0, 1))(params, xs, ys)
    assert_same_tree(got, want, **TOL)
    # The backward pass is a batched module too (the VJP of one example).
    plan = sb.batch_lower(example_loss, in_axes=(None, 0, 0)).lower(params, xs, ys)
    vjp = plan.exported.vjp()
    assert vjp.in_avals[-1].shape == (size,)  # the loss cotangent, per example
    assert vjp.out_avals[0].shape == params[0][0].shape  # summed over the batch


@pytest.mark.parametrize("axis_size", [None, "b"])
def test_per_example_gradients_vjp_with_axes(rng, axis_size):
    """jax.vjp with a batched cotangent at out_axes=1 and an unbatched output
    (also with a symbolic batch size: the backward module is symbolic too)."""
    params = _params(rng)
    xs = make(rng, (4,), jnp.float32, 1, 3)  # (4, 3): batch along axis 1

    def f(p, x):
        return mlp(p, x), jnp.sum(p[0][1])  # the second output is not batched

    out_b, vjp_b = jax.vjp(sb.batch_lower(f, in_axes=(None, 1), out_axes=(1, None),
                                          axis_size=axis_size),
                           params, xs)
    out_v, vjp_v = jax.vjp(jax.vmap(f, in_axes=(None, 1), out_axes=(1, None)), params, xs)
    assert_same_tree(out_b, out_v, **TOL)
    cts = (make(rng, (2,), jnp.float32, 1, 3), jnp.float32(2.0))
    assert_same_tree(vjp_b(cts), vjp_v(cts), **TOL)


def test_ensemble_training_matches_vmap(rng):
    """Four ensemble members (batched weights) on shared data, a few SGD steps
    under jit, losses and weights equal to jax.vmap's."""
    members = _params(rng, lead=(4,))
    x, y = make(rng, (8, 4), jnp.float32, None, 0), make(rng, (8, 2), jnp.float32, None, 0)

    def member_loss(p, x, y):
        return jnp.mean((mlp(p, x) - y) ** 2)

    def trainer(batched):
        ens = batched(member_loss, in_axes=(0, None, None))

        @jax.jit
        def step(ps):
            loss, g = jax.value_and_grad(lambda q: jnp.sum(ens(q, x, y)))(ps)
            return jax.tree.map(lambda a, b: a - 0.1 * b, ps, g), loss
        return step

    step_b, step_v = trainer(sb.batch_lower), trainer(jax.vmap)
    pb = pv = members
    for _ in range(3):
        (pb, lb), (pv, lv) = step_b(pb), step_v(pv)
        assert_same_tree(lb, lv, **TOL)
    assert_same_tree(pb, pv, **TOL)


def test_integer_argument_and_second_order(rng):
    def f(x, n):
        return jnp.sin(x) * n

    xs = make(rng, (3,), jnp.float32, 0, 3)
    ns = jnp.arange(3, dtype=jnp.int32)
    g = jax.grad(lambda x: jnp.sum(sb.batch_lower(f)(x, ns)))(xs)
    assert_same_tree(g, jax.grad(lambda x: jnp.sum(jax.vmap(f)(x, ns)))(xs), **TOL)
    # Second order: the VJP module has a batched VJP of its own.
    h = jax.grad(lambda x: jnp.sum(jax.grad(
        lambda z: jnp.sum(sb.batch_lower(f)(z, ns)))(x)))(xs)
    assert_same_tree(h, -jnp.sin(xs) * ns[:, None], **TOL)



def test_shared_weight_gradient_is_one_matrix_product(rng):
    """The gradient of a weight every lane shares is summed inside the
    backward module, where the sum becomes the product's contraction: no
    per-lane (batch, 4, 6) weight gradients, in our IR or in XLA's."""
    params = _params(rng)
    xs, ys = make(rng, (4,), jnp.float32, 0, 5), make(rng, (2,), jnp.float32, 0, 5)

    def grad_fn(batched):
        return jax.jit(jax.grad(lambda p: jnp.mean(
            batched(example_loss, in_axes=(None, 0, 0))(p, xs, ys))))

    text = grad_fn(sb.batch_lower).lower(params).as_text()
    assert "tensor<5x4x6xf32>" not in text and "tensor<5x6x4xf32>" not in text
    assert "contracting_dims = [0] x [0]" in text
    hlo = grad_fn(sb.batch_lower).lower(params).compile().as_text()
    assert "f32[5,4,6]" not in hlo and "f32[5,6,4]" not in hlo
    assert_same_tree(grad_fn(sb.batch_lower)(params), grad_fn(jax.vmap)(params), **TOL)
