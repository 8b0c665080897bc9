"""Sinking transposes after batching: no price for in_axes / out_axes != 0.

The rules keep the batch dimension first, so an argument batched on another
axis is moved to the front on entry, and some rules (a batched-kernel
convolution, say) move the batch out of the way and back. XLA does not fold
every such move: a transpose that feeds a sort / top_k, a while loop or a
reduce_window is materialized, costing time and a copy of the data.

This post-pass runs on the batched module. It pushes each ``transpose``
towards its uses, through ops that can work on the unmoved operand by
changing their dimension attributes instead — the batch position is then
tracked in the layout of the values, as ``jax.vmap``'s ``BatchTracer``
tracks ``batch_dim`` — and cancels or composes it with the next transpose:

- a transpose of a transpose becomes one transpose (none for the identity);
  a ``broadcast_in_dim`` takes the permutation into its dimensions;
- a transpose of a ``broadcast_in_dim``, an ``iota`` or a splat constant is
  that op made in the moved shape; a broadcast of a broadcast is one;
- elementwise ops (other operands: a transpose by the same permutation, a
  ``broadcast_in_dim``, a splat constant or a scalar), ``reduce``,
  ``reduce_window``, ``sort`` (its ``dimension``), ``chlo.top_k`` (when the
  last dim stays last), ``slice``, ``reverse``, ``pad``, ``concatenate``,
  ``dynamic_slice``, ``dynamic_update_slice`` (an update the move only
  shifts unit dims of is reshaped) and ``dot_general`` (its dimension
  numbers) run on the unmoved operand; the transpose moves to their results
  (smaller after a reduce, a slice or a top_k);
- ``convolution`` (input or kernel) and ``gather`` (its operand, where the
  offset dims keep their order) take the move in their dimension numbers:
  their results do not move;
- a private function called once (``func.call``, or the decomposition of a
  ``stablehlo.composite`` such as ``chlo.top_k``; cloned when called from
  several places) takes the unmoved argument and the transpose moves into its
  body; a transpose returned from it moves out to the call site;
- a loop-invariant ``while`` carry (a ``scan``'s xs) is carried unmoved and
  the transpose moves into the body, where the scan's per-step slice takes it;
- a ``reshape`` that splits dims, or merges dims that are adjacent and in
  order in the unmoved value (a head split ``(s, d) -> (s, h, d / h)``
  with the batch elsewhere), reshapes the unmoved value and the move,
  regrouped, goes to its result; a ``broadcast_in_dim`` that only adds unit
  dims (a keepdims mean) lets the move through instead of taking it;
- a transpose that only moves unit dimensions becomes a ``reshape``, and a
  reshape of a reshape one reshape.

The conservative run moves a transpose only when its one use can take it
(or when every use can take it without emitting a new one), so it never
adds data movement; what is left stops where a consumer cannot absorb it,
at worst where it started. An aggressive run also sinks a transpose into
several different consumers (each moves its own result; the moves often
meet again at a select or an add and cancel) and carries a varying
``while`` carry in the layout its result is moved to (a scan's ys returned
at out_axes 1). Either can add moves. ``sink_transposes`` runs the
conservative pass on the module; only where that stopped at a transpose
an aggressive run could sink does it try the aggressive run on a clone
(and, where it re-laid carries, variants), and the module adopts the
clone's function bodies where they move no more bytes (``moved_bytes``,
loop bodies weighted; then fewer moving ops). Symbolic batch sizes are
left alone.
"""
from __future__ import annotations

import threading
from typing import Sequence

import numpy as np
from jaxlib.mlir import ir
from jaxlib.mlir.dialects import stablehlo

from stablehlo_batch.passes import builders as bld
from stablehlo_batch.passes.rules.elementwise import CHLO_ELEMENTWISE, STABLEHLO_ELEMENTWISE
from stablehlo_batch.passes.rules.structural import CALL_RULES

_ELEMENTWISE = frozenset([f"stablehlo.{n}" for n in STABLEHLO_ELEMENTWISE] +
                         [f"chlo.{n}" for n in CHLO_ELEMENTWISE])
# Consumers that take every operand shaped like the transposed one.
_MULTI = _ELEMENTWISE | {"stablehlo.reduce", "stablehlo.reduce_window", "stablehlo.sort",
                         "stablehlo.concatenate", "stablehlo.dynamic_update_slice"}
_PURE = frozenset({"stablehlo.broadcast_in_dim", "stablehlo.constant", "stablehlo.reshape",
                   "stablehlo.transpose", "stablehlo.iota"})
# Ops that refer to no function; reading their dense attributes back into
# Python can abort (complex constants), so they are not searched.
_NO_SYMBOLS = frozenset({"stablehlo.constant", "chlo.constant", "chlo.constant_like"})
# Guard against a rewrite that would not converge.
_MAX_STEPS = 10_000


def _perm_of(op) -> list[int]:
    return list(ir.DenseI64ArrayAttr(op.attributes["permutation"]))


def _i64s(op, name) -> list[int]:
    return list(ir.DenseI64ArrayAttr(op.attributes[name]))


def _inverse(perm: Sequence[int]) -> list[int]:
    inv = [0] * len(perm)
    for i, p in enumerate(perm):
        inv[p] = i
    return inv


def _static(t: ir.Type) -> bool:
    """A ranked tensor type of static shape (asked of every operand of every
    step: kept cheap)."""
    t = t.maybe_downcast() if hasattr(t, "maybe_downcast") else t
    return isinstance(t, ir.RankedTensorType) and t.has_static_shape


def _key(op) -> int:
    """A transpose's / reshape's identity while it lives: the hash of its one
    result (a value's hash is its address; an operation's is of its
    contents)."""
    return hash(op.results[0])


def _owner(v: ir.Value):
    o = v.owner
    return o.operation if isinstance(o, (ir.Operation, ir.OpView)) else None


def _is_op(v: ir.Value, name: str):
    o = _owner(v)
    return o if o is not None and o.name == name else None


def _retype(v: ir.Value, shape: Sequence[int]):
    v.set_type(bld.tensor_type(shape, bld.element_type(v), like=v.type))


def _same_size(a: ir.Value, b: ir.Value) -> bool:
    return int(np.prod(bld.shape_of(a), dtype=np.int64)) == \
        int(np.prod(bld.shape_of(b), dtype=np.int64))


def _unpermute_shape(shape: Sequence[int], perm: Sequence[int]) -> list[int]:
    """The shape of x where ``shape`` is that of transpose(x, perm)."""
    inv = _inverse(perm)
    return [shape[inv[j]] for j in range(len(shape))]


def _permute_dim_attr(op, name: str, inv: Sequence[int]):
    """A per-dimension i64 array attribute of ``op`` (slice limits, window
    sizes, paddings) for its operand taken unmoved (``inv``: the inverse
    permutation)."""
    vals = _i64s(op, name)
    op.attributes[name] = bld.i64_array([vals[inv[j]] for j in range(len(vals))])


# The run in progress on this thread, which registers the transposes and
# reshapes the rewrites create (its work list).
_current = threading.local()


def _begin(sinker):
    prev = getattr(_current, "sinker", None)
    _current.sinker = sinker
    return prev


def _end(prev):
    _current.sinker = prev


def _made(v: ir.Value, out: ir.Value) -> ir.Value:
    sinker = getattr(_current, "sinker", None)
    if sinker is not None and out != v:  # a new op (not v returned as it was)
        sinker._made(_owner(out))
    return out


def _tr(v: ir.Value, perm: Sequence[int]) -> ir.Value:
    return _made(v, bld.transpose(v, perm))


def _rs(v: ir.Value, shape: Sequence[int]) -> ir.Value:
    return _made(v, bld.reshape(v, shape))


def _transpose_after(v: ir.Value, perm: Sequence[int]):
    """Inserts transpose(v, perm) right after v's definition and routes every
    other use of v through it."""
    perm = list(perm)
    if perm == list(range(len(perm))):
        return
    owner = _owner(v)
    ip = ir.InsertionPoint.after(owner) if owner is not None else \
        ir.InsertionPoint.at_block_begin(v.owner)
    with ip, (owner.location if owner is not None else ir.Location.unknown()):
        t = _tr(v, perm)
    v.replace_all_uses_except(t, _owner(t))


class _Sinker:
    """``module``: a ``builtin.module`` operation. ``aggressive``: also sink a
    transpose into several different consumers (each emits its own move
    after it) and carry a varying ``while`` carry in the layout its result
    is moved to; either can add moves where they do not meet again, so
    ``sink_transposes`` keeps that run's result only where it moves fewer
    bytes."""

    def __init__(self, module: ir.Operation, entry: str, aggressive: bool = False,
                 recarry: set | None = None):
        self.module = module
        self.body = module.regions[0].blocks[0]
        self.entry = entry
        self.changed = 0
        self.aggressive = aggressive
        self.aggressive_used = False
        self._recarried: set = set()
        self.recarry = recarry  # the carries it may re-lay (None: any)
        self.recarry_keys: list = []  # those it did: (while's walk index, carry)
        # a conservative run: whether its last sweep stopped at a transpose
        # an aggressive run could sink (then sink_transposes tries one)
        self.missed = False
        # after a run that changed anything: _move_cost's tuple
        self.cost: tuple | None = None
        self._gone: set = set()  # keys (``_key``) erased in this sweep
        self._created: dict = {}  # transposes and reshapes made in this sweep, by key

    # ---- bookkeeping ------------------------------------------------------
    def _funcs(self) -> dict[str, ir.Operation]:
        return {ir.StringAttr(op.attributes["sym_name"]).value: op.operation
                for op in self.body.operations
                if op.operation.name == "func.func"}

    def _callers(self, name: str) -> list[ir.Operation]:
        """Every op whose attributes refer to @name (a call, a composite's
        decomposition, or anything else: then the function is not touched).
        Attributes are searched structurally (printing some aborts)."""
        out = []

        def mentions(attr) -> bool:
            if isinstance(attr, ir.FlatSymbolRefAttr):
                return attr.value == name
            if isinstance(attr, ir.SymbolRefAttr):
                return True  # nested reference: count it, to be safe
            if isinstance(attr, ir.ArrayAttr):
                return any(mentions(a) for a in attr)
            if isinstance(attr, ir.DictAttr):
                return any(mentions(attr[i].attr) for i in range(len(attr)))
            return False

        def visit(op):
            if op.name == "func.func":
                return ir.WalkResult.ADVANCE
            if op.name in _NO_SYMBOLS:
                return ir.WalkResult.ADVANCE
            if any(mentions(op.attributes[i].attr) for i in range(len(op.attributes))
                   if op.attributes[i].name not in ("value", "padding")):
                out.append(op.operation)
            return ir.WalkResult.ADVANCE
        self.module.walk(visit)
        return out

    def _transposes(self) -> list[ir.Operation]:
        """The transposes and reshapes of the batched function and of the
        private functions (other public functions are not ours to change)."""
        out = []

        def visit(op):
            if op.name in ("stablehlo.transpose", "stablehlo.reshape"):
                out.append(op.operation)
            return ir.WalkResult.ADVANCE
        for func in self._funcs().values():
            name = ir.StringAttr(func.attributes["sym_name"]).value
            if name == self.entry or _private(func):
                func.walk(visit)
        return out

    def run(self) -> int:
        # Sweeps over every transpose / reshape, each a step where it can take
        # one: restarting the walk after every step was quadratic (a
        # 5000-op transformer took 1.1 s). The module is walked once; the
        # next sweep's work list is this one's survivors, then what its steps
        # created (``_tr`` / ``_rs`` register those; a cloned callee's are
        # collected). A step erases only transposes and reshapes
        # (``_erase``). An operation is known by the hash of its one result,
        # taken while it lives: a value's hash is its address (an
        # operation's is of its contents, which steps change, and an erased
        # operation must not be touched). An address is reused only after its
        # operation is erased, so a listed key erased in this sweep is that
        # operation gone, and a created one erased leaves the list.
        ops = [(_key(o), o) for o in self._transposes()]
        token = _begin(self)
        try:
            for _ in range(_MAX_STEPS):
                progress = False
                self.missed = False
                self._gone, self._created = set(), {}
                for key, op in ops:
                    if key in self._gone:
                        continue  # erased in this sweep: do not touch it
                    if self._step(op):
                        self.changed += 1
                        progress = True
                if not progress:
                    break
                ops = [(k, o) for k, o in ops if k not in self._gone] + \
                    list(self._created.items())
        finally:
            _end(token)
            self._gone, self._created = set(), {}
        if self.changed:
            self.cost = self._finish()
        return self.changed

    def _made(self, op: ir.Operation):
        self._created[_key(op)] = op

    def _collect(self, func: ir.Operation):
        """Adds a (cloned) function's transposes and reshapes to the work list."""
        def visit(op):
            if op.name in ("stablehlo.transpose", "stablehlo.reshape"):
                self._made(op.operation)
            return ir.WalkResult.ADVANCE
        func.walk(visit)

    def _finish(self) -> int:
        """One walk over the module after the sweeps: a broadcast_in_dim of a
        broadcast_in_dim becomes one (the moves folded into broadcasts often
        meet that way; in the functions we change), the broadcasts,
        transposes and constants the rewrites left without uses are dropped,
        and what the rest move is summed (``moved_bytes``)."""
        dead, inners, cost = [], [], {}

        def visit(op, ours):
            name = op.name
            if ours and name == "stablehlo.broadcast_in_dim":
                inner = _is_op(op.operands[0], "stablehlo.broadcast_in_dim")
                if inner is not None and all(_static(v.type) for v in (
                        inner.operands[0], inner.results[0], op.results[0])):
                    d_in = _i64s(inner, "broadcast_dimensions")
                    d_out = _i64s(op, "broadcast_dimensions")
                    op.operands[0] = inner.operands[0]
                    op.attributes["broadcast_dimensions"] = bld.i64_array(
                        [d_out[d] for d in d_in])
                    inners.append(inner)
            if name in _PURE and all(not list(r.uses) for r in op.results):
                dead.append(op.operation)
            else:
                n = _moved(op)
                if n:
                    cost[_key(op)] = _cost_entry(op, n)
            return ir.WalkResult.ADVANCE
        for op in self.body.operations:
            if op.operation.name == "func.func":
                name = ir.StringAttr(op.attributes["sym_name"]).value
                ours = name == self.entry or _private(op.operation)
                op.operation.walk(lambda o, ours=ours: visit(o, ours))
            else:
                op.operation.walk(lambda o: visit(o, False))
        for inner in inners:
            if all(not list(r.uses) for r in inner.results):
                dead.append(inner)
        # erased with a work list: an op is queued once, keyed while live
        queued = set()
        work = []
        for op in dead:
            if _key(op) not in queued:
                queued.add(_key(op))
                work.append((_key(op), op))
        while work:
            key, op = work.pop()
            cost.pop(key, None)
            sources = [_owner(v) for v in op.operands]
            op.erase()
            for src in sources:
                if src is not None and src.name in _PURE and _key(src) not in queued and \
                        all(not list(r.uses) for r in src.results):
                    queued.add(_key(src))
                    work.append((_key(src), src))
        return tuple(sum(e[i] for e in cost.values()) for i in range(3)) + (len(cost),)

    def _erase(self, op: ir.Operation):
        key = _key(op)
        self._created.pop(key, None)
        self._gone.add(key)
        op.erase()

    # ---- one rewrite ------------------------------------------------------
    def _step(self, op: ir.Operation) -> bool:
        if not all(_static(v.type) for v in list(op.operands) + list(op.results)):
            return False
        if op.name == "stablehlo.reshape":
            return self._fold_reshape(op)
        x, r, perm = op.operands[0], op.results[0], _perm_of(op)
        uses = [(u.owner.operation, u.operand_number) for u in r.uses]
        if not uses:
            self._erase(op)
            return True
        if perm == list(range(len(perm))):
            r.replace_all_uses_with(x)
            self._erase(op)
            return True
        if self._unit_move(op, x, perm):
            return True
        if self._fold_into_source(op, x, perm):
            return True
        if self.aggressive and self._into_while_carry(op, x, perm):
            self.aggressive_used = True
            return True
        if not self.aggressive and not self.missed and self._varying_carry_result(x):
            self.missed = True
        # uses that take the permutation without emitting a transpose
        progress = False
        for user, _ in uses:
            if user.name == "stablehlo.transpose":
                self._compose(user, x, perm)
                progress = True
            elif user.name == "stablehlo.broadcast_in_dim":
                dims = _i64s(user, "broadcast_dimensions")
                new = [0] * len(dims)
                for k, d in enumerate(dims):
                    new[perm[k]] = d
                user.operands[0] = x
                if self.aggressive and new != sorted(new) and _same_size(x, user.results[0]):
                    # it only adds unit dims (a reshape): the move goes
                    # through it, to sink further, rather than into it
                    self._through_broadcast(user, new)
                else:
                    user.attributes["broadcast_dimensions"] = bld.i64_array(new)
                progress = True
        if progress:
            if not list(r.uses):
                self._erase(op)
            return True
        user, index = uses[0]
        if all(u == user for u, _ in uses):
            if len(uses) > 1 and user.name not in _MULTI:
                return False
            done = self._take(op, user, index, x, perm)
        elif self.aggressive:
            # several consumers: each that can take it does and moves its
            # own result; the moves meet again downstream (and compose, or
            # cancel) or not: sink_transposes compares
            firsts = []
            for u, i in uses:
                if not any(u == f for f, _ in firsts):
                    firsts.append((u, i))
            done = False
            for u, i in firsts:
                if sum(1 for v, _ in uses if v == u) > 1 and u.name not in _MULTI:
                    continue
                if self._take(op, u, i, x, perm):
                    done = True
            self.aggressive_used |= done
        else:
            self.missed = self.missed or any(
                u.name in self._HANDLERS or u.name in _ELEMENTWISE for u, _ in uses)
            return False
        if done and not list(r.uses):
            self._erase(op)
        return bool(done)

    def _take(self, t, user, index, x, perm) -> bool:
        """``user`` takes transpose ``t`` (its operand ``index``) by working
        on the unmoved ``x``, if its handler can."""
        handler = self._HANDLERS.get(user.name)
        if handler is None and user.name in _ELEMENTWISE:
            handler = _Sinker._elementwise
        if handler is None:
            return False
        if not all(_static(v.type) for v in list(user.operands) + list(user.results)
                   if bld.ranked(v.type) is not None):
            return False
        return bool(handler(self, t, user, index, x, perm))

    def _fold_into_source(self, op, x, perm) -> bool:
        """A transpose of a broadcast_in_dim, an iota or a splat constant is
        that op made in the moved shape (no data moves)."""
        src = _owner(x)
        if src is None:
            return False
        shape = bld.shape_of(op.results[0])
        inv = _inverse(perm)
        with ir.InsertionPoint(op), op.location:
            if src.name == "stablehlo.broadcast_in_dim":
                dims = [inv[d] for d in _i64s(src, "broadcast_dimensions")]
                if self.aggressive and dims != sorted(dims) and _same_size(src.operands[0], x):
                    return False  # a reshape in disguise: the move sinks on instead
                new = bld.broadcast_in_dim(src.operands[0], shape, dims)
            elif src.name == "stablehlo.iota":
                d = ir.IntegerAttr(src.attributes["iota_dimension"]).value
                new = bld.iota(shape, inv[d], bld.element_type(x))
            elif src.name == "stablehlo.constant":
                if isinstance(bld.element_type(x), ir.ComplexType):
                    return False  # reading complex constants back can abort
                value = ir.DenseElementsAttr(src.attributes["value"])
                if not value.is_splat:
                    return False
                t = bld.tensor_type(shape, bld.element_type(x))
                new = bld.constant(ir.DenseElementsAttr.get_splat(t, value.get_splat_value()))
            else:
                return False
        op.results[0].replace_all_uses_with(new)
        self._erase(op)
        return True

    def _through_broadcast(self, user, dims):
        """``user``, a broadcast_in_dim of the unmoved operand with ``dims``
        out of order, becomes one with its dims in order, moved after."""
        order = sorted(dims)
        res = user.results[0]
        shape = bld.shape_of(res)
        y_shape = list(shape)
        q = list(range(len(shape)))
        for j, d in enumerate(dims):
            y_shape[order[j]] = shape[d]
            q[d] = order[j]
        user.attributes["broadcast_dimensions"] = bld.i64_array(order)
        _retype(res, y_shape)
        _transpose_after(res, q)

    def _compose(self, user, x, perm):
        p2 = _perm_of(user)
        q = [perm[p] for p in p2]
        if q == list(range(len(q))):
            user.results[0].replace_all_uses_with(x)
        else:
            with ir.InsertionPoint(user), user.location:
                t = _tr(x, q)
            user.results[0].replace_all_uses_with(t)
        self._erase(user)

    def _unit_move(self, op, x, perm) -> bool:
        """A transpose that moves only unit dims is a reshape."""
        shape = bld.shape_of(x)
        order = [p for p in perm if shape[p] != 1]
        if order != sorted(order):
            return False
        with ir.InsertionPoint(op), op.location:
            new = _rs(x, bld.shape_of(op.results[0]))
        op.results[0].replace_all_uses_with(new)
        self._erase(op)
        return True

    def _fold_reshape(self, op) -> bool:
        src = op.operands[0]
        inner = _is_op(src, "stablehlo.reshape")
        if src.type == op.results[0].type:
            op.results[0].replace_all_uses_with(src)
            self._erase(op)
            return True
        if inner is not None:
            op.operands[0] = inner.operands[0]
            if not list(inner.results[0].uses):
                self._erase(inner)
            return True
        return False

    # ---- consumers that move the transpose to their results ------------------
    def _same_perm_source(self, v: ir.Value, r: ir.Value, x: ir.Value, perm, user):
        """``v`` (an operand of ``user``, shaped like transpose(., perm)) in
        the unmoved layout, built before ``user``; None if that costs a move."""
        if v == r:
            return x
        t = _is_op(v, "stablehlo.transpose")
        if t is not None and _perm_of(t) == perm:
            return t.operands[0]
        if bld.ranked(v.type) is None or not _static(v.type):
            return None
        shape = _unpermute_shape(bld.shape_of(v), perm)
        b = _is_op(v, "stablehlo.broadcast_in_dim")
        if b is not None:
            dims = _i64s(b, "broadcast_dimensions")
            with ir.InsertionPoint(user), user.location:
                return bld.broadcast_in_dim(b.operands[0], shape, [perm[d] for d in dims])
        c = _is_op(v, "stablehlo.constant")
        if c is not None:
            value = ir.DenseElementsAttr(c.attributes["value"])
            if value.is_splat:
                t = bld.tensor_type(shape, bld.element_type(v))
                with ir.InsertionPoint(user), user.location:
                    return bld.constant(ir.DenseElementsAttr.get_splat(t, value.get_splat_value()))
        return None

    def _operands_unmoved(self, user, r, x, perm, positions) -> list | None:
        new = {}
        for i in positions:
            v = user.operands[i]
            u = self._same_perm_source(v, r, x, perm, user)
            if u is None:
                return None
            new[i] = u
        return new

    def _elementwise(self, t, user, index, x, perm) -> bool:
        rank = len(perm)
        positions = [i for i, v in enumerate(user.operands) if bld.rank_of(v) == rank]
        if len(user.results) != 1 or bld.rank_of(user.results[0]) != rank:
            return False
        if any(bld.rank_of(v) not in (0, rank) for v in user.operands):
            return False
        new = self._operands_unmoved(user, t.results[0], x, perm, positions)
        if new is None:
            return False
        for i, v in new.items():
            user.operands[i] = v
        res = user.results[0]
        _retype(res, _unpermute_shape(bld.shape_of(res), perm))
        _transpose_after(res, perm)
        return True

    def _reduce_like(self, t, user, x, perm, n_inputs) -> list[int] | None:
        new = self._operands_unmoved(user, t.results[0], x, perm, range(n_inputs))
        if new is None:
            return None
        for i, v in new.items():
            user.operands[i] = v
        return perm

    def _reduce(self, t, user, index, x, perm) -> bool:
        n = len(user.operands) // 2
        if index >= n:
            return False
        dims = _i64s(user, "dimensions")
        if self._reduce_like(t, user, x, perm, n) is None:
            return False
        new_dims = sorted(perm[d] for d in dims)
        user.attributes["dimensions"] = bld.i64_array(new_dims)
        kept_r = [k for k in range(len(perm)) if k not in dims]
        kept_x = sorted(perm[k] for k in kept_r)
        q = [kept_x.index(perm[k]) for k in kept_r]
        for res in user.results:
            shape = bld.shape_of(res)
            _retype(res, [shape[q.index(j)] for j in range(len(q))])
            _transpose_after(res, q)
        return True

    def _reduce_window(self, t, user, index, x, perm) -> bool:
        n = len(user.operands) // 2
        if index >= n:
            return False
        if self._reduce_like(t, user, x, perm, n) is None:
            return False
        inv = _inverse(perm)
        for name in ("window_dimensions", "window_strides", "base_dilations",
                     "window_dilations"):
            if name in user.attributes:
                _permute_dim_attr(user, name, inv)
        if "padding" in user.attributes:
            pad = ir.DenseIntElementsAttr(user.attributes["padding"])
            rows = [[pad[2 * i], pad[2 * i + 1]] for i in range(len(perm))]
            flat = [v for j in range(len(perm)) for v in rows[inv[j]]]
            ptype = ir.RankedTensorType.get([len(perm), 2], ir.IntegerType.get_signless(64))
            user.attributes["padding"] = ir.DenseIntElementsAttr.get(
                np.asarray(flat, np.int64).reshape(len(perm), 2), type=ptype)
        for res in user.results:
            _retype(res, _unpermute_shape(bld.shape_of(res), perm))
            _transpose_after(res, perm)
        return True

    def _sort(self, t, user, index, x, perm) -> bool:
        n = len(user.operands)
        if self._reduce_like(t, user, x, perm, n) is None:
            return False
        d = ir.IntegerAttr(user.attributes["dimension"]).value
        user.attributes["dimension"] = bld.i64_attr(perm[d])
        for res in user.results:
            _retype(res, _unpermute_shape(bld.shape_of(res), perm))
            _transpose_after(res, perm)
        return True

    def _top_k(self, t, user, index, x, perm) -> bool:
        """top_k works on the last dim: any move that keeps it last commutes."""
        if perm[-1] != len(perm) - 1:
            return False
        user.operands[0] = x
        for res in user.results:
            _retype(res, _unpermute_shape(bld.shape_of(res), perm))
            _transpose_after(res, perm)
        return True

    def _slice(self, t, user, index, x, perm) -> bool:
        inv = _inverse(perm)
        for name in ("start_indices", "limit_indices", "strides"):
            _permute_dim_attr(user, name, inv)
        user.operands[0] = x
        res = user.results[0]
        _retype(res, _unpermute_shape(bld.shape_of(res), perm))
        _transpose_after(res, perm)
        return True

    def _dynamic_slice(self, t, user, index, x, perm) -> bool:
        if index != 0:
            return False
        inv = _inverse(perm)
        starts = list(user.operands)[1:]
        sizes = _i64s(user, "slice_sizes")
        user.attributes["slice_sizes"] = bld.i64_array([sizes[inv[j]] for j in range(len(sizes))])
        for j in range(len(perm)):
            user.operands[1 + j] = starts[inv[j]]
        user.operands[0] = x
        res = user.results[0]
        _retype(res, _unpermute_shape(bld.shape_of(res), perm))
        _transpose_after(res, perm)
        return True

    def _dot_general(self, t, user, index, x, perm) -> bool:
        if user.operands[0] == user.operands[1]:
            return False
        dn = stablehlo.DotDimensionNumbers(user.attributes["dot_dimension_numbers"])
        lb, rb = list(dn.lhs_batching_dimensions), list(dn.rhs_batching_dimensions)
        lc, rc = list(dn.lhs_contracting_dimensions), list(dn.rhs_contracting_dimensions)
        lrank, rrank = bld.rank_of(user.operands[0]), bld.rank_of(user.operands[1])
        if index == 0:
            free_r = [k for k in range(lrank) if k not in lb + lc]
            lb, lc = [perm[d] for d in lb], [perm[d] for d in lc]
            offset = len(lb)
        else:
            free_r = [k for k in range(rrank) if k not in rb + rc]
            rb, rc = [perm[d] for d in rb], [perm[d] for d in rc]
            offset = len(lb) + (lrank - len(lb) - len(lc))
        free_x = sorted(perm[k] for k in free_r)
        q_part = [free_x.index(perm[k]) for k in free_r]
        res = user.results[0]
        out_rank = bld.rank_of(res)
        q = list(range(out_rank))
        for i, qi in enumerate(q_part):
            q[offset + i] = offset + qi
        user.attributes["dot_dimension_numbers"] = stablehlo.DotDimensionNumbers.get(
            lhs_batching_dimensions=lb, rhs_batching_dimensions=rb,
            lhs_contracting_dimensions=lc, rhs_contracting_dimensions=rc)
        user.operands[index] = x
        shape = bld.shape_of(res)
        _retype(res, [shape[q.index(j)] for j in range(out_rank)])
        _transpose_after(res, q)
        return True

    def _reverse(self, t, user, index, x, perm) -> bool:
        dims = _i64s(user, "dimensions")
        user.attributes["dimensions"] = bld.i64_array(sorted(perm[d] for d in dims))
        user.operands[0] = x
        res = user.results[0]
        _retype(res, _unpermute_shape(bld.shape_of(res), perm))
        _transpose_after(res, perm)
        return True

    def _pad(self, t, user, index, x, perm) -> bool:
        if index != 0:
            return False
        inv = _inverse(perm)
        for name in ("edge_padding_low", "edge_padding_high", "interior_padding"):
            _permute_dim_attr(user, name, inv)
        user.operands[0] = x
        res = user.results[0]
        _retype(res, _unpermute_shape(bld.shape_of(res), perm))
        _transpose_after(res, perm)
        return True

    def _concatenate(self, t, user, index, x, perm) -> bool:
        new = self._operands_unmoved(user, t.results[0], x, perm, range(len(user.operands)))
        if new is None:
            return False
        for i, v in new.items():
            user.operands[i] = v
        d = ir.IntegerAttr(user.attributes["dimension"]).value
        user.attributes["dimension"] = bld.i64_attr(perm[d])
        res = user.results[0]
        _retype(res, _unpermute_shape(bld.shape_of(res), perm))
        _transpose_after(res, perm)
        return True

    def _dynamic_update_slice(self, t, user, index, x, perm) -> bool:
        if index > 1:
            return False
        inv = _inverse(perm)
        new = self._operands_unmoved(user, t.results[0], x, perm, (0, 1))
        if new is None and index == 0:
            # an update the move only shifts unit dims of (a scan's row):
            # reshaped into the unmoved layout, nothing moves
            u = user.operands[1]
            shape = bld.shape_of(u)
            if [p for p in inv if shape[p] != 1] == sorted(p for p in inv if shape[p] != 1):
                with ir.InsertionPoint(user), user.location:
                    new = {0: x, 1: _rs(u, _unpermute_shape(shape, perm))}
        if new is None:
            return False
        starts = list(user.operands)[2:]
        for i, v in new.items():
            user.operands[i] = v
        for j in range(len(perm)):
            user.operands[2 + j] = starts[inv[j]]
        res = user.results[0]
        _retype(res, _unpermute_shape(bld.shape_of(res), perm))
        _transpose_after(res, perm)
        return True

    def _reshape(self, t, user, index, x, perm) -> bool:
        """A reshape that splits dims of the moved value or merges moved dims
        that are adjacent and in order in the unmoved one (a head split
        ``(s, d) -> (s, h, d / h)`` with the batch elsewhere) reshapes the
        unmoved value; the move, regrouped, goes to its result. Unit dims
        take part only as a dim of their own on both sides."""
        groups = _reshape_groups(bld.shape_of(t.results[0]), bld.shape_of(user.results[0]))
        if groups is None:
            return False
        rank = len(perm)
        of_t = {}
        for g, (ts, rs) in enumerate(groups):
            if len(ts) > 1 and [perm[d] for d in ts] != list(range(perm[ts[0]],
                                                                   perm[ts[0]] + len(ts))):
                return False  # merges dims the unmoved value does not hold together
            for d in ts:
                of_t[d] = g
        inv = _inverse(perm)
        r_shape = bld.shape_of(user.results[0])
        labels, y_shape = [], []
        for d in range(rank):
            g = of_t[inv[d]]
            ts, rs = groups[g]
            if len(ts) > 1:
                if perm[ts[0]] != d:
                    continue  # the group's first dim stands for it
                labels.append((g, 0))
                y_shape.append(r_shape[rs[0]])
            else:
                for i, r in enumerate(rs):
                    labels.append((g, i))
                    y_shape.append(r_shape[r])
        r_labels = [(g, i) for g, (ts, rs) in enumerate(groups) for i in range(len(rs))]
        q = [labels.index(lab) for lab in r_labels]
        user.operands[0] = x
        res = user.results[0]
        _retype(res, y_shape)
        _transpose_after(res, q)
        return True

    def _convolution(self, t, user, index, x, perm) -> bool:
        """The input's or the kernel's dimension numbers take the move; the
        result does not change."""
        if index > 1 or user.operands[0] == user.operands[1]:
            return False
        dn = stablehlo.ConvDimensionNumbers(user.attributes["dimension_numbers"])
        kw = dict(
            input_batch_dimension=dn.input_batch_dimension,
            input_feature_dimension=dn.input_feature_dimension,
            input_spatial_dimensions=list(dn.input_spatial_dimensions),
            kernel_input_feature_dimension=dn.kernel_input_feature_dimension,
            kernel_output_feature_dimension=dn.kernel_output_feature_dimension,
            kernel_spatial_dimensions=list(dn.kernel_spatial_dimensions),
            output_batch_dimension=dn.output_batch_dimension,
            output_feature_dimension=dn.output_feature_dimension,
            output_spatial_dimensions=list(dn.output_spatial_dimensions))
        names = (("input_batch_dimension", "input_feature_dimension", "input_spatial_dimensions")
                 if index == 0 else ("kernel_input_feature_dimension",
                                     "kernel_output_feature_dimension",
                                     "kernel_spatial_dimensions"))
        for name in names:
            v = kw[name]
            kw[name] = [perm[d] for d in v] if isinstance(v, list) else perm[v]
        user.attributes["dimension_numbers"] = stablehlo.ConvDimensionNumbers.get(**kw)
        user.operands[index] = x
        return True

    def _gather(self, t, user, index, x, perm) -> bool:
        """The operand's dimension numbers take the move where the offset
        dims keep their order (the result does not change)."""
        if index != 0 or user.operands[0] == user.operands[1]:
            return False
        dn = stablehlo.GatherDimensionNumbers(user.attributes["dimension_numbers"])
        collapsed = list(dn.collapsed_slice_dims)
        ob, sb_ = list(dn.operand_batching_dims), list(dn.start_indices_batching_dims)
        rest = [d for d in range(len(perm)) if d not in collapsed + ob]
        if [perm[d] for d in rest] != sorted(perm[d] for d in rest):
            return False
        pairs = sorted(zip([perm[d] for d in ob], sb_))
        sizes = _i64s(user, "slice_sizes")
        inv = _inverse(perm)
        user.attributes["dimension_numbers"] = stablehlo.GatherDimensionNumbers.get(
            offset_dims=list(dn.offset_dims),
            collapsed_slice_dims=sorted(perm[d] for d in collapsed),
            operand_batching_dims=[a for a, _ in pairs],
            start_indices_batching_dims=[b for _, b in pairs],
            start_index_map=[perm[d] for d in dn.start_index_map],
            index_vector_dim=dn.index_vector_dim)
        user.attributes["slice_sizes"] = bld.i64_array([sizes[inv[j]] for j in range(len(sizes))])
        user.operands[0] = x
        return True

    # ---- functions and loops ----------------------------------------------
    def _single_use_callee(self, user, attr) -> ir.Operation | None:
        name = ir.FlatSymbolRefAttr(user.attributes[attr]).value
        funcs = self._funcs()
        func = funcs.get(name)
        if func is None or not _private(func) or _has_call_rule(name):
            return None
        callers = self._callers(name)
        if len(callers) != 1 or callers[0] != user:
            clone = func.clone(ip=ir.InsertionPoint(self.body))
            base, i = f"{name}_t", 0
            new_name = base
            while new_name in funcs:
                i += 1
                new_name = f"{base}{i}"
            clone.attributes["sym_name"] = ir.StringAttr.get(new_name)
            user.attributes[attr] = ir.FlatSymbolRefAttr.get(new_name)
            func = clone
            self._collect(func)
        return func

    def _call(self, t, user, index, x, perm) -> bool:
        if user.name == "stablehlo.composite" and not _layout_free_composite(user, perm):
            return False
        attr = "callee" if user.name == "func.call" else "decomposition"
        func = self._single_use_callee(user, attr)
        if func is None:
            return False
        block = func.regions[0].blocks[0]
        arg = block.arguments[index]
        arg.set_type(x.type)
        with ir.InsertionPoint.at_block_begin(block), func.location:
            moved = _tr(arg, perm)
        arg.replace_all_uses_except(moved, _owner(moved))
        user.operands[index] = x
        _set_function_type(func)
        return True

    def _return(self, t, user, index, x, perm) -> bool:
        """A transpose returned from a private function called once moves out."""
        func = user.parent.operation
        if func.name != "func.func":
            return False
        if not _private(func) or _has_call_rule(ir.StringAttr(func.attributes["sym_name"]).value):
            return False
        callers = self._callers(ir.StringAttr(func.attributes["sym_name"]).value)
        if len(callers) != 1:
            return False
        call = callers[0]
        if call.name not in ("func.call", "stablehlo.composite"):
            return False
        if call.name == "stablehlo.composite" and not _layout_free_composite(call, perm):
            return False
        user.operands[index] = x
        _set_function_type(func)
        res = call.results[index]
        res.set_type(x.type)
        _transpose_after(res, perm)
        return True

    def _recarry(self, w, index, perm) -> bool:
        """Carries ``w``'s carry ``index`` in the layout transpose(., perm):
        its init is moved by ``perm``, the body's (and cond's) uses of it see
        the inverse move, the updated value is moved by ``perm`` again, and
        the result is in the moved layout. The moves then sink in the body;
        each carry is re-laid once per run (so two rewrites cannot undo
        each other forever)."""
        key = (_key(w), index)  # w.results[0]: stable while w lives
        if key in self._recarried:
            return False
        whiles = []
        self.module.walk(lambda op: (whiles.append(op.operation) if op.name == "stablehlo.while"
                                     else None) or ir.WalkResult.ADVANCE)
        stable = (next((k for k, o in enumerate(whiles) if o == w), -1), index)
        if self.recarry is not None and stable not in self.recarry:
            return False
        self._recarried.add(key)
        self.recarry_keys.append(stable)
        cond, body = w.regions[0].blocks[0], w.regions[1].blocks[0]
        ret = list(body.operations)[-1]
        inv = _inverse(perm)
        with ir.InsertionPoint(w), w.location:
            init = _tr(w.operands[index], perm)
        w.operands[index] = init
        for block in (cond, body):
            arg = block.arguments[index]
            arg.set_type(init.type)
            if not list(arg.uses):
                continue
            with ir.InsertionPoint.at_block_begin(block), w.location:
                back = _tr(arg, inv)
            arg.replace_all_uses_except(back, _owner(back))
        with ir.InsertionPoint(ret), w.location:
            ret.operands[index] = _tr(ret.operands[index], perm)
        w.results[index].set_type(init.type)
        return True

    @staticmethod
    def _varying_carry_result(x) -> bool:
        w = _owner(x)
        if w is None or w.name != "stablehlo.while" or len(list(x.uses)) != 1:
            return False
        index = ir.OpResult(x).result_number
        body = w.regions[1].blocks[0]
        return list(body.operations)[-1].operands[index] != body.arguments[index]

    def _into_while_carry(self, op, x, perm) -> bool:
        """A varying while carry whose result is only moved: carried moved."""
        w = _owner(x)
        if w is None or w.name != "stablehlo.while" or len(list(x.uses)) != 1:
            return False
        index = ir.OpResult(x).result_number
        body = w.regions[1].blocks[0]
        if list(body.operations)[-1].operands[index] == body.arguments[index]:
            return False  # loop-invariant: _while moves the other way
        if not self._recarry(w, index, perm):
            return False
        res = op.results[0]
        res.replace_all_uses_with(w.results[index])
        self._erase(op)
        return True

    def _while(self, t, user, index, x, perm) -> bool:
        cond, body = user.regions[0].blocks[0], user.regions[1].blocks[0]
        ret = list(body.operations)[-1]
        if ret.operands[index] != body.arguments[index]:
            # a varying carry: carried unmoved (aggressive runs only)
            if not self.aggressive:
                self.missed = True
                return False
            if not self._recarry(user, index, _inverse(perm)):
                return False
            self.aggressive_used = True
            _transpose_after(user.results[index], perm)
            return True
        user.operands[index] = x
        for block in (cond, body):
            arg = block.arguments[index]
            arg.set_type(x.type)
            if not list(arg.uses):
                continue
            with ir.InsertionPoint.at_block_begin(block), user.location:
                moved = _tr(arg, perm)
            arg.replace_all_uses_except(moved, _owner(moved))
        ret.operands[index] = body.arguments[index]
        res = user.results[index]
        res.set_type(x.type)
        _transpose_after(res, perm)
        return True

    _HANDLERS = {
        "stablehlo.reduce": _reduce,
        "stablehlo.reduce_window": _reduce_window,
        "stablehlo.sort": _sort,
        "stablehlo.slice": _slice,
        "chlo.top_k": _top_k,
        "stablehlo.dynamic_slice": _dynamic_slice,
        "stablehlo.dot_general": _dot_general,
        "func.call": _call,
        "stablehlo.composite": _call,
        "func.return": _return,
        "stablehlo.while": _while,
        "stablehlo.reverse": _reverse,
        "stablehlo.pad": _pad,
        "stablehlo.concatenate": _concatenate,
        "stablehlo.dynamic_update_slice": _dynamic_update_slice,
        "stablehlo.convolution": _convolution,
        "stablehlo.gather": _gather,
        "stablehlo.reshape": _reshape,
    }


def _reshape_groups(src: Sequence[int], dst: Sequence[int]):
    """The dims of a reshape from ``src`` to ``dst`` as groups
    ``(src dims, dst dims)``, each one dim split into several, several
    merged into one, or one to one (unit dims: one to one only); None where
    the reshape is not that."""
    groups, i, k = [], 0, 0
    while i < len(src) and k < len(dst):
        if src[i] == 1 or dst[k] == 1:
            if src[i] != dst[k]:
                return None
            groups.append(([i], [k]))
            i, k = i + 1, k + 1
            continue
        ti, rk, ps, pd = [i], [k], src[i], dst[k]
        while ps != pd:
            if ps < pd:
                i += 1
                if i >= len(src) or src[i] == 1:
                    return None
                ti.append(i)
                ps *= src[i]
            else:
                k += 1
                if k >= len(dst) or dst[k] == 1:
                    return None
                rk.append(k)
                pd *= dst[k]
        if len(ti) > 1 and len(rk) > 1:
            return None
        groups.append((ti, rk))
        i, k = i + 1, k + 1
    if i != len(src) or k != len(dst):
        return None
    return groups


def _set_function_type(func: ir.Operation):
    block = func.regions[0].blocks[0]
    ret = list(block.operations)[-1]
    func.attributes["function_type"] = ir.TypeAttr.get(ir.FunctionType.get(
        [a.type for a in block.arguments], [v.type for v in ret.operands]))


def _layout_free_composite(op: ir.Operation, perm: Sequence[int]) -> bool:
    """A composite means its named op on its operands' layout (a backend may
    run the named op instead of the decomposition): only ``chlo.top_k``,
    which works on the last dim, takes a move that keeps that dim last."""
    name = ir.StringAttr(op.attributes["name"]).value
    return name == "chlo.top_k" and perm[-1] == len(perm) - 1


def _private(func: ir.Operation) -> bool:
    return "sym_visibility" in func.attributes and \
        ir.StringAttr(func.attributes["sym_visibility"]).value == "private"


# A move inside a loop body counts this many times one outside (per level).
_LOOP_WEIGHT = 16


def _moved(op) -> int:
    """The bytes ``op`` moves if it is a transpose (or a broadcast whose
    dimensions are out of order: XLA moves its operand first), a move in a
    loop body weighted by _LOOP_WEIGHT per level; else 0."""
    if op.name == "stablehlo.transpose":
        moved = op.results[0]
    elif op.name == "stablehlo.broadcast_in_dim":
        moved = op.operands[0]
        rt = bld.ranked(moved.type)
        if rt is None:
            return 0
        # dims out of order: the operand moves first, unless only its unit
        # dims change places
        dims = [d for d, n in zip(_i64s(op, "broadcast_dimensions"), rt.shape) if n != 1]
        if dims == sorted(dims):
            return 0
    else:
        return 0
    rt = bld.ranked(moved.type)
    if rt is None or not _static(rt):
        return 0
    n = int(np.prod(list(rt.shape), dtype=np.int64))
    elem = rt.element_type
    bits = elem.width if hasattr(elem, "width") else 32
    depth, parent = 0, op.parent
    while parent is not None and parent.name != "func.func":
        if parent.name == "stablehlo.while":
            depth += 1
        parent = parent.parent
    return n * max(bits // 8, 1) * _LOOP_WEIGHT ** depth


def _of_argument(op) -> bool:
    """Whether ``op`` moves an argument of its function (XLA reads a moved
    parameter through the move in the fusions that use it; a computed
    value, a result above all, tends to be materialized moved)."""
    v = op.operands[0]
    if isinstance(v.owner, (ir.Operation, ir.OpView)):
        return False
    parent = v.owner.owner  # the block's op (a FuncOp's .name is its symbol)
    return parent is not None and parent.operation.name == "func.func"


def moved_bytes(module_op: ir.Operation) -> int:
    """The bytes the module's transposes (and broadcasts whose dimensions are
    out of order) move, those in loop bodies weighted by _LOOP_WEIGHT per
    level: what an aggressive run must not raise to be kept."""
    return _move_cost(module_op)[0]


def _cost_entry(op, n: int) -> tuple[int, int, int]:
    """(bytes, those of a computed value, those of a result returned): a
    move of an argument is read through by the fusions that use it, one of a
    computed value tends to be materialized, and one returned always is."""
    computed = 0 if _of_argument(op) else n
    returned = n if any(u.owner.operation.name == "func.return"
                        for u in op.results[0].uses) else 0
    return n, computed, returned


def _move_cost(module_op: ir.Operation) -> tuple[int, int, int, int]:
    """(``moved_bytes``, those of computed values (not arguments), those of
    returned values, how many ops move data): what sink_transposes compares,
    in that order."""
    total = [0, 0, 0, 0]

    def visit(op):
        n = _moved(op)
        if n:
            for i, v in enumerate(_cost_entry(op, n)):
                total[i] += v
            total[3] += 1
        return ir.WalkResult.ADVANCE
    module_op.walk(visit)
    return tuple(total)


def _adopt(module_op: ir.Operation, clone: ir.Operation) -> bool:
    """Rewrites ``module_op`` into ``clone`` (a clone of it the pass ran on)
    without replacing its functions: each function keeps its operation
    (callers hold it) and takes the clone's body, ops moved over; functions
    only the clone has (cloned callees) move over. False, with nothing
    changed, where a body is not one block."""
    def funcs(op):
        return {ir.StringAttr(f.attributes["sym_name"]).value: f.operation
                for f in op.regions[0].blocks[0].operations if f.operation.name == "func.func"}
    mine, theirs = funcs(module_op), funcs(clone)
    pairs = [(mine[n], f) for n, f in theirs.items() if n in mine]
    if any(len(f.regions[0].blocks) != 1 for p in pairs for f in p):
        return False
    body = module_op.regions[0].blocks[0]
    for f, c in pairs:
        fb, cb = f.regions[0].blocks[0], c.regions[0].blocks[0]
        old = list(fb.operations)
        for a, b in zip(fb.arguments, cb.arguments):
            a.set_type(b.type)
        for op in list(cb.operations):
            op.move_before(old[0])
        for a, b in zip(fb.arguments, cb.arguments):
            b.replace_all_uses_with(a)
        for op in reversed(old):
            op.erase()
        f.attributes["function_type"] = c.attributes["function_type"]
    last = list(body.operations)[-1]
    for n, c in theirs.items():
        if n not in mine:
            c.move_after(last)
            last = c
    return True


def sink_transposes(module: ir.Module, entry: str) -> int:
    """Runs the pass on @entry of ``module`` and the private functions, in
    place; returns how many rewrites it made.

    The conservative run (which never adds a move) rewrites the module
    first. Only where it stopped at a transpose that an aggressive run
    could sink (one with several consumers that take it, a varying while
    carry moved before or after its loop) is the aggressive run tried, on
    a clone of the conservative result; where it re-laid carries, the
    aggressive run without re-laid carries and with each alone are tried
    too. The module takes the bodies of the trial that moves least
    (``_move_cost``: bytes, then bytes of computed values, then of
    returned values, then how many ops move), where that is no more than
    the conservative result's (functions keep their operations: callers
    hold them)."""
    with module.context, ir.Location.unknown(module.context):
        base = _Sinker(module.operation, entry)
        changed = base.run()
        if not base.missed:
            return changed
        best_cost = base.cost if base.cost is not None else _move_cost(module.operation)
        best, best_changed = None, 0
        best_kw: dict = {}

        def trial(**kw):
            nonlocal best_cost, best, best_changed, best_kw
            clone = module.operation.clone()
            sinker = _Sinker(clone, entry, **kw)
            n = sinker.run()
            cost = sinker.cost if n else best_cost
            # against the conservative result a tie goes to the trial (its
            # moves sank further at no cost), among trials to the first
            if n and (cost <= best_cost if best is None else cost < best_cost):
                if best is not None:
                    best.erase()
                best_cost, best, best_changed, best_kw = cost, clone, n, kw
            else:
                clone.erase()
            return sinker
        bold = trial(aggressive=True)
        keys = bold.recarry_keys
        if keys:
            for allowed in [set()] + ([{k} for k in keys[:4]] if len(keys) > 1 else []):
                trial(aggressive=True, recarry=allowed)
        if best is None:
            return changed
        try:
            if _adopt(module.operation, best):
                return changed + best_changed
        finally:
            best.erase()
        # not adoptable: the same (deterministic) run on the module itself
        return changed + _Sinker(module.operation, entry, **best_kw).run()


def _has_call_rule(name: str) -> bool:
    """A function whose calls have their own batching rule (CALL_RULES: a
    custom_vmap's function): its signature must stay the one that rule
    expects, so no transpose moves into or out of it."""
    return any(name.startswith(prefix) for prefix in CALL_RULES)
