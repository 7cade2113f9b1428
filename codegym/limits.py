"""Time limits calibrated from the reference solution, so a verdict says whether a program is
right, not how fast this machine is or how busy it was.

Each problem's reference solution is run once in the sandbox on each of its test sets (public,
hidden, generated), and its CPU time ``T_ref`` is kept. A program then gets
``T = max(T_base, k * T_ref)`` CPU seconds on that set (EvalPlus's rule; its defaults are
``T_base`` = 4 s and ``k`` = 4 for wall time), and the sandbox's wall cap ``3 T + 1 s`` ends
programs that sleep. Where there is no reference (custom data without one, a reference that fails
its own tests), ``T_base`` applies.

Measurements are cached per machine under :func:`codegym.llm.cache_dir` ``/calibration``: the
file's name is a fingerprint of the CPU model, core count and Python, so a new machine measures
afresh, and an entry's key is a digest of the program and the tests, so a changed reference or
test measures afresh too.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import os
import platform
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .execution import Sandbox, TestCase

if TYPE_CHECKING:
    from .datasets import Dataset

CALIBRATION_VERSION = 1
MEASURE_LIMIT_S = 60.0  # a reference gets this long (CPU) while it is measured
ENOUGH_CPU_S = 0.5  # one measurement that long is precise enough: no repeats


@dataclass(frozen=True)
class TimeLimits:
    """``T = max(base_s, factor * T_ref)`` CPU seconds per program and test set."""

    base_s: float = 2.0
    factor: float = 4.0

    def __post_init__(self) -> None:
        if not (self.base_s > 0 and self.factor > 0):
            raise ValueError("time limits need base_s > 0 and factor > 0, got %r and %r" % (self.base_s, self.factor))

    def limit(self, reference_s: float | None) -> float:
        """The limit for a test set whose reference took ``reference_s`` (None: not measured)."""
        return self.base_s if reference_s is None else max(self.base_s, self.factor * reference_s)

    def for_sets(self, reference_s: Mapping[str, float], sets: Sequence[str]) -> tuple[float, str]:
        """The limit for running the named test sets together, and where it came from:
        ``reference`` when every set was measured, else ``base`` (the measured sets still count)."""
        known = [reference_s[name] for name in sets if name in reference_s]
        source = "reference" if len(known) == len(sets) else "base"
        return self.limit(sum(known) if known else None), source


def machine_fingerprint() -> str:
    """What makes a CPU-time measurement valid on another run: the CPU model, the cores, Python."""
    model = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as handle:
            model = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), model)
    except OSError:
        pass
    parts = [model, platform.machine(), str(os.cpu_count()), sys.implementation.name, platform.python_version(),
             str(CALIBRATION_VERSION)]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


class CalibrationCache:
    """Reference CPU times on this machine, one JSON file per machine fingerprint."""

    def __init__(self, folder: str | os.PathLike | None = None, fingerprint: str | None = None):
        if folder is None:
            from .llm.cache import cache_dir

            folder = cache_dir() / "calibration"
        self.path = Path(folder) / ("%s.json" % (fingerprint or machine_fingerprint()))
        try:
            self.entries: dict[str, float | None] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.entries = {}
        self.dirty = False

    @staticmethod
    def key(program: str, tests: Sequence[TestCase], settings: Sequence[int] = ()) -> str:
        """A digest of the program, the tests and the sandbox settings a run depends on (memory,
        output limit); the same in every process (sets and dicts are put in a fixed order first)."""
        fields = [[t.kind, t.fn, _stable(t.args), _stable(t.expected), t.source, t.setup, t.stdin, t.expected_stdout,
                   t.float_tol] for t in tests]
        payload = json.dumps([program, fields, list(settings)])
        return hashlib.sha256(payload.encode()).hexdigest()

    def save(self) -> None:
        """Write atomically (a crash leaves the old file or the new one, never half of one)."""
        if not self.dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".tmp%d" % os.getpid())
        partial.write_text(json.dumps(self.entries, sort_keys=True))
        os.replace(partial, self.path)
        self.dirty = False


def measure(sandbox: Sandbox, runs: Sequence[tuple[str, Sequence[TestCase]]], repeats: int = 3) -> list[float | None]:
    """The CPU seconds each (program, tests) takes to pass: the least of up to ``repeats`` runs
    (one is enough once a run takes ``ENOUGH_CPU_S``); None where it does not pass."""
    best: list[float | None] = [None] * len(runs)
    todo = list(range(len(runs)))
    for _ in range(repeats):
        results = sandbox.run_batch([runs[i] for i in todo], cache=False, timeouts=[MEASURE_LIMIT_S] * len(todo))
        for i, result in zip(todo, results):
            if result.passed and result.cpu_s is not None:
                best[i] = result.cpu_s if best[i] is None else min(best[i], result.cpu_s)
        # Repeat only what passed (a reference that fails its own tests gives no limit) and was quick.
        todo = [i for i in todo if best[i] is not None and best[i] < ENOUGH_CPU_S]
        if not todo:
            break
    return best


def calibrate(dataset: Dataset, sandbox: Sandbox | None = None, cache: CalibrationCache | None = None,
              repeats: int = 3) -> Dataset:
    """Measure each problem's reference on its public, hidden and generated tests (cached) and
    record it: ``problem.reference_seconds`` (public, generated; and ``all``, the full list, on a
    training problem) and ``answer_key.reference_seconds`` (hidden). Returns the dataset."""
    cache = cache if cache is not None else CalibrationCache()
    settings = _settings(sandbox)
    wanted: dict[str, tuple[str, Sequence[TestCase]]] = {}
    plan: list[tuple[str, str, str]] = []  # (problem id, test set, cache key)
    for problem in dataset.problems:
        key = dataset.answer_keys.get(problem.id)
        if key is None or not key.reference_solutions:
            continue
        program = problem.program_for_tests(key.reference_solutions[0])
        for name, tests in _test_sets(problem.public_tests, key.hidden_tests, problem.generated_tests):
            digest = CalibrationCache.key(program, tests, settings)
            plan.append((problem.id, name, digest))
            if digest not in cache.entries:
                wanted[digest] = (program, tests)
    if wanted:  # a sandbox is started only when something is not in the cache
        runner = sandbox or Sandbox(cache_size=0)
        try:
            digests = list(wanted)
            for digest, seconds in zip(digests, measure(runner, [wanted[d] for d in digests], repeats)):
                cache.entries[digest] = seconds
        finally:
            if sandbox is None:
                runner.close()
        cache.dirty = True
        cache.save()
    measured: dict[str, dict[str, float]] = {}
    for problem_id, name, digest in plan:
        if cache.entries.get(digest) is not None:
            measured.setdefault(problem_id, {})[name] = cache.entries[digest]
    for problem in dataset.problems:
        seconds = measured.get(problem.id, {})
        problem.reference_seconds = {name: s for name, s in seconds.items() if name != "hidden"}
        if problem.training and "hidden" in seconds:
            problem.reference_seconds["all"] = seconds["hidden"]
        key = dataset.answer_keys.get(problem.id)
        if key is not None:
            dataset.answer_keys[problem.id] = dataclasses.replace(key, reference_seconds=seconds.get("hidden"))
    return dataset


def _settings(sandbox: Sandbox | None) -> tuple[int, int]:
    """The settings of the sandbox that measures (``Sandbox()``'s own when none is given)."""
    if sandbox is not None:
        return sandbox.memory_mb, sandbox.output_limit
    defaults = inspect.signature(Sandbox).parameters
    return int(defaults["memory_mb"].default), int(defaults["output_limit"].default)


def _stable(value):
    """``value`` as JSON-ready data whose text does not depend on the hash seed."""
    if isinstance(value, (set, frozenset)):
        return {"set": sorted((_stable(v) for v in value), key=json.dumps)}
    if isinstance(value, dict):
        return {"dict": sorted(([_stable(k), _stable(v)] for k, v in value.items()), key=json.dumps)}
    if isinstance(value, (list, tuple)):
        return {type(value).__name__: [_stable(v) for v in value]}
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    return {type(value).__name__: repr(value)}


def _test_sets(public: Iterable[TestCase], hidden: Iterable[TestCase],
               generated: Iterable[TestCase]) -> list[tuple[str, list[TestCase]]]:
    sets = [("public", list(public)), ("hidden", list(hidden)), ("generated", list(generated))]
    return [(name, tests) for name, tests in sets if tests and not _mixed(tests)]


def _mixed(tests: list[TestCase]) -> bool:
    kinds = {t.kind for t in tests}
    return "stdio" in kinds and kinds != {"stdio"}
