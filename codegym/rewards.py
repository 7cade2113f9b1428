"""Reward arithmetic, kept apart from the environment so trainers and agents reuse it.

Terminal reward on the *reward tests* (public + generated, never hidden)::

    continuous:  R = alpha * compiled + (1 - alpha) * pass_fraction
    binary:      R = 1 if pass_fraction >= tau_pass, 0 if pass_fraction <= tau_fail,
                 otherwise the continuous value (the undecided band of O1-CODER's Algorithm 1)

Optional episode-level aggregation with process rewards r_1..r_m (O1-CODER section 4)::

    phi = alpha(t) * R + (1 - alpha(t)) * (1/m) * sum_j gamma**j * r_j
    alpha(t) = max(alpha_min, alpha_start - alpha_decay * t)     (t: training iteration)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class RewardConfig:
    """How the environment turns test outcomes and process scores into rewards."""

    alpha: float = 0.0
    mode: Literal["continuous", "binary"] = "continuous"
    tau_pass: float = 1.0
    tau_fail: float = 0.0
    invalid_penalty: float = -0.1
    aggregate: bool = False
    gamma: float = 0.9
    alpha_start: float = 1.0
    alpha_decay: float = 0.01
    alpha_min: float = 0.1

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError("alpha must be in [0, 1]")
        if self.mode not in ("continuous", "binary"):
            raise ValueError("mode must be 'continuous' or 'binary'")
        if not 0.0 <= self.tau_fail <= self.tau_pass <= 1.0:
            raise ValueError("need 0 <= tau_fail <= tau_pass <= 1")
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError("gamma must be in (0, 1]")


def terminal_reward(compiled: bool, pass_fraction: float, config: RewardConfig) -> float:
    continuous = config.alpha * float(compiled) + (1.0 - config.alpha) * pass_fraction
    if config.mode == "continuous":
        return continuous
    if pass_fraction >= config.tau_pass:
        return 1.0
    if pass_fraction <= config.tau_fail:
        return 0.0
    return continuous


def aggregation_weight(training_step: int, config: RewardConfig) -> float:
    """alpha(t): the weight of the terminal reward, decaying linearly to alpha_min."""
    return max(config.alpha_min, config.alpha_start - config.alpha_decay * training_step)


def aggregate_reward(terminal: float, process_rewards: Sequence[float], training_step: int,
                     config: RewardConfig) -> float:
    """phi = alpha(t) R + (1 - alpha(t)) (1/m) sum_j gamma^j r_j  (j counted from 0)."""
    weight = aggregation_weight(training_step, config)
    if not process_rewards:
        return terminal
    discounted = sum(config.gamma ** j * r for j, r in enumerate(process_rewards)) / len(process_rewards)
    return weight * terminal + (1.0 - weight) * discounted
