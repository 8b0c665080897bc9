"""The CLI's ``--check``: batch a module, run it and the unbatched module once
per lane on the same inputs (an ``.npz``, else random ones) and compare; a
mismatch raises ``BatchMismatchError`` with a minimal reproducer
(stablehlo_batch/selfcheck.py finds the first op that differs).
"""
from __future__ import annotations

import numpy as np
from jax import tree_util

from stablehlo_batch import axes as ax
from stablehlo_batch import levels as lv
from stablehlo_batch import module_io
from stablehlo_batch.api import batch_module
from stablehlo_batch.passes.errors import BatchingError
from stablehlo_batch.selfcheck import (BatchMismatchError, Setup, close, diagnose, parse,
                                       per_lane, per_lane_levels, random_array, run_module,
                                       running, tensor_avals, text_of, x64_scope)


def load_inputs(path: str) -> list[np.ndarray]:
    """Inputs from an .npz: arr_0, arr_1, ... (np.savez order) or any names in order."""
    with np.load(path) as z:
        names = list(z.files)
        if all(n.startswith("arr_") for n in names):
            names.sort(key=lambda n: int(n[4:]))
        return [z[n] for n in names]



def _flat_levels(levels, arg_avals, n_res) -> list[tuple[list, list, int]]:
    """Per level, outer first: in_axes made non-negative for the rank the
    arguments have at that level, flat out_axes, size."""
    ranks = [len(a.shape) for a in arg_avals]
    flat = []
    for level in reversed(levels):  # innermost first: ranks grow outwards
        ins = [None if d is None else d % (r + 1)
               for d, r in zip(ax.flat_axes(level.in_axes, len(ranks)), ranks)]
        ranks = [r + (d is not None) for r, d in zip(ranks, ins)]
        flat.append((ins, ax.flat_axes(level.out_axes, n_res), level.size))
    return flat[::-1]


def _batched_shape(shape, levels, i) -> list[int]:
    shape = list(shape)
    for ins, _, size in reversed(levels):
        if ins[i] is not None:
            shape.insert(ins[i], size)
    return shape


def check_module(text: str, in_axes, out_axes, size, inputs=None, *,
                 func: str = "main", batched_text: str | None = None, rtol=1e-5,
                 atol=1e-5, directory: str | None = None, seed: int = 0,
                 what: str = "--check") -> list:
    """Runs the batched module (``batched_text``, else batches ``text``) and the
    unbatched one once per lane on ``inputs`` (random when None); raises
    BatchMismatchError with a reproducer when they differ. Returns the inputs.
    ``size`` may be a tuple (several batch dimensions, stablehlo_batch/levels.py).
    Every other failure is a BatchingError whose message starts with ``what``
    and says which step failed."""
    multi = lv.is_multi(size)
    level_list = (lv.split(in_axes, out_axes, size) if multi
                  else [lv.Level(in_axes, out_axes, size)])
    for level in level_list:
        if not isinstance(level.size, (int, np.integer)):
            raise BatchingError(f"{what} needs a numeric batch size, got {level.size!r}")
    m = parse(text)
    block = module_io.func_block(m, func)
    n_args, n_res = len(block.arguments), len(list(block.operations)[-1].operands)
    arg_avals = running(f"{what}: reading the arguments of @{func}", tensor_avals,
                         [a.type for a in block.arguments])
    flat = _flat_levels(level_list, arg_avals, n_res)
    text = text_of(m)
    if inputs is None:
        rng = np.random.default_rng(seed)
        inputs = [random_array(rng, _batched_shape(a.shape, flat, i), np.dtype(a.dtype))
                  for i, a in enumerate(arg_avals)]
    inputs = [np.asarray(a) for a in inputs]
    if len(inputs) != n_args:
        raise BatchingError(f"{what} got {len(inputs)} inputs but @{func} takes {n_args}")
    for i, (x, a) in enumerate(zip(inputs, arg_avals)):
        shape = _batched_shape(a.shape, flat, i)
        if list(x.shape) != shape or x.dtype != a.dtype:
            axes = [ins[i] for ins, _, _ in flat]
            where = ("nowhere" if axes == [None] * len(axes) else
                     f"at axis {axes[0]}" if not multi else f"at axes {axes}")
            raise BatchingError(
                f"{what}: input {i} is {x.dtype}{list(x.shape)}, but argument {i} of "
                f"@{func} batched {where} takes {np.dtype(a.dtype)}{shape}")
    batched = batched_text or batch_module_text(text, func, in_axes, out_axes, size)
    got = running(f"{what}: running the batched module", run_module, batched, inputs, func)
    want = running(f"{what}: running the input module once per lane", per_lane_levels,
                    text, inputs, flat, func)
    bad = [j for j, (g, w) in enumerate(zip(got, want)) if not close(g, w, rtol, atol)]
    if bad and multi:
        _diagnose_levels(text, func, level_list, bad, what, rtol, atol, directory, seed)
    if bad:
        (ins, outs, n), = flat
        s = Setup(text, func, inputs, ins, outs, n, rtol, atol)
        diagnose(s, f"{what} failed", bad, directory)
    return inputs


def _diagnose_levels(text, func, level_list, bad, what, rtol, atol, directory, seed):
    """Checks one batch dimension at a time, innermost first, on the module
    batched at the dimensions inside it: the first that differs raises with
    its reproducer."""
    for k in reversed(range(len(level_list))):
        level = level_list[k]
        check_module(text, level.in_axes, level.out_axes, level.size, func=func,
                     rtol=rtol, atol=atol, directory=directory, seed=seed,
                     what=f"{what} (batch dimension {k}, size {level.size})")
        text = batch_module_text(text, func, level.in_axes, level.out_axes, level.size)
    outs = ", ".join(str(j) for j in bad)
    raise BatchMismatchError(
        f"{what} failed: the module batched at sizes {[lv.size for lv in level_list]} "
        f"differs from the unbatched one run per lane (results {outs}), but each batch "
        f"dimension alone matches on random inputs")



def check_exported(original, batched, in_axes, out_axes, size, inputs=None, *,
                   rtol=1e-5, atol=1e-5, seed: int = 0, what: str = "--check") -> list:
    """For exported functions (the CLI's ``--check`` on a ``.jax_exported``):
    ``batched.call`` against ``original.call`` run per lane, on flat inputs
    (random when None). Axes are flat per leaf, or per level for several
    batch dimensions, as ``check_module`` takes them."""
    level_list = (lv.split(in_axes, out_axes, size) if lv.is_multi(size)
                  else [lv.Level(in_axes, out_axes, size)])
    for level in level_list:
        if not isinstance(level.size, (int, np.integer)):
            raise BatchingError(f"{what} needs a numeric batch size, got {level.size!r}")
    avals = list(original.in_avals)
    if any(not all(isinstance(d, int) for d in a.shape) for a in avals):
        raise BatchingError(f"{what} cannot run a shape-polymorphic exported function")
    flat = _flat_levels(level_list, avals, len(original.out_avals))
    if inputs is None:
        rng = np.random.default_rng(seed)
        inputs = [random_array(rng, _batched_shape(a.shape, flat, i), np.dtype(a.dtype))
                  for i, a in enumerate(avals)]

    def call(exp, leaves):
        args, kwargs = tree_util.tree_unflatten(exp.in_tree, list(leaves))
        with x64_scope(list(exp.in_avals) + list(exp.out_avals)):
            return [np.asarray(r) for r in tree_util.tree_leaves(exp.call(*args, **kwargs))]

    def lanes(leaves, levels):
        if not levels:
            return call(original, leaves)
        (ins, outs, n), inner = levels[0], levels[1:]
        return per_lane("", leaves, ins, outs, n, run=lambda lane: lanes(lane, inner))
    got = running(f"{what}: running the batched function", call, batched, inputs)
    want = running(f"{what}: running the exported function once per lane", lanes,
                    inputs, flat)
    bad = [j for j, (g, w) in enumerate(zip(got, want)) if not close(g, w, rtol, atol)]
    if bad:
        raise BatchMismatchError(
            f"{what} failed: the batched function differs from the exported one run "
            f"once per lane (results {', '.join(map(str, bad))}, batch size {size}); "
            f"batch its module (exp.mlir_module()) with --check to find the op")
    return inputs


def batch_module_text(text, func, in_axes, out_axes, size):
    return batch_module(text, in_axes, out_axes, size, func=func, debug_info=True)
