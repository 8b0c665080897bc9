"""Custom calls, looked up by target name (``register_custom_call``), and
ops that annotate a value without changing it: sharding constraints
(``sdy.sharding_constraint``, ``custom_call @Sharding``), jax's
``shape_assertion``, and the linear-algebra kernels jax calls (LAPACK,
cuSOLVER, hipSOLVER, cuSPARSE FFI targets), which take leading batch dims.
"""
from __future__ import annotations

import numpy as np
from jaxlib.mlir import ir
from jaxlib.mlir.dialects import sdy

from stablehlo_batch.passes import builders as bld
from stablehlo_batch.passes.rules import register, register_custom_call
from stablehlo_batch.passes.rules.helpers import materialize_operands, retype_batched
from stablehlo_batch.passes.rules.linalg import fold_rhs_lanes

# A custom call is looked up by its target in the rule table
# (``register_custom_call``); a target without a rule runs per lane.
# Kernels (LAPACK, cuSOLVER, ...) check static shapes when compiled, so
# their rules decline a symbolic batch size: per lane, each call sees one
# example's static shapes. The marker targets below accept a symbolic batch.


@register("sdy.sharding_constraint")
def sharding_constraint(fb, op, flags):
    # The constraint names one sharding per dim of the per-example value; the
    # values are unchanged by it, so the batched value goes through
    # unannotated and XLA's partitioner decides for the batch dim.
    return [(op.operands[0], True)]


@register_custom_call("Sharding")
def sharding_marker(fb, op, flags):
    sharding = op.attributes["mhlo.sharding"] if "mhlo.sharding" in op.attributes else None
    if sharding is not None and ir.StringAttr(sharding).value.strip() in (
            "{replicated}", "{maximal device=0}"):
        return retype_batched(fb, op)  # still true of the batched value
    return [(op.operands[0], True)]


# ---- linear algebra kernels ---------------------------------------------------
#
# The LAPACK / cuSOLVER / hipSOLVER FFI kernels jax calls (and XLA's Qr / Eigh
# / LuDecomposition that it calls on TPU) take any number of
# leading batch dims (jax sets ``num_batch_dims``), so a batched call is the
# same call with one more leading dim on every operand and result. Only the
# typed-FFI targets qualify: the legacy ones (``lapack_sgetrf``,
# ``cusolver_getrf``, ...) carry the batch size in an opaque descriptor or in
# scalar operands, so they get no rule here.

def _lapack_targets() -> list[str]:
    common = ["trsm", "getrf", "geqrf", "geqp3", "potrf", "gesdd", "gesvd", "geev",
              "gees", "gehrd", "gtsv"]
    real = common + ["orgqr", "ormqr", "syevd", "sytrd"]
    cplx = common + ["ungqr", "unmqr", "heevd", "hetrd"]
    return ([f"lapack_{p}{k}_ffi" for p in "sd" for k in real]
            + [f"lapack_{p}{k}_ffi" for p in "cz" for k in cplx]
            + ["tridiagonal_solve_perturbed_ffi"])


def _gpu_targets() -> list[str]:
    names = []
    for p in ("cu", "hip"):
        names += [f"{p}solver_{k}_ffi" for k in
                  ("getrf", "geqrf", "orgqr", "ormqr", "potrf", "syevd", "sytrd", "gesvd",
                   "gesvdj", "gesvdp", "gesdd", "geev")]
        names += [f"{p}_lu_pivots_to_permutation", f"{p}hybrid_eig_real",
                  f"{p}hybrid_eig_comp", f"{p}hybrid_geqp3", f"{p}sparse_gtsv2_ffi",
                  f"{p}_tridiagonal_solve_perturbed",
                  # older jaxlibs: cuBLAS batched kernels for small matrices
                  f"{p}blas_getrf_batched_ffi", f"{p}blas_geqrf_batched_ffi"]
    return names


# What jax emits for TPU: XLA's own decompositions, batched over leading dims.
_XLA_TARGETS = ["Qr", "ProductOfElementaryHouseholderReflectors", "Eigh", "LuDecomposition"]

LINALG_TARGETS = frozenset(_lapack_targets() + _gpu_targets() + _XLA_TARGETS)
_TRSM = frozenset(t for t in LINALG_TARGETS if t.endswith("trsm_ffi"))


def _index_vector(values) -> ir.Attribute:
    t = ir.RankedTensorType.get([len(values)], ir.IndexType.get())
    return ir.DenseIntElementsAttr.get(np.asarray(values, dtype=np.int64), type=t)


def _prepend_layouts(op, name):
    """Minor-to-major layouts with the new batch dim as the most major one."""
    if name not in op.attributes:
        return
    layouts = [[int(d) for d in ir.DenseIntElementsAttr(a)] for a in ir.ArrayAttr(op.attributes[name])]
    op.attributes[name] = ir.ArrayAttr.get(
        [_index_vector([d + 1 for d in lay] + [0]) for lay in layouts])


def _bump_num_batch_dims(op):
    if "mhlo.frontend_attributes" not in op.attributes:
        return
    attrs = ir.DictAttr(op.attributes["mhlo.frontend_attributes"])
    entries = {a.name: a.attr for a in attrs}
    if "num_batch_dims" in entries:
        n = int(ir.StringAttr(entries["num_batch_dims"]).value)
        entries["num_batch_dims"] = ir.StringAttr.get(str(n + 1))
        op.attributes["mhlo.frontend_attributes"] = ir.DictAttr.get(entries)


def _refresh_sharding_rule(op, prepend_batch: bool):
    """Rewrites the op's ``sdy.sharding_rule`` for its new types: a new
    factor (index 0) shared by all leading batch dims when ``prepend_batch``,
    and every factor size re-read from the types."""
    if "sdy.sharding_rule" not in op.attributes:
        return
    rule = sdy.OpShardingRuleAttr(op.attributes["sdy.sharding_rule"])
    shift = 1 if prepend_batch else 0

    def mappings(attrs):
        out = []
        for m in attrs:
            dims = [[f + shift for f in sdy.DimMappingAttr(d).factor_indices]
                    for d in sdy.TensorMappingAttr(m).dim_mappings]
            out.append([[0]] + dims if prepend_batch else dims)
        return out

    ins, outs = mappings(rule.operand_mappings), mappings(rule.result_mappings)
    sizes = ([0] if prepend_batch else []) + list(rule.factor_sizes)
    for dims, v in list(zip(ins, op.operands)) + list(zip(outs, op.results)):
        for factors, extent in zip(dims, bld.shape_of(v)):
            if len(factors) == 1:
                sizes[factors[0]] = extent

    def build(dims_list):
        return [sdy.TensorMappingAttr.get([sdy.DimMappingAttr.get(f) for f in dims])
                for dims in dims_list]

    op.attributes["sdy.sharding_rule"] = sdy.OpShardingRuleAttr.get(
        sizes, build(ins), build(outs),
        reduction_factors=[f + shift for f in rule.reduction_factors],
        need_replication_factors=[f + shift for f in rule.need_replication_factors],
        permutation_factors=[f + shift for f in rule.permutation_factors],
        blocked_propagation_factors=[f + shift for f in rule.blocked_propagation_factors],
        is_custom=rule.is_custom)


def _decline_symbolic(fb, op):
    if fb.symbolic:
        fb.decline(op, "it needs static shapes and the batch size is symbolic")


def _batch_kernel_call(fb, op, flags):
    """The same kernel call with one more leading batch dim everywhere."""
    broadcast = materialize_operands(fb, op, flags)
    if broadcast:
        # The kernels need equal batch dims on all operands.
        fb.note("operand_broadcast", op, f"{broadcast} unbatched operand(s) copied "
                "per lane: the kernel needs every operand batched")
    retype_batched(fb, op)
    _prepend_layouts(op, "operand_layouts")
    _prepend_layouts(op, "result_layouts")
    _bump_num_batch_dims(op)
    _refresh_sharding_rule(op, prepend_batch=True)
    return [(r, True) for r in op.results]


@register_custom_call(*sorted(LINALG_TARGETS - _TRSM), costly=True)
def linalg_kernel(fb, op, flags):
    _decline_symbolic(fb, op)
    return _batch_kernel_call(fb, op, flags)


@register_custom_call(*sorted(_TRSM), costly=True)
def trsm(fb, op, flags):
    """LAPACK triangular solve: with an unbatched matrix the lanes' right-hand
    sides become more columns / rows of one solve (see linalg.fold_rhs_lanes)."""
    _decline_symbolic(fb, op)
    config = (ir.DictAttr(op.attributes["mhlo.backend_config"])
              if "mhlo.backend_config" in op.attributes else None)
    if flags[0] or len(op.operands) != 2 or config is None or "side" not in config:
        return _batch_kernel_call(fb, op, flags)
    left = ir.IntegerAttr(config["side"]).value == ord("L")
    a, b = op.operands
    fb.note("rhs_lanes_folded", op, "unbatched matrix: the lanes are more right-hand-side "
            f"{'columns' if left else 'rows'} of one trsm")
    folded, unfold = fold_rhs_lanes(b, left)
    new = op.clone()
    new.operands[1] = folded
    new.results[0].set_type(folded.type)
    _refresh_sharding_rule(new, prepend_batch=False)
    return [(unfold(new.results[0]), True)]


# ---- elementwise kernels ----------------------------------------------------------

@register_custom_call("cu_threefry2x32_ffi", "hip_threefry2x32_ffi")
def elementwise_kernel(fb, op, flags):
    """The GPU threefry kernel (``jax_threefry_gpu_kernel_lowering``) hashes
    its operands elementwise; they must share one shape, so every operand is
    batched (the unbatched counters are copied per lane, as jax's own
    lowering broadcasts them to the keys' shape)."""
    for i, (v, batched) in enumerate(zip(list(op.operands), flags)):
        if not batched:
            op.operands[i] = fb.materialize(v)
    retype_batched(fb, op)
    _prepend_layouts(op, "operand_layouts")
    _prepend_layouts(op, "result_layouts")
    return [(r, True) for r in op.results]


# ---- approximate top-k ----------------------------------------------------------

@register_custom_call("ApproxTopK", costly=True)
def approx_top_k(fb, op, flags):
    """``lax.approx_max_k`` / ``approx_min_k``: ``ApproxTopK(operand, iota,
    init_value, init_index)`` reduces ``reduction_dim`` (in the
    ``mhlo.backend_config`` dict) of the operand and its index iota to the
    top ``top_k``. Any other dim is a batch dim to the kernel, so the batched
    call is the same call with the batch dim first and ``reduction_dim`` one
    further (jax's vmap rule binds the primitive the same way)."""
    config = (ir.DictAttr(op.attributes["mhlo.backend_config"])
              if "mhlo.backend_config" in op.attributes else None)
    if (config is None or "reduction_dim" not in config or len(op.operands) != 4
            or any(flags[2:])):
        # An unknown layout of the call, or batched init values (not what jax emits).
        fb.decline(op, "an ApproxTopK call of a form this rule does not know")
    if fb.symbolic:
        # The batched call's results would have a `?` batch dim, which XLA's
        # shape refinement cannot resolve for a custom call ("'stablehlo.
        # custom_call' op has dynamic shapes"): per lane, each call static.
        fb.decline(op, "its batched results would have a dynamic shape, which XLA's shape "
                   "refinement cannot resolve for a custom call, and the batch size is "
                   "symbolic")
    op.operands[0] = fb.materialize(op.operands[0])
    op.operands[1] = fb.materialize(op.operands[1])
    entries = {a.name: a.attr for a in config}
    dim = ir.IntegerAttr(entries["reduction_dim"]).value
    entries["reduction_dim"] = ir.IntegerAttr.get(ir.IntegerType.get_signless(64), dim + 1)
    op.attributes["mhlo.backend_config"] = ir.DictAttr.get(entries)
    return retype_batched(fb, op)


# ---- shape assertions (jax shape polymorphism) --------------------------------

@register_custom_call("shape_assertion")
def shape_assertion(fb, op, flags):
    """``shape_assertion(pred, *error_message_inputs)`` fails with a message
    formatted from the inputs when ``pred`` is false. Batched: it must hold in
    every lane; batched message inputs are reported for the first failing
    lane (any lane, when the predicate is unbatched: then all of them fail)."""
    pred, *inputs = op.operands
    pred_batched, input_flags = flags[0], flags[1:]
    if fb.batch_dim == 0:
        # No lane to check: a per-lane assertion holds, and batched message
        # inputs (scalars) have no lane to be read from.
        if pred_batched:
            op.operands[0] = bld.splat(ir.IntegerType.get_signless(1), [], 1)
        for i, (v, batched) in enumerate(zip(inputs, input_flags), start=1):
            if batched:
                op.operands[i] = bld.splat(bld.element_type(v), [], 0)
        return []
    lane = None
    if any(input_flags):
        lane = _first_failing_lane(fb, pred) if pred_batched else bld.splat(
            ir.IntegerType.get_signless(32), [], 0)
    if pred_batched:
        op.operands[0] = bld.reduce_all(pred, "stablehlo.and")
    for i, (v, batched) in enumerate(zip(inputs, input_flags), start=1):
        if batched:
            one = bld.create("stablehlo.dynamic_slice",
                             [bld.tensor_type([1], bld.element_type(v))], [v, lane],
                             {"slice_sizes": bld.i64_array([1])}).result
            op.operands[i] = bld.reshape(one, [])
    return []


def _first_failing_lane(fb, pred):
    """The index of the first lane where ``pred`` ([B] i1) is false (B - 1
    when none is, where it does not matter)."""
    i32 = ir.IntegerType.get_signless(32)
    size = fb.axis_size
    iota = bld.create("stablehlo.iota", [bld.tensor_type([size], i32)], [],
                      {"iota_dimension": bld.i64_attr(0)}).result
    candidates = bld.select(pred, bld.splat(i32, [size], size - 1), iota)
    scalar = bld.tensor_type([], i32)
    red = bld.create("stablehlo.reduce", [scalar], [candidates, bld.splat(i32, [], size - 1)],
                     {"dimensions": bld.i64_array([0])}, regions=1)
    block = red.regions[0].blocks.append(scalar, scalar)
    with ir.InsertionPoint(block):
        bld.create("stablehlo.return", [],
                   [bld.create("stablehlo.minimum", [scalar], list(block.arguments)).result])
    return red.result
