"""Calling a module we built from a jax trace by merging it into the caller's
module (``merge_call``), instead of lowering ``Exported.call``.

``Exported.call``'s lowering traces the call, round-trips the module
through the portable artifact and, on CPU, initializes jaxlib's LAPACK
kernels whether or not the module calls them (importing SciPy: ~0.3 s once
per process). Modules this process built (the batched module of a plan, a
per-chunk or per-example module inside a chunk loop) are kept as plain MLIR
bytecode and merged into the caller's module as a private function, then
called: the same StableHLO, less work.

``call(exp, module, *args)`` is ``exp.call(*args)`` through the primitive
``inline_call`` (used by chunking.py for the loop's body): its lowering
merges ``module``; its JVP is ``Exported.call``'s (so a derivative of the
loop is what it was). ``merge_call`` is also the lowering of the batched
call itself (primitive.py).
"""
from __future__ import annotations

import functools

import jax
from jax import tree_util
from jax.extend.core import Primitive
from jax.interpreters import ad, mlir
from jaxlib.mlir import ir
from jaxlib.mlir.dialects import func as func_dialect

from stablehlo_batch import jax_internals, module_io


def merge_call(ctx, args, exp: jax.export.Exported, code: bytes | None):
    """``exp``'s module, given as plain MLIR bytecode ``code``, merged into
    the caller's module and called with ``args``, as ``Exported.call``'s
    lowering does, without its trace of the call and its round trip through
    the portable artifact: ~4 ms of a first call. Only where that lowering
    would add nothing more: one platform, the caller's; no ordered effects
    (tokens); static shapes; no extended dtypes; one device on both sides
    (no sharding annotations to carry); only functions in the module (no
    Shardy mesh). None otherwise (the caller then lowers ``Exported.call``).
    The caller holds ``jax_internals.lapack_unless_needed``."""
    mc = ctx.module_context
    axis_context = mc.axis_context
    if (code is None or not module_io.is_plain_bytecode(code) or len(exp.platforms) != 1
            or tuple(mc.platforms) != tuple(exp.platforms) or exp.ordered_effects
            or exp.uses_global_constants or exp.nr_devices != 1
            or not isinstance(axis_context, mlir.ShardingContext)
            or axis_context.num_devices != 1
            or len(args) != len(exp.in_avals) or len(ctx.avals_out) != len(exp.out_avals)
            or any(jax.dtypes.issubdtype(a.dtype, jax.dtypes.extended) or
                   tuple(a.shape) != tuple(b.shape) or a.dtype != b.dtype
                   for a, b in zip((*ctx.avals_in, *ctx.avals_out),
                                   (*exp.in_avals, *exp.out_avals)))):
        return None
    jax_internals.ensure_backends_initialized(exp.platforms)
    sub = ir.Module.parse(code, mc.module.context)
    if any(op.operation.name != "func.func" for op in sub.body.operations):
        return None  # e.g. a Shardy mesh: Exported.call's lowering handles those
    results = ir.SymbolTable(sub.operation)["main"].type.results
    name = mlir.merge_mlir_modules(mc.module, f"call_exported_{exp.fun_name}", sub,
                                   dst_symtab=mc.symbol_table)
    kept = set(exp.module_kept_var_idx)
    call_op = func_dialect.CallOp(results, ir.FlatSymbolRefAttr.get(name),
                                  [a for i, a in enumerate(args) if i in kept])
    return list(call_op.results)


class Target:
    """What ``inline_call`` calls: an ``Exported`` and its module as plain
    bytecode. Compared by identity (a parameter of the primitive)."""

    def __init__(self, exp: jax.export.Exported, code: bytes):
        self.exp = exp
        self.code = code

    def flat_call(self, *flat):
        args, kwargs = tree_util.tree_unflatten(self.exp.in_tree, flat)
        return tree_util.tree_leaves(self.exp.call(*args, **kwargs))


inline_call_p = Primitive("stablehlo_batch_inline_call")
inline_call_p.multiple_results = True


def usable(exp: jax.export.Exported) -> bool:
    """Whether ``call`` may route ``exp`` through ``inline_call``: no effects
    (``Exported.call`` carries them), static shapes."""
    return (not exp.ordered_effects and not exp.unordered_effects
            and not exp.uses_global_constants)


def call(exp: jax.export.Exported, code: bytes | None, *args, **kwargs):
    """``exp.call(*args, **kwargs)``; lowered by merging ``code`` (``exp``'s
    module as plain MLIR bytecode) into the caller's module when it can
    (``merge_call``). With ``code`` None, or an ``exp`` with effects:
    ``exp.call`` itself."""
    if code is None or not usable(exp):
        return exp.call(*args, **kwargs)
    leaves = tree_util.tree_leaves((args, kwargs))
    outs = inline_call_p.bind(*leaves, target=Target(exp, code))
    return tree_util.tree_unflatten(exp.out_tree, outs)


def _abstract_eval(*avals, target: Target):
    return [jax.core.ShapedArray(a.shape, a.dtype, weak_type=a.weak_type)
            for a in target.exp.out_avals]


def _bind(*flat, target: Target):
    return inline_call_p.bind(*flat, target=target)


def _impl(*args, target: Target):
    with jax.disable_jit(False):
        return jax.jit(functools.partial(_bind, target=target))(*args)


_fallback = mlir.lower_fun(lambda *flat, target: target.flat_call(*flat),
                           multiple_results=True)


def _lowering(ctx, *args, target: Target):
    with jax_internals.lapack_unless_needed(target.code):
        out = merge_call(ctx, args, target.exp, target.code)
        if out is not None:
            return out
        return _fallback(ctx, *args, target=target)


def _jvp(primals, tangents, *, target: Target):
    # Exported.call's own derivative (the exported VJP), as before inlining.
    tangents = [ad.instantiate_zeros(t) for t in tangents]
    out, out_t = jax.jvp(target.flat_call, list(primals), tangents)
    return out, out_t


inline_call_p.def_impl(_impl)
inline_call_p.def_abstract_eval(_abstract_eval)
mlir.register_lowering(inline_call_p, _lowering)
ad.primitive_jvps[inline_call_p] = _jvp
