"""The batching report (passes/report.py): its counts on small functions,
``Lowered.report()``, ``batch_module_with_report`` and the CLI's --report."""
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

import stablehlo_batch as sb
from stablehlo_batch.passes.report import ENTRY, EXIT, BatchingReport
from stablehlo_batch.api import batch_module_with_report


def report_of(fn, *args, in_axes=0, out_axes=0) -> BatchingReport:
    rep = sb.batch_lower(fn, in_axes=in_axes, out_axes=out_axes).lower(*args).report()
    assert isinstance(rep, BatchingReport)
    return rep


def _mlp(x, w1, w2):
    return jnp.tanh(x @ w1) @ w2


def test_mlp_with_unbatched_weights_broadcasts_nothing():
    x, w1, w2 = jnp.ones((8, 4)), jnp.ones((4, 16)), jnp.ones((16, 3))
    rep = report_of(_mlp, x, w1, w2, in_axes=(0, None, None))
    assert rep.ops_by_rule == {"stablehlo.dot_general": 2, "stablehlo.tanh": 1}
    assert rep.broadcasts.count == 0 and rep.transposes.count == 0
    # a rebuilt dot_general replaces the old one: it is not an insertion
    assert rep.inserted("stablehlo.dot_general").count == 0
    assert rep.rewrite_seconds is not None and rep.rewrite_seconds > 0


def test_bias_is_broadcast_only_where_it_is_added():
    def layer(x, w, b):
        return x @ w + b
    rep = report_of(layer, jnp.ones((5, 4)), jnp.ones((4, 16)), jnp.ones(16),
                    in_axes=(0, None, None))
    # the add needs equal shapes: b -> [5, 16] f32; the weight is never broadcast
    assert rep.broadcasts.count == 1 and rep.broadcasts.bytes == 5 * 16 * 4
    assert set(rep.inserted_by_rule) == {"stablehlo.add"}


def test_out_axes_1_inserts_exactly_one_transpose():
    rep = report_of(lambda x: jnp.sin(x), jnp.ones((3, 5)), out_axes=1)
    assert rep.transposes.count == 1 and rep.transposes.bytes == 3 * 5 * 4
    assert rep.inserted_by_rule[EXIT] == {"stablehlo.transpose": rep.transposes}
    assert ENTRY not in rep.inserted_by_rule


def test_in_axes_1_moves_the_argument_once_on_entry():
    rep = report_of(lambda x, y: x * y, jnp.ones((5, 3), jnp.int32),
                    jnp.ones((3, 5), jnp.int32), in_axes=(1, 0))
    assert rep.inserted_by_rule[ENTRY]["stablehlo.transpose"].count == 1
    assert rep.transposes.count == 1 and rep.broadcasts.count == 0


def test_batched_cond_turns_into_selects_once():
    def f(p, x):
        return jax.lax.cond(p > 0, lambda v: v * 2, lambda v: v - 1, x)
    rep = report_of(f, jnp.arange(3.0), jnp.ones((3, 4)))
    assert rep.branches_to_selects == 1
    assert rep.notes_of("branches_to_selects")[0].op_name in ("stablehlo.case",
                                                              "stablehlo.if")
    # an unbatched predicate keeps the conditional
    rep = report_of(f, 1.0, jnp.ones((3, 4)), in_axes=(None, 0))
    assert rep.branches_to_selects == 0


def _newton(a):
    def cond(c):
        return jnp.abs(c[0] * c[0] - a) > 1e-3

    def body(c):
        return c[0] - (c[0] * c[0] - a) / (2 * c[0]), c[1] + 1
    return jax.lax.while_loop(cond, body, (a, 0))


def test_per_lane_trip_count_is_one_batched_predicate_loop():
    rep = report_of(_newton, jnp.arange(1.0, 5.0))
    assert rep.batched_predicate_loops == 1
    assert rep.ops_by_rule["stablehlo.while"] == 1


def test_fixed_trip_count_loop_has_no_batched_predicate():
    def f(x):
        return jax.lax.fori_loop(0, 4, lambda i, v: v * 2.0 + i, x)
    rep = report_of(f, jnp.ones((3, 2)))
    assert rep.batched_predicate_loops == 0 and rep.ops_by_rule["stablehlo.while"] == 1


def test_decisions_inside_loops_are_counted_once():
    # The while rule rewrites throw-away clones to find which carries are
    # batched; what those record must not reach the report.
    def f(x):
        def body(i, v):
            return jax.lax.cond(v[0] > 0, lambda u: u - 1.0, lambda u: u + 2.0, v)
        return jax.lax.fori_loop(0, 3, body, x)
    rep = report_of(f, jnp.ones((3, 2)))
    assert rep.branches_to_selects == 1
    assert rep.ops_by_rule["stablehlo.while"] == 1


MODULE = """
func.func @main(%x: tensor<3xf32>, %w: tensor<3xf32>) -> tensor<3xf32> {
  %0 = stablehlo.multiply %x, %w : tensor<3xf32>
  %1 = stablehlo.add %0, %w : tensor<3xf32>
  %2 = stablehlo.exponential %w : tensor<3xf32>
  %3 = stablehlo.add %1, %2 : tensor<3xf32>
  return %3 : tensor<3xf32>
}
"""


def test_module_report_counts_and_text():
    text, rep = batch_module_with_report(MODULE, [0, None], [0], 8)
    assert "tensor<8x3xf32>" in text
    assert rep.ops_by_rule == {"stablehlo.multiply": 1, "stablehlo.add": 2}
    assert rep.ops_kept_unbatched == 1  # exp(w) stays unbatched
    # w and exp(w) are broadcast once each where a batched value meets them
    assert rep.broadcasts.count == 3 and rep.broadcasts.bytes == 3 * 8 * 3 * 4
    s = str(rep)
    assert "ops by rule" in s and "stablehlo.add" in s and "3 broadcasts (288 B)" in s
    d = rep.as_dict()
    assert d["broadcasts"] == {"count": 3, "bytes": 288} and d["axis_size"] == 8


def test_cli_report_goes_to_stderr():
    proc = subprocess.run([sys.executable, "-m", "stablehlo_batch.cli", "-",
                           "--axis-size=4", "--in-axes=1,none", "--out-axes=0",
                           "--report"], input=MODULE.replace("3xf32", "3xf32").encode(),
                          capture_output=True, timeout=120)
    out, err = proc.stdout.decode(), proc.stderr.decode()
    assert proc.returncode == 0, err
    assert "batching report for @main (batch size 4)" in err
    assert ENTRY in err and "1 transpose" in err
    assert "batching report" not in out and "stablehlo.multiply" in out


def test_cli_without_report_prints_no_report():
    proc = subprocess.run([sys.executable, "-m", "stablehlo_batch.cli", "-",
                           "--axis-size=2"], input=MODULE.encode(),
                          capture_output=True, timeout=120)
    assert proc.returncode == 0 and "batching report" not in proc.stderr.decode()


@pytest.mark.parametrize("size", [1, 3])
def test_report_does_not_change_results(size):
    # the report hooks sit in the rewrite: the batched function must still agree
    from conftest import check_vmap
    x = jnp.arange(size * 4.0).reshape(size, 4)
    check_vmap(_mlp, x, jnp.ones((4, 6)), jnp.ones((6, 2)), in_axes=(0, None, None))


def test_broadcast_of_a_constant_is_counted_apart():
    # x * 2: the 2 is broadcast to the batched shape, which XLA fuses away;
    # the weight w is a value: its broadcast moves data
    rep = report_of(lambda x, w: x * 2.0 + w, jnp.ones((4, 3)), jnp.ones(3),
                    in_axes=(0, None))
    assert rep.constant_broadcasts.count == 1
    assert rep.broadcasts.count == 1 and rep.broadcasts.bytes == 4 * 3 * 4
    assert "1 broadcasts of constants" in rep.summary()
