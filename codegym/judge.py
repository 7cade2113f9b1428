"""The one door to hidden tests.

A dataset yields public :class:`~codegym.datasets.Problem`'s and an
:class:`~codegym.datasets.AnswerKey` per problem; only a :class:`Judge` holds the keys.
Environments, agents, selectors and the TCG receive problems, never a judge, so no attribute,
item or closure reachable from them leads to a hidden test (``tests/test_hidden_reachability.py``
walks them to check). The benchmark is the judge's one user: it scores each committed answer once.

A judge keeps private copies of the answer keys (a public test object, such as MBPP's first
assert, is never shared with them), takes problem ids (never a public object an agent could
alter), and returns a :class:`Verdict` without messages or outputs, so no careless line hands hidden
content on. The benchmark gives agents an environment whose sandbox the judge does not use.

What this does not cover: code in the same Python process can still find a judge through ``gc``,
stack frames or module globals (the test planner's module-level caches, for one, answer "was
this assert planned?"), or patch shared classes; an agent that does so is cheating on purpose,
not by accident. ``codegym bench --ray`` runs agents in Ray actors and judges in the
driver, which closes that for agents.
"""

from __future__ import annotations

import atexit
import copy
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .datasets import AnswerKey, Problem
from .datasets.problem import with_setup
from .execution import RunResult, Sandbox, TestCase
from .limits import TimeLimits

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


def run_tests(problem: Problem, code: str, tests: Sequence[TestCase], sandbox: Sandbox | None = None,
              timeout_s: float | None = None) -> RunResult:
    """Run ``code`` (with the problem's trusted test setup) against ``tests`` with the time limit
    ``timeout_s`` (default: the sandbox's)."""
    return (sandbox or shared_sandbox()).run(problem.program_for_tests(code), tests, timeout_s=timeout_s)


@dataclass(frozen=True)
class Verdict:
    """A judge's answer: whether the program passed its hidden tests, the overall status and the
    count of tests passed; never a message or an output, which could carry hidden content."""

    passed: bool
    status: str
    tests_passed: int
    tests_total: int

    @classmethod
    def of(cls, result: RunResult) -> Verdict:
        return cls(result.passed, result.status, sum(t.passed for t in result.tests), len(result.tests))


class Judge:
    """Scores final programs on hidden tests; holds the answer keys and hands out none.

    Each program gets ``limits.limit(T_ref)`` CPU seconds, T_ref being the reference's calibrated
    time on the hidden tests (:mod:`codegym.limits`), so the environment's reward and the verdict
    use one rule. Verdicts never enter the sandbox's result cache, which environments share. Call
    :meth:`evaluate` once per committed answer: its outcome must never feed back into search
    or training on the same problem."""

    def __init__(self, answer_keys: Mapping[str, AnswerKey], sandbox: Sandbox | None = None,
                 limits: TimeLimits | None = None):
        self._keys = {str(pid): copy.deepcopy(key) for pid, key in answer_keys.items()}  # private copies
        self.sandbox = sandbox
        self.limits = limits or TimeLimits()

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return "Judge(%d problems)" % len(self._keys)

    def _key(self, problem: Problem | str) -> AnswerKey:
        problem_id = problem.id if isinstance(problem, Problem) else str(problem)
        try:
            return self._keys[problem_id]
        except KeyError:
            raise KeyError("the judge has no answer key for problem %r" % problem_id) from None

    def evaluate(self, problem: Problem | str, code: str) -> Verdict:
        """The verdict of ``code`` on the problem's hidden tests."""
        key = self._key(problem)
        sandbox = self.sandbox or shared_sandbox()
        return Verdict.of(sandbox.run(with_setup(code, key.test_setup), key.hidden_tests, cache=False,
                                      timeout_s=self.time_limit(problem)))

    def evaluate_many(self, items: Sequence[tuple[Problem | str, str]]) -> list[Verdict]:
        """Verdicts for many (problem, code) pairs, run in parallel, in order."""
        keys = [self._key(problem) for problem, _ in items]
        runs = [(with_setup(code, key.test_setup), key.hidden_tests) for key, (_, code) in zip(keys, items)]
        limits = [self.limits.limit(key.reference_seconds) for key in keys]
        return [Verdict.of(r) for r in (self.sandbox or shared_sandbox()).run_batch(runs, cache=False, timeouts=limits)]

    def time_limit(self, problem: Problem | str) -> float:
        """The CPU seconds a program gets on the problem's hidden tests."""
        return self.limits.limit(self._key(problem).reference_seconds)

    def reference(self, problem: Problem | str) -> str | None:
        """The problem's first reference solution, for dataset tools that score the TCG or check
        an environment (None if the dataset has none). Never give it to an agent."""
        references = self._key(problem).reference_solutions
        return references[0] if references else None
