"""HLO from any XLA frontend: HLO text and serialized HloModuleProto / HloProto
(as jax gives them and as XLA_FLAGS=--xla_dump_to dumps them) are converted
to StableHLO, batched and checked; HLO can be written back."""
import glob
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import stablehlo_batch as sb
from conftest import assert_same_tree, random_array
from stablehlo_batch import check, cli, module_io, selfcheck


def _f(x, w):
    return jnp.tanh(x @ w).sum(0) if jnp.issubdtype(x.dtype, jnp.floating) else (x @ w).sum(0), \
        jnp.argmax(x, axis=1)


def _hlo(dtype):
    return jax.jit(_f).lower(np.zeros((4, 5), dtype), np.zeros((5, 2), dtype)).compiler_ir("hlo")


def _cli(capfd, *argv):
    rc = cli.main([str(a) for a in argv])
    out, err = capfd.readouterr()
    return rc, out, err


@pytest.mark.parametrize("dtype,in_axes,size", [(np.float32, (0, None), 3),
                                                 (np.int32, (1, 0), 1)])
def test_hlo_text_batches_like_vmap(rng, dtype, in_axes, size):
    text = _hlo(dtype).as_hlo_text()
    assert text.startswith("HloModule")
    out = sb.batch_module(text, list(in_axes), 0, size)  # detected by its first line
    assert "stablehlo.dot_general" in out and "stablehlo.dot " not in out
    x = random_array(rng, (4, 5)[:in_axes[0]] + (size,) + (4, 5)[in_axes[0]:], dtype)
    w = random_array(rng, (size, 5, 2), dtype) if in_axes[1] == 0 else random_array(
        rng, (5, 2), dtype)
    got = selfcheck.run_module(out, [np.asarray(x), np.asarray(w)])
    want = jax.vmap(_f, in_axes)(x, w)
    assert_same_tree(tuple(got), tuple(np.asarray(v) for v in want), rtol=1e-5, atol=1e-5)


def test_hlo_proto_through_the_cli(capfd, tmp_path):
    src = tmp_path / "f.pb"
    src.write_bytes(_hlo(np.float32).as_serialized_hlo_module_proto())
    rc, out, err = _cli(capfd, src, "--axis-size=3", "--in-axes=0,none", "--check")
    assert rc == 0 and err == "", err
    assert "tensor<3x4x5xf32>" in out and "tensor<3x2xf32>" in out
    # by content, with no telling extension, and on stdin
    odd = tmp_path / "f.bin"
    odd.write_bytes(src.read_bytes())
    rc, out2, err = _cli(capfd, odd, "--axis-size=3", "--in-axes=0,none")
    assert rc == 0 and out2 == out, err
    proc = subprocess.run([sys.executable, "-m", "stablehlo_batch.cli", "-", "--axis-size=2"],
                          input=_hlo(np.float32).as_hlo_text().encode(), capture_output=True,
                          timeout=120)
    assert proc.returncode == 0 and b"tensor<2x4x5xf32>" in proc.stdout, proc.stderr


_DUMP = """
import jax, jax.numpy as jnp, numpy as np
def model(x, w, b):
    h = jnp.maximum(x @ w + b, 0.0)
    return jnp.cumsum(h, axis=-1), jnp.sort(h, axis=0)
jax.jit(model)(np.ones((4, 3), np.float32), np.ones((3, 2), np.float32),
               np.ones(2, np.float32))
"""


def test_a_real_xla_dump(capfd, tmp_path):
    """What XLA itself writes (HloProto files, text), before and after its
    optimizations; the batched module can go back out as HLO."""
    env = dict(os.environ, XLA_FLAGS=f"--xla_dump_to={tmp_path} --xla_dump_hlo_as_proto "
                                     "--xla_dump_hlo_as_text --xla_dump_hlo_pass_re=^$")
    subprocess.run([sys.executable, "-c", _DUMP], env=env, check=True, timeout=120,
                   capture_output=True)
    proto, = glob.glob(str(tmp_path / "*jit_model.before_optimizations.hlo.pb"))
    text, = glob.glob(str(tmp_path / "*jit_model.before_optimizations.txt"))
    after, = glob.glob(str(tmp_path / "*jit_model.*after_optimizations.hlo.pb"))
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((3, 4, 3), np.float32), rng.standard_normal((3, 2), np.float32)
    b = rng.standard_normal((2, 3), np.float32)
    want = jax.vmap(jax.jit(lambda x, w, b: (jnp.cumsum(jnp.maximum(x @ w + b, 0.0), axis=-1),
                                             jnp.sort(jnp.maximum(x @ w + b, 0.0), axis=0))),
                    (0, None, 1), (0, 2))(x, w, b)
    for src in (proto, text):
        out_hlo = tmp_path / "batched.hlo"
        rc, out, err = _cli(capfd, src, "--axis-size=3", "--in-axes=0,none,1",
                            "--out-axes=0,2", "--check", "-o", out_hlo)
        assert rc == 0 and err == "", err
        hlo_text = out_hlo.read_text()
        assert hlo_text.startswith("HloModule") and "f32[3,4,3]" in hlo_text
        got = selfcheck.run_module(module_io.module_to_text(module_io.parse_module(hlo_text)),
                               [x, w, b])
        assert_same_tree(tuple(got), tuple(np.asarray(v) for v in want), rtol=1e-5,
                         atol=1e-5)
    rc, out, err = _cli(capfd, after, "--axis-size=3")
    assert rc == 1 and err.count("\n") == 1 and "mhlo.fusion" in err, err
    assert "before_optimizations" in err


@pytest.mark.parametrize("name,data,needle", [
    ("bad.hlo", b"HloModule m, garbage\n", "error: cannot read HLO: INVALID_ARGUMENT: Syntax "
                                           "error when trying to parse the text as a HloModule"),
    ("bad.pb", bytes(range(7, 250)), "error: cannot read HLO: not HLO text and not a "
                                     "serialized HloModuleProto or HloProto"),
    ("empty.pb", b"", "error: cannot read HLO: not HLO text"),
])
def test_malformed_hlo_is_one_error_line(capfd, tmp_path, name, data, needle):
    src = tmp_path / name
    src.write_bytes(data)
    rc, out, err = _cli(capfd, src, "--axis-size=2")
    assert rc == 1 and out == "" and err.count("\n") == 1 and err.startswith(needle), err


def test_without_the_private_converter(monkeypatch):
    from jaxlib import _jax
    monkeypatch.delattr(_jax.mlir, "hlo_to_stablehlo")
    with pytest.raises(module_io.ModuleParseError, match="this jaxlib has no "
                                                          "HLO-to-StableHLO converter"):
        module_io.parse_hlo(_hlo(np.float32).as_hlo_text())
