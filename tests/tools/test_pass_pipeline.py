"""The batching as a Python MLIR pass inside a PassManager pipeline, and the
CLI's --pre-pipeline / --post-pipeline."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jaxlib.mlir import ir, passmanager

import stablehlo_batch as sb
from conftest import assert_same_tree
from stablehlo_batch import check, cli, module_io, selfcheck


def _model(params, x):
    for w, b in params:
        x = jax.nn.relu(x @ w + b)
    return jax.nn.log_softmax(x), jnp.argmax(x)


PARAMS = [(np.full((8, 8), 0.1, np.float32), np.zeros(8, np.float32)) for _ in range(2)]
IN_AXES = [None] * 4 + [0]


def _text():
    return jax.jit(_model).lower(PARAMS, np.zeros(8, np.float32)).as_text()


def _count(module) -> int:
    n = [0]

    def visit(op):
        n[0] += op.name not in ("builtin.module", "func.func", "func.return",
                                "stablehlo.return")
        return ir.WalkResult.ADVANCE
    module.operation.walk(visit)
    return n[0]


def test_pass_in_a_pipeline_equals_vmap_and_is_smaller():
    module = module_io.parse_module(_text())
    bp = sb.batching_pass(in_axes=IN_AXES, out_axes=0, axis_size=3)
    with module.context:
        pm = passmanager.PassManager.parse("builtin.module(canonicalize)")
        bp.add_to(pm)
        pm.add("canonicalize,cse")
        pm.run(module.operation)
    assert bp.error is None and bp.report is not None
    assert module.operation.verify()
    alone = module_io.parse_module(sb.batch_module(_text(), IN_AXES, 0, 3))
    assert _count(module) < _count(alone)  # cse merges the constants batching repeats
    xs = np.random.default_rng(0).standard_normal((3, 8)).astype(np.float32)
    got = selfcheck.run_module(module_io.module_to_text(module),
                           [a for wb in PARAMS for a in wb] + [xs])
    want = jax.vmap(_model, (None, 0))(PARAMS, xs)
    assert_same_tree(tuple(got), tuple(np.asarray(w) for w in want), rtol=1e-5, atol=1e-5)


def test_a_failing_batch_fails_the_pipeline_with_its_message():
    module = module_io.parse_module(_text())
    bp = sb.batching_pass(in_axes=[0, 0], axis_size=3)  # 5 arguments
    with module.context:
        pm = passmanager.PassManager("builtin.module")
        bp.add_to(pm)
        with pytest.raises(ir.MLIRError) as e:
            pm.run(module.operation)
    assert isinstance(bp.error, sb.AxisSpecError)
    assert any(d.message.startswith("stablehlo-batch: ") for d in e.value.error_diagnostics)


def test_cli_pipelines(capfd, tmp_path):
    src = tmp_path / "mlp.mlir"
    src.write_text(_text())
    axes = ["--axis-size=3", "--in-axes=none,none,none,none,0"]
    rc = cli.main([str(src), *axes, "--pre-pipeline=canonicalize",
                   "--post-pipeline=builtin.module(canonicalize,cse)", "--check", "--report"])
    out, err = capfd.readouterr()
    assert rc == 0 and "tensor<3x8xf32>" in out, err
    assert err.startswith("batching report for @main (batch size 3)"), err
    assert _count(module_io.parse_module(out)) < _count(
        module_io.parse_module(sb.batch_module(_text(), IN_AXES, 0, 3)))
    rc = cli.main([str(src), *axes, "--post-pipeline=no-such-pass"])
    out, err = capfd.readouterr()
    assert rc == 1 and err.count("\n") == 1 and err.startswith(
        "error: --post-pipeline: MLIR Textual PassPipeline Parser"), err
    rc = cli.main([str(src), "--axis-size=3", "--in-axes=0,0", "--pre-pipeline=cse"])
    out, err = capfd.readouterr()
    assert rc == 1 and err.count("\n") == 1 and "in_axes" in err, err
