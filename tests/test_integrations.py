"""The verl and OpenRLHF reward adapters: the documented signatures, and the same rewards as
codegym.rewards.CodeReward (the packages themselves do not install on CPU machines here)."""

from __future__ import annotations

import inspect

import pytest

from codegym.envs.steps import format_step

RIGHT = format_step("translate", "import math\ndef gcd(a, b):\n    return math.gcd(a, b)\n")
WRONG = format_step("translate", "def gcd(a, b):\n    return a\n")


@pytest.fixture
def starter(monkeypatch):
    from codegym.integrations import reward_for

    monkeypatch.setenv("CODEGYM_ENV", "CodeGym/Starter-v0")
    monkeypatch.setenv("CODEGYM_SPLIT", "")
    monkeypatch.setenv("CODEGYM_MARK_TRAINING", "1")  # the starter set is not marked for training
    reward_for.cache_clear()
    yield
    reward_for.cache_clear()


def test_verl_compute_score_scores_one_completion(starter):
    from codegym.integrations.verl_reward import compute_score

    assert list(inspect.signature(compute_score).parameters)[:4] == ["data_source", "solution_str", "ground_truth",
                                                                     "extra_info"]
    assert compute_score("codegym", RIGHT, "starter/gcd") == 1.0
    assert compute_score("codegym", WRONG, "starter/gcd", extra_info={"split": "train"}) == 0.0


def test_openrlhf_reward_func_scores_a_batch(starter):
    from codegym.integrations import configured_reward
    from codegym.integrations.openrlhf_reward import reward_func

    prompts = ["<prompt one>", "<prompt two>"]
    queries = [prompts[0] + RIGHT, prompts[1] + WRONG]
    out = reward_func(queries, prompts, ["starter/gcd", "starter/gcd"])
    assert set(out) == {"rewards", "scores", "extra_logs"} and out["rewards"].tolist() == [1.0, 0.0]
    assert out["rewards"].tolist() == configured_reward()(prompts, [RIGHT, WRONG], problem_id=["starter/gcd"] * 2)


def test_an_evaluation_split_is_refused(monkeypatch, mbpp_dir):
    from codegym.integrations import reward_for
    from codegym.integrations.verl_reward import compute_score

    monkeypatch.setenv("CODEGYM_DATA_PATH", str(mbpp_dir))
    monkeypatch.setenv("CODEGYM_SPLIT", "validation")
    reward_for.cache_clear()
    try:
        with pytest.raises(ValueError, match="not a training split"):
            compute_score("codegym", RIGHT, "MBPP/511")
    finally:
        reward_for.cache_clear()
