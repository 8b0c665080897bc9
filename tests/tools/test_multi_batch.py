"""Several batch dimensions at once (``axis_size=(10, 3)``, ``--axis-size=10,3``):
the same as nested jax.vmap, innermost last, with axes per level."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import stablehlo_batch as sb
from conftest import assert_same_tree, random_array
from stablehlo_batch.passes import builders as bld
from stablehlo_batch import check, cli, module_io, selfcheck


def _f(x, w):
    h = jnp.tanh(x @ w) if jnp.issubdtype(x.dtype, jnp.floating) else x @ w
    return h * 2, h.sum(0)


def _nested_vmap(fn, levels, sizes):
    """jax.vmap once per level, the innermost (last) applied first."""
    for (ins, outs), n in reversed(list(zip(levels, sizes))):
        fn = jax.vmap(fn, in_axes=ins, out_axes=outs, axis_size=n)
    return fn


def _text(fn, *example):
    return jax.jit(fn).lower(*example).as_text()


# (in_axes per level, out_axes per level, sizes), outer level first
CASES = [
    ([(0, None), (1, 0)], [(0, 1), (0, 0)], (3, 1)),    # weight batched only inside
    ([(None, 0), (0, None)], [(1, 0), (-1, 0)], (1, 3)),  # size 1, negative out axis
    ([0, 0], [0, 0], (2, 3)),                            # like enzyme.batch's batch_shape
]


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.int32])
@pytest.mark.parametrize("k", range(len(CASES)))
def test_batch_module_equals_nested_vmap(rng, dtype, k):
    in_levels, out_levels, sizes = CASES[k]
    x1, w1 = np.zeros((4, 5), dtype), np.zeros((5, 2), dtype)
    text = _text(_f, x1, w1)
    levels = list(zip(in_levels, out_levels))
    want_fn = _nested_vmap(_f, levels, sizes)
    args = []
    for i, base in enumerate((x1.shape, w1.shape)):  # the shapes nested vmap takes
        shape = list(base)
        for ins, n in reversed(list(zip(in_levels, sizes))):
            d = ins if ins is None or isinstance(ins, int) else ins[i]
            if d is not None:
                shape.insert(d % (len(shape) + 1), n)
        args.append(random_array(rng, shape, dtype))
    want = want_fn(*args)
    out = sb.batch_module(text, list(in_levels), list(out_levels), axis_size=sizes)
    assert module_io.parse_module(out).operation.verify()
    got = selfcheck.run_module(out, [np.asarray(a) for a in args])
    assert_same_tree(tuple(got), tuple(np.asarray(w) for w in want), rtol=1e-5, atol=1e-5)


def test_three_dims_and_the_check():
    text = _text(lambda x: (jnp.cumsum(x, 0), x.max()), np.zeros(5, np.float32))
    check.check_module(text, 0, 0, (2, 3, 2))
    out = sb.batch_module(text, 0, 0, axis_size=(2, 3, 2))
    assert "tensor<2x3x2x5xf32>" in out and "tensor<2x3x2xf32>" in out


def test_axes_that_do_not_fit_the_levels():
    text = _text(_f, np.zeros((4, 5), np.float32), np.zeros((5, 2), np.float32))
    with pytest.raises(sb.AxisSpecError, match=r"one entry per batch dimension .* got 3 "
                                               r"entries for 2 dimensions"):
        sb.batch_module(text, [0, None, 0], 0, axis_size=(2, 3))


def _wrong_cosine(fb, op, flags):
    new = bld.create("stablehlo.sine", [op.operands[0].type], [op.operands[0]]).result
    return [(new, True)]


def test_a_wrong_rule_is_found_at_its_dimension(monkeypatch, tmp_path, rule_override):
    monkeypatch.setenv("STABLEHLO_BATCH_REPRO_DIR", str(tmp_path))
    rule_override("stablehlo.cosine", _wrong_cosine)
    text = _text(lambda x: jnp.cos(x) + 1, np.zeros(3, np.float32))
    with pytest.raises(check.BatchMismatchError) as e:
        check.check_module(text, 0, 0, (2, 3))
    assert e.value.op_name == "stablehlo.cosine"
    assert str(e.value).startswith("--check (batch dimension 1, size 3) failed:")


MODULE = """
func.func @main(%x: tensor<3xf32>, %w: tensor<3xf32>) -> tensor<3xf32> {
  %0 = stablehlo.multiply %x, %w : tensor<3xf32>
  %1 = stablehlo.sine %0 : tensor<3xf32>
  return %1 : tensor<3xf32>
}
"""


def test_cli_axis_size_list_with_axes_per_dimension(capfd, tmp_path):
    src = tmp_path / "m.mlir"
    src.write_text(MODULE)
    # outer 4: x at 0, w unbatched; inner 3: x at 1 of its 3x3 lane, w at 0
    rc = cli.main([str(src), "--axis-size=4,3", "--in-axes=0,none", "--in-axes=1,0",
                   "--out-axes=0", "--out-axes=1", "--check", "--report"])
    out, err = capfd.readouterr()
    assert rc == 0, err
    assert "(%arg0: tensor<4x3x3xf32>, %arg1: tensor<3x3xf32>) -> tensor<4x3x3xf32>" in out
    assert "batch dimension 0 (size 4):" in err and "batch dimension 1 (size 3):" in err
    # one flag: every dimension
    rc = cli.main([str(src), "--axis-size=2,3", "--check"])
    out, err = capfd.readouterr()
    assert rc == 0 and err == "" and "tensor<2x3x3xf32>" in out, err
    rc = cli.main([str(src), "--axis-size=2,3", "--in-axes=0", "--in-axes=0", "--in-axes=0"])
    out, err = capfd.readouterr()
    assert rc == 1 and err == ("error: --in-axes is given 3 times; --axis-size has 2 "
                               "dimensions: give it once (every dimension) or once per "
                               "dimension, outer first\n")


def test_cli_exported_input_with_two_dims(tmp_path, capfd):
    exp = jax.export.export(jax.jit(_f))(np.zeros((4, 5), np.float32),
                                         np.zeros((5, 2), np.float32))
    src, dst = tmp_path / "f.jax_exported", tmp_path / "f_b.jax_exported"
    src.write_bytes(exp.serialize())
    rc = cli.main([str(src), "--axis-size=2,3", "--in-axes=0,none", "--in-axes=0,0",
                   "-o", str(dst)])
    assert rc == 0, capfd.readouterr().err
    x = np.random.default_rng(1).standard_normal((2, 3, 4, 5)).astype(np.float32)
    w = np.random.default_rng(2).standard_normal((3, 5, 2)).astype(np.float32)
    got = jax.export.deserialize(dst.read_bytes()).call(x, w)
    want = _nested_vmap(_f, [((0, None), 0), ((0, 0), 0)], (2, 3))(x, w)
    assert_same_tree(got, want, rtol=1e-5, atol=1e-5)


def test_cli_check_of_an_exported_function(tmp_path, capfd, monkeypatch, rule_override):
    """--check runs exported inputs too (it was silently skipped before)."""
    exp = jax.export.export(jax.jit(lambda x: jnp.cos(x) * 2))(np.zeros(3, np.float32))
    src = tmp_path / "c.jax_exported"
    src.write_bytes(exp.serialize())
    rc = cli.main([str(src), "--axis-size=2,3", "--check", "-o", str(tmp_path / "o.mlir")])
    assert rc == 0, capfd.readouterr().err
    rule_override("stablehlo.cosine", _wrong_cosine)
    rc = cli.main([str(src), "--axis-size=3", "--check", "-o", str(tmp_path / "o.mlir")])
    err = capfd.readouterr().err
    assert rc == 1 and err.startswith("error: --check failed: the batched function differs "
                                      "from the exported one run once per lane"), err
