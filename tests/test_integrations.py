"""The verl and OpenRLHF reward adapters: the documented signatures, and the same rewards as
codegym.rewards.CodeReward; two tests run against the real packages where they are installed (an
environment of their own, see the README) and skip elsewhere."""

from __future__ import annotations

import inspect
from pathlib import Path

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
        monkeypatch.setenv("CODEGYM_MARK_TRAINING", "1")  # marking is for custom data only
        with pytest.raises(ValueError, match="splits of its own"):
            compute_score("codegym", RIGHT, "MBPP/511")
    finally:
        reward_for.cache_clear()


def test_engines_score_free_chat_answers_on_their_first_fenced_block(starter, monkeypatch):
    from codegym.integrations import reward_for
    from codegym.integrations.verl_reward import compute_score

    code = RIGHT.split("```python\n", 1)[1].split("```")[0]
    assert compute_score("codegym", "Use math.gcd.\n```python\n%s```\nThat is all." % code, "starter/gcd") == 1.0
    assert compute_score("codegym", "```py\n%s```" % code, "starter/gcd") == 1.0
    assert compute_score("codegym", "```python\ndef gcd(a, b):\n    return a\n```", "starter/gcd") == 0.0
    assert compute_score("codegym", code, "starter/gcd") == -0.1  # no code block: the invalid-action penalty
    # Markdown's reading: another language's block first, CRLF, a cut-off answer
    assert compute_score("codegym", "```bash\npip install x\n```\nThen:\n```python\n%s```" % code, "starter/gcd") == 1.0
    assert compute_score("codegym", ("Code:\n```python\n%s```" % code).replace("\n", "\r\n"), "starter/gcd") == 1.0
    assert compute_score("codegym", "```python\n%s" % code, "starter/gcd") == 1.0
    monkeypatch.setenv("CODEGYM_COMPLETIONS", "step")  # codegym's own step format instead
    reward_for.cache_clear()
    assert compute_score("codegym", code, "starter/gcd") == 1.0  # the text after the translate prefix


def test_export_rl_writes_prompts_whose_rows_the_reward_scores(tmp_path, mbpp_dir, monkeypatch):
    import json

    from codegym.cli import main
    from codegym.datasets import load_dataset
    from codegym.integrations import reward_for
    from codegym.integrations.verl_reward import compute_score

    out = tmp_path / "train.jsonl"
    assert main(["datasets", "export-rl", "--data-path", str(mbpp_dir), "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    dataset = load_dataset("mbpp", data_path=str(mbpp_dir), split="train")
    assert [r["problem_id"] for r in rows] == [p.id for p in dataset.problems]
    first, key = dataset.problems[0], dataset.answer_keys[dataset.problems[0].id]
    prompt = "\n".join(m["content"] for m in rows[0]["prompt"])
    assert first.statement.strip() in prompt and "```python" in prompt
    public = {t.source for t in first.public_tests}
    assert public and all(t in prompt for t in public)
    assert not any(t.source in prompt for t in key.hidden_tests if t.source not in public)  # public tests only
    monkeypatch.setenv("CODEGYM_DATA_PATH", str(mbpp_dir))
    monkeypatch.setenv("CODEGYM_SPLIT", "train")
    reward_for.cache_clear()
    try:
        answer = "```python\n%s\n```" % key.reference_solutions[0]
        assert compute_score("codegym", answer, rows[0]["reward_model"]["ground_truth"]) == 1.0
    finally:
        reward_for.cache_clear()
    parquet = tmp_path / "train.parquet"
    assert main(["datasets", "export-rl", "--data-path", str(mbpp_dir), "--out", str(parquet)]) == 0
    pytest.importorskip("datasets")
    from datasets import Dataset

    assert Dataset.from_parquet(str(parquet))[0]["reward_model"] == {"style": "rule", "ground_truth": first.id}
    for marks in ([], ["--mark-training"]):  # an evaluation split is refused, marked or not
        assert main(["datasets", "export-rl", "--data-path", str(mbpp_dir), "--split", "validation",
                     "--out", str(tmp_path / "val.jsonl"), *marks]) == 2
    assert not (tmp_path / "val.jsonl").exists()


def test_openrlhf_answers_are_cut_after_the_prompt_even_when_decoding_changed_it(starter):
    """OpenRLHF decodes prompt and answer tokens together; a tokenizer's space clean-up can change the
    prompt's text, and the prompt's own code block (the signature) must then not be what is scored."""
    from codegym.integrations.openrlhf_reward import answer_in, reward_func

    prompt = ("<|im_start|>user\nWrite gcd , like this:\n```python\ndef gcd(a, b):\n    return a\n```<|im_end|>\n"
              "<|im_start|>assistant\n")
    answer = "```python\nimport math\ndef gcd(a, b):\n    return math.gcd(a, b)\n```"
    cleaned = prompt.replace("gcd ,", "gcd,") + answer + "<|im_end|>"  # the end-of-turn token is decoded too
    assert answer_in(prompt + answer + "<|im_end|>", prompt) == answer_in(cleaned, prompt) == answer
    for end in ("<|eot_id|>", "</s>", "<end_of_turn>\n", "<｜end▁of▁sentence｜>"):  # Llama 3, Mistral, Gemma, DeepSeek
        assert answer_in(prompt + answer + end, prompt) == answer
    assert reward_func([cleaned], [prompt], ["starter/gcd"])["rewards"].tolist() == [1.0]
    # a query that does not start with the prompt's text has no answer: the prompt's stub is never scored
    assert answer_in("something else " + prompt + answer, prompt) == ""
    assert reward_func(["x" + prompt + answer], [prompt], ["starter/gcd"])["rewards"].tolist() == [pytest.approx(-0.1)]


def _engine_command(program: str) -> list[str]:
    """The README's command for an RL engine, as arguments (its $(...) and $VARS left as written)."""
    import re
    import shlex

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    found = re.search(r"^python -m %s .*?(?<!\\)$" % re.escape(program), readme, re.M | re.S)
    assert found, "README.md has no `python -m %s` command" % program
    command = found.group(0)
    return shlex.split(re.sub(r'\$\((?:[^()"]|"[^"]*")*\)', "PATH", command.replace("\\\n", " ")))[3:]


def test_verl_loads_compute_score_from_the_readme_config_and_scores_through_its_reward_manager(starter, tmp_path):
    """Against the real verl (skipped where it is not installed; it pins transformers < 5.11, so it
    lives in its own environment: see the README). The README's overrides compose into verl's
    trainer config, and the reward manager verl loads from it calls ``compute_score``."""
    pytest.importorskip("verl", reason="verl is not installed here (pip install verl==0.9.1 in its own environment)")
    import numpy as np
    import torch
    import verl
    from hydra import compose, initialize_config_dir
    from transformers import AutoTokenizer
    from verl import DataProto
    from verl.trainer.ppo.reward import load_reward_manager

    import codegym.integrations.verl_reward as module
    from codegym.llm.embedded import prepare_embedded

    overrides = [a.replace("PATH", module.__file__) for a in _engine_command("verl.trainer.main_ppo")]
    config_dir = str(Path(verl.__file__).parent / "trainer" / "config")
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        config = compose(config_name="ppo_trainer", overrides=overrides)
    assert config.reward.custom_reward_function.path == module.__file__
    tokenizer = AutoTokenizer.from_pretrained(prepare_embedded() / "hf")
    manager = load_reward_manager(config, tokenizer)  # the config's manager (naive) and reward function
    for answer, expected in ((RIGHT, 1.0), (WRONG, 0.0)):
        ids = tokenizer(answer, return_tensors="pt").input_ids
        data = DataProto.from_dict(
            tensors={"responses": ids, "attention_mask": torch.ones_like(ids)},
            non_tensors={"data_source": np.array(["codegym"], dtype=object),
                         "reward_model": np.array([{"ground_truth": "starter/gcd"}], dtype=object),
                         "extra_info": np.array([{}], dtype=object)})
        assert manager.loop.run_until_complete(manager.run_single(data))["reward_score"] == expected


def test_openrlhf_loads_reward_func_from_the_readme_flag_and_scores_through_its_executor(starter):
    """Against the real OpenRLHF (skipped where it is not installed: it needs CUDA to build). Its
    single-turn executor loads ``reward_func`` from the file the README passes as
    ``--reward.remote_url`` and calls it as a rollout does."""
    pytest.importorskip("openrlhf.utils.agent", reason="OpenRLHF is not installed here (it needs CUDA)")
    import asyncio
    import importlib.util
    import re

    from openrlhf.utils.agent import SingleTurnAgentExecutor

    import codegym.integrations.openrlhf_reward as module

    command = _engine_command("openrlhf.cli.train_ppo_ray")
    # OpenRLHF builds its parser under __main__ (behind ray and deepspeed): its declared flags are read
    declared = set(re.findall(r'"(--[\w.]+)"', Path(importlib.util.find_spec("openrlhf.cli.train_ppo_ray").origin).read_text()))
    assert [flag for flag in command if flag.startswith("--") and flag not in declared] == []
    assert command[command.index("--reward.remote_url") + 1] == "PATH"
    assert command[command.index("--data.label_key") + 1] == "problem_id"
    executor = SingleTurnAgentExecutor(remote_rm_url=module.__file__)
    prompt = "<|im_start|>user\nWrite gcd.<|im_end|>\n<|im_start|>assistant\n"
    rewards = asyncio.run(executor._fetch_rewards_via_func([prompt + RIGHT, prompt + WRONG], [prompt] * 2,
                                                           ["starter/gcd"] * 2))
    assert [r["rewards"].tolist() for r in rewards] == [[1.0], [0.0]]
