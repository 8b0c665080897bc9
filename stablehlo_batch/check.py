"""The CLI's ``--check``: batch a module, run it and the unbatched module once
per lane on the same inputs (an ``.npz``, else random ones) and compare; a
mismatch raises ``BatchMismatchError`` with a minimal reproducer
(stablehlo_batch/selfcheck.py finds the first op that differs).
"""
from __future__ import annotations

import numpy as np
from jaxlib.mlir import ir

from stablehlo_batch import axes as ax
from stablehlo_batch import module_io
from stablehlo_batch.api import batch_module
from stablehlo_batch.passes.errors import BatchingError
from stablehlo_batch.selfcheck import (Setup, close, diagnose, entry_op, parse, per_lane,
                                       run_module, tensor_specs, text_of)


def _random_inputs(text, func, in_axes, size, seed=0):
    m = parse(text)
    fop = entry_op(m, func)
    ftype = ir.FunctionType(ir.TypeAttr(fop.attributes["function_type"]).value)
    rng = np.random.default_rng(seed)
    out = []
    for a, d in zip(tensor_specs(ftype.inputs), in_axes):
        shape = ax.insert_batch(a.shape, d, size)
        dt = np.dtype(a.dtype)
        if dt == np.bool_:
            v = rng.random(shape) > 0.5
        elif np.issubdtype(dt, np.integer):
            v = rng.integers(0 if np.issubdtype(dt, np.unsignedinteger) else -5, 5, shape)
        elif np.issubdtype(dt, np.complexfloating):
            v = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
        else:
            v = rng.standard_normal(shape)
        out.append(np.asarray(v).astype(dt))
    return out


def load_inputs(path: str) -> list[np.ndarray]:
    """Inputs from an .npz: arr_0, arr_1, ... (np.savez order) or any names in order."""
    with np.load(path) as z:
        names = list(z.files)
        if all(n.startswith("arr_") for n in names):
            names.sort(key=lambda n: int(n[4:]))
        return [z[n] for n in names]


def check_module(text: str, in_axes, out_axes, size: int, inputs=None, *,
                 func: str = "main", batched_text: str | None = None, rtol=1e-5,
                 atol=1e-5, directory: str | None = None, seed: int = 0) -> list:
    """Runs the batched module (``batched_text``, else batches ``text``) and the
    unbatched one once per lane on ``inputs`` (random when None); raises
    BatchMismatchError with a reproducer when they differ. Returns the inputs."""
    if not isinstance(size, (int, np.integer)):
        raise BatchingError(f"--check needs a numeric batch size, got {size!r}")
    m = parse(text)
    block = module_io.func_block(m, func)
    n_args, n_res = len(block.arguments), len(list(block.operations)[-1].operands)
    in_axes, out_axes = ax.flat_axes(in_axes, n_args), ax.flat_axes(out_axes, n_res)
    in_axes = [ax.batch_position(d, len(spec.shape))
               for spec, d in zip(tensor_specs([a.type for a in block.arguments]), in_axes)]
    text = text_of(m)
    if inputs is None:
        inputs = _random_inputs(text, func, in_axes, size, seed)
    inputs = [np.asarray(a) for a in inputs]
    if len(inputs) != n_args:
        raise BatchingError(f"--check got {len(inputs)} inputs but @{func} takes {n_args}")
    s = Setup(text, func, inputs, in_axes, out_axes, size, rtol, atol)
    batched = batched_text or batch_module(text, in_axes, out_axes, size, func=func,
                                           debug_info=True)
    got = run_module(batched, inputs, func)
    want = per_lane(text, inputs, in_axes, out_axes, size, func)
    bad = [j for j, (g, w) in enumerate(zip(got, want)) if not close(g, w, rtol, atol)]
    if bad:
        diagnose(s, "self-check failed", bad, directory)
    return inputs
