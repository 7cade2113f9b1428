"""Do verdicts depend on how busy the machine is? MBPP references and mutants under load.

Loads MBPP train and validation with calibration (the cost per problem is measured with an empty
calibration cache), then judges every reference and a few single-edit mutants of each on the
hidden tests with the calibrated limits, first with no busy neighbours, then with 2 and 4 busy
processes per core (each in its own session, so autogroup scheduling cannot shield the sandbox).
Each level runs twice: CPU-time accounting (the default) and wall-time accounting at the same
limits (the old rule). A flip is a (program, verdict) that differs from the unloaded run.

    nice python benchmarks/load_verdicts.py --mutants 2 --json benchmarks/results/load_verdicts.json
    nice python benchmarks/load_verdicts.py --base 0.05 --json benchmarks/results/load_verdicts_tight.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from codegym.datasets import load_dataset
from codegym.execution import Sandbox
from codegym.judge import Judge
from codegym.limits import TimeLimits
from codegym.tcg.evaluate import mutants

MBPP = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mbpp"


def busy(count: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True) for _ in range(count)]


def verdicts(judge: Judge, items: list[tuple[str, str]]) -> tuple[list[tuple[bool, str]], float]:
    started = time.perf_counter()
    results = judge.evaluate_many(items)
    return [(v.passed, v.status) for v in results], time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-path", default=str(MBPP))
    parser.add_argument("--mutants", type=int, default=2, help="mutants per reference")
    parser.add_argument("--levels", default="0,2,4", help="busy processes per core")
    parser.add_argument("--base", type=float, default=TimeLimits.base_s,
                        help="T_base in CPU seconds (small values put programs near their limit)")
    parser.add_argument("--factor", type=float, default=TimeLimits.factor, help="k")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))

    # Calibration cost: an empty cache, both splits.
    calibration = {}
    with tempfile.TemporaryDirectory() as cache:
        os.environ["CODEGYM_CACHE"] = cache
        datasets = {}
        for split in ("train", "validation"):
            started = time.perf_counter()
            datasets[split] = load_dataset("mbpp", data_path=args.data_path, split=split, training=False)
            seconds = time.perf_counter() - started
            uncalibrated = time.perf_counter()
            load_dataset("mbpp", data_path=args.data_path, split=split, training=False, calibrate=False)
            load_s = time.perf_counter() - uncalibrated
            cached = time.perf_counter()
            load_dataset("mbpp", data_path=args.data_path, split=split, training=False)
            cached_s = time.perf_counter() - cached
            problems = len(datasets[split].problems)
            calibration[split] = {"problems": problems, "first_load_s": round(seconds, 2), "plain_load_s": round(load_s, 2),
                                  "cached_load_s": round(cached_s, 2),
                                  "calibration_ms_per_problem": round(1000 * (seconds - load_s) / problems, 1)}
            print("calibration %s: %s" % (split, calibration[split]), flush=True)
        os.environ.pop("CODEGYM_CACHE")

    limits = TimeLimits(args.base, args.factor)
    items, kinds = [], []
    keys = {}
    for dataset in datasets.values():
        keys.update(dataset.answer_keys)
        for problem in dataset.problems:
            reference = dataset.answer_keys[problem.id].reference_solutions[0]
            items.append((problem.id, reference))
            kinds.append("reference")
            for mutant in mutants(reference, args.mutants):
                items.append((problem.id, mutant))
                kinds.append("mutant")
    limit_values = sorted(limits.limit(keys[pid].reference_seconds) for pid, _ in items)
    print("%d programs (%d references); limits: median %.2f s, max %.2f s"
          % (len(items), kinds.count("reference"), limit_values[len(limit_values) // 2], limit_values[-1]), flush=True)

    runs = {}
    with Sandbox(cache_size=0) as cpu_box, Sandbox(cache_size=0, clock="wall") as wall_box:
        judges = {"cpu": Judge(keys, cpu_box, limits), "wall": Judge(keys, wall_box, limits)}
        for level in [int(x) for x in args.levels.split(",")]:
            neighbours = busy(level * cores)
            try:
                time.sleep(0.5)
                for clock, judge in judges.items():
                    runs[(level, clock)] = verdicts(judge, items)
                    found, seconds = runs[(level, clock)]
                    print("busy %d/core, %s clock: %d passed, %.0f s" % (level, clock, sum(p for p, _ in found), seconds),
                          flush=True)
            finally:
                for process in neighbours:
                    process.kill()
                    process.wait()

    table = []
    for (level, clock), (found, seconds) in runs.items():
        base = runs[(0, clock)][0]
        flips = [(items[i][0], kinds[i], base[i][1], found[i][1]) for i in range(len(items)) if found[i][0] != base[i][0]]
        table.append({"busy_per_core": level, "clock": clock, "programs": len(items),
                      "references_passed": sum(p for (p, _), k in zip(found, kinds) if k == "reference"),
                      "mutants_passed": sum(p for (p, _), k in zip(found, kinds) if k == "mutant"),
                      "flips_vs_unloaded": len(flips), "flips": flips[:20], "seconds": round(seconds, 1),
                      "timeouts": sum(s.startswith("timeout") for _, s in found)})
    for row in table:
        print("busy %(busy_per_core)d/core %(clock)4s: references passed %(references_passed)d, mutants passed "
              "%(mutants_passed)d, timeouts %(timeouts)d, flips %(flips_vs_unloaded)d, %(seconds).0f s" % row)
    if args.json:
        Path(args.json).write_text(json.dumps({"cores": cores, "calibration": calibration, "limits": vars(limits),
                                               "runs": table}, indent=2) + "\n")


if __name__ == "__main__":
    main()
