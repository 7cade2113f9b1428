"""verl's custom reward function: ``custom_reward_function.path=<this file>`` and
``custom_reward_function.name=compute_score``; each row's ``reward_model.ground_truth`` is the
codegym problem id (see :mod:`codegym.integrations` for the environment variables)."""

from __future__ import annotations

from codegym.integrations import configured_reward


def compute_score(data_source, solution_str: str, ground_truth: str, extra_info=None, **_kwargs) -> float:
    """The reward of one completion: its program on the reward tests of problem ``ground_truth``."""
    return configured_reward()(None, [solution_str], problem_id=[ground_truth])[0]
