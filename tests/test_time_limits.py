"""CPU-time verdicts and limits calibrated from the reference (``codegym.limits``).

A program's CPU time, not the wall clock, decides ``timeout_cpu``; a wall cap (3 T + 1 s) ends
programs that sleep (``timeout_wall``); busy neighbours do not change a verdict; a problem whose
reference is slow gets a limit that its reference and a correct program at its speed pass, through
the judge, the environment and the benchmark alike, and a program 10x slower does not.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import subprocess
import sys
import time

import gymnasium as gym
import pytest

import codegym  # noqa: F401 - registers the environments
from codegym.datasets import load_dataset
from codegym.envs.code_env import CodeReasoningEnv
from codegym.execution import Sandbox, TestCase
from codegym.limits import CalibrationCache, TimeLimits, calibrate, measure

SPIN = ("import time\ndef spin(seconds):\n    start = time.process_time()\n"
        "    while time.process_time() - start < seconds:\n        pass\n")


def _spinner(seconds: float) -> str:
    """f(x) == x + 1 after ``seconds`` of CPU time."""
    return SPIN + "def f(x):\n    spin(%r)\n    return x + 1\n" % seconds


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(timeout_s=0.5, workers=2, cache_size=0) as sb:
        yield sb


def test_a_loop_ends_on_cpu_time_and_a_sleep_on_the_wall_cap(sandbox):
    tests = [TestCase.call("f", [1], 2)]
    for program, status, least, most in [
            ("def f(x):\n    while True:\n        pass\n", "timeout_cpu", 0.0, sandbox.wall_cap(0.5) + 1.0),
            ("import time\ndef f(x):\n    time.sleep(1e9)\n", "timeout_wall", sandbox.wall_cap(0.5), sandbox.wall_cap(0.5) + 1.0),
            ("import threading\ndef g():\n    while True:\n        pass\n"
             "def f(x):\n    for _ in range(3):\n        threading.Thread(target=g, daemon=True).start()\n    g()\n",
             "timeout_cpu", 0.0, sandbox.wall_cap(0.5) + 1.0)]:
        started = time.monotonic()
        result = sandbox.run(program, tests)
        elapsed = time.monotonic() - started
        assert result.status == status, (program, result)
        assert least <= elapsed < most, (program, elapsed)
        if status == "timeout_cpu":  # every thread's time counts, and the limit is kept to within a few ms
            assert 0.5 <= result.cpu_s < 0.7, result.cpu_s
    wall = Sandbox(timeout_s=0.5, workers=1, clock="wall")
    try:
        assert wall.run("def f(x):\n    while True:\n        pass\n", tests).status == "timeout_wall"
    finally:
        wall.close()


def test_each_run_reports_its_cpu_time_limit_and_per_test_seconds(sandbox):
    program = _spinner(0.0) + "def g(x):\n    spin(0.3)\n    return x\n"
    tests = [TestCase.call("f", [1], 2), TestCase.call("g", [5], 5), TestCase.call("f", [2], 3)]
    result = sandbox.run(program, tests, timeout_s=1.5)
    assert result.passed and result.time_limit_s == 1.5
    assert 0.3 <= result.cpu_s < 0.6, result.cpu_s
    seconds = [t.seconds for t in result.tests]
    assert seconds[1] >= 0.3 > max(seconds[0], seconds[2]), seconds
    assert sandbox.run(program, tests, timeout_s=0.2).status == "timeout_cpu"  # a per-run limit is real
    with pytest.raises(ValueError, match="positive"):
        sandbox.run(program, tests, timeout_s=0)


def _busy(count: int) -> list[subprocess.Popen]:
    # each in its own session: with autogroup scheduling, a session shares the CPU as one unit
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True) for _ in range(count)]


def test_busy_neighbours_change_no_cpu_verdict_but_do_change_wall_verdicts():
    """0.6 s of CPU against a 1 s limit, with 2 busy processes per core beside it: it gets about
    2/5 of a core, so its wall time is ~1.5 s. CPU accounting passes it; wall accounting (the old
    rule) calls the same correct program a timeout."""
    tests = [TestCase.call("f", [1], 2)]
    cores = len(os.sched_getaffinity(0))
    with Sandbox(timeout_s=1.0, workers=1, cache_size=0) as cpu, \
            Sandbox(timeout_s=1.0, workers=1, cache_size=0, clock="wall") as wall:
        assert cpu.run(_spinner(0.6), tests).passed
        neighbours = _busy(2 * cores)
        try:
            time.sleep(0.2)
            under_load = cpu.run(_spinner(0.6), tests)
            wall_under_load = wall.run(_spinner(0.6), tests)
        finally:
            for process in neighbours:
                process.kill()
                process.wait()
    assert under_load.passed, under_load
    assert under_load.wall_s > 1.0  # it really was slowed down
    assert wall_under_load.status == "timeout_wall", wall_under_load


def test_time_limits_rule():
    limits = TimeLimits(base_s=2.0, factor=4.0)
    assert limits.limit(None) == 2.0 and limits.limit(0.1) == 2.0 and limits.limit(3.0) == 12.0
    assert limits.for_sets({"public": 1.0, "generated": 0.5}, ["public", "generated"]) == (6.0, "reference")
    assert limits.for_sets({"public": 1.0}, ["public", "generated"]) == (4.0, "base")
    assert limits.for_sets({}, ["public"]) == (2.0, "base")
    with pytest.raises(ValueError, match="base_s > 0"):
        TimeLimits(0.0, 4.0)


def _write_problem(path, reference: str, problem_id: str = "slow") -> str:
    record = {"id": problem_id, "statement": "Return x + 1.", "entry_point": "f", "reference_solutions": [reference],
              "public_tests": [{"type": "assert", "code": "assert f(1) == 2"}],
              "hidden_tests": [{"type": "assert", "code": "assert f(41) == 42"}]}
    path.write_text(json.dumps(record) + "\n")
    return str(path)


def test_calibration_is_cached_per_machine_and_per_program(tmp_path):
    data = _write_problem(tmp_path / "quick.jsonl", _spinner(0.0))
    with Sandbox(workers=1, cache_size=0) as runner:
        cache = CalibrationCache(tmp_path / "cal", fingerprint="machine-a")
        dataset = calibrate(load_dataset(data, calibrate=False), runner, cache)
        first = runner.executions
        assert first >= 2 and cache.path.exists()  # public and hidden, measured
        assert set(dataset.problems[0].reference_seconds) == {"public"}
        assert dataset.answer_keys["slow"].reference_seconds is not None

        calibrate(load_dataset(data, calibrate=False), runner, CalibrationCache(tmp_path / "cal", fingerprint="machine-a"))
        assert runner.executions == first  # reused from the file: nothing ran

        calibrate(load_dataset(data, calibrate=False), runner, CalibrationCache(tmp_path / "cal", fingerprint="machine-b"))
        assert runner.executions > first  # another machine measures afresh
        second = runner.executions

        _write_problem(tmp_path / "quick.jsonl", _spinner(0.0) + "# changed\n")
        calibrate(load_dataset(data, calibrate=False), runner, CalibrationCache(tmp_path / "cal", fingerprint="machine-b"))
        assert runner.executions > second  # a changed reference measures afresh

        wrong = _write_problem(tmp_path / "wrong.jsonl", "def f(x):\n    return x\n", "wrong")
        dataset = calibrate(load_dataset(wrong, calibrate=False), runner, cache)
        assert dataset.problems[0].reference_seconds == {}  # a reference failing its tests gives no limit
        assert dataset.answer_keys["wrong"].reference_seconds is None


def test_measure_takes_the_least_of_repeats_and_none_for_failures():
    with Sandbox(workers=1, cache_size=0) as runner:
        before = runner.executions
        quick, failing, slow = measure(runner, [(_spinner(0.0), [TestCase.call("f", [1], 2)]),
                                                ("def f(x):\n    return 0\n", [TestCase.call("f", [1], 2)]),
                                                (_spinner(0.6), [TestCase.call("f", [1], 2)])], repeats=3)
        assert quick is not None and quick < 0.1 and failing is None and 0.6 <= slow < 0.8
        assert runner.executions - before == 3 + 2  # quick: 3 runs; failing and slow: 1 each


def test_environment_arguments_in_the_docstring_are_real():
    section = CodeReasoningEnv.__doc__.split("## Arguments", 1)[1].strip().split("\n\n")[0]
    named = {name for name in re.findall(r"``([^`]+)``", section) if name.isidentifier()}
    accepted = set(inspect.signature(CodeReasoningEnv.__init__).parameters)
    assert named - accepted == set(), named - accepted
    assert {"time_limit_base_s", "time_limit_factor"} <= named


def test_without_a_reference_the_base_limit_applies_and_info_says_so(tmp_path):
    record = {"id": "noref", "statement": "Return x + 1.", "entry_point": "f",
              "public_tests": [{"type": "assert", "code": "assert f(1) == 2"}],
              "hidden_tests": [{"type": "assert", "code": "assert f(41) == 42"}]}
    (tmp_path / "noref.jsonl").write_text(json.dumps(record) + "\n")
    env = gym.make("CodeGym/Custom-v0", dataset=str(tmp_path / "noref.jsonl"), time_limit_base_s=1.5)
    env.reset(options={"problem_id": "noref"})
    env.step("[define]\n1. add one")
    _, reward, *_, info = env.step("[translate]\n```python\ndef f(x):\n    return x + 1\n```")
    assert reward == 1.0 and info["time_limit_s"] == 1.5 and info["time_limit_source"] == "base"


SLOW_AGENT = '''
from dataclasses import dataclass

from agents import Solution
from codegym.llm import Usage

PROGRAM = {program!r}


@dataclass
class SubmitConfig:
    pass


class Submit:
    """Submits a fixed program through the environment (a test's stand-in for a search agent)."""

    Config = SubmitConfig

    def __init__(self, policy, config=None, prm=None):
        self.policy = policy

    def solve(self, env, problem_id, budget):
        env.reset(options={{"problem_id": problem_id}})
        env.step("[define]\\n1. add one")
        _, reward, *_ = env.step("[translate]\\n```python\\n" + PROGRAM + "```")
        return Solution(problem_id, PROGRAM, [], Usage(), reward=reward, sandbox_runs=1)
'''


@pytest.mark.timeout(300)
def test_a_slow_reference_sets_a_limit_that_judge_env_and_bench_share(tmp_path, monkeypatch):
    """The reference takes ~3 s of CPU: with the old fixed 2 s it failed its own tests. Now a
    correct program at its speed passes through the judge, the environment and ``codegym bench``,
    and one 10x slower is a CPU timeout (k = 2 here, to keep the test short)."""
    monkeypatch.setenv("CODEGYM_CACHE", str(tmp_path / "cache"))
    data = _write_problem(tmp_path / "slow.jsonl", _spinner(3.0))
    dataset = load_dataset(data)  # calibrates
    problem = dataset.problems[0]
    assert 3.0 <= problem.reference_seconds["public"] < 3.6
    limits = TimeLimits(base_s=2.0, factor=2.0)
    judge = dataset.judge(limits=limits)
    assert 6.0 <= judge.time_limit("slow") < 7.2
    assert judge.evaluate("slow", _spinner(3.0)).passed
    slow = judge.evaluate("slow", _spinner(30.0))
    assert slow.status == "timeout_cpu"
    assert not Sandbox.__init__.__defaults__[0] > 3.0  # the old fixed limit (2 s) would fail the reference

    env = gym.make("CodeGym/Custom-v0", problems=dataset.problems, time_limit_factor=2.0)
    env.reset(options={"problem_id": "slow"})
    env.step("[define]\n1. add one")
    _, reward, *_, info = env.step("[translate]\n```python\n%s```" % _spinner(3.0))
    assert reward == 1.0, info
    assert info["time_limit_source"] == "reference" and 6.0 <= info["time_limit_s"] < 7.2
    env.reset(options={"problem_id": "slow"})
    env.step("[define]\n1. add one")
    _, reward, *_, info = env.step("[translate]\n```python\n%s```" % _spinner(30.0))
    assert reward == 0.0 and info["status"] == "timeout_cpu"  # the env's reward agrees with the judge

    from codegym.bench import BenchConfig, run_bench
    from codegym.llm.scripted import ScriptedBackend

    agent = tmp_path / "submit_agent.py"
    agent.write_text(SLOW_AGENT.format(program=_spinner(3.0)))
    config = BenchConfig(env="CodeGym/Custom-v0", data_path=data, agents=["submit=%s:Submit" % agent],
                         time_limit_factor=2.0, aspr_samples=0, out=str(tmp_path / "run"), parallel=1)
    run_bench(config, progress=False, backend=ScriptedBackend(lambda prompt, seed: ''))
    rows = [json.loads(line) for line in (tmp_path / "run" / "results.jsonl").read_text().splitlines()]
    assert [row["passed"] for row in rows] == [True]
    written = json.loads((tmp_path / "run" / "config.json").read_text())["config"]
    assert written["time_limit_factor"] == 2.0 and written["time_limit_base_s"] == 2.0


def test_calibration_keys_do_not_depend_on_the_hash_seed():
    script = ("from codegym.execution import TestCase\nfrom codegym.limits import CalibrationCache\n"
              "print(CalibrationCache.key('p', [TestCase.call('f', [{'apple', 'pear', 'fig', 'kiwi'}, {'a': {1, 2}}],"
              " frozenset({'x', 'y', 'z'}))], (512, 1)))\n")
    keys = {subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": str(seed)}).stdout for seed in (1, 2, 3)}
    assert len(keys) == 1, keys
    assert CalibrationCache.key("p", [], (512, 1)) != CalibrationCache.key("p", [], (256, 1))


def test_waiting_for_a_worker_is_not_the_programs_time():
    """The only worker is busy for longer than the wall cap; a correct program queued behind it
    must still pass (the wall clock starts when its worker is free)."""
    import threading

    with Sandbox(timeout_s=0.3, workers=1, cache_size=0) as sandbox:
        held = sandbox._acquire()
        results = []
        waiter = threading.Thread(target=lambda: results.append(sandbox.run(_spinner(0.1), [TestCase.call("f", [1], 2)])))
        waiter.start()
        time.sleep(sandbox.wall_cap(0.3) + 0.5)
        sandbox._release(held, healthy=True)
        waiter.join(30)
    assert results and results[0].passed, results


def test_passed_means_within_the_limits_and_the_child_has_a_kernel_backstop(sandbox):
    """Answering every test and then spinning (or sleeping) past the limit is a timeout, not a
    pass; the child's RLIMIT_CPU is set a second past its job's limit, and reading limits works."""
    tail = ("import os\n_close = os.close\ndef close(fd):\n    if fd == 4:\n%s\n    _close(fd)\nos.close = close\n"
            "def f(x):\n    return x + 1\n")
    tests = [TestCase.call("f", [1], 2)]
    spin = sandbox.run(tail % "        while True:\n            pass", tests)
    assert spin.status == "timeout_cpu" and not spin.passed and spin.tests[0].passed
    sleep = sandbox.run(tail % "        import time\n        time.sleep(1e9)", tests)
    assert sleep.status == "timeout_wall" and not sleep.passed
    limits = ("import resource\ndef f():\n    return [list(resource.getrlimit(resource.RLIMIT_CPU)),"
              " resource.getrlimit(resource.RLIMIT_NOFILE)[0]]\n")
    result = sandbox.run(limits, [TestCase.call("f", [], [[2, 3], 64])], timeout_s=0.5)
    assert result.passed, result.tests[0].message
