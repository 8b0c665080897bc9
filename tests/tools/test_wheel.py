"""The wheel installs anywhere: ``python -m build`` gives an sdist and a wheel
whose only top-level package is ``stablehlo_batch`` (py.typed included, no
tests); installed into a fresh venv, away from the source tree and without
the editable install, the CLI prints the version and batches a module, and
``batch_lower`` matches ``jax.vmap``.

The fresh venv borrows this venv's dependencies (jax, numpy) through a .pth
file naming its site-packages, so nothing is downloaded; a directory named
in a .pth file is not a site directory, so the editable install's own .pth
(its import finder) is not run there — the test checks that."""
from __future__ import annotations

import importlib.util
import os
import pathlib
import site
import subprocess
import sys
import tarfile
import textwrap
import zipfile

import pytest

import stablehlo_batch

ROOT = pathlib.Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("build") is None or importlib.util.find_spec("setuptools") is None,
    reason="needs the `build` and `setuptools` packages (pip install -e '.[test]')")


def _run(cmd, cwd, timeout=120, env=None):
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=env)
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    # --no-isolation: the build backend (setuptools) of this venv, no download.
    _run([sys.executable, "-m", "build", "--no-isolation", "--sdist", "--wheel",
          "--outdir", str(out), str(ROOT)], cwd=out, timeout=300)
    wheels, sdists = list(out.glob("*.whl")), list(out.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, os.listdir(out)
    return wheels[0], sdists[0]


def test_wheel_contents(dist):
    wheel, sdist = dist
    version = stablehlo_batch.__version__
    assert wheel.name.startswith(f"stablehlo_batch-{version}-")
    # older setuptools keep the project's dash in the sdist's name
    assert sdist.name.replace("-", "_") == f"stablehlo_batch_{version}.tar.gz"
    with tarfile.open(sdist) as tar:
        members = {m.split("/", 1)[-1] for m in tar.getnames()}
    assert {"pyproject.toml", "passes/engine.py", "stablehlo_batch/py.typed"} <= members
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    assert top == {"stablehlo_batch", f"stablehlo_batch-{version}.dist-info"}, top
    assert "stablehlo_batch/py.typed" in names
    assert "stablehlo_batch/passes/engine.py" in names
    assert "stablehlo_batch/passes/rules/elementwise.py" in names
    assert not [n for n in names if "tests/" in n or "/test_" in n or n.startswith("bench/")]


_PROGRAM = textwrap.dedent("""
    import sys
    import jax, jax.numpy as jnp, numpy as np
    import stablehlo_batch as sb
    import stablehlo_batch.passes
    import importlib.util
    assert importlib.util.find_spec("passes") is None
    assert not any("Editable" in type(f).__name__ or "editable" in repr(f)
                   for f in sys.meta_path), sys.meta_path
    assert sb.__file__.startswith(sys.prefix), sb.__file__
    assert stablehlo_batch.passes.__file__.startswith(sys.prefix)
    f = lambda x, w: jnp.tanh(x @ w)
    x, w = jnp.arange(12.).reshape(3, 4) / 10, jnp.ones((4, 2))
    got = sb.batch_lower(f, in_axes=(0, None))(x, w)
    np.testing.assert_allclose(got, jax.vmap(f, in_axes=(0, None))(x, w), rtol=1e-6)
    print("ok", sb.__version__)
""")

_MODULE = """
func.func @main(%x: tensor<3xf32>, %w: tensor<3xf32>) -> tensor<3xf32> {
  %0 = stablehlo.multiply %x, %w : tensor<3xf32>
  return %0 : tensor<3xf32>
}
"""


def test_wheel_in_a_fresh_venv(dist, tmp_path):
    wheel, _ = dist
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path)
    py = venv / "bin" / "python"
    fresh_site = pathlib.Path(_run([str(py), "-c", "import site; print(site.getsitepackages()[0])"],
                                   cwd=tmp_path).stdout.strip())
    # This venv's dependencies, seen from the fresh one (after its own packages).
    (fresh_site / "borrowed_dependencies.pth").write_text(
        "\n".join(site.getsitepackages()) + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps",
          "--no-index", "--no-compile", "-q", str(wheel)], cwd=tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    opt = str(venv / "bin" / "stablehlo-batch-opt")
    out = _run([opt, "--version"], cwd=tmp_path, env=env).stdout
    assert out.strip() == f"stablehlo-batch-opt {stablehlo_batch.__version__}"
    batched = subprocess.run([opt, "-", "--axis-size=4", "--in-axes=0,none"], input=_MODULE,
                             cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    assert batched.returncode == 0, batched.stderr
    assert "tensor<4x3xf32>" in batched.stdout and batched.stderr == ""
    out = _run([str(py), "-c", _PROGRAM], cwd=tmp_path, env=env).stdout
    assert out.split() == ["ok", stablehlo_batch.__version__]
