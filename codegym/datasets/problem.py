"""One problem type for every source, split in two: the public :class:`Problem` every agent sees,
and the :class:`AnswerKey` (hidden tests, references) that only a judge holds."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any, Literal

from ..execution import TestCase

ProblemKind = Literal["function", "stdio"]


class DatasetError(ValueError):
    """A malformed record: the message names the file, the line and the field (None where the
    line is not a JSON object at all)."""

    def __init__(self, path: str, line: int, field_name: str | None, reason: str):
        where = "" if field_name is None else "field %r: " % field_name
        super().__init__("%s:%d: %s%s" % (path, line, where, reason))
        self.path, self.line, self.field, self.reason = path, line, field_name, reason


@dataclass
class Problem:
    """A programming problem as environments, agents, selectors, the TCG and models see it.

    It holds no hidden test and no path to one: the hidden tests are in the problem's
    :class:`AnswerKey`, which only a :class:`codegym.Judge` holds (see :mod:`codegym.judge`).
    ``public_tests`` may be shown to a model (in the prompt), ``generated_tests`` come from the
    Test Case Generator. ``test_setup`` is trusted dataset code appended to a submission before
    its tests run (MBPP's ``test_setup_code``, which builds inputs from the program's classes).

    ``training`` marks a problem from a split marked for training (MBPP train, or a dataset
    loaded with ``training=True``). Only such a problem carries ``reference_solutions`` and
    ``all_tests`` (the split's full test list, which ``reward_tests="all"`` rewards against).

    ``reference_seconds`` maps a test set (``public``, ``generated``, ``all``) to the CPU seconds the
    reference solution took on it (:func:`codegym.limits.calibrate`), from which the time limit
    of a run on that set is computed; a set that was not measured gets the base limit.
    """

    id: str
    statement: str
    kind: ProblemKind = "function"
    entry_point: str = ""
    signature: str = ""
    public_tests: list[TestCase] = field(default_factory=list)
    generated_tests: list[TestCase] = field(default_factory=list)
    test_setup: str = ""
    source: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    training: bool = False
    reference_solutions: list[str] = field(default_factory=list)
    all_tests: list[TestCase] = field(default_factory=list)
    reference_seconds: dict[str, float] = field(default_factory=dict, compare=False)  # a measurement, not data

    def __post_init__(self) -> None:
        if not self.training and (self.reference_solutions or self.all_tests):
            raise ValueError("problem %s: reference_solutions and all_tests belong to training problems only "
                             "(an evaluation problem's answers live in its AnswerKey)" % self.id)

    def program_for_tests(self, code: str) -> str:
        """The submission as it runs against this problem's tests."""
        return with_setup(code, self.test_setup)

    def public_view(self) -> dict[str, Any]:
        """What a model or agent may see in a prompt: everything except references."""
        return {"id": self.id, "statement": self.statement, "kind": self.kind, "entry_point": self.entry_point,
                "signature": self.signature, "public_tests": [t.describe(400) for t in self.public_tests]}


@dataclass(frozen=True)
class AnswerKey:
    """What only the judge holds for one problem: its hidden tests, its reference solutions, the
    trusted setup code its tests run with, and the reference's CPU time on the hidden tests."""

    hidden_tests: tuple[TestCase, ...]
    reference_solutions: tuple[str, ...] = ()
    test_setup: str = ""
    reference_seconds: float | None = field(default=None, compare=False)  # CPU time on the hidden tests, if measured

    def __post_init__(self) -> None:
        if not self.hidden_tests:
            raise ValueError("an answer key needs at least one hidden test")

    def __repr__(self) -> str:
        return "AnswerKey(%d hidden tests, %d references)" % (len(self.hidden_tests), len(self.reference_solutions))


def with_setup(code: str, test_setup: str) -> str:
    return code if not test_setup else code + "\n\n" + test_setup


def split_problem(*, hidden_tests: list[TestCase], reference_solutions: list[str] | None = None,
                  training: bool = False, **public: Any) -> tuple[Problem, AnswerKey]:
    """What a loader yields for one record: the public problem and its answer key. On a training
    problem the references and the full test list are public too; on any other they are not."""
    references = list(reference_solutions or [])
    key = AnswerKey(tuple(hidden_tests), tuple(references), public.get("test_setup", ""))
    if training:
        public.update(reference_solutions=references, all_tests=list(hidden_tests))
    return Problem(training=training, **public), key


# -- the custom JSONL schema (docs: envs_data/schema.md) -------------------------------------------------
def problem_to_record(problem: Problem, key: AnswerKey) -> dict[str, Any]:
    """One record of the custom schema, from a problem and its answer key."""
    return {
        "id": problem.id, "statement": problem.statement, "kind": problem.kind, "entry_point": problem.entry_point,
        "signature": problem.signature, "reference_solutions": list(key.reference_solutions),
        "public_tests": [test_to_record(t) for t in problem.public_tests],
        "hidden_tests": [test_to_record(t) for t in key.hidden_tests],
        "generated_tests": [test_to_record(t) for t in problem.generated_tests],
        "test_setup": problem.test_setup, "metadata": problem.metadata,
    }


def problem_from_record(record: Any, path: str = "<record>", line: int = 0, source: str = "custom",
                        training: bool = False) -> tuple[Problem, AnswerKey]:
    """A custom-schema record as a public problem and its answer key; DatasetError names the field."""
    if not isinstance(record, dict):
        raise DatasetError(path, line, None, "expected a JSON object")

    def need(name: str, kind: type | tuple[type, ...], default: Any = None, required: bool = False) -> Any:
        if name not in record:
            if required:
                raise DatasetError(path, line, name, "missing")
            return default
        if not isinstance(record[name], kind):
            raise DatasetError(path, line, name, "expected %s" % getattr(kind, "__name__", kind))
        return record[name]

    problem_id = need("id", (str, int), required=True)
    kind = need("kind", str, "function")
    if kind not in ("function", "stdio"):
        raise DatasetError(path, line, "kind", "must be 'function' or 'stdio'")
    entry_point = need("entry_point", str, "")
    if kind == "function" and not entry_point.isidentifier():
        raise DatasetError(path, line, "entry_point", "a function problem needs an identifier")
    tests = {}
    for name in ("public_tests", "hidden_tests", "generated_tests"):
        entries = need(name, list, [])
        tests[name] = [test_from_record(entry, entry_point, path, line, "%s[%d]" % (name, i))
                       for i, entry in enumerate(entries)]
    if not tests["hidden_tests"]:
        raise DatasetError(path, line, "hidden_tests", "at least one hidden test is required")
    solutions = need("reference_solutions", list, [])
    if not all(isinstance(s, str) for s in solutions):
        raise DatasetError(path, line, "reference_solutions", "expected a list of strings")
    return split_problem(id=str(problem_id), statement=need("statement", str, required=True), kind=kind,
                         entry_point=entry_point, signature=need("signature", str, ""), reference_solutions=solutions,
                         test_setup=need("test_setup", str, ""), source=source, metadata=need("metadata", dict, {}),
                         training=training, **tests)


def _literal_field(entry: dict, name: str, path: str, line: int, where: str) -> Any:
    value = entry.get(name)
    if isinstance(value, str):
        try:
            return ast.literal_eval(value)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as err:
            raise DatasetError(path, line, "%s.%s" % (where, name), "not a Python literal: %s" % err) from err
    return value


def test_from_record(entry: Any, entry_point: str, path: str, line: int, where: str) -> TestCase:
    """A test in the custom schema: {"type": "call"|"assert"|"stdio", ...}."""
    if not isinstance(entry, dict) or entry.get("type") not in ("call", "assert", "stdio", "check"):
        raise DatasetError(path, line, where, "a test is an object with type call, assert, check or stdio")
    kind = entry["type"]
    origin = str(entry.get("origin", ""))
    try:
        if kind == "call":
            if "args" not in entry or "expected" not in entry:
                raise DatasetError(path, line, where, "a call test needs args and expected")
            args = _literal_field(entry, "args", path, line, where)
            if not isinstance(args, (list, tuple)):
                raise DatasetError(path, line, where + ".args", "must be a list of arguments")
            expected = _literal_field(entry, "expected", path, line, where)
            return TestCase.call(str(entry.get("fn", entry_point)), list(args), expected,
                                 entry.get("float_tol"), origin)
        if kind == "assert":
            return TestCase.from_assert(str(entry.get("code", "")), origin, entry_point)
        if kind == "check":
            return TestCase.from_check(str(entry.get("code", "")), entry_point, str(entry.get("setup", "")), origin)
        if not isinstance(entry.get("input"), str) or not isinstance(entry.get("output"), str):
            raise DatasetError(path, line, where, "a stdio test needs string input and output")
        return TestCase.stdio(entry["input"], entry["output"], origin)
    except DatasetError:
        raise
    except (ValueError, SyntaxError, TypeError) as err:
        raise DatasetError(path, line, where, str(err)) from err


def test_to_record(test: TestCase) -> dict[str, Any]:
    record: dict[str, Any]
    if test.kind == "call":
        record = {"type": "call", "fn": test.fn, "args": repr(list(test.args)), "expected": repr(test.expected)}
        if test.float_tol is not None:
            record["float_tol"] = test.float_tol
    elif test.kind == "assert":
        record = {"type": "assert", "code": test.source}
    elif test.kind == "check":
        record = {"type": "check", "code": test.source, "setup": test.setup}
    else:
        record = {"type": "stdio", "input": test.stdin, "output": test.expected_stdout}
    if test.origin:
        record["origin"] = test.origin
    return record
