"""Random bit generators whose state is a value: rng_bit_generator and rng.

jax's threefry keys lower to plain integer ops and need no rule here. A
batched ``rng_bit_generator`` state (the ``rbg`` / ``unsafe_rbg`` key
implementations) is run once per lane, so every lane gets exactly the bits
and the next state it would get alone. (``jax.vmap`` instead draws all lanes'
bits in one call from the first lane's state, ignores the other lanes'
states and advances only the first lane's -- fast, but a lane's bits then
depend on its position in the batch.)
"""
from __future__ import annotations

from stablehlo_batch.passes.lane_loop import lane_loop
from stablehlo_batch.passes.rules import register


@register("stablehlo.rng_bit_generator", "stablehlo.rng", costly=True)
def per_lane_generator(fb, op, flags):
    fb.note("per_lane_loop", op, "a batched generator state runs once per lane")
    return [(v, True) for v in lane_loop(fb, op, flags)]
