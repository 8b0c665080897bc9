"""Control flow and sorting: while, if, case, sort and chlo.top_k.

``while``: a carry is batched when its update depends on anything batched.
The rule finds that fixed point first, by rewriting throw-away clones of the
loop, so loop counters and loop-invariant values stay unbatched (and slices
indexed by a counter stay plain dynamic slices). A cheap dataflow pass
predicts the fixed point first, so one clone usually confirms it (without
it, a chain of K carries that batch one another needs K rewrites of the
body). When the predicate itself is
batched, the loop runs while any lane runs and a finished lane's carries are
frozen with a per-lane select.

``if`` / ``case``: with an unbatched predicate the op stays and its branches
are batched. With a batched one, the branches are inlined and a per-lane
select picks each lane's result (what vmap does) -- but first, when a branch
is worth skipping, a run-time test checks whether all lanes agree; if so
only that one branch runs. That saves the wasted branch in the common case
and avoids running a branch (a data-dependent while, say) on data it was
never meant to see. A few elementwise ops are not worth skipping: there the
test and the conditional (which XLA cannot fuse across) would cost more than
the branch, so the selects run alone, as in vmap. Which ops are costly is
each rule's own knowledge, kept in the rule table (``costly=``).
"""
from __future__ import annotations

from jaxlib.mlir import ir

from stablehlo_batch.passes import builders as bld
from stablehlo_batch.passes.rules import register
from stablehlo_batch.passes.rules.helpers import (captures, find_nested, materialize_operands, retype_batched,
                                  retype_results, shift_dim_attr)


def _block(op, region: int) -> ir.Block:
    return op.regions[region].blocks[0]


def _terminator(block: ir.Block) -> ir.Operation:
    ops = [o.operation for o in block.operations]
    return ops[-1]


def _materialize_yields(fb, term, want):
    """Makes terminator operand i batched wherever ``want[i]`` is set."""
    with ir.InsertionPoint(term), term.location:
        for i, (v, batched) in enumerate(zip(list(term.operands), want)):
            if batched and not fb.is_batched(v):
                term.operands[i] = fb.materialize(v)


# ---- while ------------------------------------------------------------------

def _while_flags(fb, op, carry):
    """Rewrites a clone of the loop with ``carry`` flags; returns which body
    yields and whether the predicate come out batched."""
    clone = op.clone(ip=ir.InsertionPoint(op))
    try:
        with fb.trial():
            cond = fb.batch_block(_block(clone, 0), carry)
            pred = fb.is_batched(cond.operands[0])
            body = fb.batch_block(_block(clone, 1), carry)
            yields = [fb.is_batched(v) for v in body.operands]
    finally:
        clone.erase()
    return yields, pred


class _Predict:
    """Which values batching will make batched, found without rewriting: an
    op none of whose operands, nor the values its regions capture, is batched
    stays unbatched; otherwise the op's entry in the rule table predicts its
    results (``predict=``, registered beside the rule: while / if / case
    follow their regions, func.call its callee), and without one every
    result is taken to be batched."""

    def __init__(self, fb):
        self.fb = fb
        self.rules = fb.program.rules
        self.local: set = set()
        self.calls: dict = {}

    def batched(self, v) -> bool:
        return v in self.local or self.fb.is_batched(v)

    def block(self, block: ir.Block, arg_flags) -> list[bool]:
        for a, f in zip(block.arguments, arg_flags):
            if f:
                self.local.add(a)
        ops = [o.operation for o in block.operations]
        for o in ops[:-1]:
            self.op(o)
        return [self.batched(v) for v in ops[-1].operands]

    def op(self, o):
        ins = [self.batched(v) for v in o.operands]
        n = len(o.results)
        if self.fb.program.lane_dependent(o):  # a collective over the batch axis
            outs = [True] * n
        elif not (any(ins) or (len(o.regions) and self.captures(o))):
            outs = [False] * n
        else:
            entry = self.rules.entry(o)
            outs = [True] * n if entry is None or entry.predict is None else \
                entry.predict(self, o, ins)
        for r, f in zip(o.results, outs):
            if f:
                self.local.add(r)

    def while_(self, o, carry) -> list[bool]:
        body = _block(o, 1)
        passthrough = [v == a for v, a in zip(_terminator(body).operands, body.arguments)]
        while True:
            pred = self.block(_block(o, 0), carry)[0]
            yields = self.block(body, carry)
            new = [c or y or (pred and not p)
                   for c, y, p in zip(carry, yields, passthrough)]
            if new == carry:
                return carry
            carry = new

    def callee(self, name: str, ins) -> list[bool]:
        """Which results of function @name come out batched for ``ins``."""
        key = (name, tuple(ins))
        if key not in self.calls:
            func = self.fb.program.lookup_func(name)
            n = len(ir.FunctionType(ir.TypeAttr(func.attributes["function_type"]).value).results)
            self.calls[key] = [True] * n  # recursion: assume batched
            if len(func.regions[0].blocks):
                self.calls[key] = self.block(func.regions[0].blocks[0], ins)
        return self.calls[key]

    def captures(self, o) -> bool:
        return captures(o, self.batched)


def _predict_while(p, op, ins):
    return p.while_(op, ins)


def _predict_branches(p, op, ins):
    if ins[0]:  # a per-lane selector: selects make every result batched
        return [True] * len(op.results)
    outs = [False] * len(op.results)
    for k in range(len(op.regions)):
        outs = [a or b for a, b in zip(outs, p.block(_block(op, k), []))]
    return outs


def _predicted_fixed_point(fb, op, flags, passthrough):
    """The carry flags, when the prediction is confirmed by one rewritten
    clone: a fixed point each of whose batched carries the body (or a
    batched predicate) makes batched. None otherwise.

    The prediction never calls a value unbatched that a rule would batch
    (ops whose rules decide per result are followed as the rules do; every
    other op is taken as batching all its results), so when it batches no
    carry beyond ``flags`` the fixed point is ``flags`` itself and needs no
    clone: a loop nested D deep is then not rewritten 2**D times."""
    predicted = _Predict(fb).while_(op, list(flags))
    if predicted == list(flags):
        return predicted
    yields, pred = _while_flags(fb, op, predicted)
    made = [f or y or (pred and not p) for f, y, p in zip(flags, yields, passthrough)]
    if made == predicted:
        return predicted
    return None


@register("stablehlo.while", predict=_predict_while, costly=True)
def while_(fb, op, flags):
    body_block = _block(op, 1)
    passthrough = [v == a for v, a in zip(_terminator(body_block).operands,
                                          body_block.arguments)]
    carry = _predicted_fixed_point(fb, op, flags, passthrough)
    confirmed = carry is not None
    carry = carry or list(flags)
    while not confirmed:
        yields, pred = _while_flags(fb, op, carry)
        new = [c or y or (pred and not p)
               for c, y, p in zip(carry, yields, passthrough)]
        if new == carry:
            break
        carry = new

    materialize_operands(fb, op, flags, [i for i, c in enumerate(carry) if c])
    cond_term = fb.batch_block(_block(op, 0), carry)
    pred_batched = fb.is_batched(cond_term.operands[0])
    body_term = fb.batch_block(body_block, carry)
    _materialize_yields(fb, body_term, carry)
    retype_results(fb, op, carry)
    if pred_batched:
        fb.note("batched_predicate_loop", op,
                "the trip count differs per lane: runs while any lane runs, "
                "finished lanes frozen with selects")
        _freeze_finished_lanes(fb, op, passthrough)
    return list(zip(op.results, carry))


def _freeze_finished_lanes(fb, op, passthrough):
    cond_block, body_block = _block(op, 0), _block(op, 1)
    cond_term, body_term = _terminator(cond_block), _terminator(body_block)
    # The body recomputes each lane's predicate from the carries it receives.
    first = [o.operation for o in body_block.operations][0]
    with ir.InsertionPoint(first), cond_term.location:
        mapping = dict(zip(cond_block.arguments, body_block.arguments))
        lane_running = bld.clone_block_ops(cond_block, mapping)[0]
    with ir.InsertionPoint(body_term), body_term.location:
        for i, (new, old) in enumerate(zip(list(body_term.operands), body_block.arguments)):
            if passthrough[i]:
                continue
            body_term.operands[i] = bld.select(_lane_mask(lane_running, new), new, old)
    with ir.InsertionPoint(cond_term), cond_term.location:
        cond_term.operands[0] = bld.reduce_all(cond_term.operands[0], "stablehlo.or")


# ---- if / case ----------------------------------------------------------------

def _batch_branches(fb, op):
    """Batches every branch of an if/case whose selector is unbatched; results
    are batched where any branch yields a batched value."""
    terms = [fb.batch_block(_block(op, k), []) for k in range(len(op.regions))]
    want = [any(fb.is_batched(t.operands[i]) for t in terms)
            for i in range(len(op.results))]
    for t in terms:
        _materialize_yields(fb, t, want)
    return retype_results(fb, op, want)


_SIDE_EFFECTING = {"stablehlo.outfeed", "stablehlo.send", "stablehlo.recv",
                   "stablehlo.infeed"}


def _has_side_effects(op) -> bool:
    return find_nested(op, lambda inner: inner.name in _SIDE_EFFECTING or (
        "has_side_effect" in inner.attributes
        and ir.BoolAttr(inner.attributes["has_side_effect"]).value)) is not None


_CHEAP_OPS = 16  # more ops than this across the branches: worth a run-time test
_FREE = ("stablehlo.return", "stablehlo.constant")


def _worth_skipping(fb, op) -> bool:
    """Whether a run-time "all lanes agree" test pays for itself: some
    branch has an op that the rule table calls costly (loops and nested
    regions -- a while may not even terminate on another lane's data --,
    calls, kernels, the heavy compute ops, ops without a rule), or the
    branches have many ops."""
    rules, count = fb.program.rules, 0

    def costly(inner):
        nonlocal count
        if inner.name in _FREE:
            return False
        count += 1
        return rules.is_costly(inner)

    return find_nested(op, costly) is not None or count > _CHEAP_OPS


@register("stablehlo.if", "stablehlo.case", predict=_predict_branches, costly=True)
def branch(fb, op, flags):
    if not flags[0]:
        return _batch_branches(fb, op)
    if _has_side_effects(op):
        raise fb.unsupported(op, "a branch with side effects cannot run for lanes "
                                 "that did not take it")
    if not op.results:
        # Nothing to select and (side effects refused above) nothing anyone
        # sees: the op goes. Kept, it would be left with a per-lane selector,
        # which an if / case cannot take (jit(keep_unused=True) keeps such a
        # dead cond: batch_lower with a symbolic size).
        fb.note("branches_dropped", op, "per-lane selector of an op without results "
                "or side effects: removed")
        fb.drop(op)
        return []
    selector = op.operands[0]
    is_if = op.name == "stablehlo.if"
    fast_path = _worth_skipping(fb, op)
    fb.note("branches_to_selects", op,
            f"per-lane {'predicate' if is_if else 'index'}: all {len(op.regions)} branches "
            "run and selects pick each lane's result"
            + (", unless all lanes agree at run time" if fast_path else ""))
    size = fb.batch_dim
    result_types = [fb.batched_type(r.type) for r in op.results]
    if size == 0 or not fast_path:
        return [(v, True) for v in _select_lanes(fb, op, selector, is_if)]

    # Do all lanes agree? Then run that one branch, batched, and nothing else.
    if is_if:
        all_true = bld.reduce_all(selector, "stablehlo.and")
        any_true = bld.reduce_all(selector, "stablehlo.or")
        uniform = bld.create("stablehlo.or", [all_true.type],
                             [all_true, bld.create("stablehlo.not", [any_true.type],
                                                   [any_true]).result]).result
        common = all_true
    else:
        first = bld.reshape(bld.create(
            "stablehlo.slice", [bld.tensor_type([1], bld.element_type(selector))],
            [selector], {"start_indices": bld.i64_array([0]),
                         "limit_indices": bld.i64_array([1]),
                         "strides": bld.i64_array([1])}).result, [])
        same = bld.compare(selector, bld.broadcast_in_dim(first, [size], []), "EQ")
        uniform = bld.reduce_all(same, "stablehlo.and")
        common = first

    outer = bld.create("stablehlo.if", result_types, [uniform], regions=2)
    with ir.InsertionPoint(outer.regions[0].blocks.append()):
        inner = op.clone()
        inner.operands[0] = common
        with ir.InsertionPoint(inner), inner.location:
            results = _batch_branches(fb, inner)
        for v, batched in results:
            if batched:
                fb.mark(v)
        bld.create("stablehlo.return", [], [fb.materialize(v) for v, _ in results])
    with ir.InsertionPoint(outer.regions[1].blocks.append()):
        bld.create("stablehlo.return", [], _select_lanes(fb, op, selector, is_if))
    return [(r, True) for r in outer.results]


def _select_lanes(fb, op, selector, is_if):
    """Runs every branch (inlined at the insertion point) and picks each
    lane's result with selects; returns the batched results."""
    clone = op.clone()
    branch_results = []
    for k in range(len(clone.regions)):
        block = _block(clone, k)
        ops = [o.operation for o in block.operations]
        for inner in ops[:-1]:
            inner.move_before(clone)
        fb.batch_ops(ops[:-1])
        branch_results.append([fb.materialize(v) for v in ops[-1].operands])
    clone.erase()
    size = fb.batch_dim
    results = branch_results[-1]
    for k in range(len(branch_results) - 2, -1, -1):
        if is_if:
            lane_mask = selector
        else:
            index = bld.splat(bld.element_type(selector), [size], k)
            lane_mask = bld.compare(selector, index, "EQ")
        results = [bld.select(_lane_mask(lane_mask, v), t, v)
                   for t, v in zip(branch_results[k], results)]
    return results


def _lane_mask(mask, like):
    shape = bld.shape_of(like)
    if len(shape) == 1:
        return mask
    return bld.broadcast_in_dim(mask, shape, [0])


# ---- sort / top_k ---------------------------------------------------------------

@register("stablehlo.sort", costly=True)
def sort(fb, op, flags):
    if fb.region_captures_batched(op):
        fb.decline(op, "the comparator uses a batched value from outside the op")
    materialize_operands(fb, op, flags)
    shift_dim_attr(op, "dimension")
    return retype_batched(fb, op)


@register("chlo.top_k", costly=True)
def top_k(fb, op, flags):
    # top_k works on the last dimension, which the batch dim never is.
    return retype_batched(fb, op)
