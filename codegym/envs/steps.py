"""The step format: one reasoning step per action, tagged with its kind.

Canonical form (what :func:`format_step` writes and the prompts teach)::

    [define]
    1. Read the list ... (pseudocode)

    [translate]
    ```python
    def f(x): ...
    ```

The parser is deliberately tolerant of what small models emit: ``Step 2 - Refine:``,
``### Translate``, ``**Define**`` and the like all name a kind; a translate step's code is its
first fenced block, or the whole text when it parses as Python.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Literal

StepKind = Literal["define", "refine", "translate"]
STEP_KINDS: tuple[StepKind, ...] = ("define", "refine", "translate")
_KIND_SYNONYMS = {"define": "define", "definition": "define", "refine": "refine", "refinement": "refine",
                  "translate": "translate", "translation": "translate", "code": "translate"}
_HEADER = re.compile(
    r"\A\s*(?:#+\s*)?(?:\*\*)?\s*(?:step\s*\d*\s*[:.)\-]*\s*)?(?:\*\*)?\s*"
    r"[\[(<]?\s*(?P<kind>define|definition|refine|refinement|translate|translation|code)\s*[\])>]?"
    r"\s*(?:\*\*)?\s*(?:step)?\s*[:.\-]*\s*(?:\*\*)?[ \t]*\n?",
    re.IGNORECASE,
)
_FENCE = re.compile(r"```[ \t]*(?:python|py|python3)?[ \t]*\n(?P<code>.*?)(?:```|\Z)", re.DOTALL | re.IGNORECASE)


@dataclass(frozen=True)
class Step:
    kind: StepKind
    text: str


class StepParseError(ValueError):
    """The action is not a step in the documented format."""


def format_step(kind: str, text: str) -> str:
    """A well-formed action of the given kind; for ``translate``, ``text`` is Python code."""
    if kind not in STEP_KINDS:
        raise ValueError("kind must be one of %s, got %r" % (", ".join(STEP_KINDS), kind))
    body = text.strip("\n")
    if kind == "translate" and "```" not in body:
        body = "```python\n%s\n```" % body
    return "[%s]\n%s" % (kind, body)


def format_trajectory(steps) -> str:
    """Steps (``Step`` objects or ``(kind, text)`` pairs) as the trajectory text agents and prompts see."""
    return "\n\n".join(format_step(*step) if isinstance(step, (tuple, list)) else format_step(step.kind, step.text)
                       for step in steps)


def parse_step(action: str) -> Step:
    """Parse one action into a :class:`Step`, or raise :class:`StepParseError` saying why."""
    if not isinstance(action, str):
        raise StepParseError("an action is a string, got %s" % type(action).__name__)
    match = _HEADER.match(action)
    if match is None:
        raise StepParseError("a step starts with its kind: [define], [refine] or [translate]")
    kind: StepKind = _KIND_SYNONYMS[match.group("kind").lower()]  # type: ignore[assignment]
    body = action[match.end():].strip()
    if kind == "translate":
        code = extract_code(body)
        if code is None:
            raise StepParseError("a translate step must contain Python code (a ```python block)")
        return Step(kind, code)
    if not body:
        raise StepParseError("the %s step is empty" % kind)
    return Step(kind, body)


def extract_code(text: str) -> str | None:
    """The program in a translate step: the first fenced block, else the text if it is Python."""
    fence = _FENCE.search(text)
    if fence is not None:
        code = fence.group("code").strip("\n")
        return code if code.strip() else None
    try:
        ast.parse(text)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None
    return text if text.strip() else None
