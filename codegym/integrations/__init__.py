"""Thin adapters that plug codegym's reward into distributed RL engines (verl, OpenRLHF).

Both score with :class:`codegym.rewards.CodeReward`, the reward TRL's trainers use: the program in a
completion runs in the sandbox on the reward tests of the problem it names. Which problems: the
environment and split in ``CODEGYM_ENV`` (default ``CodeGym/MBPP-v0``), ``CODEGYM_DATA_PATH`` and
``CODEGYM_SPLIT`` (default ``train``), loaded once per process; ``CODEGYM_REWARD_TESTS`` picks the
tests (default ``public``). A row names its problem by id: verl's ``ground_truth``, OpenRLHF's
``label``. Completions are free chat answers scored on their first fenced code block
(``CODEGYM_COMPLETIONS=step`` scores codegym translate steps instead), and
:func:`rl_prompt_rows` (``codegym datasets export-rl``) writes the prompts they answer. The split
must be marked for training (MBPP train); ``CODEGYM_MARK_TRAINING=1`` marks custom data whose split
is not, and is never meant for an evaluation split.
"""

from __future__ import annotations

import os
from functools import cache


@cache
def reward_for(env: str, data_path: str | None, split: str | None, reward_tests: str, mark_training: bool = False,
               completion_format: str = "fenced"):
    """The CodeReward of a training split's problems (an evaluation split is refused)."""
    from ..envs import training_problems
    from ..rewards import CodeReward

    return CodeReward(training_problems(env, data_path, split, mark_training), reward_tests=reward_tests,
                      completion_format=completion_format)


def configured_reward():
    """The CodeReward of the environment variables above."""
    return reward_for(os.environ.get("CODEGYM_ENV", "CodeGym/MBPP-v0"), os.environ.get("CODEGYM_DATA_PATH"),
                      os.environ.get("CODEGYM_SPLIT", "train"), os.environ.get("CODEGYM_REWARD_TESTS", "public"),
                      os.environ.get("CODEGYM_MARK_TRAINING") == "1", os.environ.get("CODEGYM_COMPLETIONS", "fenced"))


def rl_prompt_rows(problems, template: str = "direct") -> list[dict]:
    """One row per problem for an RL engine's prompt file: the chat messages of the template's
    translate request (the problem as the environment shows it: statement, signature, public tests),
    verl's fields (``data_source``, ``prompt``, ``ability``, ``reward_model.ground_truth``,
    ``extra_info``) and ``problem_id`` for OpenRLHF's ``--label_key``."""
    from ..envs import render_problem
    from ..prompts import load_template

    chosen = load_template(template)
    rows = []
    for problem in problems:
        messages = chosen.messages(render_problem(problem), "", "translate", stdio=problem.kind != "function")
        rows.append({"data_source": "codegym", "prompt": [dict(m) for m in messages], "ability": "code",
                     "reward_model": {"style": "rule", "ground_truth": problem.id},
                     "extra_info": {"problem_id": problem.id}, "problem_id": problem.id})
    return rows
