"""Every name in the rule table has a test (functorch's test_op_has_batch_rule
is the model): each built-in op name and custom call target must have a lit
case (its name in the input of a lit_tests/*.mlir file, read here) or a
differential case (DIFFERENTIAL below: the names the differential tests'
lowered modules contain, a static list checked to point at existing tests).

A kernel target is also covered when the same kernel at another precision /
on another platform is (same rule function, same kernel kind: e.g.
lapack_zgetrf_ffi by lapack_sgetrf_ffi). The few kernels no jax API lowers
to on CPU and no lit file has yet are listed in UNTESTED, with the reason;
an entry that becomes covered must leave the list.
"""
from __future__ import annotations

import glob
import os
import re

from stablehlo_batch.passes.rules import RULES

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

# name -> the test file (under tests/) whose lowered modules batch it
DIFFERENTIAL = {
    "stablehlo.optimization_barrier": "rules/test_structural.py",
    "stablehlo.tuple": "rules/test_structural.py",
    # test_custom_calls.CASES, by dtype (f32 / f64 / complex64), and its TPU modules
    **{f"lapack_{k}_ffi": "rules/test_custom_calls.py" for k in (
        "cgeqrf cgesdd cgetrf cheevd cpotrf ctrsm cungqr dgeev dgehrd dgeqrf dgesdd dgetrf "
        "dorgqr dpotrf dsyevd dtrsm sgees sgeev sgeqrf sgesdd sgetrf sgtsv sorgqr spotrf "
        "ssyevd ssytrd strsm").split()},
    "Qr": "rules/test_custom_calls.py",
    "ProductOfElementaryHouseholderReflectors": "rules/test_custom_calls.py",
    "Eigh": "rules/test_custom_calls.py",
}

# Kernels with the shared kernel rule that no test reaches yet (no jax API
# emits them on CPU; GPU-only variants of kernels without a lit case).
UNTESTED = {
    **{t: "LAPACK kernel jax does not call by default (gesdd / geqrf are used instead)"
       for t in ("lapack_sgesvd_ffi", "lapack_dgesvd_ffi", "lapack_cgesvd_ffi",
                 "lapack_zgesvd_ffi", "lapack_sgeqp3_ffi", "lapack_dgeqp3_ffi",
                 "lapack_cgeqp3_ffi", "lapack_zgeqp3_ffi")},
    **{t: "ormqr: only lax.linalg.householder_product-style callers emit it; no test yet"
       for t in ("lapack_sormqr_ffi", "lapack_dormqr_ffi", "lapack_cunmqr_ffi",
                 "lapack_zunmqr_ffi", "cusolver_ormqr_ffi", "hipsolver_ormqr_ffi")},
    **{t: "GPU kernel variant without a case in custom_calls_cuda.mlir yet"
       for t in ("cu_tridiagonal_solve_perturbed", "hip_tridiagonal_solve_perturbed",
                 "cublas_geqrf_batched_ffi", "cublas_getrf_batched_ffi",
                 "hipblas_geqrf_batched_ffi", "hipblas_getrf_batched_ffi",
                 "cuhybrid_eig_comp", "hiphybrid_eig_comp", "cuhybrid_geqp3", "hiphybrid_geqp3",
                 "cusolver_geev_ffi", "hipsolver_geev_ffi", "cusolver_gesdd_ffi",
                 "hipsolver_gesdd_ffi", "cusolver_gesvd_ffi", "hipsolver_gesvd_ffi",
                 "cusolver_gesvdp_ffi", "hipsolver_gesvdp_ffi")},
    "tridiagonal_solve_perturbed_ffi": "the CPU kernel of lax.linalg.tridiagonal_solve's "
                                       "perturbed variant; no test yet",
}

_COMPLEX_NAMES = {"ungqr": "orgqr", "unmqr": "ormqr", "heevd": "syevd", "hetrd": "sytrd"}


def _kind(target: str) -> str:
    """The kernel a target calls, without precision and platform."""
    m = re.fullmatch(r"lapack_[sdcz](\w+)_ffi", target)
    if m:
        return "lapack:" + _COMPLEX_NAMES.get(m.group(1), m.group(1))
    m = re.fullmatch(r"(?:cu|hip)(solver_\w+|blas_\w+|sparse_\w+|_\w+|hybrid_\w+)", target)
    if m:
        return "gpu:" + m.group(1)
    return target


def _lit_names() -> tuple[set[str], set[str]]:
    ops, targets = set(), set()
    name = re.compile(r'"?\b((?:stablehlo|chlo|func|sdy|mhlo)\.[a-z_0-9]+)\b')
    for path in glob.glob(os.path.join(ROOT, "lit_tests", "**", "*.mlir"), recursive=True):
        with open(path) as f:
            for line in f:
                code = line.split("//", 1)[0]
                ops.update(name.findall(code))
                if re.search(r"(^|[=\s])call @", code):
                    ops.add("func.call")  # func.call in its short form
                targets.update(re.findall(r"custom_call @([\w.$-]+)", code))
    return ops, targets


def test_differential_list_points_at_tests():
    for name, path in DIFFERENTIAL.items():
        assert os.path.exists(os.path.join(ROOT, "tests", path)), (name, path)
        assert RULES.has(name) or RULES.has(name, custom_call=True), \
            f"{name} is in DIFFERENTIAL but has no rule"


def test_every_registered_name_has_a_test():
    lit_ops, lit_targets = _lit_names()
    missing = [op for op in RULES.names(builtin_only=True)
               if op not in lit_ops and op not in DIFFERENTIAL]
    assert not missing, f"op rules without a lit or differential case: {missing}"

    covered = {t for t in RULES.names(custom_call=True, builtin_only=True)
               if t in lit_targets or t in DIFFERENTIAL}
    covered_kinds = {(_kind(t), RULES.get(t, custom_call=True)) for t in covered}
    missing, stale = [], []
    for t in RULES.names(custom_call=True, builtin_only=True):
        ok = t in covered or (_kind(t), RULES.get(t, custom_call=True)) in covered_kinds
        if ok and t in UNTESTED:
            stale.append(t)
        elif not ok and t not in UNTESTED:
            missing.append(t)
    assert not missing, f"custom call targets without a lit or differential case: {missing}"
    assert not stale, f"covered now, remove from UNTESTED: {stale}"
