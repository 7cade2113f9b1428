"""Gymnasium environments; importing :mod:`codegym` registers them."""

from __future__ import annotations

import gymnasium as gym

from .code_env import CodeReasoningEnv, render_problem
from .steps import STEP_KINDS, Step, StepParseError, extract_code, format_step, format_trajectory, parse_step

ENV_IDS = {
    "CodeGym/Starter-v0": {"dataset": "starter"},
    "CodeGym/HumanEval-v0": {"dataset": "humaneval"},
    "CodeGym/MBPP-v0": {"dataset": "mbpp"},
    "CodeGym/Custom-v0": {"dataset": "custom"},
}


def register_envs() -> None:
    for env_id, kwargs in ENV_IDS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point="codegym.envs.code_env:CodeReasoningEnv", kwargs=kwargs,
                         disable_env_checker=False)


__all__ = ["ENV_IDS", "STEP_KINDS", "CodeReasoningEnv", "Step", "StepParseError", "extract_code", "format_step",
           "format_trajectory",
           "parse_step", "register_envs", "render_problem"]
