"""``jax.custom_batching.custom_vmap`` in a function we batch: its rule, as
jax.vmap uses it.

jax lowers a custom_vmap to its function; the rule is Python the module does
not hold. So while a function is traced to be batched
(``jax_internals.tracing_to_batch``), each ``custom_vmap_call`` whose rule
may differ from its function is lowered to a placeholder instead: a
``stablehlo.custom_call @stablehlo_batch.custom_vmap`` whose
``backend_config`` is a key into this process's table of such calls (the
equation's parameters: rule, function, trees; its avals, platform and the
user's line). The placeholder exists only in this process, between that
trace and the rewrite of its module.

- The rewrite's rule for the placeholder (registered here for the process)
  traces ``rule(axis_size, in_batched, *args)`` through jax's own batching
  rule of the primitive, with the batched operands batch-first as the
  rewrite holds them and the others as they are, lowers it with
  ``jax.export`` for the module's platform, merges it into the module as a
  private function and calls it; a result is batched or not as the rule's
  ``out_batched`` says. The rule is traced at the batch size the rewrite
  uses (a symbolic dimension where the batch size is symbolic: a rule that
  cannot be traced so is refused). Never a chunk's size: a module holding
  a placeholder is not chunked (``refuse_chunks``), as the rule may read
  its ``axis_size``.
- A placeholder with no batched operand is left alone by the rewrite;
  ``inline_bodies`` (rewrite.batch_function, after the rewrite) replaces it
  by a call of the function, lowered the same way into a private
  ``@stablehlo_batch_cvmap_<key>``: jax.vmap does not call the rule there
  either. A later rewrite of that module (an outer batch_lower, a jax.vmap
  of the batched call) that batches such a call applies the rule
  (``register_call_rule``). Rules and functions are lowered as traced to
  batch, so custom_vmaps inside them are placeholders too.
- Refused (UnsupportedOpError naming the user's line): a custom_vmap with
  effects, with symbolic shapes of its own, with extended dtypes (PRNG keys) or in a
  module lowered for several platforms at once.

Rules that batch like their function (``sequential_vmap``'s, ``vmappable``'s)
keep jax's lowering (the function), which the rewrite batches.
"""
from __future__ import annotations

import dataclasses
import itertools
import re

import jax
from jax.interpreters import mlir
from jaxlib.mlir import ir

from stablehlo_batch import jax_internals, module_io
from stablehlo_batch.passes import builders as bld
from stablehlo_batch.passes.errors import UnsupportedOpError, format_location
from stablehlo_batch.passes.rules import register_rule
from stablehlo_batch.passes.rules.structural import register_call_rule

TARGET = "stablehlo_batch.custom_vmap"
# The private function a placeholder with no batched operand becomes a call
# of (its key follows): a later rewrite of the module (an outer batch_lower,
# a jax.vmap of the batched call) applies the rule where it batches the call.
BODY_PREFIX = "stablehlo_batch_cvmap_"


@dataclasses.dataclass(frozen=True)
class _Call:
    params: dict
    avals_in: tuple
    avals_out: tuple
    platform: str
    location: str


# Every placeholder lowered in this process, by key. Kept for the process:
# jax may serve a later trace of the same function from its caches, with the
# same keys in it.
_CALLS: dict[int, _Call] = {}
_KEYS = itertools.count()


def refusal(location: str, reason: str | None = None) -> UnsupportedOpError:
    return UnsupportedOpError(
        "custom_vmap", None, format_location(location),
        reason=reason or "its vmap rule is Python that the lowered module does not hold "
                         "(jax.vmap runs the rule; the rewrite would batch the function "
                         "itself); use jax.vmap, or jax.custom_batching.sequential_vmap")


def _placeholder(ctx, args, params, location):
    """The lowering of a custom_vmap_call while tracing to batch."""
    platforms = tuple(ctx.module_context.platforms)
    avals = (*ctx.avals_in, *ctx.avals_out)
    problem = None
    if len(platforms) != 1:
        problem = f"lowered for several platforms at once {platforms}"
    elif jax_internals.custom_vmap_effects(params):
        problem = "it has side effects"
    elif any(not all(isinstance(d, int) for d in a.shape) for a in avals):
        problem = "its shapes are symbolic"
    elif any(jax.dtypes.issubdtype(a.dtype, jax.dtypes.extended) for a in avals):
        problem = "it takes or returns values of an extended dtype (PRNG keys)"
    if problem is not None:
        raise refusal(location, f"its vmap rule cannot be applied by the rewrite: {problem}; "
                                "use jax.vmap, or jax.custom_batching.sequential_vmap")
    key = next(_KEYS)
    _CALLS[key] = _Call(params, tuple(ctx.avals_in), tuple(ctx.avals_out), platforms[0],
                        location)
    op = ir.Operation.create(
        "stablehlo.custom_call",
        results=[mlir.aval_to_ir_type(ctx.module_context, a) for a in ctx.avals_out], operands=args,
        attributes={"call_target_name": ir.StringAttr.get(TARGET),
                    "backend_config": ir.StringAttr.get(str(key))})
    return list(op.results)


def holds_placeholders(exp: jax.export.Exported) -> bool:
    """Whether ``exp``'s module holds a placeholder or a call that stands for
    a custom_vmap: it must go through the rewrite (a lane loop running it
    unbatched would reach XLA with it, or run the function, not the rule)."""
    data = bytes(exp.mlir_module_serialized)
    return TARGET.encode() in data or BODY_PREFIX.encode() in data


def refuse_chunks(exp: jax.export.Exported, size: int, chunk: int) -> None:
    """Raises where ``exp`` holds a custom_vmap and would be run ``chunk``
    lanes at a time: its rule would be called at ``chunk`` lanes, where
    jax.vmap calls it at ``size`` (a rule may read its ``axis_size``: a
    mean, a normalization). The cost model and ``tune=True`` then keep the
    full batch (a loop that does not build is no candidate)."""
    if not holds_placeholders(exp):
        return
    location = "unknown"
    module = module_io.parse_module(exp.mlir_module_serialized)

    def find(op):
        nonlocal location
        op = op.operation
        if (op.name == "stablehlo.custom_call" and ir.StringAttr(
                op.attributes["call_target_name"]).value == TARGET) or op.name == "func.call":
            call = _call_of(op)
            if call is not None:
                location = call.location
                return ir.WalkResult.INTERRUPT
        return ir.WalkResult.ADVANCE
    module.operation.walk(find)
    raise refusal(location, f"batched {chunk} lanes at a time (chunk_size={chunk}, or a "
                            f"loop), its vmap rule would see {chunk} lanes where jax.vmap "
                            f"calls it with all {size}; a rule may depend on that number, so "
                            "a function with a custom_vmap runs as one batch")


def _call_of(op) -> _Call | None:
    """The call a placeholder (custom call) or a call of a function that
    stands for a custom_vmap (``@stablehlo_batch_cvmap_<key>...``) is of."""
    try:
        if op.name == "func.call":
            m = re.match(re.escape(BODY_PREFIX) + r"(\d+)",
                         ir.FlatSymbolRefAttr(op.attributes["callee"]).value)
            key = int(m.group(1)) if m else -1
        else:
            key = int(ir.StringAttr(op.attributes["backend_config"]).value)
    except (KeyError, ValueError):
        return None
    return _CALLS.get(key)


def _module_of(op) -> ir.Operation:
    """The ``builtin.module`` op around ``op``."""
    top = op.operation
    while top.parent is not None:
        top = top.parent.operation
    return top


def _inline(op, module_op, fn, specs, platform, operands, name="custom_vmap_rule") -> list:
    """``fn`` lowered for ``specs`` on ``platform``, merged into the module
    of ``op`` (``module_op``) as a private function and called with
    ``operands`` before ``op``; the call's results."""
    # traced to be batched: a custom_vmap in ``fn`` (the rule or function
    # calls one) is a placeholder too; inline_bodies turns it into a call of
    # its function after the rewrite, which a later rewrite of the module (an
    # outer batch_lower, a jax.vmap of the batched call) batches by its rule
    with jax_internals.plain_bytecode_exports(context=lambda: op.context), \
            jax_internals.tracing_to_batch():
        exp = jax.export.export(
            jax.jit(fn, keep_unused=True), platforms=(platform,),
            disabled_checks=[jax.export.DisabledSafetyCheck.custom_call(TARGET)])(*specs)
    sub = module_io.parse_module(exp.mlir_module_serialized, context=op.context)
    with op.context:
        name = mlir.merge_mlir_modules(_ModuleView(module_op), name, sub)
        callee = ir.SymbolTable(module_op)[name]
        results = ir.FunctionType(ir.TypeAttr(callee.attributes["function_type"]).value).results
    with ir.InsertionPoint(op), op.location:
        call = ir.Operation.create("func.call", results=list(results), operands=list(operands),
                                   attributes={"callee": ir.FlatSymbolRefAttr.get(name)})
    return list(call.results)


class _ModuleView:
    """What ``mlir.merge_mlir_modules`` reads of its destination module
    (``context``, ``body``, ``operation``), for a ``builtin.module`` op."""

    def __init__(self, module_op):
        self.operation = module_op
        self.context = module_op.context
        self.body = module_op.regions[0].blocks[0]


def _specs(avals, flags, size):
    return [jax.ShapeDtypeStruct(((size,) if f else ()) + tuple(a.shape), a.dtype,
                                 weak_type=a.weak_type)
            for a, f in zip(avals, flags)]


def _rule(fb, op, flags):
    """The rewrite's rule for the placeholder: the user's vmap rule."""
    call = _call_of(op)
    if call is None:
        raise fb.unsupported(op, "a custom_vmap placeholder this process did not lower")
    symbolic = fb.symbolic
    # a symbolic batch size: the rule is traced at a symbolic axis_size (a
    # rule that needs a number, e.g. to branch on it, is refused)
    size = jax.export.symbolic_shape("stablehlo_batch_b")[0] if symbolic else fb.axis_size
    out_flags: list[bool] = []

    def batched(*xs):
        outs, got = jax_internals.apply_custom_vmap_rule(call.params, xs, flags)
        out_flags[:] = got
        return outs
    try:
        results = _inline(op, _module_of(op), batched, _specs(call.avals_in, flags, size),
                          call.platform, list(op.operands))
    except Exception as e:  # noqa: BLE001 -- only where the size is symbolic
        if not symbolic or isinstance(e, UnsupportedOpError):
            raise
        raise refusal(call.location, "its vmap rule cannot be traced at a symbolic batch size "
                                     f"({type(e).__name__}: {str(e).splitlines()[0]}); "
                                     "pass a static batch size") from e
    for j, (r, b, a) in enumerate(zip(results, out_flags, call.avals_out)):
        want = ((bld.DYN if symbolic else size,) if b else ()) + tuple(a.shape)
        got = tuple(ir.RankedTensorType(r.type).shape)
        if got != want or ir.RankedTensorType(r.type).element_type != \
                ir.RankedTensorType(op.results[j].type).element_type:
            want_type = ir.RankedTensorType.get(list(want), ir.RankedTensorType(
                op.results[j].type).element_type)
            raise refusal(call.location,
                          f"its vmap rule returned {r.type} for result {j}, which it says is "
                          f"{'batched' if b else 'unbatched'}; the function returns "
                          f"{a.str_short()} there, so the rule must return {want_type} "
                          "(the rewrite keeps the function's shapes; jax.vmap does not "
                          "check them)")
    return list(zip(results, out_flags))


def inline_bodies(module: ir.Module) -> None:
    """Replaces each placeholder left in ``module`` (no operand batched) by
    the custom_vmap's function, as jax's lowering would have inlined it."""
    while _inline_bodies_once(module):
        pass  # a function may hold custom_vmaps of its own: placeholders again


def _inline_bodies_once(module: ir.Module) -> bool:
    found = []

    def visit(o):
        for region in o.regions:
            for block in region.blocks:
                for inner in block.operations:
                    inner = inner.operation
                    if inner.name == "stablehlo.custom_call" and ir.StringAttr(
                            inner.attributes["call_target_name"]).value == TARGET:
                        found.append(inner)
                    else:
                        visit(inner)
    visit(module.operation)
    for op in found:
        call = _call_of(op)
        if call is None:
            raise UnsupportedOpError(op.name, None, format_location(op.location),
                                     "a custom_vmap placeholder this process did not lower")
        key = ir.StringAttr(op.attributes["backend_config"]).value
        results = _inline(op, module.operation, jax_internals.custom_vmap_body(call.params),
                          _specs(call.avals_in, [False] * len(call.avals_in), 0),
                          call.platform, list(op.operands), name=f"{BODY_PREFIX}{key}")
        for old, new in zip(op.results, results):
            old.replace_all_uses_with(new)
        op.erase()
    return bool(found)


def refuse_reverse_mode(fn, args, error: Exception) -> None:
    """After jax failed to linearize ``fn`` (the per-example function, for
    the VJP of a batched call): where ``fn`` holds a custom_vmap, raises
    UnsupportedOpError naming its line. jax differentiates a custom_vmap
    only in forward mode; ``jax.grad(jax.vmap(f))`` differentiates the rule's
    batched trace, while our VJP is the per-example function's VJP, batched."""
    try:
        where = jax_internals.custom_vmap_call_location(jax.make_jaxpr(fn)(*args))
    except Exception:  # noqa: BLE001 -- only to name the line; jax's error stands
        return
    if where is not None:
        raise refusal(where, "reverse-mode differentiation (jax.grad / jax.vjp) of a batched "
                             "call that uses a custom_vmap: jax has no VJP of a custom_vmap "
                             "and ours is the per-example function's, batched (jax.jvp "
                             "works; or use jax.vmap)") from error


def refuse_lane_check(jaxpr, what: str) -> None:
    """``check=True`` compares a batched call with its function run per
    lane; a custom_vmap whose rule may differ from its function (jax.vmap,
    and so batch_lower, runs the rule) makes that comparison meaningless:
    UnsupportedOpError naming its line, where ``jaxpr`` holds one."""
    where = jax_internals.custom_vmap_call_location(jaxpr, differing_only=True)
    if where is not None:
        raise refusal(where, f"{what} compares the batched call with the function run per "
                             "lane, and a custom_vmap's rule need not batch like its function "
                             "(jax.vmap runs the rule, as batch_lower does): drop check=True")


def install() -> None:
    """Once per process: jax's lowering of custom_vmap_call makes
    placeholders while tracing to batch, and the rewrite has their rule."""
    jax_internals.lower_custom_vmap_when_batching(_placeholder)
    try:
        register_rule(TARGET, _rule, custom_call=True, scope="process")
    except ValueError:  # this module reloaded: the first registration stands
        pass
    register_call_rule(BODY_PREFIX, _rule)


install()
