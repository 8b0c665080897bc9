"""Random bit generators (passes/rules/random.py) and jax.random's threefry
keys (integer ops, while loops, calls: the other families' rules) with
batched and unbatched keys, differentially against jax.vmap; rbg /
unsafe_rbg keys, whose rng_bit_generator state runs once per lane, checked
lane by lane.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import stablehlo_batch as sb
from conftest import check_vmap, random_array

from .test_control_flow import SIZES, check_or_unsupported, f32, f64, i32


# ---- jax.random --------------------------------------------------------------------

def _keys(n, typed=False):
    return jax.random.split(jax.random.key(7) if typed else jax.random.PRNGKey(7), n)


RANDOM_CASES = {
    "normal": (lambda k: jax.random.normal(k, (5,)), ()),
    "uniform": (lambda k: jax.random.uniform(k, (2, 3), minval=-1.0, maxval=2.0), ()),
    "bernoulli": (lambda k, p: jax.random.bernoulli(k, p, (6,)), ("p",)),
    "categorical": (lambda k, l: jax.random.categorical(k, l, shape=(4,)), ("logits",)),
    "permutation": (lambda k: jax.random.permutation(k, 6), ()),
    "permutation_array": (lambda k, v: jax.random.permutation(k, v), ("x",)),
    "choice": (lambda k: jax.random.choice(k, 10, (3,)), ()),
    "choice_no_replace": (lambda k: jax.random.choice(k, 10, (4,), replace=False), ()),
    "randint": (lambda k: jax.random.randint(k, (5,), -3, 9), ()),
    "split_fold_in": (lambda k, i: jax.random.uniform(
        jax.random.fold_in(jax.random.split(k)[1], i), (2,)), ("i",)),
}


def _random_arg(rng, kind, size, batched):
    lead = (size,) if batched else ()
    if kind == "p":
        return jnp.asarray(rng.uniform(0.1, 0.9, lead), f32)
    if kind == "logits":
        return jnp.asarray(rng.standard_normal(lead + (5,)), f32)
    if kind == "x":
        return jnp.asarray(rng.standard_normal(lead + (6,)), f32)
    return jnp.asarray(rng.integers(0, 100, lead), i32)


@pytest.mark.parametrize("k,name", list(enumerate(RANDOM_CASES)))
def test_random_batched_keys(rng, k, name):
    fn, extra = RANDOM_CASES[name]
    size = SIZES[k % 3]
    keys = _keys(size, typed=bool(k % 2))
    args = [_random_arg(rng, e, size, batched=bool(k % 2)) for e in extra]
    in_axes = (0,) + tuple(0 if k % 2 else None for _ in extra)
    check_vmap(fn, keys, *args, in_axes=in_axes)


@pytest.mark.parametrize("name", ["bernoulli", "categorical", "permutation_array",
                                  "split_fold_in"])
def test_random_unbatched_key_batched_args(rng, name):
    fn, extra = RANDOM_CASES[name]
    args = [_random_arg(rng, e, 3, batched=True) for e in extra]
    out = check_vmap(fn, _keys(1)[0], *args, in_axes=(None,) + (0,) * len(extra))
    assert out.shape[0] == 3


def test_random_unbatched_key_noise_added_to_batched_input(rng):
    x = random_array(rng, (8, 4), f32)
    out = check_vmap(lambda k, m: m + jax.random.normal(k, (4,)), _keys(1)[0], x,
                     in_axes=(None, 0))
    # one key for all lanes: the same noise in every lane
    np.testing.assert_allclose(np.asarray(out - x), np.broadcast_to(np.asarray(out - x)[0],
                                                                    (8, 4)), atol=1e-6)


def test_random_split_and_fold_in_inside_loop():
    keys = _keys(3)
    fn = lambda k: lax.fori_loop(
        0, 3, lambda i, c: c + jax.random.normal(jax.random.fold_in(k, i), (2,)), jnp.zeros(2))
    check_vmap(fn, keys)
    check_vmap(lambda k: [jax.random.normal(s, (2,)) for s in jax.random.split(k, 3)], keys,
               out_axes=1)


def test_random_f64_and_jit():
    with jax.enable_x64(True):
        keys = _keys(8)
        out = check_vmap(lambda k: jax.random.normal(k, (3,), dtype=f64), keys, jit=True)
        assert out.dtype == jnp.float64
        # lanes differ: each lane has its own key
        assert len({tuple(r) for r in np.asarray(out).tolist()}) == 8


def test_choice_with_probabilities(rng):
    p = jax.nn.softmax(random_array(rng, (3, 4), f32))
    check_or_unsupported(lambda k, p: jax.random.choice(k, 4, (3,), p=p), _keys(3), p,
                         ops={"stablehlo.reduce_window", "stablehlo.gather"})


# ---- rbg / unsafe_rbg keys: rng_bit_generator with a per-lane state ---------
def _rbg_keys(size, impl):
    return jax.random.key_data(jax.random.split(jax.random.key(3, impl=impl), size))


@pytest.mark.parametrize("impl,size,name", [("rbg", 3, "normal"), ("unsafe_rbg", 1, "uniform"),
                                            ("rbg", 8, "bernoulli"), ("unsafe_rbg", 3, "permutation")])
def test_random_rbg_batched_keys_are_lane_exact(rng, impl, size, name):
    """Each lane's bits equal that lane run alone (jax.vmap draws every lane
    from lane 0's state instead, so it is not the oracle here)."""
    fn, extra = RANDOM_CASES[name]
    raw = _rbg_keys(size, impl)
    args = [_random_arg(rng, e, size, batched=True) for e in extra]

    def per_example(k, *a):
        return fn(jax.random.wrap_key_data(k, impl=impl), *a)

    got = sb.batch_lower(per_example)(raw, *args)
    alone = jax.jit(per_example)
    want = jnp.stack([alone(raw[i], *[a[i] for a in args]) for i in range(size)])
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    if size > 1:  # and this is where jax.vmap differs: its lanes are not the lanes alone
        vm = jax.vmap(per_example)(raw, *args)
        assert not np.array_equal(np.asarray(vm), np.asarray(want))


def test_random_rbg_unbatched_key_matches_vmap(rng):
    key = _rbg_keys(1, "rbg")[0]
    x = random_array(rng, (3, 4), f32)
    check_vmap(lambda k, m: m * jax.random.normal(jax.random.wrap_key_data(k, impl="rbg"), (4,)),
               key, x, in_axes=(None, 0))
