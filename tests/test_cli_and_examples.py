"""The command line and the examples, run as a user would."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _codegym(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "codegym.cli", *args], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)


def test_datasets_list_and_show():
    listing = _codegym("datasets", "list")
    assert listing.returncode == 0 and "humaneval" in listing.stdout and "custom:PATH" in listing.stdout
    shown = _codegym("datasets", "show", "starter")
    summary = json.loads(shown.stdout)
    assert summary["problems"] >= 40 and summary["stdio"] >= 10
    one = _codegym("datasets", "show", "humaneval", "--problem", "HumanEval/0", "--json")
    view = json.loads(one.stdout)
    assert view["entry_point"] == "has_close_elements" and view["hidden_tests"] == 1
    assert "candidate" not in one.stdout  # the check's source is never printed


def test_env_check_and_sandbox_info(mbpp_dir):
    checked = _codegym("env", "check", "CodeGym/MBPP-v0", "--data-path", str(mbpp_dir), "--split", "validation")
    assert checked.returncode == 0, checked.stderr
    assert "check_env: ok (90 problems)" in checked.stdout and "reward 1.000" in checked.stdout
    info = json.loads(_codegym("sandbox", "info").stdout)
    assert {"landlock_abi", "seccomp", "namespaces", "uid_drop"} <= set(info)


def _one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    lines = [line for line in result.stderr.splitlines() if line.strip() and "Warning" not in line
             and not line.startswith("  ")]
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("codegym: error: "), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_bad_input_gives_clear_error():
    _one_line_error(_codegym("datasets", "show", "no-such-dataset"), "unknown dataset")
    _one_line_error(_codegym("env", "check", "CodeGym/MBPP-v0", "--data-path", "/nonexistent"), "not found")
    _one_line_error(_codegym("env", "check", "CodeGym/Nope-v0"), "unknown env id", "CodeGym/Starter-v0",
                    "CodeGym/MBPP-v0")
    _one_line_error(_codegym("solve", "--env", "CodeGym/Nope-v0", "--problem", "x"), "unknown env id")
    _one_line_error(_codegym("solve", "--problem", "nope"), "no problem 'nope'")


@pytest.mark.parametrize("args, message", [
    (["--agents", "greedy,no-such-agent"], "unknown agent 'no-such-agent'"),
    (["--agents", "no.such.module:Agent"], "cannot load agent"),
    (["--env", "CodeGym/Nope-v0"], "unknown env id"),
    (["--policy", "gpt:5"], "unknown policy spec"),
    (["--policy", "ct2:/nonexistent/model"], "no CTranslate2 model folder"),
    (["--problems", "starter/gcd,starter/nope"], "unknown problem ids"),
    (["--env", "CodeGym/MBPP-v0", "--data-path", "/nonexistent"], "not found"),
    (["--template", "nope"], "no prompt template"),
    (["--budget-tokens", "0"], "budgets must be positive"),
    (["--seeds", "a,b"], "comma-separated integers"),
    (["--split", "validation"], "applies to MBPP only"),
    (["--baseline", "beam", "--agents", "greedy"], "is not an agent label"),
    (["--agent", "m=mcts:cc=1"], "has no field 'cc'; fields: expansion"),
    (["--agent", "m=mcts:c=high"], "field 'c' must be float"),
    (["--agent", "b=best-of-n:selector=nope"], "unknown selector"),
    (["--config", "/nonexistent.toml"], "nonexistent"),
])
def test_bench_validates_before_loading_or_writing(tmp_path, args, message):
    out = tmp_path / "out"
    started = time.monotonic()
    result = _codegym("bench", "--out", str(out), "--limit", "1", *args)
    _one_line_error(result, message)
    assert not out.exists()  # no config.json, no trees/
    assert time.monotonic() - started < 30  # no model was loaded


def test_malformed_records_raise_or_are_skipped_and_counted(tmp_path):
    good = {"id": "p1", "statement": "Add.", "entry_point": "add",
            "hidden_tests": [{"type": "call", "args": "[1, 2]", "expected": "3"}]}
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join([json.dumps(good), json.dumps({**good, "id": "p2", "statement": 5}), "{oops"]) + "\n")
    _one_line_error(_codegym("datasets", "show", "custom:%s" % path), "data.jsonl:2", "field 'statement'")
    _one_line_error(_codegym("env", "check", "CodeGym/Custom-v0", "--data-path", str(path)), "field 'statement'")
    shown = _codegym("datasets", "show", "custom:%s" % path, "--on-error", "skip")
    assert shown.returncode == 0 and json.loads(shown.stdout)["skipped_records"] == 2
    assert "skipped 2 malformed record(s)" in shown.stderr
    checked = _codegym("env", "check", "CodeGym/Custom-v0", "--data-path", str(path), "--on-error", "skip")
    assert checked.returncode == 0 and "check_env: ok (1 problems)" in checked.stdout
    assert "skipped 2 malformed record(s)" in checked.stderr


def test_tcg_training_refuses_an_evaluation_split_and_writes_nothing(tmp_path):
    out = tmp_path / "sft"
    _one_line_error(_codegym("tcg", "train-sft", "--dataset", "starter", "--out", str(out)), "not a training split")
    assert not out.exists()


def test_every_flag_has_help_with_its_default():
    from codegym.cli import build_parser

    def walk(parser, path):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    yield from walk(child, path + [name])
            elif action.option_strings and action.dest != "help":
                yield path, action, parser

    flags = list(walk(build_parser(), []))
    assert len(flags) > 60
    for path, action, parser in flags:
        assert action.help and action.help.strip(), (path, action.option_strings)
        if action.default is argparse.SUPPRESS:  # set from a config file unless given: the help says the default
            assert "(default:" in action.help, (path, action.option_strings)
        elif not action.required and action.nargs != 0:
            assert "%(default)s" in parser.formatter_class("codegym")._get_help_string(action), action.option_strings
    assert "(default: greedy,mcts)" in _codegym("bench", "--help").stdout.replace("\n", "").replace("  ", "")
    top = _codegym("--help").stdout
    assert "reasoning before coding" in top and "cli.py" not in top and "codegym demo" in top


def test_scripted_episode_example():
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "scripted_episode.py")], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "translate reward=1.00 terminated=True" in result.stdout and "passed=True" in result.stdout


def test_solve_plays_one_greedy_episode_on_the_embedded_model():
    result = _codegym("solve", "--env", "CodeGym/Starter-v0", "--problem", "starter/sum_of_squares", "--policy", "smollm2")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.index("[define]") < out.index("[refine]") < out.index("[translate]")
    assert "status on public tests:" in out and "generated_tokens" in out
