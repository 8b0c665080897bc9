"""batch_lower(..., mesh=Mesh(devices, ("batch",))): the batch axis split over
devices by XLA's SPMD partitioner. The multi-device checks run in a child
process with four host CPU devices (XLA_FLAGS must be set before jax starts)."""
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import stablehlo_batch as sb

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_CHILD = textwrap.dedent("""
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    import stablehlo_batch as sb
    assert jax.device_count() == 4
    mesh = Mesh(np.array(jax.devices()), ("batch",))
    rng = np.random.default_rng(0)

    def mlp(w, x):
        return jnp.tanh(x @ w), jnp.sum(w)

    def newton(x):
        return jax.lax.while_loop(lambda y: jnp.max(jnp.abs(y * y - x)) > 1e-4,
                                  lambda y: 0.5 * (y + x / y), x + 1.0)

    w = jnp.asarray(rng.standard_normal((16, 8)), jnp.float32)
    for size, in_axes, out_axes in ((8, (None, 0), (0, None)), (4, (None, 1), (1, None))):
        shape = [5, 16]
        shape.insert(in_axes[1], size)
        xs = jnp.asarray(rng.standard_normal(shape), jnp.float32)
        bl = sb.batch_lower(mlp, in_axes, out_axes, mesh=mesh, axis_name="batch")
        want = jax.vmap(mlp, in_axes, out_axes)(w, xs)
        for arg in (xs, jax.device_put(xs, NamedSharding(mesh, P(*[
                "batch" if i == in_axes[1] else None for i in range(3)])))):
            got = bl(w, arg)
            for g, v in zip(got, want):
                np.testing.assert_allclose(np.asarray(g), np.asarray(v), rtol=1e-5, atol=1e-5)
        out = got[0]
        # Each device holds size/4 lanes of the batched output; the rest replicated.
        assert len(out.addressable_shards) == 4
        for s in out.addressable_shards:
            assert s.data.shape[out_axes[0]] == size // 4, s.data.shape
        assert out.sharding.spec[out_axes[0]] == "batch"
        assert got[1].sharding.is_fully_replicated
        low = bl.lower(w, xs)
        per_device = [5, 8]
        per_device.insert(out_axes[0], size // 4)
        hlo = low.compile().as_text()
        assert "f32[%s]" % ",".join(map(str, per_device)) in hlo, hlo[:3000]
        assert low.exported.nr_devices == 4
        # The artifact keeps the shardings.
        again = jax.export.deserialize(low.exported.serialize())
        assert again.nr_devices == 4
        got = jax.jit(again.call, in_shardings=bl.lower(w, xs).exported.in_shardings_jax(mesh),
                      out_shardings=again.out_shardings_jax(mesh))(w, xs)
        np.testing.assert_allclose(np.asarray(got[0]), np.asarray(want[0]), rtol=1e-5, atol=1e-5)

    # A while loop with a batched predicate, split over the devices.
    xs = jnp.abs(jnp.asarray(rng.standard_normal((8, 3)), jnp.float32)) + 0.5
    got = sb.batch_lower(newton, mesh=mesh)(xs)
    np.testing.assert_allclose(np.asarray(got), np.asarray(jax.vmap(newton)(xs)), rtol=1e-5)
    assert [s.data.shape for s in got.addressable_shards] == [(2, 3)] * 4
    # Gradients through the sharded batched function.
    loss = lambda w, f: jnp.sum(f(mlp, in_axes=(None, 0), out_axes=(0, None))(w, xs16)[0])
    xs16 = jnp.asarray(rng.standard_normal((8, 16)), jnp.float32)
    g = jax.grad(lambda w: loss(w, lambda *a, **k: sb.batch_lower(*a, **k, mesh=mesh)))(w)
    np.testing.assert_allclose(np.asarray(g), np.asarray(jax.grad(lambda w: loss(w, jax.vmap))(w)),
                               rtol=1e-4, atol=1e-4)
    # Forward mode too.
    t = jnp.ones_like(w)
    got = jax.jvp(lambda w: loss(w, lambda *a, **k: sb.batch_lower(*a, **k, mesh=mesh)), (w,), (t,))
    want = jax.jvp(lambda w: loss(w, jax.vmap), (w,), (t,))
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-4, atol=1e-4)
    # An empty result (found by tests/gen_programs.py): XLA gave every device
    # the whole empty array for a sharded one; it stays replicated now.
    got = sb.batch_lower(lambda x: x[:0] * 2, mesh=mesh)(xs)
    assert np.asarray(got).shape == (8, 0)
    # An empty argument under jax.grad (make fuzz, stop 21): its cotangent is
    # a result of the call's transpose, with the argument's sharding; it
    # stays replicated too.
    e = jnp.ones((8, 1, 0), jnp.float32)
    for f in (lambda x: jnp.sin(x), lambda x: jnp.sin(x).sum() + xs[0, 0]):
        got = jax.grad(lambda x: sb.batch_lower(f, mesh=mesh)(x).sum())(e)
        want = jax.grad(lambda x: jax.vmap(f)(x).sum())(e)
        assert np.asarray(got).shape == np.asarray(want).shape == (8, 1, 0)
    try:
        sb.batch_lower(mlp, (None, 0), (0, None), mesh=mesh)(w, jnp.ones((6, 5, 16)))
    except ValueError as e:
        assert "multiple of the 4 devices" in str(e)
    else:
        raise AssertionError("6 lanes on 4 devices should fail")
    print("OK")
""")


def _run_on_four_devices(script: str):
    """Runs ``script`` in a child process with four host CPU devices (XLA_FLAGS
    must be set before jax starts); it prints OK at its end."""
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
               JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True,
                          timeout=300, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stderr.decode()[-4000:]
    assert proc.stdout.decode().strip().endswith("OK")


def test_batch_axis_split_over_four_devices():
    _run_on_four_devices(_CHILD)


_NESTED_CHILD = textwrap.dedent("""
    import jax, jax.numpy as jnp, numpy as np
    from jax import lax
    from jax.sharding import Mesh
    import stablehlo_batch as sb
    assert jax.device_count() == 4
    mesh = Mesh(np.array(jax.devices()), ("batch",))
    mesh1 = Mesh(np.array(jax.devices()[:1]), ("batch",))
    rng = np.random.default_rng(0)

    def close(got, want):
        for g, v in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
            np.testing.assert_allclose(np.asarray(g), np.asarray(v), rtol=1e-4, atol=1e-4)

    def f(w, x):
        return jnp.tanh(x @ w), jnp.sum(w)

    w = jnp.asarray(rng.standard_normal((3, 5, 4)), jnp.float32)
    xs = jnp.asarray(rng.standard_normal((3, 8, 5)), jnp.float32)
    ref = jax.vmap(f, (None, 0), (0, None))

    def inner(m):  # a mesh= batch_lower called by the function an outer batch_lower batches
        return lambda w, x: sb.batch_lower(f, (None, 0), (0, None), mesh=m)(w, x)

    want = jax.vmap(ref)(w, xs)
    # Outer batch over both (the inner's unbatched w batched by the outer), over
    # x alone (w unbatched at both levels), on another axis, the inner closing
    # over an outer-batched value, a one-device mesh, nested three deep.
    close(sb.batch_lower(inner(mesh))(w, xs), want)
    close(sb.batch_lower(inner(mesh), (None, 0))(w[0], xs), jax.vmap(ref, (None, 0))(w[0], xs))
    xt = jnp.moveaxis(xs, 0, 2)
    close(sb.batch_lower(inner(mesh), (0, 2), (1, 0))(w, xt),
          jax.vmap(ref, (0, 2), (1, 0))(w, xt))
    close(sb.batch_lower(lambda w, x: sb.batch_lower(lambda x: f(w, x), 0, (0, None),
                                                     mesh=mesh)(x))(w, xs), want)
    close(sb.batch_lower(inner(mesh1))(w, xs), want)
    close(sb.batch_lower(sb.batch_lower(sb.batch_lower(jnp.sin, mesh=mesh)))(xs[None]),
          jnp.sin(xs[None]))
    # The outer with a mesh of its own (the inner's mesh is left out).
    w4, x4 = jnp.concatenate([w, w[:1]]), jnp.concatenate([xs, xs[:1]])
    got = sb.batch_lower(inner(mesh), mesh=mesh)(w4, x4)
    close(got, jax.vmap(ref)(w4, x4))
    assert [s.data.shape[0] for s in got[0].addressable_shards] == [1] * 4
    # Under jit, grad and jvp; named axes inside and outside.
    close(jax.jit(sb.batch_lower(inner(mesh)))(w, xs), want)
    close(sb.batch_lower(jax.jit(inner(mesh)))(w, xs), want)
    loss = lambda batch, w: jnp.sum(batch(inner(mesh) if batch is sb.batch_lower else
                                          lambda w, x: ref(w, x))(w, xs)[0] ** 2)
    close(jax.grad(lambda w: loss(sb.batch_lower, w))(w), jax.grad(lambda w: loss(jax.vmap, w))(w))
    close(jax.jvp(lambda w: loss(sb.batch_lower, w), (w,), (jnp.ones_like(w),)),
          jax.jvp(lambda w: loss(jax.vmap, w), (w,), (jnp.ones_like(w),)))
    g = lambda x: x - lax.pmean(x, "i") + lax.axis_index("i") + lax.psum(x, "j")
    close(sb.batch_lower(sb.batch_lower(g, axis_name="i", mesh=mesh), axis_name="j")(xs),
          jax.vmap(jax.vmap(g, axis_name="i"), axis_name="j")(xs))
    # A host callback next to it (the outer takes the callback route).
    def with_callback(vmapped):
        def fn(x):
            y = jax.pure_callback(lambda a: np.asarray(a) + 1,
                                  jax.ShapeDtypeStruct(x.shape, x.dtype), x,
                                  vmap_method="sequential")
            return (sb.batch_lower(jnp.sin, mesh=mesh) if not vmapped else jax.vmap(jnp.sin))(y)
        return fn
    close(sb.batch_lower(with_callback(False))(xs), jax.vmap(with_callback(True))(xs))
    # jax's trace caches keep the traces we batch apart from the user's own:
    # a jax.jit of the same function stays sharded after batch_lower traced it,
    # and batch_lower (here its gradient) of a function jit traced first works.
    h = jax.jit(inner(mesh))
    assert h(w[0], xs[0])[0].sharding.spec[0] == "batch"
    close(jax.grad(lambda w: jnp.sum(sb.batch_lower(h)(w, xs)[0]))(w),
          jax.grad(lambda w: jnp.sum(jax.vmap(ref)(w, xs)[0]))(w))
    k = jax.jit(inner(mesh))
    close(sb.batch_lower(k)(w, xs), want)
    assert k(w[0], xs[0])[0].sharding.spec[0] == "batch"
    # The inner call in the body of a lax.scan (jit of the same function first).
    scanned = lambda w, xs: lax.scan(lambda c, x: (c + 1.0, inner(mesh)(w * c, x)[0]), 1.0, xs)
    scanned_ref = lambda w, xs: lax.scan(lambda c, x: (c + 1.0, ref(w * c, x)[0]), 1.0, xs)
    xss = jnp.stack([xs, 2 * xs], 1)
    jax.jit(scanned)(w[0], xss[0])
    close(sb.batch_lower(scanned)(w, xss), jax.vmap(scanned_ref)(w, xss))
    print("OK")
""")


def test_batch_lower_around_a_mesh_batch_lower():
    """An outer batch_lower batches the inner mesh= call without the mesh, as
    an outer jax.vmap does (it failed to verify: a sharding of the wrong rank)."""
    _run_on_four_devices(_NESTED_CHILD)

def test_mesh_errors():
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("batch",))
    x = jnp.ones((2, 3))
    with pytest.raises(ValueError, match="not an axis of the mesh"):
        sb.batch_lower(jnp.sin, mesh=mesh, spmd_axis_name="data")(x)
    with pytest.raises(TypeError, match="Mesh"):
        sb.batch_lower(jnp.sin, mesh="batch")(x)
    with pytest.raises(ValueError, match="positionally"):
        sb.batch_lower(lambda x, *, y: x * y, mesh=mesh)(x, y=x)
    with pytest.raises(ValueError, match="cannot be combined"):
        sb.batch_lower(jnp.sin, mesh=mesh, chunk_size=1)(x)
    # One device: still correct, and the module carries the sharding.
    got = sb.batch_lower(jnp.sin, mesh=mesh)(x)
    np.testing.assert_allclose(np.asarray(got), np.sin(np.ones((2, 3))), rtol=1e-6)


_CONSTRAINT_CHILD = textwrap.dedent("""
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P, Mesh
import stablehlo_batch as sb
assert len(jax.devices()) == 4
mesh = Mesh(np.array(jax.devices()), ("d",))
sh = NamedSharding(mesh, P("d"))

def f(x, w):
    return jax.lax.with_sharding_constraint(jnp.sin(x) * w, sh) + 1

x = jnp.arange(32.0).reshape(4, 8) / 7
w = jnp.arange(8.0)
bl, vm = sb.batch_lower(f, (0, None)), jax.vmap(f, (0, None))
cases = {
    "eager": lambda g: g(x, w),
    "jit": lambda g: jax.jit(g)(x, w),
    "replicated args": lambda g: g(*jax.device_put((x, w), NamedSharding(mesh, P()))),
    "grad": lambda g: jax.grad(lambda x, w: g(x, w).sum(), (0, 1))(x, w),
    "jit grad": lambda g: jax.jit(jax.grad(lambda x, w: g(x, w).sum(), (0, 1)))(x, w),
    "jvp": lambda g: jax.jvp(g, (x, w), (x, w)),
}
for name, case in cases.items():
    got, want = case(bl), case(vm)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(a, b, rtol=1e-5, err_msg=name)
# Called where the batched module cannot run on the mesh's 4 devices (an
# outer jax.vmap lowers it for one): a typed error naming the constraint
# and the user's line, not jax's "exported for 4 devices".
try:
    jax.vmap(bl, (0, None))(jnp.stack([x, x]), w)
except sb.UnsupportedOpError as e:
    assert "sharding_constraint" in str(e) and "4 devices" in str(e), e
    assert "<string>:10" in str(e), e
else:
    raise AssertionError("expected UnsupportedOpError")
print("OK")
""")


def test_sharding_constraint_to_four_devices_inside_the_function():
    # with_sharding_constraint to a 4-device mesh inside fn: jax.vmap runs on
    # the mesh's devices; batch_lower's module keeps the constraint's device
    # count and puts the arguments there (before: jax's raw "exported for 4
    # devices" error).
    _run_on_four_devices(_CONSTRAINT_CHILD)


def test_sharding_constraint_to_an_abstract_mesh_on_one_device():
    # One device: a constraint to an AbstractMesh of 4 is dropped, as under
    # jax.jit(jax.vmap(fn)).
    P = jax.sharding.PartitionSpec
    sh = jax.sharding.NamedSharding(jax.sharding.AbstractMesh((4,), ("d",)), P("d"))

    def f(x):
        return jax.lax.with_sharding_constraint(x * 2, sh) + 1
    x = jnp.arange(32.0).reshape(4, 8)
    want = jax.jit(jax.vmap(f))(x)
    np.testing.assert_allclose(sb.batch_lower(f)(x), want)
    np.testing.assert_allclose(jax.jit(sb.batch_lower(f))(x), want)
