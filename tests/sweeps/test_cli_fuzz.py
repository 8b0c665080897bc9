"""stablehlo-batch-opt under malformed input (tests/fuzz_cli.py), CI-sized.

Every mutant must give a verified module and exit 0, or one ``error:`` line
and exit 1. ``make fuzz`` runs thousands with a fresh seed.
"""
from __future__ import annotations

import fuzz_cli


def test_fuzzed_inputs_give_a_module_or_one_error_line():
    result = fuzz_cli.fuzz(200, seed=7, subprocess_every=40, bytecode_share=0.08,
                           log=lambda *a: None)
    t = result["tally"]
    assert t["inputs"] == 200 and t["ok"] > 10 and t["error"] > 50, t
    bad = [f"[{c.note}] {c.argv}: {why}" for c, why in result["failures"]]
    assert not bad, "\n".join(bad[:10])


def test_contract_checker_catches_violations():
    """The checker itself: a traceback, two lines, a crash are violations."""
    R = fuzz_cli.Result
    assert fuzz_cli.violation(R(1, "", "error: bad input\n", 0)) is None
    assert fuzz_cli.violation(R(1, "", "Traceback (most recent call last):\n x\n", 0))
    assert fuzz_cli.violation(R(1, "", "error: a\nerror: b\n", 0))
    assert fuzz_cli.violation(R(-11, "", "", 0))
    assert fuzz_cli.violation(R("timeout", "", "", 0))
    assert fuzz_cli.violation(R(0, "not a module", "", 0))
    assert fuzz_cli.violation(R(0, "module {}\n", "loc(unknown): error: x\n", 0))


def test_corrupt_bytecode_is_one_error_line():
    import random
    case = next(c for c in fuzz_cli.jax_seeds() if c.note == "mlp")
    bc = fuzz_cli.to_bytecode(case.data)
    for i in range(3):
        data, _ = fuzz_cli.mutate_bytes(bc, random.Random(i))
        res = fuzz_cli.run_inprocess(fuzz_cli.Case(data, case.argv, "bytecode"))
        assert fuzz_cli.violation(res) is None, res
