"""Custom calls (passes/rules/custom_calls.py), differentially against
jax.vmap: the LAPACK FFI custom calls jax emits on CPU through
jnp.linalg / jax.scipy.linalg / lax.linalg, with the matrix batched, only
the right-hand side batched (the matrix and its factorization must then
stay unbatched in the IR), or both; f32, f64 and complex64; batch sizes 1,
3 and 8 and several in_axes / out_axes.

XLA's own Qr / Eigh custom calls (jax's TPU lowering) run here against the
module run once per lane. shape_assertion's batched predicate is checked by
evaluating the operands the batched assertion receives. The native linear
algebra ops are in test_linalg.py.

Every check runs strict: a per-lane fallback would be an error here, since
each of these ops has a vectorized rule.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import pytest
from jax import lax
from jaxlib.mlir import ir

import stablehlo_batch as sb
from batch_cases import check_module, make, x64
from conftest import assert_same_tree, check_vmap
from stablehlo_batch.passes.fallback import strict_mode

f16, f32, f64, c64 = jnp.float16, jnp.float32, jnp.float64, jnp.complex64


def _tol(dtype):
    # Both sides call the same batched kernel; only fusion around it differs.
    return dict(rtol=1e-10, atol=1e-10) if jnp.dtype(dtype).itemsize == 8 else \
        dict(rtol=2e-5, atol=2e-5)


def _conditioned(a):
    """A well-conditioned square matrix (batched or not, matrix dims last)."""
    return a + 4 * jnp.eye(a.shape[-1], dtype=a.dtype)


def _spd(a):
    return a @ jnp.conj(jnp.swapaxes(a, -1, -2)) + a.shape[-1] * jnp.eye(a.shape[-1], dtype=a.dtype)


def _herm(a):
    return (a + jnp.conj(jnp.swapaxes(a, -1, -2))) / 2


def _kernel_calls(lowered):
    """(target, operand shapes, num_batch_dims) of every linear-algebra
    custom call in a batched module."""
    from stablehlo_batch.passes.rules.custom_calls import LINALG_TARGETS
    calls = []

    def visit(op):
        if op.name == "stablehlo.custom_call":
            target = ir.StringAttr(op.attributes["call_target_name"]).value
            if target in LINALG_TARGETS and "mhlo.frontend_attributes" in op.attributes:
                attrs = ir.DictAttr(op.attributes["mhlo.frontend_attributes"])
                calls.append((target, [tuple(ir.RankedTensorType(v.type).shape)
                                       for v in op.operands],
                              int(ir.StringAttr(attrs["num_batch_dims"]).value)))
        return ir.WalkResult.ADVANCE

    lowered.module.operation.walk(visit)
    return calls


# name -> (fn, per-example shapes, dtype, in_axes, out_axes, size)
#   in_axes None entries: that operand is unbatched.
CASES = {
    # solve / inv / det: getrf + trsm, a while loop for the pivots
    "solve": (lambda a, b: jnp.linalg.solve(_conditioned(a), b), [(4, 4), (4,)], f32, (0, 0), 0, 3),
    "solve_rhs_only": (lambda a, b: jnp.linalg.solve(_conditioned(a), b), [(4, 4), (4, 2)], f64,
                       (None, -1), 1, 3),
    "solve_matrix_only": (lambda a, b: jnp.linalg.solve(_conditioned(a), b), [(4, 4), (4,)], c64,
                          (1, None), -1, 1),
    "inv": (lambda a: jnp.linalg.inv(_conditioned(a)), [(4, 4)], f32, (0,), 0, 8),
    "inv_c64": (lambda a: jnp.linalg.inv(_conditioned(a)), [(3, 3)], c64, (-1,), 1, 3),
    "det": (jnp.linalg.det, [(4, 4)], f64, (0,), 0, 3),
    "slogdet": (lambda a: tuple(jnp.linalg.slogdet(a)), [(4, 4)], c64, (2,), (0, -1), 3),
    "cholesky": (lambda a: jnp.linalg.cholesky(_spd(a)), [(4, 4)], f32, (0,), 0, 3),
    "cholesky_f64": (lambda a: jnp.linalg.cholesky(_spd(a)), [(3, 3)], f64, (1,), -1, 1),
    "cholesky_c64": (lambda a: jnp.linalg.cholesky(_spd(a)), [(3, 3)], c64, (0,), 0, 3),
    "eigh": (lambda a: jnp.linalg.eigh(_herm(a)), [(4, 4)], f32, (0,), 0, 3),
    "eigh_c64": (lambda a: tuple(jnp.linalg.eigh(_herm(a))), [(3, 3)], c64, (-1,), (1, 0), 3),
    "eigvalsh": (lambda a: jnp.linalg.eigvalsh(_herm(a)), [(4, 4)], f64, (0,), 0, 8),
    "svd": (jnp.linalg.svd, [(4, 3)], f32, (0,), 0, 3),
    "svd_reduced": (lambda a: jnp.linalg.svd(a, full_matrices=False), [(3, 5)], f64, (1,), -1, 1),
    "svdvals_c64": (lambda a: jnp.linalg.svd(a, compute_uv=False), [(4, 4)], c64, (0,), 0, 3),
    "qr": (jnp.linalg.qr, [(4, 3)], f32, (0,), 0, 3),
    "qr_complete": (lambda a: jnp.linalg.qr(a, mode="complete"), [(3, 4)], f64, (-1,), 1, 1),
    "qr_c64": (jnp.linalg.qr, [(3, 3)], c64, (0,), 0, 3),
    "lstsq": (lambda a, b: jnp.linalg.lstsq(a, b)[0], [(5, 3), (5,)], f32, (0, 0), 0, 3),
    "lstsq_rhs_only": (lambda a, b: jnp.linalg.lstsq(a, b)[0], [(5, 3), (5, 2)], f64,
                       (None, 0), 0, 3),
    "pinv": (jnp.linalg.pinv, [(4, 3)], f32, (0,), 0, 3),
    "pinv_c64": (jnp.linalg.pinv, [(3, 3)], c64, (1,), 0, 1),
    "eig": (jnp.linalg.eig, [(4, 4)], f32, (0,), 0, 3),
    "eigvals_f64": (jnp.linalg.eigvals, [(4, 4)], f64, (0,), 0, 1),
    "lu": (jsl.lu, [(4, 4)], f32, (0,), 0, 3),
    "lu_c64": (jsl.lu, [(3, 3)], c64, (0,), 1, 1),
    "lu_factor": (jsl.lu_factor, [(4, 4)], f64, (-1,), (0, 0), 3),
    "solve_triangular": (lambda a, b: jsl.solve_triangular(_conditioned(a), b, lower=True),
                         [(4, 4), (4, 2)], f32, (0, 0), 0, 3),
    "solve_triangular_rhs_only": (
        lambda a, b: jsl.solve_triangular(_conditioned(a), b, trans=1, unit_diagonal=True),
        [(4, 4), (4, 3)], f32, (None, 0), 0, 8),
    "solve_triangular_matrix_only": (
        lambda a, b: jsl.solve_triangular(_conditioned(a), b, lower=True, trans=2),
        [(3, 3), (3,)], c64, (0, None), 0, 3),
    "triangular_solve_right_rhs_only": (
        lambda a, b: lax.linalg.triangular_solve(_conditioned(a), b, left_side=False,
                                                 lower=True, transpose_a=True),
        [(4, 4), (2, 4)], f64, (None, 1), -1, 3),
    "triangular_solve_right": (
        lambda a, b: lax.linalg.triangular_solve(_conditioned(a), b, left_side=False),
        [(4, 4), (2, 4)], f32, (0, None), 0, 1),
    "expm": (jsl.expm, [(3, 3)], f32, (0,), 0, 3),
    "cho_solve_rhs_only": (lambda a, b: jsl.cho_solve((jnp.linalg.cholesky(_spd(a)), True), b),
                           [(4, 4), (4, 2)], f32, (None, 0), 0, 3),
    "cho_solve": (lambda a, b: jsl.cho_solve((jnp.linalg.cholesky(_spd(a)), True), b),
                  [(3, 3), (3,)], f64, (0, 0), 0, 1),
    "schur": (jsl.schur, [(4, 4)], f32, (0,), 0, 3),
    "hessenberg": (jsl.hessenberg, [(4, 4)], f64, (0,), 0, 3),
    "tridiagonal": (lambda a: lax.linalg.tridiagonal(_herm(a)), [(4, 4)], f32, (0,), 0, 3),
    "tridiagonal_solve_rhs_only": (
        lambda d, b: lax.linalg.tridiagonal_solve(d * 0.1, d + 4, d * 0.2, b),
        [(4,), (4, 2)], f32, (None, 0), 0, 3),
}

# Cases whose matrix is unbatched: the factorization / triangle must reach
# its kernel unbatched (num_batch_dims 0, per-example shape).
RHS_ONLY = {"solve_rhs_only": ("getrf", "trsm"), "lstsq_rhs_only": ("gesdd",),
            "solve_triangular_rhs_only": ("trsm",),
            "triangular_solve_right_rhs_only": ("trsm",), "cho_solve_rhs_only": ("potrf", "trsm")}


@pytest.mark.parametrize("name", list(CASES))
def test_linalg_vs_vmap(rng, name):
    fn, shapes, dtype, in_axes, out_axes, size = CASES[name]
    with x64(dtype), strict_mode(True):
        args = [make(rng, sh, dtype, ax, size) for sh, ax in zip(shapes, in_axes)]
        check_vmap(fn, *args, in_axes=in_axes, out_axes=out_axes, **_tol(dtype))
        calls = _kernel_calls(sb.batch_lower(fn, in_axes=in_axes, out_axes=out_axes)
                              .lower(*args))
    assert calls, "no linear-algebra kernel in the batched module"
    if name in RHS_ONLY:
        seen = {k for k in RHS_ONLY[name] for target, _, _ in calls if k in target}
        assert seen == set(RHS_ONLY[name]), calls
    for target, operand_shapes, nbd in calls:
        non_batch = 1 if target.endswith("pivots_to_permutation") else 2
        rank = max(len(sh) for sh in operand_shapes)
        assert nbd == rank - non_batch, (target, operand_shapes, nbd)
        if name in RHS_ONLY and any(k in target for k in RHS_ONLY[name]):
            assert nbd == 0, f"{target} got a batched matrix: {operand_shapes}"
            assert operand_shapes[0] == shapes[0]
        elif name not in RHS_ONLY and "trsm" not in target:
            assert nbd == 1 and operand_shapes[0][0] == size, (target, operand_shapes)

# ---- modules lowered for TPU, run here ---------------------------------------------
# jax calls XLA's Qr / ProductOfElementaryHouseholderReflectors / Eigh custom
# calls on TPU; XLA's CPU compiler expands them, so the batched TPU module
# runs here against the module run once per lane. (jax's TPU SVD is built
# from them too, but its module takes too long to compile for CI.)

@pytest.mark.parametrize("name,fn,shape,axis,size", [
    ("qr", jnp.linalg.qr, (4, 3), 0, 3),
    ("eigh", lambda a: jnp.linalg.eigh(_herm(a)), (3, 3), 1, 3),
])
def test_tpu_lowering(rng, name, fn, shape, axis, size):
    spec = jax.ShapeDtypeStruct(shape, f32)
    text = jax.jit(fn).trace(spec).lower(lowering_platforms=("tpu",)).as_text()
    n_out = len(jax.tree_util.tree_leaves(jax.eval_shape(fn, spec)))
    x = make(rng, shape, f32, axis, size)
    with strict_mode(True):
        check_module(text, [x], [axis], [0] * n_out, size, rtol=1e-4, atol=1e-4)
        batched = sb.batch_module(text, [axis], [0] * n_out, size)
    assert {"qr": "@Qr", "eigh": "@Eigh"}[name] in batched


# ---- shape_assertion -------------------------------------------------------------

_ASSERT = """func.func @main(%p: tensor<i1>, %n: tensor<i32>, %m: tensor<i32>) -> tensor<i32> {
  stablehlo.custom_call @shape_assertion(%p, %n, %m) {api_version = 2 : i32, error_message = "bad {0} {1}", has_side_effect = true} : (tensor<i1>, tensor<i32>, tensor<i32>) -> ()
  return %n : tensor<i32>
}
"""


def _assertion_operands_as_results(text):
    """The batched module with the shape_assertion replaced by returning the
    operands it would check: (pred, *message inputs, original results)."""
    from stablehlo_batch import module_io
    module = module_io.parse_module(text)
    main = ir.SymbolTable(module.operation)["main"]
    block = main.regions[0].blocks[0]
    ops = [o.operation for o in block.operations]
    assertion = next(o for o in ops if o.name == "stablehlo.custom_call")
    ret = ops[-1]
    values = list(assertion.operands) + list(ret.operands)
    with module.context, ir.Location.unknown():
        ir.Operation.create("func.return", operands=values, ip=ir.InsertionPoint(ret))
        ret.erase()
        assertion.erase()
        main.attributes["function_type"] = ir.TypeAttr.get(ir.FunctionType.get(
            [a.type for a in block.arguments], [v.type for v in values]))
    return module_io.module_to_text(module)


@pytest.mark.parametrize("preds,in_axes", [
    ([True, True, True], (0, 0, None)),
    ([True, False, False], (0, 0, 0)),
    ([False, True, True], (0, None, 0)),
    ([True, True, False], (None, 0, 0)),
])
def test_shape_assertion(preds, in_axes):
    from batch_cases import run_module
    size = len(preds)
    values = {0: jnp.asarray(preds), 1: jnp.asarray([10, 11, 12], jnp.int32),
              2: jnp.asarray([20, 21, 22], jnp.int32)}
    args = [values[i] if ax is not None else values[i][-1] for i, ax in enumerate(in_axes)]
    with strict_mode(True):
        batched = sb.batch_module(_ASSERT, list(in_axes), [0], size)
    pred, n, m, _ = run_module(_assertion_operands_as_results(batched), *args)
    lane_preds = [bool(p) for p in (args[0] if in_axes[0] is not None else [args[0]] * size)]
    assert bool(pred) == all(lane_preds)
    failing = [i for i, p in enumerate(lane_preds) if not p]
    lane = failing[0] if failing else None
    for got, arg, ax in ((n, args[1], in_axes[1]), (m, args[2], in_axes[2])):
        if ax is None:
            assert int(got) == int(arg)
        elif lane is not None:  # the message names a failing lane's values
            assert int(got) == int(arg[lane])
