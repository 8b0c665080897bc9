"""Self-check: run a batched module against a loop of the unbatched one.

``check_call`` (what ``batch_lower(..., check=True)`` runs on the first call
of each signature) and the CLI's ``--check`` (stablehlo_batch/check.py)
compare the batched executable with the unbatched module run once per lane
and stacked. On a mismatch ``diagnose`` bisects over the top-level ops of
the function: a probe module returns every op result up to op k, and "some
result up to k differs" is monotone in k, so a binary search finds the
first op whose batched result differs from the per-lane results. That op
alone, with its operands as arguments (batched ones at axis 0), becomes a
minimal ``.mlir`` reproducer (plus an ``.npz`` of its inputs) written next
to the one-paragraph ``BatchMismatchError``.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import tempfile
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import tree_util
from jaxlib.mlir import ir
from jaxlib.mlir import passmanager
from jaxlib.mlir.dialects import func as func_d

from stablehlo_batch import axes as ax
from stablehlo_batch import module_io
from stablehlo_batch.flat import replace_exported
from stablehlo_batch.passes.builders import ranked
from stablehlo_batch.passes.errors import BatchingError, format_location
from stablehlo_batch.rewrite import batch_function

_ELEM = {"f16": "float16", "bf16": "bfloat16", "f32": "float32", "f64": "float64",
         "i1": "bool", "i8": "int8", "i16": "int16", "i32": "int32", "i64": "int64",
         "ui8": "uint8", "ui16": "uint16", "ui32": "uint32", "ui64": "uint64",
         "complex<f32>": "complex64", "complex<f64>": "complex128"}


class BatchMismatchError(BatchingError):
    """The batched function disagrees with the unbatched one run per lane.

    ``op_name`` / ``location`` name the first op whose batched result differs
    (None when only the final move to out_axes differs); ``reproducer`` is the
    path of a minimal module showing it."""

    def __init__(self, message: str, op_name: str | None = None,
                 location: str | None = None, reproducer: str | None = None):
        self.op_name, self.location, self.reproducer = op_name, location, reproducer
        super().__init__(message)


# ---- running modules ----------------------------------------------------------------

def tensor_specs(types) -> list[jax.ShapeDtypeStruct]:
    """The jax spec of each MLIR tensor type (BatchingError for other types)."""
    out = []
    for t in types:
        if ranked(t) is None:
            raise BatchingError(f"--check cannot run a function with a {t} argument/result")
        rt = ir.RankedTensorType(t)
        out.append(jax.ShapeDtypeStruct(tuple(rt.shape), _ELEM[str(rt.element_type)]))
    return out


@functools.lru_cache(maxsize=32)
def _compiled(text: str, func: str):
    """@func of a module (text) as a jitted callable returning a list."""
    module = module_io.parse_module(text)
    fop = ir.SymbolTable(module.operation)[func].operation
    if func != "main":
        _rename_entry(module, func)
    ftype = ir.FunctionType(ir.TypeAttr(fop.attributes["function_type"]).value)
    ins, outs = tensor_specs(ftype.inputs), tensor_specs(ftype.results)
    template = jax.export.export(jax.jit(
        lambda *a: tuple(jnp.zeros(o.shape, o.dtype) for o in outs)))(*ins)
    exported = replace_exported(
        template, mlir_module_serialized=module_io.module_to_portable_artifact(module),
        module_kept_var_idx=tuple(range(len(ins))), in_avals=tuple(
            jax.core.ShapedArray(a.shape, a.dtype) for a in ins),
        out_avals=tuple(jax.core.ShapedArray(o.shape, o.dtype) for o in outs))
    call = jax.jit(exported.call)
    return lambda *args: [np.asarray(r) for r in call(*args)]


def _rename_entry(module, func):
    """Makes @func the module's @main (what jax.export runs), renaming an
    existing @main and every reference to either."""
    with module.context:
        table = ir.SymbolTable(module.operation)
        if "main" in table:
            ir.SymbolTable.replace_all_symbol_uses("main", "main_orig", module.operation)
            table["main"].operation.attributes["sym_name"] = ir.StringAttr.get("main_orig")
        ir.SymbolTable.replace_all_symbol_uses(func, "main", module.operation)
        entry = table[func].operation
        entry.attributes["sym_name"] = ir.StringAttr.get("main")
        entry.attributes["sym_visibility"] = ir.StringAttr.get("public")


def run_module(text: str, args, func: str = "main") -> list[np.ndarray]:
    return _compiled(text, func)(*args)


def per_lane(text: str, args, in_axes, out_axes, size, func="main") -> list[np.ndarray]:
    """The unbatched module run once per lane, results stacked at out_axes."""
    lanes = []
    for i in range(size):
        lane = [a if d is None else np.take(a, i, axis=d) for a, d in zip(args, in_axes)]
        lanes.append(run_module(text, lane, func))
    n_out = len(lanes[0]) if lanes else len(out_axes)
    out = []
    for j in range(n_out):
        d = out_axes[j]
        out.append(lanes[0][j] if d is None else np.stack([r[j] for r in lanes], axis=d))
    return out


def close(got, want, rtol, atol) -> bool:
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape or got.dtype != want.dtype:
        return False
    if np.issubdtype(want.dtype, np.inexact):
        return bool(np.allclose(got.astype(np.complex128 if np.iscomplexobj(want) else np.float64),
                                want.astype(np.complex128 if np.iscomplexobj(want) else np.float64),
                                rtol=rtol, atol=atol, equal_nan=True))
    return bool(np.array_equal(got, want))


# ---- probe modules -------------------------------------------------------------------

def parse(text):
    return module_io.parse_module(text)


def entry_op(module, func):
    return ir.SymbolTable(module.operation)[func].operation


def _is_tensor(v) -> bool:
    return ranked(v.type) is not None


def _top_ops(module, func):
    block = entry_op(module, func).regions[0].blocks[0]
    return [o.operation for o in block.operations][:-1]


def _set_return(module, func, values):
    """Makes @func return ``values`` (and drops what they no longer need)."""
    fop = entry_op(module, func)
    block = fop.regions[0].blocks[0]
    ret = [o.operation for o in block.operations][-1]
    with ir.InsertionPoint(ret), ret.location:
        func_d.ReturnOp(list(values))
    ret.erase()
    _retype(fop)


def _retype(fop):
    block = fop.regions[0].blocks[0]
    ret = [o.operation for o in block.operations][-1]
    with fop.context:
        fop.attributes["function_type"] = ir.TypeAttr.get(ir.FunctionType.get(
            [a.type for a in block.arguments], [v.type for v in ret.operands]))
    for name in ("res_attrs", "arg_attrs"):
        if name in fop.attributes:
            del fop.attributes[name]


def text_of(module) -> str:
    return module_io.module_to_text(module, debug_info=True)


def _probe_upto(text, func, k):
    """The module with @func returning every tensor result of its ops 0..k."""
    m = parse(text)
    ops = _top_ops(m, func)
    values = [r for op in ops[:k + 1] for r in op.results if _is_tensor(r)]
    _set_return(m, func, values)
    return text_of(m), len(values)


def _outside_values(op):
    """Operands of ``op`` and outer values its regions use, in order."""
    seen, out = set(), []
    inner = set()

    def visit(o):
        for region in o.regions:
            for block in region.blocks:
                for a in block.arguments:
                    inner.add(a)
                for x in block.operations:
                    for r in x.operation.results:
                        inner.add(r)
                    visit(x.operation)
    visit(op)

    def note(v):
        if v not in inner and v not in seen:
            seen.add(v)
            out.append(v)
    for v in op.operands:
        note(v)

    def uses(o):
        for region in o.regions:
            for block in region.blocks:
                for x in block.operations:
                    for v in x.operation.operands:
                        note(v)
                    uses(x.operation)
    uses(op)
    return out


# ---- the checks ----------------------------------------------------------------------

@dataclasses.dataclass
class Setup:
    text: str          # the unbatched module
    func: str
    args: list         # batched inputs, one per argument of @func
    in_axes: list
    out_axes: list
    size: int
    rtol: float
    atol: float


def _batch(text, func, in_axes, out_axes, size):
    m = parse(text)
    batch_function(m, func, in_axes, out_axes, size)
    return text_of(m)


def _mismatches(s: Setup, text, out_axes) -> list[int]:
    got = run_module(_batch(text, s.func, s.in_axes, out_axes, s.size), s.args, s.func)
    want = per_lane(text, s.args, s.in_axes, out_axes, s.size, s.func)
    return [j for j, (g, w) in enumerate(zip(got, want)) if not close(g, w, s.rtol, s.atol)]


def _first_bad_op(s: Setup) -> int | None:
    """Index of the first top-level op whose batched results differ."""
    n = len(_top_ops(parse(s.text), s.func))

    def bad(k):
        text, n_out = _probe_upto(s.text, s.func, k)
        return n_out > 0 and bool(_mismatches(s, text, [0] * n_out))

    if n == 0 or not bad(n - 1):
        return None
    lo, hi = 0, n - 1  # bad(hi) holds
    while lo < hi:
        mid = (lo + hi) // 2
        if bad(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def _reproducer(s: Setup, k: int, directory: str):
    """Writes op k alone as a module (+ inputs); returns (path, op name, loc)."""

    # Which of op k's inputs are batched, and their values per lane.
    m = parse(s.text)
    op = _top_ops(m, s.func)[k]
    op_name, loc = op.name, format_location(op.location)
    inputs = _outside_values(op)
    _set_return(m, s.func, inputs)
    probe = text_of(m)
    flags, _ = batch_function(parse(probe), s.func, s.in_axes, [0] * len(inputs), s.size)
    values = per_lane(probe, s.args, s.in_axes, [0] * len(inputs), s.size, s.func)
    values = [v if b else v[0] for v, b in zip(values, flags)]

    # The module: @main takes op k's inputs and returns its results.
    m = parse(s.text)
    fop = entry_op(m, s.func)
    block = fop.regions[0].blocks[0]
    op = _top_ops(m, s.func)[k]
    n_old = len(block.arguments)
    for v in _outside_values(op):
        v.replace_all_uses_with(block.add_argument(v.type, op.location))
    _set_return(m, s.func, [r for r in op.results])
    for other in reversed(_top_ops(m, s.func)):
        if other != op:
            other.erase()
    for i in reversed(range(n_old)):
        block.erase_argument(i)
    _retype(fop)
    if s.func != "main":
        _rename_entry(m, s.func)
    with m.context:
        passmanager.PassManager.parse("builtin.module(symbol-dce)").run(m.operation)
    in_axes = ",".join("0" if b else "none" for b in flags)
    text = text_of(m)
    digest = hashlib.sha1(text.encode()).hexdigest()[:10]
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f"batch_mismatch_{digest}.mlir")
    npz = path[:-5] + ".npz"
    np.savez(npz, *values)
    with open(path, "w") as f:
        f.write(f"// The batched result of {op_name} ({loc}) differs from running it once\n"
                f"// per lane. Reproduce with:\n"
                f"//   stablehlo-batch-opt {os.path.basename(path)} --axis-size={s.size} "
                f"--in-axes={in_axes} --check --inputs={os.path.basename(npz)}\n")
        f.write(text)
    return path, op_name, loc


def repro_dir() -> str:
    return os.environ.get("STABLEHLO_BATCH_REPRO_DIR") or tempfile.gettempdir()


def diagnose(s: Setup, what: str, bad_outputs: Sequence[int], directory: str | None):
    """Bisects, writes the reproducer and raises BatchMismatchError."""
    directory = directory or repro_dir()
    k = _first_bad_op(s)
    outs = ", ".join(str(j) for j in bad_outputs)
    if k is None:
        raise BatchMismatchError(
            f"{what}: the batched function differs from the unbatched one run per lane "
            f"(results {outs}), but every op's batched result matches its per-lane "
            f"results: the error is in moving results to out_axes={list(s.out_axes)}.")
    path, op_name, loc = _reproducer(s, k, directory)
    raise BatchMismatchError(
        f"{what}: the batched function differs from the unbatched one run once per "
        f"lane (results {outs}, batch size {s.size}). The first op whose batched result "
        f"differs is '{op_name}' at {loc}, op {k} of @{s.func}; the batching rule for "
        f"'{op_name}' is wrong for this use. A minimal reproducer (that op alone, its "
        f"inputs in the .npz beside it) is in {path}; please attach it to a bug report.",
        op_name, loc, path)


def check_call(bf, args, kwargs, got, *, rtol=1e-5, atol=1e-5, directory=None):
    """For ``batch_lower(..., check=True)``: ``got`` (the batched call's result)
    against the unbatched function run per lane on the same ``args``."""
    leaves, in_tree = tree_util.tree_flatten((args, kwargs))
    avals = [ax.aval_of(x) for x in leaves]
    dims = ax.flatten_axes("batch_lower in_axes", in_tree, (bf.in_axes, 0))
    dims, size = ax.normalize_in_axes(bf.fn, in_tree, [a.shape for a in avals], avals,
                                      dims, bf.axis_size)
    ex_args, ex_kwargs = tree_util.tree_unflatten(
        in_tree, [ax.unbatched_struct(a, d) for a, d in zip(avals, dims)])
    exp = jax.export.export(jax.jit(bf.fn))(*ex_args, **ex_kwargs)
    if exp.ordered_effects or len(exp.platforms) > 1:
        return  # tokens and platform indices: nothing the loop below can feed
    out_dims = ax.flatten_axes("batch_lower out_axes", exp.out_tree, bf.out_axes)
    kept = list(exp.module_kept_var_idx)
    text = module_io.module_to_text(module_io.parse_module(exp.mlir_module_serialized),
                                    debug_info=True)
    in_axes = [dims[i] for i in kept]
    inputs = [np.asarray(leaves[i]) for i in kept]
    want = per_lane(text, inputs, in_axes, out_dims, size)
    got_leaves = [np.asarray(g) for g in tree_util.tree_leaves(got)]
    bad = [j for j, (g, w) in enumerate(zip(got_leaves, want)) if not close(g, w, rtol, atol)]
    if bad:
        name = getattr(bf.fn, "__name__", "fn")
        s = Setup(text, "main", inputs, in_axes, out_dims, size, rtol, atol)
        diagnose(s, f"batch_lower({name}, check=True)", bad, directory)
