"""The ``codegym`` command line. Each subcommand lives in a small function below."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

COMMANDS: dict[str, Callable[[argparse.ArgumentParser], None]] = {}


def _command(name: str):
    def register(builder: Callable[[argparse.ArgumentParser], None]):
        COMMANDS[name] = builder
        return builder

    return register


def _dataset_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-path", default=None, help="data file or folder (MBPP, APPS, custom)")
    parser.add_argument("--split", default=None, help="MBPP split (train, validation, test, prompt)")


# -- datasets ----------------------------------------------------------------------------------------
@_command("datasets")
def _datasets(parser: argparse.ArgumentParser) -> None:
    """List and inspect problem sets."""
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("list", help="datasets codegym can load").set_defaults(run=_datasets_list)
    show = sub.add_parser("show", help="summary of a dataset, or one problem's public view")
    show.add_argument("dataset")
    show.add_argument("--problem", default=None, help="show this problem")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    _dataset_args(show)
    show.set_defaults(run=_datasets_show)


def _datasets_list(args: argparse.Namespace) -> int:
    from .datasets import DATASETS

    width = max(map(len, DATASETS))
    for name, description in DATASETS.items():
        print("%-*s  %s" % (width, name, description))
    return 0


def _datasets_show(args: argparse.Namespace) -> int:
    from .datasets import load_dataset

    dataset = load_dataset(args.dataset, data_path=args.data_path, split=args.split, on_error="skip")
    if args.problem:
        problem = dataset.get(args.problem)
        view = problem.public_view() | {"hidden_tests": len(problem.hidden_tests),
                                         "reference_solutions": len(problem.reference_solutions)}
        print(json.dumps(view, indent=2) if args.json else _format_view(view))
        return 0
    kinds = {kind: sum(p.kind == kind for p in dataset) for kind in ("function", "stdio")}
    summary = {"dataset": dataset.name, "problems": len(dataset), **kinds,
               "with_public_tests": sum(bool(p.public_tests) for p in dataset),
               "hidden_tests": sum(len(p.hidden_tests) for p in dataset), "skipped_records": len(dataset.skipped),
               "dropped_public_tests": len(dataset.dropped_tests),
               "first_ids": [p.id for p in dataset.problems[:5]]}
    print(json.dumps(summary, indent=2))
    return 0


def _format_view(view: dict) -> str:
    lines = ["%s (%s)" % (view["id"], view["kind"]), "", view["statement"], ""]
    if view["signature"]:
        lines.append("signature: %s" % view["signature"])
    lines.append("public tests:")
    lines += ["  " + t for t in view["public_tests"]] or ["  (none)"]
    lines.append("hidden tests: %d (content not shown)" % view["hidden_tests"])
    return "\n".join(lines)


# -- env -----------------------------------------------------------------------------------------------
@_command("env")
def _env(parser: argparse.ArgumentParser) -> None:
    """Check the Gymnasium environments."""
    sub = parser.add_subparsers(dest="action", required=True)
    check = sub.add_parser("check", help="run gymnasium's env checker and a scripted episode")
    check.add_argument("env_id")
    _dataset_args(check)
    check.set_defaults(run=_env_check)


def _env_check(args: argparse.Namespace) -> int:
    import gymnasium as gym
    from gymnasium.utils.env_checker import check_env

    from . import format_step

    kwargs = {k: v for k, v in {"data_path": args.data_path, "split": args.split}.items() if v is not None}
    env = gym.make(args.env_id, **kwargs)
    check_env(env.unwrapped)
    _, info = env.reset(seed=0)
    problem = env.unwrapped.problem
    reference = problem.reference_solutions[0] if problem.reference_solutions else "pass"
    env.step(format_step("define", "1. Solve the problem directly."))
    _, reward, terminated, _, step_info = env.step(format_step("translate", reference))
    print("check_env: ok (%d problems)" % len(env.unwrapped.problems))
    print("scripted episode on %s: reward %.3f, terminated %s, status %s"
          % (info["problem_id"], reward, terminated, step_info.get("status")))
    return 0


# -- sandbox -------------------------------------------------------------------------------------------
@_command("sandbox")
def _sandbox(parser: argparse.ArgumentParser) -> None:
    """Inspect the execution sandbox."""
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("info", help="which protections are active on this machine").set_defaults(run=_sandbox_info)


def _sandbox_info(args: argparse.Namespace) -> int:
    from .execution import Sandbox

    print(json.dumps(Sandbox.protections(), indent=2))
    return 0


# -- policies ------------------------------------------------------------------------------------------
POLICY_HELP = "smollm2 | torch:smollm2 | hf:PATH | vllm:PATH | openai:URL#MODEL | ct2:PATH"


def _policy_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", default="smollm2", help=POLICY_HELP)
    parser.add_argument("--cache", action="store_true", help="use the persistent generation cache")


@_command("solve")
def _solve(parser: argparse.ArgumentParser) -> None:
    """Play one episode greedily (define -> refine -> translate) and print it."""
    parser.add_argument("--env", default="CodeGym/Starter-v0")
    parser.add_argument("--problem", required=True, help="problem id")
    parser.add_argument("--template", default="pseudocode", help="prompt template (pseudocode, cot, direct)")
    parser.add_argument("--refines", type=int, default=1, help="refine steps before translating")
    _policy_args(parser)
    _dataset_args(parser)
    parser.set_defaults(run=_run_solve)


def _run_solve(args: argparse.Namespace) -> int:
    import gymnasium as gym

    from .llm import load
    from .policy import StepPolicy

    kwargs = {k: v for k, v in {"data_path": args.data_path, "split": args.split}.items() if v is not None}
    env = gym.make(args.env, **kwargs)
    obs, info = env.reset(options={"problem_id": args.problem})
    problem = env.unwrapped.problem
    policy = StepPolicy(load(args.policy, cache=args.cache), args.template)
    print("problem %s\n%s\n" % (problem.id, obs["problem"]))
    for kind in ["define"] + ["refine"] * args.refines + ["translate"]:
        proposal = policy.propose_many([(obs["problem"], obs["trajectory"], kind, problem.kind == "stdio")])[0][0]
        obs, reward, terminated, truncated, info = env.step(proposal.action)
        print(proposal.action if info["invalid_action"] is None else "(invalid: %s)" % info["invalid_action"])
        print("-> reward %.3f\n" % reward)
        if terminated or truncated:
            break
    if "code" in info:
        print("status on %s tests: %s (%d/%d passed), reward %.3f"
              % (info["reward_tests"], info["status"], info["tests_passed"], info["tests_total"], reward))
    print("usage: %s" % policy.backend.usage.to_dict())
    return 0


@_command("serve")
def _serve(parser: argparse.ArgumentParser) -> None:
    """Serve a policy over an OpenAI-compatible HTTP API."""
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    _policy_args(parser)
    parser.set_defaults(run=_run_serve)


def _run_serve(args: argparse.Namespace) -> int:
    from .llm import load
    from .llm.server import serve

    serve(load(args.policy, cache=args.cache), args.host, args.port)
    return 0


# -- benchmark, demo, trees --------------------------------------------------------------------------
def _int_list(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


@_command("bench")
def _bench(parser: argparse.ArgumentParser) -> None:
    """Benchmark search agents at equal compute (hidden tests score the answers)."""
    parser.add_argument("--env", default="CodeGym/Starter-v0")
    parser.add_argument("--agents", default="greedy,best-of-n,beam,mcts", help="comma-separated agent names")
    parser.add_argument("--template", default="pseudocode")
    parser.add_argument("--budget-tokens", default="1000", help="comma-separated generated-token budgets")
    parser.add_argument("--budget-calls", type=int, default=None, help="also cap LLM calls per problem")
    parser.add_argument("--limit", type=int, default=None, help="first N problems")
    parser.add_argument("--problems", default=None, help="comma-separated problem ids")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--out", default="results/bench")
    parser.add_argument("--aspr-samples", type=int, default=4, help="translate resamples per solved item (0: off)")
    parser.add_argument("--no-cache", action="store_true", help="do not use the generation cache")
    parser.add_argument("--policy", default="smollm2", help=POLICY_HELP)
    parser.add_argument("--parallel", type=int, default=4,
                        help="items solved at once, their LLM calls merged into shared batches (1: one at a time)")
    parser.add_argument("--ray", default=None, metavar="ADDRESS",
                        help="spread items over a Ray cluster: an address, 'auto', or 'local' to start one here")
    parser.add_argument("--ray-actors", type=int, default=None, help="Ray actors (default: one per cluster CPU)")
    _dataset_args(parser)
    parser.set_defaults(run=_run_bench)


def _bench_config(args: argparse.Namespace):
    from .bench import BenchConfig

    return BenchConfig(env=args.env, data_path=args.data_path, split=args.split, agents=args.agents.split(","),
                       policy=args.policy, template=args.template, budget_tokens=_int_list(args.budget_tokens),
                       budget_calls=args.budget_calls, limit=args.limit,
                       problems=args.problems.split(",") if args.problems else None, seeds=_int_list(args.seeds),
                       out=args.out, cache=not args.no_cache, aspr_samples=args.aspr_samples,
                       parallel=args.parallel, ray=args.ray, ray_actors=args.ray_actors)


def _run_bench(args: argparse.Namespace) -> int:
    from .bench import format_table, run_bench

    config = _bench_config(args)
    summary = run_bench(config)
    print(format_table(summary))
    print("\nresults: %s/results.jsonl  summary: %s/summary.json  plot: %s/pass_at_1.png"
          % (config.out, config.out, config.out))
    return 0


@_command("demo")
def _demo(parser: argparse.ArgumentParser) -> None:
    """The main job: greedy vs MCTS on the starter set with the embedded model (a few minutes)."""
    parser.add_argument("--out", default="results/demo")
    parser.add_argument("--limit", type=int, default=6)
    parser.add_argument("--budget-tokens", default="600,1200")
    parser.set_defaults(run=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    bench_args = build_parser().parse_args(["bench", "--env", "CodeGym/Starter-v0", "--agents", "greedy,mcts",
                                            "--budget-tokens", args.budget_tokens, "--limit", str(args.limit),
                                            "--out", args.out, "--aspr-samples", "2"])
    return _run_bench(bench_args)


@_command("tree")
def _tree(parser: argparse.ArgumentParser) -> None:
    """Explore a search tree exported by an agent."""
    sub = parser.add_subparsers(dest="action", required=True)
    view = sub.add_parser("view", help="write a self-contained offline HTML page for a tree JSON file")
    view.add_argument("file")
    view.add_argument("--out", default=None, help="HTML path (default: next to the JSON)")
    view.set_defaults(run=_run_tree_view)


def _run_tree_view(args: argparse.Namespace) -> int:
    from .tree_view import write_tree_html

    print(write_tree_html(args.file, args.out))
    return 0


# -- test case generator -------------------------------------------------------------------------------
@_command("tcg")
def _tcg(parser: argparse.ArgumentParser) -> None:
    """Generate, evaluate and train the test case generator."""
    sub = parser.add_subparsers(dest="action", required=True)
    generate = sub.add_parser("generate", help="generate and filter tests; write them to a file envs can load")
    evaluate = sub.add_parser("eval", help="pass rate on the reference, validity, distinct inputs, discrimination")
    for command in (generate, evaluate):
        command.add_argument("--env", default="CodeGym/Starter-v0")
        command.add_argument("--limit", type=int, default=None)
        command.add_argument("--count", type=int, default=8, help="tests asked per problem")
        _policy_args(command)
        _dataset_args(command)
    generate.add_argument("--out", required=True, help="JSONL file (gym.make(..., generated_tests=FILE))")
    generate.set_defaults(run=_run_tcg_generate)
    evaluate.add_argument("--json", default=None)
    evaluate.set_defaults(run=_run_tcg_eval)
    for name, help_text in (("train-sft", "supervised fine-tuning on reference (input, output) pairs"),
                            ("train-dpo", "DPO: correct pairs against shuffled outputs")):
        train = sub.add_parser(name, help=help_text)
        train.add_argument("--model", default="smollm2", help="transformers path/id, or smollm2")
        train.add_argument("--dataset", default="starter")
        train.add_argument("--out", required=True)
        train.add_argument("--max-steps", type=int, default=60)
        train.add_argument("--batch-size", type=int, default=4)
        train.add_argument("--learning-rate", type=float, default=5e-5)
        train.add_argument("--lora", action="store_true")
        train.add_argument("--seed", type=int, default=0)
        _dataset_args(train)
        train.set_defaults(run=_run_tcg_train, stage=name)


def _tcg_problems(args: argparse.Namespace):
    import gymnasium as gym

    kwargs = {k: v for k, v in {"data_path": args.data_path, "split": args.split}.items() if v is not None}
    problems = [p for p in gym.make(args.env, **kwargs).unwrapped.problems if p.kind == "function"]
    return problems[: args.limit] if args.limit else problems


def _run_tcg_generate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .llm import load
    from .tcg import FilterReport, LLMTestCaseGenerator, save_generated

    problems = _tcg_problems(args)
    generator = LLMTestCaseGenerator(load(args.policy, cache=args.cache), count=args.count)
    entries, total = {}, FilterReport()
    for start in tqdm(range(0, len(problems), 8), desc="tcg", unit="batch"):
        chunk = problems[start:start + 8]
        for problem, (tests, report) in zip(chunk, generator.generate_many(chunk)):
            entries[problem.id] = (tests, report.to_dict())
            total.add(report)
    save_generated(args.out, entries)
    print(json.dumps({"problems": len(entries), **total.to_dict(), "out": args.out}, indent=2))
    return 0


def _run_tcg_eval(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from .execution import Sandbox
    from .llm import load
    from .tcg import LLMTestCaseGenerator, evaluate_generator

    with Sandbox(timeout_s=5.0, cache_size=0) as sandbox:
        generator = LLMTestCaseGenerator(load(args.policy, cache=args.cache), sandbox=sandbox, count=args.count)
        result = asdict(evaluate_generator(generator, _tcg_problems(args), sandbox))
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)
    return 0


def _run_tcg_train(args: argparse.Namespace) -> int:
    from .tcg.train import TCGTrainConfig, train_dpo, train_sft

    config = TCGTrainConfig(model=args.model, dataset=args.dataset, data_path=args.data_path, split=args.split,
                            out=args.out, max_steps=args.max_steps, batch_size=args.batch_size,
                            learning_rate=args.learning_rate, lora=args.lora, seed=args.seed)
    summary = (train_sft if args.stage == "train-sft" else train_dpo)(config)
    print(json.dumps(summary, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="codegym", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, builder in COMMANDS.items():
        builder(sub.add_parser(name, help=(builder.__doc__ or name).strip().splitlines()[0]))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except (FileNotFoundError, KeyError, ValueError) as err:
        print("codegym: error: %s" % (err.args[0] if err.args else err), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
