"""The batching rewrite as an MLIR pass, to run inside a pass pipeline.

jaxlib's ``PassManager.add`` takes a Python callable ``(op, pass_) -> None``
as a pass; ``batching_pass(...)`` is one, so upstream passes (``inline``,
``canonicalize``, ``cse``, ``symbol-dce``, StableHLO's own) can run before
and after the batching in one pipeline::

    from jaxlib.mlir import passmanager
    bp = sb.batching_pass(in_axes=[0, None], out_axes=0, axis_size=8)
    with module.context:
        pm = passmanager.PassManager.parse("builtin.module(inline)")
        bp.add_to(pm)                      # pm.add(bp, name=..., argument=...)
        pm.add("canonicalize,cse")
        pm.run(module.operation)

The pass runs on a ``builtin.module`` and batches @``func`` in it (with
``batch_module``'s axes, several batch dimensions included). On failure it
emits the error at the module's location (the ``MLIRError`` of
``pm.run`` carries it) and keeps the typed exception in ``.error``.
``run_pipeline`` is what the CLI's ``--pre-pipeline`` / ``--post-pipeline``
run.
"""
from __future__ import annotations

import io
from typing import Any

from jaxlib.mlir import ir, passmanager
from jaxlib.mlir.dialects import stablehlo

from stablehlo_batch import module_io
from stablehlo_batch.api import batch_module_with_report
from stablehlo_batch.passes.errors import BatchingError


class BatchingPass:
    """A Python MLIR pass that batches one function of the module it runs on."""

    name = "StablehloBatch"
    argument = "stablehlo-batch"
    description = "batch a function along new leading axes (jax.vmap on IR)"

    def __init__(self, in_axes=0, out_axes=0, *, axis_size, func: str = "main",
                 strict: bool | None = None):
        self.in_axes, self.out_axes, self.axis_size = in_axes, out_axes, axis_size
        self.func, self.strict = func, strict
        self.report: Any = None  # of the last run (passes.report.BatchingReport)
        self.error: Exception | None = None  # of the last run, when it failed

    def __call__(self, op: ir.Operation, pass_) -> None:
        self.error = None
        try:
            if op.name != "builtin.module":
                raise BatchingError(f"the {self.argument} pass runs on a builtin.module, "
                                    f"not on {op.name}")
            text, self.report = batch_module_with_report(
                _bytecode(op), self.in_axes, self.out_axes, self.axis_size, func=self.func,
                debug_info=True, strict=self.strict)
            _replace_body(op, module_io.parse_module(text, op.context))
        except Exception as e:  # reported through MLIR, kept for the caller
            self.error = e
            op.location.emit_error(f"{self.argument}: {' '.join(str(e).split())}")
            pass_.signal_pass_failure()

    def add_to(self, pm: passmanager.PassManager) -> None:
        pm.add(self, name=self.name, argument=self.argument, description=self.description)


def batching_pass(in_axes=0, out_axes=0, *, axis_size, func: str = "main",
                  strict: bool | None = None) -> BatchingPass:
    """The batching as a pass for ``PassManager.add`` (see the module docstring);
    arguments as ``batch_module``'s."""
    return BatchingPass(in_axes, out_axes, axis_size=axis_size, func=func, strict=strict)


def _bytecode(op: ir.Operation) -> bytes:
    buf = io.BytesIO()
    op.write_bytecode(buf)
    return buf.getvalue()


def _replace_body(op: ir.Operation, new: ir.Module) -> None:
    """Moves ``new``'s ops and attributes into the module op ``op``."""
    block = op.regions[0].blocks[0]
    for old in list(block.operations):
        old.operation.erase()
    for o in list(new.body.operations):
        block.append(o.operation)
    for name in new.operation.attributes:
        op.attributes[name] = new.operation.attributes[name]


def _elements(pipeline: str | None) -> str:
    """'inline,canonicalize' or 'builtin.module(inline)' -> the inner list."""
    p = (pipeline or "").strip()
    if p.startswith("builtin.module(") and p.endswith(")"):
        p = p[len("builtin.module("):-1]
    return p


def run_pipeline(module: ir.Module, bp: BatchingPass, pre: str | None = None,
                 post: str | None = None) -> ir.Module:
    """Runs ``pre``, the batching pass and ``post`` (textual pass lists, e.g.
    ``"inline,canonicalize"``; func-level passes nest as ``func.func(...)``)
    on ``module`` in place; errors are one-line BatchingErrors."""
    stablehlo.register_stablehlo_passes()  # stablehlo-* and chlo-* by name
    with module.context:
        pm = passmanager.PassManager("builtin.module")
        for which, text in (("--pre-pipeline", pre), ("--post-pipeline", post)):
            if _elements(text):
                try:
                    passmanager.PassManager.parse(f"builtin.module({_elements(text)})")
                except ValueError as e:
                    raise BatchingError(f"{which}: {' '.join(str(e).split())}") from None
        if _elements(pre):
            pm.add(_elements(pre))
        bp.add_to(pm)
        if _elements(post):
            pm.add(_elements(post))
        try:
            pm.run(module.operation)
        except ir.MLIRError as e:
            if bp.error is not None:
                raise bp.error
            raise BatchingError(f"pass pipeline failed: {module_io.diagnostics(e)}") from None
    return module
