"""DPO on step pairs: at one prefix of a search tree, the sibling step with the higher Q is
preferred over the lower one (margin and text-distance filters, as for the PRM's pairs).

Rows come from :func:`agents.policy_data.step_pair_rows` on a ``codegym bench`` run of a training
split; the prompt is exactly the environment's step request. Training is TRL's ``DPOTrainer``
(the reference model is the starting policy; LoRA optional).

    codegym train dpo RUN --model results/policy-sft/final --out results/policy-dpo
"""

from __future__ import annotations

from dataclasses import dataclass

from .policy_data import TreeTrainConfig, step_pair_rows, train_on_trees


@dataclass
class StepDPOConfig(TreeTrainConfig):
    margin: float = 0.5  # least Q difference between the chosen and the rejected step
    min_distance: float = 0.1  # least text distance (1 - difflib ratio) between them
    beta: float = 0.1  # DPO's KL strength

    def __post_init__(self) -> None:
        if not 0 <= self.margin <= 1 or not 0 <= self.min_distance <= 1:
            raise ValueError("margin and min_distance are in [0, 1]")


def train_step_dpo(config: StepDPOConfig) -> dict:
    return train_on_trees("dpo", config, lambda run, render: step_pair_rows(run, render, config.margin, config.min_distance))
