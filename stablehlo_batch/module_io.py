"""Reading and writing StableHLO modules: text, MLIR bytecode, portable
artifacts (versioned VHLO bytecode, what ``jax.export`` stores) and
``ir.Module`` objects, all in a context that knows every dialect jax emits;
and reading HLO (text or a serialized ``HloModuleProto``, what any XLA
frontend dumps with ``XLA_FLAGS=--xla_dump_to=...``) by converting it.
"""
from __future__ import annotations

import io
import re
import threading
from typing import Union

from jaxlib.mlir import ir, passmanager
from jaxlib.mlir.dialects import chlo, mhlo, sdy, stablehlo

from stablehlo_batch import jax_internals
from stablehlo_batch.passes.errors import (AxisSpecError, BatchingError, VerificationError,
                                           format_location)

ModuleSource = Union[str, bytes, bytearray, ir.Module]

_BYTECODE_MAGIC = b"ML\xefR"


class ModuleParseError(BatchingError):
    """The input is not a StableHLO module we can read."""


def make_context() -> ir.Context:
    """A fresh context with the dialects of jax's own lowering context."""
    registry = ir.DialectRegistry()
    jax_internals.register_jax_dialects(registry)
    ctx = ir.Context()
    ctx.append_dialect_registry(registry)
    ctx.load_all_available_dialects()
    for register in (sdy.register_dialect, chlo.register_dialect,
                     stablehlo.register_dialect, mhlo.register_mhlo_dialect):
        register(ctx)
    return ctx


# parse_module's default context is reused: a new context costs ~2 ms (its
# dialects are loaded one by one), a large part of a small function's first
# call. One per thread (MLIR's IR is not safe to mutate from several threads
# through the Python bindings), replaced after _CONTEXT_USES parses or
# _CONTEXT_BYTES bytes parsed: a context never frees the types and
# attributes (constants included) it has uniqued, so a long-lived one would
# grow with every module it has seen. Modules keep their own context alive.
_CONTEXT_USES = 64
_CONTEXT_BYTES = 32 << 20
_SHARED = threading.local()


def shared_context(nbytes: int = 0) -> ir.Context:
    """This thread's reusable parsing context (``make_context``'s dialects),
    counting one more use of ``nbytes`` bytes of source."""
    st = _SHARED.__dict__
    ctx = st.get("ctx")
    if ctx is None or st["uses"] >= _CONTEXT_USES or st["bytes"] >= _CONTEXT_BYTES:
        ctx = st["ctx"] = make_context()
        st["uses"] = st["bytes"] = 0
    st["uses"] += 1
    st["bytes"] += nbytes
    return ctx


def diagnostics(err: ir.MLIRError) -> str:
    parts = [f"{d.message} at {format_location(d.location)}" for d in err.error_diagnostics]
    return "; ".join(parts) or str(err).splitlines()[0]


def parse_module(source: ModuleSource, context: ir.Context | None = None) -> ir.Module:
    """A new module (never the caller's object) parsed from ``source``, in
    ``context`` (default: this thread's reused one, ``shared_context``).

    Text is parsed as MLIR assembly; bytes are either a StableHLO portable
    artifact or plain MLIR bytecode (text given as bytes also works).
    """
    if isinstance(source, ir.Module):
        source = module_to_bytecode(source)
    if isinstance(source, bytearray):
        source = bytes(source)
    ctx = context or shared_context(len(source))
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
            if looks_like_hlo_text(source):
                return parse_hlo(source, ctx)
            return ir.Module.parse(source, ctx)
    except ir.MLIRError as e:
        raise ModuleParseError(f"cannot parse module: {diagnostics(e)}") from None
    except (RuntimeError, ValueError) as e:
        raise ModuleParseError(f"cannot parse module: {' '.join(str(e).split())}") from None


# StableHLO's printer writes a dynamic_slice with no start indices (of a
# scalar) as "%x, , sizes = []", which its own parser refuses: such ops are
# written in the generic form instead, so every module we print parses back.
_SCALAR_DYNAMIC_SLICE = re.compile(r"stablehlo\.dynamic_slice (%[\w#.$-]+), , sizes = \[\] :")


def module_to_text(module: ir.Module, debug_info: bool = False) -> str:
    text = module.operation.get_asm(enable_debug_info=debug_info)
    return _SCALAR_DYNAMIC_SLICE.sub(
        r'"stablehlo.dynamic_slice"(\1) <{slice_sizes = array<i64>}> :', text)


def is_plain_bytecode(data: bytes) -> bool:
    """Whether ``data`` is plain MLIR bytecode (``module_to_bytecode``), not
    a StableHLO portable artifact (VHLO) nor text."""
    return (isinstance(data, (bytes, bytearray)) and data.startswith(_BYTECODE_MAGIC)
            and b"StableHLO_v" not in data[:64])


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


# ---- HLO --------------------------------------------------------------------------

def looks_like_hlo_text(data: str | bytes) -> bool:
    """HLO text (as XLA prints and dumps it) starts with ``HloModule``."""
    head = data[:4096]
    if isinstance(head, bytes):
        head = head.decode("utf-8", "replace")
    lines = (l.strip() for l in head.splitlines())
    first = next((l for l in lines if l and not l.startswith("//")), "")
    return first.startswith("HloModule ")


def _hlo_to_stablehlo_bytecode(data: str | bytes) -> bytes:
    """HLO text or a serialized HloModuleProto -> StableHLO as MLIR bytecode,
    by jaxlib's private converter (jax_internals.hlo_converter)."""
    try:
        text_to_proto, convert = jax_internals.hlo_converter()
    except jax_internals.PrivateAPIMissing as e:
        raise ModuleParseError(
            f"cannot read HLO: this jaxlib has no HLO-to-StableHLO converter ({e}); "
            "convert the HLO to StableHLO with another tool (e.g. XLA's hlo-translate "
            "--hlo-to-mlir) and pass that") from None
    if isinstance(data, bytes) and looks_like_hlo_text(data):
        data = data.decode("utf-8")
    elif isinstance(data, bytes):
        data = _hlo_module_proto(data)
    try:
        if isinstance(data, str):
            data = text_to_proto(data)
        return convert(data)
    except Exception as e:  # JaxRuntimeError: INVALID_ARGUMENT ...
        text = " ".join(str(e).split())
        if "Failed to deserialize HloModuleProto" in text:
            text = "not HLO text and not a serialized HloModuleProto"
        raise ModuleParseError(f"cannot read HLO: {text}") from None


def parse_hlo(data: str | bytes, context: ir.Context | None = None) -> ir.Module:
    """A StableHLO module converted from HLO text or a serialized
    HloModuleProto (TensorFlow, PyTorch/XLA, JAX, ... dumps). The converter
    writes matrix products as ``stablehlo.dot``, deprecated in StableHLO:
    they become ``dot_general`` (which has a batching rule)."""
    ctx = context or make_context()
    module = parse_module(_hlo_to_stablehlo_bytecode(data), ctx)
    leftovers: list[str] = []

    def visit(op):
        if op.name.startswith("mhlo.") and op.name not in leftovers:
            leftovers.append(op.name)
        return ir.WalkResult.ADVANCE
    module.operation.walk(visit)
    if leftovers:  # e.g. the fusions of a dump after XLA's optimizations
        raise ModuleParseError(
            f"cannot batch this HLO: it has ops StableHLO cannot express "
            f"({', '.join(sorted(leftovers))}); an HLO dump after XLA's optimizations has "
            f"fusions: use the one before them (*.before_optimizations.*)")
    stablehlo.register_stablehlo_passes()
    with ctx:
        passmanager.PassManager.parse(
            "builtin.module(func.func(stablehlo-legalize-deprecated-ops"
            "{fail-on-unused=false}))").run(module.operation)
    return module


def module_to_hlo(module: ir.Module, proto: bool = False) -> str | bytes:
    """The module as HLO text, or a serialized HloModuleProto (``proto``), for
    frontends that take HLO back (jaxlib's private converter, as parse_hlo)."""
    try:
        convert = jax_internals.stablehlo_to_hlo_converter()
    except jax_internals.PrivateAPIMissing as e:
        raise BatchingError(f"cannot write HLO: this jaxlib has no StableHLO-to-HLO "
                            f"converter ({e})") from None
    try:
        computation = convert(module_to_bytecode(module))
    except Exception as e:
        raise BatchingError(f"cannot write HLO: {' '.join(str(e).split())}") from None
    return (computation.as_serialized_hlo_module_proto() if proto
            else computation.as_hlo_text())


def _proto_fields(data: bytes) -> list[tuple[int, int, object]] | None:
    """The top-level fields of a protobuf message (number, wire type, value:
    an int or the bytes of a length-delimited field); None when ``data`` is
    not well-formed protobuf. Checked here so that XLA's C++ parser, which
    logs its complaints to stderr, only sees plausible protos."""
    fields, i, n = [], 0, len(data)

    def varint():
        nonlocal i
        value = shift = 0
        while i < n and shift < 64:
            b = data[i]
            i += 1
            value |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return value
        raise ValueError("truncated varint")
    try:
        while i < n:
            key = varint()
            number, wire = key >> 3, key & 7
            if number == 0:
                return None
            if wire == 0:
                value = varint()
            elif wire == 1 or wire == 5:
                size = 8 if wire == 1 else 4
                value, i = data[i:i + size], i + size
            elif wire == 2:
                size = varint()
                value, i = data[i:i + size], i + size
            else:  # groups (3, 4) are not used by XLA's protos
                return None
            if i > n:
                return None
            fields.append((number, wire, value))
    except ValueError:
        return None
    return fields


def _is_name(field) -> bool:
    number, wire, value = field
    if (number, wire) != (1, 2):
        return False
    try:
        return value.decode("utf-8").isprintable()
    except UnicodeDecodeError:
        return False


def _hlo_module_proto(data: bytes) -> bytes:
    """A serialized HloModuleProto from itself or from the ``HloProto`` that
    ``--xla_dump_hlo_as_proto`` writes (its field 1 holds the module)."""
    fields = _proto_fields(data)
    if fields and _is_name(fields[0]):
        return data  # an HloModuleProto starts with its name
    if fields and fields[0][:2] == (1, 2):
        inner = _proto_fields(fields[0][2])
        if inner and _is_name(inner[0]):
            return fields[0][2]
    raise ModuleParseError("cannot read HLO: not HLO text and not a serialized "
                           "HloModuleProto or HloProto")


def is_hlo_proto(data: bytes) -> bool:
    """Whether ``data`` looks like a serialized HloModuleProto or HloProto."""
    try:
        _hlo_module_proto(data)
        return True
    except ModuleParseError:
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


def returned_arguments(module: ir.Module, func: str = "main") -> list[int | None]:
    """For each result of @``func``: the index of the argument it returns
    unchanged (the return operand is that block argument), else None."""
    block = func_block(module, func)
    ret = list(block.operations)[-1]
    args = list(block.arguments)
    return [next((i for i, a in enumerate(args) if a == v), None) for v in ret.operands]


def forwarded_arguments(module: ir.Module, in_pos, out_pos, *, n_leading_in: int = 0,
                        n_leading_out: int = 0, kept=None, func: str = "main") -> tuple:
    """``(flat result, flat argument)`` pairs where the *per-example*
    @``func`` of ``module`` returns an argument unchanged and that argument's
    batch sits where the result's does (``in_pos[i]`` == ``out_pos[j]``,
    positions in the batched values, None: unbatched): the batched function
    returns that argument as it is, whatever way it is built (the full
    batch, chunks, a lane loop, a symbolic size), as ``jax.vmap`` returns
    such an input object itself. The first ``n_leading_in`` / ``n_leading_out``
    arguments / results of @``func`` (platform index, effect tokens) are no
    flat values; ``kept[k]``: the flat argument of the module's ``k``-th
    (``jax.export``'s ``module_kept_var_idx``; None: all kept)."""
    pairs = []
    for r, a in enumerate(returned_arguments(module, func)):
        if a is None or r < n_leading_out or a < n_leading_in:
            continue
        j, k = r - n_leading_out, a - n_leading_in
        i = k if kept is None else kept[k]
        if j < len(out_pos) and i < len(in_pos) and in_pos[i] == out_pos[j]:
            pairs.append((j, i))
    return tuple(pairs)
