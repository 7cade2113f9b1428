"""The test case generator: literal-only parsing, filtering, labelling, data builders, training."""

from __future__ import annotations

import json

import gymnasium as gym
import pytest

from codegym.datasets import load_dataset, split_problem
from codegym.execution import TestCase
from codegym.llm.scripted import ScriptedBackend
from codegym.tcg import (
    FilterReport,
    LLMTestCaseGenerator,
    dpo_rows,
    label_by_agreement,
    label_with_reference,
    load_generated,
    mutants,
    parse_test_lines,
    save_generated,
    sft_rows,
)


def test_parsing_keeps_literals_and_counts_every_drop():
    text = ("2, 3) == 5\n"  # continues the assert add( prefix
            "assert add(1, 1) == 2\n"
            "assert add(2, 3) == 5\n"                       # duplicate input
            "assert add(__import__('os').system('id'), 1) == 0\n"  # code, not data: rejected
            "assert add(x, 1) == 2\n"                       # a name, not a literal
            "assert add([1] + [2], 1) == 3\n"               # an expression
            "assert add(1, 2)\n"                            # no expected value
            "print('hello')\n"
            "assert add((1, 2), {'a': None}) == {3}\n")
    tests, report = parse_test_lines(text, "add")
    assert [t.args for t in tests] == [(2, 3), (1, 1), ((1, 2), {"a": None})]
    assert tests[2].expected == {3} and all(t.origin == "model" for t in tests)
    assert report.proposed == 9 and report.kept == 3
    assert report.dropped == {"duplicate": 1, "unparseable": 5}


def _problem(reference="def f(x):\n    return x * 2\n"):
    """A training problem when there is a reference (only those carry one), else an evaluation one."""
    problem, _ = split_problem(id="double", statement="Double x.", entry_point="f", training=bool(reference),
                               reference_solutions=[reference] if reference else [],
                               hidden_tests=[TestCase.call("f", [2], 4), TestCase.call("f", [5], 10)])
    return problem


def test_reference_labels_and_drops_erroring_and_nondeterministic(sandbox):
    problem = _problem("import random\ndef f(x):\n    if x == 0:\n        raise ValueError\n"
                       "    if x == 7:\n        return random.random()\n    return x * 2\n")
    proposed = [TestCase.call("f", [1], 999), TestCase.call("f", [0], 0), TestCase.call("f", [7], 1)]
    report = FilterReport(proposed=3)
    labelled = label_with_reference(problem, proposed, sandbox, report)
    assert [(t.args, t.expected, t.origin) for t in labelled] == [((1,), 2, "reference")]
    assert report.dropped == {"reference_error": 1, "nondeterministic": 1}


def test_dual_agreement_labelling_by_hand(sandbox):
    problem = _problem(reference=None)
    inputs = [TestCase.call("f", [3], None), TestCase.call("f", [4], None)]
    candidates = ["def f(x): return x * 2", "def f(x): return x + x", "def f(x): return x + 3 if x == 3 else 0"]
    report = FilterReport(proposed=2)
    labelled = label_by_agreement(problem, inputs, candidates, sandbox, report)
    # input 3: outputs 6, 6, 6 -> 6 (3 votes); input 4: 8, 8, 0 -> 8 (2 votes)
    assert [(t.args, t.expected, t.origin) for t in labelled] == [((3,), 6, "agreement"), ((4,), 8, "agreement")]
    report = FilterReport(proposed=2)
    assert label_by_agreement(problem, inputs, candidates[:1] + candidates[2:], sandbox, report, min_votes=2) == [
        TestCase.call("f", [3], 6)]
    assert report.dropped == {"no_agreement": 1}


def test_generator_end_to_end_with_a_scripted_model(sandbox, tmp_path):
    backend = ScriptedBackend(lambda prompt, seed: "1) == 5\nassert f(2) == 4\nassert f('a') == 'aa'\nassert f(os) == 1")
    generator = LLMTestCaseGenerator(backend, sandbox=sandbox)
    tests, report = generator.generate(_problem())
    assert [(t.args, t.expected) for t in tests] == [((1,), 2), ((2,), 4), (("a",), "aa")]
    assert report.dropped == {"unparseable": 1}
    path = tmp_path / "generated.jsonl"
    save_generated(path, {"double": (tests, report.to_dict())})
    assert load_generated(path)["double"] == tests


def test_env_loads_generated_tests_file(tmp_path):
    path = tmp_path / "gen.jsonl"
    save_generated(path, {"starter/gcd": ([TestCase.call("gcd", [8, 12], 4, origin="reference")], {})})
    env = gym.make("CodeGym/Starter-v0", generated_tests=str(path), reward_tests="generated")
    env.reset(options={"problem_id": "starter/gcd"})
    assert [t.args for t in env.unwrapped.problem.generated_tests] == [(8, 12)]
    assert env.unwrapped.reward_test_set() == env.unwrapped.problem.generated_tests


def test_sft_and_dpo_rows():
    assert sft_rows(load_dataset("starter").problems) == []  # an evaluation split gives no training rows
    problems = load_dataset("starter", training=True).problems
    sft = sft_rows(problems)
    assert len(sft) == 31 and sft[0]["prompt"][0]["role"] == "system"
    assert sft[0]["completion"][0]["content"].startswith("assert sum_of_squares(")
    dpo = dpo_rows(problems)
    assert len(dpo) == 31
    for row in dpo:
        assert row["chosen"] != row["rejected"]
        chosen_inputs = [line.split(" == ")[0] for line in row["chosen"][0]["content"].splitlines()]
        rejected_inputs = [line.split(" == ")[0] for line in row["rejected"][0]["content"].splitlines()]
        assert chosen_inputs == rejected_inputs  # same inputs, wrong outputs


def test_mutants_are_single_edits():
    out = mutants("def f(a, b):\n    return a + b if a < 3 else 0\n")
    assert "def f(a, b):\n    return a - b if a < 3 else 0" in out
    assert any("a <= 3" in m for m in out) and any("a < 4" in m for m in out)


@pytest.mark.slow
def test_tiny_model_sft_and_dpo_lower_their_loss(tmp_path):
    pytest.importorskip("trl")
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from codegym.llm.embedded import prepare_embedded
    from codegym.tcg.train import TCGTrainConfig, train_dpo, train_sft

    tokenizer = AutoTokenizer.from_pretrained(prepare_embedded() / "hf")
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=2048,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    LlamaForCausalLM(config).save_pretrained(tmp_path / "tiny")
    tokenizer.save_pretrained(tmp_path / "tiny")
    with pytest.raises(ValueError, match="not a training split"):
        train_sft(TCGTrainConfig(out=str(tmp_path / "refused"), model=str(tmp_path / "tiny"), dataset="starter"))
    assert not (tmp_path / "refused").exists()
    common = dict(model=str(tmp_path / "tiny"), dataset="starter", training=True, max_steps=30, batch_size=4, learning_rate=3e-3,
                  export_ct2=False)
    sft = train_sft(TCGTrainConfig(out=str(tmp_path / "sft"), **common))
    assert sft["steps"] == 30 and sft["last_loss"] < sft["first_loss"]
    assert json.loads((tmp_path / "sft" / "train_config.json").read_text())["max_steps"] == 30
    dpo = train_dpo(TCGTrainConfig(out=str(tmp_path / "dpo"), **{**common, "model": sft["final"], "learning_rate": 1e-3}))
    assert dpo["last_loss"] < dpo["first_loss"]
