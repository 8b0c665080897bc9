"""jax.vmap parity on the paths other than the default full batch: weak types
of host-callback results, and outputs that fn returns unchanged from an input
(the input object itself) under chunk_size=, check=, tune=, a symbolic size,
a mesh, axis_name, the cost model's lane loop and host callbacks
(docs/dropin.md)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import jax
import jax.numpy as jnp
from jax import lax

import stablehlo_batch as sb
from stablehlo_batch import tuning
from conftest import assert_same_tree


def _echo(x):
    return jax.pure_callback(lambda v: np.asarray(v), jax.ShapeDtypeStruct(x.shape, x.dtype),
                             x, vmap_method="sequential")


def _weak_types(tree):
    return [jax.typeof(x).weak_type for x in jax.tree.leaves(tree)]


def _same(got, want):
    """vmap's values, dtypes and weak types."""
    assert_same_tree(got, want)
    assert _weak_types(got) == _weak_types(want), (_weak_types(got), _weak_types(want))


# ---- weak types of host-callback results ------------------------------------------

_WEAK_FNS = {
    # a callback's int result times a Python float: float32, weakly typed
    "times_float": (lambda x: _echo(x) * 2.5, 0),
    # a Python scalar computation next to the callback, batched and unbatched
    "python_scalar": (lambda x: (_echo(x), 2.5, x.sum() * 0 + 1.5), 0),
    "python_scalar_unbatched": (lambda x: (_echo(x) * 2, 2.5), (0, None)),
    # strongly typed results stay strong
    "strong": (lambda x: (_echo(x) * jnp.float32(2.5), jnp.float32(1)), 0),
}

_OPTIONS = {
    "default": {},
    "chunks": {"chunk_size": 2},
    "check": {"check": True},
    "full": {"tune": False},
    "symbolic": {"axis_size": "b"},
}


@pytest.mark.parametrize("options", sorted(_OPTIONS))
@pytest.mark.parametrize("kind", sorted(_WEAK_FNS))
def test_host_callback_results_keep_weak_types(kind, options):
    """The output avals of the host-callback route (callbacks.build) had no
    weak type: ``cb(x) * 2.5`` of an int ``x`` came back strongly typed."""
    f, out_axes = _WEAK_FNS[kind]
    x = np.arange(6, dtype=np.int32).reshape(3, 2)
    want = jax.vmap(f, out_axes=out_axes)(x)
    bl = sb.batch_lower(f, out_axes=out_axes, **_OPTIONS[options])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sb.FallbackWarning)
        for _ in range(2):  # building the plan, then the cached call
            _same(bl(x), want)
        if options == "default":
            compiled = bl.lower(x).compile()
            _same(compiled(x), want)


@pytest.mark.parametrize("kind", sorted(_WEAK_FNS))
def test_host_callback_weak_types_under_transformations(kind):
    """Under jax.jit / jax.vmap / jax.grad the lanes run in a lax.map of fn
    (api._lane_loop): vmap's weak types there too."""
    f, out_axes = _WEAK_FNS[kind]
    x = np.arange(6, dtype=np.int32).reshape(3, 2)
    w = jnp.float32(2.0)

    def run(vm):
        return {
            "jit": jax.jit(vm(f, out_axes=out_axes))(x),
            "vmap": jax.vmap(vm(f, out_axes=out_axes))(np.stack([x, x + 1])),
            # fn's results as grad's auxiliary output (fn under a JVP trace)
            "grad": jax.grad(lambda w: (w * 2, vm(f, out_axes=out_axes)(x)), has_aux=True)(w),
        }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sb.FallbackWarning)
        got = run(sb.batch_lower)
    want = run(jax.vmap)
    for name in want:
        _same(got[name], want[name])


# ---- outputs fn returns unchanged from an input -----------------------------------

def _forwarding(x, y):
    return x * 2, y, x


def _forwarding_cb(x, y):
    return _echo(x) * 2, y, x


def _forwarding_collective(x, y):
    return x - lax.pmean(x, "i"), y, x


def _inputs():
    x = jnp.arange(12.0).reshape(6, 2)
    return {"jax": x, "numpy": np.asarray(x)}


# (fn, batch_lower options)
_PATHS = {
    "chunks": (_forwarding, {"chunk_size": 4}),
    "lane_chunks": (_forwarding, {"chunk_size": 1}),
    "auto_chunks": (_forwarding, {"chunk_size": "auto", "memory_limit_bytes": 1}),
    "check": (_forwarding, {"check": True}),
    "tune": (_forwarding, {"tune": (2,)}),
    "symbolic": (_forwarding, {"axis_size": "b"}),
    "mesh": (_forwarding, {"mesh": "one_device"}),
    "axis_name": (_forwarding_collective, {"axis_name": "i"}),
    "callback": (_forwarding_cb, {}),
    "callback_chunks": (_forwarding_cb, {"chunk_size": 4}),
    "callback_symbolic": (_forwarding_cb, {"axis_size": "b"}),
}


@pytest.fixture
def tuned_dir(tmp_path, monkeypatch):
    """tune= records in a fresh directory, a tiny time budget."""
    monkeypatch.setenv(tuning.ENV_DIR, str(tmp_path / "records"))
    monkeypatch.setattr(tuning, "BUDGET_S", 0.02)
    monkeypatch.setattr(tuning, "MIN_ROUNDS", 1)
    tuning.clear_memory()
    yield
    tuning.clear_memory()


@pytest.mark.parametrize("y_kind", ["array", "python"])
@pytest.mark.parametrize("x_kind", ["jax", "numpy"])
@pytest.mark.parametrize("batch_axis", [0, 1])
@pytest.mark.parametrize("path", sorted(_PATHS))
def test_forwarded_inputs_on_every_path(tuned_dir, path, batch_axis, x_kind, y_kind):
    """A result fn returns unchanged is the input object itself, as under
    jax.vmap (a jax array, a NumPy array, a Python scalar under in_axes=None),
    on the paths whose module does not return the argument (a loop over
    chunks or lanes, a symbolic size's transposes, a sharded call, the
    host-callback executable): read on the per-example module."""
    f, options = _PATHS[path]
    options = dict(options)
    if options.get("mesh") == "one_device":
        options["mesh"] = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("batch",))
    x = _inputs()[x_kind]
    if batch_axis:
        x = x.T
    y = jnp.float32(3.0) if y_kind == "array" else 3.0
    in_axes, out_axes = (batch_axis, None), (batch_axis, None, batch_axis)
    vm = jax.vmap(f, in_axes=in_axes, out_axes=out_axes,
                  **({"axis_name": "i"} if "axis_name" in options else {}))
    want = vm(x, y)
    assert want[1] is y and want[2] is x  # what is checked below
    bl = sb.batch_lower(f, in_axes=in_axes, out_axes=out_axes, **options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sb.FallbackWarning)
        # chunk_size="auto" under 1 byte: one lane at a time, with a warning
        warnings.filterwarnings("ignore", "batch_lower: even one lane at a time")
        for _ in range(3):  # building (tune=: measuring), then cached calls
            got = bl(x, y)
            assert got[1] is y and got[2] is x
            assert got[0] is not x
            assert_same_tree(got, want)


@pytest.mark.parametrize("callback", [False, True])
@pytest.mark.parametrize("options", [{}, {"chunk_size": 4}])
def test_forwarded_inputs_of_a_static_call(options, callback):
    """A non-array argument (static: the plan's flat call) with chunk_size=
    or host callbacks: the flat call's forwards."""
    x = jnp.arange(12.0).reshape(6, 2)
    op = _echo if callback else (lambda v: v)

    def f(s, x, y):
        return x, op(x) * len(s), y
    y = np.float32(2.0)
    bl = sb.batch_lower(f, in_axes=(None, 0, None), out_axes=(0, 0, None), **options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sb.FallbackWarning)
        for _ in range(2):
            got = bl("static", x, y)
            assert got[0] is x and got[2] is y
    want = jax.vmap(f, in_axes=(None, 0, None), out_axes=(0, 0, None))("static", x, y)
    assert want[0] is x and want[2] is y
    assert_same_tree(got, want)


def test_forwarded_inputs_of_the_cost_models_lane_loop():
    """The cost model's loop over lanes (a lane-batched GEMM of 6 MiB results,
    tests/api/test_costmodel.py): the loop's module returns its accumulators,
    the forwarded input is still the input object."""
    def f(w, x):
        return jnp.tanh(x @ w), x
    rng = np.random.default_rng(3)
    w = jnp.asarray(rng.standard_normal((128, 128, 128)) / 12, jnp.float32)
    x = jnp.asarray(rng.standard_normal((128, 96, 128)), jnp.float32)
    bl = sb.batch_lower(f)
    assert bl.lower(w, x).report().tuning.choice == 1
    for _ in range(2):
        got = bl(w, x)
        assert got[1] is x
    assert_same_tree(got, jax.vmap(f)(w, x), rtol=1e-4, atol=1e-5)


def test_copies_and_moved_axes_are_not_forwarded():
    """Only what vmap forwards: a copy, a batch moved to another axis or an
    unbatched input broadcast to a batched result are new arrays, on the
    chunked path too."""
    x = jnp.arange(12.0).reshape(6, 2)
    y = jnp.float32(3.0)
    for options in ({}, {"chunk_size": 4}, {"axis_size": "b"}):
        got = sb.batch_lower(lambda x: jnp.array(x, copy=True), **options)(x)
        assert got is not x
        got = sb.batch_lower(lambda x: x, in_axes=0, out_axes=1, **options)(x)
        assert got is not x
        assert_same_tree(got, x.T)
        got = sb.batch_lower(lambda x, y: (x, y), in_axes=(0, None), **options)(x, y)
        assert got[0] is x and got[1] is not y
        assert_same_tree(got[1], jnp.full(6, 3.0))
