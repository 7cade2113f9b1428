"""Plain Python: the reference verdict for the sandbox differential test (used only by tests).

Every (program, test) pair runs in its own fresh ``python -I`` subprocess, with no sandbox, no
result codec and no split between untrusted and trusted code: the test runs on the program's
real objects, the way the canonical harnesses do.

* ``assert``: exec the program in a fresh namespace, then exec the assert in that namespace
  (MBPP's harness; the program text already carries the dataset's ``test_setup_code``, which
  :meth:`codegym.datasets.Problem.program_for_tests` appends).
* ``check``: exec the program, then exec the test's ``setup`` + ``source`` (HumanEval: the
  prompt and ``def check(candidate)``) in a namespace of their own where the entry point's name
  is bound to the program's function, and call ``check(<the program's entry point>)``. The check
  gets a namespace of its own because exec'ing the prompt into the program's namespace would
  replace the entry point with the prompt's empty stub (recursive solutions would then call
  the stub).
* ``call``: ``fn(*args) == expected``; with ``float_tol``, floats compare with that relative and
  absolute tolerance anywhere inside lists, tuples and dicts (NaN equals NaN), as documented by
  :func:`codegym.execution.values_equal`.
* ``stdio``: run the program as a script (``python -I program.py``) with the test's stdin; it
  passes when it exits with status 0 and its stdout matches by
  :func:`codegym.execution.stdout_matches`.

A verdict is ``passed`` plus a short reason. Limits are generous (10 s, 2 GiB of address space,
64 MiB of output) and only there to keep a runaway program from hurting the machine.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from codegym.execution import TestCase, stdout_matches

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_MEMORY_MB = 2048
OUTPUT_LIMIT_MB = 64

# The child: reads the job, runs it, writes {"passed", "reason"} to the result file. Everything it
# needs after the program has run is bound before the program runs.
_CHILD = r'''
import json, math, os, pickle, resource, sys, traceback

job_path, result_path = sys.argv[1], sys.argv[2]
memory = int(sys.argv[3]) << 20
resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
output = int(sys.argv[4]) << 20
resource.setrlimit(resource.RLIMIT_FSIZE, (output, output))
with open(job_path, "rb") as fh:
    job = pickle.load(fh)
_open, _dumps, _exit, _isnan, _isclose, _flush = open, json.dumps, os._exit, math.isnan, math.isclose, sys.stdout.flush
_format_exception_only = traceback.format_exception_only


def report(passed, reason):
    try:
        _flush()
    except BaseException:
        pass
    with _open(result_path, "w") as fh:
        fh.write(_dumps({"passed": bool(passed), "reason": str(reason)[:500]}))
    _exit(0)


def describe(err):
    try:
        return "".join(_format_exception_only(type(err), err)).strip()
    except BaseException:
        return type(err).__name__


def close(got, expected, tol):
    if isinstance(got, float) or isinstance(expected, float):
        if not isinstance(got, (int, float)) or not isinstance(expected, (int, float)):
            return False
        if isinstance(got, bool) or isinstance(expected, bool):
            return got == expected
        if _isnan(got) or _isnan(expected):
            return _isnan(got) and _isnan(expected)
        return _isclose(got, expected, rel_tol=tol, abs_tol=tol)
    if isinstance(got, (list, tuple)) and type(got) is type(expected):
        return len(got) == len(expected) and all(close(g, e, tol) for g, e in zip(got, expected))
    if isinstance(got, dict) and isinstance(expected, dict):
        return got.keys() == expected.keys() and all(close(got[k], expected[k], tol) for k in got)
    return bool(got == expected)


kind = job["kind"]
if kind == "stdio":  # the program itself, as a script, in this process (keeping the limits)
    os.execv(sys.executable, [sys.executable, "-I", job["program_path"]])
stage = "compiling the program"
try:
    code = compile(job["program"], "<program>", "exec")
    namespace = {}
    stage = "loading the program"
    exec(code, namespace)
    stage = "running the test"
    if kind == "assert":
        exec(compile(job["source"], "<assert>", "exec"), namespace)
        report(True, "assert held")
    elif kind == "call":
        got = namespace[job["fn"]](*job["args"])
        stage = "comparing the result"
        tol = job["float_tol"]
        ok = bool(got == job["expected"]) if tol is None else close(got, job["expected"], tol)
        report(ok, "returned the expected value" if ok else "returned a different value")
    elif kind == "check":
        candidate = namespace[job["fn"]]
        check_namespace = {"__name__": "__check__"}
        exec(compile(job["setup"] + "\n\n" + job["source"], "<check>", "exec"), check_namespace)
        check_namespace[job["fn"]] = candidate
        check_namespace["check"](candidate)
        report(True, "check passed")
    else:
        report(False, "unknown test kind %r" % kind)
except BaseException as err:
    report(False, "%s while %s" % (describe(err), stage))
'''


@dataclass
class PlainVerdict:
    """Plain Python's verdict on one (program, test)."""

    passed: bool
    reason: str
    elapsed_s: float = 0.0
    timed_out: bool = False
    stdout: str | None = None  # stdio tests: what the program printed


def _job(program: str, test: TestCase, program_path: str) -> dict:
    return {"program": program, "kind": test.kind, "fn": test.fn, "args": list(test.args), "expected": test.expected,
            "float_tol": test.float_tol, "source": test.source, "setup": test.setup, "program_path": program_path}


def run_test(program: str, test: TestCase, timeout_s: float = DEFAULT_TIMEOUT_S, memory_mb: int = DEFAULT_MEMORY_MB,
             hash_seed: int | None = None) -> PlainVerdict:
    """Run one test of ``program`` in a fresh ``python -I`` subprocess and return the verdict.

    ``hash_seed`` fixes PYTHONHASHSEED (None: random, as for any Python process)."""
    with tempfile.TemporaryDirectory(prefix="plain-python-") as tmp:
        job_path, result_path = os.path.join(tmp, "job.pickle"), os.path.join(tmp, "result.json")
        runner_path, out_path = os.path.join(tmp, "runner.py"), os.path.join(tmp, "stdout")
        program_path = os.path.join(tmp, "program.py")
        with open(program_path, "w", encoding="utf-8", errors="surrogatepass") as fh:
            fh.write(program)
        with open(job_path, "wb") as fh:
            pickle.dump(_job(program, test, program_path), fh)
        with open(runner_path, "w") as fh:
            fh.write(_CHILD)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "OMP_NUM_THREADS": "1",
               "OPENBLAS_NUM_THREADS": "1", "HOME": tmp, "TMPDIR": tmp}
        if hash_seed is not None:
            env["PYTHONHASHSEED"] = str(hash_seed)
        work = os.path.join(tmp, "work")
        os.mkdir(work)
        started = time.monotonic()
        with open(out_path, "wb") as out, open(os.devnull, "rb") as devnull:
            stdin = subprocess.PIPE if test.kind == "stdio" else devnull
            proc = subprocess.Popen([sys.executable, "-I", runner_path, job_path, result_path, str(memory_mb),
                                     str(OUTPUT_LIMIT_MB)], stdin=stdin, stdout=out, stderr=subprocess.DEVNULL,
                                    cwd=work, env=env, start_new_session=True)
            timed_out = False
            try:
                proc.communicate(test.stdin.encode() if test.kind == "stdio" else None, timeout=timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)  # the program's own children too
                except ProcessLookupError:
                    pass
                proc.wait()
        elapsed = time.monotonic() - started
        if timed_out:
            return PlainVerdict(False, "timed out after %.1f s" % timeout_s, elapsed, True)
        code = proc.returncode
        how = "was killed by signal %d" % -code if code < 0 else "exited with status %d" % code
        if test.kind == "stdio":
            with open(out_path, "rb") as fh:
                stdout = fh.read().decode("utf-8", "replace")
            if code != 0:
                return PlainVerdict(False, "the program %s" % how, elapsed, stdout=stdout)
            ok = stdout_matches(stdout, test.expected_stdout)
            return PlainVerdict(ok, "stdout matches" if ok else "stdout differs", elapsed, stdout=stdout)
        try:
            with open(result_path) as fh:
                result = json.load(fh)
        except (OSError, ValueError):
            return PlainVerdict(False, "the process %s before reporting" % how, elapsed)
        return PlainVerdict(bool(result["passed"]), result["reason"], elapsed)


def run_many(pairs: Iterable[tuple[str, TestCase]], timeout_s: float = DEFAULT_TIMEOUT_S, workers: int = 1,
             memory_mb: int = DEFAULT_MEMORY_MB) -> list[PlainVerdict]:
    """:func:`run_test` for each pair (``workers`` subprocesses at a time), in input order."""
    pairs: Sequence[tuple[str, TestCase]] = list(pairs)
    if workers <= 1:
        return [run_test(p, t, timeout_s, memory_mb) for p, t in pairs]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda pair: run_test(pair[0], pair[1], timeout_s, memory_mb), pairs))
