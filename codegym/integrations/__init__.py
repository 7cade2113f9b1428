"""Thin adapters that plug codegym's reward into distributed RL engines (verl, OpenRLHF).

Both score with :class:`codegym.rewards.CodeReward`, the reward TRL's trainers use: the program in a
completion runs in the sandbox on the reward tests of the problem it names. Which problems: the
environment and split in ``CODEGYM_ENV`` (default ``CodeGym/MBPP-v0``), ``CODEGYM_DATA_PATH`` and
``CODEGYM_SPLIT`` (default ``train``), loaded once per process; ``CODEGYM_REWARD_TESTS`` picks the
tests (default ``public``). A row names its problem by id: verl's ``ground_truth``, OpenRLHF's
``label``. The split must be marked for training (MBPP train); ``CODEGYM_MARK_TRAINING=1`` marks
custom data whose split is not, and is never meant for an evaluation split.
"""

from __future__ import annotations

import os
from functools import cache


@cache
def reward_for(env: str, data_path: str | None, split: str | None, reward_tests: str, mark_training: bool = False):
    """The CodeReward of a training split's problems (an evaluation split is refused)."""
    from ..envs import env_dataset
    from ..rewards import CodeReward

    options = {k: v for k, v in (("data_path", data_path), ("split", split)) if v}
    problems = env_dataset(env, **options, **({"training": True} if mark_training else {})).problems
    evaluation = [p.id for p in problems if not p.training]
    if evaluation:
        raise ValueError("%s split %r is not a training split (%d problems, first %s): RL engines train on one"
                         % (env, split, len(evaluation), evaluation[0]))
    return CodeReward(problems, reward_tests=reward_tests)


def configured_reward():
    """The CodeReward of the environment variables above."""
    return reward_for(os.environ.get("CODEGYM_ENV", "CodeGym/MBPP-v0"), os.environ.get("CODEGYM_DATA_PATH"),
                      os.environ.get("CODEGYM_SPLIT", "train"), os.environ.get("CODEGYM_REWARD_TESTS", "public"),
                      os.environ.get("CODEGYM_MARK_TRAINING") == "1")
