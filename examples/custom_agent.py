"""A plug-in search agent in its own module, benchmarked exactly like a built-in:

    codegym bench --agents greedy --agent sample3=examples/custom_agent.py:SampleThenVote:samples=3

Sample ``samples`` define -> translate trajectories from the root, then commit to the program with
the highest reward on the public tests (ties: the first).
"""

from __future__ import annotations

from dataclasses import dataclass

from agents import Budget, BudgetedBackend, EpisodeRunner, Solution, proposals_for
from codegym.policy import StepPolicy


@dataclass
class SampleThenVoteConfig:
    samples: int = 3
    temperature: float = 0.8
    seed: int = 0  # the benchmark sets it to each --seeds value


class SampleThenVote:
    """Sample a few trajectories; keep the best-rewarded program."""

    name = "sample-then-vote"
    Config = SampleThenVoteConfig

    def __init__(self, policy: StepPolicy, config: SampleThenVoteConfig | None = None, prm=None):
        self.policy, self.config = policy, config or SampleThenVoteConfig()
        if self.config.samples < 1:
            raise ValueError("samples must be at least 1")

    def solve(self, env, problem_id: str, budget: Budget) -> Solution:
        runner = EpisodeRunner(env, problem_id)  # branches the environment, counts actions
        backend = BudgetedBackend(self.policy.backend, budget)  # never lets usage pass the budget
        policy = StepPolicy(backend, self.policy.template, self.policy.chat)
        n, seed = self.config.samples, self.config.seed
        defines = proposals_for(policy, runner, [runner.root_state], ["define"], n, self.config.temperature, seed)[0]
        states = [runner.apply(runner.root_state, p.action).state for p in defines]
        translates = proposals_for(policy, runner, states, ["translate"] * n, 1, 0.0, seed)
        finished = [(runner.apply(state, props[0].action), state) for state, props in zip(states, translates)]
        scored = [(o.reward, o.info.get("code", ""), o.state) for o, _ in finished if o.terminal and o.info.get("code")]
        if not scored:
            return Solution(problem_id, "", [], backend.usage, actions=runner.actions, sandbox_runs=runner.sandbox_runs)
        reward, code, state = max(scored, key=lambda item: item[0])
        return Solution(problem_id, code, [tuple(step) for step in state["steps"]], backend.usage,
                        candidates=[c for _, c, _ in scored], reward=reward, invalid_actions=runner.invalid,
                        actions=runner.actions, sandbox_runs=runner.sandbox_runs)
