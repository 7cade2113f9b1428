"""Prompt templates (``envs_data/prompts/*.json``) that make a model emit one step at a time.

A template has a system and a user message (chat form) and a ``plain`` form for completion
models, an instruction per step kind, and per kind an *assistant prefix* and stop strings: the
prefix starts the answer with the step's header (``[define]\\n1.`` or ``[translate]\\n```python``),
so even a 135M-parameter model writes a step the environment parses, and the stop strings end the
generation where the step ends. Prompts contain the problem's public view only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from .envs.steps import STEP_KINDS
from .llm.base import GenerationRequest

PROMPTS_DIR = Path(__file__).resolve().parents[1] / "envs_data" / "prompts"


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    description: str
    system: str
    user: str
    no_steps: str
    instructions: dict[str, str]
    plain: str
    prefixes: dict[str, str]
    stops: dict[str, tuple[str, ...]]
    fixed_steps: dict[str, str]
    max_new_tokens: dict[str, int]
    repetition_penalty: dict[str, float]

    def instruction(self, kind: str, stdio: bool) -> str:
        if kind == "translate" and stdio:
            return self.instructions.get("translate_stdio", self.instructions[kind])
        return self.instructions[kind]

    def messages(self, problem: str, trajectory: str, kind: str, stdio: bool = False) -> tuple[dict, ...]:
        user = self.user.format(problem=problem.strip(), trajectory=trajectory.strip() or self.no_steps,
                                instruction=self.instruction(kind, stdio))
        return ({"role": "system", "content": self.system}, {"role": "user", "content": user})

    def request(self, problem: str, trajectory: str, kind: str, *, chat: bool = True, stdio: bool = False,
                n: int = 1, temperature: float = 0.0, top_p: float = 1.0, max_new_tokens: int | None = None,
                seed: int = 0) -> GenerationRequest:
        """The generation request for the next step of ``kind``."""
        if kind not in STEP_KINDS:
            raise ValueError("unknown step kind %r" % kind)
        messages = self.messages(problem, trajectory, kind, stdio)
        limit = max_new_tokens or self.max_new_tokens.get(kind, 256)
        common = dict(n=n, temperature=temperature, top_p=top_p, max_new_tokens=limit, seed=seed,
                      repetition_penalty=self.repetition_penalty.get(kind, 1.0),
                      stop=self.stops[kind], assistant_prefix=self.prefixes[kind])
        if chat:
            return GenerationRequest(messages=messages, **common)
        prompt = self.plain.format(system=messages[0]["content"], user=messages[1]["content"])
        return GenerationRequest(prompt=prompt, **common)

    def action(self, kind: str, completion: str) -> str:
        """The env action for a completion of a request of ``kind`` (prefix + completion)."""
        text = self.prefixes[kind] + completion
        if kind == "translate" and text.count("```") % 2:
            text = text.rstrip() + "\n```"
        return text


@cache
def load_template(name: str = "pseudocode") -> PromptTemplate:
    """A bundled template by name (``pseudocode``, ``cot``, ``direct``) or a path to a JSON file."""
    path = Path(name) if name.endswith(".json") else PROMPTS_DIR / ("%s.json" % name)
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in PROMPTS_DIR.glob("*.json")))
        raise ValueError("no prompt template %r (bundled: %s)" % (name, known))
    data = json.loads(path.read_text())
    for key in ("system", "user", "instructions", "plain", "prefixes", "stops"):
        if key not in data:
            raise ValueError("%s: missing field %r" % (path, key))
    return PromptTemplate(name=path.stem, description=data.get("description", ""), system=data["system"],
                          user=data["user"], no_steps=data.get("no_steps", ""), instructions=data["instructions"],
                          plain=data["plain"], prefixes=data["prefixes"],
                          stops={k: tuple(v) for k, v in data["stops"].items()},
                          fixed_steps=data.get("fixed_steps", {}), max_new_tokens=data.get("max_new_tokens", {}),
                          repetition_penalty=data.get("repetition_penalty", {}))


def available_templates() -> list[str]:
    return sorted(p.stem for p in PROMPTS_DIR.glob("*.json"))
