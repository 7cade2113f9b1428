"""The environment: order of actions, rewards, hidden-test isolation, state, checker, vector envs."""

from __future__ import annotations

import json
import pickle

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import codegym
from codegym import Judge, Problem, TestCase, format_step
from codegym.datasets import problem_to_record, split_problem
from codegym.envs import ENV_IDS

SECRET = "HIDDEN-TEST-CANARY-9f3e"


def _problem_and_key():
    return split_problem(
        id="canary", statement="Return the string given, followed by '!'.", entry_point="shout",
        signature="def shout(s: str) -> str",
        public_tests=[TestCase.call("shout", ["hi"], "hi!"), TestCase.call("shout", ["a"], "a!")],
        hidden_tests=[TestCase.call("shout", [SECRET], SECRET + "!")],
        reference_solutions=["def shout(s):\n    return s + '!'\n"])


def _problem() -> Problem:
    return _problem_and_key()[0]


GOOD = "def shout(s):\n    return s + '!'\n"
HALF = "def shout(s):\n    return 'hi!'\n"


@pytest.fixture
def env(sandbox):
    return codegym.CodeReasoningEnv(problems=[_problem()], sandbox=sandbox, max_refine=2, max_steps=6)


def _play(env, *actions):
    env.reset(seed=0)
    out = None
    for action in actions:
        out = env.step(action)
    return out


def test_define_refine_translate_scores_public_tests(env):
    obs, info = env.reset(seed=0)
    assert info["problem_id"] == "canary" and list(obs["allowed"]) == [1, 0, 0] and obs["trajectory"] == ""
    obs, reward, terminated, truncated, info = env.step(format_step("define", "append a bang"))
    assert (reward, terminated, truncated, info["invalid_action"]) == (0.0, False, False, None)
    assert list(obs["allowed"]) == [0, 1, 1] and obs["step"] == 1
    env.step(format_step("refine", "return s + '!'"))
    obs, reward, terminated, truncated, info = env.step(format_step("translate", GOOD))
    assert terminated and not truncated and reward == 1.0
    assert info["status"] == "passed" and info["tests_total"] == 2 and info["compiled"]
    assert list(obs["allowed"]) == [0, 0, 0]
    with pytest.raises(RuntimeError):
        env.step(format_step("define", "again"))


def test_partial_pass_fraction_and_alpha(sandbox):
    env = codegym.CodeReasoningEnv(problems=[_problem()], sandbox=sandbox, alpha=0.2)
    *_, info = _play(env, format_step("define", "x"), format_step("translate", HALF))
    assert info["pass_fraction"] == 0.5
    reward = _play(env, format_step("define", "x"), format_step("translate", HALF))[1]
    assert reward == pytest.approx(0.2 + 0.8 * 0.5)
    reward = _play(env, format_step("define", "x"), format_step("translate", "def shout(s) return"))[1]
    assert reward == 0.0


@pytest.mark.parametrize("actions, reason", [
    ([format_step("refine", "x")], "refine is not allowed"),
    ([format_step("translate", GOOD)], "translate is not allowed"),
    ([format_step("define", "x"), format_step("define", "y")], "define is not allowed"),
    (["no header"], "starts with its kind"),
    ([format_step("define", "x"), format_step("refine", "a"), format_step("refine", "b"), format_step("refine", "c")],
     "refine is not allowed"),
])
def test_order_violations_never_raise(env, actions, reason):
    obs, reward, terminated, truncated, info = _play(env, *actions)
    assert reason in info["invalid_action"]
    assert reward == -0.1 and not terminated and not truncated


def test_invalid_step_is_not_recorded_and_too_long_is_invalid(env):
    env.reset(seed=0)
    env.step(format_step("define", "plan"))
    before = env.unwrapped.get_state()["steps"]
    _, _, _, _, info = env.step("[refine]\n" + "x" * 5000)
    assert "max_step_chars" in info["invalid_action"]
    assert env.unwrapped.get_state()["steps"] == before


def test_truncate_on_invalid_and_at_step_limit(sandbox):
    env = codegym.CodeReasoningEnv(problems=[_problem()], sandbox=sandbox, on_invalid="truncate", invalid_penalty=-1)
    _, reward, terminated, truncated, _ = _play(env, "garbage")
    assert (reward, terminated, truncated) == (-1, False, True)
    env = codegym.CodeReasoningEnv(problems=[_problem()], sandbox=sandbox, max_steps=3, max_refine=5)
    _, _, terminated, truncated, _ = _play(env, format_step("define", "a"), format_step("refine", "b"),
                                           format_step("refine", "c"))
    assert truncated and not terminated


def test_hidden_tests_unreachable_through_obs_info_state(env, sandbox):
    seen = []
    obs, info = env.reset(seed=0)
    seen += [obs, info, env.unwrapped.get_state(), env.unwrapped.render()]
    for action in (format_step("define", "x"), "bad", format_step("translate", GOOD)):
        obs, reward, terminated, truncated, info = env.step(action)
        seen += [obs, info, env.unwrapped.get_state()]
    assert SECRET not in repr(seen) and SECRET not in str(pickle.dumps(seen))
    # the judge, which the environment never holds, is where hidden tests live
    problem, key = _problem_and_key()
    judge = Judge({problem.id: key}, sandbox)
    assert judge.evaluate(env.unwrapped.problem, GOOD).passed
    assert not judge.evaluate("canary", HALF).passed
    # and its verdicts never enter the result cache that environments share
    hits = sandbox.cache_hits
    verdict = judge.evaluate("canary", HALF)
    assert (verdict.passed, verdict.tests_passed, verdict.tests_total) == (False, 0, 1) and sandbox.cache_hits == hits
    assert SECRET not in repr(verdict)  # a verdict carries no message or output
    sandbox.run(HALF, key.hidden_tests)
    assert sandbox.run(HALF, key.hidden_tests).cached


def test_reward_tests_all_only_on_training_problems(sandbox):
    with pytest.raises(ValueError, match="split marked for training"):
        codegym.CodeReasoningEnv(problems=[_problem()], sandbox=sandbox, reward_tests="all")
    problem, _ = split_problem(id="t", statement="shout", entry_point="shout", training=True,
                               public_tests=[TestCase.call("shout", ["hi"], "hi!")],
                               hidden_tests=[TestCase.call("shout", ["x"], "x!"), TestCase.call("shout", ["y"], "y!")])
    env = codegym.CodeReasoningEnv(problems=[problem], sandbox=sandbox, reward_tests="all")
    *_, info = _play(env, format_step("define", "x"), format_step("translate", HALF))
    assert info["tests_total"] == 2 and info["tests_passed"] == 0
    with pytest.raises(ValueError, match="training problems only"):
        Problem(id="e", statement="s", all_tests=[TestCase.call("f", [], 1)])


def test_state_round_trip_restores_episode_exactly(env):
    env.reset(seed=3)
    env.step(format_step("define", "plan"))
    state = pickle.loads(pickle.dumps(env.unwrapped.get_state()))
    obs_a = env.step(format_step("refine", "detail"))[0]
    env.step(format_step("translate", GOOD))
    restored = env.unwrapped.set_state(state)
    assert restored["trajectory"] == format_step("define", "plan")
    obs_b = env.step(format_step("refine", "detail"))[0]
    assert obs_a["trajectory"] == obs_b["trajectory"] and obs_a["step"] == obs_b["step"]
    assert env.unwrapped.get_state()["rng"] == state["rng"]


class _LengthPRM:
    def score(self, problem, steps):
        return [min(1.0, len(step.text) / 10) for step in steps]


def test_process_rewards_and_aggregation(sandbox):
    env = codegym.CodeReasoningEnv(problems=[_problem()], sandbox=sandbox, prm=_LengthPRM())
    env.reset(seed=0)
    assert env.step(format_step("define", "12345"))[1] == 0.5
    env = codegym.CodeReasoningEnv(problems=[_problem()], sandbox=sandbox, prm=_LengthPRM(), aggregate=True)
    env.unwrapped.training_step = 50
    env.reset(seed=0)
    assert env.step(format_step("define", "12345"))[1] == 0.0
    assert env.step(format_step("refine", "1234567890"))[1] == 0.0
    reward = env.step(format_step("translate", HALF))[1]
    assert reward == pytest.approx(0.5 * 0.5 + 0.5 * (0.5 + 0.9 * 1.0) / 2)


def test_seeded_reset_and_named_problem():
    env = gym.make("CodeGym/Starter-v0")
    first = [env.reset(seed=7)[1]["problem_id"] for _ in range(2)]
    assert first[0] == first[1]
    assert env.reset(options={"problem_id": "starter/gcd"})[1]["problem_id"] == "starter/gcd"
    with pytest.raises(KeyError):
        env.reset(options={"problem_id": "nope"})


def test_real_unicode_statement_fits_observation_space():
    problem = Problem(id="u", statement="Größte Zahl → 中文 ✓\n\tΣ", entry_point="f")
    env = codegym.CodeReasoningEnv(problems=[problem])
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)


@pytest.mark.parametrize("env_id", sorted(ENV_IDS))
def test_check_env_for_every_registered_id(env_id, mbpp_dir, tmp_path):
    kwargs = {}
    if env_id == "CodeGym/MBPP-v0":
        kwargs = {"data_path": str(mbpp_dir), "split": "validation"}
    if env_id == "CodeGym/Custom-v0":
        path = tmp_path / "one.jsonl"
        starter = codegym.load_dataset("starter")
        first = starter.problems[0]
        path.write_text(json.dumps(problem_to_record(first, starter.answer_keys[first.id])) + "\n")
        kwargs = {"data_path": str(path)}
    check_env(gym.make(env_id, **kwargs).unwrapped, skip_render_check=False)
    check_env(gym.make("codegym:" + env_id, **kwargs).unwrapped)


def test_render_ansi():
    env = gym.make("CodeGym/Starter-v0", render_mode="ansi")
    env.reset(options={"problem_id": "starter/gcd"})
    env.step(format_step("define", "euclid"))
    text = env.render()
    assert "starter/gcd" in text and "[define]\neuclid" in text


def _make():
    return gym.make("CodeGym/Starter-v0")


@pytest.mark.parametrize("vector_cls", [gym.vector.SyncVectorEnv, gym.vector.AsyncVectorEnv])
def test_vector_envs(vector_cls):
    envs = vector_cls([_make, _make])
    try:
        obs, info = envs.reset(seed=1, options={"problem_id": "starter/gcd"})
        assert isinstance(obs["problem"], tuple) and len(obs["problem"]) == 2
        reference = "def gcd(a, b):\n    while b:\n        a, b = b, a % b\n    return a\n"
        envs.step((format_step("define", "euclid"), "oops"))
        obs, reward, terminated, truncated, info = envs.step((format_step("translate", reference),
                                                               format_step("define", "x")))
        assert list(terminated) == [True, False]
        assert reward[0] == 1.0 and np.all(obs["step"] >= 0)
    finally:
        envs.close()
