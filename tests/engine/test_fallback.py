"""The universal fallback (passes/fallback.py, passes/lane_loop.py), user rules
(register_rule) and host callbacks (stablehlo_batch/callbacks.py),
differentially against jax.vmap.

* host callbacks: pure_callback / io_callback / debug.callback batched
  through the per-lane loop (values, the warning, strict, lane order, the
  callable called with per-example shapes; an unbatched callback operand
  keeps the op as it is);
* ops forced through the fallback by taking their rule out of the table
  (dot_general, variadic sort, cond branches that capture batched values,
  tuple and token values, a LAPACK custom call whose target rule is removed),
  compared with jax.vmap or with the module run per example; collectives
  refused with or without strict; a symbolic batch size refused;
* register_rule: a user rule overrides the built-in rule and the fallback,
  for an op name and for a custom call target; context-manager and
  unregister forms.
"""
from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.experimental import io_callback

import stablehlo_batch as sb
from batch_cases import check_module, make
from conftest import assert_same_tree, check_vmap
from stablehlo_batch.passes.fallback import fallback
from stablehlo_batch.passes.rules import RULES


@pytest.fixture
def no_fallback_warnings():
    """Turns FallbackWarning into an error inside the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", sb.FallbackWarning)
        yield


def _sin_cb(calls):
    def cb(a):
        calls.append(np.shape(a))
        return np.sin(a)
    return cb


# ---- host callbacks ----------------------------------------------------------

@pytest.mark.parametrize("in_axes,out_axes,size,dtype", [
    ((0, None), 0, 3, jnp.float32),
    ((1, 0), 1, 1, jnp.float32),
    ((-1, None), -1, 8, jnp.int32),
])
def test_pure_callback_runs_per_lane(rng, in_axes, out_axes, size, dtype):
    calls = []
    cb = _sin_cb(calls)

    def f(x, w):
        y = jax.pure_callback(lambda a: cb(a).astype(a.dtype),
                              jax.ShapeDtypeStruct(x.shape, x.dtype), x,
                              vmap_method="sequential")
        return y * w + x

    x = make(rng, (2, 4), dtype, in_axes[0], size)
    w = make(rng, (4,), dtype, in_axes[1], size)
    want = jax.vmap(f, in_axes=in_axes, out_axes=out_axes)(x, w)
    calls.clear()
    with pytest.warns(sb.FallbackWarning, match="xla_ffi_python_cpu_callback"):
        got = sb.batch_lower(f, in_axes=in_axes, out_axes=out_axes)(x, w)
    assert_same_tree(got, want)
    assert calls == [(2, 4)] * size  # once per lane, with one example's shape


def test_callback_function_calls_take_jits_cpp_dispatch(monkeypatch):
    """After its first call, a host-callback function runs through the C++
    call jax.jit makes for the same executable (no Python ExecuteReplicated
    call: it cost ~60 us a call); each call still runs the callback once per
    lane, and an exception in the callback surfaces as under jit(vmap)."""
    from jax._src.interpreters import pxla
    calls, python_calls = [], []
    cb = _sin_cb(calls)

    def f(x):
        return jax.pure_callback(cb, jax.ShapeDtypeStruct(x.shape, x.dtype), x,
                                 vmap_method="sequential") * 2.0

    x = jnp.arange(6.0).reshape(3, 2)
    bf = sb.batch_lower(f)
    with pytest.warns(sb.FallbackWarning):
        assert_same_tree(bf(x), jax.vmap(f)(x))
    xs = [x + k for k in range(3)]
    wants = [jax.vmap(f)(a) for a in xs]
    real = pxla.ExecuteReplicated.__call__
    monkeypatch.setattr(pxla.ExecuteReplicated, "__call__",
                        lambda self, *a: python_calls.append(1) or real(self, *a))
    calls.clear()
    gots = [bf(a) for a in xs]
    assert python_calls == []
    assert len(calls) == 3 * 3  # three lanes per call
    monkeypatch.undo()
    assert_same_tree(gots, wants)

    def bad(a):
        raise ValueError("boom from the callback")

    def g(x):
        return jax.pure_callback(bad, jax.ShapeDtypeStruct(x.shape, x.dtype), x,
                                 vmap_method="sequential")
    bg = sb.batch_lower(g)
    for _ in range(2):  # the first call (Python path) and a cached one (C++)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", sb.FallbackWarning)
            with pytest.raises(Exception, match="boom from the callback"):
                jax.block_until_ready(bg(x))


def test_pure_callback_strict_raises():
    def f(x):
        return jax.pure_callback(np.cos, jax.ShapeDtypeStruct(x.shape, x.dtype), x,
                                 vmap_method="sequential")
    with pytest.raises(sb.UnsupportedOpError, match="xla_ffi_python_cpu_callback"):
        sb.batch_lower(f, strict=True)(jnp.ones((3, 2)))


def test_unbatched_callback_is_kept(no_fallback_warnings):
    """Only the weight goes into the callback: no loop, no warning, one call."""
    calls = []
    cb = _sin_cb(calls)

    def f(x, w):
        return x * jax.pure_callback(cb, jax.ShapeDtypeStruct(w.shape, w.dtype), w,
                                     vmap_method="sequential")

    x, w = jnp.arange(12.0).reshape(3, 4), jnp.linspace(0, 1, 4)
    want = jax.vmap(f, in_axes=(0, None))(x, w)
    calls.clear()
    got = sb.batch_lower(f, in_axes=(0, None))(x, w)
    assert_same_tree(got, want)
    assert calls == [(4,)]


def test_debug_and_io_callbacks_keep_lane_order():
    seen = []

    def f(x):
        jax.debug.callback(lambda a: seen.append(float(a[0])), x)
        return io_callback(lambda a: np.asarray(a * 2), jax.ShapeDtypeStruct(x.shape, x.dtype),
                           x)

    x = jnp.arange(5.0)[:, None] * jnp.ones((5, 2))
    with pytest.warns(sb.FallbackWarning) as record:
        got = sb.batch_lower(f)(x)
    assert_same_tree(got, x * 2)
    assert seen == [0.0, 1.0, 2.0, 3.0, 4.0]
    # once per op name per function: both callbacks are custom calls to the
    # same target
    assert len([w for w in record if issubclass(w.category, sb.FallbackWarning)]) == 1


@pytest.mark.parametrize("in_axes,size", [((0, None), 4), ((1, 0), 1)])
def test_ordered_io_callback_threads_its_token_through_the_lanes(in_axes, size):
    seen = []

    def cb(a):
        seen.append(float(a[0]))
        return np.asarray(a * 2)

    def f(x, w):
        y = io_callback(cb, jax.ShapeDtypeStruct(x.shape, x.dtype), x, ordered=True)
        return y + w

    x = jnp.arange(size, dtype=jnp.float32)[:, None] * jnp.ones((size, 2))
    x = jnp.moveaxis(x, 0, in_axes[0])
    w = jnp.ones((2,)) if in_axes[1] is None else jnp.ones((size, 2))
    batched = sb.batch_lower(f, in_axes=in_axes)
    with pytest.warns(sb.FallbackWarning):
        got = batched(x, w)
    lanes = [float(v) for v in range(size)]
    assert seen == lanes  # lane order kept
    # jax.vmap refuses ordered callbacks: the oracle is a loop over examples
    xs = jnp.moveaxis(x, in_axes[0], 0)
    want = jnp.stack([f(xs[i], w if in_axes[1] is None else w[i]) for i in range(size)])
    assert_same_tree(got, want)
    seen.clear()
    batched(x, w)  # the cached executable: runs again, in order
    assert seen == lanes


def test_two_kinds_of_ordered_effects_are_refused():
    def f(x):
        jax.debug.callback(lambda a: None, x, ordered=True)
        return io_callback(lambda a: a, jax.ShapeDtypeStruct(x.shape, x.dtype), x,
                           ordered=True)
    with pytest.raises(sb.UnsupportedOpError, match="OrderedDebugEffect|OrderedIOEffect"):
        sb.batch_lower(f)(jnp.ones((2, 3)))


def test_callback_function_inside_jit_runs_per_lane():
    # The executable with callbacks cannot be traced: under jit the lanes run
    # in a lax.map (docs/dropin.md), with a FallbackWarning.
    f = sb.batch_lower(lambda x: jax.pure_callback(
        np.sin, jax.ShapeDtypeStruct(x.shape, x.dtype), x))
    with pytest.warns(sb.FallbackWarning):
        f(jnp.ones((2, 3)))  # builds and caches the plan
    with pytest.warns(sb.FallbackWarning, match="once per lane"):
        out = jax.jit(f)(jnp.ones((2, 3)))
    np.testing.assert_allclose(out, np.sin(np.ones((2, 3))), rtol=1e-6)


def test_callback_function_with_a_symbolic_size_at_several_sizes():
    # A host-callback function compiles for one batch size: the symbolic
    # plan builds one executable per size (a Python argument too: the static path).
    def f(name, x):
        return jax.pure_callback(getattr(np, name), jax.ShapeDtypeStruct(x.shape, x.dtype), x,
                                 vmap_method="sequential")
    bl = sb.batch_lower(f, (None, 0), axis_size="b")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sb.FallbackWarning)
        for n in (2, 3):
            x = jnp.arange(n * 2.0).reshape(n, 2)
            np.testing.assert_allclose(bl("sin", x), np.sin(x), rtol=1e-6)


def test_callback_lower_and_compile(rng):
    def f(x):
        return jax.pure_callback(np.tanh, jax.ShapeDtypeStruct(x.shape, x.dtype), x,
                                 vmap_method="sequential") + 1
    x = make(rng, (3,), jnp.float32, 0, 3)
    with pytest.warns(sb.FallbackWarning):
        lowered = sb.batch_lower(f).lower(x)
    assert "stablehlo.while" in lowered.as_text()
    assert "fallback" in str(lowered.report())
    # fn's result tree, as for a plan without callbacks (it was the executable's
    # flat tuple)
    assert_same_tree(lowered.compile()(x), jax.vmap(f)(x))


# ---- ops forced through the fallback ------------------------------------------

def _without_rule(rule_override, *names):
    for name in names:
        rule_override(name, None)


@pytest.mark.parametrize("in_axes,out_axes,size,dtype", [
    ((0, None), 0, 3, jnp.float32),
    ((None, 1), 1, 8, jnp.int32),
    ((1, 0), -1, 1, jnp.float32),
])
def test_dot_general_through_fallback(rule_override, rng, in_axes, out_axes, size, dtype):
    _without_rule(rule_override, "stablehlo.dot_general")
    a = make(rng, (2, 3), dtype, in_axes[0], size)
    b = make(rng, (3, 4), dtype, in_axes[1], size)
    with pytest.warns(sb.FallbackWarning, match="stablehlo.dot_general"):
        batched = sb.batch_lower(jnp.matmul, in_axes=in_axes, out_axes=out_axes)
        got = batched(a, b)
    assert_same_tree(got, jax.vmap(jnp.matmul, in_axes=in_axes, out_axes=out_axes)(a, b))
    text = batched.lower(a, b).as_text()
    assert "stablehlo.while" in text
    # the unbatched operand goes into the loop as it is
    assert "broadcast_in_dim" not in text


@pytest.mark.parametrize("in_axes,size", [((0, 0), 3), ((None, 1), 1), ((1, None), 8)])
def test_variadic_sort_through_fallback(rule_override, rng, in_axes, size):
    _without_rule(rule_override, "stablehlo.sort")

    def f(k, v):
        return lax.sort((k, v), num_keys=1)

    k = make(rng, (6,), jnp.float32, in_axes[0], size)
    v = make(rng, (6,), jnp.int32, in_axes[1], size)
    with pytest.warns(sb.FallbackWarning, match="stablehlo.sort"):
        check_vmap(f, k, v, in_axes=in_axes, axis_size=size if in_axes == (None, None) else None)


@pytest.mark.parametrize("in_axes,out_axes,size", [(0, 0, 3), (1, -1, 1)])
def test_custom_call_target_without_rule_runs_per_lane(rule_override, rng, in_axes,
                                                       out_axes, size):
    """A real LAPACK kernel whose target rule is taken away: the custom-call
    rule's no-rule branch sends it to the fallback, and XLA runs the copy."""
    rule_override("lapack_spotrf_ffi", None)
    a = np.stack([np.eye(3) * 3 + m @ m.T for m in rng.standard_normal((size, 3, 3))])
    a = jnp.asarray(np.moveaxis(a, 0, in_axes), jnp.float32)
    with pytest.warns(sb.FallbackWarning, match="lapack_spotrf_ffi"):
        check_vmap(jnp.linalg.cholesky, a, in_axes=in_axes, out_axes=out_axes,
                   rtol=1e-5, atol=1e-5)


def test_strict_refuses_forced_fallback(rule_override):
    _without_rule(rule_override, "stablehlo.sort")
    with pytest.raises(sb.UnsupportedOpError, match="stablehlo.sort.*no batching rule"):
        sb.batch_lower(jnp.sort, strict=True)(jnp.ones((2, 5)))


@pytest.mark.parametrize("in_axes,out_axes,size", [((0, 0, None), 0, 3),
                                                    ((None, 1, 0), 1, 8),
                                                    ((None, None, 0), -1, 1)])
def test_branches_capturing_batched_values(rule_override, rng, in_axes, out_axes, size):
    """jax's cond branches use the operands as captured outer values: the lane
    loop slices each captured batched value per lane. With an unbatched
    predicate only the captures are batched (the op has no batched operand)."""
    _without_rule(rule_override, "stablehlo.if", "stablehlo.case")

    def f(p, x, w):
        return lax.cond(p > 0, lambda: jnp.sin(x) * w, lambda: x - w)

    p = make(rng, (), jnp.float32, in_axes[0], size)
    x = make(rng, (4,), jnp.float32, in_axes[1], size)
    w = make(rng, (4,), jnp.float32, in_axes[2], size)
    with pytest.warns(sb.FallbackWarning):
        check_vmap(f, p, x, w, in_axes=in_axes, out_axes=out_axes)


# Tuples and tokens made inside the function, with their rules taken away.
_TUPLE_TOKEN = """
func.func @main(%x: tensor<3xf32>, %y: tensor<2xi32>) -> (tensor<3xf32>, tensor<2xi32>) {
  %t = stablehlo.tuple %x, %y : tuple<tensor<3xf32>, tensor<2xi32>>
  %a = stablehlo.get_tuple_element %t[0] : (tuple<tensor<3xf32>, tensor<2xi32>>) -> tensor<3xf32>
  %b = stablehlo.get_tuple_element %t[1] : (tuple<tensor<3xf32>, tensor<2xi32>>) -> tensor<2xi32>
  %tok = stablehlo.after_all : !stablehlo.token
  %r:2 = stablehlo.optimization_barrier %a, %tok : tensor<3xf32>, !stablehlo.token
  %n = stablehlo.negate %r#0 : tensor<3xf32>
  return %n, %b : tensor<3xf32>, tensor<2xi32>
}
"""


@pytest.mark.parametrize("in_axes,out_axes,size", [([0, 0], [0, 0], 3),
                                                    ([None, 1], [1, 0], 1),
                                                    ([1, None], [0, 1], 8)])
def test_tuple_and_token_values(rule_override, rng, in_axes, out_axes, size):
    _without_rule(rule_override, "stablehlo.tuple", "stablehlo.get_tuple_element",
                  "stablehlo.optimization_barrier")
    args = [make(rng, (3,), jnp.float32, in_axes[0], size),
            make(rng, (2,), jnp.int32, in_axes[1], size)]
    with pytest.warns(sb.FallbackWarning):
        check_module(_TUPLE_TOKEN, args, in_axes, out_axes, size)


_COLLECTIVE = """
func.func @main(%x: tensor<3xf32>) -> tensor<3xf32> {
  %0 = "stablehlo.all_reduce"(%x) ({
    ^bb0(%a: tensor<f32>, %b: tensor<f32>):
      %s = stablehlo.add %a, %b : tensor<f32>
      stablehlo.return %s : tensor<f32>
  }) {replica_groups = dense<[[0]]> : tensor<1x1xi64>} : (tensor<3xf32>) -> tensor<3xf32>
  return %0 : tensor<3xf32>
}
"""


@pytest.mark.parametrize("strict", [False, True])
def test_collectives_are_refused(strict):
    with pytest.raises(sb.UnsupportedOpError, match="collective"):
        sb.batch_module(_COLLECTIVE, 0, 0, 4, strict=strict)


def test_batch_module_warns_once_per_op_and_function():
    text = """
    func.func @main(%x: tensor<3xf32>) -> tensor<3xf32> {
      %0 = stablehlo.custom_call @opaque(%x) : (tensor<3xf32>) -> tensor<3xf32>
      %1 = stablehlo.custom_call @opaque(%0) : (tensor<3xf32>) -> tensor<3xf32>
      %2 = stablehlo.custom_call @other(%1) : (tensor<3xf32>) -> tensor<3xf32>
      return %2 : tensor<3xf32>
    }"""
    with pytest.warns(sb.FallbackWarning) as record:
        out = sb.batch_module(text, 0, 0, 4)
    messages = sorted(str(w.message) for w in record
                      if issubclass(w.category, sb.FallbackWarning))
    assert len(messages) == 2
    assert "@opaque" in messages[0] and "@other" in messages[1]
    assert out.count("stablehlo.while") == 3
    with pytest.raises(sb.UnsupportedOpError, match="@opaque"):
        sb.batch_module(text, 0, 0, 4, strict=True)


# ---- user rules ----------------------------------------------------------------

# A custom call XLA does not know: only a user rule can make this module run.
_MY_SINE = """
func.func @main(%x: tensor<2x3xf32>, %w: tensor<3xf32>) -> tensor<2x3xf32> {
  %0 = stablehlo.custom_call @my_sine(%x) : (tensor<2x3xf32>) -> tensor<2x3xf32>
  %1 = stablehlo.broadcast_in_dim %w, dims = [1] : (tensor<3xf32>) -> tensor<2x3xf32>
  %2 = stablehlo.add %0, %1 : tensor<2x3xf32>
  return %2 : tensor<2x3xf32>
}
"""


def _my_sine_rule(used):
    """The vectorized rule a user would write: my_sine is elementwise, so the
    batched operand goes into one stablehlo.sine."""
    from stablehlo_batch.passes import builders as bld

    def rule(fb, op, flags):
        used.append(flags)
        x = fb.materialize(op.operands[0])
        return [(bld.create("stablehlo.sine", [x.type], [x]).result, True)]
    return rule


@pytest.mark.parametrize("in_axes,size", [([0, None], 3), ([2, 0], 1)])
def test_user_rule_for_custom_call_target(rng, in_axes, size, no_fallback_warnings):
    from batch_cases import run_module
    used = []
    x = make(rng, (2, 3), jnp.float32, in_axes[0], size)
    w = make(rng, (3,), jnp.float32, in_axes[1], size)
    with sb.register_rule("my_sine", _my_sine_rule(used)):
        text = sb.batch_module(_MY_SINE, in_axes, [0], size)
    assert used == [(True,)] and "stablehlo.while" not in text
    assert "custom_call" not in text
    got = run_module(text, x, w)[0]
    xs = np.moveaxis(np.asarray(x), in_axes[0], 0)
    ws = np.asarray(w) if in_axes[1] is None else np.moveaxis(np.asarray(w), in_axes[1], 0)[:, None]
    np.testing.assert_allclose(np.asarray(got), np.sin(xs) + ws, rtol=1e-6)
    # without the rule: the per-lane fallback (a warning), strict: an error
    with pytest.raises(sb.FallbackWarning):
        sb.batch_module(_MY_SINE, in_axes, [0], size)
    with pytest.raises(sb.UnsupportedOpError, match="@my_sine"):
        sb.batch_module(_MY_SINE, in_axes, [0], size, strict=True)


def test_user_rule_overrides_builtin_rule(rng, no_fallback_warnings):
    used = []
    builtin = RULES["stablehlo.sine"]

    def counting(fb, op, flags):
        used.append(op.name)
        return builtin(fb, op, flags)

    x = make(rng, (4,), jnp.float32, 0, 3)
    reg = sb.register_rule("stablehlo.sine", counting)
    try:
        check_vmap(jnp.sin, x)
    finally:
        reg.remove()
    assert used == ["stablehlo.sine"]
    check_vmap(jnp.sin, x)
    assert used == ["stablehlo.sine"]  # removed


def test_per_lane_rule_runs_without_warning(rng, no_fallback_warnings):
    """register_rule(name, per_lane) asks for the loop: no warning then."""
    x = make(rng, (5,), jnp.float32, 0, 3)
    with sb.register_rule("stablehlo.sine", sb.per_lane):
        batched = sb.batch_lower(jnp.sin)
        assert_same_tree(batched(x), jax.vmap(jnp.sin)(x))
        assert "stablehlo.while" in batched.lower(x).as_text()


def test_symbolic_batch_size_fallback_loops_over_the_runtime_size():
    """With a symbolic batch size the per-lane loop's trip count is read at
    run time (get_dimension_size); strict still refuses it."""
    text = """
    func.func @main(%x: tensor<3xf32>) -> tensor<3xf32> {
      %0 = stablehlo.custom_call @opaque(%x) : (tensor<3xf32>) -> tensor<3xf32>
      return %0 : tensor<3xf32>
    }"""
    with pytest.warns(sb.FallbackWarning):
        out = sb.batch_module(text, 0, 0, "b")
    assert "stablehlo.while" in out and "tensor<?x3xf32>" in out
    assert "stablehlo.get_dimension_size" in out
    with pytest.raises(sb.UnsupportedOpError, match="@opaque has no batching rule"):
        sb.batch_module(text, 0, 0, "b", strict=True)
