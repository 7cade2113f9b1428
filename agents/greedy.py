"""Greedy: one trajectory at temperature 0 (define, ``refines`` x refine, translate)."""

from __future__ import annotations

from dataclasses import dataclass

from codegym.policy import StepPolicy

from .base import Budget, BudgetedBackend, BudgetExhausted, EpisodeRunner, Solution, proposals_for


@dataclass
class GreedyConfig:
    refines: int = 1
    seed: int = 0


def play_trajectories(policy: StepPolicy, runner: EpisodeRunner, count: int, kinds: list[str], temperature: float,
                      seed: int) -> list[tuple[dict, float | None, str | None]]:
    """``count`` trajectories in lock-step, one batched generation per step kind.
    Returns (final state, terminal reward or None, code or None) for each. If the budget runs
    out before the translate step, the remaining tokens go to translating what exists."""
    states = [runner.root_state] * count
    finals: list[tuple[dict, float | None, str | None]] = [(s, None, None) for s in states]
    for position, kind in enumerate(kinds):
        if kind == "refine" and isinstance(policy.backend, BudgetedBackend):
            left = policy.backend.tokens_left()
            reserve = policy.template.max_new_tokens.get("translate", 256) * count
            if left is not None and left - reserve < 16 * count:
                continue  # keep the rest for the code
        # identical trajectories share one request with n samples (distinct sample indices)
        groups: dict[str, list[int]] = {}
        for index, state in enumerate(states):
            groups.setdefault(repr(state["steps"]), []).append(index)
        members = list(groups.values())
        try:
            batches = proposals_for(policy, runner, [states[m[0]] for m in members], [kind] * len(members),
                                    [len(m) for m in members], temperature, seed + position)
        except BudgetExhausted:
            if kind == "translate":
                break
            continue
        assigned = [(index, proposal) for group, proposals in zip(members, batches)
                    for index, proposal in zip(group, proposals)]
        for index, proposal in assigned:
            outcome = runner.apply(states[index], proposal.action)
            if outcome.invalid:
                continue
            states[index] = outcome.state
            if outcome.terminal:
                finals[index] = (outcome.state, outcome.reward, outcome.info.get("code"))
    return finals


class GreedyAgent:
    """One trajectory: define, ``refines`` refine steps, translate, each the greedy (temperature 0) step."""

    name = "greedy"
    Config = GreedyConfig

    def __init__(self, policy: StepPolicy, config: GreedyConfig | None = None, prm=None):
        self.policy, self.config = policy, config or GreedyConfig()

    def solve(self, env, problem_id: str, budget: Budget) -> Solution:
        runner = EpisodeRunner(env, problem_id)
        backend = BudgetedBackend(self.policy.backend, budget)
        policy = StepPolicy(backend, self.policy.template, self.policy.chat)
        kinds = ["define"] + ["refine"] * self.config.refines + ["translate"]
        (state, reward, code), = play_trajectories(policy, runner, 1, kinds, 0.0, self.config.seed)
        return Solution(problem_id, code or "", [tuple(s) for s in state["steps"]], backend.usage, reward=reward,
                        candidates=[code] if code else [], invalid_actions=runner.invalid, actions=runner.actions,
                        sandbox_runs=runner.sandbox_runs)
