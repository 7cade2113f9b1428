"""Monte Carlo tree search over reasoning steps.

Each round selects up to ``leaves_per_round`` leaves (UCT or PUCT, with a virtual loss so they
differ), expands each with ``expansion`` proposed steps in **one batched generation**, values the
new nodes (a translate step is terminal and scored on the reward tests; other steps get a greedy
translate rollout, a PRM score, or nothing), and backs the values up (mean or max). The answer is
the best verified terminal program, else the end of the most-visited path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from codegym.policy import StepPolicy

from .base import (
    Budget,
    BudgetedBackend,
    BudgetExhausted,
    EpisodeRunner,
    Solution,
    Tree,
    TreeNode,
    next_kinds,
    proposals_for,
    solution_from_tree,
    step_text,
)


@dataclass
class MCTSConfig:
    expansion: int = 3  # children per expanded leaf (k)
    translate_children: int = 2  # how many of them translate, where refine is also allowed
    leaves_per_round: int = 4  # leaves expanded together (one batch)
    c: float = 2.0  # exploration weight (O1-CODER's w)
    selection: Literal["uct", "puct"] = "uct"
    backup: Literal["mean", "max"] = "mean"
    value: Literal["rollout", "prm", "none"] = "rollout"
    temperature: float = 0.8
    max_rounds: int = 200
    seed: int = 0


def uct_score(child: TreeNode, parent_visits: int, c: float, pending: int = 0) -> float:
    visits = child.visits + pending
    if visits == 0:
        return math.inf
    return child.value_sum / visits + c * math.sqrt(math.log(max(parent_visits, 1)) / visits)


def puct_score(child: TreeNode, parent_visits: int, c: float, pending: int = 0) -> float:
    visits = child.visits + pending
    q = child.value_sum / visits if visits else 0.0
    return q + c * child.prior * math.sqrt(max(parent_visits, 1)) / (1 + visits)


def softmax_priors(logprobs: list[float | None]) -> list[float]:
    """Priors from mean token log-probabilities (uniform where the backend gives none)."""
    if not logprobs or any(lp is None for lp in logprobs):
        return [1.0 / len(logprobs)] * len(logprobs) if logprobs else []
    top = max(logprobs)
    weights = [math.exp(lp - top) for lp in logprobs]
    total = sum(weights)
    return [w / total for w in weights]


class MCTSAgent:
    """Monte Carlo tree search over steps (UCT or PUCT); answer: the best verified program."""

    name = "mcts"
    Config = MCTSConfig

    def __init__(self, policy: StepPolicy, config: MCTSConfig | None = None, prm=None):
        self.policy, self.config, self.prm = policy, config or MCTSConfig(), prm
        if self.config.value == "prm" and prm is None:
            raise ValueError("value='prm' needs a process reward model")

    # -- selection -------------------------------------------------------------------------------
    def _select(self, root: TreeNode, pending: dict[int, int]) -> TreeNode | None:
        score = uct_score if self.config.selection == "uct" else puct_score
        node = root
        while node.children and node.expanded:
            open_children = [child for child in node.children if not child.dead]
            if not open_children:
                return None
            parent_visits = node.visits + pending.get(node.id, 0)
            node = max(open_children,
                       key=lambda ch: (score(ch, parent_visits, self.config.c, pending.get(ch.id, 0)), -ch.id))
            if node.terminal:
                return node
        return node

    def _select_leaves(self, root: TreeNode) -> tuple[list[TreeNode], list[TreeNode]]:
        """Distinct expandable leaves for this round, and terminals reached (to revisit)."""
        pending: dict[int, int] = {}
        leaves: list[TreeNode] = []
        terminals: list[TreeNode] = []
        for _ in range(self.config.leaves_per_round * 2):
            node = self._select(root, pending)
            if node is None:
                break
            for ancestor in node.path():
                pending[ancestor.id] = pending.get(ancestor.id, 0) + 1  # virtual loss
            if node.terminal:
                terminals.append(node)
            elif node not in leaves:
                leaves.append(node)
            if len(leaves) >= self.config.leaves_per_round:
                break
        return leaves, terminals

    # -- expansion and evaluation ---------------------------------------------------------------------
    def _child_kinds(self, node: TreeNode, max_refine: int) -> list[str]:
        allowed = next_kinds(node.state, max_refine)
        k = self.config.expansion
        if allowed == ("define",):
            return ["define"] * k
        if allowed == ("refine", "translate"):
            translates = min(k, self.config.translate_children)
            return ["translate"] * translates + ["refine"] * (k - translates)
        return ["translate"] * k if allowed else []

    def _expand(self, tree: Tree, leaves: list[TreeNode], policy: StepPolicy, runner: EpisodeRunner,
                round_index: int) -> list[TreeNode]:
        requests: list[tuple[TreeNode, str, int]] = []
        for leaf in leaves:
            kinds = self._child_kinds(leaf, runner.env.max_refine)
            for kind in dict.fromkeys(kinds):
                requests.append((leaf, kind, kinds.count(kind)))
            leaf.expanded = True
            if not kinds:
                leaf.dead = True
        if not requests:
            return []
        proposals = proposals_for(policy, runner, [r[0].state for r in requests], [r[1] for r in requests],
                                  [r[2] for r in requests], self.config.temperature, self.config.seed + round_index)
        created: list[TreeNode] = []
        for (leaf, kind, _), batch in zip(requests, proposals):
            priors = softmax_priors([p.completion.logprob_mean if p.completion else None for p in batch])
            for proposal, prior in zip(batch, priors):
                outcome = runner.apply(leaf.state, proposal.action)
                if outcome.invalid:
                    continue
                child = tree.add(leaf, kind, step_text(proposal.action), state=outcome.state, prior=prior,
                                 terminal=outcome.terminal,
                                 tokens=proposal.completion.tokens if proposal.completion else 0)
                if outcome.terminal:
                    child.reward = outcome.reward
                    child.code = outcome.info.get("code")
                created.append(child)
        for leaf in leaves:
            if not leaf.children:
                leaf.dead = True
        return created

    def _evaluate(self, tree: Tree, nodes: list[TreeNode], policy: StepPolicy, runner: EpisodeRunner,
                  round_index: int) -> dict[int, float]:
        values = {node.id: node.reward for node in nodes if node.terminal}
        open_nodes = [node for node in nodes if not node.terminal]
        if not open_nodes:
            return values
        if self.config.value == "prm":
            for node in open_nodes:
                values[node.id] = float(self.prm.score(runner.problem, _steps(node))[-1])
        elif self.config.value == "none":
            values.update({node.id: 0.0 for node in open_nodes})
        else:
            rollouts = proposals_for(policy, runner, [n.state for n in open_nodes], ["translate"] * len(open_nodes), 1,
                                     0.0, self.config.seed + round_index)
            for node, (proposal,) in zip(open_nodes, rollouts):
                outcome = runner.apply(node.state, proposal.action)
                values[node.id] = outcome.reward if outcome.terminal else 0.0
                if outcome.terminal and not outcome.invalid:
                    rollout = tree.add(node, "translate", step_text(proposal.action), state=outcome.state,
                                       terminal=True, reward=outcome.reward, code=outcome.info.get("code"),
                                       tokens=proposal.completion.tokens if proposal.completion else 0)
                    rollout.visits, rollout.value_sum, rollout.value_max = 1, outcome.reward, outcome.reward
        return values

    def _backup(self, node: TreeNode, value: float) -> None:
        for ancestor in node.path():
            ancestor.visits += 1
            ancestor.value_sum += value
            ancestor.value_max = max(ancestor.value_max, value)
            if self.config.backup == "max":
                ancestor.value_sum = ancestor.value_max * ancestor.visits

    # -- the search ----------------------------------------------------------------------------------
    def solve(self, env, problem_id: str, budget: Budget) -> Solution:
        runner = EpisodeRunner(env, problem_id)
        backend = BudgetedBackend(self.policy.backend, budget)
        policy = StepPolicy(backend, self.policy.template, self.policy.chat)
        tree = Tree(runner.root_state)
        for round_index in range(self.config.max_rounds):
            leaves, terminals = self._select_leaves(tree.root)
            for terminal in terminals:
                self._backup(terminal, terminal.reward or 0.0)
            if not leaves:
                if not terminals:
                    break
                continue
            try:
                created = self._expand(tree, leaves, policy, runner, round_index)
                values = self._evaluate(tree, created, policy, runner, round_index)
            except BudgetExhausted:
                break
            for node in created:
                self._backup(node, values.get(node.id, 0.0))
        return solution_from_tree(problem_id, tree, self._final(tree), backend.usage, runner)

    @staticmethod
    def _final(tree: Tree) -> TreeNode | None:
        """Best verified terminal (reward, then visits, then earliest); else most-visited path."""
        terminals = [n for n in tree.nodes() if n.terminal and n.code is not None]
        if terminals:
            return max(terminals, key=lambda n: (n.reward or 0.0, n.visits, -n.id))
        node = tree.root
        while node.children:
            node = max(node.children, key=lambda n: (n.visits, -n.id))
        return node if node is not tree.root else None


def _steps(node: TreeNode):
    from codegym.envs.steps import Step

    return [Step(n.kind, n.text) for n in node.path()[1:]]
