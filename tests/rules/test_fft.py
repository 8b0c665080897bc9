"""fft (FFT, IFFT, RFFT, IRFFT), differentially against jax.vmap
(passes/rules/fft.py): jnp.fft's 1-D, 2-D and n-D transforms over the
trailing dims and over leading ones (which jax lowers as transpose + fft),
complex64/complex128 and float32/float64 inputs, the batch at 0, 1, -1 or
nowhere (axis_size), out_axes 0/1/-1, batch sizes 1, 3 and 8.
"""
from __future__ import annotations

import warnings

import jax.numpy as jnp
import pytest

import stablehlo_batch as sb

from batch_cases import axis_size_for, make, x64
from conftest import check_vmap

f32, f64, c64, c128 = jnp.float32, jnp.float64, jnp.complex64, jnp.complex128


@pytest.fixture(autouse=True)
def vectorized_only():
    """A rule that silently ran per lane would still agree with vmap."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", sb.FallbackWarning)
        yield

# (name, fn, per-example shape, dtype, in_axis, out_axis, size)
CASES = [
    ("fft", jnp.fft.fft, (3, 8), c64, 0, 0, 3),
    ("fft_axis0", lambda x: jnp.fft.fft(x, axis=0), (6, 2), c128, 1, -1, 8),
    ("fft_padded", lambda x: jnp.fft.fft(x, n=10), (2, 7), f32, -1, 1, 1),
    ("ifft", jnp.fft.ifft, (2, 6), c64, 1, 0, 3),
    ("ifft_none", jnp.fft.ifft, (5,), c128, None, 0, 3),
    ("rfft", jnp.fft.rfft, (3, 8), f32, 0, -1, 3),
    ("rfft_f64", lambda x: jnp.fft.rfft(x, axis=0), (9, 2), f64, -1, 0, 8),
    ("irfft", jnp.fft.irfft, (2, 5), c64, 0, 1, 3),
    ("irfft_n", lambda x: jnp.fft.irfft(x, n=7), (4,), c128, 1, 0, 1),
    ("fft2", jnp.fft.fft2, (2, 4, 6), c64, -1, 0, 3),
    ("ifft2", jnp.fft.ifft2, (4, 6), c64, 0, -1, 8),
    ("fftn", jnp.fft.fftn, (3, 4, 5), c64, 1, 1, 3),
    ("rfftn", jnp.fft.rfftn, (4, 3, 6), f32, 0, 0, 1),
    ("irfftn", lambda x: jnp.fft.irfftn(x, axes=(0, 2)), (4, 2, 5), c64, 2, 0, 3),
    ("rfft2_none", jnp.fft.rfft2, (4, 6), f32, None, 1, 3),
]


@pytest.mark.parametrize("fn,shape,dtype,in_axis,out_axis,size",
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_fft(rng, fn, shape, dtype, in_axis, out_axis, size):
    tol = dict(rtol=1e-4, atol=1e-4) if dtype in (f32, c64) else dict(rtol=1e-10, atol=1e-10)
    with x64(dtype):
        x = make(rng, shape, dtype, in_axis, size)
        check_vmap(fn, x, in_axes=in_axis, out_axes=out_axis,
                   axis_size=axis_size_for(in_axis, size), **tol)


def test_fft_round_trip(rng):
    """rfft then irfft of a batched signal: two transforms of different types
    on values that are batched only by the first."""
    x = make(rng, (6, 8), f32, 1, 3)
    check_vmap(lambda v: jnp.fft.irfft(jnp.fft.rfft(v) * jnp.arange(5), n=8), x,
               in_axes=1, out_axes=0, rtol=1e-4, atol=1e-4)
