"""stablehlo-batch-opt --strategy: the cost model's or the measured choice,
emitted as a module (a stablehlo.while for a loop), against jax.vmap."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stablehlo_batch import cli, costmodel, selfcheck, tuning
from tests.conftest import assert_same_tree


def _lane_gemm(w, x):
    return jnp.tanh(x @ w)


def _per_example_grad(w, x):  # outer products per lane: chunks of 32
    return jax.grad(lambda w: jnp.sum(jnp.tanh(x @ w) ** 2))(w)


ONE = {  # per-example shapes
    _lane_gemm: ((128, 128), (96, 128)),
    _per_example_grad: ((128, 128), (128,)),
}


def _write(tmp_path, fn, kind):
    specs = [jax.ShapeDtypeStruct(s, jnp.float32) for s in ONE[fn]]
    if kind == "mlir":
        path = tmp_path / "f.mlir"
        path.write_text(jax.jit(fn).lower(*specs).as_text())
    else:
        path = tmp_path / "f.exported"
        path.write_bytes(jax.export.export(jax.jit(fn))(*specs).serialize())
    return path


def _args(fn, batch, in_axes, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for s, d in zip(ONE[fn], in_axes):
        shape = list(s)
        shape.insert(d, batch)
        out.append((rng.standard_normal(shape) / 8).astype(np.float32))
    return out


def _run_output(path, kind, args):
    if kind == "mlir":
        return selfcheck.run_module(path.read_text(), args)
    exp = jax.export.deserialize(path.read_bytes())
    return jax.tree_util.tree_leaves(exp.call(*args))


@pytest.mark.parametrize("kind", ["mlir", "exported"])
@pytest.mark.parametrize("fn,batch,in_axes,out_axis,chunk", [
    (_lane_gemm, 128, (0, 0), 0, 1),                       # the lane loop
    (_lane_gemm, 130, (2, 1), 1, 1),                       # at other axes
    (_per_example_grad, 70, (0, 0), 0, costmodel.OUTER_CHUNK),  # chunks + remainder
    (_lane_gemm, 8, (0, 0), 0, None),                      # small: the full batch
])
def test_model_choice_equals_vmap(tmp_path, capsys, kind, fn, batch, in_axes, out_axis, chunk):
    src = _write(tmp_path, fn, kind)
    dst = tmp_path / ("out.mlir" if kind == "mlir" else "out.exported")
    argv = [str(src), f"--axis-size={batch}", "--in-axes=" + ",".join(map(str, in_axes)),
            f"--out-axes={out_axis}", "--strategy=model", "--report", "-o", str(dst)]
    assert cli.main(argv) == 0, capsys.readouterr().err
    err = capsys.readouterr().err
    name = tuning.strategy_name(chunk)
    assert f"strategy: {name} -- cost model, not measured" in err, err
    text = dst.read_text() if kind == "mlir" else \
        jax.export.deserialize(dst.read_bytes()).mlir_module()
    assert ("stablehlo.while" in text) == (chunk is not None)
    args = _args(fn, batch, in_axes)
    want = jax.vmap(fn, in_axes=in_axes, out_axes=out_axis)(*args)
    assert_same_tree(_run_output(dst, kind, args)[0], want, rtol=1e-5, atol=1e-5)
    # the default (--strategy=full): the full batch, the same values
    full = tmp_path / ("full.mlir" if kind == "mlir" else "full.exported")
    assert cli.main(argv[:-4] + ["-o", str(full)]) == 0
    text = full.read_text() if kind == "mlir" else \
        jax.export.deserialize(full.read_bytes()).mlir_module()
    assert "stablehlo.while" not in text
    assert_same_tree(_run_output(full, kind, args)[0], want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["mlir", "exported"])
def test_measure_on_inputs_equals_vmap(tmp_path, capsys, monkeypatch, kind):
    """--tune measures on --inputs (the measurement replaced: chunks of 8
    win) and emits the winner."""
    monkeypatch.setenv(tuning.ENV_DIR, str(tmp_path / "records"))
    tuning.clear_memory()

    def fake(calls, args, kwargs, **kw):
        for fn in calls.values():
            fn(*args, **kwargs)
        med = {n: 0.5 if n == "chunks of 8" else 1.0 for n in calls}
        return med, dict(med), {}, {n: 0.0 for n in calls}, 1
    monkeypatch.setattr(tuning, "measure", fake)
    src = _write(tmp_path, _lane_gemm, kind)
    args = _args(_lane_gemm, 20, (0, 0), seed=1)
    np.savez(tmp_path / "in.npz", *args)
    dst = tmp_path / ("out.mlir" if kind == "mlir" else "out.exported")
    assert cli.main([str(src), "--axis-size=20", "--tune", "--report",
                     f"--inputs={tmp_path / 'in.npz'}", "-o", str(dst)]) == 0
    err = capsys.readouterr().err
    assert "strategy: chunks of 8 -- measured on" in err, err
    text = dst.read_text() if kind == "mlir" else \
        jax.export.deserialize(dst.read_bytes()).mlir_module()
    assert "stablehlo.while" in text
    assert_same_tree(_run_output(dst, kind, args)[0], jax.vmap(_lane_gemm)(*args),
                     rtol=1e-5, atol=1e-5)
    tuning.clear_memory()


def test_strategy_errors(tmp_path, capsys):
    src = _write(tmp_path, _lane_gemm, "mlir")
    assert cli.main([str(src), "--axis-size=128", "--strategy=model", "--func=other"]) == 1
    assert "error:" in capsys.readouterr().err
    assert cli.main([str(src), "--axis-size=128", "--strategy=model",
                     "--post-pipeline=cse"]) == 1
    assert "cannot be combined" in capsys.readouterr().err


def test_module_without_a_loop_keeps_the_full_batch(tmp_path, capsys):
    """A module the loop cannot wrap (a token argument): the full batch,
    the same output as --strategy=full, and the reason in the report."""
    src = tmp_path / "tok.mlir"
    src.write_text("""
func.func @main(%t: !stablehlo.token, %x: tensor<3xf32>) -> (!stablehlo.token, tensor<3xf32>) {
  %0 = stablehlo.multiply %x, %x : tensor<3xf32>
  return %t, %0 : !stablehlo.token, tensor<3xf32>
}
""")
    argv = [str(src), "--axis-size=4", "--in-axes=none,0", "--out-axes=none,0"]
    assert cli.main(argv) == 0
    full = capsys.readouterr().out
    assert cli.main(argv + ["--strategy=model", "--report"]) == 0
    out, err = capsys.readouterr()
    assert out == full
    assert "strategy: full batch -- nothing to choose: no loop for this module" in err
