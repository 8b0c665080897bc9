"""The rule table (passes/rules/table.py) and register_rule.

* forms: op names and custom call targets, context manager / remove /
  unregister, refused duplicates (built-in and user paths alike);
* a rule registered after a signature's first call changes the next call
  (the rules' generation is in every plan cache key);
* per-context scoping: two threads batch one function with different rules
  at the same time; ``scope="process"`` reaches other threads;
* ``ModuleBatcher(rules=)`` / ``batch_function_in_module(rules=)`` batch with
  a table of their own, the global one untouched;
* ``fb.decline``: the same fallback / strict handling for every rule;
* what rules register beside themselves: ``costly`` and ``predict``.
"""
from __future__ import annotations

import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import stablehlo_batch as sb
from jaxlib.mlir import ir

from stablehlo_batch.passes import builders as bld
from stablehlo_batch.passes.engine import batch_function_in_module
from stablehlo_batch.passes.rules import RULES, RuleTable
from stablehlo_batch import module_io


def _nothing(fb, op, flags):
    return []


def _as_cosine(fb, op, flags):
    """A 'sine' rule that computes cosine: tells which rule ran by the values."""
    x = op.operands[0]
    return [(bld.create("stablehlo.cosine", [x.type], [x]).result, True)]


def _as_negate(fb, op, flags):
    x = op.operands[0]
    return [(bld.create("stablehlo.negate", [x.type], [x]).result, True)]


def test_register_rule_forms():
    with sb.register_rule("stablehlo.fancy_new_op", _nothing) as reg:
        assert RULES.get("stablehlo.fancy_new_op") is _nothing
        assert not reg.custom_call
    assert RULES.get("stablehlo.fancy_new_op") is None
    sb.register_rule("my_kernel", _nothing)
    assert RULES.get("my_kernel", custom_call=True) is _nothing
    assert RULES.get("my_kernel") is None
    sb.unregister_rule("my_kernel")
    assert RULES.get("my_kernel", custom_call=True) is None
    sb.unregister_rule("my_kernel")  # none there: no error
    with sb.register_rule("odd.target.name", _nothing, custom_call=True):
        assert RULES.get("odd.target.name", custom_call=True) is _nothing
    # a user rule shadows the built-in one, which comes back on removal
    builtin = RULES["stablehlo.sine"]
    with sb.register_rule("stablehlo.sine", _as_cosine):
        assert RULES["stablehlo.sine"] is _as_cosine
    assert RULES["stablehlo.sine"] is builtin
    with pytest.raises(TypeError):
        sb.register_rule("stablehlo.sine", None)
    with pytest.raises(TypeError):
        sb.register_rule("", _nothing)
    with pytest.raises(ValueError, match="scope"):
        sb.register_rule("k", _nothing, scope="thread")


def test_duplicates_are_refused_the_same_way_on_every_path():
    with sb.register_rule("k", _nothing):
        with pytest.raises(ValueError, match="duplicate batching rule for custom call target 'k'"):
            sb.register_rule("k", _as_cosine)
        assert RULES.get("k", custom_call=True) is _nothing
    with sb.register_rule("k", _as_cosine):  # free again once removed
        pass
    reg = sb.register_rule("k2", _nothing, scope="process")
    try:
        with pytest.raises(ValueError, match="duplicate batching rule for custom call target 'k2'"):
            sb.register_rule("k2", _nothing, scope="process")
    finally:
        reg.remove()
    with pytest.raises(ValueError, match="duplicate batching rule for op 'stablehlo.sine'"):
        RULES.register("stablehlo.sine")(_nothing)
    with pytest.raises(ValueError, match="duplicate batching rule for custom call target "
                                         "'lapack_spotrf_ffi'"):
        RULES.register_custom_call("lapack_spotrf_ffi")(_nothing)


def test_rule_registered_after_first_call_takes_effect():
    """The plan caches (batch_lower's plans and jit dispatch) are keyed by the
    rules' generation: a registration after the first call of a signature
    changes the next call, and removing it brings the first plan back."""
    batched = sb.batch_lower(jnp.sin)
    x = jnp.linspace(0.0, 1.0, 6, dtype=jnp.float32).reshape(3, 2)
    np.testing.assert_allclose(batched(x), np.sin(x), rtol=1e-6)
    generation = RULES.generation
    with sb.register_rule("stablehlo.sine", _as_cosine):
        assert RULES.generation != generation
        np.testing.assert_allclose(batched(x), np.cos(x), rtol=1e-6)
        np.testing.assert_allclose(jax.jit(batched)(x), np.cos(x), rtol=1e-6)
        assert "stablehlo.cosine" in batched.lower(x).as_text()
    assert RULES.generation == generation
    np.testing.assert_allclose(batched(x), np.sin(x), rtol=1e-6)
    assert "stablehlo.cosine" not in batched.lower(x).as_text()


def test_vmappable_sees_a_rule_registered_later():
    exp = jax.export.export(jax.jit(jnp.sin))(jax.ShapeDtypeStruct((2,), jnp.float32))
    call = sb.vmappable(exp)
    x = jnp.linspace(0.0, 1.0, 6, dtype=jnp.float32).reshape(3, 2)
    np.testing.assert_allclose(jax.vmap(call)(x), np.sin(x), rtol=1e-6)
    with sb.register_rule("stablehlo.sine", _as_cosine):
        np.testing.assert_allclose(jax.vmap(call)(x), np.cos(x), rtol=1e-6)


def test_two_threads_batch_with_different_rules():
    """register_rule is scoped to its context: each thread sees its own rule
    and the main thread neither, all at once on one BatchedFunction."""
    batched = sb.batch_lower(jnp.sin)
    x = jnp.linspace(0.0, 1.0, 6, dtype=jnp.float32).reshape(3, 2)
    barrier = threading.Barrier(2)
    got, errors = {}, []

    def work(name, rule):
        try:
            with sb.register_rule("stablehlo.sine", rule):
                barrier.wait(timeout=60)  # both rules registered before either batches
                got[name] = [np.asarray(batched(x)) for _ in range(2)]
                barrier.wait(timeout=60)
        except Exception as e:  # reported below, in the main thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=("cos", _as_cosine)),
               threading.Thread(target=work, args=("neg", _as_negate))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    for out in got["cos"]:
        np.testing.assert_allclose(out, np.cos(x), rtol=1e-6)
    for out in got["neg"]:
        np.testing.assert_allclose(out, -np.asarray(x), rtol=1e-6)
    np.testing.assert_allclose(batched(x), np.sin(x), rtol=1e-6)


def test_process_scope_reaches_other_threads():
    x = jnp.linspace(0.0, 1.0, 6, dtype=jnp.float32).reshape(3, 2)
    got = []
    with sb.register_rule("stablehlo.sine", _as_cosine, scope="process"):
        t = threading.Thread(target=lambda: got.append(np.asarray(sb.batch_lower(jnp.sin)(x))))
        t.start()
        t.join(120)
    np.testing.assert_allclose(got[0], np.cos(x), rtol=1e-6)
    assert RULES.get("stablehlo.sine") is not _as_cosine


def test_process_rule_reaches_a_function_on_its_fast_path():
    """The hot path compares the table's own layers by identity: a
    process-scope registration (and its removal) reaches calls of a
    signature that jit has already compiled."""
    batched = sb.batch_lower(jnp.sin)
    x = jnp.linspace(0.0, 1.0, 6, dtype=jnp.float32).reshape(3, 2)
    for _ in range(2):
        np.testing.assert_allclose(batched(x), np.sin(x), rtol=1e-6)
    with sb.register_rule("stablehlo.sine", _as_cosine, scope="process"):
        np.testing.assert_allclose(batched(x), np.cos(x), rtol=1e-6)
    np.testing.assert_allclose(batched(x), np.sin(x), rtol=1e-6)


_SINE = """
func.func @main(%x: tensor<2xf32>) -> tensor<2xf32> {
  %0 = stablehlo.sine %x : tensor<2xf32>
  return %0 : tensor<2xf32>
}"""


def test_module_batcher_takes_a_table():
    table = RULES.copy()
    assert isinstance(table, RuleTable) and not table.scoped
    table.remove("stablehlo.sine", builtin=True)
    module = module_io.parse_module(_SINE)
    with pytest.raises(sb.UnsupportedOpError, match="stablehlo.sine"):
        batch_function_in_module(module, "main", [0], [0], 3, strict=True, rules=table)
    assert "stablehlo.sine" in RULES  # the global table is untouched
    table.add("stablehlo.sine", _as_cosine)
    module = module_io.parse_module(_SINE)
    batch_function_in_module(module, "main", [0], [0], 3, rules=table)
    assert "stablehlo.cosine" in str(module) and "tensor<3x2xf32>" in str(module)


def _declines(fb, op, flags):
    fb.decline(op, "no vectorized sine today")


def test_decline_runs_per_lane_or_raises_under_strict():
    x = jnp.linspace(0.0, 1.0, 6, dtype=jnp.float32).reshape(3, 2)
    with sb.register_rule("stablehlo.sine", _declines):
        with pytest.warns(sb.FallbackWarning, match="no vectorized sine today"):
            batched = sb.batch_lower(jnp.sin)
            np.testing.assert_allclose(batched(x), np.sin(x), rtol=1e-6)
        assert "stablehlo.while" in batched.lower(x).as_text()
        with pytest.raises(sb.UnsupportedOpError, match="no vectorized sine today"):
            sb.batch_lower(jnp.sin, strict=True)(x)


_OPS = """
func.func @main(%x: tensor<2x2xf32>, %i: tensor<i32>) -> tensor<2x2xf32> {
  %0 = stablehlo.add %x, %x : tensor<2x2xf32>
  %1 = stablehlo.dot_general %0, %x, contracting_dims = [1] x [0] : (tensor<2x2xf32>, tensor<2x2xf32>) -> tensor<2x2xf32>
  %2 = stablehlo.get_dimension_size %1, dim = 0 : (tensor<2x2xf32>) -> tensor<i32>
  %3 = stablehlo.custom_call @unknown_kernel(%1) : (tensor<2x2xf32>) -> tensor<2x2xf32>
  %4 = stablehlo.custom_call @lapack_spotrf_ffi(%3) : (tensor<2x2xf32>) -> tensor<2x2xf32>
  %5 = stablehlo.iota dim = 0 : tensor<2x2xf32>
  return %4 : tensor<2x2xf32>
}"""


def test_rules_register_what_they_know():
    """costly (for the cond test) and predict (for the while prediction) come
    from the entries the families registered; an op without a rule that has
    operands is costly (batched, it runs once per lane)."""
    module = module_io.parse_module(_OPS)
    ops = {}
    for op in module.body.operations[0].regions[0].blocks[0].operations:
        op = op.operation
        key = op.name
        if op.name == "stablehlo.custom_call":
            key = str(op.attributes["call_target_name"]).strip('"')
        ops[key] = op
    costly = {k: RULES.is_costly(op) for k, op in ops.items()}
    assert costly == {"stablehlo.add": False, "stablehlo.dot_general": True,
                      "stablehlo.get_dimension_size": False, "unknown_kernel": True,
                      "lapack_spotrf_ffi": True, "stablehlo.iota": False,
                      "func.return": True}
    assert RULES.entry(ops["stablehlo.get_dimension_size"]).predict(None, None, [True]) == [False]
    assert RULES.entry(ops["stablehlo.add"]).predict is None
    with sb.register_rule("unknown_kernel", _nothing, costly=False):
        assert not RULES.is_costly(ops["unknown_kernel"])


def test_user_rule_predict_keeps_while_carry_unbatched():
    """A user rule that keeps its result unbatched says so with ``predict``;
    the while rule's carry prediction asks the table. (Without it the
    prediction takes the result as batched, and a counter fed by it is a
    self-consistent batched carry -- a fixed point, not the least one -- so
    the counter would come out batched and out_axes=None would be refused.)"""
    text = """
    func.func @main(%x: tensor<3xf32>) -> (tensor<3xf32>, tensor<i32>) {
      %c0 = stablehlo.constant dense<0> : tensor<i32>
      %c5 = stablehlo.constant dense<5> : tensor<i32>
      %r:2 = stablehlo.while(%a = %x, %n = %c0) : tensor<3xf32>, tensor<i32>
      cond {
        %lt = stablehlo.compare LT, %n, %c5 : (tensor<i32>, tensor<i32>) -> tensor<i1>
        stablehlo.return %lt : tensor<i1>
      } do {
        %s = stablehlo.custom_call @my_size(%a) : (tensor<3xf32>) -> tensor<i32>
        %m = stablehlo.add %n, %s : tensor<i32>
        %b = stablehlo.sine %a : tensor<3xf32>
        stablehlo.return %b, %m : tensor<3xf32>, tensor<i32>
      }
      return %r#0, %r#1 : tensor<3xf32>, tensor<i32>
    }"""

    def my_size(fb, op, flags):  # a lane's size is every lane's: unbatched
        i32 = op.results[0].type
        value = ir.DenseElementsAttr.get_splat(
            i32, ir.IntegerAttr.get(ir.IntegerType.get_signless(32), 3))
        return [(bld.create("stablehlo.constant", [i32], [], {"value": value}).result, False)]

    with sb.register_rule("my_size", my_size, predict=lambda p, op, ins: [False]):
        out = sb.batch_module(text, [0], [0, None], 4)
    assert "-> (tensor<4x3xf32>, tensor<i32>)" in out and "tensor<4xi32>" not in out
