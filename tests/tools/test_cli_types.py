"""Every StableHLO element type through the batcher and --check, in jax's
default 32-bit mode: 64-bit modules turn on x64 for the check only, float8 /
int2 / int4 / complex / bool inputs and comparisons work, nothing but
``error:`` / ``warning:`` lines reach stderr, and a check failure says what
was being checked."""
import os
import subprocess
import sys
import warnings

import jax
import numpy as np

from stablehlo_batch import check, cli, module_io, selfcheck

# f6 types: XLA's CPU backend cannot compile any op on them (tested below).
RUNNABLE = [t for t in selfcheck.ELEMENT_TYPES if not t.startswith("f6E")]


def _all_types_module(types):
    """compare / select / maximum / transpose on a pair of each type."""
    args, body, rets, rtypes = [], [], [], []
    for k, t in enumerate(types):
        T = f"tensor<2x3x{t}>"
        args += [f"%a{k}: {T}", f"%b{k}: {T}"]
        body += [f"%c{k} = stablehlo.compare EQ, %a{k}, %b{k} : ({T}, {T}) -> tensor<2x3xi1>",
                 f"%s{k} = stablehlo.select %c{k}, %a{k}, %b{k} : tensor<2x3xi1>, {T}"]
        last = f"%s{k}"
        if t != "i1":
            body.append(f"%m{k} = stablehlo.maximum %s{k}, %a{k} : {T}")
            last = f"%m{k}"
        body.append(f"%t{k} = stablehlo.transpose {last}, dims = [1, 0] : ({T}) -> "
                    f"tensor<3x2x{t}>")
        rets += [f"%t{k}", f"%c{k}"]
        rtypes += [f"tensor<3x2x{t}>", "tensor<2x3xi1>"]
    return (f"func.func @main({', '.join(args)}) -> ({', '.join(rtypes)}) {{\n  "
            + "\n  ".join(body) + f"\n  return {', '.join(rets)} : {', '.join(rtypes)}\n}}\n")


def _cli(capfd, *argv):
    rc = cli.main(list(argv))
    out, err = capfd.readouterr()
    return rc, out, err


def test_every_element_type_checks_without_x64():
    assert not jax.config.x64_enabled
    text = _all_types_module(RUNNABLE)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        inputs = check.check_module(text, [0, None] * len(RUNNABLE),
                                    [1, 0] * len(RUNNABLE), 2)
    assert [str(w.message) for w in caught] == []
    assert not jax.config.x64_enabled  # the caller's setting is untouched
    dtypes = {str(x.dtype) for x in inputs}
    assert {"float64", "int64", "uint64", "complex128", "float8_e4m3fn", "float8_e8m0fnu",
            "int2", "uint4", "bool", "bfloat16", "float4_e2m1fn"} <= dtypes
    # batched inputs at axis 0, unbatched ones as they are
    assert inputs[0].shape == (2, 2, 3) and inputs[1].shape == (2, 3)


def test_comparisons_of_narrow_floats_allow_their_precision():
    bf16, f8 = selfcheck.element_dtype("bf16"), selfcheck.element_dtype("f8E4M3FN")
    x = np.array([1.0, 2.0, 3.0])
    assert selfcheck.close(x.astype(bf16), (x * (1 + 2 ** -8)).astype(bf16), 1e-5, 1e-5)
    assert not selfcheck.close(x.astype(bf16), (x * 1.1).astype(bf16), 1e-5, 1e-5)
    assert selfcheck.close(x.astype(f8), x.astype(f8), 1e-5, 1e-5)
    assert not selfcheck.close(x.astype(f8), x.astype(selfcheck.element_dtype("f8E5M2")), 1e-5,
                            1e-5)  # dtypes differ
    nan = np.array([np.nan], selfcheck.element_dtype("f8E5M2"))
    assert selfcheck.close(nan, nan, 1e-5, 1e-5)


def test_f6_types_on_cpu_are_one_plain_error(capfd, tmp_path):
    src = tmp_path / "f6.mlir"
    src.write_text(_all_types_module(["f6E2M3FN"]))
    rc, out, err = _cli(capfd, str(src), "--axis-size=2", "--check")
    assert rc == 1 and err.count("\n") == 1, err
    assert err.startswith("error: --check: reading the arguments of @main: XLA's CPU "
                          "backend cannot compile ops on f6E2M3FN"), err


MODULE_64 = """
func.func @main(%x: tensor<3xf64>, %n: tensor<i64>, %u: tensor<2xui64>,
                %c: tensor<3xcomplex<f64>>) -> (tensor<3xf64>, tensor<2xui64>, tensor<3xcomplex<f64>>) {
  %0 = stablehlo.convert %n : (tensor<i64>) -> tensor<f64>
  %1 = stablehlo.broadcast_in_dim %0, dims = [] : (tensor<f64>) -> tensor<3xf64>
  %2 = stablehlo.multiply %x, %1 : tensor<3xf64>
  %3 = stablehlo.add %u, %u : tensor<2xui64>
  %4 = stablehlo.multiply %c, %c : tensor<3xcomplex<f64>>
  return %2, %3, %4 : tensor<3xf64>, tensor<2xui64>, tensor<3xcomplex<f64>>
}
"""


def test_64_bit_module_checks_from_a_plain_shell(tmp_path):
    """No JAX_ENABLE_X64 in the environment: the CLI's check turns x64 on by
    itself, and stderr stays empty (no truncation warnings)."""
    src = tmp_path / "m64.mlir"
    src.write_text(MODULE_64)
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}
    proc = subprocess.run([sys.executable, "-m", "stablehlo_batch.cli", str(src),
                           "--axis-size=3", "--in-axes=0,none,0,1", "--check"],
                          capture_output=True, timeout=120, env=env)
    assert proc.returncode == 0 and proc.stderr.decode() == "", proc.stderr.decode()
    out = proc.stdout.decode()
    assert "tensor<3x3xf64>" in out and "tensor<3x3xcomplex<f64>>" in out


RNG_F64 = """
func.func @main(%seed: tensor<2xui64>) -> (tensor<2xui64>, tensor<f64>) {
  %state, %output = stablehlo.rng_bit_generator %seed, algorithm = THREE_FRY : (tensor<2xui64>) -> (tensor<2xui64>, tensor<f64>)
  return %state, %output : tensor<2xui64>, tensor<f64>
}
"""


def test_rng_bit_generator_with_a_float_output(capfd, tmp_path):
    """XLA would give the f64 output the type u64 (and the per-lane loop
    would not compile): the generator makes u64 bits, bitcast to f64."""
    src = tmp_path / "rng.mlir"
    src.write_text(RNG_F64)
    rc, out, err = _cli(capfd, str(src), "--axis-size=3", "--check")
    assert rc == 0 and err == "", err
    assert "tensor<3xf64>" in out and "stablehlo.bitcast_convert" in out
    assert "-> (tensor<2xui64>, tensor<ui64>)" in out
    # the per-lane reference runs the same bits: lane i equals the unbatched run
    seeds = np.arange(6, dtype=np.uint64).reshape(3, 2)
    with jax.enable_x64(True):
        got = selfcheck.run_module(out, [seeds])
        want = [selfcheck.run_module(RNG_F64, [s]) for s in seeds]
    assert got[1].dtype == np.float64 and want[0][1].dtype == np.float64
    np.testing.assert_array_equal(got[1].view(np.uint64),
                                  np.stack([w[1] for w in want]).view(np.uint64))


GPU_ONLY = """
func.func @main(%arg0: tensor<4x4xf32>) -> tensor<4x4xf32> {
  %0:3 = stablehlo.custom_call @cusolver_getrf_ffi(%arg0) {api_version = 4 : i32, operand_layouts = [dense<[1, 0]> : tensor<2xindex>], output_operand_aliases = [#stablehlo.output_operand_alias<output_tuple_indices = [0], operand_index = 0, operand_tuple_indices = []>], result_layouts = [dense<[1, 0]> : tensor<2xindex>, dense<[0]> : tensor<1xindex>, dense<[]> : tensor<0xindex>]} : (tensor<4x4xf32>) -> (tensor<4x4xf32>, tensor<4xi32>, tensor<i32>)
  return %0#0 : tensor<4x4xf32>
}
"""


def test_gpu_only_kernel_is_one_plain_line(capfd, tmp_path):
    src = tmp_path / "lu.mlir"
    src.write_text(GPU_ONLY)
    rc, out, err = _cli(capfd, str(src), "--axis-size=2", "--check")
    assert rc == 1 and out == "" and err.count("\n") == 1, err
    assert err == ("error: --check needs the platform the module was lowered for: it "
                   "calls the kernel 'cusolver_getrf_ffi', which this machine (cpu) does "
                   "not have\n")
    rc, out, err = _cli(capfd, str(src), "--axis-size=2")  # batching alone works here
    assert rc == 0 and "tensor<2x4x4xf32>" in out, err


def test_inputs_of_the_wrong_dtype_say_which_and_what(capfd, tmp_path):
    src = tmp_path / "m64.mlir"
    src.write_text(MODULE_64)
    npz = tmp_path / "in.npz"
    np.savez(npz, np.zeros((3, 3), np.float32), np.zeros((), np.int64),
             np.zeros((3, 2), np.uint64), np.zeros((3, 3), np.complex128))
    rc, out, err = _cli(capfd, str(src), "--axis-size=3", "--in-axes=0,none,0,1", "--check",
                        f"--inputs={npz}")
    assert rc == 1 and err == ("error: --check: input 0 is float32[3, 3], but argument 0 "
                               "of @main batched at axis 0 takes float64[3, 3]\n"), err


def test_module_io_reads_every_type():
    text = _all_types_module(list(selfcheck.ELEMENT_TYPES))
    assert module_io.parse_module(text).operation.verify()
