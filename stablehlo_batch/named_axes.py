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

import contextlib
import dataclasses
import re
import warnings
from typing import Callable

import jax
from jax import tree_util
from jaxlib.mlir import ir, passmanager
from jaxlib.mlir.dialects import func as func_d

from stablehlo_batch.passes import builders as bld
from stablehlo_batch.passes.engine import batch_function_with_report, verify
from stablehlo_batch.passes.errors import BatchingError, UnsupportedOpError, format_location
from stablehlo_batch.passes.rules.collectives import LANE_ATTR, LANES_ATTR, SYMBOLIC_ATTR
from stablehlo_batch import jax_internals, module_io

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


# Lane counts a function is lowered at when the batch size is symbolic: its
# collectives must not depend on the count (compared at both), and the module
# is the first one's.
PLACEHOLDER_LANES = (2, 3)


def export_named(fn: Callable, args, kwargs, axis_name, size, platform: str
                 ) -> jax.export.Exported:
    """``jax.export`` of ``jax.jit(fn)`` for one example, with ``axis_name``
    bound to a batch of ``size`` lanes; its module is ``lanes_module``'s.

    A symbolic ``size`` (not an int): the abstract mesh needs a number, so
    ``fn`` is lowered at two placeholder lane counts. Collectives over the
    whole axis (reductions, ``axis_index``, ``pbroadcast``) lower the same
    at both and their rewrite reads the batch size at run time; a function
    whose module differs between the two (a per-example shape or a constant
    that depends on the number of lanes: ``all_gather``, ``psum`` of a Python
    number, replica groups that split the axis, ...) is refused."""
    if isinstance(size, int):
        return _export_at(fn, args, kwargs, axis_name, size, platform)
    exps = []
    with jax_internals.traced_axis_size(axis_name):
        for n in PLACEHOLDER_LANES:
            try:
                exps.append(_export_at(fn, args, kwargs, axis_name, n, platform,
                                       keep_unused=True, symbolic=True))
            except NameError:
                raise
            except Exception as e:
                e.add_note(f"(while lowering for a placeholder of {n} lanes: axis_name="
                           f"{axis_name!r} with a symbolic axis_size takes collectives over the "
                           "whole axis that do not need the number of lanes; "
                           "docs/named-axes.md)")
                raise
    _refuse_lane_shaped(exps[0])
    texts = [_lane_free_text(e) for e in exps]
    if texts[0] != texts[1]:
        diff = next((a.strip() for a, b in zip(texts[0].splitlines(), texts[1].splitlines())
                     if a != b), "")
        raise ValueError(
            f"axis_name={axis_name!r} with a symbolic batch size: the function depends on the "
            "number of lanes in a way a symbolic size cannot express (a per-example shape or "
            "constant from the axis size: all_gather, psum_scatter, all_to_all, psum of a "
            "Python number, lax.axis_size, replica groups that split the axis, ...); "
            f"pass a static axis_size. First difference: {diff[:200]}")
    return exps[0]


# Collectives whose per-example shape or pairs depend on the number of
# lanes, and why a symbolic batch size cannot express them.
_SHAPE_REASON = ("its per-example result has the number of lanes as a dimension, and a "
                 "per-example shape cannot depend on the symbolic batch size")
_LANE_SHAPED = {
    "stablehlo.all_gather": ("all_gather", _SHAPE_REASON),
    "stablehlo.all_to_all": ("all_to_all", _SHAPE_REASON.replace(
        "has the number of lanes as a dimension", "has chunks of size / number of lanes")),
    "stablehlo.reduce_scatter": ("psum_scatter (reduce_scatter)", _SHAPE_REASON.replace(
        "has the number of lanes as a dimension", "is its operand divided by the number of "
        "lanes")),
    "stablehlo.collective_permute": (
        "ppermute / pshuffle (collective_permute)",
        "its source-target pairs name lanes explicitly, which needs a concrete number of "
        "lanes")}


def _refuse_lane_shaped(exp):
    """UnsupportedOpError naming the first collective of the placeholder
    lowering that needs the number of lanes."""
    m = module_io.parse_module(exp.mlir_module_serialized)
    found = []

    def visit(op):
        if op.name in _LANE_SHAPED and not found:
            found.append(op)
        return ir.WalkResult.ADVANCE
    m.operation.walk(visit)
    if found:
        op = found[0]
        what, why = _LANE_SHAPED[op.name]
        raise UnsupportedOpError(
            op.name, "main", format_location(op.location),
            f"{what} over a symbolic batch size: {why} (pass a static axis_size)")


def _lane_free_text(exp) -> str:
    """The module without what names the lane count (the replica groups of
    the placeholder lowering and the lanes attribute)."""
    m = module_io.parse_module(exp.mlir_module_serialized)
    with m.context:
        def strip(op):
            for a in ("replica_groups", "source_target_pairs", "channel_handle"):
                if a in op.attributes:
                    del op.attributes[a]
            return ir.WalkResult.ADVANCE
        m.operation.walk(strip)
        for a in (LANES_ATTR, SYMBOLIC_ATTR):
            if a in m.operation.attributes:
                del m.operation.attributes[a]
    return module_io.module_to_text(m)


def named_wrapper(fn: Callable, in_tree, axis_name, size: int) -> Callable:
    """``fn(*args, **kwargs)`` (arguments of tree ``in_tree``) run for one
    example inside ``jax.shard_map`` over an abstract mesh axis ``axis_name``
    of ``size`` devices, every value whole on every device."""
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
    return wrapper


@contextlib.contextmanager
def named_lowering(platform: str):
    """The context ``named_wrapper``'s function is lowered in."""
    # Inside another batch_lower's trace the context mesh is that one's: this
    # function is lowered on its own (it names only its own axis).
    outer = jax.sharding.get_abstract_mesh()
    with jax_internals.collective_broadcast_lowering(platform), \
            jax.sharding.use_abstract_mesh(outer if outer.empty else
                                           jax.sharding.AbstractMesh((), ())):
        yield


def _export_at(fn, args, kwargs, axis_name, size: int, platform: str, keep_unused=False,
               symbolic=False) -> jax.export.Exported:
    wrapper = named_wrapper(fn, tree_util.tree_structure((args, kwargs)), axis_name, size)
    with named_lowering(platform), jax_internals.tracing_to_batch():
        exp = jax.export.export(jax.jit(wrapper, keep_unused=keep_unused),
                                platforms=(platform,))(*args, **kwargs)
    module = module_io.parse_module(exp.mlir_module_serialized)
    lanes_module(module, size, symbolic=symbolic)
    return dataclasses.replace(
        exp, mlir_module_serialized=module_io.module_to_portable_artifact(module),
        nr_devices=1, _get_vjp=None)


def lanes_module(module: ir.Module, size: int, func: str = "main", *,
                 symbolic: bool = False) -> ir.Module:
    """Rewrites in place a module whose @``func`` runs one ``sdy.manual_computation``
    over a mesh axis of ``size`` devices (or is plain SPMD code with
    collectives) into a one-device module whose collectives are marked as
    over the batch axis. Returns ``module``."""
    with module.context, ir.Location.unknown(module.context):
        _inline_manual_computations(module, func)
        _strip_sharding_ops(module)  # e.g. typed PRNG keys' constraints on @empty_mesh
        _drop_sdy(module)
        marked = [0]

        def mark(op):
            if op.name in COLLECTIVES:
                op.attributes[LANE_ATTR] = ir.UnitAttr.get()
                marked[0] += 1
            return ir.WalkResult.ADVANCE

        module.operation.walk(mark)
        _drop_lane_remainders(module, size)
        attrs = module.operation.attributes
        attrs[LANES_ATTR] = ir.IntegerAttr.get(ir.IntegerType.get_signless(64), size)
        if symbolic:  # lowered at a placeholder count: the batch size is read at run time
            attrs[SYMBOLIC_ATTR] = ir.UnitAttr.get()
        for name in ("mhlo.num_partitions", "mhlo.num_replicas"):
            if name in attrs:
                attrs[name] = ir.IntegerAttr.get(ir.IntegerType.get_signless(32), 1)
    return module


def _drop_lane_remainders(module: ir.Module, size: int):
    """jax lowers ``axis_index`` as ``partition_id / 1 % size``: a lane's index
    is below the batch size anyway, so the remainder (by a count that is only
    a placeholder when the batch size is symbolic) is dropped."""
    found = []

    def visit(op):
        if op.name == "stablehlo.remainder" and _lane_id(op.operands[0]) and \
                _constant_value(op.operands[1]) == size:
            found.append(op)
        return ir.WalkResult.ADVANCE
    module.operation.walk(visit)
    for op in found:
        op.results[0].replace_all_uses_with(op.operands[0])
        divisor = op.operands[1].owner
        op.erase()
        if not list(divisor.results[0].uses):
            divisor.erase()


def _lane_id(v) -> bool:
    """``v`` is partition_id, or partition_id divided by 1."""
    owner = v.owner
    if not isinstance(owner, (ir.Operation, ir.OpView)):
        return False
    owner = owner.operation
    if owner.name == "stablehlo.partition_id":
        return True
    return (owner.name == "stablehlo.divide" and _constant_value(owner.operands[1]) == 1
            and _lane_id(owner.operands[0]))


def _constant_value(v):
    owner = v.owner
    if not isinstance(owner, (ir.Operation, ir.OpView)) or \
            owner.operation.name != "stablehlo.constant":
        return None
    attr = owner.operation.attributes["value"]
    try:
        a = ir.DenseIntElementsAttr(attr)
    except (ValueError, TypeError):
        return None
    return int(a[0]) if a.is_splat or len(a) == 1 else None


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

    def unshard(op):  # e.g. a host callback's custom_call, sharded on the mesh
        if "sdy.sharding" in op.attributes:
            del op.attributes["sdy.sharding"]
        return ir.WalkResult.ADVANCE
    module.operation.walk(unshard)
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


def lanes_exported(exp: jax.export.Exported, axis_name, size, what: str
                   ) -> jax.export.Exported:
    """``batch_exported`` / ``vmappable`` with ``axis_name``: ``exp`` is a
    per-example function lowered inside ``jax.shard_map`` over a mesh axis
    ``axis_name`` with every value replicated (``in_specs=P()``,
    ``out_specs=P()``), as ``export_named`` lowers one; device k becomes lane
    k of a batch of ``size`` (the axis' size). Returns a one-device
    ``Exported`` whose collectives are marked for the rewrite."""
    check_axis_name(axis_name)
    m = module_io.parse_module(exp.mlir_module_serialized)
    with m.context, ir.Location.unknown(m.context):
        mcs = []
        m.operation.walk(lambda o: (mcs.append(o) if o.name == "sdy.manual_computation"
                                    else None) or ir.WalkResult.ADVANCE)
        if not mcs:
            return exp  # nothing names the axis: the module batches as it is
        meshes = _meshes(m)
        n = None
        for mc in mcs:
            n = _lanes_of(mc, meshes, str(axis_name))
            for key in ("in_shardings", "out_shardings"):
                for i, (_, dims) in enumerate(_shardings(mc.attributes[key])):
                    if _split_dim(dims, str(axis_name), f"{key[:-10]} {i}") is not None:
                        raise ValueError(
                            f"{what}(axis_name={axis_name!r}): the module splits a value over "
                            f"{axis_name!r}; only replicated values (P()) are one example per "
                            "device (spmd_to_batch takes split ones)")
        if not isinstance(size, int):
            raise ValueError(
                f"{what}(axis_name={axis_name!r}) needs a static axis_size: the module was "
                f"lowered for {n} devices of {axis_name!r}")
        if n != size:
            raise ValueError(f"{what}(axis_name={axis_name!r}): the module was lowered for {n} "
                             f"devices of {axis_name!r}, the batch has {size}")
        lanes_module(m, n)
        _strip_sharding_ops(m)
    return dataclasses.replace(
        exp, mlir_module_serialized=module_io.module_to_portable_artifact(m), nr_devices=1,
        in_shardings_hlo=(None,) * len(exp.in_avals),
        out_shardings_hlo=(None,) * len(exp.out_avals), _get_vjp=None)


def resolve_names(axis_name, spmd_axis_name, mesh, stacklevel: int = 3):
    """``batch_lower``'s two names: (the name collectives use, the mesh axis
    that ``mesh=`` splits the batch over).

    Until this release ``axis_name`` meant the mesh axis (vmap's
    ``spmd_axis_name``). With ``mesh=`` and no ``spmd_axis_name``, an
    ``axis_name`` that is an axis of the mesh is still read that way, with a
    DeprecationWarning, and also bound for collectives: ``jax.vmap`` with
    ``axis_name == spmd_axis_name`` means the same, so either reading of the
    call computes what its author meant."""
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


# ---- SPMD programs as one batched module ----------------------------------------

def spmd_to_batch(module: module_io.ModuleSource, axis_name: str, *,
                  num_devices: int | None = None, func: str = "main",
                  debug_info: bool = False) -> str:
    """A module written for N devices with manual collectives over the mesh
    axis ``axis_name`` (a ``jax.shard_map`` program) as a one-device module
    computing the same global result: the axis becomes a batch dimension of
    size N and each collective batch-dimension ops. Returns the module text.

    Each ``sdy.manual_computation`` in @``func`` over ``axis_name`` becomes a
    call of its body batched over the N lanes: an operand split along
    dimension d over the axis is reshaped so that the lanes are dimension d;
    a result split along d is reshaped back; a replicated one is lane 0's.
    A module without ``manual_computation`` is taken as per-device code
    (plain SPMD: collectives with replica groups over ``num_devices``
    devices, by default ``mhlo.num_partitions``): every argument and result
    then gets a leading dimension of N, one entry per device."""
    m = module_io.parse_module(module)
    with m.context, ir.Location.unknown(m.context):
        table = ir.SymbolTable(m.operation)
        try:
            entry = table[func].operation
        except KeyError:
            raise BatchingError(f"function @{func} not found in the module") from None
        mcs = []
        entry.walk(lambda o: (mcs.append(o) if o.name == "sdy.manual_computation"
                              else None) or ir.WalkResult.ADVANCE)
        meshes = _meshes(m)
        if not mcs:
            n = num_devices or _num_partitions(m)
            if not n:
                raise BatchingError("the module has no sdy.manual_computation and no "
                                    "mhlo.num_partitions: pass num_devices")
            _mark_all(m, n)
            block = entry.regions[0].blocks[0]
            n_res = len(list(block.operations)[-1].operands)
            batch_function_with_report(m, func, [0] * len(block.arguments), [0] * n_res, n)
        else:
            n = None
            for i, mc in enumerate(mcs):
                n_mc = _lanes_of(mc, meshes, axis_name)
                if n is not None and n_mc != n:
                    raise BatchingError(f"manual computations over {axis_name!r} with "
                                        f"{n} and {n_mc} devices")
                n = n_mc
            _mark_all(m, n)
            for i, mc in enumerate(mcs):
                _batch_manual_computation(m, mc, axis_name, n, f"{func}_lanes_{i}",
                                          batch_function_with_report)
            passmanager.PassManager.parse("builtin.module(symbol-dce)").run(m.operation)
        _strip_sharding_ops(m)
        _drop_sdy(m)
        for name in ("mhlo.num_partitions", "mhlo.num_replicas"):
            if name in m.operation.attributes:
                m.operation.attributes[name] = ir.IntegerAttr.get(
                    ir.IntegerType.get_signless(32), 1)
        del m.operation.attributes[LANES_ATTR]
    verify(m, "spmd_to_batch")
    return module_io.module_to_text(m, debug_info=debug_info)


def _mark_all(m: ir.Module, n: int):
    def mark(op):
        if op.name in COLLECTIVES:
            op.attributes[LANE_ATTR] = ir.UnitAttr.get()
        return ir.WalkResult.ADVANCE
    m.operation.walk(mark)
    m.operation.attributes[LANES_ATTR] = ir.IntegerAttr.get(
        ir.IntegerType.get_signless(64), n)


def _num_partitions(m: ir.Module) -> int | None:
    attrs = m.operation.attributes
    for name in ("mhlo.num_partitions", "mhlo.num_replicas"):
        if name in attrs and ir.IntegerAttr(attrs[name]).value > 1:
            return ir.IntegerAttr(attrs[name]).value
    return None


def _meshes(m: ir.Module) -> dict[str, list[tuple[str, int]]]:
    """sdy.mesh name -> [(axis, size), ...]."""
    out = {}
    for op in m.body.operations:
        op = op.operation
        if op.name == "sdy.mesh":
            name = ir.StringAttr(op.attributes["sym_name"]).value
            text = str(op.attributes["mesh"])
            out[name] = [(a, int(s)) for a, s in re.findall(r'"([^"]+)"=(\d+)', text)]
    return out


def _shardings(attr) -> list[tuple[str, list[list[str]]]]:
    """A sdy.sharding_per_value as [(mesh name, [[axes of dim 0], ...]), ...]."""
    out = []
    for mesh, dims in re.findall(r'<@([\w.$-]+)\s*,\s*\[((?:\{[^}]*\}(?:\s*,\s*)?)*)\]',
                                 str(attr)):
        out.append((mesh, [re.findall(r'"([^"]+)"', d)
                           for d in re.findall(r'\{([^}]*)\}', dims)]))
    return out


def _lanes_of(mc, meshes, axis_name) -> int:
    manual = re.findall(r'"([^"]+)"', str(mc.attributes["manual_axes"]))
    if axis_name not in manual:
        raise BatchingError(f"the manual computation is over {manual}, not over "
                            f"{axis_name!r}")
    mesh_names = {mesh for mesh, _ in _shardings(mc.attributes["in_shardings"]) +
                  _shardings(mc.attributes["out_shardings"])}
    sizes = {}
    for name in mesh_names:
        sizes.update(dict(meshes.get(name, [])))
    if axis_name not in sizes:
        raise BatchingError(f"{axis_name!r} is not an axis of the module's mesh "
                            f"({sorted(sizes)})")
    others = [a for a, s in sizes.items() if a != axis_name and s > 1]
    if others:
        raise BatchingError(f"the mesh has axes {others} besides {axis_name!r}: only a "
                            "one-axis mesh can become a batch dimension")
    return sizes[axis_name]


def _split_dim(dims: list[list[str]], axis_name: str, what: str) -> int | None:
    found = [d for d, axes in enumerate(dims) if axis_name in axes]
    if any(len(axes) > 1 for axes in dims if axis_name in axes):
        raise BatchingError(f"{what} is split over {axis_name!r} together with other axes")
    return found[0] if found else None


def _batch_manual_computation(m, mc, axis_name, n, name, batch_fn):
    in_dims = [_split_dim(d, axis_name, f"operand {i}")
               for i, (_, d) in enumerate(_shardings(mc.attributes["in_shardings"]))]
    out_dims = [_split_dim(d, axis_name, f"result {j}")
                for j, (_, d) in enumerate(_shardings(mc.attributes["out_shardings"]))]
    body = mc.regions[0].blocks[0]
    term = list(body.operations)[-1].operation
    fn_type = ir.FunctionType.get([a.type for a in body.arguments],
                                  [v.type for v in term.operands])
    with ir.InsertionPoint(m.body):
        f = func_d.FuncOp(name, fn_type)
    block = f.add_entry_block()
    mapping = dict(zip(body.arguments, block.arguments))
    with ir.InsertionPoint(block):
        outs = bld.clone_block_ops(body, mapping)
        func_d.ReturnOp(outs)
    batch_fn(m, name, in_dims, [0 if d is None else d for d in out_dims], n)
    with ir.InsertionPoint(mc), mc.location:
        args = []
        for v, d in zip(mc.operands, in_dims):
            if d is not None:
                s = bld.shape_of(v)
                v = bld.reshape(v, s[:d] + [n, s[d] // n] + s[d + 1:])
            args.append(v)
        ftype = ir.FunctionType(ir.TypeAttr(f.operation.attributes["function_type"]).value)
        call = func_d.CallOp(list(ftype.results), ir.FlatSymbolRefAttr.get(name), args)
        for r, v, d in zip(mc.results, call.results, out_dims):
            if d is None:  # replicated: every lane holds it, lane 0's is the result
                s = bld.shape_of(v)
                v = bld.reshape(bld.slice_(v, [0] * len(s), [1] + s[1:], [1] * len(s)), s[1:])
            else:
                v = bld.reshape(v, bld.shape_of(r))
            r.replace_all_uses_with(v)
    mc.erase()
    f.operation.attributes["sym_visibility"] = ir.StringAttr.get("private")


def _strip_sharding_ops(m: ir.Module):
    """Sharding constraints mean nothing on one device: their operand replaces them."""
    ops = []
    m.operation.walk(lambda o: (ops.append(o) if o.name in (
        "sdy.sharding_constraint", "sdy.reshard") else None) or ir.WalkResult.ADVANCE)
    for op in ops:
        op.results[0].replace_all_uses_with(op.operands[0])
        op.erase()


class UsesEnclosingAxis(Exception):
    """Raised while planning a ``batch_lower`` call whose function has
    collectives over an enclosing batch's name that the call itself does not
    bind: ``vmap_inside`` is then the route."""


def check_enclosing_axes(closed_jaxpr, own_name) -> None:
    """Raises ``UsesEnclosingAxis`` when the traced per-example function uses
    an axis name bound only by an enclosing transformation."""
    used = jax_internals.named_axes_used(closed_jaxpr)
    if own_name is not None:
        used.discard(own_name)
    if used:
        raise UsesEnclosingAxis(sorted(map(str, used)))


def bound_outside(err: NameError) -> bool:
    """True when ``err`` is jax's unbound-axis error for a name that an
    enclosing transformation (an outer ``jax.vmap`` or ``batch_lower``) binds."""
    m = re.search(r"unbound axis name: (\S+?)\.?(\s|$)", str(err))
    if m is None:
        return False
    return m.group(1) in jax_internals.enclosing_axis_names()


def vmap_inside(bf, args, kwargs):
    """An inner ``batch_lower`` whose collectives name an outer batch axis
    has no module of its own to batch (its collectives span the outer lanes):
    it is traced by ``jax.vmap`` into the enclosing function instead, whose
    own batching (our rewrite, for an outer ``batch_lower``) then sees it."""
    return jax.vmap(bf.fn, bf.in_axes, bf.out_axes, axis_name=bf.axis_name,
                    axis_size=bf.axis_size)(*args, **kwargs)
