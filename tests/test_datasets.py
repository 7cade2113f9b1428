"""Loaders on real data, and malformed records reported with file, line and field."""

from __future__ import annotations

import json

import pytest

from codegym.datasets import DatasetError, load_apps, load_custom, load_dataset, load_humaneval, load_mbpp


def _all_pass(sandbox, dataset, tests_of):
    items = [(p.program_for_tests(p.reference_solutions[0]), tests_of(p)) for p in dataset if tests_of(p)]
    results = sandbox.run_batch(items)
    return [p.id for p, r in zip([p for p in dataset if tests_of(p)], results) if not r.passed]


def test_humaneval_loads_offline_and_references_pass(sandbox):
    dataset = load_humaneval()
    assert len(dataset) == 164 and not dataset.skipped
    problem = dataset.get("HumanEval/0")
    assert problem.entry_point == "has_close_elements" and problem.signature.startswith("def has_close_elements(")
    assert problem.hidden_tests[0].kind == "check"
    assert sum(bool(p.public_tests) for p in dataset) >= 110
    assert _all_pass(sandbox, dataset, lambda p: p.hidden_tests) == []
    assert _all_pass(sandbox, dataset, lambda p: p.public_tests) == []


def test_mbpp_folder_and_file_load_and_references_pass(sandbox, mbpp_dir):
    validation = load_mbpp(mbpp_dir, split="validation")
    assert len(validation) == 90
    everything = load_mbpp(mbpp_dir)
    assert len(everything) == 474
    single_file = load_mbpp(mbpp_dir / "train.jsonl")
    assert len(single_file) == 374
    problem = validation.get("MBPP/511")
    assert problem.public_tests == problem.hidden_tests[:1]
    assert len(problem.hidden_tests) == 3
    assert _all_pass(sandbox, everything, lambda p: p.hidden_tests) == []


def test_starter_set_is_complete_and_correct(sandbox):
    dataset = load_dataset("starter")
    kinds = [p.kind for p in dataset]
    assert kinds.count("function") >= 30 and kinds.count("stdio") >= 10
    for problem in dataset:
        assert problem.public_tests and problem.hidden_tests and problem.reference_solutions
        assert all(t in problem.hidden_tests for t in problem.public_tests)
    assert _all_pass(sandbox, dataset, lambda p: p.hidden_tests) == []


def test_wrong_solution_fails_starter_tests(sandbox):
    problem = load_dataset("starter").get("starter/gcd")
    result = sandbox.run("def gcd(a, b):\n    return a * b\n", problem.hidden_tests)
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
    ("{not json", "<line>"),
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
    assert len(stdio.public_tests) == 1 and len(stdio.hidden_tests) == 2
    for problem in dataset:
        assert sandbox.run(problem.reference_solutions[0], problem.hidden_tests).passed
    with pytest.raises(DatasetError, match="input_output"):
        load_apps(_write(tmp_path, [{"question": "q", "input_output": "{}"}], "bad.jsonl"))


def test_record_round_trip(tmp_path):
    starter = load_dataset("starter")
    path = tmp_path / "copy.jsonl"
    path.write_text("\n".join(json.dumps(p.to_record()) for p in starter) + "\n")
    again = load_custom(path)
    assert [p.id for p in again] == [p.id for p in starter]
    assert [p.hidden_tests for p in again] == [p.hidden_tests for p in starter]


@pytest.mark.parametrize("name", ["sum", "max", "len", "sorted", "min", "abs"])
def test_mbpp_functions_that_shadow_builtins_load_and_are_judged_as_the_programs(sandbox, tmp_path, name):
    """MBPP task 126 (test split) names its function ``sum``: the loader and the judge must both
    mean the program's function, not the builtin."""
    record = {"task_id": 9000, "text": "Sum of common divisors.", "test_list": ["assert %s(10, 15) == 6" % name],
              "code": "def %s(a, b):\n    total = 0\n    for d in range(1, a + 1):\n"
                      "        if a %% d == 0 and b %% d == 0:\n            total += d\n    return total\n" % name}
    path = tmp_path / "mbpp.jsonl"
    path.write_text(json.dumps(record) + "\n")
    problem = next(iter(load_mbpp(path)))
    assert problem.entry_point == name
    assert _all_pass(sandbox, [problem], lambda p: p.hidden_tests) == []
    wrong = "def %s(a, b):\n    return 0\n" % name
    assert not sandbox.run(problem.program_for_tests(wrong), problem.hidden_tests).passed
