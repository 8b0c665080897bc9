"""The benchmark's workloads: real per-example functions and how to batch them.

Each ``Workload`` has a per-example function ``fn``, vmap-style ``in_axes``
(``None`` = shared by every example, e.g. weights) and ``make(batch, rng)``
building batched arguments. Sizes are chosen so that one call at batch 64
takes a millisecond or more on a CPU. ``scaling_models`` builds the deep
MLPs and transformer stacks whose op count grows for the rewrite-cost study.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class Workload:
    name: str
    fn: Callable
    in_axes: tuple
    make: Callable  # (batch, rng) -> tuple of batched/unbatched arguments
    what: str = ""
    out_axes: object = 0
    sizes: tuple | None = None  # its own batch sizes (None: the run's sizes)


def normal(rng, *shape, scale=1.0):
    return jnp.asarray(rng.standard_normal(shape) * scale, jnp.float32)


def mlp_params(rng, sizes, batch=None):
    lead = () if batch is None else (batch,)
    return [(normal(rng, *lead, m, n, scale=1 / np.sqrt(m)), normal(rng, *lead, n, scale=0.1))
            for m, n in zip(sizes[:-1], sizes[1:])]


def mlp(params, x):
    for i, (w, b) in enumerate(params):
        x = x @ w + b
        if i < len(params) - 1:
            x = jax.nn.relu(x)
    return x


# ---- 1. ensemble of MLPs: params batched, data shared -------------------------------

def _ensemble_make(batch, rng):
    return mlp_params(rng, [32, 128, 128, 10], batch), normal(rng, 64, 32)


# ---- 2. per-example gradients of an MLP ------------------------------------------------

def _loss(params, x, y):
    logits = mlp(params, x)
    return -jnp.sum(jax.nn.log_softmax(logits) * jax.nn.one_hot(y, 10))


per_example_grad = jax.grad(_loss)


def _grad_make(batch, rng):
    return (mlp_params(rng, [128, 128, 128, 10]), normal(rng, batch, 128),
            jnp.asarray(rng.integers(0, 10, batch), jnp.int32))


# ---- 3. small CNN per example -------------------------------------------------------------

def cnn(params, img):
    (k1, k2, w, b) = params
    dn = ("NHWC", "HWIO", "NHWC")
    x = jax.lax.conv_general_dilated(img[None], k1, (1, 1), "SAME", dimension_numbers=dn)
    x = jax.nn.relu(x)
    x = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
    x = jax.lax.conv_general_dilated(x, k2, (1, 1), "SAME", dimension_numbers=dn)
    x = jax.nn.relu(x)
    return jnp.mean(x[0], axis=(0, 1)) @ w + b


def _cnn_make(batch, rng):
    params = (normal(rng, 3, 3, 1, 8, scale=0.3), normal(rng, 3, 3, 8, 16, scale=0.1),
              normal(rng, 16, 10, scale=0.2), normal(rng, 10, scale=0.1))
    return params, normal(rng, batch, 28, 28, 1)


# ---- 4. transformer block per sequence ----------------------------------------------------

def _layer_norm(x, g, b):
    mu = jnp.mean(x, -1, keepdims=True)
    var = jnp.mean((x - mu) ** 2, -1, keepdims=True)
    return (x - mu) * jax.lax.rsqrt(var + 1e-5) * g + b


def transformer_block(p, x, heads=4):
    s, d = x.shape
    h = _layer_norm(x, p["g1"], p["b1"])
    q, k, v = (h @ p["wq"], h @ p["wk"], h @ p["wv"])
    split = lambda t: t.reshape(s, heads, d // heads).transpose(1, 0, 2)
    q, k, v = split(q), split(k), split(v)
    att = jax.nn.softmax(q @ k.transpose(0, 2, 1) / np.sqrt(d // heads), axis=-1)
    o = (att @ v).transpose(1, 0, 2).reshape(s, d) @ p["wo"]
    x = x + o
    h = _layer_norm(x, p["g2"], p["b2"])
    return x + jax.nn.gelu(h @ p["w1"]) @ p["w2"]


def _transformer_params(rng, d=64, f=256):
    sc = 1 / np.sqrt(d)
    return {"g1": jnp.ones(d), "b1": jnp.zeros(d), "g2": jnp.ones(d), "b2": jnp.zeros(d),
            "wq": normal(rng, d, d, scale=sc), "wk": normal(rng, d, d, scale=sc),
            "wv": normal(rng, d, d, scale=sc), "wo": normal(rng, d, d, scale=sc),
            "w1": normal(rng, d, f, scale=sc), "w2": normal(rng, f, d, scale=1 / np.sqrt(f))}


def _transformer_make(batch, rng):
    return _transformer_params(rng), normal(rng, batch, 32, 64)


# ---- 5. Newton's method with per-lane trip counts ----------------------------------------

def newton_sqrt(a):
    """sqrt(a) elementwise by Newton steps until the whole example converged;
    examples of different magnitude need different trip counts."""
    def cond(c):
        x, i = c
        return (jnp.max(jnp.abs(x * x - a) / a) > 1e-6) & (i < 100)

    def body(c):
        x, i = c
        return 0.5 * (x + a / x), i + 1
    x, n = jax.lax.while_loop(cond, body, (a, 0))
    return x, n


def _newton_make(batch, rng):
    scale = jnp.asarray(10.0 ** rng.uniform(0, 6, (batch, 1)), jnp.float32)
    return (jnp.asarray(rng.uniform(0.5, 2.0, (batch, 2048)), jnp.float32) * scale,)


# ---- 6. scan RNN with unbatched weights -----------------------------------------------------

def rnn(params, xs):
    w, u, b = params

    def step(h, x):
        h = jnp.tanh(h @ w + x @ u + b)
        return h, h
    h, hs = jax.lax.scan(step, jnp.zeros(w.shape[0]), xs)
    return h, jnp.mean(hs, 0)


def _rnn_make(batch, rng):
    params = (normal(rng, 128, 128, scale=1 / np.sqrt(128)),
              normal(rng, 32, 128, scale=1 / np.sqrt(32)), normal(rng, 128, scale=0.1))
    return params, normal(rng, batch, 40, 32)


# ---- 7. embedding lookup into an unbatched table plus a scatter-add ----------------------

def embed_scatter(table, ids, weights):
    emb = table[ids]                                    # gather from the shared table
    pooled = jnp.sum(emb * weights[:, None], axis=0)
    hist = jnp.zeros(table.shape[0]).at[ids].add(weights)   # scatter-add
    return pooled, hist


def _embed_make(batch, rng):
    return (normal(rng, 2000, 64), jnp.asarray(rng.integers(0, 2000, (batch, 128)), jnp.int32),
            normal(rng, batch, 128))


# ---- 8. sort and top-k ----------------------------------------------------------------------

def sort_topk(x):
    s = jnp.sort(x)
    vals, idx = jax.lax.top_k(x, 16)
    return s[::16], vals, idx


def _sort_make(batch, rng):
    return (normal(rng, batch, 1024),)


# ---- 9. batched linear solves ------------------------------------------------------------------

def solve(a, b):
    return jnp.linalg.solve(a, b)


def _solve_make(batch, rng):
    a = normal(rng, batch, 48, 48) + 48 * jnp.eye(48)
    return a, normal(rng, batch, 48)


# ---- 10. through the per-lane fallback: a host callback ------------------------------------------

def _host_fn(x):
    return np.tanh(np.asarray(x)) * 2.0


def host_callback(x):
    y = jax.pure_callback(_host_fn, jax.ShapeDtypeStruct(x.shape, x.dtype), x,
                          vmap_method="sequential")
    return jnp.sum(y * x)


def _host_make(batch, rng):
    return (normal(rng, batch, 256),)


# ---- issue 15: where a loop over lanes or chunks beats the full batch ---------------------

def _ensemble_wide_make(batch, rng):
    return mlp_params(rng, [64, 256, 256, 16], batch), normal(rng, 64, 64)


def matmul_chain(x, ws):
    """A chain of 96x96 products, both sides batched (x and the weights)."""
    for w in ws:
        x = jnp.tanh(x @ w)
    return x


def _matmul_chain_make(batch, rng):
    return (normal(rng, batch, 96, 96, scale=0.1),
            [normal(rng, batch, 96, 96, scale=1 / np.sqrt(96)) for _ in range(4)])


def _cnn_ensemble_make(batch, rng):
    params = (normal(rng, batch, 3, 3, 1, 8, scale=0.3), normal(rng, batch, 3, 3, 8, 16, scale=0.1),
              normal(rng, batch, 16, 10, scale=0.2), normal(rng, batch, 10, scale=0.1))
    return params, normal(rng, 28, 28, 1)


def topk(x):
    return jax.lax.top_k(x, 16)


def _topk_axis1_make(batch, rng):
    return (normal(rng, 32, batch, 1024),)


def scan_decay(xs):
    """A 256-step scan (exponential moving average with tanh)."""
    def step(h, x):
        h = jnp.tanh(0.9 * h + x)
        return h, h
    h, hs = jax.lax.scan(step, jnp.zeros(xs.shape[1:]), xs)
    return h, jnp.mean(hs, 0)


def _scan_axis1_make(batch, rng):
    return (normal(rng, 256, batch, 64),)


def _mlp_axis1_make(batch, rng):
    return mlp_params(rng, [32, 128, 128, 10]), normal(rng, 16, batch, 32)


def _mlp_axis1(params, x):
    return mlp(params, x)


ISSUE_15 = [
    Workload("ensemble_mlp_wide", mlp, (0, None), _ensemble_wide_make,
             "ensemble of 64-256-256-16 MLPs: params batched, shared 64x64 data",
             sizes=(128,)),
    Workload("matmul_chain", matmul_chain, 0, _matmul_chain_make,
             "4 tanh(x @ w) steps of 96x96, x and w both batched", sizes=(256,)),
    Workload("cnn_ensemble", cnn, (0, None), _cnn_ensemble_make,
             "the CNN with batched kernels on one shared 28x28 image", sizes=(64,)),
    Workload("topk_axis1", topk, 1, _topk_axis1_make,
             "lax.top_k(16) of (32, 1024) per example, batch on axis 1", sizes=(256,)),
    Workload("scan_axis1", scan_decay, 1, _scan_axis1_make,
             "256-step scan over (256, 64) per example, batch on axis 1", sizes=(64,)),
    Workload("mlp_axis1", _mlp_axis1, (None, 1), _mlp_axis1_make,
             "shared 32-128-128-10 MLP on 16x32 per example, batch on axis 1", sizes=(256,)),
]

WORKLOADS: list[Workload] = [
    Workload("ensemble_mlp", mlp, (0, None), _ensemble_make,
             "ensemble of 3-layer MLPs: params batched, a shared 64x32 data batch"),
    Workload("per_example_grad", per_example_grad, (None, 0, 0), _grad_make,
             "jax.grad of a 128-128-128-10 MLP's loss per example, params shared"),
    Workload("cnn", cnn, (None, 0), _cnn_make,
             "2 conv + max-pool + dense on a 28x28 image per example"),
    Workload("transformer_block", transformer_block, (None, 0), _transformer_make,
             "layer norm, 4-head attention, MLP on a 32x64 sequence per example"),
    Workload("newton", newton_sqrt, 0, _newton_make,
             "Newton's sqrt until converged: a while with a per-lane trip count"),
    Workload("scan_rnn", rnn, (None, 0), _rnn_make,
             "lax.scan tanh RNN, 40 steps, shared weights"),
    Workload("embed_scatter", embed_scatter, (None, 0, 0), _embed_make,
             "gather 128 rows of a shared 2000x64 table, scatter-add a histogram"),
    Workload("sort_topk", sort_topk, 0, _sort_make, "jnp.sort and lax.top_k(16) of 1024"),
    Workload("linalg_solve", solve, 0, _solve_make, "jnp.linalg.solve of a 48x48 system"),
    Workload("host_callback", host_callback, 0, _host_make,
             "jax.pure_callback: the per-lane fallback loop"),
] + ISSUE_15

BY_NAME = {w.name: w for w in WORKLOADS}


# ---- models of growing size for the rewrite-cost study -------------------------------------

def scaling_models(kind: str, depth: int, rng):
    """(fn, args, in_axes) of a ``depth``-deep model with one example's args."""
    if kind == "mlp":
        params = mlp_params(rng, [16] * (depth + 1))
        return mlp, (params, normal(rng, 16)), (None, 0)
    if kind == "transformer":
        layers = [_transformer_params(rng, d=16, f=32) for _ in range(depth)]

        def stack(ps, x):
            for p in ps:
                x = transformer_block(p, x, heads=2)
            return x
        return stack, (layers, normal(rng, 8, 16)), (None, 0)
    raise ValueError(kind)
