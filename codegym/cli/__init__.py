"""codegym: reasoning before coding (define -> refine -> translate) as a Gymnasium RL problem.

Load problem sets, check environments, play episodes with a model, benchmark search agents at
equal compute (hidden tests score the answers), generate, score and train test case generators, train
process reward models, and optimize the policy.
One module per command group: data (datasets, env), play (solve, serve), bench (bench, demo,
tree), tcg, prm, train, selfplay, sandbox.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import bench, data, play, prm, sandbox, selfplay, tcg, train
from .common import HelpFormatter

DESCRIPTION = __doc__.split("\n\n")[0] + """

Start with `codegym demo` (greedy vs MCTS on the starter set with the embedded model), then
`codegym bench --help`. Errors are one line on stderr, exit status 2."""
GROUPS = (data, play, bench, tcg, prm, train, selfplay, sandbox)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="codegym", description=DESCRIPTION, formatter_class=HelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except (FileNotFoundError, KeyError, ValueError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err  # KeyError's str() adds quotes
        print("codegym: error: %s" % message, file=sys.stderr)
        return 2


__all__ = ["build_parser", "main"]
