"""``codegym tcg``: generate, score and train the test case generator."""

from __future__ import annotations

import argparse
import json

from .common import add_command, dataset_args, load_env_data, policy_args, training_args


def register(sub) -> None:
    tcg = add_command(sub, "tcg", None, "generate, evaluate and train the test case generator")
    actions = tcg.add_subparsers(dest="action", required=True, metavar="ACTION")
    generate = add_command(actions, "generate", _run_tcg_generate,
                           "generate and filter tests; write them to a file environments can load")
    evaluate = add_command(actions, "eval", _run_tcg_eval,
                           "pass rate on the reference, validity, distinct inputs, discrimination")
    for command in (generate, evaluate):
        command.add_argument("--env", default="CodeGym/Starter-v0", help="a registered environment id")
        command.add_argument("--limit", type=int, default=None, help="the first N function problems; none: all")
        command.add_argument("--count", type=int, default=8, help="tests asked per problem")
        policy_args(command)
        dataset_args(command)
    generate.add_argument("--out", required=True, help="JSONL file (gym.make(..., generated_tests=FILE))")
    evaluate.add_argument("--json", default=None, help="also write the scores to this file; none: print only")
    for name, help_text in (("train-sft", "supervised fine-tuning on reference (input, output) pairs"),
                            ("train-dpo", "DPO: correct pairs against shuffled outputs")):
        train = add_command(actions, name, _run_tcg_train, help_text + " of a training split")
        train.add_argument("--dataset", default="mbpp", help="a dataset id (see `codegym datasets list`)")
        training_args(train, "rows")
        train.add_argument("--mark-training", action="store_true",
                           help="train on a split that is not marked for training (its hidden tests become training data)")
        dataset_args(train)
        train.set_defaults(stage=name)


def _tcg_data(args: argparse.Namespace):
    """The function problems (public) and their judge; the policy spec is checked before any load."""
    from ..llm import check_spec

    check_spec(args.policy)
    if args.count < 1 or (args.limit is not None and args.limit < 1):
        raise ValueError("--count and --limit must be at least 1")
    dataset = load_env_data(args, args.env)
    problems = [p for p in dataset.problems if p.kind == "function"][: args.limit]
    if not problems:
        raise ValueError("%s has no function problems" % args.env)
    return problems, dataset.judge()


def _run_tcg_generate(args: argparse.Namespace) -> int:
    from ..llm import load
    from ..tcg import LLMTestCaseGenerator, generate_test_file

    problems, _ = _tcg_data(args)
    generator = LLMTestCaseGenerator(load(args.policy, cache=args.cache), count=args.count)
    print(json.dumps(generate_test_file(generator, problems, args.out), indent=2))
    return 0


def _run_tcg_eval(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from ..execution import Sandbox
    from ..llm import load
    from ..tcg import LLMTestCaseGenerator, evaluate_generator

    problems, judge = _tcg_data(args)
    with Sandbox(timeout_s=5.0, cache_size=0) as sandbox:
        judge.sandbox = sandbox
        generator = LLMTestCaseGenerator(load(args.policy, cache=args.cache), sandbox=sandbox, count=args.count)
        result = asdict(evaluate_generator(generator, problems, judge, sandbox))
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)
    return 0


def _run_tcg_train(args: argparse.Namespace) -> int:
    from ..tcg.train import TCGTrainConfig, train_dpo, train_sft

    config = TCGTrainConfig(model=args.model, dataset=args.dataset, data_path=args.data_path, split=args.split,
                            training=True if args.mark_training else None, on_error=args.on_error, out=args.out,
                            max_steps=args.max_steps, batch_size=args.batch_size, learning_rate=args.learning_rate,
                            lora=args.lora, seed=args.seed)
    summary = (train_sft if args.stage == "train-sft" else train_dpo)(config)
    print(json.dumps(summary, indent=2))
    return 0
