"""The batching engine: walks functions in order and applies the rule table.

The rewrite works in place on a module that the caller owns. For each value
the engine knows whether it is batched (it then carries the batch dimension
first). An op none of whose operands, nor the values its regions capture, is
batched is left exactly as it was: unbatched work stays unbatched. Any other
op goes to the rule the rule table (passes/rules/table.py) finds for it (a
user's ``register_rule`` rule first); the rule builds new ops before the old
one (or retypes it in place) and returns the new results. An op with no rule,
and an op whose rule declines this use of it (``fb.decline``), goes to the
per-lane fallback (passes/fallback.py), which ``strict`` turns into
UnsupportedOpError.

Entry arguments are moved to batch-first once on entry and results are moved
to their ``out_axes`` once at exit. Callees of ``func.call`` are batched once
per pattern of batched arguments into a private clone (``@f_b01``).
"""
from __future__ import annotations

import contextlib
import dataclasses
from typing import Callable, Sequence

from jaxlib.mlir import ir
from jaxlib.mlir import passmanager

from stablehlo_batch.passes import builders as bld
from stablehlo_batch.passes import report as _report
from stablehlo_batch.passes.layout import sink_transposes
from stablehlo_batch.passes.fallback import fallback, is_strict
from stablehlo_batch.passes.rules import RULES, RuleTable
from stablehlo_batch.passes.rules.helpers import captures
from stablehlo_batch.passes.errors import (AxisSpecError, Declined, UnsupportedOpError,
                           VerificationError, format_location)
from stablehlo_batch.passes.rules.collectives import LANE_ATTR, LANES_ATTR, SYMBOLIC_ATTR

# A rule result: one (new value, is batched) pair per result of the op.
Results = list[tuple[ir.Value, bool]]
Rule = Callable[["FunctionBatcher", ir.Operation, tuple[bool, ...]], Results]


# Ops through which an error inside another function is reached.
_CALL_OPS = ("func.call", "stablehlo.composite")


@dataclasses.dataclass(frozen=True)
class BatchNote:
    """One recorded batching decision (see ``FunctionBatcher.note``)."""
    kind: str
    op_name: str
    func_name: str
    location: str
    detail: str = ""


class FunctionBatcher:
    """Batches one ``func.func`` in place; rules receive it as their context."""

    def __init__(self, program: "ModuleBatcher", func_op: ir.Operation):
        self.program = program
        self.func_op = func_op.operation
        self.func_name = ir.StringAttr(func_op.attributes["sym_name"]).value
        # The batch dim of types: the size, or bld.DYN for a symbolic size.
        self.batch_dim = program.batch_dim
        self.symbolic = program.symbolic
        self._size_source: tuple[ir.Value, int] | None = None
        self._batched: set[ir.Value] = set()
        self._journal: list[ir.Value] | None = None
        self._dropped: list[ir.Operation] = []

    # ---- helpers for rules -------------------------------------------------
    @property
    def axis_size(self) -> int:
        """The batch size as an int. With a symbolic batch size a rule that
        reads it cannot build its ops: it fails with UnsupportedOpError naming
        the op (rules that work symbolically use ``batch_dim`` and builders)."""
        if self.symbolic:
            raise bld.SymbolicShapeError("this rule needs a static batch size")
        return self.batch_dim

    def batch_size_1d(self) -> ir.Value:
        """A tensor<1xi32> holding the batch size, read at the current
        insertion point from a batched argument of the function."""
        if not self.symbolic:  # a `?` that is not the batch: the input's own
            raise bld.SymbolicShapeError("dynamic dimensions in the input module are "
                                         "not supported")
        if self._size_source is None:
            self._size_source = self._lane_count_source()
        if self._size_source is None:
            raise bld.SymbolicShapeError("the function has no batched argument to read "
                                         "the batch size from")
        arg, axis = self._size_source
        i32 = ir.IntegerType.get_signless(32)
        size = bld.create("stablehlo.get_dimension_size", [bld.tensor_type([], i32)], [arg],
                          {"dimension": bld.i64_attr(axis)}).result
        return bld.reshape(size, [1])

    def _lane_count_source(self) -> tuple[ir.Value, int] | None:
        """In a module lowered for a named axis at placeholder lane counts, a
        `?` of an argument is the number of lanes, the batch size (a callee
        given an all_gather's unbatched result): (argument, dim), or None."""
        if SYMBOLIC_ATTR not in self.program.module.operation.attributes:
            return None
        for arg in self.func_op.regions[0].blocks[0].arguments:
            if bld.ranked(arg.type) is not None:
                for d, n in enumerate(bld.shape_of(arg.type)):
                    if n == bld.DYN:
                        return arg, d
        return None

    def is_batched(self, v: ir.Value) -> bool:
        return v in self._batched

    def mark(self, v: ir.Value):
        """Records that ``v`` carries the batch dimension first."""
        if self._journal is not None and v not in self._batched:
            self._journal.append(v)
        self._batched.add(v)

    @contextlib.contextmanager
    def trial(self):
        """Marks made inside are forgotten on exit: for rewriting a throw-away
        clone to learn which of its values come out batched. The clone must be
        erased by the caller before anything else is created."""
        outer, self._journal = self._journal, []
        report_mark = self.program.collector.mark()
        try:
            yield
        finally:
            self.program.collector.rollback(report_mark)
            for v in self._journal:
                self._batched.discard(v)
            if outer is not None:
                outer.extend(v for v in self._journal if v in self._batched)
            self._journal = outer

    def batched_type(self, t: ir.Type) -> ir.Type:
        return bld.insert_dim(t, self.batch_dim, 0)

    def materialize(self, v: ir.Value) -> ir.Value:
        """``v`` as a batched value: broadcast along a new leading dim if needed."""
        if self.is_batched(v):
            return v
        if bld.is_tuple(v.type):
            tt = ir.TupleType(v.type)
            parts = [bld.create("stablehlo.get_tuple_element", [tt.get_type(i)], [v],
                                {"index": ir.IntegerAttr.get(
                                    ir.IntegerType.get_signless(32), i)}).result
                     for i in range(tt.num_types)]
            parts = [self.materialize(p) for p in parts]
            return bld.create("stablehlo.tuple", [self.batched_type(v.type)],
                              parts).result
        shape = bld.shape_of(v)
        owner = v.owner
        if (isinstance(owner, ir.OpView) or isinstance(owner, ir.Operation)) and \
                owner.name == "stablehlo.broadcast_in_dim":
            # Broadcast the broadcast's source directly: one op, not two.
            dims = ir.DenseI64ArrayAttr(owner.attributes["broadcast_dimensions"])
            return bld.broadcast_in_dim(owner.operands[0], [self.batch_dim] + shape,
                                        [d + 1 for d in dims])
        return bld.broadcast_in_dim(v, [self.batch_dim] + shape,
                                    list(range(1, len(shape) + 1)))

    def drop(self, op: ir.Operation):
        """Asks the engine to erase ``op`` after its rule returns: for a rule
        that replaced an op without results (nothing else tells the engine)."""
        self._dropped.append(op)

    def note(self, kind: str, op: ir.Operation, detail: str = ""):
        """Records a batching decision worth reporting to the user (a branch
        turned into selects, a loop given a batched predicate, a per-lane
        loop, ...): ``kind`` is a short tag, ``detail`` one line of text."""
        self.program.notes.append(BatchNote(kind, op.name, self.func_name,
                                            format_location(op.location), detail))

    def unsupported(self, op: ir.Operation, reason: str | None = None) -> UnsupportedOpError:
        return UnsupportedOpError(op.name, self.func_name,
                                  format_location(op.location), reason)

    def decline(self, op: ir.Operation, why: str):
        """Says that the rule has no vectorized form for this use of ``op``
        (``why``: one line for the user); never returns. The engine then
        batches ``op`` the way it batches an op without a rule: once per lane
        with a FallbackWarning, or UnsupportedOpError under strict. Call it
        before the rule changes or builds anything."""
        raise Declined(why)

    def region_captures_batched(self, op: ir.Operation) -> bool:
        """True when an op nested in ``op``'s regions uses a batched outer value."""
        return captures(op, self.is_batched)

    # ---- the walk ----------------------------------------------------------
    def run(self, arg_axes: Sequence[int | None]) -> ir.Operation:
        """Batches the body; ``arg_axes[i]`` is where argument i carries the batch
        (None: unbatched). Returns the function's return op."""
        block = self.func_op.regions[0].blocks[0]
        self._batch_arguments(block, arg_axes)
        return self.batch_block(block, [False] * len(block.arguments))

    def batch_block(self, block: ir.Block, arg_flags: Sequence[bool]) -> ir.Operation:
        """Batches a block in place: arguments flagged True get the batch dim
        first. Returns its terminator, whose operands are left for the caller."""
        for arg, batched in zip(block.arguments, arg_flags):
            if batched and not self.is_batched(arg):
                arg.set_type(self.batched_type(arg.type))
                self.mark(arg)
        ops = [o.operation for o in block.operations]
        self.batch_ops(ops[:-1])
        return ops[-1]

    def batch_ops(self, ops: Sequence[ir.Operation]):
        """Batches ops in order (ops already in place, e.g. inlined from a region)."""
        for op in ops:
            self._batch_op(op)

    def _batch_arguments(self, block: ir.Block, arg_axes: Sequence[int | None]):
        since = len(self.program.collector.pending)
        try:
            self._move_arguments(block, arg_axes)
        finally:
            self.program.collector.claim(_report.ENTRY, since)

    def _move_arguments(self, block: ir.Block, arg_axes: Sequence[int | None]):
        for arg, axis in zip(block.arguments, arg_axes):
            if axis is None:
                continue
            arg.set_type(bld.insert_dim(arg.type, self.batch_dim, axis))
            if self._size_source is None:
                self._size_source = (arg, axis)
            if axis == 0:
                self.mark(arg)
                continue
            with ir.InsertionPoint.at_block_begin(block), self.func_op.location:
                moved = bld.move_axis(arg, axis, 0)
            arg.replace_all_uses_except(moved, moved.owner.operation)
            self.mark(moved)

    def _batch_op(self, op: ir.Operation):
        flags = tuple(v in self._batched for v in op.operands)
        collector = self.program.collector
        if not any(flags) and not (len(op.regions) and self.region_captures_batched(op)) \
                and not self.program.lane_dependent(op):
            collector.kept += 1
            return
        rule = self.program.rules.lookup(op) or fallback
        since = len(collector.pending)
        try:
            with ir.InsertionPoint(op), op.location, bld.batch_size_source(self.batch_size_1d):
                try:
                    results = rule(self, op, flags)
                except Declined as declined:
                    results = fallback(self, op, flags, declined.why)
        except bld.SymbolicShapeError as e:
            why = f"not supported with a symbolic batch size: {e}" if self.symbolic else str(e)
            raise self.unsupported(op, why) from None
        except UnsupportedOpError as e:
            if op.name in _CALL_OPS:
                e.add_call_site(format_location(op.location))
            raise
        finally:
            collector.claim(op.name, since)
        collector.ruled.append(op.name)
        replaced = False
        for old, (new, batched) in zip(op.results, results):
            if new != old:
                old.replace_all_uses_with(new)
                replaced = True
            if batched:
                self.mark(new)
        if replaced or any(d == op for d in self._dropped):
            self._dropped = [d for d in self._dropped if d != op]
            collector.erased(op, replaced=True)
            op.erase()


class ModuleBatcher:
    """Batches functions of one module; memoizes callees per batching pattern."""

    def __init__(self, module: ir.Module, axis_size: int,
                 rules: RuleTable | None = None, *, strict: bool | None = None):
        self.module = module
        # axis_size "?" (or any name) asks for a symbolic batch size: the batch
        # dim of every type is then ``?`` (bld.DYN).
        self.symbolic = isinstance(axis_size, str)
        self.batch_dim = bld.DYN if self.symbolic else int(axis_size)
        self.axis_size = "?" if self.symbolic else self.batch_dim
        # The rule table; the global one sees the rules registered in the
        # current context.
        self.rules = RULES if rules is None else rules
        # strict: an op without a rule raises instead of running per lane
        # (None: as the enclosing fallback.strict_mode says).
        self.strict = is_strict() if strict is None else bool(strict)
        self.fallback_warned: set[tuple[str, str]] = set()
        self.symbols = ir.SymbolTable(module.operation)
        # A module lowered for a named batch axis holds collectives over it.
        self.lanes = LANES_ATTR in module.operation.attributes
        self._lane_funcs: dict[str, bool] = {}
        self._names = {ir.StringAttr(op.attributes["sym_name"]).value
                       for op in module.body.operations if "sym_name" in op.attributes}
        self._callees: dict[tuple[str, tuple[bool, ...]], tuple[str, tuple[bool, ...]]] = {}
        self._in_progress: set[str] = set()
        self.notes: list[BatchNote] = []
        # Counts for the batching report; shares ``notes``.
        self.collector = _report.Collector()
        self.collector.notes = self.notes

    def lane_dependent(self, op: ir.Operation) -> bool:
        """True when ``op`` is, or holds, a collective over the batch axis
        (passes/rules/collectives.py): its rule runs even on unbatched operands."""
        if not self.lanes:
            return False
        found = False

        def visit(inner):
            nonlocal found
            found = LANE_ATTR in inner.attributes or (
                inner.name == "func.call" and
                self._lane_func(ir.FlatSymbolRefAttr(inner.attributes["callee"]).value))
            return ir.WalkResult.INTERRUPT if found else ir.WalkResult.ADVANCE

        op.walk(visit)
        return found

    def _lane_func(self, name: str) -> bool:
        if name not in self._lane_funcs:
            self._lane_funcs[name] = False  # recursion: decided by the other ops
            self._lane_funcs[name] = self.lane_dependent(self.lookup_func(name))
        return self._lane_funcs[name]

    def lookup_func(self, name: str) -> ir.Operation:
        try:
            return self.symbols[name].operation
        except KeyError:
            raise AxisSpecError(f"function @{name} not found in the module") from None

    def batch_callee(self, name: str, pattern: tuple[bool, ...]) -> tuple[str, tuple[bool, ...]]:
        """Returns the name of a clone of @name batched for ``pattern`` and which
        of its results are batched."""
        key = (name, pattern)
        if key in self._callees:
            return self._callees[key]
        if name in self._in_progress:
            raise UnsupportedOpError("func.call", name, "unknown",
                                     "recursive calls cannot be batched")
        original = self.lookup_func(name)
        clone = original.clone(ip=ir.InsertionPoint(self.module.body))
        new_name = self._fresh_name(f"{name}_b" + "".join("1" if p else "0" for p in pattern))
        clone.attributes["sym_name"] = ir.StringAttr.get(new_name)
        clone.attributes["sym_visibility"] = ir.StringAttr.get("private")
        self._names.add(new_name)
        self._in_progress.add(name)
        report_mark = self.collector.mark()
        try:
            fb = FunctionBatcher(self, clone)
            ret = fb.run([0 if p else None for p in pattern])
            flags = tuple(fb.is_batched(v) for v in ret.operands)
            _set_function_type(clone, ret)
            _erase_dead_ops(clone.regions[0].blocks[0], self.collector)
            self.collector.keep(report_mark)
        finally:
            self._in_progress.discard(name)
        self._callees[key] = (new_name, flags)
        return new_name, flags

    def _fresh_name(self, base: str) -> str:
        name, i = base, 0
        while name in self._names:
            i += 1
            name = f"{base}_{i}"
        return name

    def batch_entry(self, func_name: str, in_axes: Sequence[int | None],
                    out_axes: Sequence[int | None]) -> list[bool]:
        """Batches @func_name in place: argument i carries the batch at
        ``in_axes[i]``, result j at ``out_axes[j]``. Returns which results
        were batched before out_axes were applied."""
        func_op = self.lookup_func(func_name)
        block = func_op.regions[0].blocks[0]
        n_args, n_res = len(block.arguments), None
        if len(in_axes) != n_args:
            raise AxisSpecError(f"in_axes has {len(in_axes)} entries but @{func_name} "
                                f"takes {n_args} arguments")
        for i, (arg, ax) in enumerate(zip(block.arguments, in_axes)):
            if ax is None:
                continue
            if bld.ranked(arg.type) is None:
                raise AxisSpecError(f"argument {i} of @{func_name} has type {arg.type}, "
                                    "which cannot be batched (use in_axes none)")
            rank = bld.rank_of(arg)
            if not -rank - 1 <= ax <= rank:
                raise AxisSpecError(f"in_axes[{i}]={ax} is out of range for argument "
                                    f"{i} of rank {rank}")
        in_axes = [None if ax is None else ax % (bld.rank_of(a) + 1)
                   for a, ax in zip(block.arguments, in_axes)]
        if self.symbolic and all(ax is None for ax in in_axes):
            raise AxisSpecError("a symbolic batch size needs at least one batched argument")
        # (a module lowered for a named axis at placeholder lane counts may
        # take the number of lanes as a dimension: that `?` is the batch size)
        if self.symbolic and SYMBOLIC_ATTR not in self.module.operation.attributes and any(
                bld.ranked(a.type) is not None and bld.is_dynamic(bld.shape_of(a.type))
                for a in block.arguments):
            raise AxisSpecError("a symbolic batch size needs a function with static shapes")
        fb = FunctionBatcher(self, func_op)
        ret = fb.run(in_axes)
        n_res = len(ret.operands)
        if len(out_axes) != n_res:
            raise AxisSpecError(f"out_axes has {len(out_axes)} entries but @{func_name} "
                                f"returns {n_res} results")
        flags = [fb.is_batched(v) for v in ret.operands]
        since = len(self.collector.pending)
        with ir.InsertionPoint(ret), ret.location, bld.batch_size_source(fb.batch_size_1d):
            for j, (v, b, ax) in enumerate(zip(list(ret.operands), flags, out_axes)):
                if ax is None:
                    if b:
                        raise AxisSpecError(
                            f"result {j} of @{func_name} is batched but its out_axes "
                            f"is None", result_index=j)
                    continue
                rank = bld.rank_of(v) + (0 if b else 1)
                if not -rank <= ax < rank:
                    raise AxisSpecError(f"out_axes[{j}]={ax} is out of range for result "
                                        f"{j} of rank {rank - 1}", result_index=j,
                                        out_of_range=(ax, rank))
                ret.operands[j] = bld.move_axis(fb.materialize(v), 0, ax % rank)
        self.collector.claim(_report.EXIT, since)
        _set_function_type(func_op, ret)
        _erase_dead_ops(block, self.collector)
        if self._callees:
            self._drop_unused_private_functions()
        return flags

    def _drop_unused_private_functions(self):
        """Removes private functions that only the pre-batching calls used."""
        passmanager.PassManager.parse("builtin.module(symbol-dce)").run(self.module.operation)


# Ops the rewrite creates that have no effect but their results.
_PURE = frozenset({"stablehlo.broadcast_in_dim", "stablehlo.constant", "stablehlo.reshape",
                   "stablehlo.transpose", "stablehlo.convert", "stablehlo.slice"})


def _erase_dead_ops(block: ir.Block, collector: "_report.Collector | None" = None):
    """Drops pure ops left without uses (e.g. a broadcast that was folded)."""
    for op in reversed([o.operation for o in block.operations]):
        if op.name in _PURE and all(not list(r.uses) for r in op.results):
            if collector is not None:
                collector.erased(op)
            op.erase()


def _set_function_type(func_op: ir.Operation, ret: ir.Operation):
    block = func_op.regions[0].blocks[0]
    ftype = ir.FunctionType.get([a.type for a in block.arguments],
                                [v.type for v in ret.operands])
    func_op.attributes["function_type"] = ir.TypeAttr.get(ftype)


def verify(module: ir.Module, stage: str):
    """Raises VerificationError (with the MLIR diagnostics) if ``module`` is invalid."""
    try:
        ok = module.operation.verify()
    except ir.MLIRError as e:
        diags = "; ".join(f"{d.message} at {format_location(d.location)}"
                          for d in e.error_diagnostics) or str(e)
        raise VerificationError(stage, diags) from None
    if not ok:
        raise VerificationError(stage, "verification failed")


def batch_function_in_module(module: ir.Module, func_name: str,
                             in_axes: Sequence[int | None],
                             out_axes: Sequence[int | None],
                             axis_size: int, *, strict: bool | None = None,
                             rules: RuleTable | None = None) -> list[bool]:
    """Batches @func_name of ``module`` in place and verifies the result.
    ``strict``: an op without a batching rule raises UnsupportedOpError
    instead of falling back to a per-lane loop (passes/fallback.py).
    ``rules``: the rule table (default: passes.rules.RULES)."""
    return batch_function_with_report(module, func_name, in_axes, out_axes,
                                      axis_size, strict=strict, rules=rules)[0]


def batch_function_with_report(module: ir.Module, func_name: str,
                               in_axes: Sequence[int | None],
                               out_axes: Sequence[int | None],
                               axis_size: int, *, strict: bool | None = None,
                               rules: RuleTable | None = None, verify_input: bool = True
                               ) -> tuple[list[bool], _report.BatchingReport]:
    """``batch_function_in_module`` that also returns the batching report
    (passes/report.py). ``verify_input=False``: the caller knows ``module``
    verifies (jax's lowering verified it in this process); the batched
    module is verified either way."""
    if verify_input:
        verify(module, "input")
    with module.context, ir.Location.unknown(module.context):
        batcher = ModuleBatcher(module, axis_size, rules, strict=strict)
        with batcher.collector:
            flags = batcher.batch_entry(func_name, in_axes, out_axes)
        report = batcher.collector.finish(func_name, batcher.axis_size)
        if not batcher.symbolic:
            sink_transposes(module, func_name)
        if batcher.symbolic:  # how jax.export marks a batch-size-free module
            module.operation.attributes["jax.uses_shape_polymorphism"] = ir.BoolAttr.get(True)
    verify(module, "batched")
    return flags, report
