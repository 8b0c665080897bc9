"""Rewrites that make XLA run a module as the StableHLO spec says.

Applied to a module before it is batched (``batch_module``) and before the
self-check runs one (``check.run_module``), so the batched module, the
per-lane reference and the user's later runs all agree:

- ``rng_bit_generator`` with a floating-point output: the spec fills the
  output with random bits; XLA's translation to HLO instead gives the result
  the unsigned integer type of the same width (an ``f64`` output comes back
  as ``u64``), which breaks every op that uses it as a float (a per-lane loop
  writing it into an ``f64`` buffer fails to compile with "Dynamic update
  slice update element type does not match"). It becomes the integer
  generator followed by ``bitcast_convert`` to the float type: the same bits,
  with the declared type.
"""
from __future__ import annotations

from jaxlib.mlir import ir


def _float_rng_outputs(op: ir.Operation) -> bool:
    if op.name != "stablehlo.rng_bit_generator":
        return False
    t = ir.RankedTensorType(op.results[1].type)
    return not isinstance(t.element_type, ir.IntegerType)


def _bits_generator(op: ir.Operation):
    out = ir.RankedTensorType(op.results[1].type)
    with ir.InsertionPoint(op), op.location:
        bits = ir.RankedTensorType.get(
            out.shape, ir.IntegerType.get_unsigned(out.element_type.width))
        gen = ir.Operation.create(
            "stablehlo.rng_bit_generator", results=[op.results[0].type, bits],
            operands=list(op.operands),
            attributes={n: op.attributes[n] for n in op.attributes})
        value = ir.Operation.create("stablehlo.bitcast_convert", results=[out],
                                    operands=[gen.results[1]])
    op.results[0].replace_all_uses_with(gen.results[0])
    op.results[1].replace_all_uses_with(value.results[0])
    op.erase()


def legalize(module: ir.Module) -> ir.Module:
    """Rewrites ``module`` in place (see the module docstring); returns it."""
    found: list[ir.Operation] = []

    def visit(op):
        if _float_rng_outputs(op):
            found.append(op)
        return ir.WalkResult.ADVANCE
    module.operation.walk(visit)
    with module.context:
        for op in found:
            _bits_generator(op)
    return module
