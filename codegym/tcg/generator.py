"""Generating test cases with a language model, and filtering them.

The model writes ``assert ENTRY(ARGS) == EXPECTED`` lines (the template is in the spirit of
O1-CODER's Figure 3: instruction, problem, a reference solution when one exists, then the test
section). Lines are parsed as data: arguments and expected values must be Python literals
(``ast.literal_eval``); anything else is rejected, never run. Then:

* with a reference solution ("reference" mode), the expected value is what the reference returns
  on those arguments in the sandbox, run twice: erroring or non-deterministic inputs are dropped;
* without one ("agreement" mode), candidate programs sampled from the policy are run on the
  inputs, and an input is kept with the output that most candidates (at least two) agree on.

Every dropped line is counted by reason in a :class:`FilterReport`.
"""

from __future__ import annotations

import ast
from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from ..datasets import Problem
from ..execution import Sandbox, TestCase, _codec
from ..execution.testcases import call_key
from ..llm.base import Backend, GenerationRequest

SYSTEM = "You write unit tests for Python functions. Each test is one assert line with literal values only."
USER = ("Problem:\n{statement}\n\n{reference}Write {count} different tests for `{entry}`, one per line, each in the "
        "form `assert {entry}(arguments) == expected_result`, using only literal values (numbers, strings, "
        "lists, tuples, dicts, sets, booleans, None). Cover typical cases and edge cases.")
REFERENCE = "A correct solution:\n```python\n{code}\n```\n\n"


@dataclass
class FilterReport:
    """How many proposed tests were kept, and why the others were dropped."""

    proposed: int = 0
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)

    def add(self, other: FilterReport) -> None:
        self.proposed += other.proposed
        self.kept += other.kept
        self.dropped.update(other.dropped)

    def to_dict(self) -> dict:
        return {"proposed": self.proposed, "kept": self.kept, "dropped": dict(self.dropped)}


@runtime_checkable
class TestCaseGenerator(Protocol):
    """Anything that turns a problem into generated test cases (pure data)."""

    def generate(self, problem: Problem) -> tuple[list[TestCase], FilterReport]: ...


def tcg_request(problem: Problem, count: int = 8, with_reference: bool = True, n: int = 1, temperature: float = 0.0,
                seed: int = 0, max_new_tokens: int = 320) -> GenerationRequest:
    reference = ""
    if with_reference and problem.reference_solutions:
        reference = REFERENCE.format(code=problem.reference_solutions[0].strip())
    user = USER.format(statement=problem.statement.strip(), reference=reference, count=count, entry=problem.entry_point)
    return GenerationRequest(messages=({"role": "system", "content": SYSTEM}, {"role": "user", "content": user}),
                             assistant_prefix="assert %s(" % problem.entry_point, n=n, temperature=temperature,
                             seed=seed, max_new_tokens=max_new_tokens, stop=("```", "<|im_end|>"))


def parse_test_lines(text: str, entry_point: str, max_chars: int = 2000) -> tuple[list[TestCase], FilterReport]:
    """Model text (after the ``assert ENTRY(`` prefix) to call tests with the model's expected values."""
    report = FilterReport()
    tests: list[TestCase] = []
    seen: set[str] = set()
    lines = ("assert %s(" % entry_point + text).splitlines()
    for line in lines:
        line = line.strip()
        if not line:
            continue
        report.proposed += 1
        if len(line) > max_chars:
            report.dropped["oversized"] += 1
            continue
        test = _parse_assert(line, entry_point)
        if test is None:
            report.dropped["unparseable"] += 1
            continue
        key = call_key(test.args)
        if key in seen:
            report.dropped["duplicate"] += 1
            continue
        seen.add(key)
        tests.append(test)
    report.kept = len(tests)
    return tests, report


def _parse_assert(line: str, entry_point: str) -> TestCase | None:
    try:
        node = ast.parse(line, mode="exec").body
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None
    if len(node) != 1 or not isinstance(node[0], ast.Assert):
        return None
    test = node[0].test
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return None
    call = test.left
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == entry_point
            and not call.keywords):
        return None
    try:
        args = [ast.literal_eval(arg) for arg in call.args]
        expected = ast.literal_eval(test.comparators[0])
        return TestCase.call(entry_point, args, expected, origin="model")
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError, _codec.UnencodableError):
        return None


def _outputs(sandbox: Sandbox, problem: Problem, program: str, tests: list[TestCase]) -> list[str | None]:
    """What ``program`` returns on each test's arguments (wire form; None where it failed)."""
    result = sandbox.run(problem.program_for_tests(program), tests)
    return [outcome.output if outcome.status in ("passed", "wrong_answer") else None for outcome in result.tests]


def label_with_reference(problem: Problem, tests: list[TestCase], sandbox: Sandbox,
                         report: FilterReport, reference: str | None = None) -> list[TestCase]:
    """Expected values from the reference solution (the training problem's own, or ``reference``
    from a judge when scoring the TCG), run twice (non-deterministic inputs dropped)."""
    if not tests:
        return []
    reference = reference or problem.reference_solutions[0]
    first = _outputs(sandbox, problem, reference, tests)
    second = _outputs(sandbox, problem, reference + "\n# second run\n", tests)
    labelled = []
    for test, a, b in zip(tests, first, second):
        if a is None:
            report.dropped["reference_error"] += 1
        elif a != b:
            report.dropped["nondeterministic"] += 1
        else:
            labelled.append(TestCase.call(test.fn, list(test.args), _codec.loads(a), origin="reference"))
    report.kept = len(labelled)
    return labelled


def label_by_agreement(problem: Problem, tests: list[TestCase], candidates: list[str], sandbox: Sandbox,
                       report: FilterReport, min_votes: int = 2) -> list[TestCase]:
    """Expected values by plurality over candidate programs' outputs (at least ``min_votes``)."""
    if not tests:
        return []
    table = [_outputs(sandbox, problem, code, tests) for code in candidates]
    labelled = []
    for column, test in enumerate(tests):
        votes = Counter(row[column] for row in table if row[column] is not None)
        if not votes:
            report.dropped["no_candidate_output"] += 1
            continue
        output, count = votes.most_common(1)[0]
        if count < min_votes:
            report.dropped["no_agreement"] += 1
            continue
        labelled.append(TestCase.call(test.fn, list(test.args), _codec.loads(output), origin="agreement"))
    report.kept = len(labelled)
    return labelled


class LLMTestCaseGenerator:
    """Proposes inputs with a model; labels them with the reference, or by candidate agreement."""

    def __init__(self, backend: Backend, sandbox: Sandbox | None = None, count: int = 8, temperature: float = 0.0,
                 seed: int = 0, candidates: int = 6):
        self.backend, self.count, self.temperature, self.seed, self.candidates = backend, count, temperature, seed, candidates
        self.sandbox = sandbox or Sandbox(timeout_s=5.0, cache_size=0)

    def propose(self, problems: list[Problem]) -> list[tuple[list[TestCase], FilterReport]]:
        """The model's own (input, expected) pairs for each function problem, in one batch."""
        requests = [tcg_request(p, self.count, temperature=self.temperature, seed=self.seed) for p in problems]
        output = self.backend.generate(requests)
        return [parse_test_lines(row[0].text, p.entry_point) for p, row in zip(problems, output.results)]

    def generate(self, problem: Problem) -> tuple[list[TestCase], FilterReport]:
        return self.generate_many([problem])[0]

    def generate_many(self, problems: list[Problem]) -> list[tuple[list[TestCase], FilterReport]]:
        for problem in problems:
            if problem.kind != "function":
                raise ValueError("%s: the LLM generator writes function tests only" % problem.id)
        results = []
        for problem, (proposed, report) in zip(problems, self.propose(problems)):
            if problem.reference_solutions:
                tests = label_with_reference(problem, proposed, self.sandbox, report)
            else:
                tests = label_by_agreement(problem, proposed, self._candidates(problem), self.sandbox, report)
            results.append((tests, report))
        return results

    def _candidates(self, problem: Problem) -> list[str]:
        from ..envs import render_problem
        from ..envs.steps import parse_step
        from ..policy import StepPolicy

        policy = StepPolicy(self.backend, "direct")
        proposals = policy.propose_many([(render_problem(problem), "", "translate", False)], n=self.candidates,
                                        temperature=0.8, seed=self.seed)[0]
        codes = []
        for proposal in proposals:
            try:
                codes.append(parse_step(proposal.action).text)
            except ValueError:
                continue
        return codes


def generate_test_file(generator: LLMTestCaseGenerator, problems: list[Problem], path, batch: int = 8,
                       progress: bool = True) -> dict:
    """Generate and filter tests for ``problems`` in batches and write them (atomically) to ``path``,
    the file ``gym.make(..., generated_tests=)`` and ``codegym bench --generated-tests`` load; the
    filter's counts are returned."""
    from tqdm import tqdm

    from .store import save_generated

    entries, total = {}, FilterReport()
    for start in tqdm(range(0, len(problems), batch), desc="tcg", unit="batch", disable=not progress):
        chunk = problems[start:start + batch]
        for problem, (tests, report) in zip(chunk, generator.generate_many(chunk)):
            entries[problem.id] = (tests, report.to_dict())
            total.add(report)
    save_generated(path, entries)
    return {"problems": len(entries), **total.to_dict(), "out": str(path)}
