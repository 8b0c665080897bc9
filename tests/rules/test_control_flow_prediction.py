"""The while rule's predicted carry fixed point (passes/rules/control_flow.py
``_Predict``): it must give exactly the module the clone-by-clone iteration
gives, and results equal to jax.vmap's, on loops where it matters (chains of
carries, nested loops, calls, counters that must stay unbatched)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import stablehlo_batch as sb
from conftest import check_vmap
from stablehlo_batch.passes.rules import control_flow


def chain(k):
    def f(x):
        def body(i, c):
            return (jnp.sin(c[0]),) + tuple(c[j] + c[j - 1] * 0.5 for j in range(1, k))
        return jax.lax.fori_loop(0, 3, body, (x,) + tuple(jnp.zeros_like(x)
                                                          for _ in range(k - 1)))
    return f


def nested(x, table):
    def inner(j, c):
        v, n = c
        return v + jax.lax.dynamic_slice(table, (j,), (3,)), n + 1

    def outer(i, c):
        v, n = jax.lax.fori_loop(0, 2, inner, c)
        return jax.nn.relu(v) * 0.9, n   # relu is a func.call
    return jax.lax.fori_loop(0, 3, outer, (x, 0))


def newton(a):
    def cond(c):
        return (jnp.max(jnp.abs(c[0] * c[0] - a)) > 1e-4) & (c[1] < 50)

    def body(c):
        return 0.5 * (c[0] + a / c[0]), c[1] + 1, c[2]
    return jax.lax.while_loop(cond, body, (a, 0, jnp.float32(2.0)))


CASES = [
    (chain(6), (np.arange(12.0, dtype=np.float32).reshape(4, 3),), 0),
    (nested, (np.ones((3, 3), np.float32), np.arange(8.0, dtype=np.float32)), (0, None)),
    (newton, (np.arange(1.0, 7.0, dtype=np.float32).reshape(3, 2),), 0),
]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_prediction_gives_the_iterated_module(case, monkeypatch):
    fn, args, in_axes = CASES[case]
    predicted = sb.batch_lower(fn, in_axes=in_axes).lower(*args).as_text()
    monkeypatch.setattr(control_flow, "_predicted_fixed_point", lambda *a: None)
    iterated = sb.batch_lower(fn, in_axes=in_axes).lower(*args).as_text()
    assert predicted == iterated


@pytest.mark.parametrize("case", range(len(CASES)))
def test_prediction_matches_vmap(case):
    fn, args, in_axes = CASES[case]
    check_vmap(fn, *args, in_axes=in_axes)


def test_counters_stay_unbatched_in_nested_loops():
    text = sb.batch_lower(nested, in_axes=(0, None)).lower(
        *CASES[1][1]).as_text()
    assert "stablehlo.dynamic_slice" in text and "gather" not in text


def test_a_chain_of_carries_is_confirmed_by_one_clone(monkeypatch):
    seen = []
    real = control_flow._predicted_fixed_point
    trials = []
    real_trial = control_flow._while_flags

    def spy(*a):
        seen.append(real(*a))
        return seen[-1]

    def count(*a):
        trials.append(1)
        return real_trial(*a)
    monkeypatch.setattr(control_flow, "_predicted_fixed_point", spy)
    monkeypatch.setattr(control_flow, "_while_flags", count)
    sb.batch_lower(chain(8)).lower(np.ones((2, 3), np.float32))
    assert seen and seen[0] is not None and sum(seen[0]) == 8  # the counter stays
    assert len(trials) == 1  # not one rewritten clone per link of the chain


def test_no_clone_when_the_prediction_adds_no_carry(monkeypatch):
    # every carry that will be batched is batched on entry: nothing to confirm
    trials = []
    real_trial = control_flow._while_flags

    def count(*a):
        trials.append(1)
        return real_trial(*a)
    monkeypatch.setattr(control_flow, "_while_flags", count)
    fn, args, in_axes = CASES[1]
    sb.batch_lower(fn, in_axes=in_axes).lower(*args)
    assert trials == []
