"""``codegym datasets`` and ``codegym env``: problem sets and the environments built on them."""

from __future__ import annotations

import argparse
import json

from .common import add_command, dataset_args, load_env_data, report_skipped


def register(sub) -> None:
    datasets = add_command(sub, "datasets", None, "list and inspect problem sets")
    actions = datasets.add_subparsers(dest="action", required=True, metavar="ACTION")
    add_command(actions, "list", _datasets_list, "datasets codegym can load")
    show = add_command(actions, "show", _datasets_show, "summary of a dataset, or one problem's public view")
    show.add_argument("dataset", help="a dataset id (see `codegym datasets list`) or a custom JSONL path")
    show.add_argument("--problem", default=None, help="show this problem; none: the dataset's summary")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    dataset_args(show)

    export = add_command(actions, "export-rl", _datasets_export_rl,
                         "a training split's prompts for verl or OpenRLHF (their rows name the problem the reward scores)")
    export.add_argument("--env", default="CodeGym/MBPP-v0", help="a registered environment id")
    export.add_argument("--template", default="direct", help="the prompt template whose translate request is the prompt")
    export.add_argument("--out", required=True, help="a .parquet (verl) or .jsonl (OpenRLHF) file")
    export.add_argument("--data-path", default=None, help="data file or folder; none: the environment's default")
    export.add_argument("--split", default="train", help="a split marked for training")
    export.add_argument("--mark-training", action="store_true",
                        help="mark custom data (CodeGym/Custom-v0, CodeGym/Starter-v0) for training")

    env = add_command(sub, "env", None, "check the Gymnasium environments")
    env_actions = env.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = add_command(env_actions, "check", _env_check, "run gymnasium's env checker and a scripted episode "
                        "that translates the reference solution")
    check.add_argument("env_id", help="a registered id, e.g. CodeGym/MBPP-v0")
    dataset_args(check)


def _datasets_list(args: argparse.Namespace) -> int:
    from ..datasets import DATASETS

    width = max(map(len, DATASETS))
    for name, description in DATASETS.items():
        print("%-*s  %s" % (width, name, description))
    return 0


def _datasets_show(args: argparse.Namespace) -> int:
    from ..datasets import load_dataset

    dataset = load_dataset(args.dataset, data_path=args.data_path, split=args.split, on_error=args.on_error)
    report_skipped(dataset)
    keys = dataset.answer_keys
    if args.problem:
        problem = dataset.get(args.problem)
        view = problem.public_view() | {"training": problem.training,
                                         "hidden_tests": len(keys[problem.id].hidden_tests),
                                         "reference_solutions": len(keys[problem.id].reference_solutions),
                                         "reference_cpu_s": {**problem.reference_seconds,
                                                             "hidden": keys[problem.id].reference_seconds}}
        print(json.dumps(view, indent=2) if args.json else _format_view(view))
        return 0
    kinds = {kind: sum(p.kind == kind for p in dataset) for kind in ("function", "stdio")}
    summary = {"dataset": dataset.name, "problems": len(dataset), **kinds,
               "training_problems": sum(p.training for p in dataset),
               "with_public_tests": sum(bool(p.public_tests) for p in dataset),
               "hidden_tests": sum(len(key.hidden_tests) for key in keys.values()),
               "skipped_records": len(dataset.skipped), "dropped_public_tests": len(dataset.dropped_tests),
               "first_ids": [p.id for p in dataset.problems[:5]]}
    print(json.dumps(summary, indent=2))
    return 0


def _datasets_export_rl(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..envs import training_problems
    from ..integrations import rl_prompt_rows

    out = Path(args.out)
    if out.suffix not in (".parquet", ".jsonl"):
        raise ValueError("--out must end in .parquet or .jsonl")
    problems = training_problems(args.env, args.data_path, args.split, args.mark_training)
    rows = rl_prompt_rows(problems, args.template)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".parquet":
        from datasets import Dataset

        Dataset.from_list(rows).to_parquet(str(out))
    else:
        out.write_text("".join(json.dumps(row) + "\n" for row in rows))
    print(json.dumps({"rows": len(rows), "out": str(out), "template": args.template}))
    return 0


def _format_view(view: dict) -> str:
    lines = ["%s (%s%s)" % (view["id"], view["kind"], ", training" if view["training"] else ""), "",
             view["statement"], ""]
    if view["signature"]:
        lines.append("signature: %s" % view["signature"])
    lines.append("public tests:")
    lines += ["  " + t for t in view["public_tests"]] or ["  (none)"]
    lines.append("hidden tests: %d (content not shown)" % view["hidden_tests"])
    measured = {k: v for k, v in view["reference_cpu_s"].items() if v is not None}
    lines.append("reference CPU time: %s" % (", ".join("%s %.4f s" % (k, v) for k, v in measured.items())
                                             or "not measured (time limits use T_base)"))
    return "\n".join(lines)


def _env_check(args: argparse.Namespace) -> int:
    import gymnasium as gym
    from gymnasium.utils.env_checker import check_env

    from .. import format_step

    dataset = load_env_data(args, args.env_id)
    judge = dataset.judge()
    env = gym.make(args.env_id, problems=dataset.problems)
    check_env(env.unwrapped)
    _, info = env.reset(seed=0)
    reference = judge.reference(info["problem_id"]) or "pass"
    env.step(format_step("define", "1. Solve the problem directly."))
    _, reward, terminated, _, step_info = env.step(format_step("translate", reference))
    print("check_env: ok (%d problems)" % len(dataset.problems))
    print("scripted episode on %s: reward %.3f, terminated %s, status %s"
          % (info["problem_id"], reward, terminated, step_info.get("status")))
    return 0
