"""Runs JAX's own vmap tests with ``stablehlo_batch.batch_lower`` in ``jax.vmap``'s place.

Not a pytest module (its name does not start with ``test_``) and not part of
``make test``: it needs JAX's test files, which this repository does not hold.
Extract them from a JAX checkout or git mirror at the tag of the installed jax
(docs/dropin.md, "JAX's own vmap tests")::

    mkdir -p /tmp/jaxsuite/tests
    for f in batching_test lax_vmap_test lax_vmap_op_test api_test \\
             lax_control_flow_test custom_api_test; do
      git -C <jax repo> show jax-v0.10.2:tests/$f.py > /tmp/jaxsuite/tests/$f.py
    done
    nice .venv/bin/python tests/run_jax_suite.py /tmp/jaxsuite/tests batching_test

The substitution is made in the test modules only: after a test file is
imported, its global ``vmap`` (when it is ``jax.vmap``) becomes ``batch_lower``
and its globals ``jax`` and ``api`` (``jax._src.api``) become proxies of those
modules whose ``vmap`` attribute is ``batch_lower``. jax's own code
(``jnp.vectorize``, ``jacfwd``, ``jax.hessian``, ``lax.map`` with a batch size,
custom_vmap rules, ...) keeps the real ``jax.vmap``.

The tests run with unittest (absl's ``parameterized``, jax's ``JaxTestCase``),
one process, in the order of the files given. ``-k`` selects test ids
(``Class.test_name``) by case-insensitive substring (several ``-k`` are or-ed);
``--uses-vmap`` keeps the tests whose method's source calls ``vmap``;
``--sample N --seed S`` runs a seeded sample of N of the selected tests. At the
end the runner prints a tally: passed, skipped, failed (an assertion),
errored (any other exception), grouped by exception type, and with ``-v`` the
id and first line of each failure.

``--vmap-names`` reads "vmap" in the regexes of ``assertRaisesRegex`` as
"vmap or batch_lower" (our error texts are vmap's with the function's name,
docs/dropin.md).
"""
from __future__ import annotations

import argparse
import collections
import fnmatch
import importlib
import inspect
import os
import random
import re
import sys
import time
import traceback
import types
import unittest
import warnings


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("jax_tests_dir", help="directory holding JAX's tests/*.py files")
    p.add_argument("files", nargs="+",
                   help="test modules to run, e.g. batching_test (with or without .py)")
    p.add_argument("-k", action="append", default=[],
                   help="run only test ids containing this (case-insensitive; or-ed); "
                        "a pattern with * or ? is a glob")
    p.add_argument("--exclude", action="append", default=[],
                   help="skip test ids containing this (case-insensitive)")
    p.add_argument("--uses-vmap", action="store_true",
                   help="run only tests whose method's source calls vmap (jax.vmap, api.vmap, "
                        "vmap; not custom_vmap / def_vmap)")
    p.add_argument("--sample", type=int, default=None,
                   help="run a seeded random sample of this many of the selected tests")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-generated-cases", type=int, default=10,
                   help="JAX_NUM_GENERATED_CASES for the parametrized tests (default 10)")
    p.add_argument("--vmap-names", action="store_true",
                   help="accept 'batch_lower' where an error regex says 'vmap'")
    p.add_argument("--reference", action="store_true",
                   help="run with the real jax.vmap (no substitution; stablehlo_batch "
                        "loaded), for a baseline")
    p.add_argument("-v", "--verbose", action="count", default=0,
                   help="-v: list each failure; -vv: also print its traceback")
    p.add_argument("--list", action="store_true", help="list the selected test ids and exit")
    return p.parse_args(argv)


class _VmapProxy(types.ModuleType):
    """A module that forwards every attribute to ``real`` except ``vmap``."""

    def __init__(self, real, vmap):
        super().__init__(real.__name__, real.__doc__)
        object.__setattr__(self, "_real", real)
        object.__setattr__(self, "vmap", vmap)

    def __getattr__(self, name):
        return getattr(object.__getattribute__(self, "_real"), name)

    def __setattr__(self, name, value):
        setattr(object.__getattribute__(self, "_real"), name, value)

    def __dir__(self):
        return dir(object.__getattribute__(self, "_real"))


def patch_module(mod, batch_lower):
    """Puts ``batch_lower`` in ``jax.vmap``'s place in the test module ``mod``."""
    import jax
    from jax._src import api as jax_api
    patched = []
    for name, value in list(vars(mod).items()):
        if value is jax.vmap:
            setattr(mod, name, batch_lower)
            patched.append(name)
        elif value is jax:
            setattr(mod, name, _VmapProxy(jax, batch_lower))
            patched.append(f"{name}.vmap")
        elif value is jax_api:
            setattr(mod, name, _VmapProxy(jax_api, batch_lower))
            patched.append(f"{name}.vmap")
    return patched


def rename_vmap_in_regexes():
    """``assertRaisesRegex(E, "... vmap ...")`` also accepts ``batch_lower``."""
    orig = unittest.TestCase.assertRaisesRegex

    def widen(pattern):
        if isinstance(pattern, str):
            return pattern.replace("vmap", "(?:vmap|batch_lower)")
        if isinstance(pattern, re.Pattern):
            return re.compile(widen(pattern.pattern), pattern.flags)
        return pattern

    def assertRaisesRegex(self, expected_exception, expected_regex, *args, **kwargs):
        return orig(self, expected_exception, widen(expected_regex), *args, **kwargs)

    unittest.TestCase.assertRaisesRegex = assertRaisesRegex


def iter_tests(suite):
    for t in suite:
        if isinstance(t, unittest.TestSuite):
            yield from iter_tests(t)
        else:
            yield t


def test_id(test):
    # "module.Class.test_name" -> "module.Class.test_name" (kept whole: -k may name the file)
    return test.id()


def selected(tid, ks, excludes):
    low = tid.lower()

    def hit(pat):
        pat = pat.lower()
        if any(c in pat for c in "*?["):
            return fnmatch.fnmatchcase(low, pat) or fnmatch.fnmatchcase(low, f"*{pat}*")
        return pat in low

    if ks and not any(hit(k) for k in ks):
        return False
    return not any(hit(e) for e in excludes)


_CALLS_VMAP = re.compile(r"(?<!\w)vmap\b")


def uses_vmap(test):
    """Whether the test method's own source names ``vmap`` (helpers it calls are not read)."""
    fn = inspect.unwrap(getattr(type(test), test._testMethodName))
    try:
        return bool(_CALLS_VMAP.search(inspect.getsource(fn)))
    except (OSError, TypeError):
        return True


class TallyResult(unittest.TestResult):
    """Records each outcome with its exception type."""

    def __init__(self, verbose=0, stream=sys.stdout):
        super().__init__()
        self.outcomes = []  # (id, outcome, exc type name, first line)
        self.verbose = verbose
        self.stream = stream
        self._start = None

    def startTest(self, test):
        super().startTest(test)
        self._start = time.perf_counter()

    def _record(self, test, outcome, err=None):
        kind, line, tb = "", "", ""
        if err is not None:
            etype, value, _ = err
            kind = etype.__name__
            text = str(value).strip()
            line = text.splitlines()[0][:200] if text else ""
            if self.verbose > 1:
                tb = "".join(traceback.format_exception(*err))
        self.outcomes.append((test_id(test), outcome, kind, line))
        if self.verbose and outcome in ("failed", "errored"):
            secs = time.perf_counter() - self._start
            print(f"  {outcome.upper()} {test_id(test)} [{kind}] {line} ({secs:.1f}s)",
                  file=self.stream, flush=True)
            if tb:
                print(tb, file=self.stream, flush=True)

    def addSuccess(self, test):
        super().addSuccess(test)
        self._record(test, "passed")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._record(test, "failed", err)

    def addError(self, test, err):
        super().addError(test, err)
        self._record(test, "errored", err)

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._record(test, "skipped")

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self._record(test, "passed")

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._record(test, "failed", (AssertionError, AssertionError("unexpected success"), None))

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            outcome = "failed" if issubclass(err[0], self.failureException) else "errored"
            self._record(subtest, outcome, err)


def print_tally(name, outcomes, seconds):
    counts = collections.Counter(o for _, o, _, _ in outcomes)
    print(f"\n== {name}: {counts['passed']} passed, {counts['failed']} failed, "
          f"{counts['errored']} errored, {counts['skipped']} skipped "
          f"({len(outcomes)} run, {seconds:.0f}s)")
    by_kind = collections.Counter((o, k) for _, o, k, _ in outcomes if o in ("failed", "errored"))
    for (o, k), n in sorted(by_kind.items(), key=lambda x: (-x[1], x[0])):
        print(f"   {n:5d} {o:8s} {k}")


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    os.environ["JAX_NUM_GENERATED_CASES"] = str(args.num_generated_cases)
    # The test modules parse absl flags from sys.argv (jax's --jax_* only); ours are not theirs.
    sys.argv = [sys.argv[0]]
    sys.path.insert(0, os.path.abspath(args.jax_tests_dir))

    import jax  # noqa: F401  (after JAX_NUM_GENERATED_CASES is set)
    from jax._src import test_util as jtu
    import stablehlo_batch as sb

    batch_lower = sb.batch_lower  # loads the package (and its hooks into jax) in --reference too
    warnings.simplefilter("ignore")  # FallbackWarning, DeprecationWarning: counted as passes
    if args.vmap_names:
        rename_vmap_in_regexes()

    grand = []
    t_all = time.perf_counter()
    for f in args.files:
        modname = f[:-3] if f.endswith(".py") else f
        mod = importlib.import_module(modname)
        if not args.reference:
            patched = patch_module(mod, batch_lower)
            print(f"{modname}: batch_lower in place of {', '.join(patched) or 'nothing'}")
        loader = jtu.JaxTestLoader()
        tests = [t for t in iter_tests(loader.loadTestsFromModule(mod))
                 if selected(test_id(t), args.k, args.exclude)
                 and (not args.uses_vmap or uses_vmap(t))]
        if args.sample is not None and args.sample < len(tests):
            tests = random.Random(args.seed).sample(tests, args.sample)
            tests.sort(key=test_id)
        if args.list:
            for t in tests:
                print(test_id(t))
            continue
        print(f"{modname}: running {len(tests)} tests", flush=True)
        result = TallyResult(verbose=args.verbose)
        t0 = time.perf_counter()
        for t in tests:
            t(result)
        print_tally(modname, result.outcomes, time.perf_counter() - t0)
        grand += result.outcomes
    if len(args.files) > 1 and not args.list:
        print_tally("all", grand, time.perf_counter() - t_all)
    return 0


if __name__ == "__main__":
    sys.exit(main())
