"""batch_lower(..., chunk_size=K): the batch computed K lanes at a time (a
while loop over chunks plus a remainder call) gives jax.vmap's values, and
XLA's temporary memory shrinks with K; chunk_size="auto" fits a memory limit."""
import jax
import jax.numpy as jnp
from jax import lax
import numpy as np
import pytest

import stablehlo_batch as sb
from batch_cases import make
from conftest import assert_same_tree

TOL = dict(rtol=1e-5, atol=1e-5)


def heavy(w, x):
    """A per-example (n, n) intermediate that XLA must keep in memory (sort)."""
    a = jnp.outer(x, x) @ w
    return jnp.sort(a, axis=-1)[:, -4:].sum(1) + jnp.cumsum(a, axis=0)[-1]


def two_outputs(w, x, n):
    return jnp.tanh(x @ w) * n, jnp.sum(w)


@pytest.mark.parametrize("chunk,in_axes,out_axes,size", [
    (1, (None, 0, 0), (0, None), 3),
    (3, (None, 1, 0), (1, None), 8),     # two chunks and a remainder of 2
    (4, (0, -1, None), (-1, 0), 8),      # batched weights, no remainder
    (8, (None, 0, 0), (0, None), 3),     # one chunk covers the batch
])
def test_chunked_equals_vmap(rng, chunk, in_axes, out_axes, size):
    dims = [make(rng, (5, 4), jnp.float32, in_axes[0], size),
            make(rng, (6, 5), jnp.float32, in_axes[1], size),
            make(rng, (6, 1), jnp.int32, in_axes[2], size)]
    want = jax.vmap(two_outputs, in_axes, out_axes)(*dims)
    bl = sb.batch_lower(two_outputs, in_axes, out_axes, chunk_size=chunk)
    assert_same_tree(bl(*dims), want, **TOL)
    unchunked = sb.batch_lower(two_outputs, in_axes, out_axes)(*dims)
    assert_same_tree(bl(*dims), unchunked, **TOL)
    assert ("stablehlo.while" in bl.lower(*dims).as_text()) == (chunk < size)


def test_chunked_gradient_and_jit(rng):
    w, xs = make(rng, (16, 16), jnp.float32, None, 0), make(rng, (16,), jnp.float32, 0, 7)
    loss_b = lambda w: jnp.sum(sb.batch_lower(heavy, (None, 0), chunk_size=3)(w, xs))
    loss_v = lambda w: jnp.sum(jax.vmap(heavy, (None, 0))(w, xs))
    assert_same_tree(jax.jit(jax.grad(loss_b))(w), jax.grad(loss_v)(w), rtol=1e-4, atol=1e-3)
    # The backward pass is chunked too (a loop over chunks), and so is forward
    # mode: the primal and the tangents each loop.
    unchunked = lambda w: jnp.sum(sb.batch_lower(heavy, (None, 0))(w, xs))
    assert "stablehlo.while" not in jax.jit(jax.grad(unchunked)).lower(w).as_text()
    assert "stablehlo.while" in jax.jit(jax.grad(loss_b)).lower(w).as_text()
    t = make(rng, (16, 16), jnp.float32, None, 0)
    assert_same_tree(jax.jvp(loss_b, (w,), (t,)), jax.jvp(loss_v, (w,), (t,)),
                     rtol=1e-4, atol=1e-3)
    text = jax.jit(lambda w, t: jax.jvp(loss_b, (w,), (t,))).lower(w, t).as_text()
    assert text.count("stablehlo.while") == 2, text.count("stablehlo.while")


def test_temp_memory_shrinks_with_chunk_size_and_auto_fits(rng):
    w, xs = jnp.ones((64, 64)) / 64, make(rng, (64,), jnp.float32, 0, 16)
    temps = {}
    for k in (None, 8, 2):
        low = sb.batch_lower(heavy, (None, 0), chunk_size=k).lower(w, xs)
        temps[k] = low.compile().memory_analysis().temp_size_in_bytes
    assert temps[2] < temps[8] < temps[None], temps
    limit = (temps[2] + temps[8]) // 2
    bl = sb.batch_lower(heavy, (None, 0), chunk_size="auto", memory_limit_bytes=limit)
    low = bl.lower(w, xs)
    assert low.compile().memory_analysis().temp_size_in_bytes <= limit
    assert "stablehlo.while" in low.as_text()
    assert_same_tree(bl(w, xs), jax.vmap(heavy, (None, 0))(w, xs), **TOL)


def test_chunking_errors():
    x = jnp.ones((4, 3))
    with pytest.raises(ValueError, match="positive"):
        sb.batch_lower(jnp.sin, chunk_size=0)(x)
    with pytest.raises(ValueError, match="memory_limit_bytes"):
        sb.batch_lower(jnp.sin, chunk_size="auto")(x)
    with pytest.raises(ValueError, match="auto"):
        sb.batch_lower(jnp.sin, memory_limit_bytes=10)(x)
    with pytest.raises(TypeError, match="chunk_size"):
        sb.batch_lower(jnp.sin, chunk_size=1.5)(x)
    with pytest.warns(UserWarning, match="one lane at a time"):
        sb.batch_lower(lambda v: jnp.sort(jnp.outer(v, v)), chunk_size="auto",
                       memory_limit_bytes=0)(x)


def _lane_fn(w, x, n, unused, flag):
    y = jnp.tanh(x @ w) * n
    return y, jnp.sum(w), jnp.where(flag, n, -n), (x[0] + 1j).astype(jnp.complex64)


@pytest.mark.parametrize("chunk", [1, 2])  # 2: two chunks and a remainder of 1
@pytest.mark.parametrize("in_axes,out_axes", [
    ((None, 0, 0, 0, 0), (0, None, 0, 0)),
    ((1, -1, None, None, 0), (-1, 0, 1, 0)),   # batched weights, axes inside
])
def test_loop_built_as_mlir_equals_vmap(rng, monkeypatch, in_axes, out_axes, chunk):
    """chunk_size=K builds the loop as MLIR around the per-example module (K=1)
    or the K-batched one (chunking.loop_module: no second export) -- batch axes inside the
    arguments and results, an unbatched result, an unused argument, int,
    bool and complex values -- and its gradient (the exported loop's VJP, built
    when asked for) is vmap's."""
    from stablehlo_batch import chunking
    size = 5
    args = [make(rng, (5, 4), jnp.float32, in_axes[0], size),
            make(rng, (6, 5), jnp.float32, in_axes[1], size),
            make(rng, (6, 1), jnp.int32, in_axes[2], size),
            make(rng, (3,), jnp.float32, in_axes[3], size),
            make(rng, (6, 1), jnp.float32, in_axes[4], size) > 0]
    built = []
    real = chunking.loop_module
    monkeypatch.setattr(chunking, "loop_module",
                        lambda *a, **k: built.append(real(*a, **k)) or built[-1])
    want = jax.vmap(_lane_fn, in_axes, out_axes)(*args)
    bl = sb.batch_lower(_lane_fn, in_axes, out_axes, chunk_size=chunk)
    assert_same_tree(bl(*args), want, **TOL)
    assert built and built[0] is not None and built[0].chunk_size == chunk
    assert "stablehlo.while" in bl.lower(*args).as_text()
    # the loop as an Exported (chunk_flat) and its VJP
    from stablehlo_batch.axes import batch_positions
    exp = jax.export.export(jax.jit(_lane_fn))(
        *[ax_unbatched(a, d) for a, d in zip(args, in_axes)])
    built.clear()
    bexp = chunking.chunk_flat(exp, batch_positions("t", exp.in_avals, in_axes),
                               out_axes, size, chunk).exported
    assert built and built[0] is not None
    assert_same_tree(bexp.call(*args), want, **TOL)

    def loss(f):
        return lambda w, x: jnp.sum(f(w, x, *args[2:])[0] ** 2)
    assert_same_tree(jax.grad(loss(bexp.call), (0, 1))(*args[:2]),
                     jax.grad(loss(jax.vmap(_lane_fn, in_axes, out_axes)), (0, 1))(*args[:2]),
                     rtol=1e-4, atol=1e-4)


def ax_unbatched(a, d):
    shape = a.shape if d is None else a.shape[:d % a.ndim] + a.shape[d % a.ndim + 1:]
    return jax.ShapeDtypeStruct(shape, a.dtype)


def test_lane_loop_of_prng_keys_takes_the_exported_route(rng):
    """Extended dtypes (typed PRNG keys): their IR types differ from their
    avals, so the lane loop is the exported loop; values are vmap's."""
    keys = jax.random.split(jax.random.key(0), 4)
    f = lambda k: jax.random.normal(k, (3,))  # noqa: E731
    assert_same_tree(sb.batch_lower(f, chunk_size=1)(keys), jax.vmap(f)(keys), **TOL)



def _chain(x, ws):
    for w in ws:
        x = jnp.tanh(x @ w)
    return x, jnp.float32(2.0), x.reshape(-1) * 2, jnp.stack([x, x]), x[:2].astype(jnp.int32)


@pytest.mark.parametrize("chunk", [1, 2, 3])  # 3: a chunk and a remainder of 2
def test_loop_accumulators_start_from_zeros(rng, chunk):
    """The loop's accumulators start from zeros, never from an argument
    (XLA:CPU's in-place writes into it: the tests below); every lane is
    written. Values are vmap's, also inside a jit that donates x."""
    size = 5
    x = make(rng, (4, 4), jnp.float32, 0, size)
    ws = [make(rng, (4, 4), jnp.float32, 0, size) for _ in range(2)]
    out_axes = (0, None, 0, 0, 0)
    bl = sb.batch_lower(_chain, (0, 0), out_axes, chunk_size=chunk)
    want = jax.vmap(_chain, (0, 0), out_axes)(x, ws)
    got = bl(x, ws)
    assert_same_tree(got, want, **TOL)
    donated = jax.jit(lambda x, ws: bl(x, ws), donate_argnums=0)(jnp.array(x), ws)
    assert_same_tree(donated, want, **TOL)
    text = bl.lower(x, ws).as_text()
    init = text[text.index("stablehlo.while("):].split("\n", 1)[0]
    inits = [part.split(" = ")[1] for part in init.split("(", 1)[1].split(")")[0].split(", ")]
    assert not any(i.startswith("%arg") for i in inits), init


def _plain_jax_chunks(x):
    """What a chunk loop at batch 3, chunks of 2, the batch on the last axis
    computes, in plain jax, with the accumulator started from ``x`` itself."""
    acc = lax.dynamic_update_slice(x, (lax.dynamic_slice(x, (0, 0), (3, 2)) + 1).T, (0, 0))
    rest = (lax.dynamic_slice(x, (0, 2), (3, 1)) + 1).T
    return lax.dynamic_update_slice(acc, rest, (2, 0))


def test_xla_writes_into_a_scan_carry_it_still_reads():
    """Why the accumulator is never an argument: XLA:CPU (jaxlib 0.10.2)
    miscompiles the plain jax above inside a lax.scan body, where x is a
    carry (its in-place dynamic_update_slice clobbers x before the second
    slice reads it); at the top level it is right. If this starts failing,
    XLA fixed it, and chunking._initial may take an argument again."""
    x = jnp.arange(9.0, dtype=jnp.float32).reshape(3, 3)
    assert_same_tree(jax.jit(_plain_jax_chunks)(x), (x + 1).T)
    in_scan = jax.jit(lambda x: lax.scan(lambda c, _: (c, _plain_jax_chunks(c)), x, None,
                                         length=2)[1])(x)
    assert not np.array_equal(np.asarray(in_scan[0]), np.asarray((x + 1).T))


@pytest.mark.parametrize("in_axes", [1, -1, 0])
@pytest.mark.parametrize("chunk", [1, 2])
def test_chunks_inside_a_scan_body(rng, in_axes, chunk):
    """make fuzz (stop 23): x + 1 with the batch on axis 1 at batch 3 in
    chunks of 2, called in a lax.scan body: the accumulator started from x
    (a scan carry) and XLA wrote the first chunk into x's buffer before the
    remainder's slice read it. Values are vmap's now."""
    x = make(rng, (3,), jnp.float32, in_axes, 3)
    y = make(rng, (3,), jnp.float32, 0, 3)

    def run(bl, **kw):
        def body(carry, _):
            return carry, bl(lambda a, b: (a + 1, a * b, a), in_axes=(in_axes, 0), **kw)(*carry)
        return lax.scan(body, (x, y), None, length=2)[1]
    assert_same_tree(run(sb.batch_lower, chunk_size=chunk), run(jax.vmap), **TOL)


@pytest.mark.parametrize("f", [lambda x: -x,
                               lambda x, s: jax.lax.dot_general(s, x, (((), ()), ((), ())))],
                         ids=["neg", "scaled"])
def test_chunks_with_the_batch_on_the_last_axis(rng, f):
    """make fuzz (a generated program): an accumulator started from the
    argument reshaped to the result's shape was a bitcast in XLA, and the
    in-place dynamic_update_slice of the first chunk wrote into the buffer
    the chunk's slices of that argument read (lane 1 wrong at chunks of 2,
    batch 3, the batch on the last axis)."""
    x = make(rng, (1, 2), jnp.float32, -1, 3)
    args, in_axes = ((x,), -1) if f.__code__.co_argcount == 1 else \
        ((x, make(rng, (), jnp.float32, 0, 3)), (-1, 0))
    want = jax.vmap(f, in_axes)(*args)
    for chunk in (1, 2):
        assert_same_tree(sb.batch_lower(f, in_axes, chunk_size=chunk)(*args), want, **TOL)
