"""The command line and the examples, run as a user would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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


def test_bad_input_gives_clear_error():
    result = _codegym("datasets", "show", "no-such-dataset")
    assert result.returncode == 2 and "unknown dataset" in result.stderr
    result = _codegym("env", "check", "CodeGym/MBPP-v0", "--data-path", "/nonexistent")
    assert result.returncode == 2 and "not found" in result.stderr.lower()


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
