"""``stablehlo-batch-opt``: batch a StableHLO module from the command line.

    stablehlo-batch-opt model.mlir --axis-size=8 --in-axes=0,none --out-axes=0 > out.mlir

Reads MLIR text, MLIR bytecode or a StableHLO portable artifact (``-`` for
stdin) and prints the batched module as text. On failure it prints one line,
``error: <what> at <loc>``, and exits 1 (``--debug`` adds the traceback).
An op without a batching rule runs once per lane and prints one
``warning: ...`` line; ``--strict`` makes it an error instead.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import traceback
import warnings

# XLA's C++ INFO logs (PjRt client start-up for --check) would be extra stderr
# lines: the level must be set before jax loads.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

from stablehlo_batch import __version__  # noqa: E402 (cheap: names load lazily)
from stablehlo_batch.passes.errors import BatchingError  # noqa: E402
from stablehlo_batch.passes.fallback import FallbackWarning, strict_mode  # noqa: E402

# Start-up cost: the API, the check, the flat export and module I/O import jax
# (measured here: `import stablehlo_batch.api` 6.2 s, the rewrite alone 1.4 s),
# so _run and _batch_exported_file import them after the arguments are parsed:
# --help, --version and argument errors answer without loading jax.


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message):  # one line and exit 1, like every other failure
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(1)


def parse_axes(text: str) -> list[int | None] | int | None:
    """'0,none,-1' -> [0, None, -1]; a single entry applies to every value."""
    items = [t.strip().lower() for t in text.split(",")]
    out: list[int | None] = []
    for t in items:
        if t in ("none", "n", "_"):
            out.append(None)
            continue
        try:
            out.append(int(t))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"invalid axis '{t}' (expected an integer or 'none')") from None
    return out[0] if len(out) == 1 else out


def _sizes(text: str) -> int | str | tuple:
    """'8' -> 8, 'b' -> 'b', '10,3' -> (10, 3): several batch dimensions."""
    parts = [_positive(t.strip()) for t in text.split(",")]
    return parts[0] if len(parts) == 1 else tuple(parts)


def _positive(text: str) -> int | str:
    try:
        n = int(text)
    except ValueError:
        if text.isidentifier():  # a symbolic batch size, e.g. 'b'
            return text
        raise argparse.ArgumentTypeError(f"invalid axis size '{text}'") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"axis size must be >= 0, got {n}")
    return n


def build_parser() -> argparse.ArgumentParser:
    p = _ArgumentParser(
        prog="stablehlo-batch-opt",
        description="Batch a StableHLO function along a new axis (jax.vmap on IR).")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument("input", help="input module: .mlir text, bytecode, or '-' for stdin")
    p.add_argument("-o", "--output", default="-", help="output file (default: stdout)")
    p.add_argument("--axis-size", type=_sizes, default=None,
                   help="size of the batch axis; several sizes (10,3) add one batch "
                        "dimension each, outer first, as nested vmaps do")
    p.add_argument("--in-axes", type=parse_axes, action="append",
                   help="batch axis of each argument, e.g. 0,none,1 (default 0); with "
                        "several batch dimensions give one flag per dimension, outer "
                        "first (one flag: every dimension)")
    p.add_argument("--out-axes", type=parse_axes, action="append",
                   help="batch axis of each result (default 0); per dimension as "
                        "--in-axes")
    p.add_argument("--func", default="main", help="function to batch (default main)")
    p.add_argument("--spmd-axis", default=None, metavar="NAME",
                   help="instead of batching: turn a module written for the devices of "
                        "mesh axis NAME (shard_map collectives) into a one-device module "
                        "with that axis as a batch dimension (docs/named-axes.md)")
    formats = ("auto",) + FORMATS
    p.add_argument("--input-format", choices=formats, default="auto",
                   help="mlir (text), mlirbc (bytecode; also portable artifacts), "
                        "exported (a serialized jax.export.Exported) or hlo (HLO text or "
                        "a serialized HloModuleProto, converted to StableHLO); default: "
                        "by extension (.hlo, .pb: hlo), else detected")
    p.add_argument("--output-format", choices=formats, default="auto",
                   help="as --input-format; default: by the output's extension, else "
                        "exported for an exported input and mlir otherwise")
    p.add_argument("--mlir-print-debuginfo", dest="debug_info", action="store_true",
                   help="print locations in the output module")
    p.add_argument("--strict", action="store_true",
                   help="fail on an op without a batching rule instead of running it "
                        "once per lane (the fallback, which prints a warning)")
    p.add_argument("--debug", action="store_true", help="print tracebacks on errors")
    p.add_argument("--check", action="store_true",
                   help="also run the batched module and the input once per lane on the "
                        "same inputs (--inputs, else random) and compare; on a mismatch "
                        "write a minimal reproducer and fail")
    p.add_argument("--inputs", default=None,
                   help=".npz with the batched inputs for --check (arr_0, arr_1, ...)")
    p.add_argument("--pre-pipeline", metavar="PASSES", default=None,
                   help="MLIR passes to run before batching, as a textual pipeline, "
                        "e.g. 'inline,canonicalize' (func-level ones as "
                        "'func.func(...)'); the batching then runs as a pass in the same "
                        "pipeline")
    p.add_argument("--post-pipeline", metavar="PASSES", default=None,
                   help="MLIR passes to run after batching, e.g. 'canonicalize,cse'")
    p.add_argument("--report", action="store_true",
                   help="print what batching did (ops by rule, transposes and "
                        "broadcasts inserted, per-lane loops, ...) to stderr")
    p.add_argument("--strategy", choices=STRATEGIES, default="full",
                   help="how the output computes the batch: 'full' (default) one "
                        "program over the whole batch, as jax.vmap; 'model' a loop over "
                        "lanes or chunks of lanes where the static cost model says one "
                        "pays on XLA:CPU (its thresholds are CPU's: for modules that run "
                        "on CPU; an exported function for another platform keeps the "
                        "full batch); 'measure' times the full batch and loops over "
                        "chunks of 1, 8 and 32 lanes on this machine, on --inputs or "
                        "random ones, and keeps the fastest. A loop is emitted as a "
                        "stablehlo.while; --report shows the choice and why "
                        "(docs/tuning.md)")
    p.add_argument("--tune", dest="strategy", action="store_const", const="measure",
                   help="the same as --strategy=measure")
    return p


STRATEGIES = ("full", "model", "measure")


def _read(path: str) -> bytes:
    if path == "-":
        data = sys.stdin.buffer.read()
    else:
        with open(path, "rb") as f:
            data = f.read()
    if data.startswith(_BYTECODE_MAGIC):
        _check_bytecode_in_child(data)
    return data


FORMATS = ("mlir", "mlirbc", "exported", "hlo")
_EXTENSIONS = {".mlir": "mlir", ".mlirbc": "mlirbc", ".bc": "mlirbc",
               ".exported": "exported", ".jax_exported": "exported",
               ".hlo": "hlo", ".pb": "hlo"}  # XLA dumps: *.txt (by content), *.hlo.pb


def _format_of(path: str, given: str) -> str | None:
    if given != "auto":
        return given
    for ext, fmt in _EXTENSIONS.items():
        if path.endswith(ext):
            return fmt
    return None


def _write(path: str, data: str | bytes):
    if isinstance(data, str) and not data.endswith("\n"):
        data += "\n"
    if path == "-":
        if isinstance(data, str):
            sys.stdout.write(data)
        else:
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        return
    with open(path, "w" if isinstance(data, str) else "wb") as f:
        f.write(data)


def _batch_exported_file(args, data: bytes, out_format: str) -> str | bytes:
    """Batches a serialized jax.export.Exported; axes are per flat leaf."""
    from stablehlo_batch.axes import flat_axes  # after parsing: see top
    from stablehlo_batch.flat import batch_flat, load, symbolic_size
    from stablehlo_batch.module_io import module_to_bytecode, module_to_text
    if args.func != "main":
        raise BatchingError("--func applies to modules, not to exported functions")
    from stablehlo_batch import levels
    exp = load(data)
    steps = (levels.split(args.in_axes, args.out_axes, args.axis_size)
             if levels.is_multi(args.axis_size)
             else [levels.Level(args.in_axes, args.out_axes, args.axis_size)])
    reports = []
    choice = None
    if args.strategy != "full" and len(steps) == 1:
        step = steps[0]
        built, choice = _with_strategy(args, exp, flat_axes(step.in_axes, len(exp.in_avals)),
                                       flat_axes(step.out_axes, len(exp.out_avals)),
                                       symbolic_size(step.size))
        exp = built.exported
        reports.append(built.report)
    for step in reversed(steps if choice is None else []):  # innermost batch dimension first
        built = batch_flat(exp, flat_axes(step.in_axes, len(exp.in_avals)),
                           flat_axes(step.out_axes, len(exp.out_avals)),
                           symbolic_size(step.size), what="stablehlo-batch-opt")
        exp = built.exported
        reports.insert(0, built.report)
    if args.strategy != "full" and choice is None:
        _several_dimensions(args, reports[0])
    elif choice is not None and reports[0] is not None:
        reports[0].tuning = choice
    if args.check:
        from stablehlo_batch.check import check_exported, load_inputs
        check_exported(load(data), exp, args.in_axes, args.out_axes, args.axis_size,
                       load_inputs(args.inputs) if args.inputs else None)
    if args.report:
        print(reports[0] if len(reports) == 1 else levels.LevelReports(reports, steps),
              file=sys.stderr)
    if out_format == "exported":
        return bytes(built.exported.serialize())
    return _encode(built.module, out_format, args)


def _with_strategy(args, exp, dims, out_dims, size):
    """``exp`` batched by ``--strategy`` model or measure: (BatchedExport,
    tuning.TuningResult)."""
    from stablehlo_batch.check import load_inputs
    from stablehlo_batch.export import batch_exported_with_choice
    from stablehlo_batch.selfcheck import x64_scope
    tune_args = None
    if args.strategy == "measure" and args.inputs:
        from jax import tree_util
        tune_args = tree_util.tree_unflatten(exp.in_tree, load_inputs(args.inputs))[0]
    with x64_scope([*exp.in_avals, *exp.out_avals]):
        return batch_exported_with_choice(
            exp, dims, out_dims, size, None if args.strategy == "model" else True,
            tune_args, what="stablehlo-batch-opt")


def _several_dimensions(args, report):
    """--strategy with several batch dimensions: the full batch, said so."""
    from stablehlo_batch import tuning
    if isinstance(report, list):  # levels.LevelReports: the outermost one's
        report = report[0] if report else None
    if report is not None:
        report.tuning = tuning.TuningResult(
            None, "fixed", [tuning.Candidate(None)], 0, "",
            reason="several batch dimensions: the full batch")


def _module_with_strategy(args, data: bytes, text: str, report):
    """--strategy model / measure for a module: the loop chosen as a
    module (text), or ``text`` (the full batch) as it is; the choice goes
    to the report."""
    from stablehlo_batch import levels, module_io, selfcheck
    from stablehlo_batch.axes import flat_axes
    from stablehlo_batch.flat import symbolic_size
    if levels.is_multi(args.axis_size):
        _several_dimensions(args, report)
        return text
    if args.func != "main":
        raise BatchingError(f"--strategy={args.strategy} batches @main only: its loop "
                            f"is a new @main (got --func={args.func})")
    # The model's thresholds are XLA:CPU's: the module is taken as a CPU
    # one; measuring runs it on this machine's default backend.
    try:
        exp = selfcheck.exported_of_module(
            data, platforms=("cpu",) if args.strategy == "model" else None)
    except Exception as e:  # noqa: BLE001 - e.g. token or dynamic-shape arguments
        from stablehlo_batch import tuning
        if report is not None:
            report.tuning = tuning.TuningResult(
                None, "fixed", [tuning.Candidate(None)], 0, "",
                reason=f"no loop for this module ({' '.join(str(e).split())[:200]}): "
                       "the full batch")
        return text
    built, choice = _with_strategy(args, exp, flat_axes(args.in_axes, len(exp.in_avals)),
                                   flat_axes(args.out_axes, len(exp.out_avals)),
                                   symbolic_size(args.axis_size))
    if report is not None:
        report.tuning = choice
    if choice.choice is None:
        return text  # the full batch: the module batched as --strategy=full does
    return module_io.module_to_text(built.module, debug_info=args.debug_info)


def _encode(module, out_format: str, args) -> str | bytes:
    """The batched module (an ir.Module) in the output format."""
    from stablehlo_batch import module_io
    if out_format == "mlirbc":
        return module_io.module_to_bytecode(module)
    if out_format == "hlo":  # a serialized HloModuleProto for *.pb, else HLO text
        return module_io.module_to_hlo(module, proto=args.output.endswith(".pb"))
    return module_io.module_to_text(module, debug_info=args.debug_info)


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except SystemExit:
        raise
    except BaseException as e:  # whatever escapes: still one line, exit 1
        if argv is not None and "--debug" in argv or argv is None and "--debug" in sys.argv:
            traceback.print_exc()
        print(f"error: internal error ({type(e).__name__}): {' '.join(str(e).split())}",
              file=sys.stderr)
        return 1


_BYTECODE_MAGIC = b"ML\xefR"
# Parses (and verifies) bytecode in a child process: MLIR's bytecode reader
# can crash the process on corrupt input instead of reporting an error. The
# context set-up repeats module_io.make_context on purpose: importing
# stablehlo_batch would import jax and add seconds to every child.
_CHILD_PARSE = """
import sys
from jaxlib.mlir import ir
from jaxlib.mlir._mlir_libs import _jax_mlir_ext
from jaxlib.mlir.dialects import chlo, mhlo, sdy, stablehlo
data = sys.stdin.buffer.read()
registry = ir.DialectRegistry()
_jax_mlir_ext.register_dialects(registry)
ctx = ir.Context()
ctx.append_dialect_registry(registry)
ctx.load_all_available_dialects()
for register in (sdy.register_dialect, chlo.register_dialect,
                 stablehlo.register_dialect, mhlo.register_mhlo_dialect):
    register(ctx)
try:
    with ctx:
        if b"StableHLO_v" in data[:64]:
            m = stablehlo.deserialize_portable_artifact(ctx, data)
        else:
            m = ir.Module.parse(data, ctx)
except Exception as e:  # the reader's error: the parent reports it, never re-reads
    diags = getattr(e, "error_diagnostics", None) or []
    msg = "; ".join(d.message for d in diags) or (str(e).splitlines() or [repr(e)])[0]
    sys.stdout.write(msg)
    sys.exit(3)
try:
    with ctx:
        m.operation.verify()
except Exception:
    pass
"""


def _check_bytecode_in_child(data: bytes, timeout: float | None = None):
    """Raises BatchingError when reading the bytecode crashes or hangs a child
    (corrupt bytecode can send the reader into an endless loop)."""
    if timeout is None:  # generous for real modules: 30 s + 10 s per MiB
        timeout = 30 + 10 * len(data) / 2**20
    try:
        proc = subprocess.run([sys.executable, "-c", _CHILD_PARSE], input=data,
                              capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BatchingError("cannot parse module: reading the bytecode did not finish "
                            f"in {timeout:.0f} s") from None
    if proc.returncode == 3:
        # The reader refused it: reading it again here could corrupt this
        # process's memory (seen: a bad dialect index read after other
        # modules were parsed aborted the process in malloc).
        msg = proc.stdout.decode("utf-8", "replace").strip() or "corrupt bytecode"
        raise BatchingError(f"cannot parse module: {msg}")
    if proc.returncode != 0:
        raise BatchingError("cannot parse module: the bytecode is corrupt (the MLIR "
                            f"reader crashed on it, exit status {proc.returncode})")


def _main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with strict_mode(args.strict), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        warnings.simplefilter("always", FallbackWarning)
        rc = _run(args)
    if rc:  # an error: its one line only (warnings of a half-done run mislead)
        return rc
    for w in caught:  # one line each, like errors (per-lane fallbacks and the rest)
        kind = "" if issubclass(w.category, FallbackWarning) else f"{w.category.__name__}: "
        print(f"warning: {kind}{' '.join(str(w.message).split())}", file=sys.stderr)
    return rc


def _detect(data: bytes) -> str:
    """The format of stdin or a file with an unknown extension, by content."""
    from stablehlo_batch import module_io
    if module_io.looks_like_exported(data):
        return "exported"
    if data.startswith(_BYTECODE_MAGIC):
        return "mlirbc"
    if module_io.looks_like_hlo_text(data):
        return "hlo"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:  # binary, not MLIR: a serialized HloModuleProto?
        if module_io.is_hlo_proto(data):
            return "hlo"
    return "mlir"


def _batch_in_pipeline(args, data: bytes):
    """--pre-pipeline, the batching pass, --post-pipeline: (text, report)."""
    from stablehlo_batch import module_io, pipeline
    bp = pipeline.batching_pass(args.in_axes, args.out_axes, axis_size=args.axis_size,
                                func=args.func)
    module = pipeline.run_pipeline(module_io.parse_module(data), bp, args.pre_pipeline,
                                   args.post_pipeline)
    return module_io.module_to_text(module, debug_info=args.debug_info), bp.report


def _level_axes(args):
    """--in-axes / --out-axes (repeatable) as batch_module takes them: one
    flag is every dimension; several are one per dimension of --axis-size."""
    from stablehlo_batch.levels import is_multi
    n = len(args.axis_size) if is_multi(args.axis_size) else 1
    for name in ("in_axes", "out_axes"):
        given = getattr(args, name) or [0]
        if len(given) not in (1, n):
            flag = "--" + name.replace("_", "-")
            raise BatchingError(f"{flag} is given {len(given)} times; --axis-size has "
                                f"{n} dimension{'s' * (n > 1)}: give it once (every "
                                f"dimension) or once per dimension, outer first")
        setattr(args, name, given[0] if len(given) == 1 else given)


def _run(args) -> int:
    try:
        from stablehlo_batch.api import batch_module_with_report  # after parsing: see top
        from stablehlo_batch.check import check_module, load_inputs
        from stablehlo_batch.module_io import (looks_like_exported, module_to_bytecode,
                                               parse_module)
        data = _read(args.input)
        if args.spmd_axis is not None:
            from stablehlo_batch.named_axes import spmd_to_batch  # noqa: E402
            _write(args.output, spmd_to_batch(data, args.spmd_axis, func=args.func,
                                              debug_info=args.debug_info))
            return 0
        if args.axis_size is None:
            raise BatchingError("the following arguments are required: --axis-size")
        _level_axes(args)
        in_format = _format_of(args.input, args.input_format) or _detect(data)
        if in_format == "hlo":  # converted once; from here on a StableHLO module
            from stablehlo_batch.module_io import parse_hlo
            data = module_to_bytecode(parse_hlo(data))
            in_format = "mlirbc"
        out_format = _format_of(args.output, args.output_format) or (
            "exported" if in_format == "exported" else "mlir")
        if in_format == "exported":
            _write(args.output, _batch_exported_file(args, data, out_format))
            return 0
        if out_format == "exported":
            raise BatchingError("writing an exported function needs an exported input "
                                "(a module alone has no jax calling convention)")
        if args.strategy != "full" and (args.pre_pipeline or args.post_pipeline):
            raise BatchingError(f"--strategy={args.strategy} cannot be combined with "
                                "--pre-pipeline / --post-pipeline")
        if args.pre_pipeline or args.post_pipeline:
            text, report = _batch_in_pipeline(args, data)
        else:
            text, report = batch_module_with_report(data, args.in_axes, args.out_axes,
                                                    args.axis_size, func=args.func,
                                                    debug_info=args.debug_info)
        if args.strategy != "full":
            text = _module_with_strategy(args, data, text, report)
        if args.check:
            check_module(data, args.in_axes, args.out_axes, args.axis_size,
                         load_inputs(args.inputs) if args.inputs else None,
                         func=args.func, batched_text=text)
        if args.report:
            print(report, file=sys.stderr)
        if out_format == "mlir":
            _write(args.output, text)
        else:
            _write(args.output, _encode(parse_module(text), out_format, args))
        return 0
    except ValueError as e:  # axis errors from the exported path, vmap's kind
        if args.debug:
            traceback.print_exc()
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 1
    except (BatchingError, OSError) as e:
        if args.debug:
            traceback.print_exc()
        message = " ".join(str(e).split())
        print(f"error: {message}", file=sys.stderr)
        return 1
    except Exception as e:  # an internal bug: still one line unless --debug
        if args.debug:
            traceback.print_exc()
        if isinstance(e, RuntimeError) and "str_from_cstr_and_size" in str(e):
            # corrupt bytecode that parses, with a name that is not UTF-8:
            # the bindings fail when the rewrite reads it
            print("error: cannot read module: a string in it is not valid UTF-8",
                  file=sys.stderr)
            return 1
        message = " ".join(str(e).split())
        print(f"error: internal error ({type(e).__name__}): {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
