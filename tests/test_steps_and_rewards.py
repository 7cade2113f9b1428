"""The step format parser and the reward arithmetic."""

from __future__ import annotations

import pytest

from codegym.envs.steps import StepParseError, extract_code, format_step, parse_step
from codegym.rewards import RewardConfig, aggregate_reward, aggregation_weight, terminal_reward


@pytest.mark.parametrize("kind", ["define", "refine", "translate"])
def test_format_then_parse_round_trips(kind):
    text = "def f(x):\n    return x" if kind == "translate" else "1. do it\n2. done"
    step = parse_step(format_step(kind, text))
    assert step.kind == kind and step.text == text


@pytest.mark.parametrize("action, kind", [
    ("[define]\n1. loop", "define"),
    ("Step 1: Define\n1. loop", "define"),
    ("### Refine\nmore", "refine"),
    ("**Refine:** more", "refine"),
    ("Step 3 - translate\n```python\nx = 1\n```", "translate"),
    ("<translate>\n```py\nx = 1\n```", "translate"),
    ("[TRANSLATE]\nx = 1\n", "translate"),
    ("  [definition] structure", "define"),
])
def test_tolerant_headers(action, kind):
    assert parse_step(action).kind == kind


@pytest.mark.parametrize("action, reason", [
    ("1. loop over items", "starts with its kind"),
    ("[define]\n   ", "empty"),
    ("[translate]\nthis is not python at all!", "Python code"),
    ("[translate]\n```python\n```", "Python code"),
    (42, "string"),
])
def test_invalid_steps_say_why(action, reason):
    with pytest.raises(StepParseError, match=reason):
        parse_step(action)


def test_extract_code_prefers_first_fence():
    assert extract_code("text\n```python\na = 1\n```\n```python\nb = 2\n```") == "a = 1"
    assert extract_code("```python\nunterminated = 1") == "unterminated = 1"


def test_format_step_rejects_unknown_kind():
    with pytest.raises(ValueError):
        format_step("think", "x")


@pytest.mark.parametrize("alpha, compiled, fraction, expected", [
    (0.0, True, 0.5, 0.5), (0.2, True, 0.5, 0.6), (0.2, False, 0.0, 0.0), (1.0, True, 0.0, 1.0),
])
def test_continuous_terminal_reward(alpha, compiled, fraction, expected):
    assert terminal_reward(compiled, fraction, RewardConfig(alpha=alpha)) == pytest.approx(expected)


def test_binary_terminal_reward_thresholds():
    config = RewardConfig(mode="binary", tau_pass=0.8, tau_fail=0.2, alpha=0.5)
    assert terminal_reward(True, 0.9, config) == 1.0
    assert terminal_reward(True, 0.1, config) == 0.0
    assert terminal_reward(True, 0.5, config) == pytest.approx(0.75)


def test_aggregated_reward_by_hand():
    config = RewardConfig(gamma=0.9, alpha_start=1.0, alpha_decay=0.01, alpha_min=0.1)
    assert aggregation_weight(0, config) == 1.0
    assert aggregation_weight(50, config) == pytest.approx(0.5)
    assert aggregation_weight(500, config) == pytest.approx(0.1)
    # t=50: 0.5 * 1.0 + 0.5 * (0.8 + 0.9 * 0.4) / 2 = 0.5 + 0.29
    assert aggregate_reward(1.0, [0.8, 0.4], 50, config) == pytest.approx(0.79)
    assert aggregate_reward(0.3, [], 50, config) == 0.3


@pytest.mark.parametrize("kwargs", [{"alpha": 1.5}, {"mode": "x"}, {"tau_pass": 0.1, "tau_fail": 0.5}, {"gamma": 0}])
def test_reward_config_validation(kwargs):
    with pytest.raises(ValueError):
        RewardConfig(**kwargs)
