"""Step-level beam search: keep the ``width`` best partial trajectories, expand each with
``expansion`` proposals in one batch, score by PRM or by a greedy translate rollout."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from codegym.policy import StepPolicy

from .base import Budget, BudgetedBackend, BudgetExhausted, EpisodeRunner, Solution, Tree, TreeNode, solution_from_tree
from .mcts import MCTSAgent, MCTSConfig


@dataclass
class BeamConfig:
    width: int = 2
    expansion: int = 3
    translate_children: int = 1
    score: Literal["rollout", "prm"] = "rollout"
    temperature: float = 0.8
    seed: int = 0


class BeamAgent:
    """Step-level beam search: keep the ``width`` best prefixes by rollout or PRM score."""

    name = "beam"
    Config = BeamConfig

    def __init__(self, policy: StepPolicy, config: BeamConfig | None = None, prm=None):
        self.policy, self.config, self.prm = policy, config or BeamConfig(), prm
        # expansion, valuation and tree bookkeeping are shared with MCTS; only selection differs
        self._tools = MCTSAgent(policy, MCTSConfig(expansion=self.config.expansion,
                                                   translate_children=self.config.translate_children,
                                                   value=self.config.score, temperature=self.config.temperature,
                                                   seed=self.config.seed), prm)

    def solve(self, env, problem_id: str, budget: Budget) -> Solution:
        runner = EpisodeRunner(env, problem_id)
        backend = BudgetedBackend(self.policy.backend, budget)
        policy = StepPolicy(backend, self.policy.template, self.policy.chat)
        tree = Tree(runner.root_state)
        beam: list[TreeNode] = [tree.root]
        depth = 0
        while beam:
            try:
                created = self._tools._expand(tree, beam, policy, runner, depth)
                values = self._tools._evaluate(tree, created, policy, runner, depth)
            except BudgetExhausted:
                break
            for node in created:
                node.visits, node.value_sum = 1, values.get(node.id, 0.0)
            open_nodes = sorted((n for n in created if not n.terminal), key=lambda n: (-n.value, n.id))
            beam = open_nodes[: self.config.width]
            depth += 1
        return solution_from_tree(problem_id, tree, MCTSAgent._final(tree), backend.usage, runner)
