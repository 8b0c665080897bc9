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
    p.add_argument("--axis-size", type=_positive, required=True,
                   help="size of the batch axis")
    p.add_argument("--in-axes", type=parse_axes, default=0,
                   help="batch axis of each argument, e.g. 0,none,1 (default 0)")
    p.add_argument("--out-axes", type=parse_axes, default=0,
                   help="batch axis of each result (default 0)")
    p.add_argument("--func", default="main", help="function to batch (default main)")
    formats = ("auto",) + FORMATS
    p.add_argument("--input-format", choices=formats, default="auto",
                   help="mlir (text), mlirbc (bytecode; also portable artifacts) or "
                        "exported (a serialized jax.export.Exported); default: by "
                        "extension, else detected")
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
    p.add_argument("--report", action="store_true",
                   help="print what batching did (ops by rule, transposes and "
                        "broadcasts inserted, per-lane loops, ...) to stderr")
    return p


def _read(path: str) -> bytes:
    if path == "-":
        data = sys.stdin.buffer.read()
    else:
        with open(path, "rb") as f:
            data = f.read()
    if data.startswith(_BYTECODE_MAGIC):
        _check_bytecode_in_child(data)
    return data


FORMATS = ("mlir", "mlirbc", "exported")
_EXTENSIONS = {".mlir": "mlir", ".mlirbc": "mlirbc", ".bc": "mlirbc",
               ".exported": "exported", ".jax_exported": "exported"}


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
    exp = load(data)
    built = batch_flat(exp, flat_axes(args.in_axes, len(exp.in_avals)),
                       flat_axes(args.out_axes, len(exp.out_avals)),
                       symbolic_size(args.axis_size), what="stablehlo-batch-opt")
    if args.report:
        print(built.report, file=sys.stderr)
    if out_format == "exported":
        return bytes(built.exported.serialize())
    if out_format == "mlirbc":
        return module_to_bytecode(built.module)
    return module_to_text(built.module, debug_info=args.debug_info)


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
    if proc.returncode != 0:
        raise BatchingError("cannot parse module: the bytecode is corrupt (the MLIR "
                            f"reader crashed on it, exit status {proc.returncode})")


def _main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with strict_mode(args.strict), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", FallbackWarning)
        rc = _run(args)
    for w in caught:  # per-lane fallbacks as one line each, like errors
        if issubclass(w.category, FallbackWarning):
            print(f"warning: {' '.join(str(w.message).split())}", file=sys.stderr)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    return rc


def _run(args) -> int:
    try:
        from stablehlo_batch.api import batch_module_with_report  # after parsing: see top
        from stablehlo_batch.check import check_module, load_inputs
        from stablehlo_batch.module_io import (looks_like_exported, module_to_bytecode,
                                               parse_module)
        data = _read(args.input)
        in_format = _format_of(args.input, args.input_format)
        if in_format is None:  # stdin or an unknown extension: look at the bytes
            in_format = "exported" if looks_like_exported(data) else "mlir"
        out_format = _format_of(args.output, args.output_format) or (
            "exported" if in_format == "exported" else "mlir")
        if in_format == "exported":
            _write(args.output, _batch_exported_file(args, data, out_format))
            return 0
        if out_format == "exported":
            raise BatchingError("writing an exported function needs an exported input "
                                "(a module alone has no jax calling convention)")
        text, report = batch_module_with_report(data, args.in_axes, args.out_axes,
                                                args.axis_size, func=args.func,
                                                debug_info=args.debug_info)
        if args.check:
            check_module(data, args.in_axes, args.out_axes, args.axis_size,
                         load_inputs(args.inputs) if args.inputs else None,
                         func=args.func, batched_text=text)
        if args.report:
            print(report, file=sys.stderr)
        if out_format == "mlirbc":
            _write(args.output, module_to_bytecode(parse_module(text)))
        else:
            _write(args.output, text)
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
        message = " ".join(str(e).split())
        print(f"error: internal error ({type(e).__name__}): {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
