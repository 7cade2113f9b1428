"""Hidden tests are out of every agent's reach by construction.

Everything reachable by attribute, item and closure from what an agent receives (the environment,
its problems, the policy, the agent itself, the budget) is walked, after real episodes and after
the judge scored answers in the same sandbox; no answer key, judge, hidden test object or hidden
test text may turn up. Function globals, ``gc`` and stack frames are out of scope (see
:mod:`codegym.judge`).
"""

from __future__ import annotations

import json
import types
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
_LEAVES = (str, bytes, bytearray, int, float, complex, bool, type(None), range, types.ModuleType,
           types.BuiltinFunctionType, types.MethodWrapperType, types.WrapperDescriptorType)


def reachable(*roots, limit: int = 500_000) -> tuple[list, list[str]]:
    """Every object reachable from ``roots`` by attribute, item and closure, and every string seen."""
    seen: set[int] = set()
    objects, strings = [], []
    queue = deque(roots)
    while queue:
        obj = queue.popleft()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        assert len(seen) < limit, "walk too large"
        if isinstance(obj, str):
            strings.append(obj)
            continue
        if isinstance(obj, _LEAVES) or type(obj).__module__ in ("numpy", "torch", "_thread", "threading"):
            if not isinstance(obj, types.ModuleType):
                objects.append(obj)
            continue
        objects.append(obj)
        if isinstance(obj, dict):
            queue.extend(obj.keys())
            queue.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset, deque)):
            queue.extend(obj)
        if isinstance(obj, types.FunctionType):
            queue.extend(cell.cell_contents for cell in obj.__closure__ or () if _filled(cell))
            queue.extend(obj.__defaults__ or ())
            queue.extend((obj.__kwdefaults__ or {}).values())
        elif isinstance(obj, types.MethodType):
            queue.extend([obj.__self__, obj.__func__])
        elif isinstance(obj, type):
            queue.extend(v for k, v in vars(obj).items() if not k.startswith("__"))
        else:
            queue.append(type(obj))
        if hasattr(obj, "__dict__") and not isinstance(obj, type):
            queue.extend(vars(obj).values())
        for slot in getattr(type(obj), "__slots__", ()):
            if hasattr(obj, slot):
                queue.append(getattr(obj, slot))
        wrapped = getattr(obj, "__wrapped__", None) if not isinstance(obj, type) else None
        if wrapped is not None:
            queue.append(wrapped)
    return objects, strings


def _filled(cell) -> bool:
    try:
        return cell.cell_contents is not cell  # reading an empty cell raises
    except ValueError:
        return False


def assert_nothing_hidden(roots: list, keys: dict[str, AnswerKey], texts: list[str] = (), problems=()) -> list:
    """No judge, answer key, hidden-only test object (one that is not also a public test of
    ``problems``, as MBPP's first assert is) or ``texts`` reachable from ``roots``."""
    objects, strings = reachable(*roots)
    shown = {id(t) for p in problems for t in p.public_tests}
    hidden = {id(t) for key in keys.values() for t in key.hidden_tests} - shown
    public = {id(o) for o in objects if isinstance(o, TestCase)}
    leaked = [o for o in objects if isinstance(o, (Judge, AnswerKey))]
    assert not leaked, leaked[:3]
    assert not hidden & public, "a hidden test object is reachable"
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
    for problem in dataset.problems:
        solution = agent.solve(env, problem.id, budget)
        # the judge scores in the same sandbox the environment uses, failing and passing programs
        judge.evaluate(problem, solution.code or "pass")
        judge.evaluate_many([(problem, "def double(x):\n    return 0\n"), (problem, "def double(x):\n    return x * 2\n")])
    objects = assert_nothing_hidden([env, agent, policy, budget, dataset.problems], dataset.answer_keys, [CANARY],
                                    dataset.problems)
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


def test_the_walker_finds_what_it_looks_for(tmp_path):
    """The reachability check can fail: hand an agent-side object a judge, or a key in a closure."""
    dataset = _canary_dataset(tmp_path)
    with pytest.raises(TypeError, match="answer keys"):
        gym.make("CodeGym/Custom-v0", problems=dataset)  # gym.make would keep it in env.spec
    env = gym.make("CodeGym/Custom-v0", problems=dataset.problems)
    env.unwrapped.helper = dataset.judge()
    with pytest.raises(AssertionError):
        assert_nothing_hidden([env], dataset.answer_keys)
    key = dataset.answer_keys["c0"]
    env.unwrapped.helper = lambda: key.hidden_tests[0].args
    with pytest.raises(AssertionError):
        assert_nothing_hidden([env], dataset.answer_keys)
    env.unwrapped.helper = [[{"x": (CANARY + "0",)}]]
    with pytest.raises(AssertionError):
        assert_nothing_hidden([env], {}, [CANARY])


def test_reward_tests_all_is_a_named_choice_on_training_splits_only(mbpp_dir):
    with pytest.raises(ValueError, match="training"):
        gym.make("CodeGym/MBPP-v0", data_path=str(mbpp_dir), split="validation", reward_tests="all")
    env = gym.make("CodeGym/MBPP-v0", data_path=str(mbpp_dir), split="train", reward_tests="all")
    env.reset(options={"problem_id": "MBPP/601"})
    assert len(env.unwrapped.reward_test_set()) == 3
    assert codegym.load_dataset("mbpp", data_path=mbpp_dir, split="train").problems[0].training
