"""Benchmarks of batch_lower against jax.vmap (``make bench``, ``make bench-quick``).

``workloads.py`` holds the functions, ``harness.py`` measures one workload,
``run.py`` runs everything and writes ``results/latest.md`` and the plots.
"""
