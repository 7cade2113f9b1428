"""``codegym prm``: process-reward labels from search trees."""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from .common import add_command, training_args


def register(sub) -> None:
    prm = add_command(sub, "prm", None, "process reward models: labels from search trees")
    actions = prm.add_subparsers(dest="action", required=True, metavar="ACTION")
    data = add_command(actions, "data", _run_prm_data, "point-wise and pair-wise step labels from a bench run's trees")
    data.add_argument("run_dir", metavar="RUN", help="a codegym bench output folder (config.json and trees/)")
    data.add_argument("--out", required=True, help="folder for stepwise_*.jsonl and pairs.jsonl")
    data.add_argument("--margin", type=float, default=0.5, help="least Q difference for a preference pair")
    data.add_argument("--min-distance", type=float, default=0.1,
                      help="least text distance (1 - difflib ratio) between a pair's steps")
    data.add_argument("--rollouts", type=int, default=0,
                      help="also Monte-Carlo labels: translates sampled per reasoning prefix (0: off)")
    data.add_argument("--policy", default="smollm2", help="the model that samples the rollouts (with --rollouts)")
    data.add_argument("--temperature", type=float, default=0.8, help="sampling temperature of the rollouts")
    data.add_argument("--seed", type=int, default=0, help="seed of the rollouts")
    train = add_command(actions, "train", _run_prm_train, "train a token or value PRM on stepwise labels or pairs")
    train.add_argument("--labels", required=True, help="stepwise_*.jsonl (point-wise) or pairs.jsonl (--objective pair)")
    train.add_argument("--kind", choices=("token", "value"), default="token",
                       help="token: p(+) at a rating tag; value: a scalar head on the tag's hidden state")
    train.add_argument("--objective", choices=("point", "pair"), default="point",
                       help="point: soft-label cross-entropy; pair: Bradley-Terry on sibling pairs (value only)")
    training_args(train, "trajectories")
    evaluate = add_command(actions, "eval", _run_prm_eval, "step-level AUC and accuracy of a PRM against labels")
    evaluate.add_argument("--labels", required=True, help="a stepwise_*.jsonl file (tree_mc_hard: 0/1 labels)")
    evaluate.add_argument("--prm", required=True,
                          help="token:PATH or value:PATH (a trained PRM), or logprob:PATH (the baseline)")
    evaluate.add_argument("--against", default=None,
                          help="another PRM spec scored on the same steps (e.g. logprob:smollm2): its AUC and "
                          "the paired difference with a bootstrap interval and p; none: no comparison")
    evaluate.add_argument("--json", default=None, help="also write the scores to this file; none: print only")
    evaluate.add_argument("--sample", type=int, default=None,
                          help="score a seeded random sample of this many rows; none: every row")
    evaluate.add_argument("--seed", type=int, default=0, help="seed of --sample")
    rerank = add_command(actions, "rerank", _run_prm_rerank,
                         "best-of-N reranking: PRMs against public-test reward, majority vote and random")
    rerank.add_argument("run_dir", metavar="RUN", help="a codegym bench output folder whose trees hold the candidates")
    rerank.add_argument("--prm", action="append", default=[], help="a PRM spec to compare (repeatable; "
                        "logprob:PATH is the untrained baseline) (default: none)")
    rerank.add_argument("--n", type=int, default=8, help="candidates per problem (distinct verified programs)")
    rerank.add_argument("--aggregate", choices=("mean", "min", "last"), default="mean",
                        help="how a candidate's step scores become one")
    rerank.add_argument("--out", required=True, help="folder for candidates.jsonl and rerank.json")
    rerank.add_argument("--seed", type=int, default=0, help="seed of the bootstrap intervals and tests")


def _run_prm_data(args: argparse.Namespace) -> int:
    from ..prm.labels import label_run

    if not 0 <= args.margin <= 1 or not 0 <= args.min_distance <= 1:
        raise ValueError("--margin and --min-distance are in [0, 1]")
    if args.rollouts < 0:
        raise ValueError("--rollouts must be at least 0")
    if not (Path(args.run_dir) / "config.json").is_file():
        raise FileNotFoundError("no config.json in %s (a codegym bench output folder)" % args.run_dir)
    policy = None
    if args.rollouts:
        from ..llm import check_spec, load
        from ..policy import StepPolicy

        check_spec(args.policy)
        policy = StepPolicy(load(args.policy))
    print(json.dumps(label_run(args.run_dir, args.out, args.margin, args.min_distance, args.rollouts, policy,
                               args.temperature, args.seed), indent=2))
    return 0


def _run_prm_train(args: argparse.Namespace) -> int:
    from ..prm.train import PRMTrainConfig, read_pairs, read_stepwise, train_prm

    config = PRMTrainConfig(labels=args.labels, kind=args.kind, objective=args.objective, model=args.model,
                            out=args.out, max_steps=args.max_steps, batch_size=args.batch_size,
                            learning_rate=args.learning_rate, lora=args.lora, seed=args.seed)
    (read_pairs if config.objective == "pair" else read_stepwise)(args.labels)  # before a model loads or --out
    print(json.dumps(train_prm(config), indent=2))
    return 0


def _run_prm_eval(args: argparse.Namespace) -> int:
    from ..prm.model import check_prm_spec, evaluate_prm, load_prm
    from ..prm.train import read_stepwise

    rows = read_stepwise(args.labels)
    for spec in (args.prm, args.against):
        if spec is not None:
            check_prm_spec(spec)
    if args.sample is not None:
        if args.sample < 1:
            raise ValueError("--sample must be at least 1")
        rows = random.Random(args.seed).sample(rows, min(args.sample, len(rows)))
    against = load_prm(args.against) if args.against else None
    result = {"prm": args.prm, "labels": args.labels, "rows": len(rows), "sample_seed": args.seed,
              **evaluate_prm(load_prm(args.prm), rows, progress=True, against=against)}
    if against is not None:
        result["against"] = {"prm": args.against, **result["against"]}
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)
    return 0


def _run_prm_rerank(args: argparse.Namespace) -> int:
    from ..prm.model import check_prm_spec
    from ..prm.rerank import format_rerank, rerank

    if args.n < 1:
        raise ValueError("--n must be at least 1")
    if not (Path(args.run_dir) / "config.json").is_file():
        raise FileNotFoundError("no config.json in %s (a codegym bench output folder)" % args.run_dir)
    for spec in args.prm:
        check_prm_spec(spec)
    print(format_rerank(rerank(args.run_dir, args.prm, args.out, args.n, args.aggregate, args.seed)))
    return 0
