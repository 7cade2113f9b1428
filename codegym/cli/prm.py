"""``codegym prm``: process-reward labels from search trees."""

from __future__ import annotations

import argparse
import json

from .common import add_command


def register(sub) -> None:
    prm = add_command(sub, "prm", None, "process reward models: labels from search trees")
    actions = prm.add_subparsers(dest="action", required=True, metavar="ACTION")
    data = add_command(actions, "data", _run_prm_data, "point-wise and pair-wise step labels from a bench run's trees")
    data.add_argument("run_dir", metavar="RUN", help="a codegym bench output folder (config.json and trees/)")
    data.add_argument("--out", required=True, help="folder for stepwise_*.jsonl and pairs.jsonl")
    data.add_argument("--margin", type=float, default=0.5, help="least Q difference for a preference pair")
    data.add_argument("--min-distance", type=float, default=0.1,
                      help="least text distance (1 - difflib ratio) between a pair's steps")


def _run_prm_data(args: argparse.Namespace) -> int:
    from ..prm.labels import label_run

    if not 0 <= args.margin <= 1 or not 0 <= args.min_distance <= 1:
        raise ValueError("--margin and --min-distance are in [0, 1]")
    print(json.dumps(label_run(args.run_dir, args.out, args.margin, args.min_distance), indent=2))
    return 0
