"""batch_lower as a drop-in for jax.vmap in real code (issues 12 and 17):
functions closing over values traced by outer transformations, non-array
arguments under in_axes=None, jax.disable_jit, effects, typed PRNG keys with
negative out_axes, custom calls without a serialization guarantee, vmap's
error kinds and wrapper metadata. Every value is checked against jax.vmap."""
from __future__ import annotations

import dataclasses
import os
import warnings

import numpy as np
import pytest

import jax
import jax.numpy as jnp
from jax import lax

import stablehlo_batch as sb
from conftest import assert_same_tree

W = (np.arange(12, dtype=np.float32).reshape(4, 3) - 5) / 7
XS = np.linspace(-1, 1, 32, dtype=np.float32).reshape(8, 4)


def both(make, **tol):
    """``make(batch)`` with batch_lower and with jax.vmap agree."""
    got = make(sb.batch_lower)
    want = make(jax.vmap)
    assert_same_tree(got, want, **(tol or dict(rtol=1e-5, atol=1e-5)))
    return got


# ---- closures over traced values (issue 12, item 1) ----------------------------

def test_closure_in_jit_and_grad():
    both(lambda B: jax.jit(lambda w, xs: B(lambda x: x @ w)(xs))(W, XS))
    both(lambda B: jax.grad(lambda w: B(lambda x: jnp.sin(x @ w))(XS).sum())(W))
    both(lambda B: jax.jvp(lambda w: B(lambda x: jnp.sin(x @ w))(XS), (W,), (np.ones_like(W),)))


def test_closure_in_control_flow():
    xs3 = np.stack([XS, 2 * XS, -XS])
    both(lambda B: lax.scan(lambda c, x: (c * 2, B(lambda r: r * c)(x)), 2.0, xs3))
    both(lambda B: jax.jit(lambda p, w: lax.cond(
        p > 0, lambda: B(lambda x: x @ w)(XS), lambda: B(lambda x: -(x @ w))(XS)))(1, W))
    both(lambda B: lax.while_loop(
        lambda c: c[0] < 3,
        lambda c: (c[0] + 1, B(lambda x: x * c[1][0, 0] + c[0])(c[1])), (0, XS))[1])
    both(lambda B: jax.grad(lambda w: jax.checkpoint(
        lambda w: B(lambda x: jnp.tanh(x @ w))(XS).sum())(w))(W))


def test_closure_in_custom_vjp_and_shard_map():
    @jax.custom_vjp
    def f(x, w):
        return jnp.sin(x) * w

    f.defvjp(lambda x, w: (f(x, w), (x, w)),
             lambda r, g: (jnp.cos(r[0]) * r[1] * g, jnp.sin(r[0]) * g))
    both(lambda B: jax.grad(lambda w: B(lambda x: f(x, w))(XS).sum())(np.arange(4.0, dtype=np.float32)))

    from jax.sharding import PartitionSpec as P
    mesh = jax.make_mesh((1,), ("i",))
    both(lambda B: jax.jit(jax.shard_map(lambda w, xs: B(lambda x: x @ w)(xs), mesh=mesh,
                                         in_specs=(P(), P()), out_specs=P()))(W, XS))


def test_closure_batched_by_outer_vmap():
    ws = np.stack([W, 2 * W])
    both(lambda B: jax.vmap(lambda w: B(lambda x: x @ w)(XS))(ws))
    both(lambda B: jax.vmap(jax.grad(lambda w: B(lambda x: jnp.sin(x @ w))(XS).sum()))(ws))


def test_closure_int_and_key_tracers():
    both(lambda B: jax.jit(lambda n, xs: B(lambda x: x * n)(xs))(3, np.arange(12).reshape(4, 3)))
    both(lambda B: jax.grad(lambda w, n: B(lambda x: jnp.sin(x @ w) * n)(XS).sum())(W, jnp.int32(3)))
    both(lambda B: jax.jit(lambda k: B(lambda x: x + jax.random.normal(k, x.shape))(XS))(
        jax.random.key(1)))


def test_closure_concrete_array_inside_jit():
    # A concrete closed-over array inside a trace is an argument too.
    both(lambda B: jax.jit(lambda xs: B(lambda x: x @ W)(xs))(XS))


def test_closed_over_values_are_arguments_not_constants():
    # One BatchedFunction whose closure changes value between traces: one plan,
    # each call sees its own value.
    holder = []
    bf = sb.batch_lower(lambda x: jnp.tanh(x @ holder[-1]))

    def loss(w):
        holder.append(w)
        return bf(XS).sum()

    for w in (W, 3 * W):
        want = jax.grad(lambda w: jax.vmap(lambda x: jnp.tanh(x @ w))(XS).sum())(w)
        assert_same_tree(jax.grad(loss)(w), want, rtol=1e-5, atol=1e-5)
    assert len(bf._plans) == 1


def test_fresh_lambdas_under_grad_share_one_plan():
    # jax.grad(lambda w: batch_lower(lambda x: ...)(xs)) builds a new
    # batch_lower of a new lambda at every step; the module is built once.
    from stablehlo_batch import api
    step = lambda w: jax.grad(lambda w: sb.batch_lower(lambda x: jnp.cos(x @ w))(XS).sum())(w)  # noqa: E731
    step(W)
    n = len(api._SHARED_PLANS)
    got = step(2 * W)
    assert len(api._SHARED_PLANS) == n
    assert_same_tree(got, jax.grad(lambda w: jax.vmap(lambda x: jnp.cos(x @ w))(XS).sum())(2 * W),
                     rtol=1e-5, atol=1e-5)


def _mlp(params, x):
    for w, b in params[:-1]:
        x = jax.nn.relu(x @ w + b)
    w, b = params[-1]
    return x @ w + b


def _per_example_loss(params, x, y):
    return jnp.sum((_mlp(params, x) - y) ** 2)


def test_jitted_training_step_closing_over_params():
    """A flax-style step: the per-example loss closes over the params and
    is batched inside jax.grad inside jax.jit; then per-example gradients."""
    rng = np.random.default_rng(0)
    params = [(rng.standard_normal((4, 8)).astype(np.float32) / 2, np.zeros(8, np.float32)),
              (rng.standard_normal((8, 2)).astype(np.float32) / 2, np.ones(2, np.float32))]
    ys = rng.standard_normal((8, 2)).astype(np.float32)

    def make_step(B):
        @jax.jit
        def step(params, xs, ys):
            def loss(params):
                return B(lambda x, y: _per_example_loss(params, x, y))(xs, ys).mean()
            l, g = jax.value_and_grad(loss)(params)
            return l, jax.tree.map(lambda p, g: p - 0.1 * g, params, g)
        return step

    both(lambda B: make_step(B)(params, XS, ys))

    # per-example gradients (closing over the params) inside an outer jax.grad
    def penalty(B):
        def outer(params):
            grads = B(lambda x, y: jax.grad(_per_example_loss)(params, x, y))(XS, ys)
            return sum(jnp.sum(g ** 2) for g in jax.tree.leaves(grads))
        return jax.jit(jax.grad(outer))(params)

    both(penalty, rtol=1e-4, atol=1e-4)


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class _Linear:
    """An equinox-style module: a pytree of arrays that is itself callable."""
    weight: jax.Array
    bias: jax.Array
    activation: str = dataclasses.field(default="tanh", metadata=dict(static=True))

    def __call__(self, x):
        return getattr(jnp, self.activation)(self.weight @ x + self.bias)


def test_jitted_step_of_a_callable_module():
    model = _Linear(W.T.copy(), np.ones(3, np.float32) / 3)
    ys = np.ones((8, 3), np.float32)

    def make(B):
        @jax.jit
        def step(model, xs, ys):
            loss = lambda m: jnp.mean((B(m)(xs) - ys) ** 2)  # noqa: E731
            return jax.value_and_grad(loss)(model)
        return step(model, XS, ys)

    both(make)


# ---- typed keys (issue 12, item 3) --------------------------------------------

@pytest.mark.parametrize("impl,in_axes,out_axes", [("threefry2x32", 0, -1), ("threefry2x32", -1, -2),
                                                    ("threefry2x32", 0, 1), ("rbg", -1, -1)])
def test_typed_keys_negative_out_axes(impl, in_axes, out_axes):
    keys = jax.random.split(jax.random.key(0, impl=impl), 3)
    both(lambda B: jax.random.key_data(
        B(lambda k: jax.random.split(k, 2), in_axes=in_axes, out_axes=out_axes)(keys)))


def test_typed_keys_unbatched_output_and_wrap_key_data():
    key = jax.random.key(1)
    both(lambda B: jax.random.key_data(
        B(lambda x, k: (x * 2, jax.random.fold_in(k, 3)), in_axes=(0, None),
          out_axes=(0, None))(XS, key)[1]))
    data = jax.random.key_data(jax.random.split(jax.random.key(2), 3))
    both(lambda B: B(lambda d: jax.random.uniform(jax.random.wrap_key_data(d), (2,)),
                     in_axes=0, out_axes=-1)(data))


def _cumsum_callback(x):
    return jax.pure_callback(lambda v: np.cumsum(v, -1).astype(v.dtype),
                             jax.ShapeDtypeStruct(x.shape, x.dtype), x, vmap_method="sequential")


@pytest.mark.parametrize("wrap", ["direct", "jit"])
@pytest.mark.parametrize("key_shape,in_axes,out_axes", [
    ((), 0, -1), ((), -1, -1), ((), 0, 0), ((2,), 0, -1), ((2,), -1, -2), ((2,), 1, -1),
    ((2,), -2, 1), ((2,), 0, None)])
def test_typed_key_outputs_next_to_a_host_callback(key_shape, in_axes, out_axes, wrap):
    """make fuzz (stop 20): a typed-key result with out_axes=-1 of a function
    with a host callback (the callback route, stablehlo_batch/callbacks.py)
    came back with the key data's axes transposed: the rewrite counted the
    negative axis on the IR, where a key has a hidden trailing dimension.
    Under jax.jit the same function runs as a lax.map over the lanes."""
    n = int(np.prod(key_shape, dtype=int))
    keys = jax.random.split(jax.random.key(5), 3 * n).reshape((3,) + key_shape)
    keys = jnp.moveaxis(keys, 0, in_axes)
    key_axis = None if out_axes is None else in_axes

    def f(k, x):
        ks = k if out_axes is not None else jax.random.split(jax.random.key(1), key_shape)
        return _cumsum_callback(x), (ks[::-1] if key_shape else jax.random.fold_in(ks, 2))

    def make(B):
        g = B(f, in_axes=(key_axis, 0), out_axes=(0, out_axes))
        y, k = (jax.jit(g) if wrap == "jit" else g)(keys, XS[:3])
        return y, jax.random.key_data(k)
    both(make)


@pytest.mark.parametrize("callback", [False, True])
@pytest.mark.parametrize("out_axes", [1, -2, 2, -3])
def test_typed_key_out_axes_out_of_range(out_axes, callback):
    """out_axes past a typed key's own rank (the IR's key data dimension is
    no axis of it) is jax.vmap's ValueError: 1 gave a verifier error and -2
    a value, on every route."""
    keys = jax.random.split(jax.random.key(0), 3)

    def f(k, x):
        return (_cumsum_callback(x) if callback else x), k
    with pytest.raises(ValueError, match=f"axis {out_axes} is out of bounds for array of "
                                         r"dimension 1 \(at batch_lower out_axes\[1\]\)"):
        sb.batch_lower(f, out_axes=(0, out_axes))(keys, XS[:3])
    with pytest.raises(ValueError, match=f"axis {out_axes} is out of bounds"):
        jax.vmap(f, out_axes=(0, out_axes))(keys, XS[:3])


# ---- custom calls without a serialization guarantee (issue 12, item 4) ----------

def test_custom_calls_without_compatibility_guarantee():
    a = np.random.default_rng(1).standard_normal((3, 5, 4)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # they may run once per lane
        both(lambda B: B(lambda a: jax.scipy.linalg.qr(a, pivoting=True))(a), rtol=1e-4, atol=1e-4)
        got = both(lambda B: B(lambda a: lax.linalg.svd(
            a, full_matrices=False, compute_uv=False,
            algorithm=lax.linalg.SvdAlgorithm.QR))(a), rtol=1e-4, atol=1e-4)
        assert got.shape == (3, 4)
        lowered = sb.batch_lower(lambda a: jax.scipy.linalg.qr(a, pivoting=True)).lower(a)
    from stablehlo_batch.flat import unstable_targets
    assert "lapack_sgeqp3_ffi" in unstable_targets(lowered.exported)


# ---- errors (issue 12, item 7) ------------------------------------------------

@pytest.mark.parametrize("axis_size", [-1, 3.0, 2.5])
def test_bad_axis_size_is_a_type_error(axis_size):
    # jax.vmap raises TypeError for each of these in a fresh process; after
    # other tests in the same process it sometimes does not (state inside
    # jax), so the oracle is not asserted here.
    with pytest.raises(TypeError, match="axis_size"):
        sb.batch_lower(lambda x: x, in_axes=None, axis_size=axis_size)(1.0)


def test_mlir_errors_are_one_typed_error_without_pass_manager_text():
    from jaxlib.mlir import ir
    from stablehlo_batch.passes.errors import VerificationError
    from stablehlo_batch.rewrite import readable_mlir_errors
    with pytest.raises(VerificationError) as info:
        with readable_mlir_errors("batch_lower"), ir.Context():
            ir.Module.parse('func.func @f() { "foo.bar"() : () -> () loc("x.py":3:4) }')
    assert "Failure while executing" not in str(info.value)
    assert "batch_lower" in str(info.value)


def test_source_locations_name_the_user_line_not_ours():
    def f(x):
        return jnp.sin(x) * 2

    text = sb.batch_lower(f).lower(XS).as_text(debug_info=True)
    assert os.path.basename(__file__) in text
    assert "stablehlo_batch/api.py" not in text and "stablehlo_batch/export.py" not in text


# ---- jax.disable_jit (issue 17, item 1) ---------------------------------------

def test_disable_jit_cond_and_while():
    cond_fn = lambda t: lax.cond(t > 0, lambda x, _: 0, lambda _, x: 1, 0, 0)  # noqa: E731
    loop_fn = lambda n: lax.while_loop(lambda c: c[0] < n, lambda c: (c[0] + 1, c[1] * 2),  # noqa: E731
                                       (0, 1.0))[1]
    with jax.disable_jit():
        both(lambda B: B(cond_fn)(jnp.array([1, -1])))
        both(lambda B: B(loop_fn)(jnp.array([1, 3, 0])))
        both(lambda B: jax.grad(lambda w: B(lambda x: jnp.sin(x @ w))(XS).sum())(W))


def test_disable_jit_after_calls_took_the_fast_path():
    """A signature jit has compiled, then jax.disable_jit: jit calls our
    function with the arrays, which routes the call to the plan's executable
    (and back to the fast path after the block); hits are counted once."""
    bf = sb.batch_lower(lambda x: jnp.sin(x) * 2)
    x = jnp.arange(6.0).reshape(3, 2)
    bf(x)
    bf(x)
    with jax.disable_jit():
        assert_same_tree(bf(x), jnp.sin(x) * 2)
    assert_same_tree(bf(x), jnp.sin(x) * 2)
    assert bf.cache_info()[:2] == (3, 1)


# ---- non-array arguments under in_axes=None (issue 17, item 2) ------------------

@dataclasses.dataclass
class _Config:  # no array leaves, unhashable (eq without frozen)
    scale: float
    name: str


def test_static_non_array_arguments():
    x = jnp.arange(3.0)
    both(lambda B: B(lambda f, x: f(x), (None, 0))(lambda x: x + 1, x))
    both(lambda B: B(lambda s, x: x * len(s), (None, 0))("abc", jnp.arange(3)))
    both(lambda B: B(lambda u, x: u(x, x), (None, 0))(jnp.add, x))
    both(lambda B: B(lambda c, x: x * c.scale, (None, 0))(_Config(2.0, "a"), x))
    both(lambda B: B(lambda d, x: x * d["k"](2.0), ({"k": None}, 0))({"k": jnp.sqrt}, x))
    both(lambda B: jax.jit(lambda x: B(lambda s, x: x * len(s), (None, 0))("ab", x))(x))


def test_static_arguments_key_the_plan():
    bf = sb.batch_lower(lambda s, x: x * len(s), (None, 0))
    x = jnp.arange(3.0)
    for s in ("ab", "ab", "abcd"):
        assert_same_tree(bf(s, x), x * len(s))
    assert len(bf._plans) == 2  # by value: equal strings share a plan
    bc = sb.batch_lower(lambda c, x: x * c.scale, (None, 0))
    c = _Config(2.0, "a")
    bc(c, x)
    bc(c, x)
    bc(_Config(3.0, "a"), x)
    assert len(bc._plans) == 2  # unhashable: by identity


def test_inconsistent_sizes_with_a_static_argument():
    # JAX's test_vmap_inconsistent_sizes_constructs_proper_error_message
    f = lambda x1, x2, g: g(x1, x2)  # noqa: E731
    with pytest.raises(ValueError, match="inconsistent sizes for array axes to be mapped"):
        sb.batch_lower(f, (0, 0, None))(jnp.ones(2), jnp.ones(3), jnp.add)


def test_non_array_argument_with_an_axis_keeps_vmaps_error():
    with pytest.raises(TypeError):
        jax.vmap(lambda s, x: x, (0, 0))("abc", jnp.arange(3))
    with pytest.raises(TypeError, match="not a valid JAX type"):
        sb.batch_lower(lambda s, x: x, (0, 0))("abc", jnp.arange(3))


# ---- effects (issue 17, item 3) -----------------------------------------------

def _sink(x):
    jax.lax.dce_sink(x, prevent_mlir_dce=True)
    return x * 2.0


def test_dce_sink_effect():
    x = jnp.arange(4.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        both(lambda B: B(_sink)(x))
        both(lambda B: jax.jit(B(_sink))(x))
        both(lambda B: jax.grad(lambda x: B(_sink)(x).sum())(x))
        both(lambda B: jax.grad(jax.checkpoint(lambda x: B(_sink)(x).sum()))(x))
        both(lambda B: jax.vmap(B(_sink))(jnp.ones((2, 4))))
        both(lambda B: lax.scan(lambda c, x: (c, B(_sink)(x)), 0, jnp.ones((2, 4)))[1])


def test_host_callbacks_under_jit_and_grad():
    def f(x):
        jax.debug.print("x {}", x)
        return x * 2

    def g(x):
        return jax.pure_callback(np.sin, jax.ShapeDtypeStruct(x.shape, x.dtype), x,
                                 vmap_method="sequential")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        both(lambda B: jax.grad(lambda x: B(f)(x).sum())(jnp.arange(2.0)))
        both(lambda B: jax.jit(lambda w: B(lambda x: (g(x) @ w, g(w)), out_axes=(1, None))(XS))(W))


# ---- vmap's wrapper conventions (issue 17, item 4) ------------------------------

def test_wrapper_metadata_and_docstring():
    def f(x):
        """Original doc."""
        return x

    b, v = sb.batch_lower(f), jax.vmap(f)
    assert b.__name__ == v.__name__ == "f"
    assert b.__wrapped__ is f
    assert b.__doc__ == v.__doc__
    assert b.__doc__.startswith("Vectorized version of f.")
    assert sb.batch_lower(lambda x: x).__doc__ == jax.vmap(lambda x: x).__doc__


def test_filtered_tracebacks_leave_our_frames_out():
    # jax's traceback filtering removes jax's frames and ours below the call:
    # an error in the user's function shows the call, then the user's frames.
    def user_fn(x):
        raise RuntimeError("from the user's function")

    package = os.path.dirname(sb.__file__)
    mode = jax.config.jax_traceback_filtering
    jax.config.update("jax_traceback_filtering", "quiet_remove_frames")
    try:
        with pytest.raises(RuntimeError) as e:
            sb.batch_lower(user_fn)(np.ones(3, np.float32))
    finally:
        jax.config.update("jax_traceback_filtering", mode)
    ours = [f for f in e.traceback if str(f.path).startswith(package)]
    # the entry points of the call only (no plan building, rewrite or jax frames)
    assert [f.name for f in ours] == ["__call__", "_slow_call", "_call"], ours
    assert e.traceback[-1].name == "user_fn"


def test_forwarded_inputs_are_returned_as_the_same_objects():
    # jax.vmap returns an input that fn returns unchanged as that very object
    # (JAX's test_cond_vmap_forwarding_doesnt_promote); so does batch_lower,
    # on its compiled path and with a static argument.
    x, y = jnp.arange(3.0), jnp.array(3.0)
    f = sb.batch_lower(lambda x, y: (x * 2, y, x), in_axes=(0, None), out_axes=(0, None, 0))
    for _ in range(2):  # building the plan, then the cached call
        a, b, c = f(x, y)
        assert b is y and c is x and a is not x
    g = sb.batch_lower(lambda s, x: (x, x * len(s)), in_axes=(None, 0))
    assert g("static", x)[0] is x
    # a copy lowers to nothing, but is a new array for vmap too
    assert sb.batch_lower(lambda x: jnp.array(x, copy=True))(x) is not x
