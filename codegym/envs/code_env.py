"""The reasoning-before-coding environment: one problem per episode, one step per action."""

from __future__ import annotations

import ast
import copy
import os
import string
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ..datasets import Dataset, Problem, load_dataset
from ..execution import Sandbox
from ..judge import run_tests
from ..limits import TimeLimits
from ..rewards import RewardConfig, aggregate_reward, check_reward_tests, reward_test_sets, terminal_reward
from .steps import STEP_KINDS, Step, StepParseError, format_trajectory, parse_step

if TYPE_CHECKING:
    from ..prm import ProcessRewardModel

RewardTests = Literal["public", "public+generated", "generated", "all"]
MAX_PROBLEM_CHARS = 32_768


_WHITESPACE = str.maketrans("", "", "\n\t\r")
_SAMPLE_CHARS = string.printable + "\u00e4\u00e9\u00df\u03c0\u2192\u2026\u4e2d\u0416"


class UnicodeText(spaces.Text):
    """A Text space holding any printable Unicode (plus newline, tab, carriage return).

    Membership is checked with ``str.isprintable`` instead of a 150,000-character set, so
    real problem statements fit; ``sample()`` draws from a small mixed-script alphabet."""

    def __init__(self, max_length: int, min_length: int = 0, seed: int | None = None):
        super().__init__(max_length, min_length=min_length, charset=_SAMPLE_CHARS, seed=seed)

    def contains(self, x: Any) -> bool:
        return (isinstance(x, str) and self.min_length <= len(x) <= self.max_length
                and x.translate(_WHITESPACE).isprintable())

    def __repr__(self) -> str:
        return "UnicodeText(%d, %d)" % (self.min_length, self.max_length)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def render_problem(problem: Problem) -> str:
    """The problem as an agent sees it: statement, signature and public tests only."""
    parts = [problem.statement.strip()]
    if problem.kind == "function" and problem.signature and problem.signature not in problem.statement:
        parts.append("Function signature: %s" % problem.signature)
    for test in problem.public_tests:
        if test.kind == "stdio":
            parts.append("Example input:\n%s\nExample output:\n%s" % (test.stdin.rstrip("\n"),
                                                                      test.expected_stdout.rstrip("\n")))
    examples = [t.describe(400) for t in problem.public_tests if t.kind != "stdio"]
    if examples:
        parts.append("\n".join(["Examples:"] + ["  " + text for text in examples]))
    return _clip("\n\n".join(parts), MAX_PROBLEM_CHARS)


class CodeReasoningEnv(gym.Env[dict, str]):
    """
    ## Description
    One programming problem per episode. The agent writes its solution as reasoning steps in
    the O1-CODER style: it **defines** the algorithm's structure in pseudocode, **refines** it
    zero or more times, and **translates** it into Python, which ends the episode and is run
    in the sandbox against the reward tests.

    ## Action Space
    ``Text``: one step in the format of :func:`codegym.format_step`, e.g. ``"[define]\\n1. ..."``
    or ``"[translate]\\n```python\\n...\\n```"``. A step that does not parse, breaks the order
    or is too long is *invalid*: it is not added to the trajectory, ``info["invalid_action"]``
    says why and ``invalid_penalty`` is the reward.

    ## Observation Space
    ``Dict``: ``problem`` (Text: statement, signature, public tests), ``trajectory`` (Text: the
    steps so far), ``step`` (Discrete: actions taken), ``allowed`` (MultiBinary(3): which of
    define/refine/translate may come next).

    ## Rewards
    At translate: ``R = alpha * compiled + (1 - alpha) * pass_fraction`` on the reward tests
    (public, public+generated, generated, or all on a training split; **never hidden**), or the binary variant with
    ``tau_pass``/``tau_fail``. Earlier steps get the process reward of ``prm`` (0 without one).
    With ``aggregate=True`` earlier steps get 0 and the final reward is
    ``phi = alpha(t) R + (1 - alpha(t)) (1/m) sum_j gamma^j r_j``. See :mod:`codegym.rewards`.

    ## Starting State
    ``reset(seed=..., options={"problem_id": ...})`` picks the named problem, or one at random
    (seeded); the trajectory is empty and only ``define`` is allowed.

    ## Episode End
    Terminated after a translate step. Truncated when ``max_steps`` actions (valid or not)
    were taken without one, or at the first invalid action when ``on_invalid="truncate"``.

    ## Arguments
    ``dataset`` (id for :func:`codegym.datasets.load_dataset`) with ``data_path``/``split``/
    ``on_error`` ("raise" or "skip")/``training``, or ``problems`` (a list of public problems:
    ``dataset.problems``, never the Dataset, which holds the answer keys); ``max_refine`` (3);
    ``max_steps`` (8); ``max_step_chars`` (4000);
    ``reward_tests`` ("public"; "all", the split's full test list, only where every problem comes
    from a split marked for training); reward options of :class:`RewardConfig` (``alpha``,
    ``reward_mode``, ``tau_pass``, ``tau_fail``, ``invalid_penalty``, ``aggregate``, ``gamma``);
    ``on_invalid`` ("continue" or "truncate"); ``prm`` (a ProcessRewardModel, or a spec such as
    ``token:PATH``); ``sandbox``; ``render_mode`` ("ansi");
    ``generated_tests`` (a file written by ``codegym tcg generate``, loaded into each problem);
    ``time_limit_base_s`` (2.0) and ``time_limit_factor`` (4.0): a translate step's program gets
    ``max(T_base, k * T_ref)`` CPU seconds, T_ref being the reference solution's CPU time on the
    reward tests, measured at dataset load (:mod:`codegym.limits`), the same rule as the judge's;
    where no reference was measured, T_base applies and ``info["time_limit_source"]`` is "base".

    The environment holds public problems only: hidden tests are not in observations, ``info``
    or ``get_state()``, nor reachable from the environment at all. A :class:`codegym.Judge`
    (``load_dataset(...).judge()``) scores final answers, outside the episode.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(self, dataset: str = "starter", data_path: str | os.PathLike | None = None,
                 split: str | None = None, problems: Sequence[Problem] | None = None,
                 max_refine: int = 3, max_steps: int = 8, max_step_chars: int = 4000,
                 reward_tests: RewardTests = "public", alpha: float = 0.0,
                 reward_mode: Literal["continuous", "binary"] = "continuous", tau_pass: float = 1.0,
                 tau_fail: float = 0.0, invalid_penalty: float = -0.1, aggregate: bool = False,
                 gamma: float = 0.9, on_invalid: Literal["continue", "truncate"] = "continue",
                 prm: ProcessRewardModel | str | None = None, sandbox: Sandbox | None = None,
                 render_mode: str | None = None, generated_tests: str | os.PathLike | None = None,
                 on_error: Literal["raise", "skip"] = "raise", training: bool | None = None,
                 time_limit_base_s: float = 2.0, time_limit_factor: float = 4.0):
        if isinstance(problems, Dataset):
            # gym.make keeps its kwargs in env.spec, where an agent would find the answer keys
            raise TypeError("pass problems=dataset.problems, not the Dataset: it holds the answer keys")
        if problems is None:
            problems = load_dataset(dataset, data_path=data_path, split=split, on_error=on_error,
                                    training=training).problems
        self.problems: list[Problem] = list(problems)
        if not all(isinstance(p, Problem) for p in self.problems):
            raise TypeError("problems must be codegym Problem objects")
        if generated_tests is not None:
            from ..tcg.store import with_generated_tests

            self.problems = with_generated_tests(self.problems, generated_tests)
        if not self.problems:
            raise ValueError("the environment needs at least one problem")
        self._by_id = {p.id: p for p in self.problems}
        if max_refine < 0 or max_steps < 2:
            raise ValueError("need max_refine >= 0 and max_steps >= 2")
        check_reward_tests(reward_tests, self.problems)
        if on_invalid not in ("continue", "truncate"):
            raise ValueError("on_invalid must be 'continue' or 'truncate'")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError("render_mode must be None or 'ansi'")
        self.time_limits = TimeLimits(time_limit_base_s, time_limit_factor)
        self.max_refine, self.max_steps, self.max_step_chars = max_refine, max_steps, max_step_chars
        self.reward_tests, self.on_invalid = reward_tests, on_invalid
        self.reward_config = RewardConfig(alpha=alpha, mode=reward_mode, tau_pass=tau_pass, tau_fail=tau_fail,
                                          invalid_penalty=invalid_penalty, aggregate=aggregate, gamma=gamma)
        if isinstance(prm, str):
            from ..prm.model import load_prm

            prm = load_prm(prm)
        self.prm, self.sandbox, self.render_mode = prm, sandbox, render_mode
        self.training_step = 0  # t in the aggregated reward's alpha(t); trainers advance it
        self._trajectory_chars = max_steps * (max_step_chars + 16)
        self.action_space = UnicodeText(max_length=max_step_chars, min_length=1)
        self.observation_space = spaces.Dict({
            "problem": UnicodeText(max_length=MAX_PROBLEM_CHARS),
            "trajectory": UnicodeText(max_length=self._trajectory_chars),
            "step": spaces.Discrete(max_steps + 1),
            "allowed": spaces.MultiBinary(len(STEP_KINDS)),
        })
        self.problem: Problem | None = None
        self.steps: list[Step] = []
        self.process_rewards: list[float] = []
        self.actions_taken = 0
        self.done = False
        self._problem_text = ""

    # -- episode -----------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        problem_id = (options or {}).get("problem_id")
        if problem_id is not None:
            if str(problem_id) not in self._by_id:
                raise KeyError("no problem %r in this environment" % problem_id)
            self.problem = self._by_id[str(problem_id)]
        else:
            self.problem = self.problems[int(self.np_random.integers(len(self.problems)))]
        self._problem_text = render_problem(self.problem)
        self.steps, self.process_rewards = [], []
        self.actions_taken, self.done = 0, False
        return self._observation(), {"problem_id": self.problem.id}

    def allowed_kinds(self) -> tuple[str, ...]:
        if self.done:
            return ()
        if not self.steps:
            return ("define",)
        refines = sum(step.kind == "refine" for step in self.steps)
        return ("refine", "translate") if refines < self.max_refine else ("translate",)

    def step(self, action: str):
        if self.problem is None:
            raise RuntimeError("call reset() before step()")
        if self.done:
            raise RuntimeError("the episode has ended; call reset()")
        self.actions_taken += 1
        info: dict[str, Any] = {"problem_id": self.problem.id, "invalid_action": None}
        try:
            if isinstance(action, str) and len(action) > self.max_step_chars:
                raise StepParseError("the step is longer than max_step_chars=%d" % self.max_step_chars)
            step = parse_step(action)
            if step.kind not in self.allowed_kinds():
                raise StepParseError("%s is not allowed now; allowed: %s" % (step.kind, ", ".join(self.allowed_kinds())))
        except StepParseError as err:
            info["invalid_action"] = str(err)
            truncated = self.on_invalid == "truncate" or self.actions_taken >= self.max_steps
            self.done = truncated
            return self._observation(), self.reward_config.invalid_penalty, False, truncated, info
        self.steps.append(step)
        info["step_kind"] = step.kind
        if step.kind == "translate":
            self.done = True
            reward = self._finish(step.text, info)
            return self._observation(), reward, True, False, info
        reward = self._process_reward(info)
        truncated = self.actions_taken >= self.max_steps
        self.done = truncated
        return self._observation(), reward, False, truncated, info

    def _process_reward(self, info: dict[str, Any]) -> float:
        if self.prm is None:
            score = 0.0
        else:
            score = float(self.prm.score(self.problem, list(self.steps))[-1])
        self.process_rewards.append(score)
        info["process_reward"] = score
        return 0.0 if self.reward_config.aggregate else score

    def reward_test_sets(self) -> dict[str, list]:
        """The reward tests by set (public, generated, all), the non-empty ones."""
        return reward_test_sets(self.problem, self.reward_tests)

    def reward_test_set(self) -> list:
        return [test for tests in self.reward_test_sets().values() for test in tests]

    def _finish(self, code: str, info: dict[str, Any]) -> float:
        sets = self.reward_test_sets()
        tests = [test for tests in sets.values() for test in tests]
        info.update(code=code, reward_tests=self.reward_tests, tests_total=len(tests))
        if tests:
            # CPU seconds on these tests: from the reference's calibrated time ("reference"), or T_base ("base")
            limit, source = self.time_limits.for_sets(self.problem.reference_seconds, list(sets))
            info.update(time_limit_s=limit, time_limit_source=source)
            result = run_tests(self.problem, code, tests, self.sandbox, timeout_s=limit)
            compiled, fraction = result.compiled, result.pass_fraction
            info.update(status=result.status, compiled=compiled, pass_fraction=fraction,
                        tests_passed=sum(t.passed for t in result.tests))
        else:
            compiled, fraction = parses(code), 0.0
            info.update(status="no_reward_tests", compiled=compiled, pass_fraction=0.0, tests_passed=0)
        reward = terminal_reward(compiled, fraction, self.reward_config)
        info["terminal_reward"] = reward
        if self.reward_config.aggregate:
            reward = aggregate_reward(reward, self.process_rewards, self.training_step, self.reward_config)
        return reward

    # -- observation, rendering, state -----------------------------------------------------------------
    def trajectory_text(self) -> str:
        return format_trajectory(self.steps)

    def _observation(self) -> dict[str, Any]:
        allowed = self.allowed_kinds()
        return {
            "problem": self._problem_text,
            "trajectory": _clip(self.trajectory_text(), self._trajectory_chars),
            "step": min(self.actions_taken, self.max_steps),
            "allowed": np.array([kind in allowed for kind in STEP_KINDS], dtype=np.int8),
        }

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        header = "Problem %s\n%s\n" % (self.problem.id, self._problem_text) if self.problem else ""
        return header + "\n--- trajectory ---\n" + self.trajectory_text() + "\n"

    def get_state(self) -> dict[str, Any]:
        """The episode as plain, picklable data (no test content): restore it with set_state."""
        return {
            "problem_id": self.problem.id if self.problem else None,
            "steps": [[step.kind, step.text] for step in self.steps],
            "process_rewards": list(self.process_rewards),
            "actions_taken": self.actions_taken,
            "done": self.done,
            "rng": copy.deepcopy(self.np_random.bit_generator.state),
        }

    def set_state(self, state: dict[str, Any]) -> dict[str, Any]:
        """Restore an episode saved by get_state; returns its observation."""
        problem_id = state["problem_id"]
        if problem_id is not None and problem_id not in self._by_id:
            raise KeyError("no problem %r in this environment" % problem_id)
        self.problem = self._by_id[problem_id] if problem_id is not None else None
        self._problem_text = render_problem(self.problem) if self.problem else ""
        self.steps = [Step(kind, text) for kind, text in state["steps"]]
        self.process_rewards = list(state["process_rewards"])
        self.actions_taken, self.done = int(state["actions_taken"]), bool(state["done"])
        self.np_random.bit_generator.state = copy.deepcopy(state["rng"])
        return self._observation()


def parses(code: str) -> bool:
    """Syntax check only (parsing, never executing) for episodes without reward tests."""
    try:
        ast.parse(code)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return False
    return True
