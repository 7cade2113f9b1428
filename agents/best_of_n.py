"""Best-of-N: sample trajectories until the budget is spent, then pick one with a selector."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from codegym.policy import StepPolicy

from .base import Budget, BudgetedBackend, EpisodeRunner, Solution
from .greedy import play_trajectories
from .selectors import SELECTORS, Candidate


@dataclass
class BestOfNConfig:
    n: int | None = None  # trajectories; None: as many as the budget allows
    batch: int = 8  # trajectories sampled together
    refines: int = 0
    temperature: float = 0.8
    selector: str = "public"
    prm_aggregate: Literal["mean", "min", "last"] = "mean"  # with selector="prm"
    seed: int = 0


class BestOfNAgent:
    """Sample define -> translate trajectories until the budget is spent; a selector picks the answer."""

    name = "best-of-n"
    Config = BestOfNConfig

    def __init__(self, policy: StepPolicy, config: BestOfNConfig | None = None, prm=None):
        self.policy, self.config, self.prm = policy, config or BestOfNConfig(), prm
        if self.config.selector == "prm":
            if prm is None:
                raise ValueError("the prm selector needs a process reward model")
        elif self.config.selector not in SELECTORS:
            raise ValueError("unknown selector %r; known: %s, prm" % (self.config.selector, ", ".join(SELECTORS)))

    def _select(self, candidates: list[Candidate], runner: EpisodeRunner) -> int:
        from .selectors import by_prm

        if self.config.selector == "prm":
            select = by_prm(self.prm, self.config.prm_aggregate)
        else:
            select = SELECTORS[self.config.selector]
        return select(candidates, runner.problem, runner.env.sandbox)

    def solve(self, env, problem_id: str, budget: Budget) -> Solution:
        config = self.config
        runner = EpisodeRunner(env, problem_id)
        backend = BudgetedBackend(self.policy.backend, budget)
        policy = StepPolicy(backend, self.policy.template, self.policy.chat)
        kinds = ["define"] + ["refine"] * config.refines + ["translate"]
        candidates: list[Candidate] = []
        round_index = 0
        while config.n is None or len(candidates) < config.n:
            size = config.batch if config.n is None else min(config.batch, config.n - len(candidates))
            left = backend.tokens_left()
            if left is not None:  # no more trajectories at once than the budget can finish
                per_trajectory = sum(policy.template.max_new_tokens.get(kind, 256) for kind in kinds)
                size = max(1, min(size, left // per_trajectory))
            tokens_before = backend.usage.generated_tokens
            finals = play_trajectories(policy, runner, size, kinds, config.temperature, config.seed + 1000 * round_index)
            round_index += 1
            candidates += [Candidate(code, reward, [tuple(s) for s in state["steps"]])
                           for state, reward, code in finals if code is not None]
            if backend.usage.generated_tokens == tokens_before:
                break  # the budget is spent
        if not candidates:
            return Solution(problem_id, "", [], backend.usage, invalid_actions=runner.invalid, actions=runner.actions,
                            sandbox_runs=runner.sandbox_runs)
        best = candidates[self._select(candidates, runner)]
        return Solution(problem_id, best.code, best.steps, backend.usage, reward=best.reward,
                        candidates=[c.code for c in candidates], invalid_actions=runner.invalid,
                        actions=runner.actions, sandbox_runs=runner.sandbox_runs)
