"""The sandbox's public API, verdict rules, wire codec and output comparison."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codegym.execution import LiteralTestError, Sandbox, TestCase, _codec, stdout_matches, values_equal

ADD = "def add(a, b):\n    return a + b\n"


def test_issue_example(sandbox):
    program = ADD + "import sys\nif __name__ == '__main__':\n    print(sum(map(int, sys.stdin.read().split())))\n"
    result = sandbox.run(ADD, [TestCase.call("add", args=[1, 2], expected=3),
                               TestCase.from_assert("assert add(2, 2) == 4")])
    assert result.passed and result.compiled and result.status == "passed" and len(result.tests) == 2
    assert sandbox.run(program, [TestCase.stdio("1 2\n", "3\n")]).passed
    results = sandbox.run_batch([(ADD, [TestCase.call("add", [i, i], 2 * i)]) for i in range(20)]
                                + [("def add(a, b): return 0", [TestCase.call("add", [1, 1], 2)])])
    assert [r.passed for r in results] == [True] * 20 + [False]


def test_per_test_outcomes_and_messages(sandbox):
    result = sandbox.run(ADD, [TestCase.call("add", [1, 2], 3), TestCase.call("add", [1, 2], 4),
                               TestCase.call("add", [1, "x"], 0)])
    assert [t.status for t in result.tests] == ["passed", "wrong_answer", "runtime_error"]
    assert "got 3, expected 4" in result.tests[1].message and "TypeError" in result.tests[2].message
    assert result.status == "wrong_answer" and result.pass_fraction == pytest.approx(1 / 3)


def test_python_equality_semantics_and_tolerance(sandbox):
    program = "def f():\n    return 240.0\ndef g():\n    return 0.1 + 0.2\ndef h():\n    return float('nan')\n"
    assert sandbox.run(program, [TestCase.call("f", [], 240)]).passed
    assert not sandbox.run(program, [TestCase.call("g", [], 0.3)]).passed
    assert sandbox.run(program, [TestCase.call("g", [], 0.3, float_tol=1e-9)]).passed
    assert not sandbox.run(program, [TestCase.call("h", [], float("nan"))]).passed
    assert sandbox.run(program, [TestCase.call("h", [], float("nan"), float_tol=1e-9)]).passed


def test_check_suite_with_loops_falls_back_to_interaction(sandbox):
    check = ("def check(candidate):\n    for i in range(30):\n        assert candidate(i, 1) == i + 1\n"
             "    assert candidate(2, 2) == 4\n")
    assert sandbox.run(ADD, [TestCase.from_check(check, "add")]).passed
    assert not sandbox.run("def add(a, b):\n    return a + b + (a == 17)\n", [TestCase.from_check(check, "add")]).passed


def test_syntax_error_and_compiled_flag(sandbox):
    result = sandbox.run("def add(a, b) return", [TestCase.call("add", [1, 2], 3)])
    assert result.status == "syntax_error" and not result.compiled and not result.passed
    result = sandbox.run("def add(a, b): raise KeyError", [TestCase.call("add", [1, 2], 3)])
    assert result.compiled and result.status == "runtime_error"


def test_cache_serves_identical_requests():
    with Sandbox(workers=1) as sb:
        first = sb.run(ADD, [TestCase.call("add", [1, 2], 3)])
        second = sb.run(ADD, [TestCase.call("add", [1, 2], 3)])
        assert not first.cached and second.cached and second.passed and sb.executions == 1
    with Sandbox(workers=1, cache_size=0) as sb:
        sb.run(ADD, [TestCase.call("add", [1, 2], 3)])
        assert not sb.run(ADD, [TestCase.call("add", [1, 2], 3)]).cached


def test_a_caller_waiting_for_a_worker_gets_one_when_a_worker_breaks():
    """All workers busy, a caller waits; the busy worker then breaks (it missed a deadline, say) and
    is dropped. The waiting caller must start a new worker, not wait forever (a 16-slot
    benchmark once hung this way)."""
    import threading

    with Sandbox(workers=1, cache_size=0) as sandbox:
        held = sandbox._acquire()
        results = []
        waiter = threading.Thread(target=lambda: results.append(sandbox.run("def f():\n    return 1\n",
                                                                            [TestCase.call("f", [], 1)])))
        waiter.start()
        waiter.join(0.5)
        assert waiter.is_alive()  # waiting: the only worker is held
        sandbox._release(held, healthy=False)
        waiter.join(30)
        assert not waiter.is_alive() and results[0].passed


def test_bad_input_gives_clear_errors(sandbox):
    with pytest.raises(ValueError, match="no tests"):
        sandbox.run(ADD, [])
    with pytest.raises(TypeError):
        sandbox.run(b"bytes", [TestCase.call("add", [1, 2], 3)])
    with pytest.raises(ValueError, match="mixed"):
        sandbox.run(ADD, [TestCase.call("add", [1, 2], 3), TestCase.stdio("", "")])
    with pytest.raises(ValueError):
        TestCase.call("not a name", [], 1)
    with pytest.raises(ValueError):
        TestCase.from_assert("x = 1")
    with pytest.raises(ValueError):
        Sandbox(timeout_s=0)


@pytest.mark.parametrize("args, expected", [
    ("[__import__('os').system('id')]", "0"), ("[1]", "open('/etc/passwd').read()"), ("[(lambda: 1)()]", "1"),
    ("[1]", "[x for x in range(3)]"), ("[1] + [2]", "3"),
])
def test_generated_tests_are_literals_only(args, expected):
    with pytest.raises(LiteralTestError):
        TestCase.from_literals("f", args, expected)


def test_generated_literal_test_runs(sandbox):
    test = TestCase.from_literals("add", "[1, (2, 3)]", "None")
    assert test.args == (1, (2, 3))
    assert sandbox.run("def add(a, b):\n    return None\n", [test]).passed


@pytest.mark.parametrize("got, expected, ok", [
    ("3\n", "3", True), ("3 \r\n\r\n", "3\n", True), ("1  2\n", "1 2\n", True), ("1.0000001\n", "1.0\n", True),
    ("1.1\n", "1.0\n", False), ("50000000000000001\n", "50000000000000000\n", False), ("5e16\n", "50000000000000000\n", False),
    ("abc\n", "ABC\n", False), ("3\n4\n", "3 4\n", False), ("", "", True), ("nan\n", "nan\n", True), ("nan\n", "1.5\n", False),
])
def test_stdout_comparison(got, expected, ok):
    assert stdout_matches(got, expected) is ok


def test_values_equal_tolerance_structures():
    assert values_equal([1.0, (2.0000001, {"a": 3.0})], [1, (2, {"a": 3})], float_tol=1e-6)
    assert not values_equal([1.0], (1.0,), float_tol=1e-6)
    assert not values_equal("1.0", 1.0, float_tol=1e-6)
    assert values_equal(True, 1.0, float_tol=1e-6) == (True == 1.0)  # Python semantics


_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text() | st.binary()
    | st.complex_numbers(allow_nan=False),
    lambda children: st.lists(children, max_size=4) | st.tuples(children, children)
    | st.frozensets(st.integers() | st.text(), max_size=4)
    | st.dictionaries(st.text(max_size=5) | st.integers(), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(_values)
def test_codec_round_trip_is_exact(value):
    decoded = _codec.loads(_codec.dumps(value))
    assert decoded == value and type(decoded) is type(value)


def test_codec_rejects_forgeries():
    class Sneaky(int):
        def __eq__(self, other):
            return True

    decoded = _codec.loads(_codec.dumps(Sneaky(3)))  # the trusted marker type, not Sneaky
    assert decoded == 3 and decoded != 4 and isinstance(decoded, int) and type(decoded) is not int
    assert type(decoded).__eq__ is int.__eq__
    for bad in ['{"a": 1}', '["Z", 1]', "NaN", '["I", "' + "f" * 300000 + '"]', "[" * 100000 + "]" * 100000,
                '["S", ["L"]]', '["D", [["L"], 1]]', "1" * 5000]:
        with pytest.raises(_codec.DecodeError):
            _codec.loads(bad)
    assert math.isinf(_codec.loads('["X", "inf"]'))
    with pytest.raises(_codec.UnencodableError):
        _codec.encode(object())
