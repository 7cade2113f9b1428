"""Process-reward labels from search trees: arithmetic by hand, formats, and no hidden test in them."""

from __future__ import annotations

import json

import gymnasium as gym
import pytest

from agents import make_agent
from agents.base import Budget
from codegym.datasets import load_custom
from codegym.llm.scripted import ScriptedBackend
from codegym.policy import StepPolicy
from codegym.prm.labels import Node, Provenance, pair_rows, point_label, stepwise_rows, terminal_rewards

PROVENANCE = Provenance("train", "public", "scripted")


def _node(id, kind, text, visits, value, children=(), reward=None, terminal=False):
    return Node(id, kind, text, visits, value, reward, terminal, list(children))


def _tree() -> Node:
    """root -> define A (Q 0.75) -> translate a1 (1.0, pass), a2 (0.5); define B (Q 0.1) -> b1 (0.0)."""
    a = _node(1, "define", "plan A: sort then scan", 4, 0.75, [
        _node(3, "translate", "def f(): return 1", 2, 1.0, reward=1.0, terminal=True),
        _node(4, "translate", "def f(x):\n    y = x + 2\n    return y", 2, 0.5, reward=0.5, terminal=True)])
    b = _node(2, "define", "plan B: brute force every pair", 2, 0.1, [
        _node(5, "translate", "def f(): return 0", 1, 0.0, reward=0.0, terminal=True)])
    unvisited = _node(6, "define", "plan C", 0, 0.0)
    return _node(0, "root", "", 6, 0.5, [a, b, unvisited])


def test_point_labels_by_hand():
    root = _tree()
    a, b, c = root.children
    assert terminal_rewards(a) == [1.0, 0.5] and terminal_rewards(c) == []
    assert point_label(a, "q") == 0.75 and point_label(c, "q") is None  # never visited: no evidence
    assert point_label(a, "tree_mc_soft") == 0.5 and point_label(a, "tree_mc_hard") == 1.0
    assert point_label(b, "tree_mc_soft") == 0.0 and point_label(b, "tree_mc_hard") == 0.0
    rows = stepwise_rows(root, "PROBLEM", "p", PROVENANCE, "q")
    assert [r["labels"] for r in rows] == [[0.75], [0.75, 1.0], [0.75, 0.5], [0.1], [0.1, 0.0]]
    assert rows[1]["completions"] == ["[define]\nplan A: sort then scan", "[translate]\n```python\ndef f(): return 1\n```"]
    assert {k: rows[0][k] for k in ("problem_id", "split", "label_source", "reward_tests", "policy")} == {
        "problem_id": "p", "split": "train", "label_source": "q", "reward_tests": "public", "policy": "scripted"}
    with pytest.raises(ValueError, match="unknown label source"):
        point_label(a, "vibes")


def test_pairs_need_margin_and_distinct_text():
    root = _tree()
    pairs = pair_rows(root, "PROBLEM", "p", PROVENANCE, margin=0.5)
    # at the root: A (0.75) against B (0.1) passes the margin; at A: a1 (1.0) against a2 (0.5) does too
    assert len(pairs) == 2
    assert "plan A" in pairs[0]["chosen"] and "plan B" in pairs[0]["rejected"]
    assert "return 1" in pairs[1]["chosen"] and "y = x + 2" in pairs[1]["rejected"]
    assert pairs[0]["margin"] == pytest.approx(0.65) and pairs[1]["prompt"].endswith("plan A: sort then scan")
    assert len(pair_rows(root, "P", "p", PROVENANCE, margin=0.6)) == 1  # a1 vs a2 is only 0.5 apart
    assert len(pair_rows(root, "P", "p", PROVENANCE, margin=0.5, min_distance=0.45)) == 1  # a1, a2 too alike


def test_rows_load_into_datasets(tmp_path):
    datasets = pytest.importorskip("datasets")
    root = _tree()
    stepwise = datasets.Dataset.from_list(stepwise_rows(root, "P", "p", PROVENANCE))
    assert stepwise.column_names[:3] == ["prompt", "completions", "labels"]
    pairs = datasets.Dataset.from_list(pair_rows(root, "P", "p", PROVENANCE))
    assert {"prompt", "chosen", "rejected", "margin"} <= set(pairs.column_names)


def _records(hidden_expected: str) -> list[dict]:
    return [{"id": "d", "statement": "Double x.", "entry_point": "double",
             "public_tests": [{"type": "call", "args": "[2]", "expected": "4"}],
             "hidden_tests": [{"type": "call", "args": "[3]", "expected": hidden_expected}]}]


def test_poisoned_hidden_tests_change_no_label(tmp_path, sandbox):
    """Labels come from reward-test verdicts in the tree: poisoning the hidden tests changes nothing."""
    def script(prompt, seed):
        if prompt.endswith("```python\n"):
            return "def double(x):\n    return x * 2\n" if seed % 2 else "def double(x):\n    return 4\n"
        return " plan %d" % seed

    labels = []
    for expected in ("6", "-1"):  # the right hidden answer, then a poisoned one
        path = tmp_path / ("%s.jsonl" % expected)
        path.write_text("\n".join(json.dumps(r) for r in _records(expected)) + "\n")
        problems = load_custom(path).problems
        env = gym.make("CodeGym/Custom-v0", problems=problems, sandbox=sandbox)
        agent = make_agent("mcts", StepPolicy(ScriptedBackend(script), "pseudocode", chat=False), seed=0)
        tree = json.loads(agent.solve(env, "d", Budget(tokens=300)).tree.to_json())
        root = Node.from_dict(tree["root"])
        labels.append([stepwise_rows(root, "P", "d", PROVENANCE, s) for s in ("q", "tree_mc_soft")]
                      + [pair_rows(root, "P", "d", PROVENANCE, margin=0.1)])
    assert labels[0] == labels[1] and labels[0][0]


def test_prm_data_from_a_bench_run(tmp_path):
    from codegym.bench import BenchConfig, run_bench
    from codegym.cli import main

    def scripted(prompt, seed):
        if prompt.endswith("```python\n"):
            good = "def gcd(a, b):\n    while b:\n        a, b = b, a % b\n    return a\n"
            return good if seed % 2 else "def gcd(a, b): return 1\n"
        return " plan %d" % seed

    run = tmp_path / "run"
    run_bench(BenchConfig(agents=["mcts"], budget_tokens=[300], problems=["starter/gcd", "starter/fizzbuzz"],
                          out=str(run), aspr_samples=0, cache=False), progress=False, backend=ScriptedBackend(scripted))
    assert main(["prm", "data", str(run), "--out", str(tmp_path / "labels"), "--margin", "0.1"]) == 0
    rows = [json.loads(line) for line in (tmp_path / "labels" / "stepwise_q.jsonl").read_text().splitlines()]
    assert rows and {r["problem_id"] for r in rows} == {"starter/gcd", "starter/fizzbuzz"}
    assert all(r["reward_tests"] == "public" and len(r["labels"]) == len(r["completions"]) for r in rows)
    assert main(["prm", "data", str(tmp_path / "nothing"), "--out", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()


def test_monte_carlo_rollout_labels(sandbox):
    from codegym.datasets import load_dataset
    from codegym.prm.labels import rollout_labels, rollout_rows

    good = "def gcd(a, b):\n    while b:\n        a, b = b, a % b\n    return a\n"

    def script(prompt, seed):  # a translate passes only after the define step "plan 1"
        if prompt.endswith("```python\n"):
            return good if "plan 1" in prompt else "def gcd(a, b):\n    return 1\n"
        return " plan %d" % (seed % 3)

    problem = load_dataset("starter").get("starter/gcd")
    env = gym.make("CodeGym/Starter-v0", problems=[problem], sandbox=sandbox)
    policy = StepPolicy(ScriptedBackend(script), "pseudocode", chat=False)
    tree = make_agent("mcts", policy, seed=0, expansion=3).solve(env, problem.id, Budget(tokens=400)).tree
    root = Node.from_dict(json.loads(tree.to_json())["root"])
    labels = rollout_labels(root, problem, policy, sandbox, list(problem.public_tests), k=3)
    defines = [n for n in root.children if n.kind == "define"]
    assert {"plan 1" in n.text for n in defines} == {True, False}
    for node in defines:
        assert labels[node.id] == ((1.0, 1.0) if "plan 1" in node.text else (0.0, 0.0))
    translates = [c for n in defines for c in n.children if c.kind == "translate"]
    assert translates and all(labels[t.id][1] == float("return a" in t.text) for t in translates)
    rows = rollout_rows(root, "P", problem.id, PROVENANCE, labels)
    assert rows["mc_soft"] and len(rows["mc_soft"]) == len(rows["mc_hard"])
