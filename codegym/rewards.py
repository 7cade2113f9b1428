"""Reward arithmetic, kept apart from the environment so trainers and agents reuse it.

Terminal reward on the *reward tests* (public + generated, never hidden)::

    continuous:  R = alpha * compiled + (1 - alpha) * pass_fraction
    binary:      R = 1 if pass_fraction >= tau_pass, 0 if pass_fraction <= tau_fail,
                 otherwise the continuous value (the undecided band of O1-CODER's Algorithm 1)

Optional episode-level aggregation with process rewards r_1..r_m (O1-CODER section 4)::

    phi = alpha(t) * R + (1 - alpha(t)) * (1/m) * sum_j gamma**j * r_j
    alpha(t) = max(alpha_min, alpha_start - alpha_decay * t)     (t: training iteration)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class RewardConfig:
    """How the environment turns test outcomes and process scores into rewards."""

    alpha: float = 0.0
    mode: Literal["continuous", "binary"] = "continuous"
    tau_pass: float = 1.0
    tau_fail: float = 0.0
    invalid_penalty: float = -0.1
    aggregate: bool = False
    gamma: float = 0.9
    alpha_start: float = 1.0
    alpha_decay: float = 0.01
    alpha_min: float = 0.1

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError("alpha must be in [0, 1]")
        if self.mode not in ("continuous", "binary"):
            raise ValueError("mode must be 'continuous' or 'binary'")
        if not 0.0 <= self.tau_fail <= self.tau_pass <= 1.0:
            raise ValueError("need 0 <= tau_fail <= tau_pass <= 1")
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError("gamma must be in (0, 1]")


def terminal_reward(compiled: bool, pass_fraction: float, config: RewardConfig) -> float:
    continuous = config.alpha * float(compiled) + (1.0 - config.alpha) * pass_fraction
    if config.mode == "continuous":
        return continuous
    if pass_fraction >= config.tau_pass:
        return 1.0
    if pass_fraction <= config.tau_fail:
        return 0.0
    return continuous


def aggregation_weight(training_step: int, config: RewardConfig) -> float:
    """alpha(t): the weight of the terminal reward, decaying linearly to alpha_min."""
    return max(config.alpha_min, config.alpha_start - config.alpha_decay * training_step)


def aggregate_reward(terminal: float, process_rewards: Sequence[float], training_step: int,
                     config: RewardConfig) -> float:
    """phi = alpha(t) R + (1 - alpha(t)) (1/m) sum_j gamma^j r_j  (j counted from 0)."""
    weight = aggregation_weight(training_step, config)
    if not process_rewards:
        return terminal
    discounted = sum(config.gamma ** j * r for j, r in enumerate(process_rewards)) / len(process_rewards)
    return weight * terminal + (1.0 - weight) * discounted


REWARD_TESTS = ("public", "public+generated", "generated", "all")


def check_reward_tests(reward_tests: str, problems) -> None:
    """A one-line ValueError for an unknown test choice, or for "all" (a split's full test list)
    on problems not marked for training."""
    if reward_tests not in REWARD_TESTS:
        raise ValueError("reward_tests must be one of %s" % ", ".join(map(repr, REWARD_TESTS)))
    if reward_tests == "all":
        evaluation = [p.id for p in problems if not p.training]
        if evaluation:
            raise ValueError("reward_tests='all' needs problems from a split marked for training; %d are not "
                             "(first: %s)" % (len(evaluation), evaluation[0]))


def reward_test_sets(problem, reward_tests: str) -> dict[str, list]:
    """A problem's reward tests by set (public, generated, all), the non-empty ones."""
    sets = {"public": problem.public_tests, "generated": problem.generated_tests, "all": problem.all_tests}
    return {name: list(sets[name]) for name in reward_tests.split("+") if sets[name]}


_STEP_HEADER = re.compile(r"\s*\[(define|refine|translate)\]", re.IGNORECASE)
_FENCE_LINE = re.compile(r"^[ \t]*(`{3,}|~{3,})[ \t]*([^`\s]*)[^`]*$")
PYTHON_TAGS = ("", "python", "python3", "py")
COMPLETION_FORMATS = ("step", "fenced")


def first_python_block(text: str) -> str | None:
    """The first fenced block of a chat answer tagged as Python (or untagged), as Markdown reads
    fences: at the start of a line, closed by a fence of the same character at least as long, or
    by the end of the text (a cut-off answer); None without one."""
    lines = text.replace("\r\n", "\n").split("\n")
    index = 0
    while index < len(lines):
        opening = _FENCE_LINE.match(lines[index])
        index += 1
        if opening is None:
            continue
        fence, tag = opening.group(1), opening.group(2).lower()
        body = []
        while index < len(lines):
            closing = _FENCE_LINE.match(lines[index])
            if closing and not closing.group(2) and closing.group(1)[0] == fence[0] and len(closing.group(1)) >= len(fence):
                break
            body.append(lines[index])
            index += 1
        index += 1
        if tag in PYTHON_TAGS:
            return "\n".join(body) + "\n"
    return None


class CodeReward:
    """A reward function for TRL's ``reward_funcs`` (GRPO, RLOO, online DPO): programs scored on
    the reward tests in the sandbox, one batch per call.

    ``reward(prompts, completions, problem_id=[...], **columns) -> list[float]``: each completion
    (text, or a chat turn ``[{"role": "assistant", "content": ...}]``) is a translate step, either
    whole (``[translate]\\n```python ...``) or as the model wrote it after the template's translate
    prefix; ``problem_id`` is the dataset column naming its problem. The reward is
    :func:`terminal_reward` (continuous or binary, by ``config``) on the tests ``reward_tests``
    names ("public", "public+generated", "generated", or "all" on training problems only), with the
    environment's CPU-time limits. A whole step of another kind, or a malformed one, gets
    ``config.invalid_penalty``, as the environment gives for an invalid action.
    ``completion_format="fenced"`` reads free chat answers instead (what an RL engine's rollouts are,
    prompted by :func:`codegym.integrations.rl_prompt_rows`): the program is the answer's first
    Python (or untagged) fenced block (:func:`first_python_block`), and an answer without one gets
    ``config.invalid_penalty``.
    ``await reward.acall(...)`` runs it from an async context (the sandbox work in a thread).
    """

    __name__ = "codegym_reward"

    def __init__(self, problems, config: RewardConfig | None = None, reward_tests: str = "public", sandbox=None,
                 template: str = "pseudocode", time_limit_base_s: float = 2.0, time_limit_factor: float = 4.0,
                 max_step_chars: int = 4000, completion_format: str = "step"):
        from .limits import TimeLimits
        from .prompts import load_template

        self.problems = {p.id: p for p in problems}
        self.config = config or RewardConfig()
        check_reward_tests(reward_tests, self.problems.values())
        self.reward_tests = reward_tests
        self.sandbox, self.template = sandbox, load_template(template)
        self.limits = TimeLimits(time_limit_base_s, time_limit_factor)
        self.max_step_chars = max_step_chars
        if completion_format not in COMPLETION_FORMATS:
            raise ValueError("completion_format must be one of %s" % ", ".join(COMPLETION_FORMATS))
        self.completion_format = completion_format

    def code_of(self, completion) -> str | None:
        """The program of a completion: a whole translate step, or what the model wrote after the
        template's translate prefix; None where the environment would refuse the action (a step of
        another kind, a malformed step, one over ``max_step_chars``)."""
        from .envs.steps import StepParseError, parse_step

        text = completion[-1]["content"] if isinstance(completion, list) else completion
        if self.completion_format == "fenced":  # the block as written, whatever it contains
            block = first_python_block(text)
            return block if block is not None and block.strip() and len(block) <= self.max_step_chars else None
        action = text if _STEP_HEADER.match(text) else self.template.action("translate", text)
        if len(action) > self.max_step_chars:
            return None
        try:
            step = parse_step(action)
        except StepParseError:
            return None
        return step.text if step.kind == "translate" else None

    def __call__(self, prompts, completions, problem_id, **columns) -> list[float]:
        from .envs.code_env import parses
        from .judge import shared_sandbox

        rewards: list[float] = [self.config.invalid_penalty] * len(completions)
        runs, timeouts, slots = [], [], []
        for index, (completion, pid) in enumerate(zip(completions, problem_id)):
            problem = self.problems.get(str(pid))
            if problem is None:
                raise KeyError("no problem %r among the reward function's problems" % pid)
            code = self.code_of(completion)
            if code is None:
                continue
            sets = reward_test_sets(problem, self.reward_tests)
            tests = [test for group in sets.values() for test in group]
            if not tests:  # as the environment: a syntax check stands for compiling, nothing passes
                rewards[index] = terminal_reward(parses(code), 0.0, self.config)
                continue
            runs.append((problem.program_for_tests(code), tests))
            timeouts.append(self.limits.for_sets(problem.reference_seconds, list(sets))[0])
            slots.append(index)
        results = (self.sandbox or shared_sandbox()).run_batch(runs, timeouts=timeouts) if runs else []
        for index, result in zip(slots, results):
            rewards[index] = terminal_reward(result.compiled, result.pass_fraction, self.config)
        return rewards

    async def acall(self, prompts, completions, problem_id, **columns) -> list[float]:
        import asyncio

        return await asyncio.to_thread(self, prompts, completions, problem_id, **columns)
