"""Evaluating a test case generator.

* ``pass_rate``: O1-CODER's metric, the fraction of the model's own (input, expected) pairs that
  the reference solution passes;
* ``validity``: parsed, non-duplicate lines over proposed lines;
* ``distinct_inputs``: mean number of distinct inputs per problem;
* ``discrimination``: of the known-wrong programs (simple mutants of the reference that fail the
  problem's dataset tests), the fraction that the reference-labelled generated tests reject.
  References and hidden tests come from the judge: this is scoring, never training.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from ..datasets import Problem
from ..execution import Sandbox
from ..judge import Judge
from .generator import FilterReport, LLMTestCaseGenerator, label_with_reference

_SWAPS = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
          ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Mult: ast.Add}


def _mutation_site(node: ast.AST) -> bool:
    return isinstance(node, (ast.BinOp, ast.Compare)) or (isinstance(node, ast.Constant) and type(node.value) is int)


def mutants(code: str, limit: int = 6) -> list[str]:
    """Single-edit mutants: swap one operator or comparison, or shift one integer constant by one."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    sites = sum(1 for node in ast.walk(tree) if _mutation_site(node))
    out: list[str] = []
    for index in range(sites):
        mutated = ast.parse(code)  # a fresh tree per mutant; ast.walk visits sites in the same order
        node = [n for n in ast.walk(mutated) if _mutation_site(n)][index]
        if isinstance(node, ast.BinOp) and type(node.op) in _SWAPS:
            node.op = _SWAPS[type(node.op)]()
        elif isinstance(node, ast.Compare) and type(node.ops[0]) in _SWAPS:
            node.ops[0] = _SWAPS[type(node.ops[0])]()
        elif isinstance(node, ast.Constant):
            node.value += 1
        else:
            continue
        text = ast.unparse(mutated)
        if text not in out:
            out.append(text)
        if len(out) >= limit:
            break
    return out


@dataclass
class TCGEvaluation:
    problems: int
    pass_rate: float | None
    validity: float | None
    distinct_inputs: float
    discrimination: float | None
    mutants_wrong: int
    report: dict


def evaluate_generator(generator: LLMTestCaseGenerator, problems: list[Problem], judge: Judge,
                       sandbox: Sandbox) -> TCGEvaluation:
    """Score the generator on ``problems`` (those with a reference in ``judge``); the proposed
    tests run in ``sandbox``, the mutants' hidden verdicts in the judge's."""
    problems = [p for p in problems if p.kind == "function" and judge.reference(p)]
    total = FilterReport()
    model_pairs = model_passed = 0
    distinct = []
    wrong = caught = 0
    for problem, (proposed, report) in zip(problems, generator.propose(problems)):
        total.add(report)
        distinct.append(len(proposed))
        reference = judge.reference(problem)
        if proposed:
            result = sandbox.run(problem.program_for_tests(reference), proposed)
            model_pairs += len(proposed)
            model_passed += sum(t.passed for t in result.tests)
        labelled = label_with_reference(problem, proposed, sandbox, FilterReport(proposed=len(proposed)), reference)
        for mutant in mutants(reference):
            if judge.evaluate(problem, mutant).passed:
                continue  # equivalent to the reference on the dataset's tests
            wrong += 1
            if labelled and not sandbox.run(problem.program_for_tests(mutant), labelled).passed:
                caught += 1
    return TCGEvaluation(problems=len(problems), pass_rate=model_passed / model_pairs if model_pairs else None,
                         validity=(total.proposed - sum(total.dropped.values())) / total.proposed if total.proposed else None,
                         distinct_inputs=sum(distinct) / len(distinct) if distinct else 0.0,
                         discrimination=caught / wrong if wrong else None, mutants_wrong=wrong, report=total.to_dict())
