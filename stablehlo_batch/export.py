"""jax.export artifacts in and out (public API).

``batch_exported`` turns a ``jax.export.Exported`` (or its serialized bytes)
into a new ``Exported`` of the batched function: it serializes, and a process
with only jax installed can deserialize and call it; its VJP is itself a
batched module, so ``jax.grad`` through the batched call works. ``vmappable``
wraps an ``Exported`` so that its call works under ``jax.vmap`` (jax has no
batching rule for ``call_exported``): the batching rule batches the module
with our rewrite. Both are built on the flat export core,
stablehlo_batch/flat.py.
"""
from __future__ import annotations

import functools
import weakref
from typing import Any

import jax
from jax import tree_util

from stablehlo_batch.passes.rules import RULES
from stablehlo_batch import axes as ax
from stablehlo_batch import jax_internals
from stablehlo_batch import named_axes
from stablehlo_batch import tuning
from stablehlo_batch.flat import batch_flat, is_symbolic, load, symbolic_size


def batch_exported(exp, in_axes=0, out_axes=0, *, axis_size, axis_name=None, tune=None,
                   tune_args=None) -> jax.export.Exported:
    """The batched function of ``exp`` (an ``Exported`` or serialized bytes) as a
    new ``Exported``, like ``jax.export.export(jax.jit(jax.vmap(f, in_axes,
    out_axes)))`` of the original ``f``.

    ``in_axes`` is a vmap-style prefix of the positional arguments (keyword
    arguments are batched along 0), ``out_axes`` a prefix of the results.
    ``axis_size`` is the batch size, or a name such as ``"b"`` for one
    artifact that runs at every batch size (shape polymorphism).
    ``tune=None`` (the default) lets the static cost model
    (stablehlo_batch/costmodel.py) pick a loop over lanes or chunks of lanes
    where one reliably pays, as ``batch_lower``'s default does -- only for an
    artifact exported for the CPU alone: the model's thresholds were
    measured on XLA:CPU, so an artifact for other platforms, or for several
    (``platforms=("cpu", "cuda")``), keeps the full batch, as do a symbolic
    ``axis_size``, ``axis_name`` and functions with effects.
    ``tune=False`` always gives the full batch (``jax.vmap``'s program).
    ``tune=True`` (or chunk sizes to try) measures on this machine whether a
    loop over chunks of lanes beats the full batch, as ``batch_lower`` does,
    on ``tune_args`` (the batched positional arguments) or on random ones.
    ``strategy_of(result)`` says what was chosen and why.

    ``axis_name``: ``exp`` was lowered inside ``jax.shard_map`` over a mesh
    axis of that name and ``axis_size`` devices, every value replicated
    (``in_specs=P()``, ``out_specs=P()``); its collectives over the axis then
    compute across the batch, as under ``jax.vmap(f, axis_name=...)``
    (docs/named-axes.md)."""
    exp = load(exp)
    in_axes = ax.canonicalize_in_axes(in_axes)
    ax.check_out_axes(out_axes)
    if axis_size is None:
        raise ValueError("batch_exported needs axis_size (an int or a name like 'b')")
    args_tree = exp.in_tree.children()[0]
    if isinstance(in_axes, tuple) and len(in_axes) != args_tree.num_leaves and \
            len(in_axes) != len(args_tree.children()):
        raise ValueError(f"batch_exported in_axes has {len(in_axes)} entries but the "
                         f"function takes {len(args_tree.children())} positional arguments")
    dims = ax.flatten_axes("batch_exported in_axes", exp.in_tree, (in_axes, 0))
    out_dims = ax.flatten_axes("batch_exported out_axes", exp.out_tree, out_axes)
    size = symbolic_size(axis_size)
    if not is_symbolic(size) and int(size) < 0:
        raise ValueError(f"axis_size must be >= 0, got {size}")
    if axis_name is not None:
        exp = named_axes.lanes_exported(exp, axis_name, size if not is_symbolic(size) else
                                        axis_size, "batch_exported")
    return batch_exported_with_choice(exp, dims, out_dims, size, tune, tune_args,
                                      coupled=axis_name is not None)[0].exported


def batch_exported_with_choice(exp, dims, out_dims, size, tune, tune_args=None, *,
                               coupled: bool = False, what: str = "batch_exported"):
    """``batch_exported``'s strategy choice on flat axes: ``(BatchedExport,
    tuning.TuningResult or None)`` (None: ``tune=False``, the full batch)."""
    if tune is not False and tune is not None:
        built, result = tuning.select_exported(exp, dims, out_dims, size, tune, tune_args,
                                               coupled=coupled, what=what)
    else:
        built = batch_flat(exp, dims, out_dims, size, what=what)
        result = None
        if tune is None:
            built, result = tuning.model_exported(exp, dims, out_dims, size, built,
                                                  coupled=coupled, what=what)
    try:
        _CHOICES[built.exported] = result
    except TypeError:  # an Exported with an unhashable field: no strategy_of
        pass
    return built, result


# What batch_exported chose for the Exported it returned (strategy_of).
_CHOICES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def strategy_of(exported: jax.export.Exported):
    """How ``batch_exported`` computed ``exported`` (a ``tuning.TuningResult``:
    ``choice`` None the full batch, 1 the lane loop, K chunks of K;
    ``source`` "model", "measured", "record", "fixed"; ``reason``), or None
    (``tune=False``, or not made by ``batch_exported`` in this process).
    ``print(strategy_of(exported))`` for the text."""
    try:
        return _CHOICES.get(exported)
    except TypeError:
        return None


# ---- jax.vmap of an Exported ---------------------------------------------------

@functools.lru_cache(maxsize=256)
def _batched_for(exp: jax.export.Exported, pattern: tuple[bool, ...],
                 size: int, rules: tuple) -> jax.export.Exported:
    # ``rules``: the rule table's generation, so new rules mean a new module.
    dims = [0 if b else None for b in pattern]
    return batch_flat(exp, dims, [0] * len(exp.out_avals), size,
                      what="vmappable").exported


@functools.lru_cache(maxsize=64)
def _vjp_of(exp: jax.export.Exported):
    return vmappable(exp.vjp())


def vmappable(exp, *, axis_name=None) -> Any:
    """A function calling ``exp`` (an ``Exported`` or its bytes) that also works
    under ``jax.vmap`` (nested too), ``jax.jit`` and ``lax.map``: vmap's
    batching rule batches the module with our rewrite, keeping arguments that
    vmap does not batch unbatched.

    ``axis_name``: ``exp`` was lowered inside ``jax.shard_map`` over a mesh
    axis of that name, every value replicated (see ``batch_exported``); under
    ``jax.vmap`` its collectives compute across the vmapped axis, whose size
    must be the mesh axis' size."""
    exp = load(exp)
    if axis_name is not None:
        named_axes.check_axis_name(axis_name)

    @jax.custom_batching.custom_vmap
    def call_flat(*flat):
        # Outside jax.vmap: the module as exported (with axis_name, jax
        # refuses to run it on fewer devices than its mesh has).
        args, kwargs = tree_util.tree_unflatten(exp.in_tree, flat)
        return tuple(tree_util.tree_flatten(exp.call(*args, **kwargs))[0])

    @call_flat.def_vmap
    @jax_internals.mark_rule_batches_like_body  # it batches this very module with the rewrite
    def rule(axis_size, in_batched, *flat):
        one = exp if axis_name is None else named_axes.lanes_exported(
            exp, axis_name, int(axis_size), "vmappable")
        bexp = _batched_for(one, tuple(bool(b) for b in in_batched), int(axis_size),
                            RULES.generation)
        # Under an outer vmap the batched call is batched again the same way.
        return vmappable(bexp).flat(*flat), (True,) * len(bexp.out_avals)

    if exp.has_vjp() and axis_name is None:
        # custom_vmap has no autodiff: gradients go through the exported VJP,
        # itself vmappable, so grad-of-vmap and vmap-of-grad both batch it.
        batched_call = call_flat

        @jax.custom_vjp
        def call_flat(*flat):
            return batched_call(*flat)

        def fwd(*flat):
            return batched_call(*flat), flat

        def bwd(flat, cts):
            return tuple(_vjp_of(exp).flat(*flat, *cts))

        call_flat.defvjp(fwd, bwd)

    def call(*args, **kwargs):
        flat, tree = tree_util.tree_flatten((args, kwargs))
        if tree != exp.in_tree:
            return exp.call(*args, **kwargs)  # jax's own error message
        return tree_util.tree_unflatten(exp.out_tree, list(call_flat(*flat)))

    call.flat = call_flat
    call.exported = exp
    return call
