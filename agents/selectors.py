"""Choosing one program among candidates, without hidden tests.

Each selector takes the candidates (code, reward on the reward tests, trajectory) and the
problem's public view, and returns the index of the chosen candidate.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from codegym.datasets import Problem
from codegym.execution import Sandbox, TestCase
from codegym.judge import run_tests


@dataclass
class Candidate:
    code: str
    reward: float | None
    steps: list[tuple[str, str]]


def _first_best(scores: list[float]) -> int:
    return max(range(len(scores)), key=lambda i: (scores[i], -i))


def by_reward(candidates: list[Candidate], problem: Problem, sandbox: Sandbox | None = None) -> int:
    """The reward the environment gave (public tests by default); ties go to the earliest."""
    return _first_best([c.reward if c.reward is not None else -1.0 for c in candidates])


def by_generated_tests(candidates: list[Candidate], problem: Problem, sandbox: Sandbox | None = None) -> int:
    """Pass fraction on the generated tests (falls back to the reward without any)."""
    if not problem.generated_tests:
        return by_reward(candidates, problem)
    results = [run_tests(problem, c.code, problem.generated_tests, sandbox) for c in candidates]
    return _first_best([r.pass_fraction for r in results])


def _probe_tests(problem: Problem) -> list[TestCase]:
    """Inputs to run every candidate on: generated tests, else public call/stdio tests."""
    tests = [t for t in problem.generated_tests + problem.public_tests if t.kind in ("call", "stdio")]
    return tests


def _signatures(candidates: list[Candidate], problem: Problem, tests: list[TestCase],
                sandbox: Sandbox | None) -> list[tuple[tuple, list[bool]]]:
    out = []
    for candidate in candidates:
        result = run_tests(problem, candidate.code, tests, sandbox)
        out.append((tuple(t.output for t in result.tests), [t.passed for t in result.tests]))
    return out


def majority_vote(candidates: list[Candidate], problem: Problem, sandbox: Sandbox | None = None) -> int:
    """The candidate whose outputs on the probe inputs most candidates share."""
    tests = _probe_tests(problem)
    if not tests:
        return by_reward(candidates, problem)
    signatures = _signatures(candidates, problem, tests, sandbox)
    votes = Counter(signature for signature, _ in signatures if any(o is not None for o in signature))
    if not votes:
        return by_reward(candidates, problem)
    return _first_best([votes.get(signature, 0) for signature, _ in signatures])


def dual_agreement(candidates: list[Candidate], problem: Problem, sandbox: Sandbox | None = None) -> int:
    """CodeT: group candidates by identical outputs on the probe tests; a group scores
    (number of candidates) x (number of tests its outputs pass); pick from the best group."""
    tests = _probe_tests(problem)
    if not tests:
        return by_reward(candidates, problem)
    signatures = _signatures(candidates, problem, tests, sandbox)
    size = Counter(signature for signature, _ in signatures)
    return _first_best([size[signature] * sum(passed) for signature, passed in signatures])


PRM_AGGREGATES: dict[str, Callable[[list[float]], float]] = {
    "mean": lambda values: sum(values) / len(values), "min": min, "last": lambda values: values[-1]}


def by_prm(prm, aggregate: str = "mean") -> Callable:
    """Highest process score of the candidate's steps, aggregated by ``mean``, ``min`` (the
    weakest step, OpenR's PRM-min) or ``last`` (the final step's score)."""
    if aggregate not in PRM_AGGREGATES:
        raise ValueError("unknown PRM aggregate %r; known: %s" % (aggregate, ", ".join(PRM_AGGREGATES)))
    combine = PRM_AGGREGATES[aggregate]

    def select(candidates: list[Candidate], problem: Problem, sandbox: Sandbox | None = None) -> int:
        from codegym.envs.steps import Step

        scores = []
        for candidate in candidates:
            values = prm.score(problem, [Step(kind, text) for kind, text in candidate.steps])
            scores.append(combine(values) if values else 0.0)
        return _first_best(scores)

    return select


SELECTORS: dict[str, Callable] = {"public": by_reward, "generated": by_generated_tests, "codet": dual_agreement,
                                  "majority": majority_vote}
