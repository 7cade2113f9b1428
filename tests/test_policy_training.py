"""Policy optimization (#14): data builders from search trees, prompt identity with the environment,
the TRL reward function, the GRPO episode adapter, the SB3 candidate-choice wrapper, and a tiny-model
training test per method, resume included."""

from __future__ import annotations

import asyncio
import json

import gymnasium as gym
import numpy as np
import pytest

from codegym.envs.steps import format_step

pytest.importorskip("trl")

RIGHT_GCD = "[translate]\n```python\nimport math\ndef gcd(a, b):\n    return math.gcd(a, b)\n```"
PROBLEM = "MBPP/602"  # first_repeated_char, a training problem
RIGHT = ("def first_repeated_char(str1):\n    for index, c in enumerate(str1):\n"
         "        if str1[:index + 1].count(c) > 1:\n            return c\n    return 'None'")
WRONG = "def first_repeated_char(str1):\n    return str1[0]"


def _node(node_id, kind, text, visits, value, reward=None, children=()):
    return {"id": node_id, "kind": kind, "text": text, "visits": visits, "value": value, "reward": reward,
            "terminal": reward is not None, "children": list(children)}


def _tree():
    """Define A (Q 0.75) with a passing and a failing translate, define B (Q 0.5) with a passing
    one, define C (Q 0) with a failing one."""
    a = _node(1, "define", "1. Walk the string and count what was seen.", 4, 0.75, children=[
        _node(2, "translate", RIGHT, 1, 1.0, 1.0), _node(3, "translate", WRONG, 1, 0.0, 0.0)])
    b = _node(4, "define", "1. Return the first character seen twice, else None.", 2, 0.5, children=[
        _node(5, "translate", RIGHT + "\n", 1, 1.0, 1.0)])
    c = _node(6, "define", "1. Give back the first letter.", 1, 0.0, children=[_node(7, "translate", WRONG + " ", 1, 0.0, 0.0)])
    return _node(0, "root", "", 7, 0.5, children=[a, b, c])


@pytest.fixture
def run_dir(tmp_path, mbpp_dir):
    def make(split="train"):
        folder = tmp_path / ("run-" + split)
        (folder / "trees").mkdir(parents=True)
        config = {"env": "CodeGym/MBPP-v0", "data_path": str(mbpp_dir), "split": split, "policy": "scripted",
                  "template": "pseudocode"}
        (folder / "config.json").write_text(json.dumps({"config": config}))
        problem = PROBLEM if split == "train" else "MBPP/511"
        (folder / "trees" / "0.json").write_text(json.dumps({"meta": {"problem_id": problem}, "root": _tree()}))
        return folder

    return make


@pytest.fixture(scope="module")
def renderer():
    from transformers import AutoTokenizer

    from agents.policy_data import ChatRenderer
    from codegym.training import model_path

    return ChatRenderer(AutoTokenizer.from_pretrained(model_path("smollm2")))


def test_dplus_ranks_successful_paths_by_q_and_pairs_keep_their_margin(run_dir, renderer):
    from agents.policy_data import dplus_rows, load_training_run, step_pair_rows

    run = load_training_run(run_dir())
    best = dplus_rows(run, renderer, top_paths=1)
    assert [(r["kind"], r["q"]) for r in best] == [("define", 0.875), ("translate", 0.875)]  # path A: (0.75 + 1) / 2
    assert best[1]["completion"] == RIGHT + "\n```" + renderer.end_of_turn
    two = dplus_rows(run, renderer, top_paths=2)
    assert [r["q"] for r in two] == [0.875, 0.875, 0.75, 0.75]  # then path B; C never succeeded
    pairs = step_pair_rows(run, renderer, margin=0.5)
    assert sorted((p["kind"], p["margin"]) for p in pairs) == [("define", 0.5), ("define", 0.75), ("translate", 1.0)]
    assert all(p["chosen"] != p["rejected"] and p["split"] == "train" for p in pairs)
    assert len(step_pair_rows(run, renderer, margin=0.6)) == 2  # B over C (0.5) is dropped
    with pytest.raises(ValueError, match="not a training split"):
        load_training_run(run_dir("validation"))


def test_policy_rows_are_exactly_what_the_environment_policy_sees(run_dir, renderer, mbpp_dir):
    """Replay each D+ path in the environment, build the step request the way agents do, render it
    with the transformers and CTranslate2 backends: the row's prompt is that text, character for
    character, and the row's completion makes the same env action."""
    from agents import EpisodeRunner
    from agents.policy_data import dplus_rows, load_training_run
    from codegym.envs.steps import format_trajectory
    from codegym.llm import load
    from codegym.policy import StepPolicy

    run = load_training_run(run_dir())
    rows = dplus_rows(run, renderer, top_paths=2)
    env = gym.make("CodeGym/MBPP-v0", data_path=str(mbpp_dir), split="train")
    backends = [load("hf:smollm2"), load("smollm2")]
    paths = [rows[0:2], rows[2:4]]
    for path in paths:
        runner = EpisodeRunner(env, PROBLEM)
        state = runner.root_state
        for row in path:
            for backend in backends:
                policy = StepPolicy(backend)
                request = policy.request(runner.problem_text, format_trajectory(state["steps"]), row["kind"], runner.stdio)
                assert backend.prompt_text(request) == row["prompt"]
            action = policy.template.action(row["kind"], row["completion"].removesuffix(renderer.end_of_turn))
            outcome = runner.apply(state, action)
            assert outcome.invalid is None
            state = outcome.state
        assert outcome.terminal and outcome.reward == 1.0


def test_code_reward_equals_sandbox_verdicts_and_the_environment(sandbox):
    from codegym.datasets import load_dataset
    from codegym.judge import run_tests
    from codegym.rewards import CodeReward, RewardConfig, terminal_reward

    problems = load_dataset("starter", training=True).problems
    gcd = next(p for p in problems if p.id == "starter/gcd")
    codes = ["import math\ndef gcd(a, b):\n    return math.gcd(a, b)\n", "def gcd(a, b):\n    return a\n",
             "def gcd(a, b) return", "def gcd(a, b):\n    while True: pass\n"]
    completions = [format_step("translate", c) for c in codes] + [codes[0] + "```", "[define]\n1. a plan"]
    reward = CodeReward(problems, sandbox=sandbox, time_limit_base_s=0.5)
    got = reward(["p"] * 6, completions, problem_id=[gcd.id] * 6)
    expected = []
    for code in codes + codes[:1]:
        result = run_tests(gcd, code, gcd.public_tests, sandbox, timeout_s=0.5)
        expected.append(terminal_reward(result.compiled, result.pass_fraction, RewardConfig()))
    assert got == expected + [-0.1] and got[0] == 1.0 and got[1] < 1.0  # text after the prefix is a program too
    env = gym.make("CodeGym/Starter-v0", problems=problems, sandbox=sandbox, time_limit_base_s=0.5)
    for code, value in zip(codes, got):
        env.reset(options={"problem_id": gcd.id})
        env.step(format_step("define", "1. plan"))
        assert env.step(format_step("translate", code))[1] == value
    chat = [[{"role": "assistant", "content": c}] for c in completions[:2]]
    assert reward(["p"] * 2, chat, problem_id=[gcd.id] * 2) == got[:2]
    binary = CodeReward(problems, RewardConfig(mode="binary", tau_fail=0.5), reward_tests="all", sandbox=sandbox)
    assert binary(["p"] * 2, completions[:2], problem_id=[gcd.id] * 2) == [1.0, 0.0]  # 1 of 6 full tests: fail band

    async def inside_a_loop():
        return await reward.acall(["p"] * 2, completions[:2], problem_id=[gcd.id] * 2)

    assert asyncio.run(inside_a_loop()) == got[:2]
    evaluation = load_dataset("starter").problems
    with pytest.raises(ValueError, match="training"):
        CodeReward(evaluation, reward_tests="all")
    # as the environment: code after the prefix may start with "[", an over-long step is invalid,
    # and a problem without reward tests gets the syntax check alone
    import dataclasses

    bare = dataclasses.replace(gcd, id="bare", public_tests=[])
    edge = CodeReward(problems + [bare], RewardConfig(alpha=0.5), sandbox=sandbox)
    listed = "[print(x) for x in []]\nimport math\ndef gcd(a, b):\n    return math.gcd(a, b)\n```"
    long = format_step("translate", "x = 1\n" * 1000)
    assert edge(["p"] * 4, [listed, long, RIGHT_GCD, "def (("], problem_id=[gcd.id, gcd.id, "bare", "bare"]) == \
        [1.0, -0.1, 0.5, 0.0]
    env = gym.make("CodeGym/Starter-v0", problems=[bare], sandbox=sandbox, alpha=0.5)
    env.reset(options={"problem_id": "bare"})
    env.step(format_step("define", "1. plan"))
    assert env.step(RIGHT_GCD)[1] == 0.5


def _grpo_config(tiny, tmp_path, **overrides):
    from agents.grpo import GRPOTrainConfig

    options = dict(model=tiny, out=str(tmp_path / "grpo"), env="CodeGym/Starter-v0", split=None, training=True,
                   problems=2, episodes=2, max_steps=1, learning_rate=1e-2, export_ct2=False)
    return GRPOTrainConfig(**{**options, **overrides})


def test_grpo_trains_only_on_a_training_split(tiny, tmp_path, mbpp_dir):
    """MBPP validation, MBPP marked for training, and unmarked custom data are all refused."""
    from agents.grpo import make_training_env

    for overrides in (dict(env="CodeGym/MBPP-v0", data_path=str(mbpp_dir), split="validation", training=None),
                      dict(env="CodeGym/MBPP-v0", data_path=str(mbpp_dir), split="validation", training=True),
                      dict(training=None)):
        with pytest.raises(ValueError, match="not a training split|splits of its own"):
            make_training_env(_grpo_config(tiny, tmp_path, **overrides))


def test_ppo_choice_trains_only_on_a_training_split(tmp_path, mbpp_dir, capsys):
    from agents.ppo_choice import PPOChoiceConfig, make_choice_env
    from codegym.cli import main

    for training in (None, True):
        config = PPOChoiceConfig(out=str(tmp_path / "ppo"), env="CodeGym/MBPP-v0", data_path=str(mbpp_dir),
                                 split="validation", training=training)
        with pytest.raises(ValueError, match="not a training split|splits of its own"):
            make_choice_env(config)
    with pytest.raises(ValueError, match="config.training"):  # marking applies to the split it names
        make_choice_env(PPOChoiceConfig(out=str(tmp_path / "ppo"), data_path=str(mbpp_dir)), training=True)
    out = tmp_path / "never"
    assert main(["train", "ppo-choice", "--data-path", str(mbpp_dir), "--split", "validation", "--out", str(out)]) == 2
    assert "not a training split" in capsys.readouterr().err and not out.exists()


def test_episode_rollout_plays_define_then_translate_with_the_environments_prompts(tiny, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from agents.grpo import EpisodeRollout, make_training_env
    from codegym.envs.steps import format_trajectory

    config = _grpo_config(tiny, tmp_path, refines=1)
    env, problems = make_training_env(config)
    tokenizer = AutoTokenizer.from_pretrained(tiny)
    rollout = EpisodeRollout(config, env, tokenizer)
    model = AutoModelForCausalLM.from_pretrained(tiny)
    seen = []
    original = env.step

    def recording_step(action):
        seen.append((env.problem.id, format_trajectory(env.steps), action))
        return original(action)

    env.step = recording_step
    episodes = rollout.play(model, [problems[0].id, problems[0].id], seed=3)
    assert len(episodes) == 2 and all(len(e["steps"]) == 3 for e in episodes)  # define, refine, translate
    assert [a.split("\n")[0] for _, _, a in seen[:3]] == ["[define]", "[define]", "[refine]"]
    for (prompt_ids, tokens, logprobs), kind in zip(episodes[0]["steps"], config.kinds):
        assert len(tokens) == len(logprobs) > 0 and all(lp <= 0 for lp in logprobs)
        assert tokenizer.decode(prompt_ids).endswith(rollout.template.prefixes[kind])
    # the translate step's prompt is the environment's request after that episode's define and refine
    problem_id, trajectory, _ = seen[4]
    env.reset(options={"problem_id": problem_id})
    expected = rollout.render(rollout.template.request(env.unwrapped._problem_text, trajectory, "translate"))
    assert tokenizer.decode(episodes[0]["steps"][2][0]) == expected
    assert all(e["done"] and isinstance(e["return"], float) for e in episodes)  # the translate ended each


def test_a_grpo_step_moves_probability_toward_the_better_episode(tiny, tmp_path, monkeypatch):
    """Two episodes of one problem, returns forced to 1 and 0: after one GRPO update the model
    gives the rewarded episode's steps more log-probability and the other's less."""
    import torch
    from transformers import AutoModelForCausalLM

    from agents import grpo

    played = []
    original = grpo.EpisodeRollout.play

    def rigged(self, model, problem_ids, seed):
        episodes = original(self, model, problem_ids, seed)
        for episode, value in zip(episodes, [1.0, 0.0]):
            episode["return"] = value
        played.append(episodes)
        return episodes

    monkeypatch.setattr(grpo.EpisodeRollout, "play", rigged)
    config = _grpo_config(tiny, tmp_path, problems=1, learning_rate=3e-3)
    summary = grpo.train_grpo(config)

    def logprob(model, episode):
        total = 0.0
        for prompt_ids, tokens, _ in episode["steps"]:
            ids = torch.tensor([prompt_ids + tokens])
            with torch.no_grad():
                logits = model(ids).logits[0, len(prompt_ids) - 1:-1].float().log_softmax(-1)
            total += logits[torch.arange(len(tokens)), torch.tensor(tokens)].sum().item()
        return total

    before, after = AutoModelForCausalLM.from_pretrained(tiny), AutoModelForCausalLM.from_pretrained(summary["final"])
    good, bad = played[0]
    assert logprob(after, good) > logprob(before, good)
    assert logprob(after, bad) < logprob(before, bad)
    assert json.loads((tmp_path / "grpo" / "train_config.json").read_text())["episodes"] == 2


def test_sft_and_dpo_lower_their_loss_and_sft_resumes_from_its_checkpoint(run_dir, tiny, tmp_path, monkeypatch):
    import transformers

    from agents.expert_iteration import ExpertIterationConfig, train_expert_iteration
    from agents.step_dpo import StepDPOConfig, train_step_dpo

    common = dict(run=str(run_dir()), model=tiny, max_steps=10, batch_size=2, learning_rate=1e-3, export_ct2=False)
    sft = ExpertIterationConfig(out=str(tmp_path / "sft"), **common)
    first = train_expert_iteration(sft)
    assert first["rows"] == 4 and first["last_loss"] < first["first_loss"]
    assert (tmp_path / "sft" / "data.jsonl").read_text().count("\n") == 4
    executed = []
    step = transformers.Trainer.training_step
    monkeypatch.setattr(transformers.Trainer, "training_step", lambda self, *a, **k: executed.append(1) or step(self, *a, **k))
    sft.max_steps = 12
    resumed = train_expert_iteration(sft)  # continues from checkpoint-10: two more steps, not twelve
    assert len(executed) == 2 and resumed["steps"] == 12 and resumed["first_loss"] == first["first_loss"]
    dpo = train_step_dpo(StepDPOConfig(out=str(tmp_path / "dpo"), **{**common, "export_ct2": True}))
    assert dpo["rows"] == 3 and dpo["last_loss"] < dpo["first_loss"]
    from codegym.llm import load
    from codegym.policy import StepPolicy

    for spec in ("ct2:%s" % dpo["ct2"], "torch:%s" % dpo["final"], "hf:%s" % dpo["final"]):  # loads back as a policy
        [proposal] = StepPolicy(load(spec)).propose_many([("Add a and b.", "", "define", False)], max_new_tokens=4)[0]
        assert proposal.action.startswith("[define]\n1.") and proposal.completion.tokens > 0


def _choice_env(sandbox, seed=0):
    from agents.ppo_choice import CandidateChoice
    from codegym.datasets import load_dataset
    from codegym.llm.scripted import ScriptedBackend
    from codegym.policy import StepPolicy

    def script(prompt, seed):
        if prompt.endswith("```python\n"):  # right or wrong by the sample's seed
            return "import math\ndef gcd(a, b):\n    return math.gcd(a, b)\n" if seed % 2 else "def gcd(a, b):\n    return a\n"
        return " plan"

    problems = [p for p in load_dataset("starter", training=True).problems if p.id == "starter/gcd"]
    env = gym.make("CodeGym/Starter-v0", problems=problems, sandbox=sandbox, max_refine=0)

    def featurize(texts):  # a feature the chooser can learn from: does the step use math.gcd
        return np.array([[float("math.gcd" in t), len(t) / 100.0] for t in texts], dtype=np.float32)

    return CandidateChoice(env, StepPolicy(ScriptedBackend(script)), featurize, d=2, k=4, seed=seed)


def test_candidate_choice_passes_check_env_and_maskable_ppo_learns_to_choose(sandbox, tmp_path):
    from stable_baselines3.common.env_checker import check_env

    from agents.ppo_choice import PPOChoiceConfig, evaluate_choosers, standard_choosers, train_ppo_choice

    env = _choice_env(sandbox)
    check_env(env, skip_render_check=True)
    observation, _ = env.reset(seed=0)
    assert observation["features"].shape == (4, 2 + 6) and observation["mask"].tolist() == [1, 0, 0, 0]  # one define
    observation, reward, terminated, _, info = env.step(3)  # a masked index: replaced by the first valid one
    assert info["replaced_action"] == 3 and not terminated and observation["mask"].sum() == 2  # right, wrong
    config = PPOChoiceConfig(out=str(tmp_path / "ppo"), timesteps=192, n_steps=32, batch_size=16, learning_rate=3e-3)
    summary = train_ppo_choice(config, _choice_env(sandbox))
    assert summary["last_rewards_mean"] > summary["first_rewards_mean"]
    from sb3_contrib import MaskablePPO

    model = MaskablePPO.load(summary["final"])
    results = evaluate_choosers(_choice_env(sandbox), ["starter/gcd"] * 4, standard_choosers(model))
    assert results["ppo"]["mean_return"] == 1.0
    assert results["ppo"]["generated_tokens"] == results["first"]["generated_tokens"]
    assert train_ppo_choice(config, _choice_env(sandbox)) == summary  # finished: not retrained, nothing overwritten
    config.timesteps = 224
    resumed = train_ppo_choice(config, _choice_env(sandbox))  # continues from the checkpoint at 192
    assert resumed["timesteps"] == 224 and resumed["episodes"] == summary["episodes"] + (224 - 192) // 2
    config.learning_rate = 1e-3
    with pytest.raises(ValueError, match="other settings .*learning_rate"):
        train_ppo_choice(config, _choice_env(sandbox))


def test_train_commands_refuse_an_evaluation_split_with_one_line(run_dir, capsys):
    from codegym.cli import main

    run = run_dir("validation")
    out = run.parent / "never"
    assert main(["train", "sft", str(run), "--out", str(out)]) == 2
    assert "not a training split" in capsys.readouterr().err and not out.exists()
    assert main(["train", "sft", "/nonexistent", "--out", str(out)]) == 2
    assert "no config.json" in capsys.readouterr().err


def test_episode_returns_carry_the_prms_step_rewards(tiny, tmp_path):
    """With a PRM in the environment, an episode's return adds its steps' process rewards; with
    aggregate, it is phi (codegym.rewards.aggregate_reward) over the same scores."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from agents.grpo import EpisodeRollout, make_training_env
    from codegym.rewards import RewardConfig, aggregate_reward

    model, tokenizer = AutoModelForCausalLM.from_pretrained(tiny), AutoTokenizer.from_pretrained(tiny)
    returns = {}
    for aggregate in (False, True):
        config = _grpo_config(tiny, tmp_path, env_options={"prm": "token:%s" % tiny, "aggregate": aggregate})
        env, problems = make_training_env(config)
        [episode] = EpisodeRollout(config, env, tokenizer).play(model, [problems[0].id], seed=1)
        returns[aggregate] = (episode["return"], list(env.process_rewards), env.get_state())
    summed, scores, _ = returns[False]
    assert len(scores) == 1 and 0.0 < scores[0] < 1.0 and summed == pytest.approx(scores[0])  # the code failed: R = 0
    phi, scores_again, _ = returns[True]
    assert scores_again == pytest.approx(scores)
    assert phi == pytest.approx(aggregate_reward(0.0, scores, 0, RewardConfig(aggregate=True)))
