"""in_axes / out_axes handling with jax.vmap's semantics and error kinds.

Axis specs are pytree prefixes of the arguments or outputs; here they are
checked, broadcast to one entry per leaf, and the batch size is inferred
(with vmap's message listing each argument's size when they disagree).
"""
from __future__ import annotations

import collections
import functools
import inspect
from typing import Any, Sequence

import jax
from jax import tree_util

from stablehlo_batch import jax_internals
from stablehlo_batch.passes.errors import AxisSpecError

NAME = "batch_lower"


def _spec_types() -> set:
    """The axis spec types of registered custom vmappable types
    (``jax.interpreters.batching.register_vmappable``; vmappables.py)."""
    return {spec for spec, _ in jax_internals.vmappable_types().values()}


def _is_axis(leaf) -> bool:
    return type(leaf) is int or type(leaf) in _spec_types()


def canonicalize_in_axes(in_axes):
    """Checks an in_axes spec the way vmap does; lists become tuples."""
    if isinstance(in_axes, list):
        in_axes = tuple(in_axes)
    if not (in_axes is None or type(in_axes) in (int, tuple) or type(in_axes) in _spec_types()):
        raise TypeError(f"{NAME} in_axes must be an int, None, or a tuple of entries "
                        "corresponding to the positional arguments passed to the "
                        f"function, but got {in_axes}.")
    if not all(_is_axis(leaf) for leaf in tree_util.tree_leaves(in_axes)):
        raise TypeError(f"{NAME} in_axes must be an int, None, or (nested) container "
                        f"with those types as leaves, but got {in_axes}.")
    return in_axes


def check_out_axes(out_axes):
    if not all(_is_axis(leaf) for leaf in tree_util.tree_leaves(out_axes)):
        raise TypeError(f"{NAME} out_axes must be an int, None, or (nested) container "
                        f"with those types as leaves, but got {out_axes}.")


class _Marker:
    __slots__ = ("index",)

    def __init__(self, index: int):
        self.index = index


def flatten_axes(what: str, treedef, axes) -> list[int | None]:
    """One axis entry per leaf of ``treedef``, broadcasting the prefix ``axes``."""
    markers = tree_util.tree_unflatten(
        treedef, [_Marker(i) for i in range(treedef.num_leaves)])
    flat: list[Any] = [None] * treedef.num_leaves

    def assign(axis, subtree):
        for m in tree_util.tree_leaves(subtree):
            flat[m.index] = axis

    try:
        tree_util.tree_map(assign, axes, markers, is_leaf=lambda x: x is None)
    except (ValueError, TypeError):
        raise ValueError(_prefix_error(what, treedef, axes)) from None
    return flat


def _prefix_error(what: str, treedef, axes) -> str:
    """jax.vmap's message for an axis spec that is no tree prefix: about the
    positional arguments only when the spec is ``(in_axes, 0)`` of
    ``(args, kwargs)``."""
    if what.endswith("in_axes") and treedef.num_nodes and len(treedef.children()) == 2 \
            and isinstance(axes, tuple) and len(axes) == 2:
        treedef, axes = treedef.children()[0], axes[0]
    details = jax_internals.prefix_error_details(what, axes, treedef)
    if not details:
        return (f"{what} specification must be a tree prefix of the corresponding "
                f"value, got specification {axes} for value tree {treedef}.")
    return (f"{what} specification must be a tree prefix of the corresponding value; "
            f"\n  Mismatch details ({len(details)} found):\n  " + "\n  ".join(details))


def _arg_names(fn, in_tree, leaves) -> list[str]:
    args, kwargs = tree_util.tree_unflatten(in_tree, leaves)
    try:
        params = list(inspect.signature(fn).bind(*args, **kwargs).signature.parameters)
    except (TypeError, ValueError):
        params = None

    def name(path):
        if path[0].idx == 0:  # positional arguments
            i = path[1].idx
            if params is None or i >= len(params):
                return f"args{tree_util.keystr(path[1:])}"
            rest = tree_util.keystr(path[2:])
            return f"argument {params[i]}{rest}"
        return f"kwargs{tree_util.keystr(path[1:])}"

    paths = [p for p, _ in tree_util.tree_flatten_with_path((args, kwargs))[0]]
    return [name(p) for p in paths]


def leaf_path(treedef, index: int, root: str) -> str:
    """``root`` followed by the key path of leaf ``index`` of ``treedef``."""
    dummy = tree_util.tree_unflatten(treedef, list(range(treedef.num_leaves)))
    path = tree_util.tree_flatten_with_path(dummy)[0][index][0]
    return f"{root}{tree_util.keystr(path)}"


def normalize_in_axes(fn, in_tree, shapes: Sequence[tuple], avals, dims,
                      axis_size: int | None) -> tuple[list[int | None], int]:
    """Resolves negative axes, checks ranks and returns (axes, batch size)."""
    resolved = []
    for i, (shape, d) in enumerate(zip(shapes, dims)):
        if d is None:
            resolved.append(None)
            continue
        if not -len(shape) <= d < len(shape):
            min_rank = d + 1 if d >= 0 else -d
            name = _arg_names(fn, in_tree, list(range(len(shapes))))[i]
            raise ValueError(  # vmap's text, then which argument
                f"{NAME} was requested to map its argument along axis {d}, which "
                f"implies that its rank should be at least {min_rank}, but is only "
                f"{len(shape)} (its shape is {tuple(shape)}) ({name})")
        resolved.append(d % len(shape))
    sizes = [None if d is None else shape[d] for shape, d in zip(shapes, resolved)]
    distinct = {s for s in sizes if s is not None}
    if axis_size is not None:
        distinct.add(int(axis_size))
    if len(distinct) == 1:
        return resolved, distinct.pop()
    if not distinct:
        if not shapes:
            args, kwargs = tree_util.tree_unflatten(in_tree, [None] * in_tree.num_leaves)
            raise ValueError(f"{NAME} wrapped function must be passed at least one "
                             "argument containing an array or axis_size must be specified, "
                             f"got empty *args={args} and **kwargs={kwargs}")
        raise ValueError(f"{NAME} must have at least one non-None value in in_axes "
                         "or axis_size must be specified")
    names = _arg_names(fn, in_tree, list(range(len(shapes))))
    described = [f"{n} of type {'unknown' if a is None else a.str_short()}"
                 for n, a in zip(names, avals)]
    counts = collections.Counter(s for s in sizes if s is not None).most_common()
    msg = [f"{NAME} got inconsistent sizes for array axes to be mapped:\n"]
    if axis_size is not None:
        msg.append(f"  * the `axis_size` argument was {axis_size};\n")
    for k, (sz, ct) in enumerate(counts):
        i = sizes.index(sz)
        if ct == 1:
            msg.append(f"  * one axis had size {sz}: axis {dims[i]} of {described[i]};\n")
        else:
            lead = "most axes" if k == 0 else "some axes"
            msg.append(f"  * {lead} ({ct} of them) had size {sz}, e.g. axis {dims[i]} "
                       f"of {described[i]};\n")
    raise ValueError("".join(msg)[:-2])


def avals_of(fn, in_tree, leaves, static: Sequence[bool] = ()) -> tuple:
    """The aval of each leaf (None for the ``static`` ones: non-arrays under
    ``in_axes=None``); any other leaf that is no JAX type is named by its path."""
    static = list(static) or [False] * len(leaves)
    out = []
    for i, (x, s) in enumerate(zip(leaves, static)):
        if s:
            out.append(None)
            continue
        try:
            out.append(aval_of(x))
        except TypeError:
            name = _arg_names(fn, in_tree, list(range(len(leaves))))[i]
            raise TypeError(f"{NAME} got {name} = {x!r} of type {type(x).__name__}, "
                            "which is not a valid JAX type") from None
    return tuple(out)


def is_jax_value(x) -> bool:
    """Whether ``x`` can be an argument of a jax function (an array, a
    scalar, a tracer, a typed key...)."""
    try:
        jax.typeof(x)
    except TypeError:
        return False
    return True


def checking_outputs(fn):
    """``fn`` whose results must be JAX values: anything else raises
    vmap's TypeError ("Output from batched function ..."), at trace time."""
    @functools.wraps(fn)
    def checked(*args, **kwargs):
        out = fn(*args, **kwargs)
        for leaf in tree_util.tree_leaves(out):
            if not is_jax_value(leaf):
                raise TypeError(f"Output from batched function {leaf!r} with type "
                                f"{type(leaf)} is not a valid JAX type")
        return out
    return checked


# Python scalars under in_axes=None reach fn as they are, as under jax.vmap
# (``jnp.tile(x, n)``, ``if training:``): they are static for the plan.
PYTHON_SCALARS = (bool, int, float, complex)


def is_static_scalar(x) -> bool:
    return type(x) in PYTHON_SCALARS


def aval_of(x) -> jax.core.ShapedArray:
    try:
        return jax.typeof(x)
    except TypeError:
        raise TypeError(f"Argument '{x}' of type {type(x)} is not a valid JAX type") from None


# ---- one batch axis in one value ------------------------------------------------

def batch_position(d: int | None, rank: int) -> int | None:
    """Where the batch axis ``d`` (possibly negative, None: unbatched) lands in
    the batched value, whose rank is ``rank + 1`` for an unbatched ``rank``."""
    return None if d is None else d % (rank + 1)


def batch_positions(what: str, avals, dims) -> list[int | None]:
    """``batch_position`` of every (unbatched aval, axis) pair, checking each
    axis against the rank (ValueError naming ``what[i]``)."""
    out = []
    for i, (a, d) in enumerate(zip(avals, dims)):
        r = len(a.shape)
        if d is not None and (type(d) is not int or not -r - 1 <= d <= r):
            raise ValueError(f"{what}[{i}]={d!r} is out of range for a value of rank {r}")
        out.append(batch_position(d, r))
    return out


def resolve_out_axes(what: str, out_tree, avals, dims) -> list:
    """``dims`` (one out_axes entry per flat result, possibly negative) as
    positions in each batched result, counted on the rank of the result's
    aval ``avals[j]`` (unbatched). The rewrite counts ranks on the IR, where
    a typed PRNG key has a hidden trailing dimension (its key data): given a
    negative axis or one past the key's rank it would move the batch axis
    among the key data. An axis out of range is jax.vmap's ValueError,
    naming the result by its pytree path in ``out_tree`` (None: by index).
    None and custom vmappable specs (no ints) stay as they are."""
    out = []
    for j, (a, d) in enumerate(zip(avals, dims)):
        if d is None or type(d) is not int:
            out.append(d)
            continue
        rank = len(a.shape) + 1
        if not -rank <= d < rank:
            path = (f"out_axes[{j}]" if out_tree is None
                    else leaf_path(out_tree, j, "out_axes"))
            raise ValueError(f"axis {d} is out of bounds for array of dimension {rank} "
                             f"(at {what} {path})")
        out.append(d % rank)
    return out


def insert_batch(shape: Sequence, d: int | None, size) -> tuple:
    """``shape`` with the batch axis of ``size`` inserted at ``d`` (None: as is)."""
    shape = list(shape)
    if d is not None:
        shape.insert(batch_position(d, len(shape)), size)
    return tuple(shape)


def unbatched_struct(a, d: int | None) -> jax.ShapeDtypeStruct:
    """The example (per-lane) spec of a batched aval ``a`` whose batch axis is
    ``d`` (non-negative; None: unbatched, kept as is)."""
    shape = a.shape if d is None else a.shape[:d] + a.shape[d + 1:]
    return jax.ShapeDtypeStruct(shape, a.dtype, weak_type=getattr(a, "weak_type", False))


def flat_axes(spec, n: int) -> list[int | None]:
    """One axis per flat value from a module-level spec: an int or None for all
    ``n`` values, else a sequence of ints / None (AxisSpecError otherwise)."""
    if spec is None or isinstance(spec, int):
        return [spec] * n
    spec = list(spec)
    for a in spec:
        if a is not None and type(a) is not int:
            raise AxisSpecError(f"axes must be ints or None, got {a!r}")
    return spec
