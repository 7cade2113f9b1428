"""Gymnasium environments; importing :mod:`codegym` registers them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import gymnasium as gym

from .code_env import CodeReasoningEnv, render_problem
from .steps import STEP_KINDS, Step, StepParseError, extract_code, format_step, format_trajectory, parse_step

if TYPE_CHECKING:
    from ..datasets import Dataset
    from ..execution import Sandbox
    from ..judge import Judge

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


def env_spec(env_id: str) -> gym.envs.registration.EnvSpec:
    """The registration of ``env_id``; an unknown id is a one-line ValueError naming the known ones."""
    register_envs()
    if env_id not in gym.registry:
        known = sorted(name for name in gym.registry if name.startswith("CodeGym/"))
        raise ValueError("unknown env id %r; registered codegym ids: %s" % (env_id, ", ".join(known)))
    return gym.spec(env_id)


_DATASET_OPTIONS = ("data_path", "split", "on_error", "training")


def env_dataset(env_id: str, **options: Any) -> Dataset:
    """The dataset behind a registered environment, loaded with gym.make's dataset options
    (``data_path``, ``split``, ``on_error``, ``training``)."""
    from ..datasets import load_dataset

    settings = {**env_spec(env_id).kwargs, **options}
    unknown = sorted(set(options) - set(_DATASET_OPTIONS))
    if unknown:
        raise ValueError("not a dataset option: %s" % ", ".join(unknown))
    return load_dataset(settings.get("dataset", "starter"), **{k: settings[k] for k in _DATASET_OPTIONS if k in settings})


# Only data without splits of its own may be marked for training: MBPP has training splits, and
# HumanEval is an evaluation set.
MARKABLE_ENVS = ("CodeGym/Custom-v0", "CodeGym/Starter-v0")


def training_problems(env: str, data_path: str | None, split: str | None, mark_training: bool = False) -> list:
    """A training split's problems (self-play, the RL-engine adapters, ``export-rl``); an evaluation
    split is refused, and so is marking the data of an environment with splits of its own."""
    if mark_training and env not in MARKABLE_ENVS:
        raise ValueError("%s has splits of its own: marking for training is only for custom data (%s)"
                         % (env, ", ".join(MARKABLE_ENVS)))
    options = {k: v for k, v in (("data_path", data_path), ("split", split)) if v}
    problems = env_dataset(env, **options, **({"training": True} if mark_training else {})).problems
    evaluation = [p.id for p in problems if not p.training]
    if evaluation:
        raise ValueError("%s split %r is not a training split (%d problems, first %s): training needs one"
                         % (env, split, len(evaluation), evaluation[0]))
    return problems


def make_with_judge(env_id: str, sandbox: Sandbox | None = None, **kwargs: Any) -> tuple[gym.Env, Judge]:
    """``gym.make(env_id, **kwargs)`` and, apart from it, the judge of its problems' final answers:
    the dataset loads once, the environment gets its public problems, the judge its answer keys.
    Give the environment to agents and keep the judge. The problems load with ``training=False``
    unless given: an evaluation's problems carry no references or full test lists."""
    options = {k: kwargs.pop(k) for k in _DATASET_OPTIONS if k in kwargs}
    dataset = env_dataset(env_id, **{"training": False, **options})
    env = gym.make(env_id, problems=dataset.problems, sandbox=sandbox, **kwargs)
    return env, dataset.judge(sandbox)


__all__ = ["ENV_IDS", "STEP_KINDS", "CodeReasoningEnv", "Step", "StepParseError", "extract_code", "format_step",
           "env_dataset", "env_spec", "training_problems", "format_trajectory", "make_with_judge", "parse_step", "register_envs",
           "render_problem"]
