"""The Python API: pytrees, axis handling, kwargs, caching, jit composition,
stages (lower / compile) and the errors vmap raises."""
import collections
import warnings

import numpy as np
import pytest

import jax
import jax.numpy as jnp
from jax import lax

import stablehlo_batch as sb
from conftest import assert_same_tree, check_vmap

Params = collections.namedtuple("Params", "w b")


@jax.tree_util.register_pytree_node_class
class Pair:
    def __init__(self, a, b):
        self.a, self.b = a, b

    def tree_flatten(self):
        return (self.a, self.b), None

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(*children)


def affine(p, x):
    return {"y": p.w @ x + p.b, "stats": [x.sum(), jnp.float32(1.0)]}


P = Params(jnp.arange(6.).reshape(2, 3), jnp.ones(2))
XS = jnp.arange(12.).reshape(4, 3)


def test_namedtuple_prefix_and_dict_out_axes():
    pb = Params(P.w, jnp.arange(8.).reshape(4, 2))
    check_vmap(affine, pb, XS, in_axes=(Params(None, 0), 0),
               out_axes={"y": 1, "stats": [0, None]})


def test_whole_tree_unbatched_params():
    check_vmap(affine, P, XS, in_axes=(None, 0), out_axes={"y": 0, "stats": 0})


def test_registered_pytree_argument_and_result():
    f = lambda pr: Pair(pr.a * 2, pr.a + pr.b)
    check_vmap(f, Pair(jnp.ones((3, 2)), jnp.arange(2.)), in_axes=(Pair(0, None),))


def test_list_and_nested_tuple_arguments():
    f = lambda xs, t: xs[0] * t[1][0] + xs[1]
    args = ([jnp.ones((3, 4)), jnp.arange(4.)], (jnp.ones(()), (jnp.arange(12.).reshape(3, 4),)))
    check_vmap(f, *args, in_axes=([0, None], (None, (0,))))


def test_kwargs_are_batched_along_axis_0():
    f = lambda x, *, y: x * y
    check_vmap(f, jnp.arange(3.), y=jnp.arange(3.) + 1, in_axes=0)
    check_vmap(f, jnp.arange(3.), y=jnp.arange(6.).reshape(3, 2)[:, 0], in_axes=None)


def test_axis_size_without_batched_arguments():
    check_vmap(lambda: jnp.arange(3.), axis_size=2)
    check_vmap(lambda x: x * 2, jnp.arange(3.), in_axes=None, axis_size=5)


def test_unbatched_output_is_broadcast_to_out_axis():
    f = lambda x, w: (x * 2, w + 1)
    check_vmap(f, jnp.ones((3, 2)), jnp.arange(4.), in_axes=(0, None), out_axes=(0, 1))
    check_vmap(f, jnp.ones((3, 2)), jnp.arange(4.), in_axes=(0, None), out_axes=(0, None))


def test_unused_arguments_keep_the_mapping():
    f = lambda a, b, c: a * 2 + c
    check_vmap(f, jnp.ones(3), jnp.ones((3, 2)), jnp.float32(5.0), in_axes=(0, 0, None))
    check_vmap(f, jnp.ones(3), jnp.ones((2, 3)), jnp.arange(3.), in_axes=(0, 1, 0))


def test_python_scalars_and_weak_types():
    f = lambda x, s: x * s
    check_vmap(f, jnp.arange(3.), 2.0, in_axes=(0, None))
    check_vmap(f, jnp.arange(3), 2, in_axes=(0, None))


def _count_builds(monkeypatch):
    """Counts the per-example exports (each traces fn), the rewrites and the
    host-callback route's builds (each compiles) from here on."""
    from stablehlo_batch import callbacks, rewrite
    counts = collections.Counter()

    def count(module, name, key):
        real = getattr(module, name)

        def counting(*a, **k):
            counts[key] += 1
            return real(*a, **k)
        monkeypatch.setattr(module, name, counting)
    count(jax.export, "export", "export")
    count(rewrite, "batch_function_with_report", "rewrite")
    count(callbacks, "build", "callback")
    return counts


def _echo(x):
    return jax.pure_callback(lambda v: np.asarray(v), jax.ShapeDtypeStruct(x.shape, x.dtype),
                             x, vmap_method="sequential")


_TRACEABLE_SCALAR_FNS = {
    "plain": lambda x, s: x * s + 1,
    # a host callback: the plan is called directly, not through jit's dispatch
    "callback": lambda x, s: _echo(x * s) + 1,
}


@pytest.mark.parametrize("kind", sorted(_TRACEABLE_SCALAR_FNS))
@pytest.mark.parametrize("s, other", [(2.5, -1.5), (3, 7), (True, False)])
def test_python_scalar_first_call_builds_one_plan(monkeypatch, kind, s, other):
    """A Python scalar under in_axes=None: the first call's dispatch traced it
    (a weakly typed array) and built a plan; a plan that cannot run through
    jit's dispatch (host callbacks) was then built a second time on the
    static path (export, rewrite and compile again), and every other value
    of the scalar built one more. Now the plan the dispatch built serves the
    call and every value of the scalar, with jax.vmap's values and dtypes."""
    f = _TRACEABLE_SCALAR_FNS[kind]
    x = np.arange(6, dtype=np.int32).reshape(3, 2)
    vm = jax.vmap(f, in_axes=(0, None))
    counts = _count_builds(monkeypatch)
    bl = sb.batch_lower(f, in_axes=(0, None))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sb.FallbackWarning)
        got = bl(x, s)
    want = vm(x, s)
    assert_same_tree(got, want)
    assert got.weak_type == want.weak_type
    assert bl.cache_info().misses == 1
    assert counts["export"] == 1 and counts["rewrite"] == 1
    assert counts["callback"] == (kind == "callback")
    before = dict(counts)
    for v in (s, other, s):  # no plan for another value: the scalar is traced
        got = bl(x, v)
        assert_same_tree(got, vm(x, v))
        assert got.weak_type == vm(x, v).weak_type
    bl.lower(x, other)
    assert dict(counts) == before and bl.cache_info().misses == 1


_STATIC_SCALAR_FNS = {
    "tile": lambda x, n: jnp.tile(x, n),  # n must be a Python int
    "branch": lambda x, n: -x if n > 2 else x * n,  # a Python condition
    "callback": lambda x, n: _echo(jnp.tile(x, n)),
}


@pytest.mark.parametrize("kind", sorted(_STATIC_SCALAR_FNS))
@pytest.mark.parametrize("options", [{}, {"chunk_size": 2}])
def test_python_scalar_needed_concrete_is_static(monkeypatch, kind, options):
    """A scalar fn needs concrete is static (docs/dropin.md): one plan per
    value, built once (the traced attempt fails in the trace, before any
    rewrite); a second call with the same value builds nothing."""
    f = _STATIC_SCALAR_FNS[kind]
    x = np.arange(6, dtype=np.float32).reshape(3, 2)
    vm = jax.vmap(f, in_axes=(0, None))
    counts = _count_builds(monkeypatch)
    bl = sb.batch_lower(f, in_axes=(0, None), **options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sb.FallbackWarning)
        assert_same_tree(bl(x, 2), vm(x, 2))
        assert bl.cache_info().misses == 1
        if not options:
            assert counts["rewrite"] == 1
        assert counts["callback"] == (kind == "callback")
        before = dict(counts)
        assert_same_tree(bl(x, 2), vm(x, 2))
        assert dict(counts) == before and bl.cache_info().misses == 1
        assert_same_tree(bl(x, 3), vm(x, 3))
        assert bl.cache_info().misses == 2


def test_python_scalar_with_chunks_one_plan_for_every_value(monkeypatch):
    """chunk_size= (the plan's own call, never jit's dispatch): a Python
    scalar fn does not need concrete is traced there too, as the dispatch
    traces it, so one plan serves every value."""
    f = lambda x, s: jnp.sin(x) * s  # noqa: E731
    x = np.arange(10, dtype=np.float32).reshape(5, 2)
    bl = sb.batch_lower(f, in_axes=(0, None), chunk_size=2)
    for s in (2.5, -1.0, 0.5):
        got = bl(x, s)
        want = jax.vmap(f, in_axes=(0, None))(x, s)
        assert_same_tree(got, want)
        assert got.weak_type == want.weak_type
    assert bl.cache_info().misses == 1


@pytest.mark.parametrize("s", [2.5, 3, True])
def test_python_scalar_under_a_batch_axis_is_vmaps_error(monkeypatch, s):
    counts = _count_builds(monkeypatch)
    with pytest.raises(ValueError, match="rank should be at least 1"):
        jax.vmap(lambda x, s: x * s)(np.ones((3, 2), np.float32), s)
    with pytest.raises(ValueError, match="rank should be at least 1, but is only 0"):
        sb.batch_lower(lambda x, s: x * s)(np.ones((3, 2), np.float32), s)
    assert not counts


def test_negative_axes():
    x = jnp.arange(24.).reshape(2, 3, 4)
    check_vmap(lambda a: a.sum(0), x, in_axes=-1, out_axes=-1)
    check_vmap(lambda a: a.sum(0), x, in_axes=-2, out_axes=0)


def test_composes_with_jit_and_inside_jit():
    f = lambda x, w: jnp.tanh(x @ w)
    b = sb.batch_lower(f, in_axes=(0, None))
    x, w = jnp.ones((5, 3)), jnp.arange(6.).reshape(3, 2)
    want = jax.vmap(f, in_axes=(0, None))(x, w)
    assert_same_tree(jax.jit(b)(x, w), want)
    assert_same_tree(jax.jit(lambda a, c: b(a, c) * 2)(x, w), want * 2)


def test_nested_batch_lower_matches_nested_vmap():
    f = lambda x, w: jnp.sin(x) @ w
    inner = sb.batch_lower(f, in_axes=(0, None))
    outer = sb.batch_lower(inner, in_axes=(0, None))
    x, w = jnp.arange(24.).reshape(2, 3, 4), jnp.ones((4, 5))
    assert_same_tree(outer(x, w), jax.vmap(jax.vmap(f, (0, None)), (0, None))(x, w))
    inner2 = sb.batch_lower(f, in_axes=(None, 0))
    outer2 = sb.batch_lower(inner2, in_axes=(0, None))
    ws = jnp.ones((3, 4, 5))
    assert_same_tree(outer2(x[:, 0], ws),
                     jax.vmap(jax.vmap(f, (None, 0)), (0, None))(x[:, 0], ws))


def test_vmap_of_jit_inside_function_is_func_call():
    inner = jax.jit(lambda a: jnp.exp(a) * 2)
    check_vmap(lambda x, y: inner(x) + inner(y), jnp.ones((3, 2)), jnp.arange(2.),
               in_axes=(0, None))


def test_cache_reuses_plans():
    b = sb.batch_lower(lambda x: x + 1, cache_size=8)
    assert b.cache_info() == (0, 0, 8, 0)
    b(jnp.ones((3, 2)))
    b(jnp.zeros((3, 2)))
    assert b.cache_info() == (1, 1, 8, 1)
    b(jnp.zeros((4, 2)))
    b(jnp.zeros((3, 2), jnp.int32))
    b.lower(jnp.zeros((4, 2)))
    info = b.cache_info()
    assert (info.hits, info.misses, info.maxsize, info.currsize) == (2, 3, 8, 3)
    b.cache_clear()
    assert b.cache_info() == (0, 0, 8, 0)
    np.testing.assert_array_equal(b(jnp.zeros((3, 2))), np.ones((3, 2)))
    assert b.cache_info().misses == 1


def test_per_example_export_shared_across_batch_sizes(monkeypatch):
    # a new batch size rewrites and compiles again, but does not export again
    from stablehlo_batch import api
    exports = []
    real = api.export_in_process

    def counting(*a, **k):
        exports.append(a)
        return real(*a, **k)
    monkeypatch.setattr(api, "export_in_process", counting)
    b = sb.batch_lower(lambda x, y: x * y, in_axes=(0, None))
    y = jnp.arange(2.)
    np.testing.assert_array_equal(b(jnp.ones((3, 2)), y), np.ones((3, 2)) * y)
    np.testing.assert_array_equal(b(jnp.ones((5, 2)), y), np.ones((5, 2)) * y)
    assert len(exports) == 1 and b.cache_info().misses == 2
    b(jnp.ones((3, 2), jnp.int32), y)  # another per-example dtype: exported again
    assert len(exports) == 2
    b.cache_clear()
    b(jnp.ones((3, 2)), y)
    assert len(exports) == 3


def test_in_process_export_is_plain_bytecode_batched_one_portable():
    # the per-example export skips the portable artifact (read by our rewrite
    # only); jax.export outside it, and the Exported we hand out, keep it
    from stablehlo_batch.flat import export_in_process
    f = lambda x: jnp.sin(x) * 2  # noqa: E731
    spec = jax.ShapeDtypeStruct((3,), jnp.float32)
    assert b"StableHLO_v" not in export_in_process(f, "cpu")(spec).mlir_module_serialized[:64]
    assert b"StableHLO_v" in jax.export.export(jax.jit(f))(spec).mlir_module_serialized[:64]
    xs = jnp.arange(12.).reshape(4, 3)
    exported = sb.batch_lower(f).lower(xs).exported
    assert b"StableHLO_v" in exported.mlir_module_serialized[:64]
    back = jax.export.deserialize(exported.serialize())
    np.testing.assert_allclose(back.call(xs), jnp.sin(xs) * 2, rtol=1e-6)


def test_in_process_export_copies_into_the_reused_context(monkeypatch):
    # jax.export copies the lowered module into a new MLIR context (~3 ms);
    # an in-process export copies it into module_io's reused context, and
    # only there: jax's own lowerings and exports still make their own.
    from jax._src.interpreters import mlir as jax_mlir
    from stablehlo_batch import module_io
    from stablehlo_batch.flat import export_in_process
    made = []

    class Counted(jax_mlir.JaxIrContext):
        def __init__(self, *a, **k):
            made.append(1)
            super().__init__(*a, **k)
    monkeypatch.setattr(jax_mlir, "JaxIrContext", Counted)  # what make_ir_context makes
    f = lambda x: jnp.cos(x) + 3  # noqa: E731
    spec = jax.ShapeDtypeStruct((5,), jnp.float32)
    exp = export_in_process(f, "cpu")(spec)
    lowering_only = len(made)  # the lowering's context; not the copy's
    assert lowering_only == 1, made
    made.clear()
    jax.export.export(jax.jit(lambda x: jnp.cos(x) + 4))(spec)
    assert len(made) == 2  # the lowering's and the copy's, as jax does it
    m = module_io.parse_module(exp.mlir_module_serialized)
    assert m.context is module_io.shared_context(0)
    xs = jnp.arange(10.).reshape(2, 5)
    np.testing.assert_allclose(sb.batch_lower(f)(xs), jnp.cos(xs) + 3, rtol=1e-6)

def test_call_lowering_inlines_the_module(monkeypatch):
    # a one-device call merges the batched module itself, without lowering
    # Exported.call (primitive._inline_call); inside jit and grad too
    from stablehlo_batch import primitive

    def refuse(*a, **k):
        raise AssertionError("Exported.call lowered")
    monkeypatch.setattr(primitive, "_lower_rule", refuse)
    w = jnp.arange(3.)
    b = sb.batch_lower(lambda x: jnp.tanh(x * w).sum())
    xs = jnp.arange(12.).reshape(4, 3)
    want = jax.vmap(lambda x: jnp.tanh(x * w).sum())(xs)
    np.testing.assert_allclose(b(xs), want, rtol=1e-6)
    np.testing.assert_allclose(jax.jit(lambda x: b(x) + 1)(xs), want + 1, rtol=1e-6)
    np.testing.assert_allclose(
        jax.grad(lambda x: b(x).sum())(xs),
        jax.grad(lambda x: jax.vmap(lambda r: jnp.tanh(r * w).sum())(x).sum())(xs), rtol=1e-6)


def test_lower_and_compile_stages():
    f = lambda x, w: jnp.dot(x, w)
    b = sb.batch_lower(f, in_axes=(0, None))
    x, w = jnp.ones((8, 3)), jnp.arange(3.)
    lowered = b.lower(x, w)
    text = lowered.as_text()
    assert "tensor<8x3xf32>" in text and "stablehlo.dot_general" in text
    assert lowered.module.operation.verify()
    compiled = lowered.compile()
    assert_same_tree(compiled(x, w), jax.vmap(f, (0, None))(x, w))
    assert "dot" in compiled.as_text()
    assert compiled.cost_analysis() is not None
    assert compiled.memory_analysis().output_size_in_bytes == 8 * 4
    exp = lowered.exported
    assert exp.in_avals[0].shape == (8, 3) and exp.out_avals[0].shape == (8,)


def test_lower_for_other_platforms_without_the_device():
    b = sb.batch_lower(lambda x: jnp.sin(x) * 2, backend="cuda")
    text = b.lower(jnp.ones((4, 3))).as_text()
    assert "tensor<4x3xf32>" in text and "stablehlo.sine" in text
    assert b.lower(jnp.ones((4, 3))).exported.platforms == ("cuda",)


# ---- errors: the same kinds as jax.vmap -----------------------------------

def _both_raise(exc, fn, args, match=None, **kw):
    with pytest.raises(exc):
        jax.vmap(fn, **kw)(*args)
    with pytest.raises(exc, match=match) as info:
        sb.batch_lower(fn, **kw)(*args)
    return str(info.value)


def test_error_inconsistent_sizes_lists_each_argument():
    def f(x, y, z):
        return x + y + z
    msg = _both_raise(ValueError, f, (jnp.ones(2), jnp.ones(3), jnp.ones(3)),
                      match="inconsistent sizes")
    assert "argument x" in msg and "size 2" in msg and "size 3" in msg


def test_error_axis_out_of_range():
    _both_raise(ValueError, jnp.sin, (jnp.ones((2, 2)),), match="axis 2", in_axes=2)
    _both_raise(ValueError, jnp.sin, (jnp.ones(()),), match="rank", in_axes=0)


def test_error_out_axes_none_for_batched_output():
    _both_raise(ValueError, jnp.sin, (jnp.ones((2, 2)),), match="out_axes", out_axes=None)


def test_error_out_axes_out_of_range():
    with pytest.raises(ValueError):
        sb.batch_lower(jnp.sin, out_axes=3)(jnp.ones((2, 2)))


def test_error_in_axes_not_a_prefix():
    f = lambda x, y: x + y
    _both_raise(ValueError, f, (jnp.ones(2), jnp.ones(2)), match="tree prefix",
                in_axes=(0, [0, 0]))


def test_error_in_axes_tuple_length():
    _both_raise(ValueError, lambda x, y: x, (jnp.ones(2), jnp.ones(2)),
                match="len\\(in_axes\\)=1", in_axes=(0,))


def test_error_in_axes_types():
    for bad in ("0", 1.5, {0: 0}.keys()):
        with pytest.raises(TypeError):
            jax.vmap(jnp.sin, in_axes=bad)
        with pytest.raises(TypeError):
            sb.batch_lower(jnp.sin, in_axes=bad)


def test_error_nothing_batched_without_axis_size():
    _both_raise(ValueError, lambda x: x, (jnp.ones(2),), match="non-None", in_axes=None)


def test_error_unsupported_op_names_op_and_location():
    # strict: a host callback has no rule and may not fall back to a loop
    def f(x):
        return jax.pure_callback(np.sin, jax.ShapeDtypeStruct(x.shape, x.dtype), x)
    with pytest.raises(sb.UnsupportedOpError) as info:
        sb.batch_lower(f, strict=True)(jnp.ones((3, 4)))
    msg = str(info.value)
    assert "cannot batch 'stablehlo.custom_call'" in msg
    assert "test_api.py" in msg  # the source line the op came from
    assert isinstance(info.value, NotImplementedError)


def test_batch_module_from_text_and_bytecode():
    text = """
    func.func @main(%x: tensor<3xf32>, %w: tensor<3xf32>) -> tensor<f32> {
      %0 = stablehlo.multiply %x, %w : tensor<3xf32>
      %c = stablehlo.constant dense<0.0> : tensor<f32>
      %1 = stablehlo.reduce(%0 init: %c) applies stablehlo.add across dimensions = [0] : (tensor<3xf32>, tensor<f32>) -> tensor<f32>
      return %1 : tensor<f32>
    }"""
    out = sb.batch_module(text, [0, None], [0], 5)
    assert "tensor<5x3xf32>" in out and "-> tensor<5xf32>" in out
    from stablehlo_batch import module_io
    m = module_io.parse_module(text)
    out_bc = sb.batch_module(module_io.module_to_bytecode(m), [0, None], [0], 5)
    assert out_bc == out
    out_art = sb.batch_module(module_io.module_to_portable_artifact(m), [0, None], [0], 5)
    assert "tensor<5x3xf32>" in out_art
    assert sb.batch_module(m, [0, None], [0], 5) == out


def test_batch_module_output_runs_like_vmap():
    f = lambda x, w: jnp.tanh(x * w).sum()
    x, w = jnp.arange(12.).reshape(4, 3) / 10, jnp.arange(3.)
    exp = jax.export.export(jax.jit(f))(x[0], w)
    text = sb.batch_module(exp.mlir_module(), [0, None], [0], 4)
    from jax.extend import backend as jeb
    from stablehlo_batch import module_io
    # Run the text through the public jax.export route as batch_lower does.
    import dataclasses
    m = module_io.parse_module(text)
    batched = dataclasses.replace(
        exp, in_avals=(jax.core.ShapedArray((4, 3), jnp.float32), exp.in_avals[1]),
        out_avals=(jax.core.ShapedArray((4,), jnp.float32),),
        mlir_module_serialized=module_io.module_to_portable_artifact(m), _get_vjp=None)
    assert_same_tree(batched.call(x, w), jax.vmap(f, (0, None))(x, w))


def test_batch_module_errors():
    text = "func.func @main(%x: tensor<3xf32>) -> tensor<3xf32> { return %x : tensor<3xf32> }"
    with pytest.raises(sb.AxisSpecError):
        sb.batch_module(text, [0, 0], [0], 2)
    with pytest.raises(sb.AxisSpecError):
        sb.batch_module(text, [0], [None], 2)
    with pytest.raises(sb.AxisSpecError):
        sb.batch_module(text, [2], [0], 2)
    with pytest.raises(sb.AxisSpecError):
        sb.batch_module(text, [0], [0], 2, func="nope")
    with pytest.raises(sb.ModuleParseError):
        sb.batch_module("func.func @main(", [0], [0], 2)


def test_first_call_does_not_initialize_lapack_unless_the_module_needs_it(monkeypatch):
    """Exported.call's lowering initializes jaxlib's LAPACK kernels (~0.1 s,
    once per process) for any CPU module; our call's lowering only for a
    module that calls LAPACK (jax_internals.lapack_unless_needed)."""
    from jax._src.lax import linalg
    calls = []
    monkeypatch.setattr(linalg, "initialize_lapack", lambda: calls.append(1))
    x = jnp.ones((3, 4))
    np.testing.assert_array_equal(sb.batch_lower(lambda v: jnp.cos(v) * 3)(x), jnp.cos(x) * 3)
    assert calls == []
    exp = jax.export.export(jax.jit(jnp.linalg.solve))(
        jax.ShapeDtypeStruct((2, 2), jnp.float32), jax.ShapeDtypeStruct((2,), jnp.float32))
    bexp = sb.batch_exported(exp, in_axes=(0, 0), axis_size=3)
    a = jnp.broadcast_to(jnp.eye(2), (3, 2, 2))
    if jax.default_backend() == "cpu":
        assert b"lapack" in bexp.mlir_module_serialized
        from stablehlo_batch import jax_internals
        with jax_internals.lapack_unless_needed(bexp.mlir_module_serialized):
            jax.jit(bexp.call).lower(a, x[:, :2])
        assert calls  # a LAPACK target: initialized as jax would
