"""fft (FFT, IFFT, RFFT, IRFFT).

An fft transforms the trailing ``len(fft_length)`` dims and treats every
leading dim as a batch, so a leading batch dim only changes the types.
"""
from __future__ import annotations

from stablehlo_batch.passes.rules import register
from stablehlo_batch.passes.rules.helpers import retype_batched


@register("stablehlo.fft", costly=True)
def fft(fb, op, flags):
    return retype_batched(fb, op)
