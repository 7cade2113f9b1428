"""codegym: reasoning before coding (define -> refine -> translate) as a Gymnasium RL problem.

``import codegym`` registers the environments ``CodeGym/Starter-v0``, ``CodeGym/HumanEval-v0``,
``CodeGym/MBPP-v0`` and ``CodeGym/Custom-v0``. Environments hold public problems only; hidden
tests are behind a :class:`Judge` (``make_with_judge``, or ``load_dataset(...).judge()``).
"""

from .datasets import AnswerKey, Problem, load_dataset
from .envs import CodeReasoningEnv, format_step, make_with_judge, parse_step, register_envs
from .execution import RunResult, Sandbox, TestCase
from .judge import Judge, Verdict, shared_sandbox
from .rewards import RewardConfig

__version__ = "0.1.0"

register_envs()

__all__ = ["AnswerKey", "CodeReasoningEnv", "Judge", "Problem", "RewardConfig", "RunResult", "Sandbox", "TestCase", "Verdict",
           "__version__", "format_step", "load_dataset", "make_with_judge", "parse_step", "register_envs",
           "shared_sandbox"]
