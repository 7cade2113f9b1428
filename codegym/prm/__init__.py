"""Process reward models: score each reasoning step of a trajectory."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from ..datasets import Problem
from ..envs.steps import Step


@runtime_checkable
class ProcessRewardModel(Protocol):
    """Anything with ``score(problem, steps) -> one float per step`` (values usually in [0, 1]).

    The environment calls it after every non-terminal step and uses the last value as that
    step's process reward. It only ever sees the public view of the problem's tests."""

    def score(self, problem: Problem, steps: Sequence[Step]) -> list[float]: ...
