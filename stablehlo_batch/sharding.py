"""The batch axis across devices: the analogue of vmap's ``spmd_axis_name`` for
IR we did not write.

``shard_flat`` batches the module, then exports it again under
``jax.jit(in_shardings=, out_shardings=)`` with ``NamedSharding``s that put
the batch axis of every batched argument and result on the mesh axis
``axis_name`` (unbatched ones are replicated). The resulting ``Exported``
carries those shardings and ``nr_devices``, so XLA's SPMD partitioner splits
the batch over the devices; serialized, it keeps them. The same works across
hosts: after ``jax.distributed.initialize()`` a ``Mesh`` over
``jax.devices()`` spans every process.
"""
from __future__ import annotations

import jax
from jax import tree_util
from jax.sharding import NamedSharding, PartitionSpec

from stablehlo_batch import axes as ax
from stablehlo_batch import module_io
from stablehlo_batch.flat import BatchedExport, batch_flat


def batch_spec(rank: int, dim: int | None, axis_name: str) -> PartitionSpec:
    """The batch axis ``dim`` of a rank-``rank`` value on ``axis_name``."""
    if dim is None:
        return PartitionSpec()
    return PartitionSpec(*[axis_name if i == dim else None for i in range(rank)])


def shard_flat(exp: jax.export.Exported, dims, out_dims, size, mesh: jax.sharding.Mesh,
               axis_name: str, *, what: str = "batch_lower") -> BatchedExport:
    """``flat.batch_flat`` whose batch axis is split over ``mesh[axis_name]``."""
    if not isinstance(mesh, jax.sharding.Mesh):
        raise TypeError(f"mesh must be a jax.sharding.Mesh, got {type(mesh).__name__}")
    if axis_name not in mesh.axis_names:
        raise ValueError(f"axis_name {axis_name!r} is not an axis of the mesh "
                         f"{mesh.axis_names}")
    n = mesh.shape[axis_name]
    if int(size) % n:
        raise ValueError(f"{what}: the batch size {size} is not a multiple of the "
                         f"{n} devices on mesh axis {axis_name!r}")
    if exp.in_tree.children()[1].num_leaves:
        raise ValueError(f"{what}: mesh= needs the arguments passed positionally "
                         "(jax.jit takes no shardings for keyword arguments)")
    full = batch_flat(exp, dims, out_dims, size, what=what)
    bexp = full.exported
    # An empty value stays replicated: XLA returns every device the whole
    # (empty) array for a sharded result, which jax then cannot assemble
    # (np.asarray fails; plain jax.jit with out_shardings does the same). An
    # empty argument too: its sharding is the sharding of its cotangent, a
    # result of the call's transpose under jax.grad.
    in_sh = [NamedSharding(mesh, batch_spec(len(a.shape), None if 0 in a.shape else d,
                                            axis_name))
             for a, d in zip(bexp.in_avals, dims)]
    out_sh = [NamedSharding(mesh, batch_spec(len(a.shape),
                                             None if 0 in a.shape else
                                             ax.batch_position(d, len(a.shape) - 1),
                                             axis_name))
              for a, d in zip(bexp.out_avals, out_dims)]
    in_sh_tree = tree_util.tree_unflatten(exp.in_tree.children()[0], in_sh)
    out_sh_tree = tree_util.tree_unflatten(exp.out_tree, out_sh)
    jitted = jax.jit(bexp.call, in_shardings=tuple(in_sh_tree), out_shardings=out_sh_tree)
    avals = [jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s)
             for a, s in zip(bexp.in_avals, in_sh)]
    args = tree_util.tree_unflatten(exp.in_tree.children()[0], avals)
    sharded = jax.export.export(jitted, platforms=bexp.platforms,
                                disabled_checks=bexp.disabled_safety_checks)(*args)
    built = BatchedExport(sharded, module_io.parse_module(sharded.mlir_module_serialized),
                          full.result_batched, full.rewrite_seconds, full.report,
                          forwarded=full.forwarded)
    built.call = jax.jit(sharded.call, in_shardings=tuple(in_sh_tree),
                         out_shardings=out_sh_tree)
    built.shardings = (tuple(in_sh_tree), out_sh_tree)
    return built


def replicated_on(n: int, platform: str) -> dict:
    """``jax.jit`` keyword arguments that put every argument, whole, on the
    first ``n`` devices of ``platform`` (a module whose own sharding
    constraints name ``n`` devices: ``Exported.call`` needs a context of
    that many); empty where there are fewer (the call then raises
    primitive's typed error)."""
    try:
        devices = jax.devices(platform)
    except RuntimeError:
        return {}
    if len(devices) < n:
        return {}
    mesh = jax.sharding.Mesh(devices[:n], ("_stablehlo_batch_devices",))
    return dict(in_shardings=NamedSharding(mesh, PartitionSpec()))
