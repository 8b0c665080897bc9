"""Regression tests: shrunk examples of bugs the generated and fuzz tests found.

Generated programs (tests/gen_programs.py) are kept as the ``Program`` repr
hypothesis printed, checked with ``check_program``; CLI inputs as the bytes
that broke it.
"""
from __future__ import annotations

import base64
import zlib

import pytest

from gen_programs import Arg, Outcome, Program, Step, check_program  # noqa: F401
from stablehlo_batch import cli
from stablehlo_batch.passes.errors import BatchingError

# Found by test_generated while passes/report.py was being written: nothing
# batched (axis_size only), two outputs, one with out_axes None. The report's
# byte count crashed on every element type.
UNBATCHED_CONSTANTS = Program(
    args=[],
    steps=[Step(op="const", inputs=(), params={"shape": (), "dtype": "float32", "seed": 0}),
           Step(op="const", inputs=(), params={"shape": (), "dtype": "float32", "seed": 0}),
           Step(op="binary", inputs=(1, 0), params={"fn": "add"})],
    outputs=[2, 0], out_axes=[None, 0], size=1, seed=0)


@pytest.mark.parametrize("program", [UNBATCHED_CONSTANTS])
def test_generated_regressions(program):
    assert check_program(program) == Outcome.OK


# The bytecode of lit_tests/control_flow.mlir (as of this test), zlib + base64.
_CONTROL_FLOW_BC = zlib.decompress(base64.b64decode(
    "eNptVm+IVFUUv+edd+f2vF0fr8d42YZt2JZtWZfZVQddTFxxxZHVdFcXdynRYZx9q5OzM9vOTCaRUZJR0oeI"
    "iIiIiIiIiBARCYmIjJSKCo2IioiIipKIir5Y57w3kxXeue/cc+75nb/3vpnZftvlXWb7beO7VuWHVgytOFBp"
    "Chj3QHomBxiiVFb22Uy2t39wOD+ybsOmLdsmpmb2KCziJafg5OFPndW+r6empvxsyEPrZNqrM/nE858xZf87"
    "yEL79hpDX2vTxqFC6ZGVht6wPbIdBvKh7yvrtz36mkrIZjI8ndHr5co+9AQNkwu0DLpB5nu17EGRDKe98p74"
    "3+A9aPOdNdAe+WPJwpnV9IxbmKF1hlYA0yOJn0DTK0csnETTJ9daGHXQ9Mt1FpYjmgG53sKdxAzKDRbOIcph"
    "C1do2WhhjYtyk4WCi2ZYbrbgSDQr5RYLRyUyGWZyO5NjFh6UoYXjMrDwKB0cYXNMZiykZMiZdyrrVGphCYOX"
    "MrjgUuytLok73LSF/czNMbnTJe0u5na5eSa7mRy2MO1aC3e4mpNci/h4KMc9LbcFRlq4lX2MsuUV7KMkWEyx"
    "eA4HmExZOI+09yXS3gcYMMkz2c2EnH+M5PwSam7MCBOqosa442xxFLXcbmGRXdzNoOXsdjluszDEoGkGbWXt"
    "DtaOMjfG3Crm1sR7Th+TzUwOkdYhs30Ol+oQZNohSIG5rcydpNxOUmqnqL+n6TlDigtKaiWV4ua9Tcm+Q8+7"
    "hD1LujdpnSCbnYSdCul2yLjbu0mcIXWFTEoEL9MTEXQP7e3VGTQqAyYD3Toje4yiroHjZKTpURnppWNiSPQU"
    "E+I8xivwGGIkAs/2oiRAIjGVMQ1CnujLtJXSQ+ySyutC9NwflkiYzIJyzy1ByOFkHyr3IhqLuMwR3tiNdOfQ"
    "G7vJUbzc4pCpXbbcSSJ5qLRUGewWujDqaJTSKOWOORig5ycKk1rl0GU2Mp1a45ARvZnurQ7n4g459Arj5KBR"
    "7ltoQql+wssU8Zc44K+KA/2WVJXEsdhFcZYmcSjhGzpxWGFSThxHmVSqE2dJEuePOMxK2rgLPa305/gFfiXC"
    "ZV9zf6gez6S+53Kkcn9EltOpb9vyd3R47jeocHIkUO6JOI138T3Ru+wCGxsCD6Q+JZaa9hlyi/oLn4SJfDGW"
    "+woftuWPUEn3fZQ4uT6t3L3sS5/GM5TIG51Eegpv2wT8DhnTQbpvUk3uWTba1KXcOuUve1/of1H40y9luDgg"
    "7Ahq7Y28MvKqek29Th062Y0yVpzi7F+WktLfklVujkJi9lkxWHiuh64B+Xefl+x6W29H+ZjIFp7uayufiZUT"
    "/cp9iu9DtiW6xw4PYNafPpKRfvZfsR8YOaYeUg9T7EcG27FPoBcU7s1hGmVQuC+Hlqu/Pz6J3cPKXc8HF1bU"
    "ITrweTrwTOGuldilgKzdBvd7T165G1H7KtybL6oSwcoE60pF6HmEImcH0EtRmiDOywnfSpsOeoJsYDIZK43f"
    "pXVXWncPmlAZ7QX0g6DTOtjfqlSblZqYa9XKotEs7a9GB6t1UWYyX59tVSOxGDVbizVRrtdIX2sSM79QWoxE"
    "aXZWNOqLTdGoVsqRqMyJ+Rb5WqgeEYcPVshw9kitNF8pF1sLs6VmVExgnc22Ub1Zih3WG5VmJMqtRrM+XyyX"
    "qlVRLjUi0ajUIhHds1CvRbVmpVQVtegA+RLN+kLxkMgla7Eyv0D4eqvWjBaL1Xp9QewnYTaaTYTKXJEo++O1"
    "UZmNitHcXFRuFilnroC3E09XU1lYrNzNkSjfq5m3SxGH4gYNJVlU6weK9DfhuqXOavqWMdAD0Es3FtPyZkf9"
    "jn8a6AcYIEUOYJiWPMBqflNgLcA6CADegpB/GGEDwEZ6TUP1MxuRr830lyNmxsGMOk88uc+JJf0MKsL8pYwf"
    "GNgJMAVYNzADcDv8DXLhUkY="))


def _flipped(offset, value):
    data = bytearray(_CONTROL_FLOW_BC)
    data[offset] = value
    return bytes(data)


def test_bytecode_that_aborts_the_mlir_reader_is_one_error_line(tmp_path, capfd):
    """Found by fuzz_cli: one changed byte made MLIR's bytecode reader abort
    the process (SIGABRT) -- the CLI died without a word."""
    src = tmp_path / "m.mlirbc"
    src.write_bytes(_flipped(1869, 249))
    rc = cli.main([str(src), "--func=counter_loop", "--axis-size=4"])
    out, err = capfd.readouterr()
    assert rc == 1 and out == "" and len(err.splitlines()) == 1, err
    assert err.startswith("error: cannot parse module: the bytecode is corrupt")


def test_bytecode_that_hangs_the_mlir_reader_times_out():
    """Found by fuzz_cli: one changed byte sent the reader into an endless loop."""
    with pytest.raises(BatchingError, match="did not finish"):
        cli._check_bytecode_in_child(_flipped(165, 7), timeout=3)


def test_intact_bytecode_still_reads(tmp_path, capfd):
    src = tmp_path / "m.mlirbc"
    src.write_bytes(_CONTROL_FLOW_BC)
    rc = cli.main([str(src), "--func=counter_loop", "--axis-size=4", "--in-axes=0",
                   "--out-axes=none,0"])
    out, err = capfd.readouterr()
    assert rc == 0 and "tensor<4x" in out, err


# Found by make fuzz: jax.vmap itself fails on lax.clamp(lo, x, hi) with only
# ``hi`` batched ("clamp requires max.shape == operand.shape"); batch_lower
# batches it, and check_program compares against a per-lane loop instead.
CLAMP_ONLY_MAX_BATCHED = Program(
    args=[Arg(shape=(), dtype="float32", axis=0), Arg(shape=(), dtype="float32", axis=0),
          Arg(shape=(), dtype="int32", axis=None), Arg(shape=(), dtype="int32", axis=0)],
    steps=[Step(op="broadcast", inputs=(0,), params={"shape": (), "dims": ()}),
           Step(op="binary", inputs=(1, 0), params={"fn": "add"}),
           Step(op="clamp", inputs=(2, 2, 3), params={})],
    outputs=[6], out_axes=[0], size=1, seed=0)


@pytest.mark.parametrize("size", [1, 3])
def test_clamp_with_only_max_batched_beats_vmap(size):
    import dataclasses
    program = dataclasses.replace(CLAMP_ONLY_MAX_BATCHED, size=size)
    assert check_program(program) == Outcome.VMAP_FAILED


# Found by fuzz_cli (and marked XFAIL in lit_tests/errors_external_callee.mlir):
# a batched argument passed to a function that is only declared crashed the
# engine with "internal error (IndexError): attempt to access out of bounds block".
EXTERNAL_CALLEE = """
func.func private @external(tensor<3xf32>) -> tensor<3xf32> loc("lib.py":3:1)
func.func @main(%x: tensor<3xf32>, %y: tensor<3xf32>) -> (tensor<3xf32>, tensor<3xf32>) {
  %0 = func.call @external(%x) : (tensor<3xf32>) -> tensor<3xf32> loc("model.py":7:5)
  return %0, %y : tensor<3xf32>, tensor<3xf32>
}
"""


def test_batched_call_to_external_declaration_is_a_typed_error():
    import stablehlo_batch as sb
    with pytest.raises(sb.UnsupportedOpError) as e:
        sb.batch_module(EXTERNAL_CALLEE, [0, None], [0, None], 4)
    msg = str(e.value)
    assert "@external is only declared" in msg and "lib.py:3:1" in msg
    assert msg.endswith("called from model.py:7:5"), msg
    # unbatched, the call is kept as it is
    out = sb.batch_module(EXTERNAL_CALLEE, [None, 0], [None, 0], 4)
    assert "call @external(" in out and "tensor<4x3xf32>" in out



# Found by make fuzz (stop 20, CLI seed 1796665674): bytecode with a flipped
# bit that MLIR's reader refuses ("invalid dialect index") in the child
# check, but that corrupted this process's heap when read again in-process
# (free(): corrupted unsorted chunks). The child's refusal is now the error.
_BAD_DIALECT_INDEX_BC = (
    "eNptkf9qE0EQx3dudjIey7Icx7GEo4QSJITQXwaRIiJSrJQ0Nq3oP/4RLsmZBq6pJBfEB/CvIkX8wzcQRHwCER/J"
    "V3DS2qroct/dme/NZ26Z6+7/OLLd/b2jW+31zfXN8aRU0GSgMAZ0SByT9WmtHjfw1UEVOsbFxvx+/rOexDElrRZU"
    "nfeeXepqPjXBACmJPHgAsJZiDx20EXkPZ2hjqnr4hDah1MNXFB2K5h6+CfGd5d1O3YCwnyX/IvnZlui56I2Ht+J9"
    "EO9czvO2h3eJh/dG+jdEh3VDq6AuF/46PXSl9oA9Esp1EMhdRymEKSVWtpCcbDY0EGgiKWAIAmKZCC6rpZaWBIR6"
    "FhD0CFg/DhAi7BlkvYFsiB+YHRXtPhKWAEnvCdiLmPUYQ8O8YbZcW5lnt0OU5tJYry0p3Ma7ylbuyRfkD+j7SKTv"
    "IGPPG9ZNJIPYUOFuy15cQhjE3oq7gmu4qrhSv4BJ30SqLEP1MVjZblXJhdFKy7nERIPFpCgnU/ViMR2qeZkNivy4"
    "OFUnp6NFkatZXi5mUzV6Pc1OJsP+4uUoK/P+vJgM82vzMpsPs7LMZyobjdQ4K48lXLsy+0tT4iKb9f+h/jT/6n/j"
    "aSSTtcAyW+AuP7SSgAPmDluIARLApoUqQAo/Aae4bDk=")


def test_bytecode_the_child_refuses_is_not_read_again(tmp_path, capfd):
    src = tmp_path / "m.mlirbc"
    src.write_bytes(zlib.decompress(base64.b64decode(_BAD_DIALECT_INDEX_BC)))
    rc = cli.main([str(src), "--func=scalar_dynamic_update_slice", "--axis-size=3",
                   "--in-axes=0,none"])
    out, err = capfd.readouterr()
    assert rc == 1 and out == "" and len(err.splitlines()) == 1, err
    assert err.startswith("error: cannot parse module: invalid dialect index"), err
