"""Mutation fuzzing of ``stablehlo-batch-opt``.

Seeds are the lit inputs (with the flags of their RUN lines) and modules
lowered from a few jax functions. A mutant changes the text (drop, swap or
duplicate tokens, retype, reshape, change numbers and attributes, truncate),
the flags (axes, sizes, function name) or the bytecode (flipped bytes,
truncation). The contract for every input: exit 0 with a verified module on
stdout and nothing on stderr, or exit 1 with exactly one ``error: ...`` line
on stderr -- never a traceback, a crash or a hang.

``run_inprocess`` calls ``cli.main`` with fds 1 and 2 redirected (so that
anything MLIR's C++ prints is seen too); ``run_subprocess`` runs the real
command with a time bound, for bytecode (which may crash the C++ parser) and
a sample of the rest. ``python tests/fuzz_cli.py N`` fuzzes N inputs and
prints the tally (``make fuzz``).
"""
from __future__ import annotations

import contextlib
import dataclasses
import glob
import os
import random
import re
import shlex
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

TIME_LIMIT = 60  # seconds per subprocess input


@dataclasses.dataclass
class Case:
    data: bytes
    argv: list          # flags, without the input path
    kind: str = "text"  # "text" or "bytecode"
    note: str = ""


@dataclasses.dataclass
class Result:
    rc: int
    out: str
    err: str
    seconds: float


# ---- seeds ------------------------------------------------------------------------

def lit_seeds() -> list[Case]:
    cases = []
    for path in sorted(glob.glob(os.path.join(ROOT, "lit_tests", "*.mlir"))):
        text = open(path, encoding="utf-8").read()
        for line in text.splitlines():
            m = re.match(r"//\s*RUN:\s*(?:not\s+)?stablehlo-batch-opt\s+%s\s+(.*?)(?:\s*2>&1)?\s*(\||$)",
                         line)
            if m:
                argv = [a for a in shlex.split(m.group(1)) if "%" not in a]
                cases.append(Case(text.encode(), argv, note=os.path.basename(path)))
    return cases


def _jax_seed_functions():
    import jax.numpy as jnp
    from jax import lax

    def mlp(x, w, b):
        return jnp.tanh(x @ w + b).sum(-1)

    def gather_scatter(x, i):
        return x.at[i].add(jnp.take(x, i, axis=0, mode="clip") * 2.0, mode="drop")

    def loop(x, n):
        return lax.fori_loop(0, n, lambda k, c: jnp.sin(c) + c, x)

    def branch(p, x):
        return lax.cond(p > 0, jnp.cos, lambda v: -v, x)

    def sort_pad(x):
        return lax.pad(jnp.sort(x, axis=0), 0.0, [(1, -1, 1), (0, 2, 0)]).reshape(-1)

    f32, i32 = jnp.float32, jnp.int32
    return [
        (mlp, [((4, 3), f32), ((3, 2), f32), ((2,), f32)], ["--in-axes=0,none,none"]),
        (gather_scatter, [((5, 2), f32), ((3,), i32)], ["--in-axes=0,1"]),
        (loop, [((3,), f32), ((), i32)], ["--in-axes=0,none"]),
        (branch, [((), i32), ((2, 2), f32)], ["--in-axes=0,none"]),
        (sort_pad, [((3, 2), f32)], ["--in-axes=1", "--out-axes=-1"]),
    ]


def jax_seeds() -> list[Case]:
    import jax
    cases = []
    for fn, specs, flags in _jax_seed_functions():
        sds = [jax.ShapeDtypeStruct(s, d) for s, d in specs]
        text = jax.jit(fn).lower(*sds).as_text()
        cases.append(Case(text.encode(), ["--axis-size=3", *flags], note=fn.__name__))
    return cases


def seeds() -> list[Case]:
    return lit_seeds() + jax_seeds()


# ---- mutations -------------------------------------------------------------------

_TOKEN = re.compile(r"%[\w#]+|@\w+|[\w.]+|\S")
_TYPES = ["f32", "f64", "i32", "i1", "f16", "ui8", "i64", "complex<f32>", "index", "tensor<f32>"]


def _tokens(text):
    return [(m.start(), m.end()) for m in _TOKEN.finditer(text)]


def mutate_text(text: str, rng: random.Random) -> tuple[str, str]:
    """One random textual mutation; returns (new text, what was done)."""
    toks = _tokens(text)
    kind = rng.choice(["drop", "swap", "dup", "type", "number", "dims", "attr", "truncate",
                       "line", "garbage", "dims", "number", "type"])
    if not toks:
        return text + "}", "garbage"
    a, b = toks[rng.randrange(len(toks))]
    if kind == "drop":
        return text[:a] + text[b:], kind
    if kind == "swap":
        c, d = toks[rng.randrange(len(toks))]
        if c < a:
            a, b, c, d = c, d, a, b
        if c < b:
            return text, kind
        return text[:a] + text[c:d] + text[b:c] + text[a:b] + text[d:], kind
    if kind == "dup":
        return text[:b] + " " + text[a:b] + text[b:], kind
    if kind == "type":
        spots = [m.span() for m in re.finditer(r"\b(f32|f64|i32|i1|i64|ui32|bf16|f16)\b", text)]
        if not spots:
            return text, kind
        a, b = rng.choice(spots)
        return text[:a] + rng.choice(_TYPES) + text[b:], kind
    if kind == "number":
        spots = [m.span() for m in re.finditer(r"-?\d+", text)]
        if not spots:
            return text, kind
        a, b = rng.choice(spots)
        new = rng.choice(["0", "1", "-1", "2", "7", "-3", "4294967296", "999999999999"])
        return text[:a] + new + text[b:], kind
    if kind == "dims":
        spots = [m.span() for m in re.finditer(r"tensor<[^>]*>", text)]
        if not spots:
            return text, kind
        a, b = rng.choice(spots)
        dims = rng.choice(["", "0x", "1x", "3x", "2x2x", "?x", "5x1x"])
        elem = rng.choice(["f32", "i32", "i1", "f64"])
        return text[:a] + f"tensor<{dims}{elem}>" + text[b:], kind
    if kind == "attr":
        spots = [m.span() for m in re.finditer(r"\[[\d, ]*\]|dense<[^>]*>|array<[^>]*>", text)]
        if not spots:
            return text, kind
        a, b = rng.choice(spots)
        new = rng.choice(["[]", "[0]", "[1, 0]", "[0, 0]", "[-1]", "[5]", "dense<1.0>",
                          "dense<[1, 2]>", "array<i64: 9>", "array<i64>"])
        return text[:a] + new + text[b:], kind
    if kind == "truncate":
        return text[:rng.randrange(len(text) + 1)], kind
    if kind == "line":
        lines = text.splitlines(True)
        i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
        if rng.random() < 0.5:
            del lines[i]
        else:
            lines[i], lines[j] = lines[j], lines[i]
        return "".join(lines), kind
    junk = rng.choice(["}", "{", ")", "(", ":", "%", "\x00", "\xff", "loc(", "\"", "-> ", ","])
    return text[:a] + junk + text[a:], "garbage"


def mutate_flags(argv: list, rng: random.Random) -> tuple[list, str]:
    argv = list(argv)
    what = rng.choice(["in", "out", "size", "func", "drop", "extra"])
    axes = ["0", "1", "-1", "2", "-3", "none", "0,none", "none,0", "1,1,1,1", "x", "",
            "0,,1", "99", "-99", "0,0"]
    if what == "in":
        argv = [a for a in argv if not a.startswith("--in-axes")] + \
               [f"--in-axes={rng.choice(axes)}"]
    elif what == "out":
        argv = [a for a in argv if not a.startswith("--out-axes")] + \
               [f"--out-axes={rng.choice(axes)}"]
    elif what == "size":
        argv = [a for a in argv if not a.startswith("--axis-size")] + \
               [f"--axis-size={rng.choice(['0', '1', '-1', 'abc', '1000000', '', '2'])}"]
    elif what == "func":
        argv = [a for a in argv if not a.startswith("--func")] + \
               [f"--func={rng.choice(['nope', 'main', '', '@main', 'x y'])}"]
    elif what == "drop" and argv:
        del argv[rng.randrange(len(argv))]
    else:
        argv.append(rng.choice(["--bogus", "-o", "--debug-only", "--axis-size"]))
    return argv, f"flags:{what}"


def to_bytecode(text: bytes) -> bytes | None:
    from stablehlo_batch import module_io
    try:
        return module_io.module_to_bytecode(module_io.parse_module(text))
    except Exception:
        return None


def mutate_bytes(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    data = bytearray(data)
    if rng.random() < 0.3:
        return bytes(data[:rng.randrange(len(data) + 1)]), "bc:truncate"
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(data))
        data[i] ^= 1 << rng.randrange(8)
    return bytes(data), "bc:flip"


def mutants(n: int, seed: int = 0, bytecode_share: float = 0.15) -> list[Case]:
    """``n`` mutated inputs from the seeds, deterministic in ``seed``."""
    rng = random.Random(seed)
    base = seeds()
    bytecodes = {}
    out = []
    for _ in range(n):
        c = rng.choice(base)
        r = rng.random()
        if r < bytecode_share:
            if c.note not in bytecodes:
                bytecodes[c.note] = to_bytecode(c.data)
            bc = bytecodes[c.note]
            if bc:
                data, what = mutate_bytes(bc, rng)
                out.append(Case(data, c.argv, "bytecode", f"{c.note} {what}"))
                continue
        if r < 0.35:
            argv, what = mutate_flags(c.argv, rng)
            out.append(Case(c.data, argv, "text", f"{c.note} {what}"))
            continue
        text = c.data.decode("utf-8")
        whats = []
        for _ in range(rng.choice((1, 1, 1, 2, 3))):
            text, what = mutate_text(text, rng)
            whats.append(what)
        out.append(Case(text.encode("utf-8", "surrogatepass"), c.argv, "text",
                         f"{c.note} {'+'.join(whats)}"))
    return out


# ---- running -----------------------------------------------------------------------

@contextlib.contextmanager
def _captured_fds():
    """Redirects fds 1 and 2 (Python's and C++'s writes alike) to files."""
    sys.stdout.flush(), sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        # pytest swaps sys.stdout / sys.stderr for its own objects: write to the fds
        py_streams = sys.stdout, sys.stderr
        sys.stdout = open(1, "w", encoding="utf-8", closefd=False)
        sys.stderr = open(2, "w", encoding="utf-8", closefd=False)
        box = {}
        try:
            yield box
        finally:
            sys.stdout.flush(), sys.stderr.flush()
            sys.stdout, sys.stderr = py_streams
            os.dup2(saved[0], 1), os.dup2(saved[1], 2)
            os.close(saved[0]), os.close(saved[1])
            out.seek(0), err.seek(0)
            box["out"] = out.read().decode("utf-8", "replace")
            box["err"] = err.read().decode("utf-8", "replace")


def run_inprocess(case: Case) -> Result:
    from stablehlo_batch import cli
    with tempfile.NamedTemporaryFile(suffix=".mlir", delete=False) as f:
        f.write(case.data)
    start = time.perf_counter()
    try:
        with _captured_fds() as box:
            try:
                rc = cli.main([f.name, *case.argv])
            except SystemExit as e:
                rc = e.code if isinstance(e.code, int) else 1
            except BaseException as e:  # the CLI must not let anything out
                rc = f"raised {type(e).__name__}: {e}"
    finally:
        os.unlink(f.name)
    return Result(rc, box["out"], box["err"], time.perf_counter() - start)


def run_subprocess(case: Case) -> Result:
    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-m", "stablehlo_batch.cli", "-", *case.argv],
                              input=case.data, capture_output=True, timeout=TIME_LIMIT,
                              cwd=ROOT)
    except subprocess.TimeoutExpired:
        return Result("timeout", "", "", TIME_LIMIT)
    return Result(proc.returncode, proc.stdout.decode("utf-8", "replace"),
                  proc.stderr.decode("utf-8", "replace"), time.perf_counter() - start)


def violation(res: Result, argv=()) -> str | None:
    """What is wrong with a result under the CLI's contract (None: nothing);
    ``argv``: the CLI's options (with ``--report`` the report goes to stderr)."""
    if res.rc == 0:
        # per-lane fallbacks are announced as one "warning:" line each
        err = res.err
        if "--report" in argv and "batching report for" in err:
            err = err[:err.index("batching report for")]
        if any(not l.startswith("warning: ") for l in err.splitlines()):
            return f"exit 0 but stderr: {res.err[:300]!r}"
        from stablehlo_batch import module_io
        try:
            m = module_io.parse_module(res.out)
            if not m.operation.verify():
                return "exit 0 but the output does not verify"
        except Exception as e:
            return f"exit 0 but the output does not parse: {e}"
        return None
    if res.rc != 1:
        return f"exit status {res.rc!r}; stderr: {res.err[-500:]!r}"
    lines = res.err.splitlines()
    if len(lines) != 1 or not lines[0].startswith("error: "):
        return f"exit 1 but stderr is not one 'error:' line: {res.err[-800:]!r}"
    if res.out:
        return f"exit 1 but stdout: {res.out[:200]!r}"
    if "internal error" in lines[0]:
        return f"internal error: {lines[0][:300]}"
    return None


def fuzz(n: int, seed: int = 0, subprocess_every: int = 10, bytecode_share: float = 0.15,
         log=print) -> dict:
    """Runs ``n`` mutants, every ``subprocess_every``-th through a subprocess
    and the rest in-process (the CLI reads bytecode in a child process, so a
    crash of MLIR's reader cannot take the caller down). Returns the tally
    and the failing cases."""
    tally = {"inputs": 0, "ok": 0, "error": 0, "violations": 0, "subprocess": 0}
    failures = []
    start = time.perf_counter()
    for k, case in enumerate(mutants(n, seed, bytecode_share)):
        sub = k % subprocess_every == 0
        res = run_subprocess(case) if sub else run_inprocess(case)
        tally["inputs"] += 1
        tally["subprocess"] += sub
        bad = violation(res, case.argv)
        if bad:
            tally["violations"] += 1
            failures.append((case, bad))
            log(f"VIOLATION [{case.note}] argv={case.argv}: {bad}")
        elif res.rc == 0:
            tally["ok"] += 1
        else:
            tally["error"] += 1
    tally["seconds"] = round(time.perf_counter() - start, 1)
    return {"tally": tally, "failures": failures}


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else int(time.time())
    result = fuzz(n, seed, subprocess_every=int(os.environ.get("FUZZ_SUBPROCESS_EVERY", 25)))
    t = result["tally"]
    print(f"CLI fuzz (seed {seed}): {t['inputs']} inputs, {t['ok']} batched, "
          f"{t['error']} one-line errors, {t['violations']} violations "
          f"(crashes, tracebacks, hangs, extra output), {t['subprocess']} in subprocesses, "
          f"{t['seconds']} s")
    sys.exit(1 if t["violations"] else 0)
