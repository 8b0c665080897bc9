"""Regression tests after the vmap tests of JAX's tests/api_test.py (jax-v0.10.2).

The wrapper's contract: in_axes / out_axes as lists, pytrees, namedtuples
and OrderedDicts; vmap's error kinds for malformed specs and inconsistent
sizes (the kinds, not the wording, which names vmap); remat, eval_jaxpr,
lax.empty, stop_gradient in a while loop, dce_sink; wrapper metadata.
"""
from __future__ import annotations

import collections
from functools import partial

import numpy as np
import pytest

import jax
import jax.numpy as jnp
from jax import lax

import stablehlo_batch as sb
from conftest import assert_same_tree, check_vmap


def test_in_axes_list_with_an_unbatched_dict_holding_a_python_float():
    f = lambda dct, x, y: dct["a"] + dct["b"] + x + y
    dct = {"a": 5.0, "b": jnp.ones(2)}
    x, y = jnp.zeros((3, 2)), jnp.arange(6.0).reshape(3, 2)
    check_vmap(f, dct, x, y, in_axes=[None, 0, 0])


Point = collections.namedtuple("Point", ["x", "y"])


@pytest.mark.parametrize("container", ["tuple", "namedtuple", "dict", "ordereddict"])
def test_structured_in_axes(container):
    x, y, z = np.ones((4, 2, 3), np.float32), np.ones((3, 4, 2), np.float32), \
        np.ones((2, 5, 4), np.float32)
    if container in ("tuple", "namedtuple"):
        make = tuple if container == "tuple" else (lambda t: Point(*t))
        tree, axes = (x, make((y, z))), ((0, make((1, 2))),)
        unpack = lambda t: (t[0], t[1][0], t[1][1])
    else:
        make = dict if container == "dict" else collections.OrderedDict
        tree, axes = (x, make([("a", y), ("b", z)])), ((0, make([("a", 1), ("b", 2)])),)
        unpack = lambda t: (t[0], t[1]["a"], t[1]["b"])

    def foo(tree_arg):
        a, b, c = unpack(tree_arg)
        return jnp.dot(a, jnp.dot(b, c))
    out = check_vmap(foo, tree, in_axes=axes)
    assert out.shape == (4, 2, 5)


def _x(*shape, dtype=np.float32):
    return np.ones(shape, dtype)


# (exception, function, in_axes, out_axes, axis_size, args, kwargs) after api_test's cases.
_ERRORS = {
    "inconsistent_sizes": (ValueError, lambda a, b: a + b[:1], 0, 0, None, (_x(2), _x(3)), {}),
    "inconsistent_sizes_kwargs": (ValueError, lambda x1, x2, a3: x1 + x2 + a3, 0, 0, None,
                                  (_x(2),), dict(a3=_x(1), x2=_x(2))),
    "inconsistent_sizes_starargs": (ValueError, lambda x, *a: x - sum(a), 0, 0, None,
                                    (_x(4), _x(2), _x(2)), {}),
    "in_axes_dict_not_tuple": (TypeError, lambda x: x["a"], {"a": 0}, 0, None,
                               ({"a": _x(3, 3)},), {}),
    "in_axes_wrong_length": (ValueError, lambda x: x["a"], (0, {"a": 0}), 0, None,
                             ({"a": _x(3, 3)},), {}),
    "in_axes_not_a_prefix": (ValueError, lambda x: x, ([0],), 0, None, (_x(3),), {}),
    "in_axes_array_leaf": (TypeError, lambda x: x, (jnp.array([1., 2.]),), 0, None, (_x(2),), {}),
    "out_axes_array_leaf": (TypeError, lambda x: x, 0, (jnp.array([1., 2.]),), None, (_x(2),), {}),
    "in_axes_bool": (TypeError, lambda x: x, False, 0, None, (_x(3),), {}),
    "scalar_mapped": (ValueError, lambda x: x, 0, 0, None, (1.0,), {}),
    "nothing_mapped": (ValueError, lambda x: x, None, 0, None, (_x(2),), {}),
    "axis_beyond_rank": (ValueError, lambda x: x, 1, 0, None, (_x(2),), {}),
    "out_axes_not_a_prefix": (ValueError, lambda x: x, 0, (2, 3), None, (_x(2),), {}),
    "mapped_output_out_axes_none": (ValueError, lambda x: x, 0, None, None, (_x(2),), {}),
    "axis_size_mismatch": (ValueError, lambda x: x, 0, 0, 2, (np.arange(8, dtype=np.int32),), {}),
    "empty_arguments": (ValueError, lambda x: x, 0, 0, None, ({},), {}),
    "scalar_with_axis_size": (ValueError, lambda x: x, 1, 0, 1, (1.0,), {}),
    "mismatched_keyword": (ValueError, lambda x, y: x + y, 0, 0, None,
                           (np.array([1], np.int32),), dict(y=np.array([1, 2], np.int32))),
}


# Messages that differ from vmap's by more than the name: (vmap's extra text,
# ours). vmap also names the axis a wrongly unmapped output was batched on
# (its own choice; ours is a module's internal layout); ours names the
# argument whose rank is too small.
_MESSAGE_DIFFERS = {"mapped_output_out_axes_none": (" on axis 0", ""),
                    "scalar_mapped": ("", " (argument x)"),
                    "axis_beyond_rank": ("", " (argument x)"),
                    "scalar_with_axis_size": ("", " (argument x)")}


def _message(e) -> str:
    return str(e).split("\n--------------------")[0]  # no traceback-filtering note


@pytest.mark.parametrize("case", sorted(_ERRORS))
def test_errors_match_vmap(case):
    """vmap's exception kind and text, "vmap" read "batch_lower"."""
    exc, fn, in_axes, out_axes, axis_size, args, kwargs = _ERRORS[case]
    with pytest.raises(exc) as want:
        jax.vmap(fn, in_axes=in_axes, out_axes=out_axes, axis_size=axis_size)(*args, **kwargs)
    with pytest.raises(exc) as got:
        sb.batch_lower(fn, in_axes=in_axes, out_axes=out_axes, axis_size=axis_size)(*args,
                                                                                    **kwargs)
    theirs, ours = _MESSAGE_DIFFERS.get(case, ("", ""))
    want = _message(want.value).replace("vmap", "batch_lower")
    assert _message(got.value) == want.replace(theirs, "") + ours


def test_size_error_lists_each_argument():
    h = lambda a, b: jnp.sum(a) + jnp.sum(b)
    x, u = _x(10, 4), _x(10, 2)
    with pytest.raises(ValueError, match=r"axis 0 of argument a of type float32\[10,4\]") as e:
        sb.batch_lower(h, in_axes=(0, 1))(x, u)
    assert "axis 1 of argument b of type float32[10,2]" in str(e.value)


def test_unbatched_scalar_with_axis_size():
    check_vmap(lambda x: x, 1.0, in_axes=None, axis_size=1)


def test_unmapped_constant_output_with_out_axes_minus_one():
    check_vmap(lambda x: np.zeros((2,), np.float32), _x(5), out_axes=-1)


def test_arguments_are_jax_arrays_inside():
    seen = []

    def f(x):
        seen.append((isinstance(x, jax.Array), isinstance(x, np.ndarray)))
        return x + 2
    check_vmap(f, np.arange(3, dtype=np.int32))
    assert all(s == (True, False) for s in seen)


def test_jit_of_batched_function_lowers_and_compiles():
    bf = sb.batch_lower(lambda x: jnp.sin(x) + 4)
    x = jnp.ones((3, 2))
    compiled = jax.jit(bf).lower(x).compile()
    assert_same_tree(compiled(x), jax.vmap(lambda x: jnp.sin(x) + 4)(x))


@pytest.mark.parametrize("remat", [jax.checkpoint, partial(jax.checkpoint, prevent_cse=False)])
@pytest.mark.parametrize("in_axes", [0, 1])
def test_remat_inside(remat, in_axes):
    g = remat(lambda x: lax.sin(lax.sin(x)))
    check_vmap(g, np.arange(15, dtype=np.float32).reshape(3, 5), in_axes=in_axes)


def test_lax_empty_has_the_batched_shape():
    got = sb.batch_lower(lambda x: lax.empty(x.shape, x.dtype))(np.zeros((4, 2), np.int32))
    assert got.shape == (4, 2) and got.dtype == np.int32


def test_grad_of_per_example_gradient_through_a_stopped_while_loop():
    def loop_fun(x, p):
        _, res = lax.while_loop(lambda v: v[0] < 3, lambda v: (v[0] + 1, v[1] * p), (0, x))
        return lax.stop_gradient(res)
    inner_grad = lambda p: jax.grad(lambda q: loop_fun(1.0, q))(p)
    p = jnp.array([2.0, 3.0])
    got = jax.grad(lambda p: jnp.sum(sb.batch_lower(inner_grad)(p)))(p)
    want = jax.grad(lambda p: jnp.sum(jax.vmap(inner_grad)(p)))(p)
    assert_same_tree(got, want)


def test_scan_without_xs_under_the_leak_checker():
    def f(x):
        return lax.scan(lambda c, _: (c + 1.0, None), x, None, length=2)[0]
    with jax.checking_leaks():
        check_vmap(f, np.arange(5, dtype=np.float32))


def test_function_argument_passes_through_unbatched():
    check_vmap(lambda f, x: f(x), lambda x: x + 1, jnp.arange(3), in_axes=(None, 0))


def test_dce_sink_inside_and_under_grad():
    def f(x):
        lax.dce_sink(x)
        return x * 2
    x = jnp.arange(3.0)
    check_vmap(f, x)
    assert_same_tree(jax.grad(lambda x: sb.batch_lower(f)(x).sum())(x),
                     jax.grad(lambda x: jax.vmap(f)(x).sum())(x))


def test_docstring_and_name_like_vmap():
    def superfun(a):
        """Does things with stuff."""
    want, got = jax.vmap(superfun), sb.batch_lower(superfun)
    assert got.__doc__ == want.__doc__
    assert got.__name__ == want.__name__
    assert got.__wrapped__ is superfun
