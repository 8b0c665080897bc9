"""``make fuzz``: generated programs and mutated CLI inputs, on every core.

``python tests/fuzz_all.py PROGRAMS CLI_INPUTS [JOBS]`` splits both into
JOBS shards (default: the number of cores) and runs them as separate
processes, at most JOBS at a time: each generated-program shard is the
hypothesis test of tests/sweeps/test_generated.py (HYPOTHESIS_PROFILE=fuzz,
its own random programs) writing its tally to a file; each CLI shard is
``tests/fuzz_cli.py`` with its own seed. Then it prints the merged tally of
the programs (every family, 0 shown), the CLI summaries, the wall time and
the rate, and exits 1 if anything failed. A failing shard's output (with
hypothesis' shrunk, pasteable program) is printed in full.
"""
from __future__ import annotations

import collections
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "tests"), os.path.join(ROOT, "tests", "sweeps")]


def _split(n: int, k: int) -> list[int]:
    return [n // k + (i < n % k) for i in range(k)]


def main(argv):
    programs = int(argv[0]) if argv else 5000
    cli_inputs = int(argv[1]) if len(argv) > 1 else 5000
    jobs = int(argv[2]) if len(argv) > 2 else (os.cpu_count() or 1)
    seed = int(os.environ.get("FUZZ_SEED", int(time.time())))
    py = sys.executable
    tmp = tempfile.mkdtemp(prefix="fuzz-")
    env = dict(os.environ)
    flags = env.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" not in flags:  # mesh= needs 2 devices
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count=2 {flags}".strip()
    env.setdefault("PYTHONWARNINGS", "ignore")
    os.environ["XLA_FLAGS"] = env["XLA_FLAGS"]  # the tally here knows mesh= is testable
    queue = []  # (name, argv, env, log)
    for k, n in enumerate(_split(programs, jobs)):
        if n:
            tally = os.path.join(tmp, f"tally{k}.json")
            queue.append((f"programs[{k}]",
                          [py, "-m", "pytest", "-p", "no:xdist", "-p", "no:cacheprovider", "-q",
                           "-s", "-W", "ignore", "tests/sweeps/test_generated.py"],
                          dict(env, HYPOTHESIS_PROFILE="fuzz", GEN_EXAMPLES=str(n),
                               GEN_TALLY_FILE=tally), tally))
    for k, n in enumerate(_split(cli_inputs, jobs)):
        if n:
            queue.append((f"cli[{k}] seed {seed + k}",
                          [py, "tests/fuzz_cli.py", str(n), str(seed + k)], env, None))
    print(f"make fuzz: {programs} generated programs and {cli_inputs} CLI inputs in "
          f"{len(queue)} shards, {jobs} at a time (load average "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())})", flush=True)
    start = time.perf_counter()
    running, done = [], []
    while queue or running:
        while queue and len(running) < jobs:
            name, cmd, e, tally = queue.pop(0)
            log = open(os.path.join(tmp, f"{len(done) + len(running)}.log"), "w+")
            proc = subprocess.Popen(cmd, cwd=ROOT, env=e, stdout=log, stderr=subprocess.STDOUT)
            running.append((name, proc, log, tally, time.perf_counter()))
        time.sleep(0.5)
        for item in [r for r in running if r[1].poll() is not None]:
            running.remove(item)
            name, proc, log, tally, t0 = item
            log.seek(0)
            out = log.read()
            secs = time.perf_counter() - t0
            done.append((name, proc.returncode, out, tally, secs))
            print(f"  {name}: exit {proc.returncode}, {secs:.0f} s", flush=True)
    wall = time.perf_counter() - start
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = cpu.ru_utime + cpu.ru_stime  # every shard and its children (CLI subprocesses)
    failed = False
    total = collections.Counter()
    for name, rc, out, tally, secs in done:
        if rc:
            failed = True
            print(f"\n==== {name} failed (exit {rc}) ====\n{out[-20000:]}")
        if tally and os.path.exists(tally):
            total.update(json.load(open(tally)))
        elif not tally:
            lines = [l for l in out.splitlines() if l.startswith(("CLI fuzz", "VIOLATION"))]
            print("\n".join(lines[-20:]))
    from test_generated import format_tally
    print(format_tally(total))
    ran = total["ran"] + total["failed"]
    print(f"wall {wall:.0f} s for {ran} programs and {cli_inputs} CLI inputs on {jobs} "
          f"processes ({ran / max(wall, 1e-9) * 3600:.0f} programs an hour alongside the CLI "
          f"inputs; programs took {total['seconds']:.0f} s in check_program over all "
          f"shards); CPU time {cpu:.0f} s; load average now {os.getloadavg()[0]:.1f}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
