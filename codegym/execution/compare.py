"""Trusted comparisons on decoded plain data and on program output."""

from __future__ import annotations

import math
import re
from typing import Any

_INT_TOKEN = re.compile(r"[+-]?\d+\Z")
_DEFAULT_STDIO_TOL = 1e-6


def values_equal(got: Any, expected: Any, float_tol: float | None = None) -> bool:
    """Python ``==`` on builtin values; with ``float_tol``, floats compare approximately
    (relative and absolute tolerance, NaN equal to NaN) anywhere inside containers."""
    if float_tol is None:
        return bool(got == expected)
    return _close(got, expected, float_tol)


def _close(got: Any, expected: Any, tol: float) -> bool:
    if isinstance(got, float) or isinstance(expected, float):
        if not isinstance(got, (int, float)) or not isinstance(expected, (int, float)):
            return False
        if isinstance(got, bool) or isinstance(expected, bool):
            return got == expected
        if math.isnan(got) or math.isnan(expected):
            return math.isnan(got) and math.isnan(expected)
        return math.isclose(got, expected, rel_tol=tol, abs_tol=tol)
    if isinstance(got, (list, tuple)) and type(got) is type(expected):
        return len(got) == len(expected) and all(_close(g, e, tol) for g, e in zip(got, expected))
    if isinstance(got, dict) and isinstance(expected, dict):
        return got.keys() == expected.keys() and all(_close(got[k], expected[k], tol) for k in got)
    return bool(got == expected)


def normalise_output(text: str) -> list[list[str]]:
    """Lines of whitespace-separated tokens: line endings and trailing blank space ignored."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    return [line.split() for line in lines]


def _token_equal(got: str, expected: str, tol: float) -> bool:
    if got == expected:
        return True
    if _INT_TOKEN.match(expected):
        return False  # integers are exact: no tolerance can turn 5e16+1 into 5e16
    try:
        want = float(expected)
        have = float(got)
    except ValueError:
        return False
    if math.isnan(want) or math.isnan(have):
        return False
    return math.isclose(have, want, rel_tol=tol, abs_tol=tol)


def stdout_matches(got: str, expected: str, float_tol: float = _DEFAULT_STDIO_TOL) -> bool:
    """Compare program output token by token, line by line (case-sensitive)."""
    got_lines, expected_lines = normalise_output(got), normalise_output(expected)
    if len(got_lines) != len(expected_lines):
        return False
    for got_tokens, expected_tokens in zip(got_lines, expected_lines):
        if len(got_tokens) != len(expected_tokens):
            return False
        if not all(_token_equal(g, e, float_tol) for g, e in zip(got_tokens, expected_tokens)):
            return False
    return True
