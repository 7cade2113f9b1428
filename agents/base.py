"""What every agent shares: the protocol, budgets, the search tree, and episode helpers.

An agent gets an environment (the world model: ``get_state``/``set_state`` branch it, a translate
step scores a program on the *reward* tests), a problem id and a compute budget, and returns a
:class:`Solution`. It never sees hidden tests: the benchmark judges the final program afterwards.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

from codegym.envs.steps import format_trajectory, parse_step
from codegym.llm.base import Backend, GenerationOutput, GenerationRequest, Usage, WrappedBackend
from codegym.policy import Proposal, StepPolicy


class BudgetExhausted(Exception):
    """The next generation call would exceed the budget; the agent must answer now."""


@dataclass(frozen=True)
class Budget:
    """A compute budget in generated tokens and/or LLM calls (None: unlimited)."""

    tokens: int | None = None
    calls: int | None = None

    def __post_init__(self) -> None:
        if self.tokens is None and self.calls is None:
            raise ValueError("a budget needs tokens, calls or both")
        if (self.tokens is not None and self.tokens < 1) or (self.calls is not None and self.calls < 1):
            raise ValueError("budgets must be positive")


class BudgetedBackend(WrappedBackend):
    """Wraps a backend so that usage can never exceed the budget: each request's
    ``max_new_tokens`` is clamped to what is left (shared across the call's samples), and a call
    that could not produce at least ``min_tokens`` per sample is refused with BudgetExhausted."""

    def __init__(self, inner: Backend, budget: Budget, min_tokens: int = 8):
        super().__init__(inner)
        self.budget, self.min_tokens = budget, min_tokens

    def tokens_left(self) -> int | None:
        return None if self.budget.tokens is None else self.budget.tokens - self.usage.generated_tokens

    def calls_left(self) -> int | None:
        return None if self.budget.calls is None else self.budget.calls - self.usage.calls

    def generate(self, requests: list[GenerationRequest]) -> GenerationOutput:
        calls_left, tokens_left = self.calls_left(), self.tokens_left()
        if calls_left is not None and calls_left < 1:
            raise BudgetExhausted("no LLM calls left")
        if tokens_left is not None:
            samples = sum(r.n for r in requests)
            wanted = sum(r.n * r.max_new_tokens for r in requests)
            if wanted > tokens_left:
                per_sample = tokens_left // samples
                if per_sample < self.min_tokens:
                    raise BudgetExhausted("%d tokens left for %d samples" % (tokens_left, samples))
                requests = [replace(r, max_new_tokens=min(r.max_new_tokens, per_sample)) for r in requests]
        return self._record(self.inner.generate(requests))


@dataclass
class TreeNode:
    """A node of a search tree: one step. Exported to JSON for ``codegym tree view``."""

    id: int
    kind: str
    text: str
    state: dict | None = None
    parent: TreeNode | None = field(default=None, repr=False)
    children: list[TreeNode] = field(default_factory=list, repr=False)
    visits: int = 0
    value_sum: float = 0.0
    value_max: float = float("-inf")
    prior: float = 1.0
    reward: float | None = None  # terminal reward on the reward tests
    terminal: bool = False
    code: str | None = None
    chosen: bool = False
    tokens: int = 0
    expanded: bool = False
    dead: bool = False  # nothing more can grow below it

    @property
    def value(self) -> float:
        return self.value_sum / self.visits if self.visits else 0.0

    def path(self) -> list[TreeNode]:
        node, nodes = self, []
        while node is not None:
            nodes.append(node)
            node = node.parent
        return nodes[::-1]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "text": self.text, "visits": self.visits,
                "value": round(self.value, 6), "prior": round(self.prior, 6), "reward": self.reward,
                "terminal": self.terminal, "chosen": self.chosen, "tokens": self.tokens,
                "children": [child.to_dict() for child in self.children]}


class Tree:
    """Owns node ids; the root is the empty trajectory."""

    def __init__(self, root_state: dict):
        self._ids = itertools.count()
        self.root = TreeNode(next(self._ids), "root", "", state=root_state)

    def add(self, parent: TreeNode, kind: str, text: str, **fields) -> TreeNode:
        node = TreeNode(next(self._ids), kind, text, parent=parent, **fields)
        parent.children.append(node)
        return node

    def nodes(self) -> list[TreeNode]:
        out, stack = [], [self.root]
        while stack:
            node = stack.pop()
            out.append(node)
            stack.extend(reversed(node.children))
        return out

    def mark_chosen(self, leaf: TreeNode) -> None:
        for node in leaf.path():
            node.chosen = True

    def to_json(self, **meta) -> str:
        return json.dumps({"meta": meta, "root": self.root.to_dict()}, indent=1)


@dataclass
class Solution:
    """An agent's answer: the program, the chosen steps, the tree (if any), the compute used."""

    problem_id: str
    code: str
    trajectory: list[tuple[str, str]]
    usage: Usage
    tree: Tree | None = None
    candidates: list[str] = field(default_factory=list)
    reward: float | None = None  # on the reward tests, as the agent saw it
    invalid_actions: int = 0
    actions: int = 0
    sandbox_runs: int = 0


def solution_from_tree(problem_id: str, tree: Tree, final: TreeNode | None, usage: Usage,
                       runner: EpisodeRunner) -> Solution:
    """The answer of a tree search: ``final``'s program and path; every verified program is a candidate."""
    if final is not None:
        tree.mark_chosen(final)
    steps = [(n.kind, n.text) for n in final.path()[1:]] if final is not None else []
    terminals = [n for n in tree.nodes() if n.terminal and n.code]
    return Solution(problem_id, (final.code or "") if final else "", steps, usage, tree=tree,
                    reward=final.reward if final else None, candidates=[n.code for n in terminals],
                    invalid_actions=runner.invalid, actions=runner.actions, sandbox_runs=runner.sandbox_runs)


@runtime_checkable
class Agent(Protocol):
    """Implement ``solve`` and register the class (``agents.register``) to benchmark it."""

    name: str

    def solve(self, env, problem_id: str, budget: Budget) -> Solution: ...


@dataclass
class Outcome:
    """The result of applying one step to a saved state."""

    state: dict
    reward: float
    terminal: bool
    invalid: str | None
    info: dict


class EpisodeRunner:
    """Branches an environment: apply a step to any saved state, count what it cost."""

    def __init__(self, env, problem_id: str):
        self.env = env.unwrapped if hasattr(env, "unwrapped") else env
        observation, _ = self.env.reset(options={"problem_id": problem_id})
        self.problem = self.env.problem
        self.problem_text = observation["problem"]  # what every prompt of this episode shows
        self.root_state = self.env.get_state()
        self.actions = self.invalid = self.sandbox_runs = 0

    @property
    def stdio(self) -> bool:
        return self.problem.kind == "stdio"

    def apply(self, state: dict, action: str) -> Outcome:
        self.env.set_state(state)
        _, reward, terminated, truncated, info = self.env.step(action)
        self.actions += 1
        if info.get("invalid_action"):
            self.invalid += 1
        if "code" in info:
            self.sandbox_runs += 1
        return Outcome(self.env.get_state(), float(reward), bool(terminated or truncated), info.get("invalid_action"), info)


def next_kinds(state: dict, max_refine: int) -> tuple[str, ...]:
    """Which kinds may follow this state (mirrors the environment's order rule)."""
    if state["done"]:
        return ()
    steps = state["steps"]
    if not steps:
        return ("define",)
    refines = sum(kind == "refine" for kind, _ in steps)
    return ("refine", "translate") if refines < max_refine else ("translate",)


def proposals_for(policy: StepPolicy, runner: EpisodeRunner, states: list[dict], kinds: list[str],
                  n: int | list[int], temperature: float, seed: int) -> list[list[Proposal]]:
    """One batched generation: ``n`` (or ``n[i]``) proposals of ``kinds[i]`` after ``states[i]``."""
    items = [(runner.problem_text, format_trajectory(state["steps"]), kind, runner.stdio)
             for state, kind in zip(states, kinds)]
    return policy.propose_many(items, n=n, temperature=temperature, seed=seed)


def step_text(action: str) -> str:
    try:
        return parse_step(action).text
    except ValueError:
        return action

