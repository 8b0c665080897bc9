"""batch_lower's default strategy: the static cost model (stablehlo_batch/costmodel.py).

The decision function on the bench workloads' batched modules (which choice
for which shape), the model-chosen loops against jax.vmap (values and
gradients), tune=False and axis_name keeping the full batch. No timing is
asserted here: the thresholds were measured with bench/ (docs/tuning.md).
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import stablehlo_batch as sb
from bench.workloads import BY_NAME
from stablehlo_batch import costmodel
from tests.conftest import assert_same_tree


def _module(name, batch):
    w = BY_NAME[name]
    args = w.make(batch, np.random.default_rng(0))
    bl = sb.batch_lower(w.fn, in_axes=w.in_axes, out_axes=w.out_axes, tune=False)
    return bl.lower(*args).module


# (workload, batch, chunk the model picks: None full batch, 1 the lane loop)
CASES = [
    ("ensemble_mlp", 8, None), ("ensemble_mlp", 64, None),       # results 2 MiB
    ("ensemble_mlp", 128, None), ("ensemble_mlp", 512, 1),       # 4 / 16 MiB
    ("ensemble_mlp_wide", 8, None), ("ensemble_mlp_wide", 64, None),  # 4 MiB
    ("ensemble_mlp_wide", 128, 1),
    ("matmul_chain", 64, None), ("matmul_chain", 512, 1),
    ("cnn_ensemble", 64, None), ("cnn_ensemble", 128, None),
    ("cnn_ensemble", 512, costmodel.CONV_CHUNK),
    # shared weights fold into one GEMM / a shared-kernel convolution: full batch
    ("cnn", 512, None), ("transformer_block", 512, None), ("scan_rnn", 512, None),
    ("mlp_axis1", 512, None),
    # per-example weight gradients: lane-batched outer products, chunks of 32
    ("per_example_grad", 8, None), ("per_example_grad", 64, costmodel.OUTER_CHUNK),
    ("per_example_grad", 512, costmodel.OUTER_CHUNK),
    ("embed_scatter", 512, None), ("sort_topk", 512, None), ("newton", 512, None),
]


@pytest.mark.parametrize("name,batch,chunk", CASES, ids=[f"{n}@{b}" for n, b, _ in CASES])
def test_decision_on_bench_workloads(name, batch, chunk):
    d = costmodel.decide(_module(name, batch), batch, "cpu")
    assert d.chunk == chunk, d.reason


def test_features_of_an_ensemble():
    f = costmodel.features(_module("ensemble_mlp", 128), 128)
    # layers 2 and 3 are lane-batched (weights and activations per lane);
    # layer 1 (shared data times per-lane weights) folds into one GEMM
    per_lane = 2 * (64 * 32 * 128 + 64 * 128 * 128 + 64 * 128 * 10)
    assert f.flops == pytest.approx(128 * per_lane)
    assert f.lane_gemm_flops == pytest.approx(128 * 2 * (64 * 128 * 128 + 64 * 128 * 10))
    assert f.lane_gemm_bytes == 128 * 64 * 128 * 4
    assert f.lane_conv_flops == 0 and f.lane_outer_flops == 0


def test_features_of_per_example_gradients():
    f = costmodel.features(_module("per_example_grad", 64), 64)
    # the weight gradients: outer products of 128 x 128, 128 x 128, 128 x 10 per lane
    assert f.lane_outer_bytes == 64 * (128 * 128 * 2 + 128 * 10) * 4
    assert f.lane_outer_flops == pytest.approx(64 * 2 * (128 * 128 * 2 + 128 * 10))
    assert f.lane_gemm_flops == 0


def test_other_platforms_and_symbolic_sizes_keep_the_full_batch():
    m = _module("ensemble_mlp", 512)
    assert costmodel.decide(m, 512, "cuda").chunk is None
    assert costmodel.decide(m, 512, "tpu").chunk is None
    assert costmodel.decide(m, "b", "cpu").chunk is None


def _vmap(w):
    return jax.jit(jax.vmap(w.fn, in_axes=w.in_axes, out_axes=w.out_axes))


@pytest.mark.parametrize("name,batch,chunk", [
    ("ensemble_mlp", 201, 1),                          # the lane loop (6.3 MiB)
    ("cnn_ensemble", 300, costmodel.CONV_CHUNK),       # 9 chunks of 32 + 12 lanes
    ("per_example_grad", 70, costmodel.OUTER_CHUNK),   # 2 chunks of 32 + 6 lanes
])
def test_model_chosen_loop_equals_vmap(name, batch, chunk):
    w = BY_NAME[name]
    args = w.make(batch, np.random.default_rng(1))
    bl = sb.batch_lower(w.fn, in_axes=w.in_axes, out_axes=w.out_axes)
    res = bl.lower(*args).report().tuning
    assert (res.source, res.choice) == ("model", chunk), str(res)
    assert "cost model" in str(res) and res.summary() == f"tuned: {res.candidates[-1].name} (model)"
    assert "while" in bl.lower(*args).as_text()
    assert_same_tree(bl(*args), _vmap(w)(*args), rtol=1e-5, atol=1e-5)


def test_model_chosen_loop_gradient_equals_vmap():
    w = BY_NAME["ensemble_mlp"]
    params, x = w.make(256, np.random.default_rng(2))  # 8 MiB results
    bl = sb.batch_lower(w.fn, in_axes=w.in_axes)
    assert bl.lower(params, x).report().tuning.choice == 1

    def loss(f):
        return lambda p: jnp.sum(jnp.tanh(f(p, x)))
    got = jax.grad(loss(bl))(params)
    want = jax.grad(loss(jax.vmap(w.fn, in_axes=w.in_axes)))(params)
    assert_same_tree(got, want, rtol=1e-4, atol=1e-5)


def test_tune_false_keeps_the_full_batch():
    w = BY_NAME["ensemble_mlp"]
    args = w.make(128, np.random.default_rng(0))
    bl = sb.batch_lower(w.fn, in_axes=w.in_axes, tune=False)
    low = bl.lower(*args)
    assert low.report().tuning is None
    assert "stablehlo.while" not in low.as_text()
    assert_same_tree(bl(*args), _vmap(w)(*args), rtol=1e-5, atol=1e-5)


def test_model_keeps_the_full_batch_where_it_does_not_pay():
    w = BY_NAME["transformer_block"]
    args = w.make(64, np.random.default_rng(0))
    low = sb.batch_lower(w.fn, in_axes=w.in_axes).lower(*args)
    res = low.report().tuning
    assert (res.source, res.choice) == ("model", None)
    assert "stablehlo.while" not in low.as_text()


def test_coupled_lanes_keep_the_full_batch():
    """A collective over the batch axis couples the lanes: never a loop,
    even where the model would pick one for the same arithmetic."""
    def f(w, x):
        y = jnp.tanh(x @ w)
        return y - jax.lax.pmean(y, "i")
    rng = np.random.default_rng(3)
    w = jnp.asarray(rng.standard_normal((128, 128, 128)) / 12, jnp.float32)
    x = jnp.asarray(rng.standard_normal((128, 96, 128)), jnp.float32)  # 6 MiB results
    # the same dot without the collective: the model would loop
    assert sb.batch_lower(lambda w, x: jnp.tanh(x @ w)).lower(w, x).report().tuning.choice == 1
    bl = sb.batch_lower(f, axis_name="i")
    low = bl.lower(w, x)
    assert low.report().tuning is None
    assert "stablehlo.while" not in low.as_text()
    assert_same_tree(bl(w, x), jax.jit(jax.vmap(f, axis_name="i"))(w, x), rtol=1e-4, atol=1e-5)


def test_scaling_options_are_not_overridden():
    w = BY_NAME["ensemble_mlp"]
    args = w.make(128, np.random.default_rng(0))
    low = sb.batch_lower(w.fn, in_axes=w.in_axes, chunk_size=16).lower(*args)
    assert low.report().tuning is None


def test_model_chosen_loop_with_batch_on_other_axes():
    """in_axes / out_axes != 0: the loop moves the lanes as the full batch does."""
    def f(w, x):
        return jnp.tanh(x @ w)
    rng = np.random.default_rng(4)
    w = jnp.asarray(rng.standard_normal((128, 128, 130)) / 12, jnp.float32)
    x = jnp.asarray(rng.standard_normal((96, 130, 128)), jnp.float32)  # 6 MiB results
    bl = sb.batch_lower(f, in_axes=(2, 1), out_axes=1)
    assert bl.lower(w, x).report().tuning.choice == 1
    assert_same_tree(bl(w, x), jax.vmap(f, in_axes=(2, 1), out_axes=1)(w, x),
                     rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("batch,n,chunk", [
    (16384, 8, None),   # 4 MiB results, but 8x8 products: the loop ran 4.8x slower
    (512, 48, None),    # 0.9 MFLOP a lane: the loop ran 1.5x slower
    (1024, 64, 1),      # 2.1 MFLOP a lane, 16 MiB: the loop ran 0.69x
])
def test_tiny_per_lane_products_keep_the_full_batch(batch, n, chunk):
    x = jax.ShapeDtypeStruct((batch, n, n), jnp.float32)
    ws = [jax.ShapeDtypeStruct((batch, n, n), jnp.float32)] * 4
    module = sb.batch_lower(BY_NAME["matmul_chain"].fn, tune=False).lower(x, ws).module
    assert costmodel.decide(module, batch, "cpu").chunk == chunk


@pytest.mark.parametrize("name,batch,chunk", [
    ("ensemble_mlp", 201, 1),                          # the lane loop (6.3 MiB)
    ("per_example_grad", 70, costmodel.OUTER_CHUNK),   # chunks and a remainder
])
def test_model_chosen_loop_lowers_no_exported_call_and_no_lapack(monkeypatch, name, batch,
                                                                 chunk):
    """The first call of a model-chosen loop exports the function for one
    example once: the loop is built as MLIR around the per-chunk modules
    (chunking.loop_module), and nothing lowers Exported.call, whose lowering
    would set up LAPACK for a module that does not use it (~0.3 s)."""
    from jax._src.lax import linalg
    lapack, exported_calls, exports = [], [], []
    monkeypatch.setattr(linalg, "initialize_lapack", lambda: lapack.append(1))
    real_call, real_export = jax.export.Exported.call, jax.export.export
    monkeypatch.setattr(jax.export.Exported, "call",
                        lambda self, *a, **k: exported_calls.append(1) or real_call(self, *a, **k))
    monkeypatch.setattr(jax.export, "export",
                        lambda *a, **k: exports.append(1) or real_export(*a, **k))
    w = BY_NAME[name]
    args = w.make(batch, np.random.default_rng(3))
    bl = sb.batch_lower(lambda *a: w.fn(*a), in_axes=w.in_axes, out_axes=w.out_axes)
    got = bl(*args)
    assert bl.lower(*args).report().tuning.choice == chunk
    assert (lapack, exported_calls) == ([], [])
    assert len(exports) == 1
    assert_same_tree(got, _vmap(w)(*args), rtol=1e-5, atol=1e-5)


def test_chunk_loop_of_a_lapack_function_equals_vmap():
    """inline.call merges a module with LAPACK custom calls too (and sets
    LAPACK up for it, as jax does)."""
    a = jnp.asarray(np.random.default_rng(4).standard_normal((5, 3, 3)), jnp.float32) + \
        3 * jnp.eye(3)
    b = jnp.ones((5, 3), jnp.float32)
    for chunk in (1, 2):
        bl = sb.batch_lower(jnp.linalg.solve, chunk_size=chunk)
        assert_same_tree(bl(a, b), jax.vmap(jnp.linalg.solve)(a, b), rtol=1e-5, atol=1e-5)
        assert_same_tree(jax.grad(lambda a: bl(a, b).sum())(a),
                         jax.grad(lambda a: jax.vmap(jnp.linalg.solve)(a, b).sum())(a),
                         rtol=1e-4, atol=1e-4)


# ---- batch_exported: the same default (tune=None), for CPU-only artifacts ----

def _exported(w, args, platforms=None):
    """``w.fn`` exported for one example (the batch axes dropped)."""
    from stablehlo_batch import axes as ax
    leaves, tree = jax.tree_util.tree_flatten(args)
    dims = ax.flatten_axes("in_axes", jax.tree_util.tree_structure((tuple(args), {})),
                           (w.in_axes, 0))
    one = [jax.ShapeDtypeStruct(x.shape[:d] + x.shape[d + 1:], x.dtype) if d is not None
           else jax.ShapeDtypeStruct(x.shape, x.dtype) for x, d in zip(leaves, dims)]
    kw = {} if platforms is None else dict(platforms=platforms)
    return jax.export.export(jax.jit(w.fn), **kw)(*jax.tree_util.tree_unflatten(tree, one))


@pytest.mark.parametrize("name,batch,chunk", [
    ("ensemble_mlp", 201, 1),                          # the lane loop
    ("per_example_grad", 70, costmodel.OUTER_CHUNK),   # chunks of 32 and a remainder
    ("transformer_block", 64, None),                   # the full batch pays
])
def test_batch_exported_uses_the_cost_model(name, batch, chunk):
    from stablehlo_batch.export import strategy_of
    w = BY_NAME[name]
    args = w.make(batch, np.random.default_rng(5))
    exp = _exported(w, args)
    bexp = sb.batch_exported(exp, in_axes=w.in_axes, out_axes=w.out_axes, axis_size=batch)
    res = strategy_of(bexp)
    assert (res.source, res.choice) == ("model", chunk), str(res)
    assert ("stablehlo.while" in bexp.mlir_module()) == (chunk is not None)
    want = _vmap(w)(*args)
    assert_same_tree(bexp.call(*args), want, rtol=1e-5, atol=1e-5)
    # it serializes and runs like any other artifact
    again = jax.export.deserialize(bexp.serialize())
    assert_same_tree(again.call(*args), want, rtol=1e-5, atol=1e-5)
    full = sb.batch_exported(exp, in_axes=w.in_axes, out_axes=w.out_axes, axis_size=batch,
                             tune=False)
    assert "stablehlo.while" not in full.mlir_module() or chunk is None
    assert strategy_of(full) is None


def _lane_gemm(w, x):
    return jnp.tanh(x @ w)


def test_batch_exported_keeps_the_full_batch_for_other_platforms():
    """The model's thresholds are XLA:CPU's: an artifact for several
    platforms (or none of them CPU) keeps the full batch, reason given."""
    from stablehlo_batch.export import strategy_of
    rng = np.random.default_rng(6)
    w = jnp.asarray(rng.standard_normal((128, 128, 128)) / 12, jnp.float32)
    x = jnp.asarray(rng.standard_normal((128, 96, 128)), jnp.float32)  # 6 MiB results
    one = (jax.ShapeDtypeStruct((128, 128), jnp.float32),
           jax.ShapeDtypeStruct((96, 128), jnp.float32))
    want = jax.jit(jax.vmap(_lane_gemm))(w, x)
    cpu = jax.export.export(jax.jit(_lane_gemm))(*one)
    bexp = sb.batch_exported(cpu, axis_size=128)
    assert strategy_of(bexp).choice == 1 and "stablehlo.while" in bexp.mlir_module()
    assert_same_tree(bexp.call(w, x), want, rtol=1e-5, atol=1e-5)
    # (an artifact for several platforms is refused by batch_exported
    # altogether: its module uses global constants, the platform index)
    exp = jax.export.export(jax.jit(_lane_gemm), platforms=("cuda",))(*one)
    bexp = sb.batch_exported(exp, axis_size=128)
    res = strategy_of(bexp)
    assert res.choice is None and "CPU alone" in res.reason, str(res)
    assert "stablehlo.while" not in bexp.mlir_module()
    assert bexp.mlir_module() == sb.batch_exported(exp, axis_size=128, tune=False).mlir_module()
    # a symbolic batch size: one artifact for every size, the full batch
    bexp = sb.batch_exported(cpu, axis_size="b")
    assert strategy_of(bexp).choice is None and "symbolic" in strategy_of(bexp).reason
    assert_same_tree(bexp.call(w, x), want, rtol=1e-5, atol=1e-5)
