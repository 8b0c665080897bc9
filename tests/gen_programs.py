"""Random jax programs for differential testing of batch_lower against jax.vmap.

A ``Program`` is plain data (arguments with their ``in_axes``, a list of
``Step``s, outputs with their ``out_axes``, a batch size), so hypothesis can
shrink it and its ``repr`` pastes straight into tests/sweeps/test_regressions.py.
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


@dataclasses.dataclass
class Arg:
    shape: tuple
    dtype: str
    axis: Any  # in_axes entry: int or None


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

    def fn(self) -> Callable:
        def f(*args):
            env = list(args)
            for s in self.steps:
                env.append(OPS[s.op].apply(s.params, *[env[i] for i in s.inputs]))
            return tuple(env[i] for i in self.outputs)
        return f

    def make_args(self):
        rng = np.random.default_rng(self.seed)
        out = []
        for a in self.args:
            shape = list(a.shape)
            if a.axis is not None:
                shape.insert(a.axis % (len(shape) + 1), self.size)
            out.append(random_array(rng, tuple(shape), a.dtype))
        return out

    @property
    def in_axes(self):
        return tuple(a.axis for a in self.args)

    @property
    def axis_size(self):
        return self.size if all(a.axis is None for a in self.args) else None


class Outcome:
    OK, UNSUPPORTED, BOTH_REJECT = "ok", "unsupported", "both-reject"
    VMAP_FAILED = "vmap-failed"  # jax.vmap cannot batch it; checked against a loop


def per_lane(p: Program, fn, args):
    """vmap's meaning as a loop: fn per lane, outputs stacked at out_axes."""
    f = jax.jit(fn)
    lanes = []
    for i in range(p.size):
        lane = [a if a_.axis is None else np.take(np.asarray(a), i, axis=a_.axis)
                for a, a_ in zip(args, p.args)]
        lanes.append([np.asarray(o) for o in f(*lane)])
    return tuple(lanes[0][j] if ax is None else np.stack([l[j] for l in lanes], axis=ax)
                 for j, ax in enumerate(p.out_axes))


def check_program(p: Program, rtol=1e-4, atol=1e-4) -> str:
    """batch_lower(p.fn()) agrees with jax.vmap(p.fn()); returns the Outcome.

    An UnsupportedOpError is an allowed outcome (a typed refusal, never a
    wrong value); a ValueError from vmap (out_axes None on a batched output)
    must be a ValueError from batch_lower too."""
    fn, args = p.fn(), p.make_args()
    kw = dict(in_axes=p.in_axes, out_axes=tuple(p.out_axes), axis_size=p.axis_size)
    outcome = Outcome.OK
    try:
        want = jax.jit(jax.vmap(fn, **kw))(*args)
    except ValueError:
        try:
            sb.batch_lower(fn, **kw)(*args)
        except ValueError:
            return Outcome.BOTH_REJECT
        raise AssertionError("jax.vmap raised ValueError but batch_lower did not")
    except Exception:  # a jax.vmap limitation (e.g. lax.clamp with only max batched)
        want, outcome = per_lane(p, fn, args), Outcome.VMAP_FAILED
    try:
        got = sb.batch_lower(fn, **kw)(*args)
    except sb.UnsupportedOpError:
        return Outcome.UNSUPPORTED
    if outcome == Outcome.VMAP_FAILED:
        got = tuple(np.asarray(g) for g in got)
        want = tuple(jnp.asarray(w) for w in want)
    assert_same_tree(got, want, rtol=rtol, atol=atol)
    return outcome


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

    def __init__(self, draw, depth=0, env=()):
        self.draw = draw
        self.depth = depth  # > 0 inside a region: no new arguments there
        self.args: list[Arg] = []
        self.steps: list[Step] = []
        self.avals: list[tuple[tuple, str]] = list(env)  # per value id
        self._arg_ids: list[int] = []

    # Value ids: arguments are numbered first in the final program; while
    # building, arguments and steps interleave, so ids are remapped at the end.
    def _new_arg(self, shape, dtype):
        rank = len(shape)
        axis = self.draw(st.sampled_from([0, 0, -1, None] + list(range(1, rank + 1))))
        self.args.append(Arg(tuple(shape), dtype, axis))
        self.avals.append((tuple(shape), dtype))
        self._arg_ids.append(len(self.avals) - 1)
        return len(self.avals) - 1

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
        ins = [jax.ShapeDtypeStruct(*self.avals[i]) for i in step.inputs]
        try:
            out = jax.eval_shape(lambda *a: OPS[step.op].apply(step.params, *a), *ins)
        except Exception as e:  # pragma: no cover - a generator bug; skip the example
            assume(False)
            raise AssertionError(e)
        self.steps.append(step)
        self.avals.append((tuple(out.shape), str(out.dtype)))
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
                       list(out_axes), size)


def _const(p):
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


@op("region", _region, needs=("stablehlo.while", "stablehlo.if"))
def _gen_region(b):
    if b.depth >= 1:  # one level of nesting: bodies hold plain ops
        return _gen_binary(b)
    x = b.operand(max_rank=2)
    s = b.operand((), (I32,))
    caps = [b.operand(max_rank=2) for _ in range(b.draw(st.integers(0, 2)))]
    inner = Builder(b.draw, depth=1, env=[b.avals[i] for i in (x, *caps)])
    names = [n for n in available_ops() if n not in ("region", "conv")]
    for _ in range(b.draw(st.integers(1, 3))):
        OPS[b.draw(st.sampled_from(names))].gen(inner)
    # constants drawn inside the body are steps of the body; locals 0.. are
    # (carry, *captures)
    params = dict(kind=b.draw(st.sampled_from(("fori", "while", "scan", "cond"))),
                  n=b.draw(st.integers(0, 3)), body=list(inner.steps),
                  out=len(inner.avals) - 1)
    return b.add(Step("region", (x, s, *caps), params))


# ---- the strategy ---------------------------------------------------------------

@st.composite
def programs(draw, max_steps=5, ops=None):
    """A random Program with 1..max_steps steps drawn from ``ops`` (default:
    every family whose rules are registered)."""
    names = ops or available_ops()
    b = Builder(draw)
    for _ in range(draw(st.integers(1, max_steps))):
        OPS[draw(st.sampled_from(names))].gen(b)
    last = len(b.avals) - 1
    outputs = [last]
    if draw(st.integers(0, 3)) == 0:
        outputs.append(draw(st.integers(0, last)))
    out_axes = []
    for o in outputs:
        rank = len(b.avals[o][0])
        choices = [0, 0, -1] + list(range(1, rank + 1))
        ax = draw(st.sampled_from(choices))
        if draw(st.integers(0, 9)) == 9:
            ax = None
        out_axes.append(ax)
    size = draw(st.sampled_from((1, 3, 3, 8)))
    return b.program(outputs, out_axes, size)
