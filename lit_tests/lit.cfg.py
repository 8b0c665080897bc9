# lit configuration: every .mlir file here is a test run with lit's internal shell.
import os

import lit.formats

config.name = "stablehlo-batch"
config.test_format = lit.formats.ShTest()
config.suffixes = [".mlir"]
config.test_source_root = os.path.dirname(__file__)
config.excludes = ["Inputs"]
config.environment["PATH"] = os.environ.get("PATH", "")
for var in ("HOME", "PYTHONPATH", "JAX_PLATFORMS", "XLA_FLAGS"):
    if var in os.environ:
        config.environment[var] = os.environ[var]
config.environment.setdefault("JAX_PLATFORMS", "cpu")
