"""Reading and writing StableHLO modules: text, MLIR bytecode, portable
artifacts (versioned VHLO bytecode, what ``jax.export`` stores) and
``ir.Module`` objects, all in a context that knows every dialect jax emits.
"""
from __future__ import annotations

import io
from typing import Union

from jaxlib.mlir import ir
from jaxlib.mlir._mlir_libs import _jax_mlir_ext
from jaxlib.mlir.dialects import chlo, mhlo, sdy, stablehlo

from stablehlo_batch.passes.errors import (AxisSpecError, BatchingError, VerificationError,
                                           format_location)

ModuleSource = Union[str, bytes, bytearray, ir.Module]

_BYTECODE_MAGIC = b"ML\xefR"


class ModuleParseError(BatchingError):
    """The input is not a StableHLO module we can read."""


def make_context() -> ir.Context:
    """A fresh context with the dialects of jax's own lowering context."""
    registry = ir.DialectRegistry()
    _jax_mlir_ext.register_dialects(registry)
    ctx = ir.Context()
    ctx.append_dialect_registry(registry)
    ctx.load_all_available_dialects()
    for register in (sdy.register_dialect, chlo.register_dialect,
                     stablehlo.register_dialect, mhlo.register_mhlo_dialect):
        register(ctx)
    return ctx


def _diagnostics(err: ir.MLIRError) -> str:
    parts = [f"{d.message} at {format_location(d.location)}" for d in err.error_diagnostics]
    return "; ".join(parts) or str(err).splitlines()[0]


def parse_module(source: ModuleSource, context: ir.Context | None = None) -> ir.Module:
    """A new module (never the caller's object) parsed from ``source``.

    Text is parsed as MLIR assembly; bytes are either a StableHLO portable
    artifact or plain MLIR bytecode (text given as bytes also works).
    """
    ctx = context or make_context()
    if isinstance(source, ir.Module):
        source = module_to_bytecode(source)
    if isinstance(source, bytearray):
        source = bytes(source)
    try:
        with ctx:
            if isinstance(source, bytes) and source.startswith(_BYTECODE_MAGIC):
                if b"StableHLO_v" in source[:64]:
                    return stablehlo.deserialize_portable_artifact(ctx, source)
                return ir.Module.parse(source, ctx)
            if isinstance(source, bytes):
                try:
                    source = source.decode("utf-8")
                except UnicodeDecodeError:
                    raise ModuleParseError(
                        "input is neither MLIR text nor MLIR bytecode") from None
            return ir.Module.parse(source, ctx)
    except ir.MLIRError as e:
        raise ModuleParseError(f"cannot parse module: {_diagnostics(e)}") from None
    except (RuntimeError, ValueError) as e:
        raise ModuleParseError(f"cannot parse module: {' '.join(str(e).split())}") from None


def module_to_text(module: ir.Module, debug_info: bool = False) -> str:
    return module.operation.get_asm(enable_debug_info=debug_info)


def module_to_bytecode(module: ir.Module) -> bytes:
    buf = io.BytesIO()
    module.operation.write_bytecode(buf)
    return buf.getvalue()


def module_to_portable_artifact(module: ir.Module) -> bytes:
    """Versioned StableHLO bytecode, the format ``jax.export`` stores.

    Targets the version jax itself targets (about four weeks old) so that
    consumers on a slightly older jaxlib can still read it."""
    target = stablehlo.get_version_from_compatibility_requirement(
        stablehlo.StablehloCompatibilityRequirement.WEEK_4)
    # Serialization rewrites the module it is given to VHLO: hand it a copy.
    copy = ir.Module.parse(module_to_bytecode(module), module.context)
    try:
        return stablehlo.serialize_portable_artifact(copy, target, True)
    except (ir.MLIRError, RuntimeError, ValueError) as e:
        raise VerificationError("serialized", " ".join(str(e).split())) from None


def looks_like_exported(data: bytes) -> bool:
    """A serialized ``jax.export.Exported`` (a flatbuffer, which has no magic
    number) rather than MLIR text or bytecode: binary, with a module inside."""
    if data.startswith(_BYTECODE_MAGIC) or _BYTECODE_MAGIC not in data:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def func_block(module: ir.Module, func: str) -> ir.Block:
    """The body of @``func`` (AxisSpecError when there is no such function)."""
    try:
        op = ir.SymbolTable(module.operation)[func]
    except KeyError:
        raise AxisSpecError(f"function @{func} not found in the module") from None
    if op.operation.name != "func.func" or not len(op.operation.regions[0].blocks):
        raise AxisSpecError(f"@{func} is not a function with a body")
    return op.operation.regions[0].blocks[0]
