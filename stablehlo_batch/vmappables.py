"""Custom vmappable types (``jax.interpreters.batching.register_vmappable``)
under ``batch_lower``, with jax.vmap's protocol.

jax.vmap calls a registered type's ``to_elt(cont, get_idx, value, spec)`` to
turn a batched value into its per-example element, where ``cont(data, axis)``
batches an array (or a nested vmappable) along ``axis``; and
``from_elt(cont, axis_size, elt, spec)`` to turn a per-example element back
into a batched value, where ``cont(axis_size, data, axis)`` puts the batch
axis of ``data`` at ``axis``. Here those become flat arrays of one batched
function:

- inputs: ``to_elt`` runs once outside the trace with a ``cont`` that records
  each ``(data, axis)`` as a batched argument of the flat function (and
  returns a ``ShapeDtypeStruct`` of the example); inside the trace the same
  ``to_elt`` runs again with a ``cont`` that returns the traced per-example
  argument recorded there (so what ``to_elt`` computes around ``cont`` is
  traced, as under vmap). ``get_idx()`` is the lane index (an ``iota``
  argument batched along 0).
- outputs: inside the trace ``from_elt`` runs with a ``cont`` that records
  each ``(data, axis)`` as a result (and returns a ``ShapeDtypeStruct`` of the
  batched shape); its return value, with those placeholders, is rebuilt
  after the batched call with the batched results in their place (through
  pytree nodes and object attributes).

The flat function is batched by a ``batch_lower`` of the same options
(``make_batched``), so every op inside is batched by the rewrite. A call
traces the flat function to a jaxpr (which also gives the output axes);
the batched function is kept in ``cache`` by that jaxpr's text, the avals
of its constants, the axes, the batch size and jax's trace configuration,
and its constants are passed as unbatched arguments: a later call with
other values of the same types reuses the plan (no export, no rewrite, no
compile), whatever values it closes over.
"""
from __future__ import annotations

import copy
from typing import Any, Callable

import jax
import numpy as np
from jax import tree_util

from stablehlo_batch import axes as ax
from stablehlo_batch import jax_internals


def involved(in_axes, out_axes, args, kwargs) -> bool:
    """Whether a call has a registered vmappable argument or axis spec."""
    if not jax_internals.vmappable_types():
        return False
    specs = {s for s, _ in jax_internals.vmappable_types().values()} - {int}
    if any(type(leaf) in specs for leaf in tree_util.tree_leaves((in_axes, out_axes))):
        return True
    return any(jax_internals.is_vmappable(x) for x in
               tree_util.tree_leaves((args, kwargs), is_leaf=jax_internals.is_vmappable))


def _example(data, axis):
    a = jax.typeof(data)
    return jax.ShapeDtypeStruct(a.shape[:axis] + a.shape[axis + 1:], a.dtype,
                                weak_type=a.weak_type)


def _output_error(x):
    return TypeError(f"Output from batched function {x!r} with type {type(x)} is not a "
                     "valid JAX type")


def substitute(obj, table: dict[int, Any], depth: int = 0):
    """``obj`` with every object whose id is in ``table`` replaced by its
    value, through pytree nodes and object attributes (copies, the
    original untouched)."""
    if id(obj) in table:
        return table[id(obj)]
    if depth > 16 or obj is None or isinstance(obj, (str, bytes, int, float, complex, type,
                                                        np.ndarray, jax.Array)):
        return obj
    children, tree = tree_util.tree_flatten(obj, is_leaf=lambda x: x is not obj)
    if not tree_util.treedef_is_leaf(tree):
        new = [substitute(c, table, depth + 1) for c in children]
        if all(n is c for n, c in zip(new, children)):
            return obj
        return tree_util.tree_unflatten(tree, new)
    names = list(getattr(obj, "__dict__", {}))
    for cls in type(obj).__mro__:
        slots = cls.__dict__.get("__slots__", ())
        names += [slots] if isinstance(slots, str) else list(slots)
    out = obj
    for name in names:
        if name in ("__dict__", "__weakref__") or not hasattr(obj, name):
            continue
        v = getattr(obj, name)
        nv = substitute(v, table, depth + 1)
        if nv is not v:
            if out is obj:
                out = copy.copy(obj)
            object.__setattr__(out, name, nv)
    return out


def call(fn: Callable, in_axes, out_axes, axis_size, args, kwargs,
         make_batched: Callable, what: str = "batch_lower", cache=None):
    """``fn`` batched like ``jax.vmap(fn, in_axes, out_axes, axis_size=...)``
    over arguments with registered vmappable types; ``make_batched(g,
    in_axes, out_axes, axis_size)`` batches the flat function ``g``;
    ``cache`` (a dict-like with ``get``) keeps those batched functions."""
    if isinstance(in_axes, tuple) and len(in_axes) != len(args):
        raise ValueError(
            f"{what} in_axes must be an int, None, or a tuple of entries corresponding "
            "to the positional arguments passed to the function, "
            f"but got len(in_axes)={len(in_axes)}, len(args)={len(args)}")
    leaves, in_tree = tree_util.tree_flatten((args, kwargs), is_leaf=jax_internals.is_vmappable)
    dims = ax.flatten_axes(f"{what} in_axes", in_tree, (in_axes, 0))

    # ---- inputs: record what to_elt batches ----
    flat: list = []
    flat_dims: list = []
    examples: list = []
    needs_idx = []

    def record_idx():
        needs_idx.append(True)
        return jax.ShapeDtypeStruct((), np.int32)

    def record(data, axis):
        handler = jax_internals.to_elt_handler(type(data))
        if handler is not None:
            return handler(record, record_idx, data, axis)
        if axis is None:
            return data
        if type(axis) is not int:
            raise TypeError(f"{what} in_axes: axis spec {axis!r} for a value of type "
                            f"{type(data).__name__}, which is no registered vmappable type")
        rank = len(ax.aval_of(data).shape)
        if not -rank <= axis < rank:
            raise ValueError(f"{what} was requested to map a value of rank {rank} along "
                             f"axis {axis}")
        axis %= rank
        flat.append(data)
        flat_dims.append(axis)
        examples.append(_example(data, axis))
        return examples[-1]

    for x, d in zip(leaves, dims):
        handler = jax_internals.to_elt_handler(type(x))
        if handler is not None:
            handler(record, record_idx, x, d)
        else:
            if d is not None and type(d) is not int:
                raise TypeError(f"{what} in_axes: axis spec {d!r} for a value of type "
                                f"{type(x).__name__}, which is no registered vmappable type")
            flat.append(x)
            flat_dims.append(d)
            examples.append(None)  # an ordinary argument: the inner batch_lower handles it

    size = axis_size
    if size is None:
        for x, d in zip(flat, flat_dims):
            if d is not None and ax.is_jax_value(x) and not ax.is_static_scalar(x):
                shape = jax.typeof(x).shape
                if -len(shape) <= d < len(shape):
                    size = shape[d]
                    break
    if needs_idx:
        if size is None:
            raise ValueError(f"{what}: get_idx needs the batch size: pass axis_size")
        flat.insert(0, jax.numpy.arange(size, dtype=np.int32))
        flat_dims.insert(0, 0)
        examples.insert(0, jax.ShapeDtypeStruct((), np.int32))
    n_idx = 1 if needs_idx else 0

    # ---- the flat function: to_elt replayed, fn, from_elt recorded ----
    traced: dict = {}

    def flat_fn(*flat_in):
        it = iter(flat_in[n_idx:])
        idx = flat_in[0] if n_idx else None

        def get_idx():
            if idx is None:
                raise ValueError(f"{what}: get_idx was not asked for by to_elt before")
            return idx

        def replay(data, axis):
            handler = jax_internals.to_elt_handler(type(data))
            if handler is not None:
                return handler(replay, get_idx, data, axis)
            return data if axis is None else next(it)

        elts = []
        for x, d in zip(leaves, dims):
            handler = jax_internals.to_elt_handler(type(x))
            elts.append(next(it) if handler is None else handler(replay, get_idx, x, d))
        a, k = tree_util.tree_unflatten(in_tree, elts)
        out = fn(*a, **k)
        out_leaves, out_tree = tree_util.tree_flatten(out, is_leaf=jax_internals.is_vmappable)
        odims = ax.flatten_axes(f"{what} out_axes", out_tree, out_axes)
        results, res_dims, built, placeholders = [], [], [], {}

        def record_out(n, data, axis):
            handler = jax_internals.from_elt_handler(type(data))
            if handler is not None:
                return handler(record_out, n, data, axis)
            if not ax.is_jax_value(data):
                raise _output_error(data)
            if axis is not None and type(axis) is not int:
                raise TypeError(f"{what} out_axes: axis spec {axis!r} for an array")
            a = jax.typeof(data)
            ph = jax.ShapeDtypeStruct(ax.insert_batch(a.shape, axis, n), a.dtype)
            placeholders[id(ph)] = (len(results), ph)
            results.append(data)
            res_dims.append(axis)
            return ph

        for y, d in zip(out_leaves, odims):
            handler = jax_internals.from_elt_handler(type(y))
            if handler is not None:
                built.append(("custom", handler(record_out, size, y, d)))
            else:
                if y is not None and not ax.is_jax_value(y):
                    raise _output_error(y)
                if d is not None and type(d) is not int:
                    raise TypeError(f"{what} out_axes: axis spec {d!r} for a value of type "
                                    f"{type(y).__name__}, which is no registered vmappable type")
                built.append(("array", len(results)))
                results.append(y)
                res_dims.append(d)
        traced["last"] = (out_tree, built, placeholders, tuple(res_dims))
        return tuple(results)

    # One trace at the example shapes for the output axes (statics as they are).
    dyn = [i for i, (x, d) in enumerate(zip(flat, flat_dims))
           if not (d is None and (ax.is_static_scalar(x) or not ax.is_jax_value(x)))]

    def dyn_fn(*dyn_in):
        full = list(flat)
        for i, v in zip(dyn, dyn_in):
            full[i] = v
        return flat_fn(*full)

    specs = []
    for i in dyn:
        if examples[i] is not None:
            specs.append(examples[i])
            continue
        x, d = flat[i], flat_dims[i]
        a = ax.aval_of(x)
        if d is not None:
            if not -len(a.shape) <= d < len(a.shape):
                raise ValueError(f"{what} was requested to map a value of rank "
                                 f"{len(a.shape)} along axis {d}")
            d %= len(a.shape)
        specs.append(jax.ShapeDtypeStruct(a.shape if d is None else
                                          a.shape[:d] + a.shape[d + 1:], a.dtype,
                                          weak_type=a.weak_type))
    closed = jax.make_jaxpr(dyn_fn)(*specs)
    out_tree, built, placeholders, res_dims = traced["last"]

    consts = list(closed.consts)
    dyn_dims = tuple(flat_dims[i] for i in dyn)
    key = (str(closed.jaxpr), tuple(jax.typeof(c) for c in consts), dyn_dims, res_dims,
           axis_size, jax_internals.trace_context())
    batched = None if cache is None else cache.get(key)
    if batched is None:
        jaxpr, n = closed.jaxpr, len(consts)

        def replay(*xs):  # the flat function, its constants as arguments
            return tuple(jax.core.eval_jaxpr(jaxpr, xs[:n], *xs[n:]))
        batched = make_batched(replay, (None,) * n + dyn_dims, res_dims, axis_size)
        if cache is not None:
            cache[key] = batched
    results = batched(*consts, *(flat[i] for i in dyn))
    table = {pid: results[j] for pid, (j, _) in placeholders.items()}
    outs = [results[b[1]] if b[0] == "array" else substitute(b[1], table) for b in built]
    return tree_util.tree_unflatten(out_tree, outs)
