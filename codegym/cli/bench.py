"""``codegym bench`` (run, ``ls``, ``compare``), ``codegym demo`` and ``codegym tree``: search
agents at equal compute."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path

from .common import POLICY_HELP, add_command, int_list

DEMO = ["--env", "CodeGym/Starter-v0", "--agents", "greedy,mcts"]
BENCH_HELP = """benchmark search agents at equal compute (hidden tests score the answers)

Agents: --agents NAME,NAME (defaults) and/or --agent LABEL=AGENT:field=value,... (a variant, repeatable),
e.g. --agent mcts-c8=mcts:c=8,expansion=4 --agent bon-codet=best-of-n:selector=codet.
`codegym bench ls` lists every agent's fields. A --config FILE (TOML or JSON: BenchConfig fields and
[agents.LABEL] tables with agent = NAME) sets everything; flags given here override it, and the
config.json a run writes is itself a --config. `codegym bench compare RUN_DIR...` joins runs."""

# flag -> (BenchConfig field, type converter, help)
FLAGS = {
    "--env": ("env", str, "a registered environment id"),
    "--template": ("template", str, "prompt template: pseudocode, cot, direct or a JSON path"),
    "--budget-tokens": ("budget_tokens", int_list, "comma-separated generated-token budgets per problem"),
    "--budget-calls": ("budget_calls", int, "also cap LLM calls per problem; none: no cap"),
    "--limit": ("limit", int, "the first N problems; none: all"),
    "--problems": ("problems", lambda text: [p for p in text.split(",") if p], "comma-separated problem ids; none: all"),
    "--seeds": ("seeds", int_list, "comma-separated seeds; pass@k needs at least k"),
    "--out": ("out", str, "output folder; a rerun resumes the items it has"),
    "--aspr-samples": ("aspr_samples", int, "translate resamples per solved item for ASPR (0: off)"),
    "--policy": ("policy", str, POLICY_HELP),
    "--parallel": ("parallel", int, "items solved at once, their LLM calls merged into shared batches (1: one at a time)"),
    "--ray": ("ray", str, "spread items over a Ray cluster: an address, 'auto', or 'local' to start one here; "
              "none: this process"),
    "--ray-actors": ("ray_actors", int, "Ray actors; none: one per cluster CPU"),
    "--baseline": ("baseline", str, "print each agent's paired comparison against this label; none: every pair"),
    "--prm": ("prm", str, "a process reward model every agent receives: token:PATH or logprob:PATH; none: no PRM"),
    "--reward-tests": ("reward_tests", str, "the tests the agents' environment rewards: public, public+generated "
                       "or generated (needs --generated-tests)"),
    "--generated-tests": ("generated_tests", str, "a test file from `codegym tcg generate` for the reward tests; "
                          "none: no generated tests"),
    "--data-path": ("data_path", str, "data file or folder (MBPP, APPS, custom); none: the environment's default"),
    "--split": ("split", str, "MBPP split (train, validation, test, prompt); none: every split present"),
    "--time-limit-base": ("time_limit_base_s", float, "T_base: the least CPU seconds a program gets on a test set"),
    "--time-limit-factor": ("time_limit_factor", float, "k: a program gets max(T_base, k x the reference's CPU "
                            "time on the test set)"),
}


def register(sub) -> None:
    from ..bench import BenchConfig

    defaults = BenchConfig()
    bench = add_command(sub, "bench", _run_bench, BENCH_HELP.splitlines()[0], BENCH_HELP)
    bench.add_argument("--config", default=argparse.SUPPRESS, help="a TOML or JSON run configuration (default: none)")
    bench.add_argument("--agents", default=argparse.SUPPRESS,
                       help="comma-separated agent names, entry points or module:Class paths (default: %s)"
                       % ",".join(defaults.agents))
    bench.add_argument("--agent", action="append", default=argparse.SUPPRESS, metavar="LABEL=AGENT:FIELD=VALUE,...",
                       help="an agent variant (repeatable), added to --agents (default: none)")
    for flag, (name, _, help_text) in FLAGS.items():
        bench.add_argument(flag, default=argparse.SUPPRESS, dest=name, metavar=name.upper(),
                           help="%s (default: %s)" % (help_text, _shown(getattr(defaults, name))))
    bench.add_argument("--on-error", choices=("raise", "skip"), default=argparse.SUPPRESS, dest="on_error",
                       help="a malformed record stops the run (raise) or is skipped and counted (skip) (default: raise)")
    bench.add_argument("--no-cache", action="store_false", dest="cache", default=argparse.SUPPRESS,
                       help="do not use the generation cache (default: use it)")
    actions = bench.add_subparsers(dest="bench_action", metavar="[ls | compare]")
    add_command(actions, "ls", _run_bench_ls, "list the agents with their fields, types and defaults")
    compare = add_command(actions, "compare", _run_bench_compare,
                          "join runs on their shared (problem, budget, seed) items: paired table and plot")
    compare.add_argument("runs", nargs="+", help="run folders (each with results.jsonl)")
    compare.add_argument("--baseline", default=None, dest="compare_baseline",
                         help="compare every agent against this RUN:label; none: every pair")
    compare.add_argument("--out", default=None, dest="compare_out",
                         help="write summary.json and pass_at_1.png here; none: print only")

    demo = add_command(sub, "demo", _run_demo, "the main job: greedy vs MCTS on the starter set with the embedded "
                       "model (about 7 minutes on 2 cores)")
    demo.add_argument("--out", default="results/demo", help="output folder; a rerun resumes the items it has")
    demo.add_argument("--aspr-samples", type=int, default=2, help="translate resamples per solved item for ASPR")
    demo.add_argument("--limit", type=int, default=6, help="the first N starter problems")
    demo.add_argument("--budget-tokens", default="600,1200", help="comma-separated generated-token budgets")

    tree = add_command(sub, "tree", None, "explore a search tree exported by an agent")
    tree_actions = tree.add_subparsers(dest="action", required=True, metavar="ACTION")
    view = add_command(tree_actions, "view", _run_tree_view, "write a self-contained offline HTML page for a tree JSON file")
    view.add_argument("file", help="a tree JSON file (OUT/trees/*.json of a bench run)")
    view.add_argument("--out", default=None, help="HTML path; none: next to the JSON")


def _shown(value) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value))
    return "none" if value is None else str(value)


def bench_config(args: argparse.Namespace):
    """BenchConfig defaults, then the --config file, then the flags given on the command line."""
    from ..bench import BenchConfig, load_config

    converters = {name: convert for name, convert, _ in FLAGS.values()}
    given = {}
    for f in fields(BenchConfig):
        if hasattr(args, f.name):
            value = getattr(args, f.name)
            try:
                given[f.name] = converters[f.name](value) if isinstance(value, str) and f.name in converters else value
            except ValueError as error:
                raise ValueError("--%s: %s" % (f.name.replace("_", "-"), error)) from None
    agents = [a for a in getattr(args, "agents", "").split(",") if a] + list(getattr(args, "agent", []))
    if agents:
        given["agents"] = agents
    if hasattr(args, "config"):
        return load_config(args.config, **given)
    return BenchConfig(**given)


def _run_bench(args: argparse.Namespace) -> int:
    from ..bench import format_table, run_bench

    config = bench_config(args)
    summary = run_bench(config)
    skipped = summary["setup"]["skipped_records"]
    if skipped:
        print("codegym: skipped %d malformed record(s)" % skipped, file=sys.stderr)
    print(format_table(summary, config.baseline))
    print("\nresults: %s/results.jsonl  summary: %s/summary.json  plot: %s/pass_at_1.png"
          % (config.out, config.out, config.out))
    return 0


def _run_bench_ls(args: argparse.Namespace) -> int:
    from agents import describe_agents

    for entry in describe_agents():
        print("%s%s" % (entry["agent"], "  -- " + entry["doc"] if entry.get("doc") else ""))
        if "error" in entry:
            print("    (cannot load: %s)" % entry["error"])
        for f in entry.get("fields", []):
            print("    %-20s %-28s default %s" % (f["name"], f["type"], json.dumps(f["default"])))
    return 0


def _run_bench_compare(args: argparse.Namespace) -> int:
    from ..bench import compare_runs, format_table, plot_summary

    summary = compare_runs(args.runs)
    print(format_table(summary, args.compare_baseline))
    if args.compare_out:
        out = Path(args.compare_out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
        plot_summary(summary, out / "pass_at_1.png")
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
