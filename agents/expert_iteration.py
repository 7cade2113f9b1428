"""Expert iteration: supervised fine-tuning of the policy on D+, its own successful search paths.

O1-CODER initialises its policy this way, and rStar-Math keeps the top-2 traces by Q. D+ is built
by :func:`agents.policy_data.dplus_rows` from the trees of a ``codegym bench`` run on a training
split: each row is one step of a successful path, with exactly the prompt the environment's policy
sees at that step. Training is TRL's ``SFTTrainer`` (loss on the step only, LoRA optional).

    codegym train sft RUN --out results/policy-sft      # then: --policy ct2:results/policy-sft/ct2
"""

from __future__ import annotations

from dataclasses import dataclass

from .policy_data import TreeTrainConfig, dplus_rows, train_on_trees


@dataclass
class ExpertIterationConfig(TreeTrainConfig):
    top_paths: int = 2  # successful paths kept per problem, best mean Q first
    success: float = 1.0  # the least reward-test reward of a successful path

    def __post_init__(self) -> None:
        if self.top_paths < 1:
            raise ValueError("top_paths must be at least 1")


def train_expert_iteration(config: ExpertIterationConfig) -> dict:
    return train_on_trees("sft", config, lambda run, render: dplus_rows(run, render, config.top_paths, config.success))
