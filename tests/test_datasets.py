"""Loaders on real data, and malformed records reported with file, line and field."""

from __future__ import annotations

import json

import pytest

from codegym.datasets import (
    DatasetError,
    load_apps,
    load_custom,
    load_dataset,
    load_humaneval,
    load_mbpp,
    problem_to_record,
)


def _all_pass(sandbox, dataset, tests_of):
    """Ids of problems whose first reference fails ``tests_of(problem, key)``."""
    keys = dataset.answer_keys
    chosen = [p for p in dataset if tests_of(p, keys[p.id])]
    items = [(p.program_for_tests(keys[p.id].reference_solutions[0]), tests_of(p, keys[p.id])) for p in chosen]
    results = sandbox.run_batch(items)
    return [p.id for p, r in zip(chosen, results) if not r.passed]


def _hidden(problem, key):
    return key.hidden_tests


def _public(problem, key):
    return problem.public_tests


def test_humaneval_loads_offline_and_references_pass(sandbox):
    dataset = load_humaneval()
    assert len(dataset) == 164 and not dataset.skipped
    problem = dataset.get("HumanEval/0")
    assert problem.entry_point == "has_close_elements" and problem.signature.startswith("def has_close_elements(")
    assert dataset.answer_keys[problem.id].hidden_tests[0].kind == "check"
    assert not problem.training and not problem.reference_solutions and not problem.all_tests
    assert sum(bool(p.public_tests) for p in dataset) >= 110
    assert _all_pass(sandbox, dataset, _hidden) == []
    assert _all_pass(sandbox, dataset, _public) == []


def test_mbpp_folder_and_file_load_and_references_pass(sandbox, mbpp_dir):
    validation = load_mbpp(mbpp_dir, split="validation")
    assert len(validation) == 90
    everything = load_mbpp(mbpp_dir)
    assert len(everything) == 474
    single_file = load_mbpp(mbpp_dir / "train.jsonl")
    assert len(single_file) == 374
    problem = validation.get("MBPP/511")
    key = validation.answer_keys["MBPP/511"]
    assert problem.public_tests == list(key.hidden_tests[:1]) and len(key.hidden_tests) == 3
    # validation is an evaluation split: no references or full test list in the public problem
    assert not problem.training and not problem.reference_solutions and not problem.all_tests
    trained = everything.get("MBPP/601")
    assert trained.training and trained.all_tests == list(everything.answer_keys["MBPP/601"].hidden_tests)
    assert trained.reference_solutions
    assert sum(p.training for p in everything) == 384  # train and prompt
    assert _all_pass(sandbox, everything, _hidden) == []


def test_single_mbpp_file_splits_by_standard_task_ids(mbpp_dir, tmp_path):
    lines = (mbpp_dir / "validation.jsonl").read_text().splitlines() + (mbpp_dir / "train.jsonl").read_text().splitlines()
    path = tmp_path / "mbpp.jsonl"
    path.write_text("\n".join(lines) + "\n")
    assert len(load_mbpp(path)) == 464
    validation = load_mbpp(path, split="validation")
    assert len(validation) == 90 and not any(p.training for p in validation)
    train = load_mbpp(path, split="train")
    assert len(train) == 374 and all(p.training for p in train)
    assert len(load_mbpp(path, split="test")) == 0
    assert all(p.training for p in load_mbpp(path, split="validation", training=True))
    with pytest.raises(ValueError, match="unknown MBPP split"):
        load_mbpp(path, split="dev")


def test_starter_set_is_complete_and_correct(sandbox):
    dataset = load_dataset("starter")
    kinds = [p.kind for p in dataset]
    assert kinds.count("function") >= 30 and kinds.count("stdio") >= 10
    for problem in dataset:
        key = dataset.answer_keys[problem.id]
        assert problem.public_tests and key.hidden_tests and key.reference_solutions
        assert all(t in key.hidden_tests for t in problem.public_tests)
    assert _all_pass(sandbox, dataset, _hidden) == []


def test_wrong_solution_fails_starter_tests(sandbox):
    judge = load_dataset("starter").judge(sandbox)
    result = judge.evaluate("starter/gcd", "def gcd(a, b):\n    return a * b\n")
    assert not result.passed and result.status == "wrong_answer"


def _write(tmp_path, records, name="data.jsonl"):
    path = tmp_path / name
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in records) + "\n")
    return path


GOOD = {"id": "p1", "statement": "Add.", "entry_point": "add",
        "hidden_tests": [{"type": "call", "args": "[1, 2]", "expected": "3"}]}


@pytest.mark.parametrize("record, field", [
    ({**GOOD, "statement": 5}, "statement"),
    ({k: v for k, v in GOOD.items() if k != "id"}, "id"),
    ({**GOOD, "kind": "other"}, "kind"),
    ({**GOOD, "entry_point": "not an id"}, "entry_point"),
    ({**GOOD, "hidden_tests": []}, "hidden_tests"),
    ({**GOOD, "hidden_tests": [{"type": "call", "args": "[1, 2", "expected": "3"}]}, "hidden_tests[0].args"),
    ({**GOOD, "hidden_tests": [{"type": "call", "args": "__import__('os')", "expected": "3"}]},
     "hidden_tests[0].args"),
    ({**GOOD, "public_tests": [{"type": "bogus"}]}, "public_tests[0]"),
    ("{not json", None),
    ("[1, 2]", None),
])
def test_malformed_record_names_file_line_and_field(tmp_path, record, field):
    path = _write(tmp_path, [GOOD, record])
    with pytest.raises(DatasetError) as info:
        load_custom(path)
    assert info.value.line == 2 and info.value.field == field and str(path) in str(info.value)


def test_skip_mode_counts_and_reports(tmp_path):
    path = _write(tmp_path, [GOOD, {**GOOD, "id": "p2", "statement": None}, {**GOOD, "id": "p3"}, GOOD])
    with pytest.warns(UserWarning, match="skipped 2"):
        dataset = load_custom(path, on_error="skip")
    assert [p.id for p in dataset] == ["p1", "p3"]
    assert [line for _, line, _ in dataset.skipped] == [2, 4]


def test_apps_layout_stdio_and_fn_name(tmp_path, sandbox):
    records = [
        {"problem_id": 7, "question": "Print a+b.", "solutions": json.dumps(["a, b = map(int, input().split())\nprint(a + b)"]),
         "input_output": json.dumps({"inputs": ["1 2\n", "5 5\n"], "outputs": ["3\n", "10\n"]})},
        {"problem_id": 8, "question": "Double.", "solutions": json.dumps(["def double(x):\n    return 2 * x"]),
         "input_output": json.dumps({"fn_name": "double", "inputs": [[1], [4]], "outputs": [[2], [8]]})},
    ]
    dataset = load_apps(_write(tmp_path, records))
    stdio, function = dataset.problems
    assert stdio.kind == "stdio" and function.kind == "function" and function.entry_point == "double"
    keys = dataset.answer_keys
    assert len(stdio.public_tests) == 1 and len(keys[stdio.id].hidden_tests) == 2
    for problem in dataset:
        assert sandbox.run(keys[problem.id].reference_solutions[0], keys[problem.id].hidden_tests).passed
    with pytest.raises(DatasetError, match="input_output"):
        load_apps(_write(tmp_path, [{"question": "q", "input_output": "{}"}], "bad.jsonl"))


def test_record_round_trip(tmp_path):
    starter = load_dataset("starter")
    path = tmp_path / "copy.jsonl"
    path.write_text("\n".join(json.dumps(problem_to_record(p, starter.answer_keys[p.id])) for p in starter) + "\n")
    again = load_custom(path)
    assert [p.id for p in again] == [p.id for p in starter]
    assert again.answer_keys == starter.answer_keys


@pytest.mark.parametrize("name", ["sum", "max", "len", "sorted", "min", "abs"])
def test_mbpp_functions_that_shadow_builtins_load_and_are_judged_as_the_programs(sandbox, tmp_path, name):
    """MBPP task 126 (test split) names its function ``sum``: the loader and the judge must both
    mean the program's function, not the builtin."""
    record = {"task_id": 9000, "text": "Sum of common divisors.", "test_list": ["assert %s(10, 15) == 6" % name],
              "code": "def %s(a, b):\n    total = 0\n    for d in range(1, a + 1):\n"
                      "        if a %% d == 0 and b %% d == 0:\n            total += d\n    return total\n" % name}
    path = tmp_path / "mbpp.jsonl"
    path.write_text(json.dumps(record) + "\n")
    dataset = load_mbpp(path)
    problem = next(iter(dataset))
    assert problem.entry_point == name
    assert _all_pass(sandbox, dataset, _hidden) == []
    wrong = "def %s(a, b):\n    return 0\n" % name
    assert not dataset.judge(sandbox).evaluate(problem, wrong).passed


@pytest.mark.parametrize("record, field", [
    ({"text": "t", "code": "def f(): pass", "test_list": ["assert f() == 1"]}, "task_id"),
    ({"task_id": 1, "text": "t", "code": "def f(): pass", "test_list": "assert f() == 1"}, "test_list"),
    ({"task_id": 1, "text": "t", "code": "def f(): pass", "test_list": ["assert f() == 1"],
      "challenge_test_list": [3]}, "challenge_test_list"),
    ({"task_id": 1, "text": "t", "code": "def f(): pass", "test_list": ["assert f() == 1", "assert f( =="]},
     "test_list[1]"),
    ({"task_id": 1, "text": "t", "code": 7, "test_list": ["assert f() == 1"]}, "code"),
])
def test_malformed_mbpp_record_names_the_real_field(tmp_path, record, field):
    path = _write(tmp_path, [record])
    with pytest.raises(DatasetError) as info:
        load_mbpp(path)
    assert info.value.field == field and info.value.line == 1
    with pytest.warns(UserWarning, match="skipped 1"):
        assert len(load_mbpp(path, on_error="skip").skipped) == 1
