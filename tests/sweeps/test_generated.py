"""Generated programs (tests/gen_programs.py): batch_lower against jax.vmap.

In CI (the default "ci" hypothesis profile) a derandomized sample of
GEN_SAMPLE programs is drawn once, run in a few chunks, and its tally must
count every family ``gen_programs.expected_tags()`` lists (op families,
compositions, options, dtypes, batch sizes, closures, key axes); tags whose
feature this build lacks are skipped with the feature's name. ``make fuzz``
selects the "fuzz" profile (HYPOTHESIS_PROFILE=fuzz): GEN_EXAMPLES fresh
programs with hypothesis' shrinking (a fifth of them per stratum), then the
tally is printed and written to GEN_TALLY_FILE (tests/fuzz_all.py merges the
shards' tallies).
"""
from __future__ import annotations

import collections
import json
import os
import random
import time

import pytest
from hypothesis import HealthCheck, Phase, event, given, seed, settings

import gen_programs
from gen_programs import check_program, programs

_COMMON = dict(deadline=None, print_blob=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                      HealthCheck.filter_too_much])
settings.register_profile("ci", max_examples=int(os.environ.get("GEN_EXAMPLES", 150)),
                          derandomize=True, **_COMMON)
settings.register_profile("fuzz", max_examples=int(os.environ.get("GEN_EXAMPLES", 5000)),
                          **_COMMON)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
settings.load_profile(PROFILE)
FUZZ = PROFILE == "fuzz"

SAMPLE = int(os.environ.get("GEN_SAMPLE", 200))
SAMPLE_STEPS = 3  # CI: short programs, so that a few hundred fit in CI's time
CHUNKS = 4
TALLY = collections.Counter()


def draw_sample(n: int, derandomize: bool = True) -> list:
    """``n`` programs, the same on every run and every xdist worker. The
    sample is stratified: program i starts with stratum i % S (a family, or
    one variant of the collective / key / linalg families) and is used as
    USES[...] with an option in turn, so a few hundred touch every family
    and variant (hypothesis' own first examples are the simplest ones)."""
    strata = gen_programs.strata()
    opts = (None, "chunk", "symbolic", None, "mesh", "tune")
    out = []
    for i in range(n):
        use = gen_programs.USES[(i + i // len(strata)) % len(gen_programs.USES)]
        first, variant = strata[i % len(strata)]

        @seed(i if derandomize else random.getrandbits(64))
        # the first example hypothesis generates is its simplest: keep the last
        @settings(max_examples=3, database=None, phases=[Phase.generate], **_COMMON)
        @given(programs(max_steps=SAMPLE_STEPS, first=first, variant=variant, use=use,
                        option=opts[i % len(opts)]))
        def collect(p):
            last[:] = [p]
        last = []
        collect()
        out.extend(last)
    return out


_SAMPLE_CACHE: list = []


def sample() -> list:
    if not _SAMPLE_CACHE:
        _SAMPLE_CACHE.extend(draw_sample(SAMPLE))
    return _SAMPLE_CACHE


@pytest.mark.skipif(FUZZ, reason="make fuzz runs the hypothesis test instead")
@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_sample_matches_vmap(chunk):
    failures = []
    for p in sample()[chunk::CHUNKS]:
        try:
            check_program(p)
        except Exception as e:  # every failure, each with its pasteable program
            failures.append(f"{type(e).__name__}: {str(e)[:300]}\n{p!r}")
    assert not failures, f"{len(failures)} failed:\n" + "\n\n".join(failures[:5])


@pytest.mark.skipif(FUZZ, reason="make fuzz prints the tally instead")
@pytest.mark.parametrize("tag", gen_programs.expected_tags())
def test_sample_covers(tag):
    missing = gen_programs.missing_features()
    if tag in missing:
        pytest.skip(missing[tag])
    tally = collections.Counter(t for p in sample() for t in p.tags())
    assert tally[tag] > 0, f"no program of the {len(sample())} in the sample has {tag}"


# make fuzz: a fifth of the programs start with a given stratum (each family,
# and each collective / key / linalg variant): hypothesis' own choices are far
# from uniform (1700 free programs once had no psum and no svd at all).
EXAMPLES = int(os.environ.get("GEN_EXAMPLES", 5000))
STRATA = gen_programs.strata() if FUZZ else []
PER_STRATUM = max(1, EXAMPLES // (5 * max(len(STRATA), 1)))
FREE = max(EXAMPLES - PER_STRATUM * len(STRATA), 1)


@pytest.mark.skipif(not FUZZ, reason="HYPOTHESIS_PROFILE=fuzz (make fuzz)")
@pytest.mark.parametrize("stratum", STRATA, ids=[f"{f}:{v}" if v else f for f, v in STRATA])
def test_generated_stratum_matches_vmap(stratum):
    first, variant = stratum

    @settings(max_examples=PER_STRATUM)
    @given(programs(first=first, variant=variant))
    def run(program):
        test_generated_program_matches_vmap.hypothesis.inner_test(program)
    run()


@pytest.mark.skipif(not FUZZ, reason="HYPOTHESIS_PROFILE=fuzz (make fuzz)")
@settings(max_examples=FREE)
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
    TALLY.update(f"tag {t}" for t in program.tags())
    event(outcome)


def format_tally(tally: collections.Counter) -> str:
    """Outcomes, then every expected tag with its count (0 shown), then the rest."""
    lines = [f"generated programs: ran {tally['ran'] + tally['failed']}, "
             f"failed {tally['failed']} (counting hypothesis' shrink replays), "
             f"ok {tally['ok']}, unsupported {tally['unsupported']}, "
             f"both-reject {tally['both-reject']}, "
             f"vmap-failed (checked against a loop) {tally['vmap-failed']}, "
             f"vmap-failed-use (not checked) {tally['vmap-failed-use']}, "
             f"vmap-failed-extrema (checked with pmax / pmin as all_gather + max / min) "
             f"{tally['vmap-failed-extrema']}, "
             f"jax-diff-failed (jax.vjp of the unbatched function fails too) "
             f"{tally['jax-diff-failed']}, "
             f"refused-size0 (a collective that needs a lane at batch size 0: documented) "
             f"{tally['refused-size0']}, "
             f"refused-symbolic (a collective that needs the number of lanes at a symbolic "
             f"size: documented) {tally['refused-symbolic']}, "
             f"size0-grad-nan (a gradient at batch size 0: vmap's nan, our 0: documented) "
             f"{tally['size0-grad-nan']}, "
             f"{tally['seconds']:.0f} s"]
    expected = gen_programs.expected_tags()
    missing = gen_programs.missing_features()
    rest = sorted(k[4:] for k in tally if k.startswith("tag ") and k[4:] not in expected)
    for group in ("op", "use", "opt", "dtype", "size", "closure", "key", "static", "size0",
                  "size1", "symbolic"):
        items = [t for t in expected + rest if t.split(":")[0] == group]
        if items:
            lines.append(f"  {group}: " + ", ".join(
                f"{t.split(':', 1)[1]}={tally['tag ' + t]}"
                + (" (feature missing)" if t in missing else "") for t in items))
    return "\n".join(lines)


def teardown_module(module):
    if FUZZ:
        print("\n" + format_tally(TALLY))
        if os.environ.get("GEN_TALLY_FILE"):  # tests/fuzz_all.py merges the shards' tallies
            with open(os.environ["GEN_TALLY_FILE"], "w") as f:
                json.dump(dict(TALLY), f)
