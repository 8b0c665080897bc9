"""convolution, reduce_window, select_and_scatter and map, differentially
against jax.vmap (passes/rules/windows.py).

Convolutions: input only / kernel only / both batched (and neither, with
axis_size) over every layout family, strides, padding, lhs/rhs dilation,
feature groups (grouped, depthwise), batch groups (explicit, and the kernel
gradient of a depthwise convolution), 1-D/2-D/3-D, f32/f64/i32; per-example
gradients of a small CNN. Windows: pooling, the cumulative reductions, a
variadic reduce_window, max-pool gradients (select_and_scatter) with a
batched operand or a batched cotangent. Nothing here may take the per-lane fallback, except a
per-lane init value (jax.vmap refuses it): checked against a per-example
loop, with the fallback warning, and as the typed error under strict.
``map``, which jax never emits, is checked against the unbatched module run
per example.
"""
from __future__ import annotations


import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import stablehlo_batch as sb
from batch_cases import axis_size_for, check_module, make, x64
from conftest import assert_same_tree, check_vmap

f32, f64, i32 = jnp.float32, jnp.float64, jnp.int32
TOL = dict(rtol=1e-4, atol=1e-4)


@pytest.fixture(autouse=True)
def vectorized_only():
    """A rule that silently ran per lane would still agree with vmap."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", sb.FallbackWarning)
        yield


def conv(dn, strides=None, padding="SAME", lhs_dilation=None, rhs_dilation=None,
         fgc=1, bgc=1):
    def f(x, w):
        n = x.ndim - 2
        return lax.conv_general_dilated(
            x, w, strides or (1,) * n, padding, lhs_dilation, rhs_dilation, dn,
            feature_group_count=fgc, batch_group_count=bgc,
            precision=lax.Precision.HIGHEST)
    return f


def kernel_grad(f):
    """d/dw of sum(f(x, w)**2): a convolution of x with the output gradient,
    with batch_group_count = the feature groups of f (jax's transpose rule)."""
    return lambda x, w: jax.grad(lambda w_: (f(x, w_) ** 2).sum())(w)


def both_grads(f):
    return lambda x, w: jax.grad(lambda x_, w_: (f(x_, w_) ** 2).sum(), argnums=(0, 1))(x, w)


NCHW = ("NCHW", "OIHW", "NCHW")
NHWC = ("NHWC", "HWIO", "NHWC")
DEPTHWISE = conv(NHWC, fgc=4)
# name -> (fn, lhs shape, rhs shape, dtype) for one example
CONVS = {
    "nchw": (conv(NCHW), (2, 4, 6, 6), (5, 4, 3, 3), f32),
    "nhwc_stride_pad_dilate": (conv(NHWC, (2, 1), ((1, 2), (0, 1)), (1, 2), (2, 1)),
                               (2, 7, 5, 3), (3, 2, 3, 4), f32),
    "depthwise": (DEPTHWISE, (2, 6, 6, 4), (3, 3, 1, 8), f32),
    "grouped": (conv(NCHW, (1, 2), "VALID", fgc=2), (1, 4, 5, 6), (6, 2, 3, 3), f32),
    "batch_groups": (conv(NCHW, padding="VALID", bgc=2), (4, 3, 5, 5), (6, 3, 3, 3), f32),
    "depthwise_kernel_grad": (kernel_grad(DEPTHWISE), (2, 6, 6, 4), (3, 3, 1, 8), f32),
    "grouped_grads": (both_grads(conv(NCHW, (2, 1), ((1, 0), (2, 1)), fgc=2)),
                      (2, 4, 5, 5), (6, 2, 3, 2), f32),
    "conv1d": (conv(("NWC", "WIO", "NWC"), (2,), [(2, 1)], rhs_dilation=(2,)),
               (2, 9, 3), (3, 3, 4), f32),
    "conv3d": (conv(("NCDHW", "OIDHW", "NCDHW"), (1, 2, 1)), (1, 2, 4, 4, 4),
               (3, 2, 2, 2, 2), f32),
    "odd_layout_grouped": (conv(("HCNW", "WOHI", "CWNH"), fgc=2), (5, 4, 2, 6),
                           (3, 6, 3, 2), f32),
    "odd_layout_batch_groups": (conv(("CWNH", "IWHO", "HNWC"), padding="VALID", bgc=3),
                                (2, 5, 6, 4), (2, 3, 2, 6), f32),
    "nchw_f64": (conv(NCHW, (2, 2), ((1, 1), (0, 2)), (2, 1)), (2, 3, 4, 5), (2, 3, 3, 2), f64),
    "nhwc_i32": (conv(NHWC), (1, 5, 5, 2), (2, 2, 2, 3), i32),
}

# (case, (lhs axis, rhs axis), out axis, size): every case meets the input
# batched, the kernel batched and both, at several positions.
CONV_PARAMS = [
    ("nchw", (0, None), 0, 3), ("nchw", (None, 0), 1, 8), ("nchw", (2, -1), -1, 3),
    ("nchw", (None, None), 0, 3),
    ("nhwc_stride_pad_dilate", (1, None), -1, 1), ("nhwc_stride_pad_dilate", (None, -1), 0, 3),
    ("nhwc_stride_pad_dilate", (-1, 2), 1, 3),
    ("depthwise", (0, None), 0, 8), ("depthwise", (None, 0), 2, 3), ("depthwise", (0, 1), -1, 3),
    ("depthwise", (0, 1), 0, 0),  # no lanes at all: groups would be 0
    ("grouped", (0, None), 1, 3), ("grouped", (None, 1), 0, 3), ("grouped", (2, 0), 0, 1),
    ("batch_groups", (0, None), 0, 3), ("batch_groups", (None, 0), -1, 3),
    ("batch_groups", (1, 1), 0, 8),
    ("depthwise_kernel_grad", (0, None), 0, 3), ("depthwise_kernel_grad", (None, 0), 1, 3),
    ("depthwise_kernel_grad", (-1, 0), 0, 8),
    ("grouped_grads", (0, None), 0, 3), ("grouped_grads", (None, 1), (1, 0), 1),
    ("conv1d", (0, 0), 0, 3), ("conv1d", (None, 1), -1, 8), ("conv1d", (-1, None), 1, 3),
    ("conv3d", (0, None), 0, 3), ("conv3d", (0, 0), 1, 3), ("conv3d", (None, 0), 0, 1),
    ("odd_layout_grouped", (0, 0), 0, 3), ("odd_layout_grouped", (1, None), 2, 3),
    ("odd_layout_grouped", (None, -1), 0, 3),
    ("odd_layout_batch_groups", (0, None), 0, 3), ("odd_layout_batch_groups", (None, 0), 1, 3),
    ("odd_layout_batch_groups", (2, 2), 0, 3),
    ("nchw_f64", (0, 0), 0, 3), ("nchw_f64", (None, 0), 0, 3),
    ("nhwc_i32", (0, None), 0, 3), ("nhwc_i32", (None, 0), 1, 3), ("nhwc_i32", (0, 0), 0, 1),
]


@pytest.mark.parametrize("name,in_axes,out_axes,size", CONV_PARAMS,
                         ids=[f"{n}-{a}-{o}-{s}" for n, a, o, s in CONV_PARAMS])
def test_convolution(rng, name, in_axes, out_axes, size):
    fn, lhs_shape, rhs_shape, dtype = CONVS[name]
    with x64(dtype):
        lhs = make(rng, lhs_shape, dtype, in_axes[0], size)
        rhs = make(rng, rhs_shape, dtype, in_axes[1], size)
        check_vmap(fn, lhs, rhs, in_axes=in_axes, out_axes=out_axes,
                   axis_size=axis_size_for(in_axes, size), **TOL)


def test_convolution_keeps_one_convolution_and_the_kernel(rng):
    """A batched input through an unbatched kernel: still one convolution,
    the kernel's type untouched, no broadcast anywhere."""
    x = make(rng, (2, 6, 6, 4), f32, 0, 8)
    w = make(rng, (3, 3, 1, 8), f32, None, 8)
    text = sb.batch_lower(DEPTHWISE, in_axes=(0, None)).lower(x, w).as_text()
    assert text.count("stablehlo.convolution") == 1
    assert "broadcast" not in text
    assert "tensor<3x3x1x8xf32>) -> tensor<16x6x6x8xf32>" in text


# ---- per-example gradients of a small CNN ---------------------------------------
def _cnn_params(rng):
    return {"c1": make(rng, (3, 3, 1, 4), f32, None, 1) * 0.5,
            "c2": make(rng, (3, 3, 1, 4), f32, None, 1) * 0.5,
            "b": make(rng, (4,), f32, None, 1),
            "dense": make(rng, (4 * 3 * 3, 5), f32, None, 1) * 0.2}


def _cnn_loss(params, image, label):
    """conv -> relu -> max pool -> depthwise conv -> avg pool -> dense -> xent."""
    x = image[None, :, :, None]
    x = lax.conv_general_dilated(x, params["c1"], (1, 1), "SAME", dimension_numbers=NHWC,
                                 precision=lax.Precision.HIGHEST)
    x = jax.nn.relu(x + params["b"])
    x = lax.reduce_window(x, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "SAME")
    x = lax.conv_general_dilated(x, params["c2"], (1, 1), "SAME", dimension_numbers=NHWC,
                                 feature_group_count=4, precision=lax.Precision.HIGHEST)
    x = lax.reduce_window(x, 0.0, lax.add, (1, 2, 2, 1), (1, 2, 2, 1), "VALID") / 4
    logits = jnp.dot(x.reshape(-1), params["dense"], precision=lax.Precision.HIGHEST)
    return -jax.nn.log_softmax(logits)[label]


def test_cnn_per_example_gradients(rng):
    image_axis, size = 2, 8
    params = _cnn_params(rng)
    images = make(rng, (12, 12), f32, image_axis, size)
    labels = jnp.asarray(rng.integers(0, 5, size), jnp.int32)
    grad = jax.grad(_cnn_loss)
    grads = check_vmap(grad, params, images, labels, in_axes=(None, image_axis, 0), **TOL)
    assert grads["c1"].shape == (size, 3, 3, 1, 4)
    # Every convolution of the per-example gradient stays one convolution.
    one = jax.jit(grad).lower(params, images[:, :, 0], labels[0]).as_text()
    batched = sb.batch_lower(grad, in_axes=(None, image_axis, 0)).lower(
        params, images, labels).as_text()
    assert batched.count("stablehlo.convolution") == one.count("stablehlo.convolution") >= 5


@pytest.mark.parametrize("backend", ["cuda", "tpu"])
def test_cnn_gradients_lowered_for_accelerators(rng, backend):
    """Modules lowered for GPU / TPU (checked as IR on this machine): every
    convolution stays one, nothing runs per lane."""
    params = _cnn_params(rng)
    images = make(rng, (12, 12), f32, 0, 4)
    labels = jnp.zeros(4, jnp.int32)
    grad = jax.grad(_cnn_loss)
    one = jax.jit(grad).trace(params, images[0], labels[0]).lower(
        lowering_platforms=(backend,)).as_text()
    batched = sb.batch_lower(grad, in_axes=(None, 0, 0), backend=backend).lower(
        params, images, labels).as_text()
    assert batched.count("stablehlo.convolution") == one.count("stablehlo.convolution") >= 5
    assert "stablehlo.while" not in batched
    assert batched.count("stablehlo.select_and_scatter") == 1


# ---- reduce_window ----------------------------------------------------------------
def _max_pool(x):
    init = -jnp.inf if jnp.issubdtype(x.dtype, jnp.floating) else jnp.iinfo(x.dtype).min
    return lax.reduce_window(x, init, lax.max, (2, 3), (2, 1), ((1, 0), (1, 1)))


def _variadic_argmax(x, idx):
    def body(a, b):
        pick = a[0] >= b[0]
        return jnp.where(pick, a[0], b[0]), jnp.where(pick, a[1], b[1])
    return lax.reduce_window((x, idx), (-jnp.inf, 0), body, (1, 3), (1, 2), "SAME")


# name -> (fn, per-example shapes, dtypes)
WINDOWS = {
    "max_pool_f32": (_max_pool, [(5, 6)], f32),
    "max_pool_i32": (_max_pool, [(5, 6)], i32),
    "avg_pool_dilated_f64": (lambda x: lax.reduce_window(
        x, 0.0, lax.add, (2, 2), (1, 2), "SAME", base_dilation=(2, 1),
        window_dilation=(1, 2)) / 4, [(4, 6)], f64),
    "cumsum_i32": (lambda x: jnp.cumsum(x, axis=1), [(3, 5)], i32),
    "cumprod_reverse": (lambda x: lax.cumprod(x, axis=0, reverse=True), [(4, 3)], f32),
    "cummax": (lambda x: lax.cummax(x, axis=1), [(3, 6)], f32),
    "cummin_i32": (lambda x: lax.cummin(x, axis=0), [(6, 2)], i32),
    "cumlogsumexp": (lambda x: lax.cumlogsumexp(x, axis=1), [(2, 7)], f32),
    "variadic_argmax": (_variadic_argmax, [(3, 7), (3, 7)], [f32, i32]),
}
WINDOW_PARAMS = [
    ("max_pool_f32", (0,), 0, 3), ("max_pool_f32", (-1,), 1, 8),
    ("max_pool_i32", (1,), -1, 1),
    ("avg_pool_dilated_f64", (0,), -1, 3), ("avg_pool_dilated_f64", (None,), 0, 3),
    ("cumsum_i32", (1,), 0, 3), ("cumprod_reverse", (0,), 1, 8), ("cummax", (-1,), 0, 3),
    ("cummin_i32", (0,), 0, 1), ("cumlogsumexp", (1,), -1, 3),
    ("variadic_argmax", (0, None), 0, 3), ("variadic_argmax", (None, 1), (1, 0), 3),
    ("variadic_argmax", (-1, 0), 0, 8),
]


@pytest.mark.parametrize("name,in_axes,out_axes,size", WINDOW_PARAMS,
                         ids=[f"{n}-{a}-{o}-{s}" for n, a, o, s in WINDOW_PARAMS])
def test_reduce_window(rng, name, in_axes, out_axes, size):
    fn, shapes, dtypes = WINDOWS[name]
    dtypes = dtypes if isinstance(dtypes, list) else [dtypes] * len(shapes)
    with x64(*dtypes):
        args = [make(rng, s, d, ax, size) for s, d, ax in zip(shapes, dtypes, in_axes)]
        if name == "variadic_argmax":  # indices, not noise
            args[1] = jnp.abs(args[1])
        check_vmap(fn, *args, in_axes=in_axes, out_axes=out_axes,
                   axis_size=axis_size_for(in_axes, size), **TOL)


def _per_example_loop(fn, args, in_axes, size):
    outs = [jax.jit(fn)(*[a if ax is None else jnp.take(a, i, axis=ax)
                          for a, ax in zip(args, in_axes)]) for i in range(size)]
    return jax.tree_util.tree_map(lambda *o: jnp.stack(o), *outs)


def _min_init_max_pool(x):
    return lax.reduce_window(x, jnp.min(x), lax.max, (2, 2), (1, 2), "SAME")


def _sum_init_sum(x, y):
    return lax.reduce_window(x, jnp.sum(y), lax.add, (3,), (1,), ((2, 0),))


@pytest.mark.parametrize("fn,shapes,in_axes,size", [
    (_min_init_max_pool, [(4, 5)], (0,), 3), (_sum_init_sum, [(6,), (2,)], (None, 1), 1)])
def test_reduce_window_per_lane_init(rng, fn, shapes, in_axes, size):
    """An init value computed from batched data runs once per lane (with the
    fallback warning): compared with a per-example loop."""
    args = [make(rng, s, f32, ax, size) for s, ax in zip(shapes, in_axes)]
    with pytest.warns(sb.FallbackWarning, match="init value differs per batch element"):
        got = sb.batch_lower(fn, in_axes=in_axes)(*args)
    assert_same_tree(got, _per_example_loop(fn, args, in_axes, size), **TOL)


def test_reduce_window_per_lane_init_strict(rng):
    x = make(rng, (4, 5), f32, 0, 3)
    with pytest.raises(sb.UnsupportedOpError, match="reduce_window.*init value differs"):
        sb.batch_lower(_min_init_max_pool, strict=True)(x)


# ---- select_and_scatter: the gradient of max pooling --------------------------------
def _pool_grad(x, g):
    pool = lambda v: lax.reduce_window(v, -jnp.inf, lax.max, (3, 2), (2, 1), "SAME")
    return jax.vjp(pool, x)[1](g)[0]


@pytest.mark.parametrize("in_axes,out_axes,size,dtype", [
    ((0, 0), 0, 3, f32), ((0, None), 1, 8, f32), ((None, 0), 0, 3, f32),
    ((-1, 1), -1, 1, f64), ((None, None), 0, 3, f32)])
def test_select_and_scatter(rng, in_axes, out_axes, size, dtype):
    with x64(dtype):
        x = make(rng, (5, 4), dtype, in_axes[0], size)
        g = make(rng, (3, 4), dtype, in_axes[1], size)
        check_vmap(_pool_grad, x, g, in_axes=in_axes, out_axes=out_axes,
                   axis_size=axis_size_for(in_axes, size), **TOL)


def test_max_pool_gradient_through_jax_grad(rng):
    fn = jax.grad(lambda x: jnp.sum(_max_pool(x) ** 2))
    check_vmap(fn, make(rng, (6, 5), f32, 1, 3), in_axes=1, out_axes=-1, **TOL)


SELECT_AND_SCATTER = """
func.func @main(%x: tensor<4x6xf32>, %src: tensor<2x3xf32>, %init: tensor<f32>) -> tensor<4x6xf32> {
  %0 = "stablehlo.select_and_scatter"(%x, %src, %init) <{window_dimensions = array<i64: 2, 2>, window_strides = array<i64: 2, 2>}> ({
  ^bb0(%a: tensor<f32>, %b: tensor<f32>):
    %p = stablehlo.compare GE, %a, %b, FLOAT : (tensor<f32>, tensor<f32>) -> tensor<i1>
    stablehlo.return %p : tensor<i1>
  }, {
  ^bb0(%a: tensor<f32>, %b: tensor<f32>):
    %s = stablehlo.add %a, %b : tensor<f32>
    stablehlo.return %s : tensor<f32>
  }) : (tensor<4x6xf32>, tensor<2x3xf32>, tensor<f32>) -> tensor<4x6xf32>
  return %0 : tensor<4x6xf32>
}
"""


@pytest.mark.parametrize("in_axes", [[0, None, 0], [None, 1, 0]])
def test_select_and_scatter_per_lane_init(rng, in_axes):
    size = 3
    args = [make(rng, s, f32, ax, size) for s, ax in zip([(4, 6), (2, 3), ()], in_axes)]
    with pytest.warns(sb.FallbackWarning, match="select_and_scatter"):
        check_module(SELECT_AND_SCATTER, args, in_axes, [0], size)


# ---- map --------------------------------------------------------------------------
MAP = """
func.func @main(%x: tensor<2x3xf32>, %y: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %0 = "stablehlo.map"(%x, %y) <{dimensions = array<i64: 0, 1>}> ({
  ^bb0(%a: tensor<f32>, %b: tensor<f32>):
    %m = stablehlo.multiply %a, %b : tensor<f32>
    %s = stablehlo.subtract %m, %a : tensor<f32>
    stablehlo.return %s : tensor<f32>
  }) : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}
"""


@pytest.mark.parametrize("in_axes,out_axis,size", [([0, 0], 0, 3), ([None, 1], -1, 8),
                                                   ([2, None], 1, 1)])
def test_map(rng, in_axes, out_axis, size):
    args = [make(rng, (2, 3), f32, ax, size) for ax in in_axes]
    check_module(MAP, args, in_axes, [out_axis], size)
