"""A file of generated tests, one problem per line, so env workers never regenerate them:
``{"problem_id": ..., "tests": [custom-schema test records], "report": {...}}``."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from ..datasets import Problem, test_from_record, test_to_record
from ..execution import TestCase


def save_generated(path: str | os.PathLike, entries: dict[str, tuple[list[TestCase], dict]]) -> None:
    """Write (atomically) the generated tests of each problem id."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_suffix(target.suffix + ".tmp")
    with open(staging, "w") as fh:
        for problem_id, (tests, report) in entries.items():
            fh.write(json.dumps({"problem_id": problem_id, "tests": [test_to_record(t) for t in tests],
                                 "report": report}) + "\n")
    os.replace(staging, target)


def load_generated(path: str | os.PathLike) -> dict[str, list[TestCase]]:
    out: dict[str, list[TestCase]] = {}
    with open(path) as fh:
        for line_number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            record = json.loads(line)
            out[record["problem_id"]] = [test_from_record(t, t.get("fn", ""), str(path), line_number, "tests[%d]" % i)
                                         for i, t in enumerate(record["tests"])]
    return out


def with_generated_tests(problems: list[Problem], path: str | os.PathLike) -> list[Problem]:
    """Copies of ``problems`` carrying the generated tests stored in ``path``."""
    generated = load_generated(path)
    return [dataclasses.replace(p, generated_tests=generated.get(p.id, [])) for p in problems]
