"""Helpers shared by the per-family differential tests.

* axis configurations spread over a family's cases, so that every family
  meets in_axes 0/1/-1/None, out_axes 0/1/-1 and batch sizes 1/3/8 without
  taking the full product for every op;
* ``x64(dtype)``: the ``jax.enable_x64`` scope a 64-bit dtype needs (around
  building the inputs *and* checking);
* ``check_module``: for ops jax never emits (``stablehlo.logistic``,
  ``chlo.is_inf``, ``chlo.broadcast_*`` ...), batches a hand-written module
  with ``batch_module`` and compares it with the unbatched module run once
  per example and stacked, i.e. vmap as a loop.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
from jaxlib.mlir import ir

import stablehlo_batch as sb
from conftest import assert_same_tree, check_vmap, random_array
from stablehlo_batch import module_io

SIZES = (1, 3, 8)
IN_AXES = (0, 1, -1, None)
OUT_AXES = (0, 1, -1)

# (in_axis, out_axis, batch size) for one-operand cases; None means nothing
# is batched and axis_size supplies the size.
UNARY_CONFIGS = list(itertools.product(IN_AXES, OUT_AXES, SIZES))
# (in_axes pair, out_axis, size) for two-operand cases: both batched, one of
# them batched, at different positions.
PAIRS = [(0, 0), (1, None), (None, -1), (-1, 1), (0, None), (None, 1), (1, -1), (-1, 0)]
BINARY_CONFIGS = list(itertools.product(PAIRS, OUT_AXES, SIZES))

_X64 = {jnp.dtype(d) for d in ("float64", "complex128", "int64", "uint64")}


def x64(*dtypes):
    """``jax.enable_x64(True)`` when any of ``dtypes`` is 64-bit, else a no-op."""
    if any(jnp.dtype(d) in _X64 for d in dtypes):
        return jax.enable_x64(True)
    return contextlib.nullcontext()


def dname(dtype) -> str:
    return jnp.dtype(dtype).name


def spread(cases, configs, step: int = 7):
    """Pairs case k with a config, walking ``configs`` with a stride coprime to
    its length so that neighbouring cases (same op, other dtype) differ."""
    n = len(configs)
    while np.gcd(step, n) != 1:
        step += 1
    return [(case, configs[(k * step) % n]) for k, case in enumerate(cases)]


def batched_shape(shape, axis, size):
    shape = list(shape)
    if axis is not None:
        shape.insert(axis % (len(shape) + 1), size)
    return tuple(shape)


def make(rng, shape, dtype, axis, size):
    """A random input of per-example ``shape`` carrying ``size`` at ``axis``."""
    return random_array(rng, batched_shape(shape, axis, size), dtype)


def axis_size_for(in_axes, size):
    """axis_size to pass when nothing is batched (vmap needs it then)."""
    axes = in_axes if isinstance(in_axes, (tuple, list)) else (in_axes,)
    return size if all(a is None for a in axes) else None


def rotated_axes(k, shapes, in_axes=None):
    """in_axes for per-example argument ``shapes``, rotated by case number k
    (a rank-0 argument takes 0 / -1 / None); an explicit entry wins."""
    axes = []
    for j, shape in enumerate(shapes):
        if in_axes is not None and in_axes[j] != "rot":
            axes.append(in_axes[j])
            continue
        opts = IN_AXES if len(shape) else (0, -1, None)
        axes.append(opts[(k + j) % len(opts)])
    return tuple(axes)


def rotated_out_axes(k, fn, args, in_axes):
    """out_axes (a pytree like fn's output) rotated by case number k, from the
    output ranks jax.eval_shape finds for one example."""
    specs = [jax.ShapeDtypeStruct(tuple(np.delete(a.shape, ax)) if ax is not None else a.shape,
                                  a.dtype) for a, ax in zip(args, in_axes)]
    out = jax.eval_shape(fn, *specs)
    leaves, tree = jax.tree_util.tree_flatten(out)
    axes = [OUT_AXES[(k + k // 3 + j) % 3] if len(leaf.shape) else (0, -1)[(k + j) % 2]
            for j, leaf in enumerate(leaves)]
    return jax.tree_util.tree_unflatten(tree, axes)


def check_case(rng, fn, shapes, dtypes, k, in_axes=None, **kw):
    """check_vmap of ``fn`` on random inputs of per-example ``shapes`` and
    ``dtypes`` (one per argument, or one for all), with in_axes, out_axes and
    batch size rotated by case number ``k``; "rot" entries of ``in_axes`` are
    rotated too."""
    if not isinstance(dtypes, (list, tuple)):
        dtypes = [dtypes] * len(shapes)
    size = SIZES[k % 3]
    axes = rotated_axes(k, shapes, in_axes)
    with x64(*dtypes):
        args = [make(rng, sh, dt, ax, size) for sh, dt, ax in zip(shapes, dtypes, axes)]
        out_axes = rotated_out_axes(k, fn, args, axes)
        return check_vmap(fn, *args, in_axes=axes, out_axes=out_axes,
                          axis_size=axis_size_for(axes, size), **kw)


# ---- small models shared by the export / symbolic tests ---------------------
def mlp(params, x):
    for w, b in params:
        x = jnp.tanh(x @ w + b)
    return x


def newton_sqrt(x, tol):
    """A while loop whose trip count depends on the data."""
    def cond(c):
        y, i = c
        return (jnp.max(jnp.abs(y * y - x)) > tol) & (i < 50)

    def body(c):
        y, i = c
        return 0.5 * (y + x / y), i + 1
    return jax.lax.while_loop(cond, body, (x + 1.0, 0))


# ---- hand-written modules ---------------------------------------------------
_ELEM = {"f16": jnp.float16, "bf16": jnp.bfloat16, "f32": jnp.float32,
         "f64": jnp.float64, "i1": jnp.bool_, "i8": jnp.int8, "i16": jnp.int16,
         "i32": jnp.int32, "i64": jnp.int64, "ui8": jnp.uint8, "ui16": jnp.uint16,
         "ui32": jnp.uint32, "ui64": jnp.uint64, "complex<f32>": jnp.complex64,
         "complex<f64>": jnp.complex128}


def _signature(text):
    module = module_io.parse_module(text)
    main = ir.SymbolTable(module.operation)["main"]
    ftype = ir.FunctionType(ir.TypeAttr(main.attributes["function_type"]).value)

    def sds(t):
        rt = ir.RankedTensorType(t)
        return jax.ShapeDtypeStruct(tuple(rt.shape), _ELEM[str(rt.element_type)])
    return module, [sds(t) for t in ftype.inputs], [sds(t) for t in ftype.results]


@functools.lru_cache(maxsize=64)
def compile_module(text):
    """@main of a module given as text, as a jitted callable returning a list."""
    module, ins, outs = _signature(text)
    template = jax.export.export(jax.jit(
        lambda *a: tuple(jnp.zeros(o.shape, o.dtype) for o in outs)))(*ins)
    exported = dataclasses.replace(
        template, mlir_module_serialized=module_io.module_to_portable_artifact(module),
        module_kept_var_idx=tuple(range(len(ins))), _get_vjp=None)
    call = jax.jit(exported.call)

    def run(*args):
        assert [(a.shape, a.dtype) for a in ins] == [
            (jnp.shape(a), jnp.asarray(a).dtype) for a in args]
        return list(call(*args))
    return run


def run_module(text, *args):
    """Runs @main of a module given as text; returns the list of its results."""
    return compile_module(text)(*args)


def check_module(text, args, in_axes, out_axes, size, **tol):
    """``batch_module(text)`` agrees with the unbatched module run per example."""
    got = run_module(sb.batch_module(text, in_axes, out_axes, size), *args)
    per_example = []
    for i in range(size):
        # numpy slicing and stacking: eager jnp ops would compile per shape
        ex = [a if ax is None else jnp.asarray(np.take(np.asarray(a), i, axis=ax))
              for a, ax in zip(args, in_axes)]
        per_example.append(run_module(text, *ex))
    want = [jnp.asarray(np.stack([np.asarray(res[j]) for res in per_example], axis=ax))
            for j, ax in enumerate(out_axes)]
    assert_same_tree(got, want, **tol)
    return got
