"""A step policy: a backend plus a prompt template, proposing env actions of a given kind."""

from __future__ import annotations

from dataclasses import dataclass

from .llm.base import Backend, Completion, GenerationRequest
from .prompts import PromptTemplate, load_template


@dataclass
class Proposal:
    """One candidate step: the env action and the completion it came from (None if fixed)."""

    kind: str
    action: str
    completion: Completion | None


class StepPolicy:
    """Turns (problem text, trajectory, kind) into generation requests and completions into actions."""

    def __init__(self, backend: Backend, template: str | PromptTemplate = "pseudocode", chat: bool | None = None):
        self.backend = backend
        self.template = load_template(template) if isinstance(template, str) else template
        self.chat = backend.capabilities.chat_template if chat is None else chat

    def request(self, problem: str, trajectory: str, kind: str, stdio: bool = False, **sampling) -> GenerationRequest:
        return self.template.request(problem, trajectory, kind, chat=self.chat, stdio=stdio, **sampling)

    def propose_many(self, items: list[tuple[str, str, str, bool]], n: int | list[int] = 1, temperature: float = 0.0,
                     seed: int = 0, max_new_tokens: int | None = None) -> list[list[Proposal]]:
        """For each (problem, trajectory, kind, stdio) item, ``n`` proposals (or ``n[i]``), in one
        backend batch: all requests share ``seed`` so the engine batches them together."""
        counts = n if isinstance(n, list) else [n] * len(items)
        results: list[list[Proposal] | None] = [None] * len(items)
        requests, slots = [], []
        for index, ((problem, trajectory, kind, stdio), count) in enumerate(zip(items, counts)):
            fixed = self.template.fixed_steps.get(kind)
            if fixed is not None:
                results[index] = [Proposal(kind, self.template.prefixes[kind] + fixed, None)] * count
                continue
            requests.append(self.request(problem, trajectory, kind, stdio, n=count, temperature=temperature,
                                         seed=seed, max_new_tokens=max_new_tokens))
            slots.append((index, kind))
        if requests:
            output = self.backend.generate(requests)
            for (index, kind), completions in zip(slots, output.results):
                results[index] = [Proposal(kind, self.template.action(kind, c.text), c) for c in completions]
        return results  # type: ignore[return-value]
