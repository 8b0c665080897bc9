"""batch_lower(tune=...): strategy selection by measurement (stablehlo_batch/tuning.py).

Every candidate must give jax.vmap's values; the choice is written to a
record and a later plan (memory cleared, or another process) reads it
instead of measuring; corrupt or foreign records are ignored; tuning inside
jax.jit falls back to the record or the full batch. Times are never
asserted: tests that need a particular choice replace the measurement.
"""
import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import stablehlo_batch as sb
from stablehlo_batch import tuning
from tests.conftest import assert_same_tree


@pytest.fixture
def tuned_dir(tmp_path, monkeypatch):
    """Records in a fresh directory, nothing in memory, a tiny time budget."""
    d = tmp_path / "records"
    monkeypatch.setenv(tuning.ENV_DIR, str(d))
    monkeypatch.setattr(tuning, "BUDGET_S", 0.02)
    monkeypatch.setattr(tuning, "MIN_ROUNDS", 1)
    tuning.clear_memory()
    yield d
    tuning.clear_memory()


@pytest.fixture
def counts(monkeypatch):
    """Counts candidate builds and measurements."""
    seen = {"build": [], "measure": 0}
    build, measure = tuning.build, tuning.measure

    def counting_build(exp, dims, out_dims, size, chunk, **kw):
        seen["build"].append(chunk)
        return build(exp, dims, out_dims, size, chunk, **kw)

    def counting_measure(*a, **kw):
        seen["measure"] += 1
        return measure(*a, **kw)
    monkeypatch.setattr(tuning, "build", counting_build)
    monkeypatch.setattr(tuning, "measure", counting_measure)
    return seen


def prefer(monkeypatch, winner: int | None, check=None):
    """Replaces the measurement: ``winner``'s strategy is the fastest. Every
    candidate still runs once, and ``check(output)`` sees each output."""
    def fake(calls, args, kwargs, **kw):
        for fn in calls.values():
            out = fn(*args, **kwargs)
            if check is not None:
                check(out)
        med = {n: 0.5 if n == tuning.strategy_name(winner) else 1.0 for n in calls}
        return med, dict(med), {}, {n: 0.0 for n in calls}, 1
    monkeypatch.setattr(tuning, "measure", fake)


def _f(w, x):
    return jnp.tanh(x @ w).sum(-1), jnp.argmax(x, -1)


W = jnp.asarray(np.random.default_rng(0).standard_normal((4, 3)), jnp.float32)
XS = jnp.asarray(np.random.default_rng(1).standard_normal((12, 4)), jnp.float32)


def test_measures_writes_the_record_and_reuses_it(tuned_dir, counts):
    want = jax.vmap(_f, in_axes=(None, 0))(W, XS)
    bl = sb.batch_lower(_f, in_axes=(None, 0), tune=True)
    assert_same_tree(bl(W, XS), want)
    # full batch, the lane loop and chunks of 8 (with a remainder of 4); then,
    # as the timings fall, a refinement (chunks of 2 or 4 / 16) and a confirmation
    assert counts["build"][:3] == [None, 1, 8] and 1 <= counts["measure"] <= 3
    measured = counts["measure"]
    report = bl.lower(W, XS).report()
    res = report.tuning
    assert res.source == "measured" and not res.pending
    sizes = [c.chunk_size for c in res.candidates]  # the full batch, then by chunk size
    assert sizes[0] is None and {1, 8} <= set(sizes[1:]) and sizes[1:] == sorted(sizes[1:])
    assert all(c.seconds and c.seconds > 0 for c in res.candidates)
    assert all("screen" in c.ratios or c.note.startswith("dropped")
               for c in res.candidates if c.chunk_size in (None, 1, 8))
    text = str(report)
    for name in ("full batch", "lane loop", "chunks of 8", "strategy:"):
        assert name in text
    assert "tuned:" in report.summary() and report.as_dict()["tuning"]["choice"] == res.choice
    rec = json.loads(open(res.record_path).read())
    assert os.path.dirname(res.record_path) == str(tuned_dir)
    assert rec["choice"] == res.choice and rec["batch_size"] == 12
    assert rec["device_kind"].startswith("cpu:")
    # The same signature again: no new plan. A second function object after
    # the in-memory choices are forgotten: the record, one build, no measuring.
    assert_same_tree(bl(W, XS), want)
    tuning.clear_memory()
    counts["build"].clear()
    again = sb.batch_lower(_f, in_axes=(None, 0), tune=True)
    assert_same_tree(again(W, XS), want)
    assert counts["build"] == [res.choice] and counts["measure"] == measured
    res2 = again.lower(W, XS).report().tuning
    assert res2.source == "record" and res2.choice == res.choice
    assert res2.record_path == res.record_path
    # another batch size is another record
    assert_same_tree(again(W, XS[:10]), jax.vmap(_f, in_axes=(None, 0))(W, XS[:10]))
    assert counts["measure"] > measured and len(os.listdir(tuned_dir)) == 2


def _g(x, w):
    return (x * w).sum(0) + w[0], (x > 0).astype(jnp.int32)


def test_chosen_chunks_agree_with_vmap(tuned_dir, monkeypatch):
    """A loop over chunks wins (remainder lanes, in_axes=1, out_axes=1, an
    int result, an unbatched argument); every candidate matches vmap; grad
    goes through the chosen plan."""
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.standard_normal((3, 10, 2)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((3, 2)), jnp.float32)
    vm = jax.vmap(_g, in_axes=(1, None), out_axes=1)
    want = vm(x, w)
    prefer(monkeypatch, 4, check=lambda out: assert_same_tree(out, want))
    bl = sb.batch_lower(_g, in_axes=(1, None), out_axes=1, tune=(4, 3, 64))
    assert_same_tree(bl(x, w), want)
    lowered = bl.lower(x, w)
    res = lowered.report().tuning
    assert res.choice == 4 and [c.chunk_size for c in res.candidates] == [None, 3, 4]
    assert "stablehlo.while" in lowered.as_text()
    loss = lambda b, x, w: b(_g, in_axes=(1, None), out_axes=1, **(
        {"tune": (4, 3, 64)} if b is sb.batch_lower else {}))(x, w)[0].sum()
    assert_same_tree(jax.grad(lambda x, w: loss(sb.batch_lower, x, w), (0, 1))(x, w),
                     jax.grad(lambda x, w: loss(jax.vmap, x, w), (0, 1))(x, w), rtol=1e-5)
    # inside jit, with the record in place
    assert_same_tree(jax.jit(bl)(x, w), want)


def scripted(monkeypatch, *stages, extra=None):
    """Replaces the measurement: the n-th measurement reports the ratios
    ``stages[n]`` (strategy name -> ratio to the full batch) for the
    candidates it is given, and ``extra`` (CPU-time and fastest-call ratios,
    as ``measure``'s sixth result) when given; records which candidates
    each one got."""
    seen = []

    def fake(calls, args, kwargs, **kw):
        assert kw["reference"] == "full batch" and "full batch" in calls
        for fn in calls.values():
            fn(*args, **kwargs)
        script = stages[len(seen)]
        seen.append(sorted(calls))
        ratios = {n: script.get(n, 1.0) for n in calls}
        got = dict(ratios), ratios, {}, {n: 0.0 for n in calls}, 3
        return got if extra is None else got + (extra,)
    monkeypatch.setattr(tuning, "measure", fake)
    return seen


def test_a_loop_must_win_the_confirmation_too(tuned_dir, monkeypatch):
    """The screening's winner (newton@512 in a loaded bench: the lane loop
    measured 0.90 of the full batch, really 1.5-1.7x slower) is measured
    again against the full batch alone; losing there keeps the full batch."""
    seen = scripted(monkeypatch, {"lane loop": 0.9, "chunks of 4": 1.2}, {"lane loop": 1.01})
    bl = sb.batch_lower(_f, in_axes=(None, 0), tune=(1, 4))
    assert_same_tree(bl(W, XS), jax.vmap(_f, in_axes=(None, 0))(W, XS))
    assert seen == [["chunks of 4", "full batch", "lane loop"], ["full batch", "lane loop"]]
    res = bl.lower(W, XS).report().tuning
    assert res.choice is None and res.source == "measured"
    loop = res.candidates[1]
    assert loop.chunk_size == 1 and loop.ratios == {"screen": 0.9, "confirm": 1.01}
    assert loop.scores == loop.ratios  # wall-time ratios alone: the score is the ratio
    assert "score screen 0.90, confirm 1.01" in str(res)
    # confirmed: chosen
    tuning.clear_records()
    scripted(monkeypatch, {"lane loop": 0.9}, {"lane loop": 0.8})
    bl = sb.batch_lower(_f, in_axes=(None, 0), tune=(1, 4))
    assert_same_tree(bl(W, XS), jax.vmap(_f, in_axes=(None, 0))(W, XS))
    assert bl.lower(W, XS).report().tuning.choice == 1


def test_the_score_weighs_a_quiet_and_a_loaded_machine(tuned_dir, monkeypatch):
    """newton@512 in a loaded window: the lane loop's wall time 0.85 of the
    full batch's, but its fastest call 1.6x the full batch's fastest (the
    full batch runs on two cores when the second one is free; CPU time 0.86):
    the full batch's worst case is better. transformer_block@512 in a quiet
    window: chunks of 32 at 1.03 in wall time but 0.67 in CPU time (they
    win on a loaded machine): the loop's worst case is better."""
    assert tuning.score(0.9) == pytest.approx(0.9)
    assert tuning.score(0.85, 1.6, 0.86) >= tuning.SECOND_LOOK
    assert tuning.score(1.03, 1.03, 0.67) < tuning.MARGIN
    assert tuning.score(1.58, 1.58, 0.96) > 1.10  # mlp_axis1@256, chunks of 8
    # slower in both wall-clock views: the CPU view (XLA's spinning worker
    # threads in a 0.3 ms full batch) does not choose it (scan_rnn@8, stop 23)
    assert tuning.score(1.28, 1.26, 0.17) == pytest.approx(1.28)
    assert tuning.score(1.13, 1.08, 0.73) > tuning.SECOND_LOOK  # cnn@8's lane loop
    assert tuning.score(1.04, 1.2, 0.5) < 1  # within WALL_SLACK in one view: CPU counts
    newton = {"cpu": {"full batch": 1.0, "lane loop": 0.86}, "min": {"full batch": 1.0, "lane loop": 1.6}}
    seen = scripted(monkeypatch, {"lane loop": 0.85}, extra=newton)
    bl = sb.batch_lower(_f, in_axes=(None, 0), tune=(1,))
    bl(W, XS)
    res = bl.lower(W, XS).report().tuning
    assert len(seen) == 1 and res.choice is None
    assert res.candidates[1].cpu_ratio == 0.86 and "CPU x0.86" in str(res)
    tuning.clear_records()
    quiet = {"cpu": {"full batch": 1.0, "chunks of 4": 0.67}, "min": {"full batch": 1.0, "chunks of 4": 1.0}}
    seen = scripted(monkeypatch, {"chunks of 4": 1.03}, {"chunks of 4": 1.04}, extra=quiet)
    bl = sb.batch_lower(_f, in_axes=(None, 0), tune=(4,))
    bl(W, XS)
    assert len(seen) == 2 and bl.lower(W, XS).report().tuning.choice == 4


def test_a_close_winner_gets_a_second_look_and_losers_none(tuned_dir, monkeypatch):
    seen = scripted(monkeypatch, {"lane loop": 1.3, "chunks of 4": 0.99}, {"chunks of 4": 0.9})
    bl = sb.batch_lower(_f, in_axes=(None, 0), tune=(1, 4))
    bl(W, XS)
    assert len(seen) == 2 and bl.lower(W, XS).report().tuning.choice == 4
    tuning.clear_records()
    seen = scripted(monkeypatch, {"lane loop": 1.3, "chunks of 4": 1.01})
    bl = sb.batch_lower(_f, in_axes=(None, 0), tune=(1, 4))
    bl(W, XS)
    assert len(seen) == 1 and bl.lower(W, XS).report().tuning.choice is None


def test_tune_true_refines_around_the_best_chunk_size(tuned_dir, monkeypatch, counts):
    """tune=True: the screening's best K (8 of 1, 8, 32 at batch 64) is
    measured again with K/2 and 2K; the best of those is confirmed."""
    xs = jnp.asarray(np.random.default_rng(2).standard_normal((64, 4)), jnp.float32)
    seen = scripted(monkeypatch, {"lane loop": 1.2, "chunks of 8": 0.9, "chunks of 32": 0.95},
                    {"chunks of 4": 0.92, "chunks of 8": 0.9, "chunks of 16": 0.8},
                    {"chunks of 16": 0.85})
    bl = sb.batch_lower(_f, in_axes=(None, 0), tune=True)
    assert_same_tree(bl(W, xs), jax.vmap(_f, in_axes=(None, 0))(W, xs))
    assert counts["build"][:6] == [None, 1, 8, 32, 4, 16]
    assert seen[1] == ["chunks of 16", "chunks of 4", "chunks of 8", "full batch"]
    assert seen[2] == ["chunks of 16", "full batch"]
    res = bl.lower(W, xs).report().tuning
    assert res.choice == 16 and [c.chunk_size for c in res.candidates] == [None, 1, 4, 8, 16, 32]
    # the record holds the refined choice; the next function object reads it
    tuning.clear_memory()
    counts["build"].clear()
    again = sb.batch_lower(_f, in_axes=(None, 0), tune=True)
    assert_same_tree(again(W, xs), jax.vmap(_f, in_axes=(None, 0))(W, xs))
    assert counts["build"] == [16] and len(seen) == 3
    assert again.lower(W, xs).report().tuning.source == "record"
    # the screening's best wins the refinement too: that was its second,
    # independent measurement against the full batch, no third one
    tuning.clear_records()
    seen = scripted(monkeypatch, {"lane loop": 1.2, "chunks of 8": 0.9, "chunks of 32": 0.95},
                    {"chunks of 4": 0.92, "chunks of 8": 0.85, "chunks of 16": 0.9})
    bl = sb.batch_lower(_f, in_axes=(None, 0), tune=True)
    bl(W, xs)
    assert len(seen) == 2 and bl.lower(W, xs).report().tuning.choice == 8
    # ... but not when it is no longer below the margin there
    tuning.clear_records()
    seen = scripted(monkeypatch, {"lane loop": 1.2, "chunks of 8": 0.9, "chunks of 32": 0.95},
                    {"chunks of 4": 1.02, "chunks of 8": 0.99, "chunks of 16": 1.05},
                    {"chunks of 8": 0.98})
    bl = sb.batch_lower(_f, in_axes=(None, 0), tune=True)
    bl(W, xs)
    assert len(seen) == 3 and bl.lower(W, xs).report().tuning.choice is None


def test_corrupt_foreign_and_unwritable_records_are_ignored(tuned_dir, monkeypatch, counts):
    prefer(monkeypatch, 8)
    want = jax.vmap(_f, in_axes=(None, 0))(W, XS)

    def fresh():
        tuning.clear_memory()
        bl = sb.batch_lower(_f, in_axes=(None, 0), tune=(8,))
        assert_same_tree(bl(W, XS), want)
        return bl.lower(W, XS).report().tuning

    first = fresh()
    assert first.source == "measured" and first.choice == 8
    path = first.record_path
    good = open(path).read()
    for bad in ("{not json", json.dumps(dict(json.loads(good), choice=999)),
                json.dumps(dict(json.loads(good), device_kind="tpu:TPU v9")),
                json.dumps(dict(json.loads(good), candidates=[{"x": 1}]))):
        with open(path, "w") as f:
            f.write(bad)
        res = fresh()
        assert res.source == "measured", bad  # measured again ...
        assert json.loads(open(path).read())["choice"] == 8  # ... and rewritten
    assert fresh().source == "record"
    # a records "directory" that is a file: the choice still holds in memory
    blocker = tuned_dir.parent / "a_file"
    blocker.write_text("")
    monkeypatch.setenv(tuning.ENV_DIR, str(blocker))
    res = fresh()
    assert res.source == "measured" and res.choice == 8
    assert sb.batch_lower(_f, in_axes=(None, 0), tune=(8,)).lower(W, XS) is not None


def test_tune_inside_jit(tuned_dir, monkeypatch):
    prefer(monkeypatch, 4)
    want = jax.vmap(_f, in_axes=(None, 0))(W, XS)
    bl = sb.batch_lower(_f, in_axes=(None, 0), tune=(4,))
    outer = jax.jit(lambda w, x: bl(w, x))
    assert_same_tree(outer(W, XS), want)  # traced: not measured, the model's choice runs
    res = bl.lower(W, XS).report().tuning
    assert res.pending and res.choice is None and "cost model" in str(res)
    assert_same_tree(bl(W, XS), want)  # the first direct call measures
    res = bl.lower(W, XS).report().tuning
    assert res.source == "measured" and res.choice == 4
    assert_same_tree(outer(W, XS), want)
    # a new function object traced first: the record, not the default
    tuning.clear_memory()
    other = sb.batch_lower(_f, in_axes=(None, 0), tune=(4,))
    assert_same_tree(jax.jit(lambda w, x: other(w, x))(W, XS), want)
    res = other.lower(W, XS).report().tuning
    assert res.source == "record" and res.choice == 4


def test_tune_inside_jit_runs_the_cost_models_choice(tuned_dir, monkeypatch):
    """Traced by an outer jax.jit with no record: the loop the cost model
    picks runs (as without tune=), reported as pending; the first direct
    call with arrays still measures."""
    from bench.workloads import BY_NAME
    prefer(monkeypatch, 4)
    w = BY_NAME["ensemble_mlp"]
    args = w.make(201, np.random.default_rng(1))  # the model: the lane loop
    want = jax.jit(jax.vmap(w.fn, in_axes=w.in_axes))(*args)
    bl = sb.batch_lower(w.fn, in_axes=w.in_axes, tune=(4,))
    outer = jax.jit(lambda *a: bl(*a))
    assert "stablehlo.while" in outer.lower(*args).as_text()
    assert_same_tree(outer(*args), want, rtol=1e-5, atol=1e-5)
    res = bl.lower(*args).report().tuning
    assert res.pending and res.choice == 1, str(res)
    assert "cost model" in str(res) and "lane-batched GEMMs" in str(res)
    assert "* lane loop" in str(res)
    assert not os.listdir(tuned_dir) if os.path.isdir(tuned_dir) else True
    assert_same_tree(bl(*args), want, rtol=1e-5, atol=1e-5)  # measures
    res = bl.lower(*args).report().tuning
    assert res.source == "measured" and res.choice == 4
    assert_same_tree(outer(*args), want, rtol=1e-5, atol=1e-5)


def test_nothing_to_choose_and_bad_options(tuned_dir, counts):
    bl = sb.batch_lower(_f, in_axes=(None, 0), tune=(8, 16))
    assert_same_tree(bl(W, XS[:4]), jax.vmap(_f, in_axes=(None, 0))(W, XS[:4]))
    res = bl.lower(W, XS[:4]).report().tuning
    assert res.choice is None and counts["measure"] == 0 and res.source == "fixed"
    with pytest.raises(ValueError, match="chunk_size"):
        sb.batch_lower(_f, tune=True, chunk_size=2)
    with pytest.raises(ValueError, match="positive"):
        sb.batch_lower(_f, tune=(0, 2))
    with pytest.raises(TypeError, match="tune"):
        sb.batch_lower(_f, tune=3)
    with pytest.raises(ValueError, match="static"):
        sb.batch_lower(_f, axis_size="b", tune=True)


def test_records_dir(monkeypatch, tmp_path):
    monkeypatch.setenv(tuning.ENV_DIR, str(tmp_path / "env"))
    assert tuning.records_dir() == str(tmp_path / "env")
    monkeypatch.delenv(tuning.ENV_DIR)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    old = jax.config.jax_compilation_cache_dir
    try:
        jax.config.update("jax_compilation_cache_dir", None)
        assert tuning.records_dir() == str(tmp_path / "xdg" / "stablehlo_batch" / "tuning")
        jax.config.update("jax_compilation_cache_dir", str(tmp_path / "jaxcache"))
        assert tuning.records_dir() == str(tmp_path / "jaxcache" / "stablehlo_batch_tuning")
    finally:
        jax.config.update("jax_compilation_cache_dir", old)
    (tmp_path / "xdg").mkdir()
    (tmp_path / "xdg" / "r.json").write_text("{}")
    assert tuning.clear_records(str(tmp_path / "xdg")) == 1


_CHILD = textwrap.dedent("""
    import json, sys
    import jax, jax.numpy as jnp
    jax.config.update("jax_compilation_cache_dir", sys.argv[1])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    events = []
    jax.monitoring.register_event_listener(lambda name, **kw: events.append(name))
    import stablehlo_batch as sb
    from stablehlo_batch import tuning
    tuning.BUDGET_S, tuning.MIN_ROUNDS = 0.02, 1
    measured = []
    measure = tuning.measure
    tuning.measure = lambda *a, **k: measured.append(1) or measure(*a, **k)
    f = lambda w, x: jnp.tanh(x @ w).sum(-1)
    bl = sb.batch_lower(f, in_axes=(None, 0), tune=(4,))
    y = bl(jnp.ones((4, 3)), jnp.ones((8, 4)))
    print(json.dumps({"measured": len(measured), "value": float(y.sum()),
                      "hits": events.count("/jax/compilation_cache/cache_hits"),
                      "misses": events.count("/jax/compilation_cache/cache_misses")}))
""")


def test_second_process_pays_neither_tuning_nor_compile(tmp_path):
    """With jax's compilation cache set, the record lives next to it, and a
    second process reads the choice and the executables from disk."""
    env = {k: v for k, v in os.environ.items() if k != tuning.ENV_DIR}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def child():
        out = subprocess.run([sys.executable, "-c", _CHILD, str(tmp_path)], env=env,
                             cwd=root, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-3000:]
        return json.loads(out.stdout.strip().splitlines()[-1])

    first, second = child(), child()
    assert first["measured"] >= 1 and first["misses"] > 0
    assert second["measured"] == 0 and second["misses"] == 0 and second["hits"] > 0
    assert second["value"] == first["value"] == pytest.approx(8 * 3 * np.tanh(4.0))
    assert os.listdir(tmp_path / "stablehlo_batch_tuning")


def test_batch_exported_tune(tuned_dir, monkeypatch):
    prefer(monkeypatch, 4)
    exp = jax.export.export(jax.jit(_f))(W, XS[0])
    bexp = sb.batch_exported(exp, in_axes=(None, 0), axis_size=12, tune=(4,))
    assert "stablehlo.while" in bexp.mlir_module()
    assert_same_tree(tuple(bexp.call(W, XS)), tuple(jax.vmap(_f, in_axes=(None, 0))(W, XS)))
    assert len(os.listdir(tuned_dir)) == 1
    # the batched artifact serializes and runs like any other
    again = jax.export.deserialize(bexp.serialize())
    assert_same_tree(tuple(again.call(W, XS)), tuple(jax.vmap(_f, in_axes=(None, 0))(W, XS)))
    with pytest.raises(ValueError, match="tune_args"):
        sb.batch_exported(exp, in_axes=(None, 0), axis_size=12, tune=(3,), tune_args=(W,))


def test_a_candidate_that_fails_is_skipped(tuned_dir, monkeypatch):
    build = tuning.build

    def failing(exp, dims, out_dims, size, chunk, **kw):
        if chunk == 4:
            raise RuntimeError("no loop today")
        return build(exp, dims, out_dims, size, chunk, **kw)
    monkeypatch.setattr(tuning, "build", failing)
    bl = sb.batch_lower(_f, in_axes=(None, 0), tune=(4,))
    assert_same_tree(bl(W, XS), jax.vmap(_f, in_axes=(None, 0))(W, XS))
    res = bl.lower(W, XS).report().tuning
    assert res.choice is None and res.source == "measured"
    assert "no loop today" in res.candidates[1].note and "failed" in str(res)


def test_calls_after_measuring_take_jits_fast_path(tuned_dir, monkeypatch):
    """The first call's trace raised (to measure outside it); jit's C++ cache
    must not keep sending that signature through Python afterwards."""
    from jax._src import pjit
    if not hasattr(pjit, "_run_python_pjit"):
        pytest.skip("jax internals changed")
    prefer(monkeypatch, None)
    bl = sb.batch_lower(_f, in_axes=(None, 0), tune=(4,))
    bl(W, XS)
    slow = []
    run = pjit._run_python_pjit
    monkeypatch.setattr(pjit, "_run_python_pjit", lambda *a, **k: slow.append(1) or run(*a, **k))
    for _ in range(3):
        bl(W, XS)
    assert not slow


def test_lane_loop_runs_the_unbatched_function(rng):
    """chunk 1 (the lane loop tune= tries) calls the per-example module itself;
    values, the summed gradient of a shared weight and forward mode agree."""
    x = jnp.asarray(rng.standard_normal((3, 5, 2)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((3, 2)), jnp.float32)
    bl = sb.batch_lower(_g, in_axes=(1, None), out_axes=1, chunk_size=1)
    vm = jax.vmap(_g, in_axes=(1, None), out_axes=1)
    assert_same_tree(bl(x, w), vm(x, w))
    loss = lambda f: (lambda x, w: f(x, w)[0].sum())
    assert_same_tree(jax.grad(loss(bl), (0, 1))(x, w), jax.grad(loss(vm), (0, 1))(x, w),
                     rtol=1e-5)
    assert_same_tree(jax.jvp(loss(bl), (x, w), (x, w)), jax.jvp(loss(vm), (x, w), (x, w)),
                     rtol=1e-5)
