"""Smoke test of the benchmark harness (bench/): one tiny workload at batch 2
with one round, the markdown writer and the rewrite-cost probe, so that the
harness cannot rot silently. It times nothing that it checks."""
import os
import sys

import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from bench import harness, run  # noqa: E402
from bench.workloads import BY_NAME, Workload, scaling_models  # noqa: E402


def _tiny(w, x):
    return jnp.tanh(x @ w).sum(-1)


TINY = Workload("tiny", _tiny, (None, 0),
                lambda b, rng: (jnp.ones((4, 3)), jnp.asarray(rng.standard_normal((b, 4)),
                                                              jnp.float32)))


def test_measure_and_write(tmp_path):
    m = harness.measure(TINY, 2, budget_s=0.0, min_rounds=1, max_rounds=1)
    assert m.status == "ok", m.status
    assert m.rounds == 1 and set(m.times) == {"batch_lower", "vmap", "lax_map"}
    assert m.max_abs_diff < 1e-5 and m.ratio_vmap > 0 and m.rewrite_seconds > 0
    assert m.ratio_vmap_best > 0 and m.ratio_vmap_cpu > 0
    # time to first result: 3 fresh first calls per side, the median of the pair ratios
    assert [len(v) for v in m.first_result_samples_cpu.values()] == [3, 3]
    assert m.first_result_ratio_cpu > 0 and m.first_result_cpu["batch_lower"] > 0
    assert m.hlo_instructions["batch_lower"] > 0 and m.same_hlo is not None
    assert m.report is not None and m.report.ops_by_rule["stablehlo.dot_general"] == 1
    # a workload that fails is reported, not raised
    failed = Workload("raises", lambda x: 1 / 0, 0, lambda b, rng: (jnp.ones((b, 2)),))
    assert harness.measure(failed, 2, budget_s=0.0, max_rounds=1).status.startswith("error")
    scaling = [dict(harness.rewrite_cost(*scaling_models("mlp", 2, np.random.default_rng(0)),
                                         batch=2, repeats=1), kind="mlp", depth=2)]
    assert scaling[0]["ops"] > 5 and scaling[0]["rewrite_s"] > 0
    tg = run.targets([m])
    out = tmp_path / "r.md"
    run.write_markdown(out, run.machine(), [m], scaling, tg, [])
    text = out.read_text()
    assert "| tiny | 2 |" in text and "Rewrite time against module size" in text
    assert "time to first result, CPU" in text


def test_first_call_phases():
    """bench.first_call: fresh first calls per side, jax's phases, the ratio."""
    from bench import first_call
    r = first_call.measure(TINY, 2, pairs=2)
    assert len(r["ratios"]) == 2 and r["ratio_cpu"] > 0
    bl, vm = r["median"]["batch_lower"], r["median"]["vmap"]
    assert bl["cpu"] > 0 and bl["compile"] > 0 and bl["rewrite"] > 0
    assert vm["trace"] > 0 and vm["lower"] > 0 and "rewrite" not in vm


def test_workloads_are_well_formed():
    rng = np.random.default_rng(0)
    for w in BY_NAME.values():
        args = w.make(2, rng)
        axes = w.in_axes if isinstance(w.in_axes, tuple) else (w.in_axes,) * len(args)
        assert len(axes) == len(args), w.name


def test_tune_columns(tmp_path, monkeypatch):
    """lax.map(batch_size=K), batch_lower(tune=True) and the tune table."""
    from stablehlo_batch import tuning
    monkeypatch.setenv(tuning.ENV_DIR, str(tmp_path / "records"))
    monkeypatch.setattr(tuning, "BUDGET_S", 0.0)
    monkeypatch.setattr(tuning, "MIN_ROUNDS", 1)
    m = harness.measure(TINY, 4, budget_s=0.0, min_rounds=1, max_rounds=1,
                        map_chunks=(2, 8), with_tune=True)
    assert m.status == "ok", m.status
    assert set(m.times) == {"batch_lower", "vmap", "lax_map", "lax_map_2", "batch_lower_tune"}
    assert m.best_map_chunk == 2 and m.fastest_alternative in m.times
    assert m.ratio_tune_fastest > 0 and m.tuning is not None
    assert m.first_result["batch_lower_tune"] > 0 and m.as_dict()["tuning"]["candidates"]
    tg = run.targets([m])
    tg.update(run.tune_targets([m]))
    out = tmp_path / "r.md"
    run.write_markdown(out, run.machine(), [m], [], tg, [])
    text = out.read_text()
    assert "Strategy selection" in text and "| tiny | 4 |" in text
    assert "lax.map(K)" in text and "(K=2)" in text
