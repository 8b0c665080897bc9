"""batch_lower inside real model code: flax (linen and nnx) and equinox.

The per-example loss is batched while closing over the model's parameters,
inside the jitted training step that differentiates with respect to them —
the way people write ``jax.vmap`` in training code (issue 12). Each case runs
the same step with ``jax.vmap`` and with ``batch_lower`` and compares losses,
gradients and updated parameters.
"""
from __future__ import annotations

import numpy as np
import equinox as eqx
import flax.linen as flax_linen
from flax import nnx

import jax
import jax.numpy as jnp

import stablehlo_batch as sb
from conftest import assert_same_tree

RNG = np.random.default_rng(0)
XS = RNG.standard_normal((5, 4)).astype(np.float32)
YS = RNG.standard_normal((5, 3)).astype(np.float32)
LABELS = np.array([0, 2, 1, 1, 0], np.int32)


def both(make, **tol):
    """``make(B)`` with B = jax.vmap and B = batch_lower: same tree of results."""
    assert_same_tree(make(sb.batch_lower), make(jax.vmap), **{"rtol": 1e-5, "atol": 1e-5, **tol})


class _LinenMLP(flax_linen.Module):
    @flax_linen.compact
    def __call__(self, x, train: bool = False):
        x = flax_linen.Dense(8)(x)
        x = flax_linen.LayerNorm()(x)
        x = flax_linen.gelu(x)
        return flax_linen.Dense(3)(x)


def test_flax_linen_jitted_step_closing_over_params():
    model = _LinenMLP()
    params = model.init(jax.random.key(0), XS[0])

    def make(B):
        @jax.jit
        def step(params, xs, labels):
            def loss(params):
                def per_example(x, label):  # closes over the traced params
                    logits = model.apply(params, x)
                    return -jax.nn.log_softmax(logits)[label]
                return B(per_example)(xs, labels).mean()
            value, grads = jax.value_and_grad(loss)(params)
            return value, jax.tree.map(lambda p, g: p - 0.1 * g, params, grads)
        return step(params, XS, LABELS)

    both(make)


def test_flax_linen_per_example_gradient_norms_inside_grad():
    model = _LinenMLP()
    params = model.init(jax.random.key(1), XS[0])

    def make(B):
        def clipped(params):
            def per_example_grad(x, y):
                return jax.grad(lambda p: jnp.sum((model.apply(p, x) - y) ** 2))(params)
            grads = B(per_example_grad)(XS, YS)
            norms = jnp.sqrt(sum(jnp.sum(g.reshape(g.shape[0], -1) ** 2, axis=1)
                                 for g in jax.tree.leaves(grads)))
            return jnp.sum(norms)
        return jax.jit(jax.value_and_grad(clipped))(params)

    both(make, rtol=1e-4, atol=1e-4)


class _NnxMLP(nnx.Module):
    def __init__(self, rngs):
        self.l1 = nnx.Linear(4, 8, rngs=rngs)
        self.l2 = nnx.Linear(8, 3, rngs=rngs)

    def __call__(self, x):
        return self.l2(jnp.tanh(self.l1(x)))


def test_flax_nnx_split_merge_step():
    graphdef, state = nnx.split(_NnxMLP(nnx.Rngs(0)))

    def make(B):
        @jax.jit
        def step(state, xs, ys):
            def loss(state):
                m = nnx.merge(graphdef, state)
                return B(lambda x, y: jnp.sum((m(x) - y) ** 2))(xs, ys).mean()
            return jax.value_and_grad(loss)(state)
        value, grads = step(state, XS, YS)
        return value, nnx.to_pure_dict(grads)

    both(make)


def test_equinox_filter_jit_step_closing_over_model():
    model = eqx.nn.MLP(4, 3, width_size=8, depth=2, activation=jax.nn.silu, key=jax.random.key(2))

    def make(B):
        @eqx.filter_jit
        def step(model, xs, ys):
            @eqx.filter_value_and_grad
            def loss(model):
                return B(lambda x, y: jnp.sum((model(x) - y) ** 2))(xs, ys).mean()
            value, grads = loss(model)
            return value, jax.tree.leaves(eqx.filter(grads, eqx.is_array))
        return step(model, XS, YS)

    both(make)


def test_equinox_model_as_batched_argument():
    """An ensemble: a stack of models batched along their leaves, data shared."""
    keys = jax.random.split(jax.random.key(3), 3)
    ensemble = eqx.filter_vmap(lambda k: eqx.nn.MLP(4, 3, 8, 1, key=k))(keys)
    params, static = eqx.partition(ensemble, eqx.is_array)

    def make(B):
        def run(params, x):
            return eqx.combine(params, static)(x)
        return jax.jit(B(run, in_axes=(0, None)))(params, XS[0])

    both(make)
