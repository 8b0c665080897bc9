"""Random jax programs for differential testing of batch_lower against jax.vmap.

A ``Program`` is plain data (arguments with their ``in_axes``, a list of
``Step``s, outputs with their ``out_axes``, a batch size), so hypothesis can
shrink it and its ``repr`` pastes straight into tests/sweeps/test_generated_regressions.py.
``programs()`` is the hypothesis strategy; ``check_program`` runs one
program through ``batch_lower`` and ``jax.vmap`` and compares.

Each step applies one op family we batch (``OPS``) to earlier values. An
operand is either an earlier value of the right shape, a new argument (with
a random in_axis, possibly None) or a constant, so every op meets batched
and unbatched operands. Convolutions and cumulative ops (reduce_window) are
generated only once their rules are registered in passes.rules.RULES.
"""
from __future__ import annotations

import dataclasses
import functools
import inspect
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import assume
from hypothesis import strategies as st
from jax import lax

import stablehlo_batch as sb
from conftest import assert_same_tree, random_array
from stablehlo_batch.passes.rules import RULES

F32, I32, BOOL = "float32", "int32", "bool"  # plus int8 / uint8 (wrap-around exact)
KEY, STATIC = "key", "static"  # typed PRNG keys; non-array Python values (in_axes=None)
NAME = "i"  # the named axis collectives reduce over

# How the batched call is used (``Program.use``): see ``_apply_use``.
USES = ("direct", "jit", "grad", "vjp", "jvp", "scan", "fori", "cond", "vmap", "nested")
DIFF_USES = ("grad", "vjp", "jvp")


@dataclasses.dataclass
class Arg:
    shape: tuple
    dtype: str
    axis: Any  # in_axes entry: int or None
    closure: str | None = None  # None: an argument; "concrete" / "traced": closed over
    value: Any = None  # a static argument's Python value (dtype STATIC)


@dataclasses.dataclass
class Step:
    op: str
    inputs: tuple  # value ids: arguments first, then one value per step
    params: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Program:
    args: list
    steps: list
    outputs: list
    out_axes: list
    size: int = 3
    seed: int = 0
    use: str = "direct"
    options: dict = dataclasses.field(default_factory=dict)
    outer: tuple = ()  # outer vmap / batch_lower axes (0 or None) per traced input

    @property
    def explicit(self):
        return [a for a in self.args if a.closure is None]

    @property
    def closed(self):
        return [a for a in self.args if a.closure is not None]

    def fn(self, closed=None) -> Callable:
        """The per-example function of the explicit arguments; ``closed``
        (default: concrete values) are the closed-over values, in order."""
        closed = list(self.make_args()[1] if closed is None else closed)

        def f(*args):
            it_a, it_c = iter(args), iter(closed)
            env = [next(it_c) if a.closure else next(it_a) for a in self.args]
            return tuple(_run_body(self.steps, env)[i] for i in self.outputs)
        return f

    def make_args(self, seed=None):
        """(explicit argument values, closed-over values); closed-over values
        and static arguments are never batched."""
        rng = np.random.default_rng(self.seed if seed is None else seed)
        explicit, closed = [], []
        for a in self.args:
            shape = list(a.shape)
            if a.axis is not None:
                shape.insert(a.axis % (len(shape) + 1), self.size)
            if a.dtype == STATIC:
                v = a.value
            elif a.dtype == KEY:
                v = _keys(int(rng.integers(0, 2**16)), tuple(shape))
            else:
                v = random_array(rng, tuple(shape), a.dtype)
            (closed if a.closure else explicit).append(v)
        return explicit, closed

    @property
    def in_axes(self):
        return tuple(a.axis for a in self.explicit)

    @property
    def axis_size(self):
        return self.size if all(a.axis is None for a in self.explicit) else None

    def ops(self) -> list[str]:
        """Every op family (with its variant) the program uses, regions included."""
        out = []

        def walk(steps):
            for s in steps:
                out.append(s.op)
                for k in ("fn", "kind"):
                    if k in s.params and isinstance(s.params[k], str):
                        out.append(f"{s.op}:{s.params[k]}")
                if s.op == "region":
                    walk(s.params["body"])
        walk(self.steps)
        return out

    def tags(self) -> set[str]:
        """What the tally counts: op families, compositions, options, dtypes,
        sizes (also per family for sizes 0 and 1), closures, key axes."""
        ops = self.ops()
        fams = {o for o in ops if ":" not in o and o != "const"}
        t = {f"op:{o}" for o in ops if o != "const"} | {f"use:{self.use}", f"size:{self.size}"}
        t |= {f"opt:{k}" for k in self.options} or {"opt:none"}
        if self.size in (0, 1):
            t |= {f"size{self.size}:{o}" for o in fams}
        if "symbolic" in self.options:  # one artifact for every batch size
            t |= {f"symbolic:{o}" for o in fams}
        for a in self.args:
            t.add(f"dtype:{a.dtype}")
            if a.closure:
                t.add(f"closure:{a.closure}")
                if a.closure == "traced" and self.use != "direct":
                    t.add(f"closure:traced:{self.use}")
                    if self.use in DIFF_USES:
                        t.add("closure:traced:autodiff")
            if a.dtype == KEY:
                t.add("key:in_axes=" + ("None" if a.axis is None else "neg" if a.axis < 0 else "pos"))
            if a.dtype == STATIC:
                t.add(f"static:{type(a.value).__name__}")
        traced = [a for a in self.closed if a.closure == "traced"]
        if self.use in ("vmap", "nested") and traced and any(
                ax is not None for ax in self.outer[len(self.outer) - len(traced):]):
            t.add("closure:outer-batched")
        for o, ax in zip(self.outputs, self.out_axes):
            if self.out_dtypes and self.out_dtypes[self.outputs.index(o)] == KEY:
                t.add("key:out_axes=" + ("None" if ax is None else "neg" if ax < 0 else "pos"))
        return t

    out_dtypes: tuple = ()  # filled by the builder (for the key out_axes tally)


def _keys(seed, shape):
    n = math.prod(shape)
    return jax.random.split(jax.random.key(seed), max(n, 1))[:n].reshape(shape)


def _is_key(x):
    return jax.dtypes.issubdtype(getattr(x, "dtype", None), jax.dtypes.prng_key)


def _comparable(tree):
    """Key arrays as their key data (assert_same_tree compares numbers)."""
    return jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, tree)


class Outcome:
    OK, UNSUPPORTED, BOTH_REJECT = "ok", "unsupported", "both-reject"
    VMAP_FAILED = "vmap-failed"  # jax.vmap cannot batch it; checked against a loop
    JAX_DIFF_FAILED = "jax-diff-failed"  # jax cannot differentiate the unbatched function
    USE_UNCHECKED = "vmap-failed-use"  # vmap failed under the composition; batch_lower ran
    # jax.vmap cannot differentiate pmax / pmin of a batched operand: checked
    # against jax.vmap of the program with them written as all_gather + max / min
    EXTREMA_BY_GATHER = "vmap-failed-extrema"
    # documented typed refusals of collectives (docs/named-axes.md): at batch
    # size 0, a collective that needs a lane (all_gather, psum_scatter,
    # ppermute, ...); with a symbolic size, one that needs the number of
    # lanes as a number (ppermute's pairs, a tiled all_gather of k > 1,
    # psum_scatter / all_to_all of a dimension that is not the number of
    # lanes, shapes or constants from the lane count)
    REFUSED_SIZE0 = "refused-size0"
    REFUSED_SYMBOLIC = "refused-symbolic"
    # documented difference (docs/named-axes.md): a derivative at batch size 0
    # whose cotangent of an unbatched value is nan under jax.vmap (its rule
    # for pmean of an unbatched value is (x * n) / n, transposed: 0 / 0 * 0)
    # and 0 under batch_lower (the sum of the cotangents of no lanes)
    SIZE0_GRAD_NAN = "size0-grad-nan"


# what batch size 0 refuses (named in the error): collectives whose shape or
# value needs a lane, and the gradient of an out_axes=None result one computes
_NEEDS_A_LANE = ("all_gather", "reduce_scatter", "all_to_all", "collective_permute",
                 "collective_broadcast", "out_axes=None at batch size 0")


def documented_refusal(p: "Program", e: BaseException) -> str | None:
    """The Outcome of batch_lower's error ``e`` on ``p`` where it is a
    documented, typed refusal of a collective, else None (then an
    UnsupportedOpError is "unsupported" and any other error a failure)."""
    if not _has_collectives(p):
        return None
    msg = " ".join([str(e), *getattr(e, "__notes__", ())])
    if p.size == 0 and isinstance(e, sb.UnsupportedOpError) and "batch size 0" in msg and any(
            op in msg for op in _NEEDS_A_LANE):
        return Outcome.REFUSED_SIZE0
    # jax's own ValueError / TypeError of a shape at a placeholder lane count
    # (or at the symbolic size, traced) carries the note naming the cause
    # (jax's InconclusiveDimensionOperation where a shape attribute meets the
    # symbolic size while traced, e.g. a slice from 7 of a gathered dimension)
    if "symbolic" in p.options and p.size > 0 and isinstance(
            e, (sb.UnsupportedOpError, ValueError, TypeError,
                jax.errors.InconclusiveDimensionOperation)) and (
            "symbolic batch size" in msg or "symbolic axis_size" in msg):
        return Outcome.REFUSED_SYMBOLIC
    return None


def _merge(p, explicit, dyn):
    """The explicit arguments with the array ones replaced by ``dyn``."""
    it = iter(dyn)
    return [v if a.dtype == STATIC else next(it) for v, a in zip(explicit, p.explicit)]


def per_lane(p: Program, fn, explicit):
    """vmap's meaning as a loop: fn per lane, outputs stacked at out_axes."""
    dyn = [v for v, a in zip(explicit, p.explicit) if a.dtype != STATIC]
    f = jax.jit(lambda *d: fn(*_merge(p, explicit, d)))
    axes = [a.axis for a in p.explicit if a.dtype != STATIC]
    lanes = []
    for i in range(p.size):
        lane = [v if ax is None else v[(slice(None),) * (ax % v.ndim) + (i,)]
                for v, ax in zip(dyn, axes)]
        lanes.append(list(f(*lane)))
    if not lanes:
        raise AssertionError("per-lane reference at batch size 0")
    out = []
    for j, ax in enumerate(p.out_axes):
        col = [_comparable(l[j]) for l in lanes]
        rank = jnp.ndim(lanes[0][j])
        out.append(col[0] if ax is None else jnp.stack(col, axis=ax % (rank + 1)))
    return tuple(out)


def _float_outs(out):
    return tuple(o for o in out if jnp.issubdtype(o.dtype, jnp.floating))


def _scalar(out):
    total = jnp.float32(0)
    for o in _float_outs(out):
        w = _wave(np.cos, o)
        total = total + jnp.sum(o * w)
    return total


def _wave(f, like):
    """f(0, 1, 2, ...) shaped like ``like``: made by numpy, since jnp's
    eager ops compile once per new shape."""
    return np.asarray(f(np.arange(like.size)), like.dtype).reshape(like.shape)


def _stack2(p, a, b, axes):
    def stack(x, y):  # numpy where it can: an eager jnp.stack compiles per shape
        if _is_key(x) or isinstance(x, jax.core.Tracer):
            return jnp.stack([x, y])
        return jax.device_put(np.stack([x, y]))
    return tuple(x if ax is None else stack(x, y) for x, y, ax in zip(a, b, axes))


def _apply_use(p: Program, call, dyn, tcl, dyn2, tcl2, batched):
    """``call(dyn, tcl)`` (the batched function of the array arguments and
    the traced closed-over values) used as ``p.use`` says. ``batched`` is
    the outer batching transformation for "nested" (batch_lower or vmap)."""
    u = p.use
    if u == "direct":
        return call(dyn, tcl)
    if u == "jit":
        return jax.jit(call)(dyn, tcl)
    if u in DIFF_USES:
        flat, tree = jax.tree.flatten((dyn, tcl))
        diff = [i for i, x in enumerate(flat) if jnp.issubdtype(x.dtype, jnp.floating)]

        def g(*xs):
            f2 = list(flat)
            for i, x in zip(diff, xs):
                f2[i] = x
            return call(*jax.tree.unflatten(tree, f2))
        xs = [flat[i] for i in diff]
        if u == "grad":
            return jax.value_and_grad(lambda *a: _scalar(g(*a)), argnums=tuple(range(len(xs))))(*xs)
        if u == "vjp":
            out, pull = jax.vjp(lambda *a: _float_outs(g(*a)), *xs)
            cts = tuple(jax.device_put(_wave(np.sin, o)) for o in out)
            return out, pull(cts)
        tans = tuple(jax.device_put(_wave(np.cos, x)) for x in xs)
        return jax.jvp(lambda *a: _float_outs(g(*a)), tuple(xs), tans)
    if u == "scan":
        return lax.scan(lambda c, _: (c, call(*c)), (dyn, tcl), None, length=2)[1]
    if u == "fori":
        return lax.fori_loop(0, 2, lambda i, c: (c[0], c[1], call(c[0], c[1])),
                             (dyn, tcl, call(dyn, tcl)))[2]
    if u == "cond":
        return jax.jit(lambda pr, d, t: lax.cond(pr, call, lambda d_, t_: call(d_, t_), d, t))(
            True, dyn, tcl)
    # "vmap" / "nested": an outer batch of 2 over the inputs p.outer marks
    axes = (tuple(p.outer[:len(dyn)]), tuple(p.outer[len(dyn):]))
    args = (_stack2(p, dyn, dyn2, axes[0]), _stack2(p, tcl, tcl2, axes[1]))
    size = None if any(a is not None for a in p.outer) else 2
    outer = jax.vmap if u == "vmap" else batched  # "vmap": jax.vmap of batch_lower
    return outer(call, in_axes=axes, axis_size=size)(*args)


def _has_collectives(p: Program) -> bool:
    return any(o.startswith("collective") for o in p.ops())


def _unbatched_diff_fails(p: Program, explicit, closed, error: type) -> bool:
    """jax.vjp of the unbatched function (at lane 0) raises ``error`` too.

    batch_lower differentiates the per-example function; where jax's own
    derivative rule fails on it (lax.clamp with scalar bounds: its JVP
    selects between a scalar and an array) while vmap's rule happens to
    sidestep it (it broadcasts the bounds), both fail as jax does.

    A program with collectives needs its axis name bound: the per-example
    VJP (forward and backward, as batch_lower traces it) runs inside
    ``jax.vmap(..., in_axes=None, axis_size=p.size, axis_name=NAME)``, every
    lane given lane 0's inputs. The lanes stay unbatched there, so jax's own
    rules meet the per-example shapes (the clamp's scalar bounds are not
    broadcast), and the collectives see as many lanes as in the program
    (all_gather's and ppermute's shapes and pairs depend on the count);
    pmax / pmin are differentiated as batch_lower does (``_EXTREMA_BY_GATHER``)."""
    lane = []
    for v, a in zip(explicit, p.explicit):
        if a.dtype == STATIC or a.axis is None:
            lane.append(v)
        elif p.size == 0:
            lane.append(_keys(0, a.shape) if a.dtype == KEY else jnp.zeros(a.shape, a.dtype))
        else:
            lane.append(jnp.take(v, 0, axis=a.axis))
    fn = p.fn(closed)
    diff = [i for i, a in enumerate(p.explicit) if a.dtype == F32]

    def g(*xs):
        full = list(lane)
        for i, x in zip(diff, xs):
            full[i] = x
        return _float_outs(fn(*full))
    def vjp(*xs):
        out, pull = jax.vjp(g, *xs)
        return pull(tuple(jnp.ones_like(o) for o in out))
    if _has_collectives(p):
        vjp = jax.vmap(vjp, in_axes=None, axis_size=max(p.size, 1), axis_name=NAME)
    # pmax / pmin as all_gather + max / min: jax has no derivative for them,
    # and batch_lower gives them one; their failing here says nothing
    _EXTREMA_BY_GATHER.on = True
    try:
        vjp(*[lane[i] for i in diff])
    except error:
        return True
    except Exception:
        return False
    finally:
        _EXTREMA_BY_GATHER.on = False
    return False


def _oracle_by_gather(p: Program, oracle):
    """Under grad / vjp / jvp, ``oracle()`` with pmax / pmin written as
    all_gather + max / min (``_EXTREMA_BY_GATHER``), for a program jax.vmap
    cannot differentiate; None where that does not apply or fails too."""
    if p.use not in DIFF_USES or not {"collective:pmax", "collective:pmin"} & set(p.ops()):
        return None
    _EXTREMA_BY_GATHER.on = True
    try:
        return oracle()
    except Exception:
        return None
    finally:
        _EXTREMA_BY_GATHER.on = False


def _sb_options(p: Program) -> dict:
    kw = {}
    for k, v in p.options.items():
        if k == "chunk":
            kw["chunk_size"] = v
        elif k == "symbolic":
            kw["axis_size"] = "b"
        elif k == "mesh":
            kw["mesh"] = jax.sharding.Mesh(np.array(jax.devices()), ("batch",))
        elif k == "tune":
            kw["tune"] = True
    return kw


def _uses_callback(p):
    return "callback" in p.ops()


def check_program(p: Program, rtol=1e-4, atol=1e-4) -> str:
    """batch_lower(p.fn()) agrees with jax.vmap(p.fn()), used as ``p.use``
    says, with ``p.options``; returns the Outcome.

    An UnsupportedOpError is an allowed outcome (a typed refusal, never a
    wrong value); a ValueError from vmap (out_axes None on a batched output)
    must be a ValueError from batch_lower too. When vmap has no rule for the
    program, the plain call is checked against a per-lane loop."""
    explicit, closed = p.make_args()
    explicit2, closed2 = p.make_args(p.seed + 1)
    named = dict(axis_name=NAME) if _has_collectives(p) else {}
    kw = dict(in_axes=p.in_axes, out_axes=tuple(p.out_axes), axis_size=p.axis_size, **named)
    sb_kw = dict(kw, **_sb_options(p))

    def caller(make):
        def call(dyn, tcl):
            it = iter(tcl)
            cl = [next(it) if a.closure == "traced" else v for v, a in zip(closed, p.closed)]
            return make(cl)(*_merge(p, explicit, dyn))
        return call

    def dyn_of(ex):
        return tuple(v for v, a in zip(ex, p.explicit) if a.dtype != STATIC)

    def tcl_of(cl):
        return tuple(v for v, a in zip(cl, p.closed) if a.closure == "traced")

    ref_call = caller(lambda cl: jax.vmap(p.fn(cl), **kw))
    sb_call = caller(lambda cl: sb.batch_lower(p.fn(cl), **sb_kw))
    ins = (dyn_of(explicit), tcl_of(closed), dyn_of(explicit2), tcl_of(closed2))
    tol = dict(rtol=rtol, atol=atol) if p.use not in DIFF_USES else dict(rtol=1e-3, atol=1e-3)
    outcome = Outcome.OK

    def oracle():
        # the oracle under one jax.jit: one XLA compile for the program
        # instead of one per primitive (op-by-op vmap), the bulk of its time
        want = jax.jit(lambda *i: _apply_use(p, ref_call, *i, jax.vmap))(*ins)
        return jax.block_until_ready(want)
    try:
        want = oracle()
    except ValueError:
        try:
            _apply_use(p, sb_call, *ins, sb.batch_lower)
        except (ValueError, sb.UnsupportedOpError) as e:
            return documented_refusal(p, e) or Outcome.BOTH_REJECT
        except Exception as e:
            # jax's own derivative of the per-example function fails before
            # (lax.clamp's JVP with scalar bounds: a TypeError), where vmap's
            # broadcast bounds reach the ValueError of a dynamic while
            if p.use in DIFF_USES and _unbatched_diff_fails(p, explicit, closed, type(e)):
                return Outcome.JAX_DIFF_FAILED
            raise
        raise AssertionError("jax.vmap raised ValueError but batch_lower did not")
    except Exception:  # a jax.vmap limitation (e.g. lax.clamp with only max batched)
        want = _oracle_by_gather(p, oracle)
        if want is not None:
            outcome = Outcome.EXTREMA_BY_GATHER
        elif p.use != "direct" or named or p.size == 0:
            try:
                _apply_use(p, sb_call, *ins, sb.batch_lower)
            except Exception as e:
                return documented_refusal(p, e) or Outcome.BOTH_REJECT
            return Outcome.USE_UNCHECKED
        else:
            want, outcome = per_lane(p, p.fn(closed), explicit), Outcome.VMAP_FAILED
    try:
        got = _apply_use(p, sb_call, *ins, sb.batch_lower)
    except sb.UnsupportedOpError as e:
        return documented_refusal(p, e) or Outcome.UNSUPPORTED
    except Exception as e:
        if documented_refusal(p, e):  # the ValueError of a symbolic size
            return documented_refusal(p, e)
        if p.use in DIFF_USES and _unbatched_diff_fails(p, explicit, closed, type(e)):
            return Outcome.JAX_DIFF_FAILED
        raise
    try:
        assert_same_tree(_comparable(got), _comparable(want), **tol)
    except AssertionError:
        if not _size0_grad_nan(p, got, want, tol):
            raise
        return Outcome.SIZE0_GRAD_NAN
    if outcome == Outcome.OK:
        _check_symbolic_sizes(p, closed, kw, sb_kw)
    return outcome


def _size0_grad_nan(p: Program, got, want, tol) -> bool:
    """``got`` equals ``want`` but where ``want`` is nan and ``got`` 0, in a
    derivative at batch size 0 of a program with collectives (the documented
    difference Outcome.SIZE0_GRAD_NAN)."""
    if not (p.size == 0 and p.use in DIFF_USES and _has_collectives(p)):
        return False
    g_leaves, w_leaves = jax.tree.leaves(_comparable(got)), jax.tree.leaves(_comparable(want))
    if len(g_leaves) != len(w_leaves):
        return False
    differs = False
    for g, w in zip(g_leaves, w_leaves):
        g, w = np.asarray(g), np.asarray(w)
        if g.shape != w.shape or g.dtype != w.dtype:
            return False
        if not np.issubdtype(w.dtype, np.inexact):
            continue
        hole = np.isnan(w) & (g == 0)
        differs |= bool(hole.any())
        try:
            assert_same_tree(np.where(hole, 0, g), np.where(hole, 0, w), **tol)
        except AssertionError:
            return False
    return differs


SYMBOLIC_SIZES = (1, 5)  # further sizes a symbolic artifact with collectives is run at


def _check_symbolic_sizes(p: Program, closed, kw, sb_kw):
    """With a symbolic size and collectives: the one artifact batch_lower
    built (at p.size) runs at other batch sizes too, each checked against
    jax.vmap at that concrete size (called directly, the closed-over values
    concrete). A size where jax.vmap itself fails (a psum_scatter of a
    dimension that size does not divide) is skipped."""
    if "symbolic" not in p.options or not _has_collectives(p) or p.size == 0:
        return
    fn = p.fn(closed)
    bl = sb.batch_lower(fn, **sb_kw)
    first = None  # plans built by the first call: later sizes must build none
    for s in (p.size,) + tuple(x for x in SYMBOLIC_SIZES if x != p.size):
        q = dataclasses.replace(p, size=s)
        ex = q.make_args()[0]  # closed-over values do not depend on the size: p's
        dyn = tuple(v for v, a in zip(ex, p.explicit) if a.dtype != STATIC)
        try:
            want = jax.jit(lambda *d: jax.vmap(fn, **kw)(*_merge(q, ex, d)))(*dyn)
        except Exception:
            continue
        got = bl(*ex)
        if first is None:
            # (the first call builds one plan, also with a Python scalar
            # argument: tests/api/test_api.py)
            first = bl.cache_info().misses
        assert_same_tree(_comparable(got), _comparable(want), rtol=1e-4, atol=1e-4)
    info = bl.cache_info()
    assert first is None or info.misses == first, \
        f"a symbolic size built plans for further batch sizes: {first} then {info}"


# ---- op families --------------------------------------------------------------

@dataclasses.dataclass
class OpDef:
    gen: Callable       # gen(builder) -> Step (draws operands and params)
    apply: Callable     # apply(params, *operands) -> value
    needs: tuple = ()   # rule names that must be registered


OPS: dict[str, OpDef] = {}


def op(name, apply, needs=()):
    def wrap(gen):
        OPS[name] = OpDef(gen, apply, needs)
        return gen
    return wrap


def available_ops() -> list[str]:
    return sorted(n for n, d in OPS.items()
                  if d.gen is not None and all(r in RULES for r in d.needs))


_UNARY_F = {
    "sin": jnp.sin, "cos": jnp.cos, "tanh": jnp.tanh, "exp": jnp.exp, "neg": jnp.negative,
    "abs": jnp.abs, "floor": jnp.floor, "sign": jnp.sign, "sigmoid": jax.nn.sigmoid,
    "log1p_abs": lambda x: jnp.log1p(jnp.abs(x)), "sqrt_abs": lambda x: jnp.sqrt(jnp.abs(x)),
    "erf": jax.scipy.special.erf, "square": jnp.square, "to_i32": lambda x: x.astype(jnp.int32),
    "round": jnp.round, "is_finite": jnp.isfinite,
}
_UNARY_I = {"neg": jnp.negative, "abs": jnp.abs, "not": jnp.invert, "square": jnp.square,
            "to_f32": lambda x: x.astype(jnp.float32), "sign": jnp.sign,
            "popcount": lax.population_count}
_BINARY_F = {"add": jnp.add, "sub": jnp.subtract, "mul": jnp.multiply, "max": jnp.maximum,
             "min": jnp.minimum, "div": jnp.divide, "atan2": jnp.arctan2,
             "pow_abs": lambda x, y: jnp.power(jnp.abs(x), y)}
_BINARY_I = {"add": jnp.add, "sub": jnp.subtract, "mul": jnp.multiply, "max": jnp.maximum,
             "min": jnp.minimum, "and": jnp.bitwise_and, "or": jnp.bitwise_or,
             "xor": jnp.bitwise_xor, "shl": lambda x, y: jnp.left_shift(x, y & 7),
             "rem": lambda x, y: jnp.fmod(x, jnp.where(y == 0, 1, y).astype(y.dtype))}
_CMP = {"lt": jnp.less, "le": jnp.less_equal, "gt": jnp.greater, "ge": jnp.greater_equal,
        "eq": jnp.equal, "ne": jnp.not_equal}


class Builder:
    """Draws a program step by step, tracking each value's per-example aval."""

    def __init__(self, draw, depth=0, env=(), size=3, families=(), forced=None):
        self.draw = draw
        self.forced = dict(forced or {})  # family -> variant for its next step
        self.depth = depth  # > 0 inside a region: no new arguments there
        self.size = size
        self.families = families  # the op families steps are drawn from
        self.args: list[Arg] = []
        self.steps: list[Step] = []
        self.avals: list[tuple[tuple, str]] = list(env)  # per value id
        self._arg_ids: list[int] = []
        self.statics: dict[int, Any] = {}  # value id -> Python value

    # Value ids: arguments are numbered first in the final program; while
    # building, arguments and steps interleave, so ids are remapped at the end.
    def _new_arg(self, shape, dtype, value=None):
        rank = len(shape)
        if dtype == STATIC:
            axis, closure = None, None
        else:
            axis = self.draw(st.sampled_from([0, 0, -1, None] + list(range(1, rank + 1))))
            closure = None
            if axis is None:  # unbatched values are also closed over, as users write them
                closure = self.draw(st.sampled_from((None, "traced", "traced", "concrete")))
        self.args.append(Arg(tuple(shape), dtype, axis, closure, value))
        self.avals.append((tuple(shape), dtype))
        self._arg_ids.append(len(self.avals) - 1)
        if dtype == STATIC:
            self.statics[len(self.avals) - 1] = value
        return len(self.avals) - 1

    def variant(self, family, choices):
        """The variant (``fn``) of a ``family`` step: the forced one the
        first time (a stratified sample asks for each), else drawn."""
        if family in self.forced:
            return self.forced.pop(family)
        return self.draw(st.sampled_from(choices))

    def _new_const(self, shape, dtype):
        seed = self.draw(st.integers(0, 2**16))
        return self.add(Step("const", (), dict(shape=tuple(shape), dtype=dtype, seed=seed)))

    def shape(self, min_rank=0, max_rank=3) -> tuple:
        rank = self.draw(st.integers(min_rank, max_rank))
        return tuple(self.draw(st.sampled_from((1, 2, 2, 3, 3, 4, 0))) for _ in range(rank))

    def operand(self, shape=None, dtypes=(F32, I32, "uint8", "int8"), min_rank=0, max_rank=3,
                nonempty=False) -> int:
        """An earlier value (or a new argument / constant) of ``shape`` (any
        shape of rank in [min_rank, max_rank] when None) and one of ``dtypes``."""
        def fits(av):
            s, d = av
            if d not in dtypes:
                return False
            if shape is not None:
                return s == tuple(shape)
            return min_rank <= len(s) <= max_rank and (not nonempty or 0 not in s)
        found = [i for i, av in enumerate(self.avals) if fits(av)]
        if found and self.draw(st.integers(0, 3)) > 0:
            return self.draw(st.sampled_from(found))
        if shape is None:
            shape = self.shape(min_rank, max_rank)
            if nonempty:
                shape = tuple(max(d, 1) for d in shape)
        dtype = self.draw(st.sampled_from([d for d in dtypes if d != BOOL] or [BOOL]))
        if dtype == BOOL:
            x = self.operand(shape, (F32,))
            return self.add(Step("cmp", (x, self._new_const(shape, F32)), dict(fn="gt")))
        if self.depth or self.draw(st.integers(0, 4)) == 4:  # hypothesis favours 0
            return self._new_const(shape, dtype)
        return self._new_arg(shape, dtype)

    def add(self, step: Step) -> int:
        ins = [self.statics[i] if i in self.statics else _struct(*self.avals[i])
               for i in step.inputs]
        try:
            out = _eval_shape(step, ins, self.size)
        except Exception as e:  # pragma: no cover - a generator bug; skip the example
            assume(False)
            raise AssertionError(e)
        self.steps.append(step)
        self.avals.append((tuple(out.shape), KEY if _is_key(out) else str(out.dtype)))
        return len(self.avals) - 1

    def program(self, outputs, out_axes, size) -> Program:
        # Renumber: arguments 0..n-1, then steps in order.
        mapping, k = {}, 0
        for i in self._arg_ids:
            mapping[i] = k
            k += 1
        step_ids = [i for i in range(len(self.avals)) if i not in mapping]
        for i in step_ids:
            mapping[i] = k
            k += 1
        steps = [Step(s.op, tuple(mapping[i] for i in s.inputs), s.params)
                 for s in self.steps]
        return Program(list(self.args), steps, [mapping[o] for o in outputs],
                       list(out_axes), size,
                       out_dtypes=tuple(self.avals[o][1] for o in outputs))


def _struct(shape, dtype):
    if dtype == KEY:
        return jax.eval_shape(lambda: _keys(0, shape))
    return jax.ShapeDtypeStruct(shape, dtype)


def _eval_shape(step, ins, size):
    """The per-example aval of a step; collectives (also inside region bodies)
    need their named axis bound, so those are traced under a vmap."""
    # Python values (static arguments) stay Python values, as in the program
    static = {i: x for i, x in enumerate(ins) if not isinstance(x, jax.ShapeDtypeStruct)}
    dyn = [x for i, x in enumerate(ins) if i not in static]
    n = len(ins)

    def f(*d):
        it = iter(d)
        return OPS[step.op].apply(step.params, *[static[i] if i in static else next(it)
                                                 for i in range(n)])
    ins = dyn
    if "collective" in repr(step):
        out = jax.eval_shape(jax.vmap(f, in_axes=None, axis_size=max(size, 1), axis_name=NAME),
                             *ins)
        return jax.ShapeDtypeStruct(out.shape[1:], out.dtype)
    return jax.eval_shape(f, *ins)


def _const(p):
    if p["dtype"] == KEY:
        return _keys(p["seed"], p["shape"])
    return jnp.asarray(random_array(np.random.default_rng(p["seed"]), p["shape"], p["dtype"]))


OPS["const"] = OpDef(None, lambda p: _const(p))


@op("unary", lambda p, x: (_UNARY_F if jnp.issubdtype(x.dtype, jnp.floating)
                           else _UNARY_I)[p["fn"]](x))
def _gen_unary(b):
    x = b.operand()
    table = _UNARY_F if b.avals[x][1] == F32 else _UNARY_I
    return b.add(Step("unary", (x,), dict(fn=b.draw(st.sampled_from(sorted(table))))))


def _broadcast_partner(b, shape):
    """A shape that numpy-broadcasts against ``shape`` to ``shape``."""
    kind = b.draw(st.sampled_from(("same", "same", "scalar", "suffix", "ones")))
    if kind == "scalar":
        return ()
    if kind == "suffix":
        return shape[b.draw(st.integers(0, len(shape))):]
    if kind == "ones":
        return tuple(1 if b.draw(st.booleans()) else d for d in shape)
    return shape


@op("binary", lambda p, x, y: (_BINARY_F if jnp.issubdtype(x.dtype, jnp.floating)
                               else _BINARY_I)[p["fn"]](x, y))
def _gen_binary(b):
    x = b.operand()
    shape, dtype = b.avals[x]
    y = b.operand(_broadcast_partner(b, shape), (dtype,))
    table = _BINARY_F if dtype == F32 else _BINARY_I
    ins = (x, y) if b.draw(st.booleans()) else (y, x)
    return b.add(Step("binary", ins, dict(fn=b.draw(st.sampled_from(sorted(table))))))


@op("cmp", lambda p, x, y: _CMP[p["fn"]](x, y))
def _gen_cmp(b):
    x = b.operand()
    shape, dtype = b.avals[x]
    y = b.operand(_broadcast_partner(b, shape), (dtype,))
    return b.add(Step("cmp", (x, y), dict(fn=b.draw(st.sampled_from(sorted(_CMP))))))


@op("where", lambda p, c, x, y: jnp.where(c, x, y))
def _gen_where(b):
    x = b.operand()
    shape, dtype = b.avals[x]
    c = b.operand(_broadcast_partner(b, shape), (BOOL,))
    y = b.operand(_broadcast_partner(b, shape), (dtype,))
    return b.add(Step("where", (c, x, y)))


@op("clamp", lambda p, lo, x, hi: lax.clamp(lo, x, hi))
def _gen_clamp(b):
    x = b.operand()
    shape, dtype = b.avals[x]
    lo = b.operand(() if b.draw(st.booleans()) else shape, (dtype,))
    hi = b.operand(() if b.draw(st.booleans()) else shape, (dtype,))
    return b.add(Step("clamp", (lo, x, hi)))


def _dot(p, x, y):
    return lax.dot_general(x, y, ((p["lc"], p["rc"]), (p["lb"], p["rb"])))


@op("dot", _dot)
def _gen_dot(b):
    x = b.operand(min_rank=1, max_rank=3)
    shape, dtype = b.avals[x]
    dims = list(range(len(shape)))
    n_c = b.draw(st.integers(0, min(2, len(dims))))
    lc = b.draw(st.permutations(dims))[:n_c]
    rest = [d for d in dims if d not in lc]
    n_b = b.draw(st.integers(0, min(1, len(rest))))
    lb = rest[:n_b]
    free = [b.draw(st.sampled_from((1, 2, 3))) for _ in range(b.draw(st.integers(0, 2)))]
    # rhs dims in a random order: batch, contracting, free
    parts = [("b", k) for k in range(len(lb))] + [("c", k) for k in range(len(lc))] + \
            [("f", k) for k in range(len(free))]
    parts = b.draw(st.permutations(parts))
    rshape = [shape[lb[k]] if t == "b" else shape[lc[k]] if t == "c" else free[k]
              for t, k in parts]
    y = b.operand(tuple(rshape), (dtype,))
    rb = [parts.index(("b", k)) for k in range(len(lb))]
    rc = [parts.index(("c", k)) for k in range(len(lc))]
    params = dict(lc=tuple(lc), rc=tuple(rc), lb=tuple(lb), rb=tuple(rb))
    if b.draw(st.booleans()):
        return b.add(Step("dot", (x, y), params))
    swapped = dict(lc=params["rc"], rc=params["lc"], lb=params["rb"], rb=params["lb"])
    return b.add(Step("dot", (y, x), swapped))


_REDUCE = {"sum": jnp.sum, "max": jnp.max, "min": jnp.min, "prod": jnp.prod,
           "any": lambda x, axis: jnp.any(x != 0, axis=axis),
           "argmax": lambda x, axis: jnp.argmax(x, axis=axis[0]),
           "argmin": lambda x, axis: jnp.argmin(x, axis=axis[0])}


@op("reduce", lambda p, x: _REDUCE[p["fn"]](x, axis=tuple(p["axes"])))
def _gen_reduce(b):
    x = b.operand(min_rank=1)
    shape = b.avals[x][0]
    fn = b.draw(st.sampled_from(sorted(_REDUCE)))
    axes = sorted(b.draw(st.sets(st.integers(0, len(shape) - 1), min_size=1)))
    if fn.startswith("arg") or fn in ("max", "min"):
        axes = axes[:1] if fn.startswith("arg") else axes
        if any(shape[a] == 0 for a in axes):
            fn = "sum"
    return b.add(Step("reduce", (x,), dict(fn=fn, axes=tuple(axes))))


def _factor_shape(b, total):
    if total == 0:
        n = b.draw(st.integers(1, 3))
        shape = [b.draw(st.sampled_from((1, 2, 3))) for _ in range(n)]
        shape[b.draw(st.integers(0, n - 1))] = 0
        return tuple(shape)
    shape, rest = [], total
    while rest > 1 and len(shape) < 3:
        divisors = [d for d in range(1, rest + 1) if rest % d == 0]
        d = b.draw(st.sampled_from(divisors))
        shape.append(d)
        rest //= d
    if rest > 1:
        shape.append(rest)
    if b.draw(st.booleans()):
        shape.insert(b.draw(st.integers(0, len(shape))), 1)
    return tuple(shape)


@op("reshape", lambda p, x: jnp.reshape(x, p["shape"]))
def _gen_reshape(b):
    x = b.operand()
    return b.add(Step("reshape", (x,), dict(shape=_factor_shape(b, math.prod(b.avals[x][0])))))


@op("transpose", lambda p, x: jnp.transpose(x, p["perm"]))
def _gen_transpose(b):
    x = b.operand(min_rank=1)
    perm = tuple(b.draw(st.permutations(range(len(b.avals[x][0])))))
    return b.add(Step("transpose", (x,), dict(perm=perm)))


@op("slice", lambda p, x: lax.slice(x, p["start"], p["limit"], p["strides"]))
def _gen_slice(b):
    x = b.operand(min_rank=1)
    start, limit, strides = [], [], []
    for d in b.avals[x][0]:
        lo = b.draw(st.integers(0, d))
        hi = b.draw(st.integers(lo, d))
        start.append(lo), limit.append(hi), strides.append(b.draw(st.sampled_from((1, 1, 2))))
    return b.add(Step("slice", (x,), dict(start=tuple(start), limit=tuple(limit),
                                          strides=tuple(strides))))


@op("concat", lambda p, *xs: jnp.concatenate(xs, axis=p["axis"]))
def _gen_concat(b):
    x = b.operand(min_rank=1)
    shape, dtype = b.avals[x]
    axis = b.draw(st.integers(0, len(shape) - 1))
    ins = [x]
    for _ in range(b.draw(st.integers(1, 2))):
        other = list(shape)
        other[axis] = b.draw(st.sampled_from((0, 1, 2, 3)))
        ins.append(b.operand(tuple(other), (dtype,)))
    ins = b.draw(st.permutations(ins))
    return b.add(Step("concat", tuple(ins), dict(axis=axis)))


@op("pad", lambda p, x, v: lax.pad(x, v, p["config"]))
def _gen_pad(b):
    x = b.operand(min_rank=1)
    shape, dtype = b.avals[x]
    v = b.operand((), (dtype,))
    config = []
    for d in shape:
        interior = b.draw(st.sampled_from((0, 0, 1))) if d > 0 else 0
        full = d + max(d - 1, 0) * interior
        lo = b.draw(st.integers(-min(full, 2), 2))
        hi = b.draw(st.integers(-min(full + lo, 2) if full + lo > 0 else 0, 2))
        config.append((lo, hi, interior))
    return b.add(Step("pad", (x, v), dict(config=tuple(config))))


def _bcast(p, x):
    return lax.broadcast_in_dim(x, p["shape"], p["dims"])


@op("broadcast", _bcast)
def _gen_broadcast(b):
    x = b.operand(max_rank=2)
    shape = b.avals[x][0]
    out = [b.draw(st.sampled_from((1, 2, 3))) for _ in range(b.draw(st.integers(0, 2)))]
    dims = []
    for d in shape:  # keep order; expand size-1 dims sometimes
        pos = b.draw(st.integers(len(dims) and dims[-1] + 1, len(out)))
        out.insert(pos, d if d != 1 or b.draw(st.booleans()) else 3)
        dims = [k if k < pos else k + 1 for k in dims] + [pos]
    return b.add(Step("broadcast", (x,), dict(shape=tuple(out), dims=tuple(dims))))


@op("reverse", lambda p, x: jnp.flip(x, p["axes"]))
def _gen_reverse(b):
    x = b.operand(min_rank=1)
    axes = tuple(sorted(b.draw(st.sets(st.integers(0, len(b.avals[x][0]) - 1), min_size=1))))
    return b.add(Step("reverse", (x,), dict(axes=axes)))


@op("iota", lambda p, x: x + lax.broadcasted_iota(x.dtype, x.shape, p["dim"]))
def _gen_iota(b):
    x = b.operand(min_rank=1)
    return b.add(Step("iota", (x,), dict(dim=b.draw(st.integers(0, len(b.avals[x][0]) - 1)))))


@op("take", lambda p, x, i: jnp.take(x, i, axis=p["axis"], mode=p["mode"]))
def _gen_take(b):
    x = b.operand(min_rank=1, nonempty=True)  # jnp.take rejects an empty axis
    idx = b.operand(b.shape(0, 2), (I32,))
    axis = b.draw(st.integers(0, len(b.avals[x][0]) - 1))
    mode = b.draw(st.sampled_from(("clip", "fill")))
    return b.add(Step("take", (x, idx), dict(axis=axis, mode=mode)))


def _index2(p, x, i, j):
    return x.at[i, :, j].get(mode=p["mode"]) if p["gap"] else x.at[i, j].get(mode=p["mode"])


@op("index2", _index2)
def _gen_index2(b):
    gap = b.draw(st.booleans())
    x = b.operand(min_rank=3 if gap else 2, nonempty=True)
    ishape = b.shape(0, 2)
    i = b.operand(ishape, (I32,))
    j = b.operand(_broadcast_partner(b, ishape), (I32,))
    return b.add(Step("index2", (x, i, j),
                      dict(gap=gap, mode=b.draw(st.sampled_from(("clip", "fill"))))))


def _scatter(p, x, i, y):
    ref = x.at[i] if p["axis"] == 0 else x.at[:, i]
    return getattr(ref, p["fn"])(y, mode=p["mode"])


@op("scatter", _scatter)
def _gen_scatter(b):
    x = b.operand(min_rank=1, nonempty=True)  # jax rejects a scalar index into size 0
    shape, dtype = b.avals[x]
    axis = b.draw(st.integers(0, min(1, len(shape) - 1)))
    fn = b.draw(st.sampled_from(("add", "max", "min", "mul", "set")))
    ishape = () if fn == "set" else b.shape(0, 2)  # set: no duplicate indices
    i = b.operand(ishape, (I32,))
    yshape = shape[:axis] + ishape + shape[axis + 1:]
    if b.draw(st.integers(0, 3)) == 0:
        yshape = ()
    y = b.operand(yshape, (dtype,))
    mode = b.draw(st.sampled_from(("drop", "clip")))
    return b.add(Step("scatter", (x, i, y), dict(axis=axis, fn=fn, mode=mode)))


@op("dynamic_slice", lambda p, x, *s: lax.dynamic_slice(x, s, p["sizes"]))
def _gen_dynamic_slice(b):
    x = b.operand(min_rank=1)
    shape = b.avals[x][0]
    starts = [b.operand((), (I32,)) for _ in shape]
    sizes = tuple(b.draw(st.integers(0, d)) for d in shape)
    return b.add(Step("dynamic_slice", (x, *starts), dict(sizes=sizes)))


@op("dynamic_update_slice", lambda p, x, u, *s: lax.dynamic_update_slice(x, u, s))
def _gen_dynamic_update_slice(b):
    x = b.operand(min_rank=1)
    shape, dtype = b.avals[x]
    u = b.operand(tuple(b.draw(st.integers(0, d)) for d in shape), (dtype,))
    starts = [b.operand((), (I32,)) for _ in shape]
    return b.add(Step("dynamic_update_slice", (x, u, *starts)))


def _body_fn(name, x, y):
    if jnp.issubdtype(x.dtype, jnp.floating):
        return {"a": lambda: jnp.tanh(x) + y, "b": lambda: x * 0.5 - y,
                "c": lambda: jnp.sin(x * y)}[name]()
    return {"a": lambda: x + y, "b": lambda: (x ^ y) + 1, "c": lambda: x * y - 1}[name]()


def _fori(p, x, y):
    return lax.fori_loop(0, p["n"], lambda i, c: _body_fn(p["fn"], c, y), x)


@op("fori", _fori, needs=("stablehlo.while",))
def _gen_fori(b):
    x = b.operand()
    shape, dtype = b.avals[x]
    y = b.operand(_broadcast_partner(b, shape), (dtype,))
    return b.add(Step("fori", (x, y), dict(n=b.draw(st.integers(0, 3)),
                                           fn=b.draw(st.sampled_from("abc")))))


def _while(p, x, y, k):
    def body(c):
        i, v = c
        return i + 1, _body_fn(p["fn"], v, y)
    return lax.while_loop(lambda c: c[0] < jnp.clip(k, 0, 3), body, (jnp.int32(0), x))[1]


@op("while", _while, needs=("stablehlo.while",))
def _gen_while(b):
    x = b.operand()
    shape, dtype = b.avals[x]
    y = b.operand(_broadcast_partner(b, shape), (dtype,))
    k = b.operand((), (I32,))
    return b.add(Step("while", (x, y, k), dict(fn=b.draw(st.sampled_from("abc")))))


def _cond(p, s, x, y):
    if p["switch"]:
        return lax.switch(s, [lambda a, c: _body_fn(f, a, c) for f in "abc"], x, y)
    return lax.cond(s > 0, lambda a, c: _body_fn("a", a, c),
                    lambda a, c: _body_fn("b", a, c), x, y)


@op("cond", _cond, needs=("stablehlo.if", "stablehlo.case"))
def _gen_cond(b):
    x = b.operand()
    shape, dtype = b.avals[x]
    y = b.operand(_broadcast_partner(b, shape), (dtype,))
    s = b.operand((), (I32,))
    return b.add(Step("cond", (s, x, y), dict(switch=b.draw(st.booleans()))))


def _sort(p, x, y):
    if p["fn"] == "sort":
        return jnp.sort(x, axis=p["axis"])
    if p["fn"] == "argsort":
        return jnp.argsort(x, axis=p["axis"], stable=True)
    return lax.sort((x, y), dimension=p["axis"], num_keys=1)[1]


@op("sort", _sort, needs=("stablehlo.sort",))
def _gen_sort(b):
    x = b.operand(min_rank=1)
    shape = b.avals[x][0]
    y = b.operand(shape)
    return b.add(Step("sort", (x, y), dict(fn=b.draw(st.sampled_from(("sort", "argsort", "pair"))),
                                         axis=b.draw(st.integers(0, len(shape) - 1)))))


@op("top_k", lambda p, x: lax.top_k(x, p["k"])[p["which"]], needs=("chlo.top_k",))
def _gen_top_k(b):
    x = b.operand(min_rank=1, dtypes=(F32,), nonempty=True)
    n = b.avals[x][0][-1]
    return b.add(Step("top_k", (x,), dict(k=b.draw(st.integers(1, n)),
                                          which=b.draw(st.integers(0, 1)))))


_CUM = {"cumsum": jnp.cumsum, "cummax": lax.cummax, "cummin": lax.cummin,
        "cumprod": jnp.cumprod}


@op("cumulative", lambda p, x: _CUM[p["fn"]](x, axis=p["axis"]),
    needs=("stablehlo.reduce_window",))
def _gen_cumulative(b):
    x = b.operand(min_rank=1)
    return b.add(Step("cumulative", (x,), dict(fn=b.draw(st.sampled_from(sorted(_CUM))),
                                               axis=b.draw(st.integers(0, len(b.avals[x][0]) - 1)))))


def _conv(p, x, w):
    n = len(p["strides"])
    spec = ("NC" + "HW"[:n], "OI" + "HW"[:n], "NC" + "HW"[:n])
    return lax.conv_general_dilated(x, w, p["strides"], p["padding"],
                                    lhs_dilation=p["lhs_dil"], rhs_dilation=p["rhs_dil"],
                                    dimension_numbers=spec,
                                    feature_group_count=p["groups"])


@op("conv", _conv, needs=("stablehlo.convolution",))
def _gen_conv(b):
    n = b.draw(st.integers(1, 2))
    groups = b.draw(st.sampled_from((1, 1, 2)))
    cin = groups * b.draw(st.integers(1, 2))
    cout = groups * b.draw(st.integers(1, 2))
    spatial = tuple(b.draw(st.integers(3, 5)) for _ in range(n))
    x = b.operand((b.draw(st.integers(1, 2)), cin) + spatial, (F32,))
    k = tuple(b.draw(st.integers(1, 3)) for _ in range(n))
    w = b.operand((cout, cin // groups) + k, (F32,))
    params = dict(strides=tuple(b.draw(st.integers(1, 2)) for _ in range(n)),
                  padding=tuple((b.draw(st.integers(0, 1)), b.draw(st.integers(0, 1)))
                                for _ in range(n)),
                  lhs_dil=tuple(b.draw(st.integers(1, 2)) for _ in range(n)),
                  rhs_dil=tuple(b.draw(st.integers(1, 2)) for _ in range(n)),
                  groups=groups)
    return b.add(Step("conv", (x, w), params))


# ---- typed keys, static arguments, collectives, custom calls --------------------------

KEY_FNS = ("split", "fold_in", "bits", "normal", "uniform")
LINALG_FNS = ("solve", "cholesky", "qr", "eigh", "inv", "svd")


def _key_op(p, k, d=None):
    fn = p["fn"]
    if k.ndim:  # a key array: one of its keys (ops below take a single key)
        k = k.reshape(-1)[p["index"] % k.size] if k.size else jax.random.key(0)
    if fn == "split":
        return jax.random.split(k, p["n"])
    if fn == "fold_in":
        return jax.random.fold_in(k, d)
    if fn == "bits":
        return jax.random.bits(k, p["shape"])
    if fn == "normal":
        return jax.random.normal(k, p["shape"])
    return jax.random.uniform(k, p["shape"]) + d.astype(jnp.float32)  # "uniform"


@op("key", _key_op)
def _gen_key(b):
    found = [i for i, av in enumerate(b.avals) if av[1] == KEY]
    if found and b.draw(st.booleans()):
        k = b.draw(st.sampled_from(found))
    elif b.depth:
        k = b._new_const(b.draw(st.sampled_from(((), (2,)))), KEY)
    else:
        k = b._new_arg(b.draw(st.sampled_from(((), (2,), (3, 2)))), KEY)
    fn = b.variant("key", KEY_FNS)
    params = dict(fn=fn, index=b.draw(st.integers(0, 5)))
    ins = (k,)
    if fn == "split":
        params["n"] = b.draw(st.integers(1, 3))
    elif fn in ("fold_in", "uniform"):
        ins = (k, b.operand((), (I32,)))
    if fn in ("bits", "normal", "uniform"):
        params["shape"] = b.shape(0, 2)
    return b.add(Step("key", ins, params))


def _static_op(p, x, s):
    # Python values as vmap passes them (in_axes=None): batch_lower keeps
    # them static too (test_python_scalar_under_in_axes_none_stays_python).
    kind = p["kind"]
    if kind == "str":
        return {"sin": jnp.sin, "cos": jnp.cos, "neg": jnp.negative}[s](x)
    if kind == "bool":
        return jnp.where(s, -x, x)
    if kind == "int" and p["roll"] and x.ndim:
        return jnp.roll(x, s, axis=0)
    if kind == "tuple":
        return x * jnp.asarray(s, x.dtype).sum()
    return x * s


@op("static", _static_op)
def _gen_static(b):
    """A non-array argument (in_axes=None) used as a Python value."""
    if b.depth:
        return _gen_unary(b)
    x = b.operand(dtypes=(F32,))
    v = b.draw(st.one_of(st.sampled_from(("sin", "cos", "neg")), st.integers(-3, 3),
                         st.sampled_from((0.5, -2.0)), st.booleans(),
                         st.tuples(st.integers(0, 2), st.integers(0, 2))))
    s = b._new_arg((), STATIC, v)
    return b.add(Step("static", (x, s), dict(roll=b.draw(st.booleans()),
                                             kind=type(v).__name__)))


def _collective(p, x):
    fn, n = p["fn"], p["n"]
    if fn == "psum":
        return lax.psum(x, NAME)
    if fn == "pmean":
        return lax.pmean(x, NAME)
    if fn in ("pmax", "pmin"):  # batched or not, also under grad / vjp / jvp
        if _EXTREMA_BY_GATHER.on:  # the reference where jax.vmap cannot differentiate them
            red = jnp.max if fn == "pmax" else jnp.min
            return red(lax.all_gather(x, NAME), axis=0)
        return (lax.pmax if fn == "pmax" else lax.pmin)(x, NAME)
    if fn == "all_gather":
        return lax.all_gather(x, NAME)
    if fn == "ppermute":
        return lax.ppermute(x, NAME, [(j, (j + p["shift"]) % n) for j in range(n)])
    if fn == "axis_index":
        return x + lax.axis_index(NAME).astype(x.dtype)
    if fn == "psum_scatter":
        return lax.psum_scatter(x, NAME, tiled=True)
    # jax.vmap's all_to_all rule gets an unbatched operand wrong (a result of
    # rank 2 + 3 for (3, 2); test_generated_regressions.py): batched here
    x = x + (lax.axis_index(NAME) * 0).astype(x.dtype)
    return lax.all_to_all(x, NAME, 0, 0, tiled=True)  # "all_to_all"


class _EXTREMA_BY_GATHER:
    """While ``on``, pmax / pmin steps are written as ``jnp.max`` / ``jnp.min``
    of an ``all_gather``: the same values, and a derivative under jax.vmap
    (jax has none for pmax / pmin of a batched operand; reduce_max's JVP is
    the tangent at the lanes holding the extremum, ties shared, as
    batch_lower's: jax_internals.differentiable_extrema)."""
    on = False


_COLLECTIVES = ("psum", "pmean", "pmax", "pmin", "all_gather", "ppermute", "axis_index",
                "psum_scatter", "all_to_all")


@op("collective", _collective)
def _gen_collective(b):
    """A collective over the named batch axis (batch_lower(..., axis_name=NAME))."""
    fn = b.variant("collective", _COLLECTIVES)
    if fn in ("psum_scatter", "all_to_all"):  # the scattered dim splits over the lanes
        rest = b.shape(0, 1)  # (k at size 0: no lane to split over, a typed refusal)
        if b.size > 0 and b.draw(st.booleans()):
            # of an all_gather: one block per lane, which also works at a
            # symbolic size (an argument's dimension is static: refused there)
            g = b.operand(rest, (F32, I32))
            x = b.add(Step("collective", (g,), dict(fn="all_gather", n=b.size, shift=0)))
        else:
            x = b.operand((max(b.size, 1) * b.draw(st.integers(1, 2)),) + rest, (F32, I32))
    else:
        x = b.operand(dtypes=(F32,) if fn == "pmean" else (F32, I32))
    return b.add(Step("collective", (x,), dict(fn=fn, n=b.size,
                                               shift=b.draw(st.integers(0, 2)))))


def _spd(a):
    n = a.shape[-1]
    return a @ a.T + n * jnp.eye(n, dtype=a.dtype)


def _linalg(p, a, y):
    fn = p["fn"]
    if fn == "solve":
        return jnp.linalg.solve(_spd(a), y)
    if fn == "cholesky":
        return jnp.linalg.cholesky(_spd(a))
    if fn == "qr":
        return jnp.abs(jnp.linalg.qr(a)[1])  # |R|: LAPACK's signs are a convention
    if fn == "eigh":
        return jnp.linalg.eigh(_spd(a))[0]
    if fn == "inv":
        return jnp.linalg.inv(_spd(a))
    return jnp.linalg.svd(a, compute_uv=False)  # "svd"


@op("linalg", _linalg)
def _gen_linalg(b):
    """Linear algebra jax lowers to LAPACK custom calls."""
    n = b.draw(st.integers(1, 3))
    a = b.operand((n, n), (F32,))
    y = b.operand((n,) + b.shape(0, 1)[:1], (F32,))
    fn = b.variant("linalg", LINALG_FNS)
    return b.add(Step("linalg", (a, y), dict(fn=fn)))


@op("approx_max_k", lambda p, x: (lax.approx_max_k if p["max"] else lax.approx_min_k)(
    x, p["k"])[p["which"]])
def _gen_approx_max_k(b):
    x = b.operand(min_rank=1, dtypes=(F32,), nonempty=True)
    return b.add(Step("approx_max_k", (x,), dict(k=b.draw(st.integers(1, b.avals[x][0][-1])),
                                                 which=b.draw(st.integers(0, 1)),
                                                 max=b.draw(st.booleans()))))


_HOST = {"sin": np.sin, "square": np.square, "cumsum": lambda x: np.cumsum(x, axis=-1)
         if x.ndim else x}


def _callback(p, x):
    fn = _HOST[p["fn"]]
    return jax.pure_callback(lambda v: np.asarray(fn(np.asarray(v)), v.dtype),
                             jax.ShapeDtypeStruct(x.shape, x.dtype), x,
                             vmap_method="sequential")


@op("callback", _callback)
def _gen_callback(b):
    """A host callback (jax.pure_callback: a custom call jax.export refuses)."""
    x = b.operand(dtypes=(F32,))
    return b.add(Step("callback", (x,), dict(fn=b.draw(st.sampled_from(sorted(_HOST))))))


# ---- regions with random bodies --------------------------------------------------------

def _run_body(steps, env):
    env = list(env)
    for s in steps:
        env.append(OPS[s.op].apply(s.params, *[env[i] for i in s.inputs]))
    return env


def _coerce(out, like):
    """A body's result as a value of ``like``'s type (loops and branches need
    it); floats squashed so that loops stay finite."""
    if out.shape != like.shape:
        out = like + jnp.sum(out).astype(like.dtype)
    out = out.astype(like.dtype)
    return jnp.tanh(out) if jnp.issubdtype(like.dtype, jnp.floating) else out


def _region(p, x, s, *caps):
    def body(c):
        return _coerce(_run_body(p["body"], (c, *caps))[p["out"]], c)
    if p["kind"] == "fori":
        return lax.fori_loop(0, p["n"], lambda i, c: body(c), x)
    if p["kind"] == "while":
        return lax.while_loop(lambda c: c[0] < jnp.clip(s, 0, 3),
                              lambda c: (c[0] + 1, body(c[1])), (jnp.int32(0), x))[1]
    if p["kind"] == "scan":  # a carry and per-step outputs stacked
        def step(c, _):
            nxt = body(c)
            return nxt, nxt * 2
        c, ys = lax.scan(step, x, None, length=p["n"])
        return c + ys.sum(0).astype(c.dtype) if p["n"] else c
    return lax.cond(s > 0, body, lambda c: c, x)


_NOT_IN_REGIONS = ("region", "conv", "key", "static", "callback")


@op("region", _region, needs=("stablehlo.while", "stablehlo.if"))
def _gen_region(b):
    if b.depth >= 1:  # one level of nesting: bodies hold plain ops
        return _gen_binary(b)
    x = b.operand(max_rank=2)
    s = b.operand((), (I32,))
    caps = [b.operand(max_rank=2) for _ in range(b.draw(st.integers(0, 2)))]
    inner = Builder(b.draw, depth=1, env=[b.avals[i] for i in (x, *caps)], size=b.size)
    names = [n for n in b.families if n not in _NOT_IN_REGIONS]
    for _ in range(b.draw(st.integers(1, 3))):
        OPS[b.draw(st.sampled_from(names))].gen(inner)
    # constants drawn inside the body are steps of the body; locals 0.. are
    # (carry, *captures)
    params = dict(kind=b.draw(st.sampled_from(("fori", "while", "scan", "cond"))),
                  n=b.draw(st.integers(0, 3)), body=list(inner.steps),
                  out=len(inner.avals) - 1)
    return b.add(Step("region", (x, s, *caps), params))


# ---- features that land on other branches ---------------------------------------

@functools.lru_cache(None)
def named_axes_available() -> bool:
    """batch_lower(..., axis_name=...) binds the name for collectives (issue 14)."""
    try:
        out = sb.batch_lower(lambda x: lax.psum(x, NAME), axis_name=NAME)(jnp.ones(2))
        return bool(np.allclose(out, 2.0))
    except Exception:
        return False


@functools.lru_cache(None)
def tune_available() -> bool:
    return "tune" in inspect.signature(sb.batch_lower).parameters


def several_devices() -> bool:
    return len(jax.devices()) > 1


def missing_features() -> dict[str, str]:
    """Tally tags that cannot occur in this build, with the reason."""
    out = {}
    if not named_axes_available():
        why = "named axes (batch_lower(..., axis_name=...) with collectives) not in this build"
        out.update({t: why for t in ["op:collective"] +
                    [f"op:collective:{c}" for c in _COLLECTIVES]})
    if not tune_available():
        out["opt:tune"] = "batch_lower(tune=True) not in this build"
    if not several_devices():
        out["opt:mesh"] = "one device in this process (XLA_FLAGS=--xla_force_host_platform_device_count=2)"
    return out


def strata() -> list[tuple[str, str | None]]:
    """(family, variant) for a stratified sample: every family, and each
    variant of the families whose variants the tally must all count."""
    variants = {"collective": _COLLECTIVES, "key": KEY_FNS, "linalg": LINALG_FNS}
    return [(f, v) for f in families() for v in variants.get(f, (None,))]


def families() -> list[str]:
    names = available_ops()
    if not named_axes_available():
        names = [n for n in names if n != "collective"]
    return names


def expected_tags() -> list[str]:
    """Every tag the tally must count (make fuzz / the CI sample check them)."""
    fams = [n for n in available_ops()]
    tags = [f"op:{n}" for n in fams] + [f"use:{u}" for u in USES]
    tags += [f"op:collective:{c}" for c in _COLLECTIVES]
    tags += [f"op:linalg:{f}" for f in LINALG_FNS]
    tags += [f"op:key:{f}" for f in KEY_FNS]
    tags += ["opt:chunk", "opt:symbolic", "opt:mesh", "opt:tune", "opt:none"]
    tags += [f"dtype:{d}" for d in (F32, I32, "int8", "uint8", KEY, STATIC)]
    tags += ["size0:collective", "symbolic:collective"]  # collectives at size 0 / symbolic
    tags += ["size:0", "size:1", "closure:concrete", "closure:traced", "closure:outer-batched",
             "key:in_axes=neg", "key:out_axes=neg"]
    tags += [f"closure:traced:{u}" for u in USES if u not in ("direct",) + DIFF_USES]
    tags += ["closure:traced:autodiff"]  # grad / vjp / jvp together
    return tags


# ---- the strategy ---------------------------------------------------------------

# Families that do not share a program (none today: collectives with host
# callbacks and with typed keys work since the named-axis fixes; their
# regression tests are in tests/sweeps/test_generated_regressions.py).
_CLASH: dict[str, tuple[str, ...]] = {}


@st.composite
def programs(draw, max_steps=5, ops=None, first=None, use=None, option=None, variant=None):
    """A random Program with 1..max_steps steps drawn from ``ops`` (default:
    every family whose rules are registered), used as one of USES, with
    options drawn among those this build has. ``first`` / ``use`` /
    ``option`` force the first step's family, the use and the option where
    the program allows them, and ``variant`` the first step's variant
    (a stratified sample: tests/sweeps/test_generated.py)."""
    # collectives at batch size 0 too: vmap binds the name over no lane
    # (whole-axis reductions and axis_index work, the rest is a typed refusal)
    size = draw(st.sampled_from((3, 1, 0, 3, 8)))
    names = ops or families()
    b = Builder(draw, size=size, families=names,
                forced={first: variant} if variant is not None else None)
    for k in range(draw(st.integers(1, max_steps))):
        # families that cannot share a program yet (_CLASH) are left out
        used = {n for n in _CLASH if n in repr(b.steps)}
        b.families = [n for n in names if not any(n in _CLASH[u] for u in used)] or names
        OPS[first if k == 0 and first in names else draw(st.sampled_from(b.families))].gen(b)
    last = len(b.avals) - 1
    outputs = [last]
    if draw(st.integers(0, 3)) == 0:
        outputs.append(draw(st.integers(0, last)))
    outputs = [o for o in outputs if b.avals[o][1] != STATIC] or [b.operand()]
    out_axes = []
    for o in outputs:
        rank = len(b.avals[o][0])
        choices = [0, 0, -1] + list(range(1, rank + 1))
        if b.avals[o][1] == KEY:
            choices = [-1, 0] + list(range(-rank - 1, rank + 1))
        ax = draw(st.sampled_from(choices))
        if draw(st.integers(0, 9)) == 9:
            ax = None
        out_axes.append(ax)
    p = b.program(outputs, out_axes, size)
    p.seed = draw(st.integers(0, 3))
    callback = "callback" in p.ops()
    floats = any(a.dtype == F32 and a.closure != "concrete" for a in p.args)
    uses = [u for u in USES if (floats or u not in DIFF_USES)]
    p.use = "direct" if callback else use if use in uses else draw(st.sampled_from(uses))
    unbatched = [a for a in p.args if a.axis is None and a.closure is None and a.dtype != STATIC]
    if p.use != "direct" and unbatched and draw(st.sampled_from((True, True, False))):
        draw(st.sampled_from(unbatched)).closure = "traced"  # closed over a traced value
    if p.use in ("vmap", "nested"):
        n = sum(1 for a in p.args if a.dtype != STATIC and a.closure != "concrete")
        p.outer = tuple(draw(st.sampled_from((0, None))) for _ in range(n))
    batched = any(a.axis is not None for a in p.explicit)
    symbolic = batched
    # collectives refuse chunk_size (a documented ValueError); with a symbolic
    # size they work or give the documented refusals (Outcome.REFUSED_SYMBOLIC)
    ops = p.ops()
    collective = "collective" in ops
    opts = ["none", "none"] + ["chunk"] * (not collective) + ["symbolic"] * symbolic
    # mesh=: the batch must split evenly over the devices (a documented ValueError);
    # "nested": the outer batch_lower batches the inner call without the mesh
    mesh = several_devices() and size > 0 and size % len(jax.devices()) == 0
    opts += ["mesh"] * mesh + ["tune"] * tune_available()
    opt = option if option in opts else draw(st.sampled_from(opts))
    if opt == "chunk":
        p.options = {"chunk": draw(st.integers(1, max(size, 1)))}
    elif opt != "none":
        p.options = {opt: True}
    return p
