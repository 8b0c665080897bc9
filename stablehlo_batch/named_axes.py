"""vmap's ``axis_name``: collectives over the batch axis inside a batched function.

``export_named`` lowers the per-example function with the batch axis bound
as a mesh axis of an abstract mesh of B devices (``jax.shard_map`` over
``jax.sharding.AbstractMesh((B,), (name,))``: no devices needed), so that
``lax.psum(x, name)``, ``all_gather``, ``ppermute``, ``axis_index``, ... lower
to StableHLO collectives over those B devices. ``lanes_module`` then makes
the module an ordinary one-device module again: the ``sdy.manual_computation``
body becomes the body of @main, and every collective is marked as being
over the batch axis (the batching engine sends marked ops, and ops or calls
holding them, to their rules even when no operand is batched). The batching rewrite turns the marked ops into
batch-dimension ops (passes/rules/collectives.py): device k is lane k.

``spmd_to_batch`` offers the same on a module someone else wrote for N
devices with manual collectives (a shard_map program).
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import jax
from jax import tree_util
from jaxlib.mlir import ir

from passes.rules.collectives import LANE_ATTR, LANES_ATTR
from stablehlo_batch import module_io

# Ops whose meaning depends on the device, hence on the lane.
COLLECTIVES = frozenset({
    "stablehlo.all_reduce", "stablehlo.all_gather", "stablehlo.all_to_all",
    "stablehlo.reduce_scatter", "stablehlo.collective_permute",
    "stablehlo.collective_broadcast", "stablehlo.partition_id"})


def check_axis_name(axis_name) -> None:
    if axis_name is None:
        return
    if isinstance(axis_name, (tuple, list)):
        raise TypeError("batch_lower binds one axis name per batch axis; nest calls for "
                        f"several names, got axis_name={axis_name!r}")
    try:
        hash(axis_name)
    except TypeError:
        raise TypeError(f"axis_name must be hashable, got {axis_name!r}") from None


def export_named(fn: Callable, args, kwargs, axis_name, size, platform: str
                 ) -> jax.export.Exported:
    """``jax.export`` of ``jax.jit(fn)`` for one example, with ``axis_name``
    bound to a batch of ``size`` lanes; its module is ``lanes_module``'s."""
    if not isinstance(size, int):
        raise ValueError(f"axis_name={axis_name!r} needs a static batch size: collectives "
                         "over a symbolic axis_size are not supported")
    mesh = jax.sharding.AbstractMesh((size,), (axis_name,))
    P = jax.sharding.PartitionSpec

    def per_device(*leaves):
        a, k = tree_util.tree_unflatten(in_tree, leaves)
        return fn(*a, **k)

    # Every value is whole on every device (P()); the manual body then sees
    # exactly the per-example function. check_vma=False: jax.vmap tracks no
    # varying-ness either, and psum of a replicated value is B times it there.
    sm = jax.shard_map(per_device, mesh=mesh, in_specs=P(), out_specs=P(),
                       check_vma=False)

    def wrapper(*a, **k):
        return sm(*tree_util.tree_leaves((a, k)))

    in_tree = tree_util.tree_structure((args, kwargs))
    exp = jax.export.export(jax.jit(wrapper), platforms=(platform,))(*args, **kwargs)
    module = module_io.parse_module(exp.mlir_module_serialized)
    lanes_module(module, size)
    return dataclasses.replace(
        exp, mlir_module_serialized=module_io.module_to_portable_artifact(module),
        nr_devices=1, _get_vjp=None)


def lanes_module(module: ir.Module, size: int, func: str = "main") -> ir.Module:
    """Rewrites in place a module whose @``func`` runs one ``sdy.manual_computation``
    over a mesh axis of ``size`` devices (or is plain SPMD code with
    collectives) into a one-device module whose collectives are marked as
    over the batch axis. Returns ``module``."""
    with module.context, ir.Location.unknown(module.context):
        _inline_manual_computations(module, func)
        _drop_sdy(module)
        marked = [0]

        def mark(op):
            if op.name in COLLECTIVES:
                op.attributes[LANE_ATTR] = ir.UnitAttr.get()
                marked[0] += 1
            return ir.WalkResult.ADVANCE

        module.operation.walk(mark)
        attrs = module.operation.attributes
        attrs[LANES_ATTR] = ir.IntegerAttr.get(ir.IntegerType.get_signless(64), size)
        for name in ("mhlo.num_partitions", "mhlo.num_replicas"):
            if name in attrs:
                attrs[name] = ir.IntegerAttr.get(ir.IntegerType.get_signless(32), 1)
    return module


def _inline_manual_computations(module: ir.Module, func: str):
    for top in module.body.operations:
        if top.operation.name != "func.func":
            continue
        ops = []
        top.operation.walk(lambda o: (ops.append(o) if o.name == "sdy.manual_computation"
                                      else None) or ir.WalkResult.ADVANCE)
        for mc in ops:
            body = mc.regions[0].blocks[0]
            for arg, operand in zip(body.arguments, mc.operands):
                arg.replace_all_uses_with(operand)
            inner = [o.operation for o in body.operations]
            for o in inner[:-1]:
                o.move_before(mc)
            for r, v in zip(mc.results, inner[-1].operands):
                r.replace_all_uses_with(v)
            mc.erase()


def _drop_sdy(module: ir.Module):
    """Removes the mesh declarations and sharding attributes of the SPMD module."""
    for op in list(module.body.operations):
        if op.operation.name == "sdy.mesh":
            op.operation.erase()
    for op in module.body.operations:
        op = op.operation
        if op.name != "func.func":
            continue
        for key in ("arg_attrs", "res_attrs"):
            if key not in op.attributes:
                continue
            cleaned = []
            for d in ir.ArrayAttr(op.attributes[key]):
                d = ir.DictAttr(d)
                keep = {d[i].name: d[i].attr for i in range(len(d))
                        if not d[i].name.startswith(("sdy.", "mhlo.sharding"))}
                cleaned.append(ir.DictAttr.get(keep))
            op.attributes[key] = ir.ArrayAttr.get(cleaned)


def resolve_names(axis_name, spmd_axis_name, mesh, stacklevel: int = 3):
    """``batch_lower``'s two names: (the name collectives use, the mesh axis
    that ``mesh=`` splits the batch over).

    Until this release ``axis_name`` meant the mesh axis (vmap's
    ``spmd_axis_name``). With ``mesh=`` and no ``spmd_axis_name``, an
    ``axis_name`` that is an axis of the mesh is still read that way, with a
    DeprecationWarning, and also bound for collectives: ``jax.vmap`` with
    ``axis_name == spmd_axis_name`` means the same, so either reading of the
    call computes what its author meant."""
    import warnings
    check_axis_name(axis_name)
    if mesh is None:
        if spmd_axis_name is not None:
            raise ValueError("spmd_axis_name needs mesh= (the mesh its axis belongs to)")
        return axis_name, None
    if spmd_axis_name is None:
        names = getattr(mesh, "axis_names", ())
        if axis_name is not None and axis_name in names:
            warnings.warn(
                "batch_lower(mesh=..., axis_name=...) names the mesh axis the batch is split "
                "over: pass spmd_axis_name= for that (as jax.vmap does); axis_name will only "
                "name the batch axis for collectives in the next release",
                DeprecationWarning, stacklevel=stacklevel)
            return axis_name, axis_name
        return axis_name, "batch"
    return axis_name, spmd_axis_name
