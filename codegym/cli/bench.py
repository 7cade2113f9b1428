"""``codegym bench``, ``codegym demo`` and ``codegym tree``: search agents at equal compute."""

from __future__ import annotations

import argparse
import sys

from .common import POLICY_HELP, add_command, dataset_args, int_list

DEMO = ["--env", "CodeGym/Starter-v0", "--agents", "greedy,mcts"]


def register(sub) -> None:
    bench = add_command(sub, "bench", _run_bench, "benchmark search agents at equal compute (hidden tests score "
                        "the answers)")
    bench.add_argument("--env", default="CodeGym/Starter-v0", help="a registered environment id")
    bench.add_argument("--agents", default="greedy,best-of-n,beam,mcts",
                       help="comma-separated agent names, entry points or module:Class paths")
    bench.add_argument("--template", default="pseudocode", help="prompt template: pseudocode, cot, direct or a JSON path")
    bench.add_argument("--budget-tokens", default="1000", help="comma-separated generated-token budgets per problem")
    bench.add_argument("--budget-calls", type=int, default=None, help="also cap LLM calls per problem; none: no cap")
    bench.add_argument("--limit", type=int, default=None, help="the first N problems; none: all")
    bench.add_argument("--problems", default=None, help="comma-separated problem ids; none: all")
    bench.add_argument("--seeds", default="0", help="comma-separated seeds; pass@k needs at least k")
    _output_args(bench, "results/bench", 4)
    bench.add_argument("--no-cache", action="store_true", help="do not use the generation cache")
    bench.add_argument("--policy", default="smollm2", help=POLICY_HELP)
    bench.add_argument("--parallel", type=int, default=4,
                       help="items solved at once, their LLM calls merged into shared batches (1: one at a time)")
    bench.add_argument("--ray", default=None, metavar="ADDRESS",
                       help="spread items over a Ray cluster: an address, 'auto', or 'local' to start one here; "
                       "none: this process")
    bench.add_argument("--ray-actors", type=int, default=None, help="Ray actors; none: one per cluster CPU")
    bench.add_argument("--baseline", default=None,
                       help="print each agent's paired comparison against this agent; none: every pair")
    dataset_args(bench)

    demo = add_command(sub, "demo", _run_demo, "the main job: greedy vs MCTS on the starter set with the embedded "
                       "model (about 8 minutes on 2 cores)")
    _output_args(demo, "results/demo", 2)
    demo.add_argument("--limit", type=int, default=6, help="the first N starter problems")
    demo.add_argument("--budget-tokens", default="600,1200", help="comma-separated generated-token budgets")

    tree = add_command(sub, "tree", None, "explore a search tree exported by an agent")
    actions = tree.add_subparsers(dest="action", required=True, metavar="ACTION")
    view = add_command(actions, "view", _run_tree_view, "write a self-contained offline HTML page for a tree JSON file")
    view.add_argument("file", help="a tree JSON file (OUT/trees/*.json of a bench run)")
    view.add_argument("--out", default=None, help="HTML path; none: next to the JSON")


def _output_args(parser: argparse.ArgumentParser, out: str, aspr_samples: int) -> None:
    parser.add_argument("--out", default=out, help="output folder; a rerun resumes the items it has")
    parser.add_argument("--aspr-samples", type=int, default=aspr_samples,
                        help="translate resamples per solved item for ASPR (0: off)")


def _bench_config(args: argparse.Namespace):
    from ..bench import BenchConfig

    return BenchConfig(env=args.env, data_path=args.data_path, split=args.split, on_error=args.on_error,
                       agents=[a for a in args.agents.split(",") if a], policy=args.policy, template=args.template,
                       budget_tokens=int_list(args.budget_tokens), budget_calls=args.budget_calls, limit=args.limit,
                       problems=args.problems.split(",") if args.problems else None, seeds=int_list(args.seeds),
                       out=args.out, cache=not args.no_cache, aspr_samples=args.aspr_samples,
                       parallel=args.parallel, ray=args.ray, ray_actors=args.ray_actors)


def _run_bench(args: argparse.Namespace) -> int:
    from ..bench import format_table, run_bench

    config = _bench_config(args)
    baseline = getattr(args, "baseline", None)
    if baseline is not None and baseline not in config.agents:
        raise ValueError("--baseline %r is not one of --agents (%s)" % (baseline, ", ".join(config.agents)))
    summary = run_bench(config)
    skipped = summary["setup"]["skipped_records"]
    if skipped:
        print("codegym: skipped %d malformed record(s)" % skipped, file=sys.stderr)
    print(format_table(summary, baseline))
    print("\nresults: %s/results.jsonl  summary: %s/summary.json  plot: %s/pass_at_1.png"
          % (config.out, config.out, config.out))
    return 0


def _run_demo(args: argparse.Namespace) -> int:
    from . import build_parser

    bench_args = build_parser().parse_args(["bench", *DEMO, "--budget-tokens", args.budget_tokens, "--limit",
                                            str(args.limit), "--out", args.out, "--aspr-samples",
                                            str(args.aspr_samples)])
    return _run_bench(bench_args)


def _run_tree_view(args: argparse.Namespace) -> int:
    from ..tree_view import write_tree_html

    print(write_tree_html(args.file, args.out))
    return 0
