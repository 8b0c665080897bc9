"""The text of every error kind, and the self-check (BatchMismatchError).

Each error must be actionable in one line: the argument by its path (like
jax: ``argument d['w']`` / ``args[1]['w']``), the op, and the user's source
line (taken from the module's ``loc``). The self-check tests inject a wrong
rule into the rule table (the rule_override fixture) and expect the reproducer to name that op.
"""
from __future__ import annotations

import inspect
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import stablehlo_batch as sb
from stablehlo_batch.passes import builders as bld
from stablehlo_batch import cli
from stablehlo_batch.selfcheck import BatchMismatchError

HERE = os.path.basename(__file__)


def _line_of(fn, needle):
    """The line number (in this file) of the first source line of ``fn`` with ``needle``."""
    lines, start = inspect.getsourcelines(fn)
    return start + next(i for i, l in enumerate(lines) if needle in l)


def _one_line(e):
    text = str(e)
    assert "\n" not in text, text
    return text


# ---- axis errors name the argument / output by its path ----------------------------

def test_axis_out_of_range_names_argument_path():
    def f(x, d):
        return x + d["w"].sum()
    with pytest.raises(ValueError) as e:
        sb.batch_lower(f, (0, {"w": 3}))(np.ones((3, 2)), {"w": np.ones((3, 4))})
    msg = _one_line(e.value)
    assert "argument d['w']" in msg and "axis 3" in msg and "(3, 4)" in msg


def test_axis_out_of_range_without_signature_uses_args_path():
    with pytest.raises(ValueError) as e:
        sb.batch_lower(lambda *a: a[0], (0, {"w": -4}))(np.ones((3, 2)), {"w": np.ones((3, 4))})
    assert "args[1]['w']" in _one_line(e.value)


def test_inconsistent_sizes_names_each_argument_path():
    def f(x, d):
        return x.sum() + d["w"].sum()
    with pytest.raises(ValueError) as e:
        sb.batch_lower(f)(np.ones((3, 2)), {"w": np.ones((4,))})
    msg = str(e.value)
    assert "inconsistent sizes" in msg and "argument x" in msg and "argument d['w']" in msg


def test_out_axes_none_for_batched_output_names_output_path():
    with pytest.raises(ValueError) as e:
        sb.batch_lower(lambda x: (x, {"y": x * 2}), out_axes=(0, {"y": None}))(np.ones((3, 2)))
    msg = _one_line(e.value)
    assert "out_axes[1]['y']" in msg and "None" in msg


def test_out_axes_out_of_range_names_output_path():
    with pytest.raises(ValueError) as e:
        sb.batch_lower(lambda x: {"y": x}, out_axes={"y": 5})(np.ones((3, 2)))
    msg = _one_line(e.value)
    assert "out_axes['y']" in msg and "axis 5 is out of bounds for array of dimension 2" in msg


def test_malformed_in_axes_is_type_error():
    with pytest.raises(TypeError, match="in_axes must be an int, None, or"):
        sb.batch_lower(lambda x: x, in_axes=1.5)


# ---- op errors name the op and the user's source line ---------------------------------

def test_unsupported_op_names_op_and_source_line(rule_override):
    rule_override("stablehlo.cosine", None)

    def f(x, w):
        y = x * w
        return jnp.cos(y)
    with pytest.raises(sb.UnsupportedOpError) as e:
        sb.batch_lower(f, (0, None), strict=True)(np.ones((3, 2), np.float32),
                                                  np.ones(2, np.float32))
    msg = _one_line(e.value)
    assert "'stablehlo.cosine'" in msg and "@main" in msg
    assert f"{HERE}:{_line_of(f, 'jnp.cos')}" in msg, msg
    assert e.value.op_name == "stablehlo.cosine"


def test_unsupported_op_in_callee_names_call_site(rule_override):
    rule_override("stablehlo.cosine", None)

    @jax.jit
    def helper(y):
        return jnp.cos(y) + 1

    def f(x):
        return helper(x) * 2
    with pytest.raises(sb.UnsupportedOpError) as e:
        sb.batch_lower(f, strict=True)(np.ones((3, 2), np.float32))
    msg = _one_line(e.value)
    assert "'stablehlo.cosine'" in msg and "called from" in msg
    assert f"{HERE}:{_line_of(helper, 'jnp.cos')}" in msg, msg


def test_rule_building_invalid_ir_is_verification_error_with_location(rule_override):
    def broken(fb, op, flags):  # keeps the unbatched result type: invalid
        new = bld.create("stablehlo.sine", [op.results[0].type], [op.operands[0]]).result
        return [(new, True)]
    rule_override("stablehlo.cosine", broken)

    def f(x):
        return jnp.cos(x)
    with pytest.raises(sb.VerificationError) as e:
        sb.batch_lower(f)(np.ones((3, 2), np.float32))
    msg = _one_line(e.value)
    assert "'stablehlo.sine'" in msg and f"{HERE}:{_line_of(f, 'jnp.cos')}" in msg, msg



def test_input_verified_unless_jax_lowered_it_here(monkeypatch):
    """batch_lower's per-example module comes from jax's lowering in this
    process, which verified it: only the batched module is verified. A
    module from elsewhere (an Exported's portable artifact, text) is
    verified before the rewrite too."""
    from stablehlo_batch.passes import engine
    stages = []
    real = engine.verify
    monkeypatch.setattr(engine, "verify", lambda m, stage: stages.append(stage) or real(m, stage))
    x = np.ones((3, 2), np.float32)
    sb.batch_lower(lambda x: jnp.sin(x) * 2)(x)
    assert stages == ["batched"], stages
    stages.clear()
    exp = jax.export.export(jax.jit(lambda x: jnp.sin(x) * 2))(x[0])
    sb.batch_exported(exp, axis_size=3)
    assert stages == ["input", "batched"], stages
    stages.clear()
    sb.batch_module(MODULE, [0, None], [0], 4)
    assert stages == ["input", "batched"], stages

# ---- the CLI: one line, exit 1 ----------------------------------------------------------

MODULE = """
func.func @main(%x: tensor<3xf32>, %w: tensor<3xf32>) -> tensor<3xf32> {
  %0 = stablehlo.multiply %x, %w : tensor<3xf32> loc("model.py":12:8)
  %1 = stablehlo.cosine %0 : tensor<3xf32> loc("model.py":13:4)
  return %1 : tensor<3xf32>
}
"""


def _cli(capfd, *argv):
    rc = cli.main(list(argv))
    out, err = capfd.readouterr()
    return rc, out, err


@pytest.mark.parametrize("argv,needles", [
    (["--axis-size=2", "--in-axes=0,0,0"], ["in_axes has 3 entries", "@main takes 2"]),
    (["--axis-size=2", "--in-axes=5,none"], ["in_axes[0]=5", "argument 0"]),
    (["--axis-size=2", "--out-axes=none"], ["result 0", "out_axes is None"]),
    (["--axis-size=2", "--func=nope"], ["@nope not found"]),
])
def test_cli_axis_errors_are_one_line(tmp_path, capfd, argv, needles):
    src = tmp_path / "m.mlir"
    src.write_text(MODULE)
    rc, out, err = _cli(capfd, str(src), *argv)
    assert rc == 1 and out == "" and len(err.splitlines()) == 1, err
    assert err.startswith("error: ") and all(n in err for n in needles), err


def test_cli_unsupported_op_names_source_line(tmp_path, capfd, rule_override):
    rule_override("stablehlo.cosine", None)
    src = tmp_path / "m.mlir"
    src.write_text(MODULE)
    rc, out, err = _cli(capfd, str(src), "--axis-size=2", "--strict")
    assert rc == 1 and len(err.splitlines()) == 1, err
    assert "'stablehlo.cosine'" in err and "model.py:13:4" in err


def test_cli_parse_error_names_line_and_column(tmp_path, capfd):
    src = tmp_path / "m.mlir"
    src.write_text(MODULE.replace("stablehlo.cosine %0", "stablehlo.cosine %9"))
    rc, out, err = _cli(capfd, str(src), "--axis-size=2")
    assert rc == 1 and len(err.splitlines()) == 1 and "cannot parse module" in err, err
    assert ":4:" in err, err  # the line of the bad use


# ---- self-check -------------------------------------------------------------------------

def _wrong_cosine(fb, op, flags):
    """A deliberately wrong rule: computes sine instead of cosine."""
    new = bld.create("stablehlo.sine", [op.operands[0].type], [op.operands[0]]).result
    return [(new, True)]


def _model(x, w, b):
    h = jnp.tanh(x @ w)
    return {"out": jnp.cos(h + b).sum(-1), "h": h}


def _inputs(rng):
    return (rng.standard_normal((3, 4, 2), np.float32),
            rng.standard_normal((2, 5), np.float32), rng.standard_normal(5, np.float32))


def test_check_passes_for_correct_rules(rng):
    x, w, b = _inputs(rng)
    for in_axes, out_axes in [((0, None, None), 0), ((1, None, 0), {"out": -1, "h": 1})]:
        xs = np.moveaxis(x, 0, in_axes[0])
        bs = np.stack([b] * 3, 0) if in_axes[2] == 0 else b
        got = sb.batch_lower(_model, in_axes, out_axes, check=True)(xs, w, bs)
        want = jax.vmap(_model, in_axes, out_axes)(xs, w, bs)
        np.testing.assert_allclose(got["out"], want["out"], rtol=1e-5, atol=1e-5)


def test_check_finds_the_wrong_rule_and_writes_a_reproducer(rule_override, rng, tmp_path,
                                                            monkeypatch):
    monkeypatch.setenv("STABLEHLO_BATCH_REPRO_DIR", str(tmp_path))
    wrong = rule_override("stablehlo.cosine", _wrong_cosine)
    x, w, b = _inputs(rng)
    with pytest.raises(BatchMismatchError) as e:
        sb.batch_lower(_model, (0, None, None), check=True)(x, w, b)
    err = e.value
    msg = _one_line(err)
    assert err.op_name == "stablehlo.cosine" and "'stablehlo.cosine'" in msg
    assert f"{HERE}:{_line_of(_model, 'jnp.cos')}" in msg, msg
    assert os.path.dirname(err.reproducer) == str(tmp_path)
    repro = open(err.reproducer).read()
    body = [l for l in repro.splitlines() if l.strip() and not l.startswith(("//", "#loc"))]
    ops = [l for l in body if "=" in l and "stablehlo." in l]
    assert len(ops) == 1 and "stablehlo.cosine" in ops[0], repro  # the op alone
    assert "--in-axes=0" in repro and os.path.exists(err.reproducer[:-5] + ".npz")

    # The reproducer reproduces through the CLI while the rule is wrong...
    flags = next(l for l in repro.splitlines() if "stablehlo-batch-opt" in l).split()[3:]
    argv = [err.reproducer] + [f if not f.startswith("--inputs=") else
                               "--inputs=" + str(tmp_path / f.split("=", 1)[1]) for f in flags]
    assert cli.main(argv) == 1
    # ... and passes once it is right again.
    wrong.remove()
    assert cli.main(argv) == 0


def test_check_with_unbatched_weight_inside_loop(rule_override, rng, tmp_path, monkeypatch):
    """The bad op sits after a batched/unbatched mix; bisection skips the rest."""
    monkeypatch.setenv("STABLEHLO_BATCH_REPRO_DIR", str(tmp_path))
    rule_override("stablehlo.cosine", _wrong_cosine)

    def f(x, w):
        y = jax.lax.fori_loop(0, 2, lambda i, c: jnp.tanh(c @ w), x)
        return jnp.cos(y) * 2 + w.sum()
    x, w = rng.standard_normal((3, 4), np.float32), rng.standard_normal((4, 4), np.float32)
    with pytest.raises(BatchMismatchError) as e:
        sb.batch_lower(f, (0, None), check=True)(x, w)
    assert e.value.op_name == "stablehlo.cosine"


def _sorted_callback(x):
    return jax.pure_callback(lambda v: np.sort(v, -1).astype(v.dtype),
                             jax.ShapeDtypeStruct(x.shape, x.dtype), x, vmap_method="sequential")


def test_check_with_typed_keys(rule_override, tmp_path, monkeypatch):
    """check=True with typed PRNG keys in and out (out_axes=-1, the key
    data's dimension is no axis of the key): the per-lane run feeds and
    compares the key data; it raised a TypeError (keys are no NumPy arrays)."""
    monkeypatch.setenv("STABLEHLO_BATCH_REPRO_DIR", str(tmp_path))
    keys = jax.random.split(jax.random.key(3), 4).reshape(2, 2)
    x = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)

    def f(k, x):
        return jnp.cos(x) + jax.random.normal(k[0], (3,)), jax.random.fold_in(k[1], 1), k
    got = sb.batch_lower(f, out_axes=(0, 0, -1), check=True)(keys, x)
    want = jax.vmap(f, out_axes=(0, 0, -1))(keys, x)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-6)
    for g, w in zip(got[1:], want[1:]):
        np.testing.assert_array_equal(jax.random.key_data(g), jax.random.key_data(w))
    rule_override("stablehlo.cosine", _wrong_cosine)
    with pytest.raises(BatchMismatchError) as e:
        sb.batch_lower(f, out_axes=(0, 0, -1), check=True)(keys, x)
    assert e.value.op_name == "stablehlo.cosine"


def test_check_with_a_host_callback(rule_override):
    """check=True of a function with a host callback, which jax.export
    refuses: it raised NotImplementedError; now the function runs per lane
    in jax and a wrong rule is found (without naming the op: no module)."""
    x = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
    keys = jax.random.split(jax.random.key(3), 3)

    def f(x, k):
        return _sorted_callback(jnp.cos(x)), k
    with pytest.warns(sb.FallbackWarning):
        got = sb.batch_lower(f, out_axes=(-1, -1), check=True)(x, keys)
    want = jax.vmap(f, out_axes=(-1, -1))(x, keys)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-6)
    np.testing.assert_array_equal(jax.random.key_data(got[1]), jax.random.key_data(want[1]))
    rule_override("stablehlo.cosine", _wrong_cosine)
    with pytest.warns(sb.FallbackWarning), pytest.raises(
            BatchMismatchError, match=r"results 0, batch size 3\); it has host callbacks"):
        sb.batch_lower(f, out_axes=(-1, -1), check=True)(x, keys)


def test_cli_check_random_and_given_inputs(rule_override, tmp_path, capfd, monkeypatch):
    src = tmp_path / "m.mlir"
    src.write_text(MODULE)
    rc, out, err = _cli(capfd, str(src), "--axis-size=3", "--in-axes=0,none", "--check")
    assert rc == 0 and "tensor<3x3xf32>" in out and err == "", err
    npz = tmp_path / "in.npz"
    np.savez(npz, np.ones((3, 3), np.float32), np.full(3, 2.0, np.float32))
    monkeypatch.setenv("STABLEHLO_BATCH_REPRO_DIR", str(tmp_path))
    rule_override("stablehlo.cosine", _wrong_cosine)
    rc, out, err = _cli(capfd, str(src), "--axis-size=3", "--in-axes=0,none", "--check",
                        f"--inputs={npz}")
    assert rc == 1 and out == "" and len(err.splitlines()) == 1, err
    assert "'stablehlo.cosine'" in err and "model.py:13:4" in err and ".mlir" in err


def test_cli_check_of_a_function_other_than_main(tmp_path, capfd):
    """--check --func=g where @g calls @main: the checked copy renames both
    and every reference to them."""
    src = tmp_path / "calls.mlir"
    src.write_text("""
func.func @main(%x: tensor<3xf32>) -> tensor<3xf32> {
  %0 = stablehlo.sine %x : tensor<3xf32>
  return %0 : tensor<3xf32>
}
func.func @g(%x: tensor<3xf32>) -> tensor<3xf32> {
  %0 = func.call @main(%x) : (tensor<3xf32>) -> tensor<3xf32>
  %1 = stablehlo.add %0, %x : tensor<3xf32>
  return %1 : tensor<3xf32>
}
""")
    rc, out, err = _cli(capfd, str(src), "--func=g", "--axis-size=3", "--check")
    assert rc == 0 and "@main_b1" in out, err


def test_non_array_argument_names_its_path():
    def f(x, d):
        return x
    with pytest.raises(TypeError) as e:
        sb.batch_lower(f)(np.ones((3, 2)), {"w": "oops"})
    msg = _one_line(e.value)
    assert "argument d['w']" in msg and "'oops'" in msg and "not a valid JAX type" in msg
