"""Prompt templates: public view only, one step per generation, and the embedded model's parse rate."""

from __future__ import annotations

import pytest

import codegym
import codegym.llm
from codegym import TestCase
from codegym.datasets import split_problem
from codegym.envs import render_problem
from codegym.envs.steps import parse_step
from codegym.llm.scripted import ScriptedBackend
from codegym.policy import StepPolicy
from codegym.prompts import available_templates, load_template

SECRET = "HIDDEN-CANARY-77"


def test_bundled_templates_load():
    assert {"pseudocode", "cot", "direct"} <= set(available_templates())
    with pytest.raises(ValueError, match="no prompt template"):
        load_template("nope")


@pytest.mark.parametrize("chat", [True, False])
def test_prompt_holds_public_view_only(chat):
    problem, _ = split_problem(id="p", statement="Return x + 1.", entry_point="inc",
                               public_tests=[TestCase.call("inc", [1], 2)], hidden_tests=[TestCase.call("inc", [SECRET], SECRET)])
    backend = ScriptedBackend(["1. add one"])
    policy = StepPolicy(backend, "pseudocode", chat=chat)
    (proposal,) = policy.propose_many([(render_problem(problem), "", "define", False)])[0]
    prompt = backend.prompts_seen[-1]
    assert "Return x + 1." in prompt and "inc(1) == 2" in prompt and SECRET not in prompt
    assert parse_step(proposal.action).kind == "define"


@pytest.mark.parametrize("template", ["pseudocode", "cot", "direct"])
def test_each_kind_becomes_a_valid_action(template):
    policy = StepPolicy(ScriptedBackend(["step text", "def f():\n    return 1\n"]), template)
    for kind in ("define", "refine", "translate"):
        (proposal,) = policy.propose_many([("problem", "", kind, False)])[0]
        step = parse_step(proposal.action)
        assert step.kind == kind


def test_embedded_model_parse_rate_on_starter():
    """Greedy define -> refine -> translate on 6 starter problems: >= 90% of steps parse."""
    policy = StepPolicy(codegym.llm.load("smollm2"), "pseudocode")
    problems = codegym.load_dataset("starter").problems[::7][:6]
    trajectories = {p.id: "" for p in problems}
    valid = total = 0
    for kind in ("define", "refine", "translate"):
        proposals = policy.propose_many([(render_problem(p), trajectories[p.id], kind, p.kind == "stdio")
                                         for p in problems], max_new_tokens=48 if kind != "translate" else 128)
        for problem, (proposal,) in zip(problems, proposals):
            total += 1
            try:
                step = parse_step(proposal.action)
            except ValueError:
                continue
            valid += step.kind == kind
            trajectories[problem.id] += "\n\n" + codegym.format_step(step.kind, step.text)
    assert valid / total >= 0.9
