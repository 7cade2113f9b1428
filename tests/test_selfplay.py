"""The self-play loop (#15): a smoke round on the embedded model, killed with SIGKILL mid-way and
resumed; the round-to-round hand-over of models; refusing to mix settings in one output folder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("trl")


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_a_smoke_round_killed_mid_way_resumes_without_redoing_or_duplicating(tmp_path, mbpp_dir):
    from codegym.cli import main

    out = tmp_path / "selfplay"
    command = [sys.executable, "-m", "codegym.cli", "selfplay", "--smoke", "--data-path", str(mbpp_dir), "--out", str(out)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 900
    try:
        while not (out / "round-0" / "labels.json").exists():  # kill -9 once the PRM step has started
            assert process.poll() is None and time.monotonic() < deadline, "the smoke run ended early or hung"
            time.sleep(0.5)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    search = out / "round-0" / "search.json"
    before = (search.read_text(), search.stat().st_mtime_ns, len(_rows(out / "round-0" / "search" / "results.jsonl")))
    assert not (out / "round-0" / "policy.json").exists()

    assert main(["selfplay", "--smoke", "--data-path", str(mbpp_dir), "--out", str(out)]) == 0
    assert (search.read_text(), search.stat().st_mtime_ns) == before[:2]  # the finished step was not redone
    rows = _rows(out / "round-0" / "search" / "results.jsonl")
    assert len(rows) == before[2] == 4 and len({r["problem_id"] for r in rows}) == 4  # nothing lost or duplicated
    policy = json.loads((out / "round-0" / "policy.json").read_text())
    assert policy["spec"].startswith("ct2:") and Path(policy["model"], "config.json").exists()
    evaluation = json.loads((out / "round-0" / "eval.json").read_text())
    assert evaluation["policy"] == policy["spec"] and evaluation["greedy"]["problems"] == 3
    metrics = json.loads((out / "metrics.json").read_text())
    assert [r["round"] for r in metrics["rounds"]] == [0] and (out / "metrics.png").exists()
    assert {"search", "labels", "prm", "policy", "eval"} <= set(metrics["rounds"][0]["minutes"])
    run = json.loads((out / "config.json").read_text())["run"]
    assert run["git_commit"] and run["packages"]["torch"]
    # a finished run reruns in no time and changes nothing
    assert main(["selfplay", "--smoke", "--data-path", str(mbpp_dir), "--out", str(out)]) == 0
    assert len(_rows(out / "round-0" / "search" / "results.jsonl")) == 4


def test_round_r_searches_with_round_r_minus_1_models(tmp_path, monkeypatch):
    from codegym.selfplay import SelfPlay, SelfPlayConfig, _write_json

    config = SelfPlayConfig(out=str(tmp_path), rounds=2, search_value="prm", prm_kind="value")
    loop = SelfPlay(config, progress=False, log=lambda *_: None)
    assert (loop.policy_model(0), loop.policy_spec(0), loop.prm_model(0)) == ("smollm2", "smollm2", None)
    (tmp_path / "round-0").mkdir()
    _write_json(tmp_path / "round-0" / "policy.json", {"model": "R0/policy/final", "spec": "ct2:R0/policy/ct2"})
    _write_json(tmp_path / "round-0" / "prm.json", {"model": "R0/prm/final"})
    seen = {}

    def bench(round_index, name, split, problems, agents, budget, policy, prm, training):
        seen.update(round=round_index, agents=agents, policy=policy, prm=prm, split=split, training=training)
        return {"table": [{"problems": 1, "pass@1": 0.0}]}

    monkeypatch.setattr(loop, "_bench", bench)
    assert loop.search(1)["policy"] == "ct2:R0/policy/ct2"
    assert seen == {"round": 1, "agents": {"search": {"agent": "mcts", "value": "prm"}}, "policy": "ct2:R0/policy/ct2",
                    "prm": "value:R0/prm/final", "split": "train", "training": True}
    assert loop.policy_model(1) == "R0/policy/final"  # round 1 trains from round 0's policy
    loop.search(0)
    assert seen["agents"]["search"]["value"] == "rollout" and seen["prm"] is None  # no PRM before round 1



def test_search_seeds_change_by_round_and_the_evaluation_protocol_does_not(tmp_path, monkeypatch):
    from codegym.selfplay import SelfPlay, SelfPlayConfig, _write_json

    loop = SelfPlay(SelfPlayConfig(out=str(tmp_path), seed=3), progress=False, log=lambda *_: None)
    configs = []
    monkeypatch.setattr("codegym.bench.run_bench", lambda config, **_: configs.append(config))
    for round_index in (0, 1):
        (tmp_path / ("round-%d" % round_index)).mkdir()
        _write_json(tmp_path / ("round-%d" % round_index) / "tests.json", {"skipped": "no tcg"})
        for training in (True, False):
            loop._bench(round_index, "x", "train", 2, {"g": {"agent": "greedy"}}, 100, "smollm2", None, training)
    assert [c.seeds for c in configs] == [[3], [3], [4], [3]]  # search 3, 4; evaluation 3 in every round


def test_one_output_folder_holds_one_configuration(tmp_path):
    from codegym.cli import main
    from codegym.selfplay import SelfPlay, SelfPlayConfig, _write_json

    config = SelfPlayConfig(out=str(tmp_path), rounds=1)
    _write_json(tmp_path / "config.json", {"config": {**config.__dict__, "search_budget": 5}})
    with pytest.raises(ValueError, match="other settings .*search_budget=5, not 1000"):
        SelfPlay(config).run()
    # a run written before prm_eval_sample existed scored every step: it resumes with None only
    older = {k: v for k, v in config.__dict__.items() if k != "prm_eval_sample"}
    _write_json(tmp_path / "config.json", {"config": older})
    with pytest.raises(ValueError, match="prm_eval_sample=None, not 200"):
        SelfPlay(config).check_stored_config(tmp_path / "config.json")
    SelfPlay(SelfPlayConfig(out=str(tmp_path), rounds=3, prm_eval_sample=None)).check_stored_config(tmp_path / "config.json")
    assert main(["selfplay", "--out", str(tmp_path), "--rounds", "0"]) == 2


def scripted(prompt: str, seed: int) -> str:
    """A policy for the search phase on Ray (module level: Ray workers unpickle it by value)."""
    return "def f(*args):\n    return None\n" if prompt.endswith("```python\n") else " look at the input %d" % seed


def test_the_search_phase_runs_on_a_local_ray_cluster(tmp_path, mbpp_dir):
    from ray import cloudpickle

    from codegym.bench import read_rows
    from codegym.envs import env_dataset
    from codegym.llm.scripted import ScriptedBackend
    from codegym.selfplay import SelfPlay, SelfPlayConfig

    config = SelfPlayConfig(out=str(tmp_path), data_path=str(mbpp_dir), train_problems=3, search_budget=200, ray="local")
    loop = SelfPlay(config, progress=False, log=lambda *_: None, backend=ScriptedBackend(scripted, ragged=True))
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        loop._step(0, "tests")
        result = loop.search(0)
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    rows = read_rows(tmp_path / "round-0" / "search" / "results.jsonl")
    train = env_dataset("CodeGym/MBPP-v0", data_path=str(mbpp_dir), split="train").problems[:3]
    assert result["problems"] == 3 and sorted(r["problem_id"] for r in rows) == sorted(p.id for p in train)
    assert json.loads((tmp_path / "round-0" / "search" / "config.json").read_text())["config"]["ray"] == "local"


def test_tcg_tests_labelled_by_the_reference_become_the_search_and_grpo_reward_tests(tmp_path, mbpp_dir, monkeypatch):
    """With ``tcg``, the round's tests step writes tests whose expected values come from each
    training problem's reference; search and GRPO then reward on public + generated tests."""
    from codegym.bench import read_rows
    from codegym.envs import env_dataset
    from codegym.llm.scripted import ScriptedBackend
    from codegym.selfplay import SelfPlay, SelfPlayConfig
    from codegym.tcg import load_generated

    train = env_dataset("CodeGym/MBPP-v0", data_path=str(mbpp_dir), split="train").problems[:2]
    assert [p.entry_point for p in train] == ["max_chain_length", "first_repeated_char"]

    def script(prompt: str, seed: int) -> str:
        if prompt.endswith("assert first_repeated_char("):  # the TCG: an input, and a wrong expected value
            return "'abcabc') == 'wrong'\n"
        if prompt.endswith("assert max_chain_length("):  # a call the reference cannot run: dropped
            return "1) == 2\n"
        return "def f(*args):\n    return None\n" if prompt.endswith("```python\n") else " plan"

    config = SelfPlayConfig(out=str(tmp_path), data_path=str(mbpp_dir), train_problems=2, search_budget=120,
                            tcg="smollm2", grpo_steps=1)
    loop = SelfPlay(config, progress=False, log=lambda *_: None, backend=ScriptedBackend(script))
    loop._step(0, "tests")
    generated = load_generated(tmp_path / "round-0" / "tests.jsonl")
    assert sorted(generated) == sorted(p.id for p in train) and generated[train[0].id] == []
    (test,) = generated[train[1].id]
    assert (test.args, test.expected) == (("abcabc",), "a")  # relabelled by the reference solution
    loop.search(0)
    bench = json.loads((tmp_path / "round-0" / "search" / "config.json").read_text())["config"]
    assert (bench["reward_tests"], bench["generated_tests"]) == ("public+generated", str(tmp_path / "round-0" / "tests.jsonl"))
    assert len(read_rows(tmp_path / "round-0" / "search" / "results.jsonl")) == 2
    seen = {}
    monkeypatch.setattr("agents.grpo.train_grpo", lambda c: seen.update(config=c) or {
        "final": "G/final", "ct2": "G/ct2", "mean_reward": 0.5})
    assert loop._grpo(0, "S/final") == {"model": "G/final", "spec": "ct2:G/ct2", "grpo_mean_reward": 0.5}
    grpo = seen["config"]
    assert (grpo.model, grpo.solved_in, grpo.reward_tests) == ("S/final", str(tmp_path / "round-0" / "search"),
                                                              "public+generated")
    assert grpo.env_options == {"generated_tests": str(tmp_path / "round-0" / "tests.jsonl")}
    # without a TCG the step says so and search rewards on the public tests
    plain = SelfPlay(SelfPlayConfig(out=str(tmp_path / "plain")), progress=False, log=lambda *_: None)
    assert "skipped" in plain._step(0, "tests") and plain.reward_options(0) == {}


def test_metrics_carry_intervals_and_the_plot_draws_them(tmp_path):
    from codegym.selfplay import STEPS, SelfPlay, SelfPlayConfig, _write_json

    loop = SelfPlay(SelfPlayConfig(out=str(tmp_path), rounds=3), progress=False, log=lambda *_: None)
    for round_index, (greedy, mcts) in enumerate(((0.03, 0.08), (0.05, 0.1))):
        folder = tmp_path / ("round-%d" % round_index)
        folder.mkdir()
        for step in STEPS:
            _write_json(folder / ("%s.json" % step), {"minutes": 1.0 + round_index})
        _write_json(folder / "search.json", {"minutes": 2.0, "hidden_pass@1_train": 0.2})
        _write_json(folder / "policy.json", {"minutes": 3.0, "sft_rows": 10 + round_index, "spec": "ct2:P"})
        _write_json(folder / "eval.json", {"minutes": 4.0, "policy": "ct2:P", "prm_auc": 0.6, "prm_auc_ci": [0.5, 0.7],
                                           "greedy": {"pass@1": greedy, "pass@1_ci": [0.01, 0.1], "mean_generated_tokens": 300},
                                           "mcts": {"pass@1": mcts, "pass@1_ci": [0.04, 0.2], "mean_generated_tokens": 990}})
    metrics = loop.metrics()
    assert [r["round"] for r in metrics["rounds"]] == [0, 1]  # round 2 has no evaluation yet
    first = metrics["rounds"][0]
    assert (first["greedy_pass@1"], first["greedy_pass@1_ci"], first["mcts_pass@1_ci"]) == (0.03, [0.01, 0.1], [0.04, 0.2])
    assert (first["prm_auc_ci"], first["sft_rows"], first["search_pass_train"]) == ([0.5, 0.7], 10, 0.2)
    assert first["minutes"]["eval"] == 4.0 and metrics["rounds"][1]["minutes"]["labels"] == 2.0
    loop.plot(metrics)
    assert (tmp_path / "metrics.png").stat().st_size > 10_000
