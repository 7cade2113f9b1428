"""Forgery-proof execution of untrusted Python: see :class:`Sandbox`."""

from .compare import stdout_matches, values_equal
from .sandbox import STATUSES, RunResult, Sandbox, SandboxError, TestOutcome
from .testcases import LiteralTestError, TestCase

__all__ = ["STATUSES", "LiteralTestError", "RunResult", "Sandbox", "SandboxError", "TestCase", "TestOutcome",
           "stdout_matches", "values_equal"]
