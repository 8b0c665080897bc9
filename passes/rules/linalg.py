"""Linear algebra and spectral ops: fft, cholesky, triangular_solve, the
linear-algebra custom calls jax emits (LAPACK / cuSOLVER / hipSOLVER FFI),
batch_norm_* and map."""
from __future__ import annotations
