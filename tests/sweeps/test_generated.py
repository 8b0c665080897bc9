"""Generated programs (tests/gen_programs.py): batch_lower against jax.vmap.

The "ci" hypothesis profile (the default) is derandomized and sized for CI;
``make fuzz`` selects the "fuzz" profile (HYPOTHESIS_PROFILE=fuzz) and runs
thousands of programs, then prints the tally kept in ``TALLY``.
"""
from __future__ import annotations

import collections
import os
import time

from hypothesis import HealthCheck, event, given, settings

from gen_programs import check_program, programs

_COMMON = dict(deadline=None, print_blob=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                      HealthCheck.filter_too_much])
settings.register_profile("ci", max_examples=int(os.environ.get("GEN_EXAMPLES", 150)),
                          derandomize=True, **_COMMON)
settings.register_profile("fuzz", max_examples=int(os.environ.get("GEN_EXAMPLES", 3000)),
                          **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

TALLY = collections.Counter()


@given(programs())
def test_generated_program_matches_vmap(program):
    start = time.perf_counter()
    try:
        outcome = check_program(program)
    except BaseException:
        TALLY["failed"] += 1
        raise
    finally:
        TALLY["seconds"] += time.perf_counter() - start
    TALLY[outcome] += 1
    TALLY["ran"] += 1
    event(outcome)


def teardown_module(module):
    if os.environ.get("HYPOTHESIS_PROFILE") == "fuzz":
        print(f"\ngenerated programs: ran {TALLY['ran'] + TALLY['failed']}, "
              f"failed {TALLY['failed']} (counting hypothesis' shrink replays), "
              f"ok {TALLY['ok']}, "
              f"unsupported {TALLY['unsupported']}, both-reject {TALLY['both-reject']}, "
              f"vmap-failed (checked against a loop) {TALLY['vmap-failed']}, "
              f"{TALLY['seconds']:.0f} s")
