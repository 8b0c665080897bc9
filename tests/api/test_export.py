"""jax.export artifacts: batch_exported, vmappable (jax.vmap of an Exported),
the CLI on serialized Exported files, and the end-to-end round trip into a
process that imports only jax."""
import io
import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import stablehlo_batch as sb
from batch_cases import make, mlp, newton_sqrt
from conftest import assert_same_tree
from stablehlo_batch import module_io
from stablehlo_batch.export import batch_exported, vmappable

TOL = dict(rtol=1e-5, atol=1e-5)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _params(rng, sizes=(4, 5, 3)):
    return [(make(rng, (a, b), jnp.float32, None, 0), make(rng, (b,), jnp.float32, None, 0))
            for a, b in zip(sizes[:-1], sizes[1:])]


@pytest.mark.parametrize("in_axes,out_axes,size", [((None, 0), 0, 3), ((None, 1), 1, 1),
                                                   ((0, -1), -1, 8)])
def test_batch_exported_mlp(rng, in_axes, out_axes, size):
    params = _params(rng)
    x = make(rng, (2, 4), jnp.float32, None, 0)
    exp = jax.export.export(jax.jit(mlp))(params, x)
    pa = params if in_axes[0] is None else jax.tree.map(
        lambda p: make(rng, p.shape, p.dtype, 0, size), params)
    xs = make(rng, (2, 4), jnp.float32, in_axes[1], size)
    bexp = batch_exported(exp, in_axes, out_axes, axis_size=size)
    want = jax.vmap(mlp, in_axes, out_axes)(pa, xs)
    assert_same_tree(bexp.call(pa, xs), want, rtol=1e-5, atol=1e-5)
    again = jax.export.deserialize(bexp.serialize())
    assert_same_tree(jax.jit(again.call)(pa, xs), want, rtol=1e-5, atol=1e-5)


def test_batch_exported_bytes_int_and_kwargs(rng):
    def f(x, *, k):
        return x * k + jnp.cumsum(x), jnp.sum(x)
    x = make(rng, (4,), jnp.int32, None, 0)
    exp = jax.export.export(jax.jit(f))(x, k=jnp.int32(2))
    bexp = batch_exported(exp.serialize(), None, (0, None), axis_size=3)
    ks = jnp.arange(3, dtype=jnp.int32)
    got = bexp.call(x, k=ks)
    # kwargs are batched along 0; the second result does not depend on k.
    want = jax.vmap(lambda k: f(x, k=k), out_axes=(0, 0))(ks)
    assert_same_tree(got[0], want[0])
    assert_same_tree(got[1], want[1][0])


def test_batch_exported_errors(rng):
    exp = jax.export.export(jax.jit(jnp.sin))(jnp.ones(3))
    with pytest.raises(ValueError, match="out of range"):
        batch_exported(exp, 2, axis_size=2)
    with pytest.raises(ValueError, match="got axis spec None but output was batched"):
        batch_exported(exp, 0, None, axis_size=2)
    with pytest.raises(TypeError, match="Exported"):
        batch_exported("nope", axis_size=2)


def test_vmappable_vmap_jit_lax_map_nested(rng):
    params = _params(rng)
    exp = jax.export.export(jax.jit(mlp))(params, jnp.zeros(4))
    with pytest.raises(NotImplementedError):  # what vmappable fixes
        jax.vmap(exp.call, in_axes=(None, 0))(params, jnp.zeros((2, 4)))
    assert sb.vmappable is vmappable and sb.batch_exported is batch_exported
    f = vmappable(exp.serialize())
    xs = make(rng, (4,), jnp.float32, 0, 3)
    want = jax.vmap(mlp, in_axes=(None, 0))(params, xs)
    assert_same_tree(jax.vmap(f, in_axes=(None, 0))(params, xs), want, rtol=1e-5, atol=1e-5)
    assert_same_tree(jax.jit(jax.vmap(f, in_axes=(None, 0)))(params, xs), want,
                     rtol=1e-5, atol=1e-5)
    assert_same_tree(jax.lax.map(lambda x: f(params, x), xs, batch_size=2), want,
                     rtol=1e-5, atol=1e-5)
    # Nested: the outer vmap batches the weights, the inner one the inputs.
    ens = jax.tree.map(lambda p: make(rng, p.shape, p.dtype, 0, 2), params)
    xss = make(rng, (3, 4), jnp.float32, 0, 2)  # per member, per example
    nested = jax.vmap(jax.vmap(f, in_axes=(None, 0)), in_axes=(0, 0))
    assert_same_tree(nested(ens, xss),
                     jax.vmap(jax.vmap(mlp, in_axes=(None, 0)), in_axes=(0, 0))(ens, xss),
                     rtol=1e-5, atol=1e-5)
    assert_same_tree(f(params, xs[0]), mlp(params, xs[0]), rtol=1e-6, atol=1e-6)


def test_vmappable_gradients(rng):
    """grad of the call, grad of its vmap, and per-example grads (vmap of
    grad): the VJP module is batched by the same rule."""
    params = _params(rng)
    loss = lambda p, x: jnp.sum(mlp(p, x) ** 2)
    f = vmappable(jax.export.export(jax.jit(loss))(params, jnp.zeros(4)))
    xs = make(rng, (4,), jnp.float32, 0, 3)
    assert_same_tree(jax.grad(f)(params, xs[0]), jax.grad(loss)(params, xs[0]), **TOL)
    total = lambda g: lambda p: jnp.sum(jax.vmap(g, (None, 0))(p, xs))
    assert_same_tree(jax.grad(total(f))(params), jax.grad(total(loss))(params), **TOL)
    assert_same_tree(jax.vmap(jax.grad(f), (None, 0))(params, xs),
                     jax.vmap(jax.grad(loss), (None, 0))(params, xs), **TOL)


def test_batch_exported_gradient_of_shared_weights(rng):
    """jax.grad of a batch_exported artifact's call: the artifact's own VJP
    sums the shared weights' cotangents inside the module (one product
    contracting the batch, no per-lane weight gradients)."""
    params = _params(rng)
    loss = lambda p, x: jnp.sum(mlp(p, x) ** 2)
    exp = jax.export.export(jax.jit(loss))(params, jnp.zeros(4))
    bexp = jax.export.deserialize(batch_exported(exp, (None, 0), axis_size=5).serialize(vjp_order=1))
    xs = make(rng, (4,), jnp.float32, 0, 5)
    assert_same_tree(jax.grad(lambda p: jnp.sum(bexp.call(p, xs)))(params),
                     jax.grad(lambda p: jnp.sum(jax.vmap(loss, (None, 0))(p, xs)))(params),
                     **TOL)
    text = bexp.vjp().mlir_module()
    assert "tensor<5x4x5xf32>" not in text and "tensor<5x5x4xf32>" not in text


@pytest.mark.parametrize("size", [0, 3])
@pytest.mark.parametrize("serialized", [False, True])
def test_batch_exported_gradient_of_unbatched_result(rng, size, serialized):
    """jax.grad of a batch_exported artifact with an out_axes=None result,
    at batch size 0 too: that result's cotangent rode on lane 0, which size 0
    lacks (an IndexError from ``.at[0]`` before); as under jax.vmap, whose
    unbatched result is computed outside the batch, it reaches the unbatched
    weight, and the batched argument's cotangent is empty. An int argument
    (float0 cotangent) rides along."""
    def f(w, x, k):
        return x * w + k.astype(jnp.float32), jnp.sin(w) * jnp.sum(w), k * 2
    w = make(rng, (4,), jnp.float32, None, 0)
    exp = jax.export.export(jax.jit(f))(w, jnp.zeros(4), jnp.zeros(4, jnp.int32))
    in_axes, out_axes = (None, 1, 0), (0, None, 0)
    bexp = batch_exported(exp, in_axes, out_axes, axis_size=size)
    if serialized:
        bexp = jax.export.deserialize(bexp.serialize(vjp_order=1))
    xs = make(rng, (4,), jnp.float32, 1, size)
    ks = jnp.arange(size * 4, dtype=jnp.int32).reshape(size, 4)
    wave = jnp.cos(jnp.arange(4.0))

    def loss(call):
        def g(w, xs):
            a, b, _ = call(w, xs, ks)
            return jnp.sum(a * 1.5) + jnp.sum(b * wave)
        return g
    ref = jax.vmap(f, in_axes, out_axes, axis_size=size)
    got = jax.grad(loss(bexp.call), (0, 1))(w, xs)
    want = jax.grad(loss(ref), (0, 1))(w, xs)
    assert got[1].shape == (4, size)
    assert_same_tree(got, want, **TOL)
    assert np.abs(np.asarray(got[0])).sum() > 0  # the unbatched result's gradient counts


def _cli(args, stdin=b""):
    proc = subprocess.run([sys.executable, "-m", "stablehlo_batch.cli", *args],
                          input=stdin, capture_output=True, timeout=120, cwd=ROOT)
    return proc.returncode, proc.stdout, proc.stderr.decode()


# Runs in a fresh interpreter that cannot import stablehlo_batch or passes.
_LOADER = textwrap.dedent("""
    import importlib.abc, json, sys
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("stablehlo_batch", "passes"):
                raise ImportError("blocked: " + name)
    sys.meta_path.insert(0, Block())
    import numpy as np, jax
    jobs = json.loads(sys.argv[1])
    for artifact, inputs, output in jobs:
        exp = jax.export.deserialize(bytearray(open(artifact, "rb").read()))
        args = np.load(inputs)
        leaves = [args[f"arr_{i}"] for i in range(len(args.files))]
        args, kwargs = jax.tree_util.tree_unflatten(exp.in_tree, leaves)
        out = jax.tree_util.tree_leaves(exp.call(*args, **kwargs))
        np.savez(output, *[np.asarray(o) for o in out])
    assert not any(m.split(".")[0] in ("stablehlo_batch", "passes") for m in sys.modules)
""")


def test_round_trip_cli_to_jax_only_process(rng, tmp_path):
    """Export, serialize, batch with the CLI, run where only jax is installed."""
    params = _params(rng)
    cases = {
        # name: (fn, per-example args, flat in_axes, batched args, vmap in_axes)
        "mlp": (mlp, (params, jnp.zeros(4)), "none,none,none,none,0",
                (params, make(rng, (4,), jnp.float32, 0, 5)), (None, 0)),
        "while": (newton_sqrt, (jnp.ones(3), jnp.float32(1e-4)), "0,none",
                  (jnp.abs(make(rng, (3,), jnp.float32, 0, 5)) + 0.5,
                   jnp.float32(1e-4)), (0, None)),
    }
    jobs, wants = [], {}
    for name, (fn, ex_args, axes, args, vaxes) in cases.items():
        src, dst = tmp_path / f"{name}.jax_exported", tmp_path / f"{name}_b5.exported"
        src.write_bytes(jax.export.export(jax.jit(fn))(*ex_args).serialize())
        rc, _, err = _cli([str(src), "--axis-size=5", f"--in-axes={axes}", "-o", str(dst)])
        assert rc == 0, err
        np.savez(tmp_path / f"{name}_in.npz", *[np.asarray(a) for a in jax.tree.leaves(args)])
        jobs.append((str(dst), str(tmp_path / f"{name}_in.npz"),
                     str(tmp_path / f"{name}_out.npz")))
        wants[name] = jax.tree.leaves(jax.vmap(fn, in_axes=vaxes)(*args))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-I", "-c", _LOADER, json.dumps(jobs)],
                          capture_output=True, timeout=180, cwd=str(tmp_path), env=env)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    for name, (_, _, out) in zip(cases, jobs):
        got = np.load(out)
        got = [got[f"arr_{i}"] for i in range(len(got.files))]
        assert_same_tree(got, [np.asarray(w) for w in wants[name]], rtol=1e-5, atol=1e-5)


def _cli_in_process(monkeypatch, capsysbinary, args, stdin=b""):
    """The CLI's main in this process (no interpreter start-up): rc, out, err."""
    from stablehlo_batch import cli
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    rc = cli.main(args)
    out, err = capsysbinary.readouterr()
    return rc, out, err.decode()


def test_cli_formats(rng, tmp_path, monkeypatch, capsysbinary):
    exp = jax.export.export(jax.jit(lambda x, w: x * w))(jnp.ones(3), jnp.ones(3))
    data = exp.serialize()

    def run(args, stdin=b""):
        return _cli_in_process(monkeypatch, capsysbinary, args, stdin)

    # stdin: detected as an exported function; text and bytecode out.
    rc, out, err = run(["-", "--axis-size=4", "--in-axes=0,none", "--output-format=mlir"],
                       data)
    assert rc == 0, err
    assert b"tensor<4x3xf32>" in out and b"jax.uses_shape_polymorphism" in out
    dst = tmp_path / "out.mlirbc"
    rc, _, err = run(["-", "--axis-size=4", "--in-axes=0,none", "-o", str(dst)], data)
    assert rc == 0, err
    assert dst.read_bytes().startswith(b"ML\xefR")
    assert "tensor<4x3xf32>" in module_io.module_to_text(
        module_io.parse_module(dst.read_bytes()))
    # exported out on stdout, explicit formats.
    rc, out, err = run(["-", "--input-format=exported", "--output-format=exported",
                        "--axis-size=2", "--in-axes=none,0"], data)
    assert rc == 0, err
    bexp = jax.export.deserialize(bytearray(out))
    x, ws = jnp.arange(3.), make(rng, (3,), jnp.float32, 0, 2)
    assert_same_tree(bexp.call(x, ws), x * ws)
    # A plain module cannot become an Exported; a bad exported file fails cleanly.
    rc, _, err = run(["-", "--axis-size=2", "--output-format=exported"],
                     b"func.func @main(%x: tensor<f32>) -> tensor<f32> { return %x : tensor<f32> }")
    assert rc == 1 and "needs an exported input" in err and err.count("\n") == 1
    rc, _, err = run(["-", "--axis-size=2", "--input-format=exported"], b"garbage")
    assert rc == 1 and err.startswith("error:") and err.count("\n") == 1
