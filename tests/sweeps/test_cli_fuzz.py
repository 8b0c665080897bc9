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
    # --report prints the report on stderr, after any warnings
    report = "warning: w\nbatching report for @main (batch size 8)\n  2 ops batched\n"
    assert fuzz_cli.violation(R(0, "module {}\n", report, 0), ["--report"]) is None
    assert fuzz_cli.violation(R(0, "module {}\n", report, 0))
    assert fuzz_cli.violation(R(0, "module {}\n", "error: x\n" + report, 0), ["--report"])


def test_corrupt_bytecode_is_one_error_line():
    import random
    case = next(c for c in fuzz_cli.jax_seeds() if c.note == "mlp")
    bc = fuzz_cli.to_bytecode(case.data)
    for i in range(3):
        data, _ = fuzz_cli.mutate_bytes(bc, random.Random(i))
        res = fuzz_cli.run_inprocess(fuzz_cli.Case(data, case.argv, "bytecode"))
        assert fuzz_cli.violation(res) is None, res


# Found by make fuzz (seed 4000): symbolic.mlir as bytecode with flipped bits,
# which parses and verifies but holds a name that is not valid UTF-8.
_NOT_UTF8_BYTECODE = (
    "eNp9UuFrI1UQf5PZ6XNZHsu65B7rEkIIIYTSy+VCKaVI6ZVLObzD3omWo0jYJmu7dLNbk83VeoiKSDkOEREROcpR"
    "RPwuFD+IH0T84J9R5D7fXyDnvDYe+MXZvPdm5jfzm3mTd+f283vqzu1b9653r167em03KQQsSyC7DugiSZ8qvg6r"
    "9eZ8u7u0srq+gc9/XIZTp+t2fd9x/uentW5r7Tu+9mdS9V9K1/+vkFxyqrDsS9d3tc9pbsjCFJoPV4fadUo3JDXq"
    "NnogLsWzyZilmanh544GAFWhpoY1VFVqadhCVaOqhgRVnSoaDlE1KNRwjKpJ8xpOULVoQcMZqnlyNZyjapPS8Deq"
    "DjkaXi2h2Tpm6ze6nnhZ7UrJ0/BaSXJsh9oaXrBZMub5Iq9tDX+x4xnbZwye3eX22P5TNsgW4pNVDb8FGn4va/iD"
    "q/zC5698ntR4bWh4yqGnnHp8cWF6WfMR+x+z/3BFwxHrD1lP+Jb7rI9Y32pouM/6Nutr3PPaloZ1tm9KG2wkshEu"
    "TscBQP5CVOiEgCEyUrJCshXrAYakbLN5bPGChVBSjTCUisxOATGJoSCUKAkddIn5HGI+yYiHPrFwEKkySp6LgYFI"
    "M3fIfdghLIFtvcOxmw5I6zrjLdz0UFoLKJnnO3wianMnnANI1lMk3NQkrRYS1/paVHvfcGFGrW8RcbNiS6tpIP2F"
    "qMx9yS+Xka8MUndmSXgswt4jvq6BHhuo5c6g8GMR9D7zLvk+N1Dbl1b7oo/D+pHQvYdlvpBp5CPTyKKWzMCoM3Bi"
    "4V7ZZacZq4OOLcq9SYCLxN1ZU56qdI3TuzEKkfy5nCciudf3eVRWYrhWKrNK4fb8u0L1+lUeoKkUGXSt9m/3bwmn"
    "t1W/GKJ137S40Zgltm913xB2780m/2Em8S7SnBmb+Ak7ZW2rgPzAq6vAs31VCQLXLTvezjRJiyQT702zgZgU0U4a"
    "76W5GOXDaRqLcVxMx5kY5NmDPJ0WSc76dFLko/4gSlMxPMqiUTLoT9JkEIvDvYRTOJZpskJEwyEbo4NoHIthXvR3"
    "4yweR6m4DN4Z59FwEE2KfpL1h8mIS032ooNYxB8c5FmcFQmHjqbc20F6JBbEKCriMfuSD2Nu7kE8NJwXJZ/10zw/"
    "EKOj/n48zuJUvHLe4hep+AOXNx+gzMNSEACEfFQBaoCooAHQBPkpSgXzAAsg4QeGOwBdntn3uK/4YcIyGPx1gFXw"
    "AN4GIwrWAW6CT6cETzhN/gN3tMP4")


def test_bytecode_with_a_name_that_is_not_utf8():
    """The bindings raised RuntimeError (str_from_cstr_and_size) when the
    rewrite read the name: an 'internal error' line. Now a plain error
    (stablehlo_batch/cli.py)."""
    import base64
    import zlib
    data = zlib.decompress(base64.b64decode(_NOT_UTF8_BYTECODE))
    res = fuzz_cli.run_inprocess(fuzz_cli.Case(data, ["--func=custom_call", "--axis-size=b"],
                                               "bytecode"))
    assert fuzz_cli.violation(res) is None, res
    assert "not valid UTF-8" in res.err


def test_error_after_a_fallback_warning_is_one_line():
    """An error raised after a per-lane fallback warned (out_axes with too
    many entries, checked after the body is batched): the warning line
    followed the error line. Now only the error is printed on exit 1."""
    import os
    path = os.path.join(fuzz_cli.ROOT, "lit_tests", "symbolic.mlir")
    case = fuzz_cli.Case(open(path, "rb").read(),
                         ["--func=custom_call", "--axis-size=b", "--out-axes=none,0"])
    res = fuzz_cli.run_inprocess(case)
    assert res.rc == 1 and fuzz_cli.violation(res) is None, res
