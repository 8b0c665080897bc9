"""Forward mode and nested batching through batch_lower: jax.jvp,
jax.linearize, jax.linear_transpose, jacfwd / jacrev / hessian and jax.vmap of
a batch_lower'ed function, compared with the same through jax.vmap.

The batched call is our own jax primitive (stablehlo_batch/primitive.py): its
tangents come from the per-example JVP batched by our rewrite, its cotangents
from the per-example VJP, and jax.vmap of it batches the batched module again.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import stablehlo_batch as sb
from batch_cases import make, x64
from conftest import assert_same_tree

TOL = dict(rtol=2e-5, atol=2e-5)


def both(use, **tol):
    """``use(batching)`` with ``sb.batch_lower`` equals it with ``jax.vmap``."""
    got, want = use(sb.batch_lower), use(jax.vmap)
    assert_same_tree(got, want, **(tol or TOL))
    return got


def layer(w, x, n):
    """A weight, an input and an integer count (its tangent is float0); the
    second result is an integer (no tangent either)."""
    y = jnp.tanh(x @ w) * n.astype(x.dtype)
    return y, jnp.argmax(y)


# (in_axes, out_axes, size): batched and unbatched operands, the batch axis
# in other positions, batch sizes 1 and 3.
CONFIGS = [((None, 0, 0), 0, 3), ((0, 0, None), (1, 0), 1), ((None, 1, None), (-1, 0), 3),
           ((0, None, 0), 0, 3), ((-1, 0, None), (0, 0), 1)]


def _args(rng, in_axes, size, dtype):
    return (make(rng, (4, 3), dtype, in_axes[0], size), make(rng, (4,), dtype, in_axes[1], size),
            make(rng, (), jnp.int32, in_axes[2], size))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("in_axes,out_axes,size", CONFIGS)
def test_jvp(rng, in_axes, out_axes, size, dtype):
    with x64(dtype):
        w, x, n = _args(rng, in_axes, size, dtype)
        tw, tx = make(rng, w.shape, dtype, None, 0), make(rng, x.shape, dtype, None, 0)
        tn = np.zeros(n.shape, jax.dtypes.float0)
        axis_size = size if in_axes[0] is None and in_axes[1] is None and in_axes[2] is None else None
        both(lambda b: jax.jvp(b(layer, in_axes, out_axes, axis_size=axis_size),
                               (w, x, n), (tw, tx, tn)))
        # A tangent for one argument only, under jit.
        both(lambda b: jax.jit(lambda w, x, t: jax.jvp(
            lambda x: b(layer, in_axes, out_axes)(w, x, n)[0], (x,), (t,)))(w, x, tx))


def test_linearize_and_linear_transpose(rng):
    w, x, n = _args(rng, (None, 0, None), 3, jnp.float32)
    tx = make(rng, x.shape, jnp.float32, None, 0)
    ct = make(rng, (3, 3), jnp.float32, None, 0)

    def use(b):
        f = lambda x: b(layer, (None, 0, None))(w, x, n)[0]
        y, lin = jax.linearize(f, x)
        # The linear map evaluated, then transposed: the transpose of the
        # tangent map is the batched VJP.
        (back,) = jax.linear_transpose(lin, x)(ct)
        return y, lin(tx), lin(2 * tx), back
    both(use)


def test_jacobians_and_hessian(rng):
    w, x, n = _args(rng, (None, 0, 0), 3, jnp.float32)
    f = lambda b: (lambda w, x: b(layer, (None, 0, 0))(w, x, n)[0])
    both(lambda b: jax.jacfwd(f(b), argnums=(0, 1))(w, x))
    both(lambda b: jax.jacrev(f(b), argnums=(0, 1))(w, x))
    # forward over reverse, reverse over forward
    both(lambda b: jax.hessian(lambda w: jnp.sum(f(b)(w, x) ** 2))(w))
    both(lambda b: jax.jacrev(jax.jacfwd(lambda x: jnp.sum(f(b)(w, x) ** 3)))(x))
    # Hessian-vector product: jvp of grad.
    v = make(rng, w.shape, jnp.float32, None, 0)
    both(lambda b: jax.jvp(jax.grad(lambda w: jnp.sum(jnp.sin(f(b)(w, x)))), (w,), (v,)))


@pytest.mark.parametrize("axis_size", [3, "b"])
def test_jvp_symbolic_batch_size(rng, axis_size):
    """One module for every batch size: its JVP is symbolic too."""
    w = make(rng, (4, 3), jnp.float32, None, 0)
    f = sb.batch_lower(lambda w, x: jnp.tanh(x @ w), in_axes=(None, 0),
                       axis_size=axis_size if axis_size == "b" else None)
    for size in (1, 3) if axis_size == "b" else (axis_size,):
        x = make(rng, (4,), jnp.float32, 0, size)
        t = jnp.ones_like(x)
        assert_same_tree(jax.jvp(lambda x: f(w, x), (x,), (t,)),
                         jax.jvp(lambda x: jax.vmap(lambda x: jnp.tanh(x @ w))(x), (x,), (t,)),
                         **TOL)


def test_tangent_module_keeps_weights_unbatched(rng):
    """The JVP module that runs for jax.jvp takes the weight and its tangent
    at their own shapes: neither is broadcast to the batch."""
    w = make(rng, (4, 3), jnp.float32, None, 0)
    x = make(rng, (4,), jnp.float32, 0, 5)
    f = sb.batch_lower(lambda w, x: jnp.tanh(x @ w), in_axes=(None, 0))
    text = jax.jit(lambda w, x: jax.jvp(f, (w, x), (w, x))).lower(w, x).as_text()
    assert "tensor<5x4x3xf32>" not in text and "tensor<4x3xf32>" in text
    assert_same_tree(jax.jvp(f, (w, x), (w, x)),
                     jax.jvp(jax.vmap(lambda w, x: jnp.tanh(x @ w), in_axes=(None, 0)),
                             (w, x), (w, x)), **TOL)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.int32])
@pytest.mark.parametrize("outer,inner,size", [(0, 0, 1), (1, 0, 3), ((0, None), (None, 0), 3),
                                              ((None, 1), (0, 0), 3)])
def test_vmap_of_batch_lower(rng, outer, inner, size, dtype):
    """jax.vmap of a batch_lower'ed function: our rewrite batches the batched
    module again, with the arguments the outer vmap leaves alone unbatched."""
    def f(a, b):
        return a * 2 + jnp.sum(b), jnp.max(a)

    outer = outer if isinstance(outer, tuple) else (outer, outer)
    inner = inner if isinstance(inner, tuple) else (inner, inner)
    a = make(rng, (3,), dtype, inner[0], 2)
    b = make(rng, (2,), dtype, inner[1], 2)
    a = a if outer[0] is None else jnp.stack([a] * size, outer[0]) + 1
    b = b if outer[1] is None else jnp.stack([b] * size, outer[1]) * 2
    both(lambda m: jax.vmap(m(f, inner), outer)(a, b))
    if dtype == jnp.float32:  # per-example gradients of the nested batch
        both(lambda m: jax.vmap(jax.grad(lambda a, b: jnp.sum(m(f, inner)(a, b)[0] ** 2)),
                                outer)(a, b))


def test_reverse_mode_needs_no_forward_mode(rng):
    """A custom_vjp inside the function: jax.grad works as it does through
    vmap (only the VJP is built), and jax.jvp fails with jax's own error, as
    it does through vmap."""
    @jax.custom_vjp
    def clip_grad(x):
        return x

    clip_grad.defvjp(lambda x: (x, None), lambda _, g: (jnp.clip(g, -0.1, 0.1),))
    f = lambda x: jnp.sin(clip_grad(x) * 3.0)
    x = make(rng, (4,), jnp.float32, 0, 3)
    both(lambda b: jax.grad(lambda x: jnp.sum(b(f)(x)))(x))
    for b in (jax.vmap, sb.batch_lower):
        with pytest.raises(TypeError, match="custom_vjp"):
            jax.jvp(b(f), (x,), (x,))


def test_batching_the_jvp_itself_still_works(rng):
    xs, ts = make(rng, (3,), jnp.float32, 0, 4), make(rng, (3,), jnp.float32, 0, 4)
    recipe = sb.batch_lower(lambda x, t: jax.jvp(jnp.sin, (x,), (t,)))
    assert_same_tree(recipe(xs, ts), jax.jvp(jax.vmap(jnp.sin), (xs,), (ts,)), **TOL)


def test_inside_control_flow_and_checkpoint(rng):
    """The batched call inside lax.scan, lax.cond, lax.map and jax.checkpoint,
    differentiated in both modes (jax partially evaluates the loop bodies: the
    tangent map must stay linear and the primal known)."""
    w = make(rng, (4, 4), jnp.float32, None, 0) * 0.5
    xs = make(rng, (4,), jnp.float32, 0, 3)

    def losses(b):
        bf = b(lambda w, x: jnp.tanh(x @ w), in_axes=(None, 0))

        def scanned(w):
            x, _ = jax.lax.scan(lambda x, _: (bf(w, x), None), xs, None, length=3)
            return jnp.sum(x ** 2)

        def branch(w):
            return jax.lax.cond(w[0, 0] > 0, lambda w: jnp.sum(bf(w, xs)),
                                lambda w: jnp.sum(bf(2 * w, xs)), w)

        def mapped(w):
            return jnp.sum(jax.lax.map(lambda x: bf(w, x), jnp.stack([xs, -xs])))
        return scanned, jax.checkpoint(scanned), branch, mapped

    for k in range(4):
        both(lambda b: jax.jit(jax.grad(losses(b)[k]))(w))
        both(lambda b: jax.jvp(losses(b)[k], (w,), (w,)))


def test_export_of_a_function_calling_a_batched_function(rng):
    """jax.export of a caller lowers our primitive into the artifact; its
    serialized VJP and a symbolic batch size of the caller work too."""
    f = lambda w, x: jnp.tanh(x @ w)
    w, xs = make(rng, (4, 4), jnp.float32, None, 0), make(rng, (4,), jnp.float32, 0, 3)
    bf = sb.batch_lower(f, in_axes=(None, 0))
    exp = jax.export.export(jax.jit(lambda w, x: bf(w, x).sum()))(w, xs)
    exp = jax.export.deserialize(exp.serialize(vjp_order=1))
    want = lambda w, x: jax.vmap(f, (None, 0))(w, x).sum()
    assert_same_tree(exp.call(w, xs), want(w, xs), **TOL)
    assert_same_tree(jax.grad(exp.call)(w, xs), jax.grad(want)(w, xs), **TOL)
    (b,) = jax.export.symbolic_shape("b")
    bfs = sb.batch_lower(f, in_axes=(None, 0), axis_size="b")
    poly = jax.export.export(jax.jit(bfs))(w, jax.ShapeDtypeStruct((b, 4), jnp.float32))
    for size in (1, 3):
        x = make(rng, (4,), jnp.float32, 0, size)
        assert_same_tree(poly.call(w, x), jax.vmap(f, (None, 0))(w, x), **TOL)
