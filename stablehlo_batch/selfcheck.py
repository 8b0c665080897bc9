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

import contextlib
import dataclasses
import functools
import hashlib
import os
import re
import tempfile
from typing import Sequence

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
from jax import tree_util
from jaxlib.mlir import ir
from jaxlib.mlir import passmanager
from jaxlib.mlir.dialects import func as func_d

from stablehlo_batch import axes as ax
from stablehlo_batch import callbacks, custom_vmap, module_io, xla_compat
from stablehlo_batch.passes import batch_function_in_module
from stablehlo_batch.passes.builders import ranked
from stablehlo_batch.passes.errors import BatchingError, format_location
from stablehlo_batch.rewrite import batch_function

# Every StableHLO element type jax can run, by its MLIR spelling; the narrow
# floats and ints are ml_dtypes' (which jax uses for them).
ELEMENT_TYPES = {"i1": "bool", "i2": "int2", "i4": "int4", "i8": "int8", "i16": "int16",
                 "i32": "int32", "i64": "int64", "ui2": "uint2", "ui4": "uint4", "ui8": "uint8",
                 "ui16": "uint16", "ui32": "uint32", "ui64": "uint64",
                 "f4E2M1FN": "float4_e2m1fn", "f6E2M3FN": "float6_e2m3fn",
                 "f6E3M2FN": "float6_e3m2fn", "f8E3M4": "float8_e3m4", "f8E4M3": "float8_e4m3",
                 "f8E4M3FN": "float8_e4m3fn", "f8E4M3FNUZ": "float8_e4m3fnuz",
                 "f8E4M3B11FNUZ": "float8_e4m3b11fnuz", "f8E5M2": "float8_e5m2",
                 "f8E5M2FNUZ": "float8_e5m2fnuz", "f8E8M0FNU": "float8_e8m0fnu",
                 "bf16": "bfloat16", "f16": "float16", "f32": "float32", "f64": "float64",
                 "complex<f32>": "complex64", "complex<f64>": "complex128"}


# jaxlib 0.10's CPU backend crashes generating code for any op on these
# (even compare and select), printing LLVM's complaints on stderr.
_NOT_ON_CPU = ("f6E2M3FN", "f6E3M2FN")


def element_dtype(element_type) -> np.dtype:
    """The numpy dtype of an MLIR element type; BatchingError for one jax
    cannot run (quantized types, index, tf32, ...)."""
    name = ELEMENT_TYPES.get(str(element_type))
    if name is None:
        raise BatchingError(f"values of element type {element_type} cannot be run here "
                            "(jax has no dtype for it)")
    if str(element_type) in _NOT_ON_CPU:
        if jax.default_backend() == "cpu":
            raise BatchingError(f"XLA's CPU backend cannot compile ops on {element_type} "
                                "values (it fails in code generation)")
    return np.dtype(getattr(ml_dtypes, name, None) or name)


def needs_x64(avals) -> bool:
    """True when some value is 64 bits wide: jax runs those only in x64 mode."""
    return any(np.dtype(a.dtype).itemsize == 8 or np.dtype(a.dtype) == np.complex128
               for a in avals)


def x64_scope(avals):
    """jax's 64-bit mode for this block only, when ``avals`` need it; the
    caller's global setting is left as it was."""
    return jax.enable_x64(True) if needs_x64(avals) else contextlib.nullcontext()


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

def tensor_avals(types):
    out = []
    for t in types:
        if ranked(t) is None:
            raise BatchingError(f"a function with a {t} argument or result cannot be run "
                                "here (only ranked tensors)")
        rt = ir.RankedTensorType(t)
        out.append(jax.ShapeDtypeStruct(tuple(rt.shape), element_dtype(rt.element_type)))
    return out


def exported_of_module(source, func: str = "main", platforms=None) -> jax.export.Exported:
    """@func of a module (text, bytecode or ``ir.Module``; its own copy is
    changed) as a ``jax.export.Exported`` taking and returning its tensors
    flat, for ``platforms`` (default: jax's default backend), with no VJP:
    what runs a module here, and what the CLI's ``--strategy`` batches."""
    module = xla_compat.legalize(module_io.parse_module(source))
    fop = ir.SymbolTable(module.operation)[func].operation
    if func != "main":
        _rename_entry(module, func)
    ftype = ir.FunctionType(ir.TypeAttr(fop.attributes["function_type"]).value)
    ins, outs = tensor_avals(ftype.inputs), tensor_avals(ftype.results)
    with x64_scope(ins + outs):
        template = jax.export.export(jax.jit(
            lambda *a: tuple(jnp.zeros(o.shape, o.dtype) for o in outs)),
            **({} if platforms is None else dict(platforms=tuple(platforms))))(*ins)
    return dataclasses.replace(
        template, mlir_module_serialized=module_io.module_to_portable_artifact(module),
        module_kept_var_idx=tuple(range(len(ins))), in_avals=tuple(
            jax.core.ShapedArray(a.shape, a.dtype) for a in ins),
        out_avals=tuple(jax.core.ShapedArray(o.shape, o.dtype) for o in outs),
        _get_vjp=None)


@functools.lru_cache(maxsize=32)
def _compiled(text: str, func: str):
    """@func of a module (text) as a jitted callable returning a list."""
    exported = exported_of_module(text, func)
    scope = functools.partial(x64_scope, [*exported.in_avals, *exported.out_avals])
    call = jax.jit(exported.call)

    def run(*args):
        with scope():
            return [np.asarray(r) for r in call(*args)]
    return run


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


def per_lane(text: str, args, in_axes, out_axes, size, func="main",
             run=None) -> list[np.ndarray]:
    """The unbatched module run once per lane, results stacked at out_axes.
    ``run(lane_args)`` runs one lane (default: the module itself; nested
    batch dimensions pass another per_lane)."""
    run = run or (lambda lane: run_module(text, lane, func))
    lanes = []
    for i in range(size):
        lanes.append(run([a if d is None else np.take(a, i, axis=d)
                          for a, d in zip(args, in_axes)]))
    n_out = len(lanes[0]) if lanes else len(out_axes)
    out = []
    for j in range(n_out):
        d = out_axes[j]
        out.append(lanes[0][j] if d is None else np.stack([r[j] for r in lanes], axis=d))
    return out


def per_lane_levels(text: str, args, levels, func="main") -> list[np.ndarray]:
    """``per_lane`` over several batch dimensions: ``levels`` is a list of
    (flat in_axes, flat out_axes, size), outer first."""
    if not levels:
        return run_module(text, args, func)
    (in_axes, out_axes, size), inner = levels[0], levels[1:]
    return per_lane(text, args, in_axes, out_axes, size, func,
                    run=lambda lane: per_lane_levels(text, lane, inner, func))


def is_inexact(dt) -> bool:
    # jnp knows ml_dtypes' floats, which numpy does not
    return bool(jnp.issubdtype(dt, jnp.inexact))


def close(got, want, rtol, atol) -> bool:
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape or got.dtype != want.dtype:
        return False
    if not is_inexact(want.dtype):
        return bool(np.array_equal(got, want))
    wide = np.complex128 if np.iscomplexobj(want) else np.float64
    if not np.iscomplexobj(want):  # bf16, f16, float8: a few ulps, not f32's tolerance
        eps = float(ml_dtypes.finfo(want.dtype).eps)
        rtol, atol = max(rtol, 4 * eps), max(atol, 4 * eps)
    return bool(np.allclose(got.astype(wide), want.astype(wide), rtol=rtol, atol=atol,
                            equal_nan=True))


# ---- probe modules -------------------------------------------------------------------

def parse(text):
    return module_io.parse_module(text)


def _entry(module, func):
    return ir.SymbolTable(module.operation)[func].operation


def _is_tensor(v) -> bool:
    return ranked(v.type) is not None


def _top_ops(module, func):
    block = _entry(module, func).regions[0].blocks[0]
    return [o.operation for o in block.operations][:-1]


def _set_return(module, func, values):
    """Makes @func return ``values`` (and drops what they no longer need)."""
    fop = _entry(module, func)
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


def batch_text(text, func, in_axes, out_axes, size):
    m = xla_compat.legalize(module_io.parse_module(text))
    batch_function(m, func, in_axes, out_axes, size, what="the self-check")
    return module_io.module_to_text(m, debug_info=True)


def _mismatches(s: Setup, text, out_axes) -> list[int]:
    got = run_module(batch_text(text, s.func, s.in_axes, out_axes, s.size), s.args, s.func)
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
    flags = batch_function_in_module(parse(probe), s.func, s.in_axes,
                                     [0] * len(inputs), s.size)
    values = per_lane(probe, s.args, s.in_axes, [0] * len(inputs), s.size, s.func)
    values = [v if b else v[0] for v, b in zip(values, flags)]

    # The module: @main takes op k's inputs and returns its results.
    m = parse(s.text)
    fop = _entry(m, s.func)
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


def random_array(rng, shape, dt: np.dtype) -> np.ndarray:
    """Small values that every dtype holds exactly or nearly (int2 too)."""
    if dt == np.bool_:
        return rng.random(shape) > 0.5
    if not is_inexact(dt):
        info = ml_dtypes.iinfo(dt)
        return rng.integers(max(int(info.min), -5), min(int(info.max), 5) + 1,
                            shape).astype(dt)
    if np.issubdtype(dt, np.complexfloating):
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dt)
    v = rng.standard_normal(shape)
    if np.isnan(np.float32(np.array(-1.0).astype(dt))):  # no sign bit (f8E8M0FNU)
        v = np.abs(v)
    return v.astype(dt)



_MISSING_KERNEL = (  # XLA's words for a custom call with no implementation here
    re.compile(r"No FFI handler registered for (\S+?) on a platform"),
    re.compile(r"No registered implementation for (?:FFI )?custom call to (\S+?) "
               r"for platform"))


def running(what: str, run, *args):
    """``run(*args)``; a failure becomes one BatchingError line that starts
    with ``what`` (a kernel this platform lacks is said plainly)."""
    try:
        return run(*args)
    except BatchingError as e:
        raise BatchingError(f"{what}: {' '.join(str(e).split())}") from None
    except Exception as e:  # jax's and XLA's errors (JaxRuntimeError, TypeError, ...)
        text = " ".join(str(e).split())
        for pattern in _MISSING_KERNEL:
            m = pattern.search(text)
            if m:
                target = m.group(1).strip("'\"`")
                raise BatchingError(
                    f"{what.split(': ')[0]} needs the platform the module was lowered "
                    f"for: it calls the kernel '{target}', which this machine "
                    f"({jax.default_backend()}) does not have") from None
        raise BatchingError(f"{what}: {type(e).__name__}: {text}") from None



def _as_numpy(x) -> np.ndarray:
    """A value as the module sees it: a typed PRNG key as its key data."""
    if hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
        x = jax.random.key_data(x)
    return np.asarray(x)


def _check_lanes_in_jax(bf, leaves, in_tree, dims, size, got, rtol, atol, name):
    """The check for a function with host callbacks, which jax.export
    refuses (callbacks.py): the function itself run per lane by jax, its
    results stacked at out_axes, against ``got``; no module, so no op to
    blame. A function with effects (io_callback, debug callbacks) is not
    checked: running it again would repeat what they do."""
    ex_args, ex_kwargs = tree_util.tree_unflatten(
        in_tree, [ax.unbatched_struct(ax.aval_of(x), d) for x, d in zip(leaves, dims)])
    if jax.make_jaxpr(bf.fn)(*ex_args, **ex_kwargs).effects:
        return
    fn = jax.jit(bf.fn)
    lanes = []
    for i in range(size):
        lane = [x if d is None else x[(slice(None),) * d + (i,)]
                for x, d in zip(leaves, dims)]
        a, k = tree_util.tree_unflatten(in_tree, lane)
        lanes.append(tree_util.tree_flatten(fn(*a, **k)))
    out_tree = lanes[0][1] if lanes else None
    if out_tree is None:
        return  # no lanes: nothing to compare
    out_dims = ax.flatten_axes("batch_lower out_axes", out_tree, bf.out_axes)
    got_leaves = tree_util.tree_leaves(got)
    bad = []
    for j, (g, d) in enumerate(zip(got_leaves, out_dims)):
        per = [_as_numpy(leaves_j[j]) for leaves_j, _ in lanes]
        if d is None:
            want = per[0]
        else:
            want = np.stack(per, axis=ax.batch_position(d, np.ndim(lanes[0][0][j])))
        if not close(_as_numpy(g), want, rtol, atol):
            bad.append(j)
    if bad:
        raise BatchMismatchError(
            f"batch_lower({name}, check=True): the batched function differs from the "
            f"unbatched one run once per lane (results {', '.join(map(str, bad))}, batch "
            f"size {size}); it has host callbacks, so jax.export cannot give the module "
            "that would name the op (run it without the callbacks to find it)")


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
    name = getattr(bf.fn, "__name__", "fn")
    custom_vmap.refuse_lane_check(jax.make_jaxpr(bf.fn)(*ex_args, **ex_kwargs),
                                  f"batch_lower({name}, check=True)")
    try:
        exp = jax.export.export(jax.jit(bf.fn))(*ex_args, **ex_kwargs)
    except NotImplementedError as e:
        if not callbacks.needs_callback_route(e):
            raise
        _check_lanes_in_jax(bf, leaves, in_tree, dims, size, got, rtol, atol, name)
        return
    if exp.ordered_effects or len(exp.platforms) > 1:
        return  # tokens and platform indices: nothing the loop below can feed
    # on the IR's ranks: a typed key's IR has its key data as a trailing dim
    out_dims = ax.resolve_out_axes(
        "batch_lower", exp.out_tree, exp.out_avals,
        ax.flatten_axes("batch_lower out_axes", exp.out_tree, bf.out_axes))
    kept = list(exp.module_kept_var_idx)
    text = module_io.module_to_text(module_io.parse_module(exp.mlir_module_serialized),
                                    debug_info=True)
    in_axes = [dims[i] for i in kept]
    inputs = [_as_numpy(leaves[i]) for i in kept]
    want = running(f"batch_lower({name}, check=True): running the function once per lane",
                    per_lane, text, inputs, in_axes, out_dims, size)
    got_leaves = [_as_numpy(g) for g in tree_util.tree_leaves(got)]
    bad = [j for j, (g, w) in enumerate(zip(got_leaves, want)) if not close(g, w, rtol, atol)]
    if bad:
        s = Setup(text, "main", inputs, in_axes, out_dims, size, rtol, atol)
        diagnose(s, f"batch_lower({name}, check=True)", bad, directory)


