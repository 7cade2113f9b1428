"""OpenRLHF's reward function file: ``--reward.remote_url <this file>`` with ``--data.label_key``
naming the column that holds the codegym problem id (OpenRLHF 0.11; before it, ``--remote_rm_url``
and ``--label_key``; see :mod:`codegym.integrations`)."""

from __future__ import annotations

import re

from codegym.integrations import configured_reward

# End-of-turn tokens as decoded text, which OpenRLHF keeps: <|im_end|>, <|eot_id|>, </s>, <eos>,
# <end_of_turn> (Gemma), <｜end▁of▁sentence｜> (DeepSeek, full-width bars).
_END_TOKENS = re.compile(r"(?:<[|｜][^<>]*?[|｜]>|</?[A-Za-z_]+>)+\s*\Z")


def _end_of_prompt(query: str, prompt: str) -> int | None:
    """Where the prompt ends in the query, matching it with whitespace skipped (a tokenizer's
    clean-up only removes spaces); None where the query does not start with the prompt's text."""
    at = 0
    for char in prompt:
        if char.isspace():
            continue
        while at < len(query) and query[at].isspace():
            at += 1
        if at == len(query) or query[at] != char:
            return None
        at += 1
    for _ in range(len(prompt) - len(prompt.rstrip())):  # the prompt's own closing whitespace
        if at < len(query) and query[at].isspace():
            at += 1
    return at


def answer_in(query: str, prompt: str) -> str:
    """The answer in an OpenRLHF query, which is the prompt's tokens and the answer's decoded together,
    special tokens kept: the text after the prompt, without its end-of-turn token (which would
    spoil a closing fence). Never the prompt's own code blocks (exported prompts hold the signature
    in one): a query that does not start with the prompt's text has no answer ("")."""
    end = len(prompt) if query.startswith(prompt) else _end_of_prompt(query, prompt)
    return "" if end is None else _END_TOKENS.sub("", query[end:])


def reward_func(queries: list[str], prompts: list[str], labels: list[str], **_kwargs) -> dict:
    """Rewards of a batch, scored in one sandbox batch; ``queries`` are prompt + completion."""
    import torch

    completions = [answer_in(query, prompt) for query, prompt in zip(queries, prompts)]
    rewards = torch.tensor(configured_reward()(prompts, completions, problem_id=list(labels)), dtype=torch.float32)
    return {"rewards": rewards, "scores": rewards, "extra_logs": {}}
