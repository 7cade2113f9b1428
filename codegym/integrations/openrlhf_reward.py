"""OpenRLHF's reward function file: ``--remote_rm_url <this file>`` with ``--label_key`` naming the
column that holds the codegym problem id (see :mod:`codegym.integrations`)."""

from __future__ import annotations

from codegym.integrations import configured_reward


def reward_func(queries: list[str], prompts: list[str], labels: list[str], **_kwargs) -> dict:
    """Rewards of a batch, scored in one sandbox batch; ``queries`` are prompt + completion."""
    import torch

    completions = [query[len(prompt):] if query.startswith(prompt) else query for query, prompt in zip(queries, prompts)]
    rewards = torch.tensor(configured_reward()(prompts, completions, problem_id=list(labels)), dtype=torch.float32)
    return {"rewards": rewards, "scores": rewards, "extra_logs": {}}
