"""The one door from the jax glue into the rewrite (passes/engine.py).

Every caller that batches a module — ``batch_module``, the flat export core,
the host-callback route, the self-check, the benchmarks — goes through
``batch_function``: it adds the leading unbatched arguments and results
jax puts in front of ``main`` (a platform index, effect tokens), times the
rewrite into the report, and turns an out_axes problem of one result into
the ValueError jax.vmap raises, naming the result by its pytree path.
"""
from __future__ import annotations

import contextlib
import time
from typing import Sequence

from jaxlib.mlir import ir

from stablehlo_batch import axes as ax
from stablehlo_batch import custom_vmap
from stablehlo_batch.passes.engine import batch_function_with_report
from stablehlo_batch.passes.errors import AxisSpecError, VerificationError, format_location
from stablehlo_batch.passes.report import BatchingReport


@contextlib.contextmanager
def readable_mlir_errors(what: str):
    """MLIR's errors from inside the rewrite (a pass pipeline or a verifier
    that failed) as one ``VerificationError`` listing each diagnostic with
    the op and the user's source line, without the pass-manager text."""
    try:
        yield
    except ir.MLIRError as e:
        diags = "; ".join(f"{d.message} at {format_location(d.location)}"
                          for d in e.error_diagnostics)
        if not diags:
            diags = str(e).replace("Failure while executing pass pipeline:", "").strip()
        raise VerificationError(f"{what}: the batched", diags) from None


def batch_function(module: ir.Module, func: str, in_axes: Sequence[int | None],
                   out_axes: Sequence[int | None], size, *, strict: bool | None = None,
                   n_leading_in: int = 0, n_leading_out: int = 0, out_tree=None,
                   out_avals=None, what: str = "batch_lower",
                   verify_input: bool = True) -> tuple[list[bool], BatchingReport]:
    """Batches @``func`` of ``module`` in place and verifies it; returns which
    results are batched (leading ones left out) and the report.

    ``size`` is an int or a name (a symbolic batch size). The first
    ``n_leading_in`` arguments and ``n_leading_out`` results of @``func``
    stay unbatched and are not listed in ``in_axes`` / ``out_axes``. With
    ``out_tree`` (the results' pytree) an out_axes error of one result is a
    ValueError naming it like jax.vmap does; without, an AxisSpecError.
    With ``out_avals`` (the results' jax avals, unbatched, leading ones left
    out) out_axes count on their ranks, not on the IR's: a typed PRNG key's
    IR has a hidden trailing dimension (``axes.resolve_out_axes``).
    ``verify_input=False`` skips verifying the input module (one jax's
    lowering verified in this process); the result is always verified."""
    start = time.perf_counter()
    if out_avals is not None:
        out_axes = ax.resolve_out_axes(what, out_tree, out_avals, out_axes)
    try:
        with readable_mlir_errors(what):
            flags, report = batch_function_with_report(
                module, func, [None] * n_leading_in + list(in_axes),
                [None] * n_leading_out + list(out_axes), size, strict=strict,
                verify_input=verify_input)
    except AxisSpecError as e:
        if out_tree is None or e.result_index is None:
            raise
        j = e.result_index - n_leading_out
        path = ax.leaf_path(out_tree, j, "out_axes")
        if out_axes[j] is None:
            # jax.vmap also names the axis the output was batched on, which
            # is jax's own choice (ours is always 0 inside the module).
            raise ValueError(f"at {what} {path}, got axis spec None but output was "
                             "batched") from None
        if e.out_of_range is not None:  # numpy's text, as jax.vmap raises it
            axis, ndim = e.out_of_range
            raise ValueError(f"axis {axis} is out of bounds for array of dimension "
                             f"{ndim} (at {what} {path})") from None
        raise ValueError(f"at {what} {path}: {e}") from None
    # custom_vmap placeholders no batched value reached: their function
    custom_vmap.inline_bodies(module)
    report.rewrite_seconds = time.perf_counter() - start
    return flags[n_leading_out:], report
