"""OpenRLHF's reward function file: ``--remote_rm_url <this file>`` with ``--label_key`` naming the
column that holds the codegym problem id (see :mod:`codegym.integrations`)."""

from __future__ import annotations

import re

from codegym.integrations import configured_reward

# End-of-turn tokens as decoded text (<|im_end|>, <|eot_id|>, </s>, ...): OpenRLHF keeps them.
_END_TOKENS = re.compile(r"(?:<\|[^<>|\s]+\|>|</s>|<eos>)+\s*\Z")


def answer_in(query: str, prompt: str) -> str:
    """The answer in an OpenRLHF query, which is the prompt's tokens and the answer's decoded together,
    special tokens kept: without its end-of-turn token, which would spoil a closing fence.
    Where decoding changed the prompt's text (a tokenizer's clean-up of spaces), the answer is what
    follows the prompt's last line, the chat template's generation prompt: never the prompt's own
    code blocks (the exported prompts hold the signature in one)."""
    if query.startswith(prompt):
        answer = query[len(prompt):]
    else:
        last_line = prompt.rstrip().rsplit("\n", 1)[-1]  # ends near len(prompt): clean-up moves it a little
        at = query.rfind(last_line, 0, len(prompt) + 64) if last_line else -1
        answer = query[at + len(last_line):].lstrip("\n") if at >= 0 else query
    return _END_TOKENS.sub("", answer)


def reward_func(queries: list[str], prompts: list[str], labels: list[str], **_kwargs) -> dict:
    """Rewards of a batch, scored in one sandbox batch; ``queries`` are prompt + completion."""
    import torch

    completions = [answer_in(query, prompt) for query, prompt in zip(queries, prompts)]
    rewards = torch.tensor(configured_reward()(prompts, completions, problem_id=list(labels)), dtype=torch.float32)
    return {"rewards": rewards, "scores": rewards, "extra_logs": {}}
