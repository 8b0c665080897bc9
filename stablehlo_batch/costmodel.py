"""The default strategy choice of ``batch_lower``: a cheap, static cost model.

Without ``tune=True`` nothing is measured, but the full batch (the program
``jax.jit(jax.vmap(f))`` runs) is not always the fastest: on XLA's CPU
backend two patterns run much slower over the whole batch than as a loop
(measured, 2-core AMD EPYC, 1 MiB L2 per core, 32 MiB L3; CPU-time ratios
to ``jit(vmap)``, docs/tuning.md):

- **Lane-batched GEMMs.** A ``dot_general`` whose operands are *both*
  per-lane (an ensemble's weights times its activations, a chain of
  per-lane matrix products) cannot be folded into one large GEMM as a shared
  weight can: the batched module keeps it as a ``dot`` with the lane among
  its batch dimensions, which XLA:CPU runs as one small GEMM per lane over
  full-batch operands and results. Once those intermediates are several
  MiB (larger than the per-core L2) every layer streams them through memory;
  the per-lane loop (``lax.map``, chunk 1) keeps one lane's working set in
  cache: ensemble_mlp at 512 0.34x, ensemble_mlp_wide 0.47x, matmul_chain
  0.63x. Below ~6 MiB the loop's gain is small (0.85-0.95x) and chunks of 8
  or 32 lose (up to 1.2x: the chunk loop's slices), so the model keeps the
  full batch there.
- **Lane-grouped convolutions.** A convolution with a per-lane kernel *and*
  per-lane input becomes one convolution with ``feature_group_count = B``
  (or ``batch_group_count``), which XLA:CPU runs far below the speed of B
  small convolutions once B is large: chunks of 32 lanes 0.59x at batch
  512 (cnn_ensemble); the per-lane loop loses there (1.2-1.8x: each lane's
  convolution is too small), and at batch 64 chunks are only even.

- **Lane-batched outer products.** Per-example weight gradients are
  ``dot_general``s with the lane as batch dimension and no contraction;
  XLA:CPU computes them in a transposed layout and copies the full-batch
  ``(B, m, n)`` result into place: chunks of 32 lanes ran 0.17-0.74x at
  batch 64-512 (per_example_grad and its variants with 32-256 wide layers).

Everything else (shared weights folded into one GEMM, convolutions with a
shared kernel, gathers, scatters, sorts, loops, linear algebra custom calls)
stays the full batch: there the loop loses, often 2x.

``decide`` reads the *batched* module (``flat.batch_flat``'s, built anyway):
for every ``dot_general`` and ``convolution`` it counts FLOPs, and which of
them are lane-batched as above. A loop is chosen only when those carry at
least ``MIN_SHARE`` of all dot / convolution FLOPs, the batch is large
enough and each trip of the loop does enough of that work to amortize it
(the thresholds below); anything it cannot read (dynamic shapes,
another platform than CPU) keeps the full batch. ``tune=True`` measures
instead; ``tune=False`` always runs the full batch.
"""
from __future__ import annotations

import dataclasses
import math

from jaxlib.mlir import ir
from jaxlib.mlir.dialects import stablehlo

# Share of all dot_general / convolution FLOPs that must be lane-batched.
MIN_SHARE = 0.5
# Lane-batched GEMMs: the per-lane loop when the largest full-batch result of
# such a dot is at least this many bytes (several times the 1 MiB L2 per
# core; at 4 MiB the loop won only 0.74-0.94x per call while its XLA compile,
# 1.4-2x the full batch's, put the first result at 1.4-1.7x jit(vmap)'s),
# and each lane's product is a real matrix product (every one of M, N and
# the contraction at least MIN_GEMM_DIM: not a matrix-vector or outer product).
DOT_MIN_BYTES = 6 << 20
MIN_GEMM_DIM = 8
DOT_CHUNK = 1
# Each trip of the loop must carry at least this many FLOPs of the
# lane-batched ops (chunk size x their FLOPs per lane): a loop trip costs a
# few microseconds, which tiny per-lane products do not amortize (a chain of
# 8x8 products at batch 16384 runs 5x slower as a lane loop).
MIN_TRIP_FLOPS = 2e6
# Lane-batched outer products (per-example weight gradients): chunks of
# OUTER_CHUNK lanes when they are at least OUTER_MIN_SHARE of the FLOPs (they
# are memory-bound: FLOPs understate them) and their full-batch results
# together at least OUTER_MIN_BYTES.
OUTER_MIN_SHARE = 0.25
OUTER_MIN_BYTES = 1 << 20
OUTER_CHUNK = 32
# Lane-grouped convolutions: chunks of CONV_CHUNK lanes from CONV_MIN_BATCH lanes.
CONV_MIN_BATCH = 256
CONV_CHUNK = 32
# Platforms the thresholds were measured on; elsewhere the full batch.
PLATFORMS = ("cpu",)


@dataclasses.dataclass
class Features:
    """What ``features`` read from a batched module."""
    flops: float = 0.0                 # all dot_general / convolution FLOPs
    lane_gemm_flops: float = 0.0       # of lane-batched dot_generals (GEMM-sized)
    lane_gemm_bytes: int = 0           # largest full-batch result of one of those
    lane_conv_flops: float = 0.0       # of lane-grouped convolutions
    lane_outer_flops: float = 0.0      # of lane-batched outer products (no contraction)
    lane_outer_bytes: int = 0          # their full-batch results, all together
    unreadable: str = ""               # why the module could not be read (dynamic shapes)

    @property
    def gemm_share(self) -> float:
        return self.lane_gemm_flops / self.flops if self.flops else 0.0

    @property
    def outer_share(self) -> float:
        return self.lane_outer_flops / self.flops if self.flops else 0.0

    @property
    def conv_share(self) -> float:
        return self.lane_conv_flops / self.flops if self.flops else 0.0


@dataclasses.dataclass
class Decision:
    """The model's choice: ``chunk`` None = the full batch, 1 = the lane loop."""
    chunk: int | None
    reason: str
    features: Features


def _down(t):
    return t.maybe_downcast() if hasattr(t, "maybe_downcast") else t


def _shape(value) -> list[int] | None:
    t = _down(value.type)
    if not isinstance(t, ir.RankedTensorType) or not t.has_static_shape:
        return None
    return list(t.shape)


def _elem_bytes(value) -> int:
    et = _down(ir.RankedTensorType(value.type).element_type)
    width = getattr(et, "width", None)
    return max(1, int(width) // 8) if isinstance(width, int) else 4


def _prod(xs) -> int:
    return math.prod(xs) if xs else 1


def _dot(op, size: int, f: Features):
    lhs, rhs = _shape(op.operands[0]), _shape(op.operands[1])
    out = _shape(op.results[0])
    if lhs is None or rhs is None or out is None:
        f.unreadable = f"dynamic shape in {op.name}"
        return
    dn = stablehlo.DotDimensionNumbers(op.attributes["dot_dimension_numbers"])
    lb, lc = list(dn.lhs_batching_dimensions), list(dn.lhs_contracting_dimensions)
    rb, rc = list(dn.rhs_batching_dimensions), list(dn.rhs_contracting_dimensions)
    batch = _prod([lhs[d] for d in lb])
    k = _prod([lhs[d] for d in lc])
    m = _prod([n for d, n in enumerate(lhs) if d not in lb and d not in lc])
    n = _prod([s for d, s in enumerate(rhs) if d not in rb and d not in rc])
    flops = 2.0 * batch * m * n * k
    f.flops += flops
    # the lane is a batch dimension of both operands (the rewrite adds it as
    # one; a dot whose other operand is shared folds the lane into M or N)
    lane = any(lhs[a] == size and rhs[b] == size for a, b in zip(lb, rb))
    if lane and min(m, n, k) >= MIN_GEMM_DIM:
        f.lane_gemm_flops += flops
        f.lane_gemm_bytes = max(f.lane_gemm_bytes, _prod(out) * _elem_bytes(op.results[0]))
    elif lane and not lc and min(m, n) >= MIN_GEMM_DIM:
        f.lane_outer_flops += flops
        f.lane_outer_bytes += _prod(out) * _elem_bytes(op.results[0])


def _conv(op, size: int, f: Features):
    kern, out = _shape(op.operands[1]), _shape(op.results[0])
    if kern is None or out is None:
        f.unreadable = f"dynamic shape in {op.name}"
        return
    dn = stablehlo.ConvDimensionNumbers(op.attributes["dimension_numbers"])
    window = _prod([kern[d] for d in dn.kernel_spatial_dimensions])
    flops = 2.0 * _prod(out) * window * kern[dn.kernel_input_feature_dimension]
    f.flops += flops
    groups = [ir.IntegerAttr(op.attributes[a]).value
              for a in ("feature_group_count", "batch_group_count") if a in op.attributes]
    if size > 1 and any(g >= size and g % size == 0 for g in groups):
        f.lane_conv_flops += flops


def features(module: ir.Module, size: int) -> Features:
    """Dot / convolution FLOPs of the batched ``module`` (batch ``size``),
    and how many of them are lane-batched GEMMs or lane-grouped convolutions.
    Ops in loops and called functions count once."""
    f = Features()

    def visit(op):
        name = op.name
        if name == "stablehlo.dot_general":
            _dot(op, size, f)
        elif name == "stablehlo.convolution":
            _conv(op, size, f)
        return ir.WalkResult.ADVANCE
    module.operation.walk(visit)
    return f


def decide(module: ir.Module, size, platform: str) -> Decision:
    """The strategy for the batched ``module`` at batch ``size`` on
    ``platform``: the lane loop (``chunk`` 1), chunks of ``CONV_CHUNK``, or
    the full batch (``chunk`` None). See the module docstring."""
    f = Features()
    if not isinstance(size, int) or size < 2:
        return Decision(None, "no static batch size", f)
    if platform not in PLATFORMS:
        return Decision(None, f"no model for {platform}: the full batch", f)
    f = features(module, size)
    if f.unreadable:
        return Decision(None, f"{f.unreadable}: the full batch", f)
    if (f.gemm_share >= MIN_SHARE and f.lane_gemm_bytes >= DOT_MIN_BYTES
            and DOT_CHUNK * f.lane_gemm_flops / size >= MIN_TRIP_FLOPS):
        return Decision(DOT_CHUNK, f"lane-batched GEMMs are {f.gemm_share:.0%} of the FLOPs, "
                        f"results up to {f.lane_gemm_bytes / 2**20:.1f} MiB", f)
    if (f.outer_share >= OUTER_MIN_SHARE and f.lane_outer_bytes >= OUTER_MIN_BYTES
            and size >= 2 * OUTER_CHUNK):
        return Decision(OUTER_CHUNK, f"lane-batched outer products are {f.outer_share:.0%} "
                        f"of the FLOPs, results {f.lane_outer_bytes / 2**20:.1f} MiB", f)
    if (f.conv_share >= MIN_SHARE and size >= CONV_MIN_BATCH
            and CONV_CHUNK * f.lane_conv_flops / size >= MIN_TRIP_FLOPS):
        return Decision(CONV_CHUNK, f"lane-grouped convolutions are {f.conv_share:.0%} "
                        f"of the FLOPs at batch {size}", f)
    why = ("no dot_general or convolution" if not f.flops else
           f"lane-batched GEMMs {f.gemm_share:.0%} of the FLOPs "
           f"({f.lane_gemm_bytes / 2**20:.1f} MiB, {f.lane_gemm_flops / size:.2g} per lane), "
           f"lane-batched outer products {f.outer_share:.0%} "
           f"({f.lane_outer_bytes / 2**20:.1f} MiB), "
           f"lane-grouped convolutions {f.conv_share:.0%}")
    return Decision(None, why, f)
