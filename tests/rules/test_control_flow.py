"""Control flow and sorting (passes/rules/control_flow.py and the dynamic
slices of indexing.py), differentially against jax.vmap.

* ``while``: data-dependent trip counts per lane (Newton), fori_loop with
  batched / unbatched bounds and init, scan with unbatched weights (the
  weight and the per-step slice must stay unbatched in the IR), lax.map;
* ``if`` / ``case``: batched and unbatched predicates / indices, indices out
  of range, several operands, pytree outputs; the uniform-predicate fast path
  (when all lanes agree only that branch runs -- a branch that would never
  terminate on this data must not be entered);
* nesting: while in cond, cond in while, scan in scan, while in while, a
  jitted helper (func.call) in a loop body;
* sort / argsort / lax.sort (1-3 operands, num_keys), top_k, median, quantile.

jax.random's tests are in test_random.py.

Batch sizes 1 / 3 / 8 and several in_axes / out_axes rotate over the cases.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jaxlib.mlir import ir

import stablehlo_batch as sb
from batch_cases import check_module, run_module
from conftest import assert_same_tree, check_vmap, random_array

SIZES = (1, 3, 8)
f32, f64, i32 = jnp.float32, jnp.float64, jnp.int32


def x64(dtype):
    """jax.enable_x64 around building 64-bit inputs and checking them."""
    if jnp.dtype(dtype).itemsize == 8:
        return jax.enable_x64(True)
    return contextlib.nullcontext()


def check_or_unsupported(fn, *args, ops, **kw):
    """check_vmap, except that an UnsupportedOpError for one of ``ops`` (ops
    documented as not supported yet) turns the test into an xfail. Wrong
    values and any other error still fail."""
    try:
        return check_vmap(fn, *args, **kw)
    except sb.UnsupportedOpError as e:
        if e.op_name not in ops:
            raise
        pytest.xfail(f"documented as unsupported: {e}")


# ---- IR helpers ---------------------------------------------------------------

def _main(module: ir.Module) -> ir.Operation:
    return ir.SymbolTable(module.operation)["main"].operation


def _ops_in(op, name=None):
    """All ops nested in ``op``'s regions (recursively), optionally by name."""
    found = []
    for region in op.regions:
        for block in region.blocks:
            for inner in block.operations:
                inner = inner.operation
                if name is None or inner.name == name:
                    found.append(inner)
                found.extend(_ops_in(inner, name))
    return found


def _top_level(op, name):
    block = op.regions[0].blocks[0]
    return [o.operation for o in block.operations if o.operation.name == name]


def _top_level_in_region(op, region):
    return [o.operation for b in op.regions[region].blocks for o in b.operations]


def _region_op_names(op, region):
    names = set()
    for block in op.regions[region].blocks:
        for inner in block.operations:
            names.add(inner.operation.name)
            names.update(o.name for o in _ops_in(inner.operation))
    return names


# ---- while: data-dependent trip counts -------------------------------------------

def newton_sqrt(a):
    """sqrt(a) by Newton's method; the trip count depends on a (per lane)."""
    tol = 1e-12 if a.dtype == jnp.float64 else 1e-5

    def cond(c):
        x, i = c
        return (jnp.max(jnp.abs(x * x - a) / a) > tol) & (i < 100)

    def body(c):
        x, i = c
        return 0.5 * (x + a / x), i + 1

    return lax.while_loop(cond, body, (a, 0))


@pytest.mark.parametrize("dtype", [f32, f64], ids=["f32", "f64"])
@pytest.mark.parametrize("size,in_axis,out_axes", [(1, 0, 0), (3, 1, (1, 0)), (8, -1, (-1, 0))])
def test_newton_data_dependent_trip_count(rng, dtype, size, in_axis, out_axes):
    with x64(dtype):
        per_lane = rng.uniform(0.5, 1e4, (size, 1)) * np.array([[1.0, 3.0]])
        a = jnp.asarray(np.moveaxis(per_lane, 0, in_axis), dtype)
        x, iters = check_vmap(newton_sqrt, a, in_axes=in_axis, out_axes=out_axes)
        np.testing.assert_allclose(np.asarray(x), np.sqrt(np.asarray(a)), rtol=1e-4)
    if size == 8:  # the lanes really stop at different iterations
        assert len(set(np.asarray(iters).tolist())) > 1


def test_newton_lanes_finish_at_different_steps_and_stay_frozen():
    a = jnp.array([1.0, 4.0, 1e6, 2.0], f32)  # lane 0 is done before the first step
    x, iters = check_vmap(newton_sqrt, a)
    assert int(iters[0]) == 0 and int(iters[2]) > int(iters[1]) > 0
    assert float(x[0]) == 1.0


def fori(lo, hi, init):
    return lax.fori_loop(lo, hi, lambda i, c: c * 2 - i.astype(c.dtype), init)


# (lo batched, hi batched, init batched)
FORI_CASES = [(False, False, True), (True, False, True), (False, True, True),
              (True, True, True), (True, True, False), (False, True, False),
              (True, False, False), (False, False, False)]


@pytest.mark.parametrize("k,flags", list(enumerate(FORI_CASES)),
                         ids=["lo%d-hi%d-init%d" % f for f in FORI_CASES])
def test_fori_loop_bounds(rng, k, flags):
    size = SIZES[k % 3]
    dtype = (f32, i32)[k % 2]
    lo_b, hi_b, init_b = flags
    lo = jnp.asarray(rng.integers(-2, 3, size), i32) if lo_b else jnp.int32(1)
    hi = jnp.asarray(rng.integers(0, 7, size), i32) if hi_b else jnp.int32(5)
    init = random_array(rng, (size, 2) if init_b else (2,), dtype)
    in_axes = (0 if lo_b else None, 0 if hi_b else None, 0 if init_b else None)
    axis_size = None if any(flags) else size
    check_vmap(fori, lo, hi, init, in_axes=in_axes, axis_size=axis_size,
               out_axes=(0, -1)[k % 2])


@pytest.mark.parametrize("size", SIZES)
def test_fori_loop_static_bounds(rng, size):
    init = random_array(rng, (size, 3), f32)
    check_vmap(lambda x: lax.fori_loop(0, 4, lambda i, c: jnp.sin(c) + i, x), init)
    check_vmap(lambda x: lax.fori_loop(0, 5, lambda i, c: c * 1.1 + i, x, unroll=2), init,
               out_axes=1)


def test_fori_loop_unbatched_bounds_keep_scalar_counter(rng):
    """The counter's update depends on nothing batched: it stays tensor<i32>,
    and the predicate stays unbatched (no per-lane any/select)."""
    init = random_array(rng, (3, 2), f32)
    text_fn = sb.batch_lower(fori, in_axes=(None, None, 0))
    lowered = text_fn.lower(jnp.int32(1), jnp.int32(5), init)
    check_vmap(fori, jnp.int32(1), jnp.int32(5), init, in_axes=(None, None, 0))
    whiles = _ops_in(_main(lowered.module), "stablehlo.while")
    assert len(whiles) == 1
    carry_types = [str(v.type) for v in whiles[0].operands]
    assert carry_types.count("tensor<i32>") >= 1, carry_types
    assert "tensor<3x2xf32>" in carry_types
    text = lowered.as_text()
    assert "stablehlo.or" not in text and "stablehlo.select" not in text


def test_while_predicate_batched_through_another_carry(rng):
    """b's update depends on the batched x, and the predicate on b: the fixed
    point must make b, the predicate and the counter batched."""
    x = jnp.asarray(rng.uniform(0.5, 3, 8), f32)
    fn = lambda x: lax.while_loop(lambda c: (c[1] < 10) & (c[2] < 100),
                                  lambda c: (c[0], c[1] + c[0], c[2] + 1), (x, 0.0, 0))
    _, _, n = check_vmap(fn, x)
    assert len(set(np.asarray(n).tolist())) > 1


def test_while_batched_carry_reset_to_constant(rng):
    x = jnp.asarray(rng.standard_normal(3), f32)
    n = jnp.array([0, 2, 5])
    fn = lambda x, n: lax.while_loop(lambda c: c[1] < n,
                                     lambda c: (jnp.float32(1.0), c[1] + 1, c[2]), (x, 0, x > 0))
    check_vmap(fn, x, n)
    check_vmap(lambda x: lax.while_loop(lambda c: c[1] < 3,
                                        lambda c: (jnp.float32(1.0), c[1] + 1), (x, 0)), x)


def test_while_batched_predicate_keeps_loop_invariant_weight_unbatched(rng):
    """A loop-invariant weight is a pass-through carry: with a batched
    predicate it is neither broadcast nor selected per lane."""
    W = jnp.asarray(rng.standard_normal((6, 6)), f32) * 0.3
    n = jnp.array([1, 4, 0])
    h = random_array(rng, (3, 6), f32)

    def fn(W, n, h):
        return lax.while_loop(lambda c: c[0] < n, lambda c: (c[0] + 1, jnp.tanh(W @ c[1])), (0, h))

    check_vmap(fn, W, n, h, in_axes=(None, 0, 0))
    lowered = sb.batch_lower(fn, in_axes=(None, 0, 0)).lower(W, n, h)
    (loop,) = _ops_in(_main(lowered.module), "stablehlo.while")
    carry_types = [str(v.type) for v in loop.operands]
    assert "tensor<6x6xf32>" in carry_types and "tensor<3x6x6xf32>" not in lowered.as_text()
    # the predicate is batched: the cond reduces it with `or`, the body selects
    assert "stablehlo.reduce" in _region_op_names(loop, 0)
    assert "stablehlo.select" in _region_op_names(loop, 1)


@pytest.mark.parametrize("size", [0])
def test_zero_size_batch(size):
    n = jnp.zeros((size,), i32)
    check_vmap(lambda n: lax.while_loop(lambda c: c[0] < n, lambda c: (c[0] + 1, c[1] * 2.0),
                                        (0, 1.0)), n)
    check_vmap(lambda p, x: lax.cond(p, lambda v: v + 1, lambda v: v - 1, x),
               jnp.zeros((size,), bool), jnp.zeros((size, 3), f32))
    check_vmap(lambda i, x: lax.switch(i, [lambda v: v + 1, lambda v: v - 1, jnp.sin], x),
               n, jnp.zeros((size, 3), f32))


# ---- scan / map ---------------------------------------------------------------

def rnn(W, xs, h0):
    def step(h, x):
        h = jnp.tanh(W @ h + x)
        return h, h
    return lax.scan(step, h0, xs)


@pytest.mark.parametrize("size,xs_axis,out_axes", [(1, 0, 0), (3, 1, (0, 1)), (8, 0, (-1, 2))])
def test_scan_rnn_unbatched_weights(rng, size, xs_axis, out_axes):
    W = jnp.asarray(rng.standard_normal((6, 6)), f32) * 0.4
    xs = jnp.asarray(np.moveaxis(rng.standard_normal((size, 5, 6)), 0, xs_axis), f32)
    h0 = jnp.zeros(6, f32)
    check_vmap(rnn, W, xs, h0, in_axes=(None, xs_axis, None), out_axes=out_axes, atol=1e-5)


def test_scan_rnn_ir_keeps_weight_unbatched_and_slice_dynamic(rng):
    W = jnp.asarray(rng.standard_normal((6, 6)), f32) * 0.4
    xs = jnp.asarray(rng.standard_normal((3, 5, 6)), f32)
    h0 = jnp.zeros(6, f32)
    lowered = sb.batch_lower(rnn, in_axes=(None, 0, None)).lower(W, xs, h0)
    text = lowered.as_text()
    main = _main(lowered.module)
    w_arg = main.regions[0].blocks[0].arguments[0]
    assert str(w_arg.type) == "tensor<6x6xf32>"
    # no op anywhere produces a batched copy of the weight
    assert "tensor<3x6x6xf32>" not in text
    for user in _ops_in(main):
        if user.name == "stablehlo.broadcast_in_dim":
            assert user.operands[0] != w_arg, str(user)
    # the loop carries the weight unbatched; its counter stays a scalar
    (loop,) = _ops_in(main, "stablehlo.while")
    carry_types = [str(v.type) for v in loop.operands]
    assert "tensor<6x6xf32>" in carry_types and "tensor<i32>" in carry_types
    # the per-step slice stays a dynamic_slice with an unbatched start index
    assert "stablehlo.dynamic_slice" in text
    assert "stablehlo.gather" not in text and "stablehlo.scatter" not in text
    assert "stablehlo.dynamic_update_slice" in text


@pytest.mark.parametrize("size", SIZES)
def test_scan_variants(rng, size):
    xs = random_array(rng, (size, 7), f32)
    check_vmap(lambda xs: lax.scan(lambda c, e: (c * 0.9 + e, c), 0.0, xs, reverse=True,
                                   unroll=2), xs)
    # carry batched, no xs (length only)
    check_vmap(lambda c0: lax.scan(lambda c, _: (c * 2 + 1, c), c0, None, length=4), xs[:, 0])


@pytest.mark.parametrize("size,in_axis", [(1, 0), (3, 1), (8, -1)])
def test_lax_map(rng, size, in_axis):
    xs = jnp.asarray(np.moveaxis(rng.standard_normal((size, 6, 2)), 0, in_axis), f32)
    check_vmap(lambda v: lax.map(lambda r: jnp.sum(r ** 2) + r, v), xs, in_axes=in_axis)
    check_vmap(lambda v: lax.map(lambda r: jnp.sum(jnp.sin(r)), v, batch_size=4), xs,
               in_axes=in_axis)


# ---- cond / switch -------------------------------------------------------------

def two_branch(p, x, n):
    """Several operands (float array, int scalar), a pytree output with float,
    int and bool leaves."""
    return lax.cond(
        p,
        lambda x, n: {"y": x * n, "aux": (n + 1, jnp.all(x > 0))},
        lambda x, n: {"y": jnp.sin(x), "aux": (-n, jnp.any(x < 0))},
        x, n)


# (pred axis, x axis, n axis, size)
COND_CASES = [(0, 0, 0, 3), (0, None, None, 8), (None, 0, 0, 3), (0, 1, None, 1),
              (None, None, 0, 8), (0, -1, 0, 8), (None, 1, None, 1)]


@pytest.mark.parametrize("pa,xa,na,size", COND_CASES)
def test_cond(rng, pa, xa, na, size):
    p = jnp.asarray(rng.random(size) > 0.5) if pa is not None else jnp.bool_(True)
    if pa is not None and size > 2:  # make sure both branches are taken
        p = p.at[0].set(True).at[1].set(False)
    x = random_array(rng, (size, 4) if xa is not None else (4,), f32)
    if xa is not None:
        x = jnp.moveaxis(x, 0, xa)
    n = jnp.asarray(rng.integers(-3, 3, size if na is not None else ()), i32)
    out_axes = {"y": (0, 1)[size % 2], "aux": 0}
    check_vmap(two_branch, p, x, n, in_axes=(pa, xa, na), out_axes=out_axes)


def test_cond_predicate_only_batched_with_constant_branches():
    p = jnp.array([True, False, True])
    check_vmap(lambda p: lax.cond(p, lambda: (1.0, 2), lambda: (3.0, 4)), p)


def test_cond_f64(rng):
    with jax.enable_x64(True):
        p = jnp.array([True, False, True])
        x = jnp.asarray(rng.standard_normal((3, 5)), f64)
        got = check_vmap(lambda p, v: lax.cond(p, lambda u: u * 2, lambda u: u - 1, v), p, x)
        assert got.dtype == jnp.float64


def switch3(i, x):
    return lax.switch(i, [lambda v: v + 1, lambda v: v * 2, lambda v: jnp.sin(v)], x)


@pytest.mark.parametrize("index", [
    [0, 1, 2, 5, -3, 1, 0, 2],   # out of range and negative: clamped
    [2, 0, 1],
    [-1],
    [7, 9, 3],                   # all out of range (all clamp to the last branch)
    [1, 1, 1],                   # uniform
])
def test_switch_batched_index(rng, index):
    i = jnp.asarray(index, i32)
    x = random_array(rng, (len(index), 2), f32)
    check_vmap(switch3, i, x)
    check_vmap(switch3, i, x[0], in_axes=(0, None), out_axes=1)


@pytest.mark.parametrize("index", [0, 2, 7, -1])
def test_switch_unbatched_index(rng, index):
    x = random_array(rng, (8, 3), f32)
    check_vmap(switch3, jnp.int32(index), x, in_axes=(None, 0))
    check_vmap(switch3, jnp.int32(index), x.T, in_axes=(None, 1), out_axes=-1)


def test_switch_multiple_operands_pytree_output(rng):
    def fn(i, x, y):
        return lax.switch(i, [lambda a, b: (a + b, {"m": a.max()}),
                              lambda a, b: (a * b, {"m": b.min()}),
                              lambda a, b: (a - b, {"m": jnp.float32(0)})], x, y)
    i = jnp.array([2, 0, 1, 1, -4, 9, 0, 2], i32)
    x = random_array(rng, (8, 3), f32)
    y = random_array(rng, (3,), f32)
    check_vmap(fn, i, x, y, in_axes=(0, 0, None), out_axes=(1, {"m": 0}))


# ---- hand-written if / case (jax emits only case) --------------------------------

IF_MODULE = """
func.func @main(%p: tensor<i1>, %x: tensor<3xf32>, %y: tensor<3xf32>) -> (tensor<3xf32>, tensor<i32>) {
  %0:2 = "stablehlo.if"(%p) ({
    %a = stablehlo.add %x, %y : tensor<3xf32>
    %c1 = stablehlo.constant dense<1> : tensor<i32>
    stablehlo.return %a, %c1 : tensor<3xf32>, tensor<i32>
  }, {
    %b = stablehlo.multiply %x, %y : tensor<3xf32>
    %c2 = stablehlo.constant dense<2> : tensor<i32>
    stablehlo.return %b, %c2 : tensor<3xf32>, tensor<i32>
  }) : (tensor<i1>) -> (tensor<3xf32>, tensor<i32>)
  return %0#0, %0#1 : tensor<3xf32>, tensor<i32>
}
"""

CASE_MODULE = """
func.func @main(%i: tensor<i32>, %x: tensor<3xf32>) -> tensor<3xf32> {
  %0 = "stablehlo.case"(%i) ({
    %a = stablehlo.negate %x : tensor<3xf32>
    stablehlo.return %a : tensor<3xf32>
  }, {
    %b = stablehlo.exponential %x : tensor<3xf32>
    stablehlo.return %b : tensor<3xf32>
  }, {
    %c = stablehlo.sine %x : tensor<3xf32>
    stablehlo.return %c : tensor<3xf32>
  }) : (tensor<i32>) -> tensor<3xf32>
  return %0 : tensor<3xf32>
}
"""


@pytest.mark.parametrize("pred", [[True, False, True, False], [True] * 4, [False] * 4])
@pytest.mark.parametrize("axes", [[0, 0, None], [0, None, None], [None, 0, 0]])
def test_if_module(rng, pred, axes):
    p = jnp.asarray(pred) if axes[0] is not None else jnp.bool_(pred[1])
    x = random_array(rng, (4, 3) if axes[1] is not None else (3,), f32)
    y = random_array(rng, (4, 3) if axes[2] is not None else (3,), f32)
    check_module(IF_MODULE, [p, x, y], axes, [0, 0], 4)


@pytest.mark.parametrize("index", [[0, 1, 2, 3], [5, -1, 7, -9], [1, 1, 1, 1], [4, 4, 4, 4],
                                   [-2, -2, -2, -2]])
def test_case_module_out_of_range_index_takes_last_branch(rng, index):
    """stablehlo.case runs the last branch for an index out of [0, n): per
    lane in the select path and on the common index in the uniform path."""
    i = jnp.asarray(index, i32)
    x = random_array(rng, (4, 3), f32)
    got = check_module(CASE_MODULE, [i, x], [0, 0], [0], 4)[0]
    for lane, k in enumerate(index):
        want = [-x[lane], jnp.exp(x[lane]), jnp.sin(x[lane])][k if 0 <= k < 3 else 2]
        np.testing.assert_allclose(np.asarray(got[lane]), np.asarray(want), rtol=1e-6)


NO_RESULT_MODULE = """
func.func @main(%i: tensor<i32>, %x: tensor<3xf32>) -> tensor<3xf32> {
  "stablehlo.case"(%i) ({
    stablehlo.return
  }, {
    %a = stablehlo.negate %x : tensor<3xf32>
    stablehlo.return
  }) : (tensor<i32>) -> ()
  %c0 = stablehlo.constant dense<0> : tensor<i32>
  %p = stablehlo.compare GT, %i, %c0, SIGNED : (tensor<i32>, tensor<i32>) -> tensor<i1>
  "stablehlo.if"(%p) ({
    %w = stablehlo.while(%k = %c0) : tensor<i32>
    cond {
      %t = stablehlo.compare LT, %k, %i, SIGNED : (tensor<i32>, tensor<i32>) -> tensor<i1>
      stablehlo.return %t : tensor<i1>
    } do {
      %c1 = stablehlo.constant dense<1> : tensor<i32>
      %k1 = stablehlo.add %k, %c1 : tensor<i32>
      stablehlo.return %k1 : tensor<i32>
    }
    stablehlo.return
  }, {
    stablehlo.return
  }) : (tensor<i1>) -> ()
  %0 = "stablehlo.if"(%p) ({
    %b = stablehlo.sine %x : tensor<3xf32>
    stablehlo.return %b : tensor<3xf32>
  }, {
    stablehlo.return %x : tensor<3xf32>
  }) : (tensor<i1>) -> tensor<3xf32>
  return %0 : tensor<3xf32>
}
"""


@pytest.mark.parametrize("index", [[0, 1, 2, -1], [1, 1, 1, 1]])
def test_branches_without_results_batched_selector(index):
    """An if / case without results on a per-lane selector (jit keeps such a
    dead cond under keep_unused=True, as batch_lower does for a symbolic
    size): it was left in place with a rank-1 selector and the batched module
    failed verification. Now it is removed: no results, no side effects."""
    x = jnp.arange(12.0, dtype=f32).reshape(4, 3)
    check_module(NO_RESULT_MODULE, [jnp.asarray(index, i32), x], [0, 0], [0], 4)
    text = sb.batch_module(NO_RESULT_MODULE, [0, 0], [0], "b")
    assert text.count('"stablehlo.case"') + text.count("stablehlo.while") == 0


# ---- the uniform-predicate fast path -----------------------------------------------

def _never_ends_below_10(x):
    return lax.while_loop(lambda c: c < 10, lambda c: c * 0 + c, x)


def fast_path_cond(p, x):
    return lax.cond(p, lambda x: x + 1, _never_ends_below_10, x)


def terminating_cond(p, x):
    return lax.cond(p, lambda x: x + 1, lambda x: lax.while_loop(lambda c: c < 10,
                                                                 lambda c: c + 1.5, x), x)


_FAST_PATH_SCRIPT = textwrap.dedent("""
    import sys
    sys.path[:0] = sys.argv[1:]
    import jax, jax.numpy as jnp, numpy as np
    from jax import lax
    import stablehlo_batch as sb
    from test_control_flow import fast_path_cond, _never_ends_below_10, IF_LOOP_MODULE
    from batch_cases import run_module

    x = jnp.arange(4.0, dtype=jnp.float32)
    out = sb.batch_lower(fast_path_cond)(jnp.ones(4, bool), x)
    np.testing.assert_array_equal(np.asarray(out), np.arange(4.0) + 1)
    out = jax.jit(sb.batch_lower(fast_path_cond))(jnp.ones(4, bool), x)
    np.testing.assert_array_equal(np.asarray(out), np.arange(4.0) + 1)

    sw = lambda i, x: lax.switch(i, [_never_ends_below_10, lambda v: v * 3,
                                     _never_ends_below_10], x)
    out = sb.batch_lower(sw)(jnp.full(4, 1, jnp.int32), x)
    np.testing.assert_array_equal(np.asarray(out), np.arange(4.0) * 3)

    text = sb.batch_module(IF_LOOP_MODULE, [0, 0], [0], 4)
    (out,) = run_module(text, jnp.ones(4, bool), x)
    np.testing.assert_array_equal(np.asarray(out), np.arange(4.0) + 1)
    print("FAST-PATH-OK")
""")

# stablehlo.if whose false branch never ends for x < 10.
IF_LOOP_MODULE = """
func.func @main(%p: tensor<i1>, %x: tensor<f32>) -> tensor<f32> {
  %0 = "stablehlo.if"(%p) ({
    %one = stablehlo.constant dense<1.0> : tensor<f32>
    %a = stablehlo.add %x, %one : tensor<f32>
    stablehlo.return %a : tensor<f32>
  }, {
    %ten = stablehlo.constant dense<10.0> : tensor<f32>
    %w = stablehlo.while(%c = %x) : tensor<f32>
    cond {
      %lt = stablehlo.compare LT, %c, %ten, FLOAT : (tensor<f32>, tensor<f32>) -> tensor<i1>
      stablehlo.return %lt : tensor<i1>
    } do {
      stablehlo.return %c : tensor<f32>
    }
    stablehlo.return %w : tensor<f32>
  }) : (tensor<i1>) -> tensor<f32>
  return %0 : tensor<f32>
}
"""


def test_uniform_predicate_runs_only_the_agreed_branch():
    """All lanes take the terminating branch: the other one (an endless loop
    on this data) must not run. In a subprocess, so a regression fails
    instead of hanging the suite."""
    rules_dir = os.path.dirname(os.path.abspath(__file__))
    tests_dir = os.path.dirname(rules_dir)
    env = dict(os.environ, JAX_PLATFORMS=os.environ.get("JAX_PLATFORMS", "cpu"))
    try:
        proc = subprocess.run([sys.executable, "-c", _FAST_PATH_SCRIPT, rules_dir, tests_dir],
                              capture_output=True, text=True, timeout=120, env=env,
                              cwd=tests_dir)
    except subprocess.TimeoutExpired:
        pytest.fail("batched cond with an all-true predicate ran the non-terminating branch")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "FAST-PATH-OK" in proc.stdout


@pytest.mark.parametrize("pred", [[True, False, True, False, False, True, True, False],
                                  [False] * 8, [True] * 8, [False, True, True]])
def test_disagreeing_predicates_select_like_vmap(rng, pred):
    x = jnp.asarray(rng.uniform(0, 12, len(pred)), f32)
    check_vmap(terminating_cond, jnp.asarray(pred), x)


def test_uniform_fast_path_ir():
    """Outer stablehlo.if on "all lanes agree": its true branch holds only the
    agreed branch (an inner case on the common index), its false branch the
    per-lane selects over both branches inlined."""
    lowered = sb.batch_lower(terminating_cond).lower(jnp.ones(4, bool), jnp.zeros(4, f32))
    main = _main(lowered.module)
    (outer,) = _top_level(main, "stablehlo.if")
    agreed = _region_op_names(outer, 0)
    mixed = _region_op_names(outer, 1)
    assert "stablehlo.case" in agreed and "stablehlo.select" not in {
        o.name for o in _top_level_in_region(outer, 0)}
    assert "stablehlo.select" in mixed and "stablehlo.case" not in mixed
    assert "stablehlo.while" in mixed  # the while branch is inlined for the mixed lanes
    # the outer predicate: an `and` over the per-lane "same as lane 0"
    reduces = _top_level(main, "stablehlo.reduce")
    assert any("stablehlo.and" in str(r) for r in reduces)
    assert str(outer.operands[0].type) == "tensor<i1>"


def test_uniform_fast_path_ir_for_if_module():
    text = sb.batch_module(IF_LOOP_MODULE, [0, 0], [0], 4)
    # textual checks: outer if on (all or none), inner if on "all true", selects
    assert text.count('"stablehlo.if"') == 2
    assert "applies stablehlo.and" in text and "applies stablehlo.or" in text
    assert "stablehlo.not" in text and "stablehlo.select" in text


def test_cheap_branches_only_select():
    """A few elementwise ops per branch: no run-time test (it would cost more
    than the branch it skips, and XLA cannot fuse across the conditional):
    both branches run and selects pick, as in vmap."""
    text = sb.batch_module(IF_MODULE, [0, 0, None], [0, 0], 4)
    assert "stablehlo.if" not in text and "stablehlo.reduce" not in text
    assert text.count("stablehlo.select") == 2
    x = jnp.arange(12.0, dtype=f32).reshape(4, 3)
    p, y = jnp.array([True, False, False, True]), jnp.arange(3.0, dtype=f32)
    got = run_module(text, p, x, y)
    want = [jnp.where(p[:, None], x + y, x * y), jnp.where(p, 1, 2).astype(jnp.int32)]
    assert_same_tree(got, want)
    # A branch with many ops gets the run-time test again.
    many = "\n".join(f"    %t{k} = stablehlo.sine {'%x' if k == 0 else f'%t{k - 1}'} : tensor<3xf32>"
                     for k in range(20))
    big = IF_MODULE.replace("    %a = stablehlo.add %x, %y : tensor<3xf32>",
                            many + "\n    %a = stablehlo.add %t19, %y : tensor<3xf32>")
    assert sb.batch_module(big, [0, 0, None], [0, 0], 4).count('"stablehlo.if"') == 2


# ---- nesting ----------------------------------------------------------------------

def while_in_cond(p, x):
    return lax.cond(p, lambda v: lax.while_loop(lambda c: c[0] < 5,
                                                lambda c: (c[0] + 1, c[1] * 1.1), (0, v))[1],
                    lambda v: v - 1, x)


@pytest.mark.parametrize("pa,size", [(0, 3), (None, 8), (0, 1)])
def test_while_inside_cond(rng, pa, size):
    p = jnp.asarray(rng.random(size) > 0.5) if pa is not None else jnp.bool_(True)
    check_vmap(while_in_cond, p, random_array(rng, (size, 4), f32), in_axes=(pa, 0))


def test_data_dependent_while_inside_cond(rng):
    def fn(p, x):
        return lax.cond(p, lambda v: lax.while_loop(lambda c: c < 5, lambda c: c * 2 + 0.1, v),
                        lambda v: -v, x)
    p = jnp.array([True, False, True, True, False, True, True, False])
    check_vmap(fn, p, jnp.asarray(rng.uniform(0.1, 3, 8), f32))


def cond_in_while(x):
    def body(c):
        i, v = c
        return i + 1, lax.cond(v.sum() > 0, lambda u: u * 0.5, lambda u: u + 1.0, v)
    return lax.while_loop(lambda c: c[0] < 4, body, (0, x))


@pytest.mark.parametrize("size", SIZES)
def test_cond_inside_while(rng, size):
    check_vmap(cond_in_while, random_array(rng, (size, 3), f32))


def test_cond_inside_data_dependent_while(rng):
    def fn(x):
        def body(v):
            return lax.cond(v > 1, lambda u: u * 1.5, lambda u: u + 0.7, v)
        return lax.while_loop(lambda v: v < 50, body, x)
    check_vmap(fn, jnp.asarray(rng.uniform(0, 40, 8), f32))


def test_cond_inside_cond_function_of_while(rng):
    fn = lambda x: lax.while_loop(
        lambda c: lax.cond(c[0] > 0, lambda: c[1] < 5, lambda: c[1] < 2),
        lambda c: (c[0] - 0.5, c[1] + 1), (x, 0))
    check_vmap(fn, jnp.asarray(rng.uniform(-1, 3, 8), f32))


def test_nested_cond_batched_predicates():
    fn = lambda p, q, x: lax.cond(p, lambda v: lax.cond(q, lambda u: u + 1, lambda u: u - 1, v),
                                  lambda v: v * 10, x)
    x = jnp.arange(4.0)
    check_vmap(fn, jnp.array([True, False, True, True]), jnp.array([True, True, False, False]), x)
    check_vmap(fn, jnp.array([True] * 4), jnp.array([True, True, False, False]), x)


def scan_in_scan(xs):
    def outer(c, row):
        s, ys = lax.scan(lambda ci, e: (ci + e, ci * e), c, row)
        return s, ys
    return lax.scan(outer, 0.0, xs)


@pytest.mark.parametrize("size,in_axis", [(1, 0), (3, 2), (8, 1)])
def test_scan_inside_scan(rng, size, in_axis):
    xs = jnp.asarray(np.moveaxis(rng.standard_normal((size, 4, 5)), 0, in_axis), f32)
    check_vmap(scan_in_scan, xs, in_axes=in_axis, out_axes=(0, in_axis), atol=1e-5)


def test_while_inside_while(rng):
    def nested(n):
        def outer_body(c):
            i, tot = c
            _, s = lax.while_loop(lambda d: d[0] < i, lambda d: (d[0] + 1, d[1] + d[0]), (0, 0))
            return i + 1, tot + s
        return lax.while_loop(lambda c: c[0] < n, outer_body, (0, 0))
    check_vmap(nested, jnp.array([0, 3, 5, 1, 2, 7, 4, 4], i32))
    check_vmap(nested, jnp.array([4], i32))


@jax.jit
def _helper(a, b):
    return jnp.sin(a) * b


@pytest.mark.parametrize("in_axes", [(0, None), (None, 0), (0, 0)])
def test_jitted_helper_called_in_loop_body(rng, in_axes):
    def fn(x, w):
        y = _helper(w, w)  # the same callee outside the loop, another pattern
        return lax.fori_loop(0, 3, lambda i, c: _helper(c, w) + i, x) + y
    x = random_array(rng, (3, 4) if in_axes[0] is not None else (4,), f32)
    w = random_array(rng, (3, 4) if in_axes[1] is not None else (4,), f32)
    check_vmap(fn, x, w, in_axes=in_axes)


def test_jitted_helper_in_cond_function_of_while(rng):
    h = jax.jit(lambda v: jnp.sort(v)[0])
    # (an iteration cap, so that a wrong sort cannot make the test hang)
    fn = lambda v: lax.while_loop(lambda c: (h(c[0]) < 3) & (c[1] < 50),
                                  lambda c: (c[0] + 1.0, c[1] + 1), (v, 0))
    check_vmap(fn, jnp.asarray(rng.standard_normal((3, 4)), f32))


def test_sort_and_top_k_inside_control_flow(rng):
    p = jnp.array([True, False, True])
    v = random_array(rng, (3, 5), f32)
    check_vmap(lambda p, v: lax.cond(p, jnp.sort, lambda u: -u, v), p, v, out_axes=-1)
    xs = random_array(rng, (3, 4, 6), f32)
    check_vmap(lambda xs: lax.scan(lambda c, r: (c + lax.top_k(r, 2)[0].sum(),
                                                 lax.top_k(r, 2)[1]), 0.0, xs), xs)


# ---- sort / top_k / quantiles ----------------------------------------------------------

@pytest.mark.parametrize("dtype", [f32, i32, f64], ids=["f32", "i32", "f64"])
@pytest.mark.parametrize("k", range(3))
def test_sort_and_argsort(rng, dtype, k):
    size, in_axis, axis = SIZES[k], (0, 1, -1)[k], (-1, 0, 1)[k]
    with x64(dtype):
        shape = [4, 6]
        shape.insert(in_axis % 3, size)
        # few distinct values: many ties, so stability is observable
        x = jnp.asarray(rng.integers(0, 3, shape), dtype)
        check_vmap(lambda v: jnp.sort(v, axis=axis), x, in_axes=in_axis)
        check_vmap(lambda v: jnp.sort(v, axis=axis, descending=True), x, in_axes=in_axis,
                   out_axes=(0, 1, -1)[(k + 1) % 3])
        idx = check_vmap(lambda v: jnp.argsort(v, axis=axis, stable=True), x, in_axes=in_axis)
        check_vmap(lambda v: jnp.argsort(v, axis=axis, stable=True, descending=True), x,
                   in_axes=in_axis)
    # stability: equal keys keep their original order
    lane = np.moveaxis(np.asarray(x), in_axis, 0)[0]
    np.testing.assert_array_equal(np.asarray(idx)[0],
                                  np.argsort(lane, axis=axis, kind="stable"))


def test_sort_floats_with_nan_and_signed_zero():
    x = jnp.array([[3.0, jnp.nan, -0.0, 0.0, -1.0], [jnp.inf, 0.0, -0.0, -jnp.inf, 1.0]], f32)
    check_vmap(jnp.sort, x)
    check_vmap(lambda v: jnp.argsort(v, stable=True), x)


@pytest.mark.parametrize("n_ops,num_keys,in_axes,size", [
    (1, 1, (0,), 3),
    (2, 1, (0, 0), 8),
    (2, 1, (None, 0), 3),       # unbatched keys, batched values
    (2, 2, (0, None), 1),
    (3, 1, (0, None, 0), 8),
    (3, 2, (None, 0, 0), 3),
    (3, 3, (0, 0, 0), 8),
])
def test_lax_sort_operands_and_num_keys(rng, n_ops, num_keys, in_axes, size):
    ops = [jnp.asarray(rng.integers(0, 3, (size, 7) if a is not None else (7,)), dt)
           for a, dt in zip(in_axes, [i32, f32, i32])]
    check_vmap(lambda *o: lax.sort(o, num_keys=num_keys, is_stable=True), *ops, in_axes=in_axes)


def test_lax_sort_dimension_shift(rng):
    x = random_array(rng, (4, 3, 5), f32)
    check_vmap(lambda v: lax.sort(v, dimension=0), x, in_axes=1)
    check_vmap(lambda v, w: lax.sort((v, w), dimension=1, num_keys=1), x,
               jnp.moveaxis(x, 2, 0) * 2,
               in_axes=(2, 0), out_axes=(1, 2))


def test_lexicographic_tuple_sort(rng):
    """A comparator on tuples: lax.sort of (primary, secondary, payload) with
    num_keys=2 orders by primary, then secondary -- plus jnp.lexsort."""
    a = jnp.asarray(rng.integers(0, 2, (8, 9)), i32)
    b = jnp.asarray(rng.standard_normal((8, 9)).round(0), f32)
    payload = jnp.arange(9, dtype=i32)
    got = check_vmap(lambda a, b, c: lax.sort((a, b, c), num_keys=2), a, b, payload,
                     in_axes=(0, 0, None))
    keys = np.stack([np.asarray(got[0]), np.asarray(got[1])], -1)
    for lane in keys:
        assert [tuple(t) for t in lane] == sorted(tuple(t) for t in lane)
    check_vmap(lambda a, b: jnp.lexsort((a, b)), a, b)


@pytest.mark.parametrize("k,size,in_axis,dtype", [(1, 1, 0, f32), (3, 3, 1, i32), (2, 8, -1, f32)])
def test_top_k(rng, k, size, in_axis, dtype):
    x = jnp.asarray(np.moveaxis(rng.integers(-5, 5, (size, 4, 7)), 0, in_axis), dtype)
    check_vmap(lambda v: lax.top_k(v, k), x, in_axes=in_axis, out_axes=[0, 1])


def test_top_k_ir_keeps_op():
    x = jnp.zeros((3, 8), f32)
    lowered = sb.batch_lower(lambda v: lax.top_k(v, 2)).lower(x)
    main = str(_main(lowered.module))
    # jax exports top_k as a composite named chlo.top_k (or chlo.top_k itself):
    # the named op is kept on the batched shapes, a backend may still match it
    assert "chlo.top_k" in main and "stablehlo.sort" not in main
    assert "(tensor<3x8xf32>) -> (tensor<3x2xf32>, tensor<3x2xi32>)" in main or \
        "tensor<3x8xf32> -> (tensor<3x2xf32>, tensor<3x2xi32>)" in main, main


@pytest.mark.parametrize("fn", [
    jnp.median,
    lambda v: jnp.quantile(v, jnp.array([0.1, 0.5, 0.9])),
    lambda v: jnp.percentile(v, 25.0, axis=0),
], ids=["median", "quantile", "percentile"])
def test_median_quantile(rng, fn):
    x = random_array(rng, (3, 4, 5), f32)
    check_or_unsupported(fn, x, ops={"stablehlo.gather"})
