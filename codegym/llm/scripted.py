"""A backend that returns fixed texts: for tests only, never a default."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from .base import Backend, Capabilities, Completion, GenerationRequest, Message


class ScriptedBackend(Backend):
    """Answers each prompt with ``script(prompt_text, sample_seed)`` (or the next text of a list).
    Token counts are whitespace-separated words, so budgets are easy to compute by hand.
    ``ragged=True`` makes it take mixed seeds and token limits in one engine call, like CTranslate2."""

    capabilities = Capabilities(logprobs=True, prefix_caching=False, chat_template=True, stop_strings=False)

    def __init__(self, script: Callable[[str, int], str] | Sequence[str], model_id: str = "scripted", cache=None,
                 logprob: float = -1.0, ragged: bool = False):
        super().__init__(cache)
        self.capabilities = replace(self.capabilities, ragged_batches=ragged)
        self.engine_calls: list[int] = []  # prompts per _generate call
        self.model_id = model_id
        self.logprob = logprob
        self.prompts_seen: list[str] = []
        if callable(script):
            self._script = script
        else:
            texts = list(script)
            self._script = lambda prompt, seed: texts[(len(self.prompts_seen) - 1) % len(texts)]

    def count_tokens(self, text: str) -> int:
        return max(1, len(text.split()))

    def render_chat(self, messages: Sequence[Message]) -> str:
        return "".join("<%s>%s</%s>\n" % (m["role"], m["content"], m["role"]) for m in messages) + "<assistant>"

    def _generate(self, prompts: list[str], request: GenerationRequest, seeds: list[int],
                  limits: list[int] | None = None) -> list[Completion]:
        self.engine_calls.append(len(prompts))
        completions = []
        for prompt, seed, limit in zip(prompts, seeds, limits or [request.max_new_tokens] * len(prompts)):
            self.prompts_seen.append(prompt)
            words = self._script(prompt, seed).split(" ")
            clipped = " ".join(words[:limit])
            tokens = self.count_tokens(clipped)
            reason = "length" if len(words) > limit else "stop"
            completions.append(Completion(text=clipped, tokens=tokens, finish_reason=reason,
                                          token_logprobs=[self.logprob] * tokens))
        return completions
