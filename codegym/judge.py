"""The judging call: hidden tests score a final submission, and nothing else reaches them."""

from __future__ import annotations

import atexit
import threading

from .datasets import Problem
from .execution import RunResult, Sandbox

_shared: Sandbox | None = None
_shared_lock = threading.Lock()


def shared_sandbox() -> Sandbox:
    """One process-wide sandbox (workers = cores), started on first use, closed at exit."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Sandbox()
            atexit.register(_shared.close)
        return _shared


def run_tests(problem: Problem, code: str, tests: list, sandbox: Sandbox | None = None) -> RunResult:
    """Run ``code`` (with the problem's trusted test setup) against ``tests``."""
    return (sandbox or shared_sandbox()).run(problem.program_for_tests(code), tests)


def evaluate_submission(problem: Problem, code: str, sandbox: Sandbox | None = None) -> RunResult:
    """Score a final program on the problem's hidden tests. Call it once per committed answer;
    its outcome must never feed back into search or training on the same problem."""
    if not problem.hidden_tests:
        raise ValueError("problem %s has no hidden tests" % problem.id)
    return run_tests(problem, code, problem.hidden_tests, sandbox)
