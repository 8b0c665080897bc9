"""``batch_with_options``: the flat export core plus ``batch_lower``'s scaling
options — computing in chunks (stablehlo_batch/chunking.py) and splitting the
batch axis over a device mesh (stablehlo_batch/sharding.py)."""
from __future__ import annotations

import numpy as np

from stablehlo_batch import axes as ax
from stablehlo_batch.chunking import auto_chunk, chunk_flat
from stablehlo_batch.flat import BatchedExport, batch_flat, is_symbolic
from stablehlo_batch.sharding import shard_flat


def batch_with_options(exp, dims, out_dims, size, *, what: str = "batch_lower",
                       chunk_size=None, memory_limit_bytes=None, mesh=None,
                       axis_name: str = "batch") -> BatchedExport:
    """``batch_flat``, in chunks of ``chunk_size`` lanes (``"auto"``: the
    largest that fits ``memory_limit_bytes``) or over ``mesh[axis_name]``."""
    if chunk_size is None and memory_limit_bytes is not None:
        raise ValueError('memory_limit_bytes needs chunk_size="auto"')
    if chunk_size is not None and mesh is not None:
        raise ValueError("chunk_size and mesh cannot be combined yet")
    if chunk_size is not None and is_symbolic(size):
        raise ValueError("chunk_size needs a static axis_size")
    if mesh is not None and is_symbolic(size):
        raise ValueError("mesh needs a static axis_size")
    dims = ax.batch_positions(f"{what} in_axes", exp.in_avals, dims)
    if chunk_size == "auto":
        return auto_chunk(exp, dims, out_dims, size, memory_limit_bytes, what=what)
    if chunk_size is not None:
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)):
            raise TypeError(f'chunk_size must be an int or "auto", got {chunk_size!r}')
        return chunk_flat(exp, dims, out_dims, size, chunk_size, what=what)
    if mesh is not None:
        return shard_flat(exp, dims, out_dims, size, mesh, axis_name, what=what)
    return batch_flat(exp, dims, out_dims, size, what=what)
