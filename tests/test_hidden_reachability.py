"""Hidden tests are out of every agent's reach by construction.

Everything reachable by attribute, item and closure from what an agent receives (the environment,
its problems, the policy, the agent itself, the budget) is walked, after real episodes and after
the judge scored answers in the same sandbox; no answer key, judge, hidden test object or hidden
test text may turn up. Function globals, ``gc`` and stack frames are out of scope (see
:mod:`codegym.judge`).
"""

from __future__ import annotations

import gc
import json
import sys
import types
import weakref
from collections import deque

import gymnasium as gym
import pytest

import codegym
from agents import make_agent
from agents.base import Budget
from codegym import AnswerKey, Judge, TestCase
from codegym.datasets import load_custom, load_dataset
from codegym.llm.scripted import ScriptedBackend
from codegym.policy import StepPolicy

CANARY = "CANARY-7d1c0e"


def reachable(*roots, limit: int = 2_000_000) -> tuple[list, list[str]]:
    """Every object reachable from ``roots`` through what the interpreter itself records as an
    object's references (``gc.get_referents``: attributes, items, closures, bound ``self``,
    partial arguments, property getters, exception args and causes, code constants, base classes,
    object arrays), except modules, module globals, stack frames and tracebacks: those are the
    in-process channels declared out of scope. Strings and bytes are collected for text search."""
    skip = {id(m) for m in list(sys.modules.values())} | {id(vars(m)) for m in list(sys.modules.values())
                                                         if hasattr(m, "__dict__")}
    seen: set[int] = set()
    objects, strings = [], []
    queue = deque(roots)
    while queue:
        obj = queue.popleft()
        if id(obj) in seen or id(obj) in skip or isinstance(obj, (types.FrameType, types.TracebackType)):
            continue
        seen.add(id(obj))
        assert len(seen) < limit, "walk too large"
        objects.append(obj)
        if isinstance(obj, str):
            strings.append(obj)
        elif isinstance(obj, (bytes, bytearray)):
            strings.append(bytes(obj).decode("latin-1"))
        elif isinstance(obj, types.CodeType):  # not tracked by gc: follow its constants by hand
            queue.extend(obj.co_consts)
        elif isinstance(obj, weakref.ref) and obj() is not None:
            queue.append(obj())
        elif type(obj).__module__ == "numpy" and getattr(getattr(obj, "dtype", None), "kind", "") == "O":
            queue.extend(obj.ravel().tolist())
        queue.extend(gc.get_referents(obj))
    return objects, strings


def _fingerprint(test: TestCase) -> str:
    return json.dumps(test.to_dict(), sort_keys=True, default=repr)


def assert_nothing_hidden(roots: list, keys: dict[str, AnswerKey], texts: list[str] = (), problems=()) -> list:
    """No judge, answer key, hidden-only test (by identity or by value: one that is not also a
    public test of ``problems``, as MBPP's first assert is) or ``texts`` reachable from ``roots``."""
    objects, strings = reachable(*roots)
    shown = {_fingerprint(t) for p in problems for t in p.public_tests}
    hidden = {_fingerprint(t) for key in keys.values() for t in key.hidden_tests} - shown
    leaked = [o for o in objects if isinstance(o, (Judge, AnswerKey))]
    assert not leaked, leaked[:3]
    found = [o for o in objects if isinstance(o, TestCase) and _fingerprint(o) in hidden]
    assert not found, "a hidden test is reachable: %r" % found[:1]
    for text in texts:
        assert not [s for s in strings if text in s], "hidden text %r is reachable" % text
    return objects


def _canary_dataset(tmp_path):
    """Evaluation problems whose hidden tests and references carry the canary."""
    records = []
    for index in range(3):
        records.append({
            "id": "c%d" % index, "statement": "Return x doubled.", "entry_point": "double",
            "public_tests": [{"type": "call", "args": "[1]", "expected": "2"}],
            "hidden_tests": [{"type": "call", "args": repr([CANARY + str(index)]),
                              "expected": repr(CANARY * 2 + str(index))},
                             {"type": "assert", "code": "assert double(%r) == %r" % (CANARY, CANARY * 2)}],
            "reference_solutions": ["def double(x):\n    return x * 2  # %s reference\n" % CANARY],
        })
    path = tmp_path / "canary.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return load_custom(path)


def _scripted(prompt: str, seed: int) -> str:
    if prompt.endswith("```python\n"):
        return "def double(x):\n    return x + x\n" if seed % 2 else "def double(x):\n    return 'wrong'\n"
    return " return x twice, plan %d" % seed


@pytest.mark.parametrize("agent_name", ["greedy", "best-of-n", "beam", "mcts"])
def test_nothing_reachable_from_what_an_agent_gets_leads_to_a_hidden_test(tmp_path, sandbox, agent_name):
    dataset = _canary_dataset(tmp_path)
    judge = dataset.judge(sandbox)
    env = gym.make("CodeGym/Custom-v0", problems=dataset.problems, sandbox=sandbox, reward_tests="public")
    policy = StepPolicy(ScriptedBackend(_scripted), "pseudocode", chat=False)
    agent = make_agent(agent_name, policy, seed=0)
    budget = Budget(tokens=600)
    solutions = []
    for problem in dataset.problems:
        solution = agent.solve(env, problem.id, budget)
        solutions.append(solution)
        # the judge scores in the same sandbox the environment uses, failing and passing programs
        judge.evaluate(problem, solution.code or "pass")
        judge.evaluate_many([(problem, "def double(x):\n    return 0\n"), (problem, "def double(x):\n    return x * 2\n")])
    objects = assert_nothing_hidden([env, agent, policy, budget, dataset.problems, solutions], dataset.answer_keys,
                                    [CANARY], dataset.problems)
    assert any(o is sandbox for o in objects)  # the walk reached the sandbox the judge shares
    assert any(o is sandbox._cache for o in objects) and sandbox._cache


@pytest.mark.parametrize("name", ["starter", "humaneval", "mbpp"])
def test_real_datasets_public_problems_reach_no_hidden_test(name, mbpp_dir):
    dataset = load_dataset(name, **({"data_path": mbpp_dir, "split": "validation"} if name == "mbpp" else {}))
    env = gym.make({"starter": "CodeGym/Starter-v0", "humaneval": "CodeGym/HumanEval-v0",
                    "mbpp": "CodeGym/MBPP-v0"}[name], problems=dataset.problems)
    env.reset(seed=0)
    public_sources = {t.source for p in dataset.problems for t in p.public_tests}
    texts = [t.source for key in dataset.answer_keys.values() for t in key.hidden_tests
             if t.source and t.source not in public_sources]
    references = [key.reference_solutions[0] for key in dataset.answer_keys.values() if key.reference_solutions]
    _, strings = reachable(env)
    joined = "\n\x00".join(strings)
    assert not [t for t in texts if t in joined], "hidden test text reachable"
    assert not [r for r in references if r.strip() in joined], "a reference solution is reachable"
    assert_nothing_hidden([env, dataset.problems], dataset.answer_keys, problems=dataset.problems)


def _plants(judge, key, test):
    """Ways an agent-side object could hold a judge, a key or hidden content: each must be found."""
    import dataclasses
    import functools
    import threading

    import numpy as np

    class Holder:
        pass

    class Base:
        pass

    holder = Holder()
    holder.x = judge
    base = type("Derived", (type("Hidden", (Base,), {"planted": key}),), {})
    prop = type("WithProperty", (), {"p": property(lambda self, k=key: k)})()
    code = compile("def f():\n    return %r\n" % (CANARY + "0"), "<agent>", "exec")
    error = ValueError("x")
    error.__cause__ = KeyError(key)
    return {
        "attribute": holder, "closure": lambda: key.hidden_tests[0].args, "item": [[{"x": (CANARY + "0",)}]],
        "partial": functools.partial(print, judge), "property": type(prop),
        "builtin method": dict(k=key).get,
        "weakref": weakref.ref(judge), "exception": error, "base class": base,
        "thread": threading.Thread(target=print, args=(key,)),
        "mappingproxy": types.MappingProxyType({"k": key}), "object array": np.array([key, 1], dtype=object),
        "code constant": code, "bytes": (CANARY + "0").encode(), "value copy": dataclasses.replace(test),
    }


def test_the_walker_finds_what_it_looks_for(tmp_path):
    """The reachability check can fail: hand an agent-side object a judge, a key or hidden content
    in each way a walk could miss, and it must be found."""
    dataset = _canary_dataset(tmp_path)
    with pytest.raises(TypeError, match="answer keys"):
        gym.make("CodeGym/Custom-v0", problems=dataset)  # gym.make would keep it in env.spec
    key = dataset.answer_keys["c0"]
    hidden = key.hidden_tests[0]
    for name, plant in _plants(dataset.judge(), key, hidden).items():
        env = gym.make("CodeGym/Custom-v0", problems=dataset.problems)
        env.unwrapped.helper = plant
        with pytest.raises(AssertionError):
            assert_nothing_hidden([env], dataset.answer_keys, [CANARY])
            pytest.fail("not found: %s" % name)  # turns a silent miss into a failure outside raises()
        env.close()


def test_reward_tests_all_is_a_named_choice_on_training_splits_only(mbpp_dir):
    with pytest.raises(ValueError, match="training"):
        gym.make("CodeGym/MBPP-v0", data_path=str(mbpp_dir), split="validation", reward_tests="all")
    env = gym.make("CodeGym/MBPP-v0", data_path=str(mbpp_dir), split="train", reward_tests="all")
    env.reset(options={"problem_id": "MBPP/601"})
    assert len(env.unwrapped.reward_test_set()) == 3
    assert codegym.load_dataset("mbpp", data_path=mbpp_dir, split="train").problems[0].training


def test_the_judge_keeps_private_copies_and_benchmarks_load_no_references(mbpp_dir, sandbox):
    from codegym.bench import BenchConfig, prepare

    dataset = load_dataset("mbpp", data_path=mbpp_dir, split="validation")
    judge = dataset.judge(sandbox)
    problem = dataset.get("MBPP/511")
    wrong = "def find_Min_Sum(num):\n    return 0\n"
    assert not judge.evaluate(problem.id, wrong).passed
    shared = problem.public_tests[0]  # MBPP's first assert: public, and also a hidden test
    object.__setattr__(shared, "source", "assert abs(1)")  # an agent rewriting it...
    assert not judge.evaluate(problem.id, wrong).passed  # ...changes nothing the judge holds
    # a benchmark over every MBPP split loads even the training problems without references
    problems, _, _ = prepare(BenchConfig(env="CodeGym/MBPP-v0", data_path=str(mbpp_dir), agents=["greedy"]),
                             backend=object())
    assert len(problems) == 474 and not any(p.training or p.reference_solutions or p.all_tests for p in problems)
    env, _ = codegym.make_with_judge("CodeGym/MBPP-v0", data_path=str(mbpp_dir), split="train")
    assert not any(p.training for p in env.unwrapped.problems)
