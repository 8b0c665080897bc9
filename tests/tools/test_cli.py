"""stablehlo-batch-opt: formats in, text out, one-line errors and exit codes."""
import subprocess
import sys

import pytest

from stablehlo_batch import cli, module_io

MODULE = """
func.func @main(%x: tensor<3xf32>, %w: tensor<3xf32>) -> tensor<3xf32> {
  %0 = stablehlo.multiply %x, %w : tensor<3xf32>
  return %0 : tensor<3xf32>
}
"""


def run(args, stdin=b""):
    proc = subprocess.run([sys.executable, "-m", "stablehlo_batch.cli", *args],
                          input=stdin, capture_output=True, timeout=120)
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode()


def test_stdin_text_to_stdout():
    rc, out, err = run(["-", "--axis-size=8", "--in-axes=0,none", "--out-axes=0"],
                       MODULE.encode())
    assert rc == 0, err
    assert "tensor<8x3xf32>" in out and "broadcast_in_dim" in out
    assert module_io.parse_module(out).operation.verify()


def test_check_prints_nothing_on_stderr():
    """--check compiles and runs: XLA's start-up INFO lines must not reach
    stderr (the CLI sets XLA's log level before jax is imported)."""
    env = {k: v for k, v in __import__("os").environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    proc = subprocess.run([sys.executable, "-m", "stablehlo_batch.cli", "-", "--axis-size=2",
                           "--in-axes=0,none", "--check"], input=MODULE.encode(),
                          capture_output=True, timeout=120, env=env)
    assert proc.returncode == 0 and proc.stderr.decode() == "", proc.stderr.decode()


def test_file_bytecode_and_output_file(tmp_path):
    src = tmp_path / "m.mlirbc"
    src.write_bytes(module_io.module_to_bytecode(module_io.parse_module(MODULE)))
    dst = tmp_path / "out.mlir"
    rc, out, err = run([str(src), "--axis-size=2", "--in-axes=1,0", "-o", str(dst)])
    assert rc == 0, err
    text = dst.read_text()
    assert "tensor<3x2xf32>" in text and "stablehlo.transpose" in text


def test_portable_artifact_input(tmp_path):
    src = tmp_path / "m.vhlo"
    src.write_bytes(module_io.module_to_portable_artifact(module_io.parse_module(MODULE)))
    rc, out, err = run([str(src), "--axis-size=4"])
    assert rc == 0, err
    assert "tensor<4x3xf32>" in out


@pytest.mark.parametrize("args,stdin,needle", [
    (["-", "--axis-size=2"], b"not mlir", "cannot parse module"),
    (["-", "--axis-size=2", "--in-axes=0,0,0"], MODULE.encode(), "in_axes has 3 entries"),
    (["-", "--axis-size=2", "--in-axes=x"], MODULE.encode(), "invalid axis"),
    (["-", "--axis-size=2", "--out-axes=none"], MODULE.encode(), "out_axes is None"),
    (["-", "--axis-size=2", "--func=nope"], MODULE.encode(), "@nope not found"),
    (["/nonexistent/file.mlir", "--axis-size=2"], b"", "No such file"),
    (["-"], MODULE.encode(), "--axis-size"),
])
def test_errors_are_one_line_and_exit_1(args, stdin, needle):
    rc, out, err = run(args, stdin)
    assert rc == 1
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert needle in lines[0]


def test_unsupported_op_reports_op_and_location():
    text = """func.func @main(%x: tensor<3xf32>) -> tensor<3xf32> {
  %0 = stablehlo.custom_call @foo(%x) : (tensor<3xf32>) -> tensor<3xf32>
  return %0 : tensor<3xf32>
}"""
    rc, out, err = run(["-", "--axis-size=2", "--strict"], text.encode())
    assert rc == 1
    assert "error: cannot batch 'stablehlo.custom_call'" in err
    assert "-:2:8" in err
    # without --strict it runs once per lane and warns in one line
    rc, out, err = run(["-", "--axis-size=2"], text.encode())
    assert rc == 0 and "stablehlo.while" in out
    assert err.startswith("warning: 'stablehlo.custom_call @foo'") and "-:2:8" in err
    assert len(err.strip().splitlines()) == 1


def test_debug_prints_traceback():
    rc, out, err = run(["-", "--axis-size=2", "--in-axes=0,0,0", "--debug"], MODULE.encode())
    assert rc == 1 and "Traceback" in err and err.strip().splitlines()[-1].startswith("error:")


def test_main_in_process(capsys):
    import io
    sys_stdin = sys.stdin
    try:
        sys.stdin = io.TextIOWrapper(io.BytesIO(MODULE.encode()))
        assert cli.main(["-", "--axis-size=3", "--in-axes=none,0"]) == 0
    finally:
        sys.stdin = sys_stdin
    assert "tensor<3x3xf32>" in capsys.readouterr().out
