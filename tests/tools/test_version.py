"""One version number: pyproject.toml's, read back by the package from the
installed metadata and printed by ``stablehlo-batch-opt --version``."""
import pathlib

import pytest

import stablehlo_batch
from stablehlo_batch import cli

tomllib = pytest.importorskip("tomllib")  # Python 3.11+
ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_one_version_number(capsys):
    with open(ROOT / "pyproject.toml", "rb") as f:
        version = tomllib.load(f)["project"]["version"]
    assert stablehlo_batch.__version__ == version
    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"stablehlo-batch-opt {version}"
