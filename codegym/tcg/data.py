"""Training data for the test case generator (formats documented for TRL).

SFT rows: ``{"prompt": [messages], "completion": [{"role": "assistant", "content": TEXT}]}`` where
TEXT is the assistant prefix plus assert lines with the reference's outputs (conversational
prompt-completion format, as TRL's SFTTrainer takes it).

DPO rows: ``{"prompt": [...], "chosen": [...], "rejected": [...]}``: chosen = correct pairs;
rejected = the same inputs with the outputs shuffled among the tests (a derangement), or
perturbed when there is one test (O1-CODER's construction).
"""

from __future__ import annotations

import random

from ..datasets import Problem
from ..execution import TestCase
from .generator import _parse_assert, tcg_request


def _assert_line(test: TestCase) -> str:
    return "assert %s(%s) == %r" % (test.fn, ", ".join(map(repr, test.args)), test.expected)


def reference_pairs(problem: Problem, limit: int = 8) -> list[TestCase]:
    """Known-correct (input, output) pairs of a training problem: its call tests, and its asserts of
    the form ``assert f(literals) == literal`` (MBPP's). An evaluation problem gives only its public ones."""
    seen, tests = set(), []
    for test in problem.public_tests + problem.all_tests:
        if test.kind == "assert":
            test = _parse_assert(test.source, problem.entry_point)
        if test is not None and test.kind == "call" and repr(test.args) not in seen:
            seen.add(repr(test.args))
            tests.append(test)
    return tests[:limit]


def _prompt(problem: Problem, count: int) -> list[dict]:
    return [dict(m) for m in tcg_request(problem, count).messages]


def _completion(tests: list[TestCase], expected: list) -> list[dict]:
    lines = [_assert_line(TestCase.call(t.fn, list(t.args), e)) for t, e in zip(tests, expected)]
    return [{"role": "assistant", "content": "\n".join(lines)}]


def sft_rows(problems: list[Problem]) -> list[dict]:
    """Rows from the training problems among ``problems`` (evaluation problems give none)."""
    rows = []
    for problem in problems:
        tests = reference_pairs(problem)
        if problem.training and problem.kind == "function" and tests:
            rows.append({"prompt": _prompt(problem, len(tests)),
                         "completion": _completion(tests, [t.expected for t in tests])})
    return rows


def _perturb(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, (list, tuple)):
        return type(value)(list(value)[1:]) if value else type(value)([0])
    return None if value is not None else 0


def dpo_rows(problems: list[Problem], seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for problem in problems:
        tests = reference_pairs(problem)
        if not problem.training or problem.kind != "function" or not tests:
            continue
        correct = [t.expected for t in tests]
        wrong = correct[1:] + correct[:1] if len(tests) > 1 else [_perturb(correct[0])]
        if len(tests) > 2:
            order = list(range(len(tests)))
            while any(order[i] == i for i in order):
                rng.shuffle(order)
            wrong = [correct[i] for i in order]
        if wrong == correct:
            wrong = [_perturb(value) for value in correct]
        rows.append({"prompt": _prompt(problem, len(tests)), "chosen": _completion(tests, correct),
                     "rejected": _completion(tests, wrong)})
    return rows
