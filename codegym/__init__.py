"""codegym: reasoning before coding (define -> refine -> translate) as a Gymnasium RL problem.

``import codegym`` registers the environments ``CodeGym/Starter-v0``, ``CodeGym/HumanEval-v0``,
``CodeGym/MBPP-v0`` and ``CodeGym/Custom-v0``.
"""

from .datasets import Problem, load_dataset
from .envs import CodeReasoningEnv, format_step, parse_step, register_envs
from .execution import RunResult, Sandbox, TestCase
from .judge import evaluate_submission, shared_sandbox
from .rewards import RewardConfig

__version__ = "0.1.0"

register_envs()

__all__ = ["CodeReasoningEnv", "Problem", "RewardConfig", "RunResult", "Sandbox", "TestCase", "__version__",
           "evaluate_submission", "format_step", "load_dataset", "parse_step", "register_envs", "shared_sandbox"]
