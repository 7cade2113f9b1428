"""``codegym bench``: search agents compared at equal compute, scored on hidden tests only.

Each (problem, agent, budget, seed) item is solved once, then its final program is judged once
by the dataset's :class:`codegym.Judge`, which only this module holds: agents get an environment of
public problems. Every option is validated (agents, environment, policy, data, problem ids) before
a model loads or anything is written to ``out``. Rows stream to ``results.jsonl`` as they finish
(flushed and fsync'ed); re-running the same command skips finished items, so a ``kill -9`` loses
at most the items in flight (one per slot or Ray actor) and no row is ever written twice.

Metrics per (agent, budget):
  * pass@1: fraction of items (problem x seed) whose committed program passes the hidden tests;
  * pass@k (k > 1): the chance that at least one of k independent runs (seeds) of the agent on a
    problem passes, by the unbiased estimator 1 - C(n-c, k)/C(n, k) over the problem's n seeds
    (c passing), averaged over problems; reported only when every problem has at least k seeds.
    One definition for every agent: a run's answer is its committed program, never a candidate;
  * any_candidate: fraction of items where some verified candidate program (up to
    ``max_candidates_judged``, judged after the agent committed) passes: an oracle selector's
    ceiling, showing how much a better selector could gain;
  * ASPR (O1-CODER's average sampling pass rate, our exact definition): for every item whose final
    program passes, keep its reasoning prefix (all steps before translate), sample ``aspr_samples``
    translate steps from it at temperature ``aspr_temperature``, and take the fraction that pass;
    ASPR is the mean over those items. Its tokens are not charged to the agent's budget;
  * compute: generated and prompt tokens, LLM calls, sandbox executions, wall seconds; and the
    invalid-action rate.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from tqdm import tqdm

PACKAGES = ("codegym", "gymnasium", "torch", "transformers", "ctranslate2", "numpy")


@dataclass
class BenchConfig:
    env: str = "CodeGym/Starter-v0"
    data_path: str | None = None
    split: str | None = None
    on_error: str = "raise"  # a malformed record: "raise" or "skip" (counted in summary["setup"])
    agents: list[str] = field(default_factory=lambda: ["greedy", "mcts"])
    policy: str = "smollm2"
    template: str = "pseudocode"
    budget_tokens: list[int] = field(default_factory=lambda: [1000])
    budget_calls: int | None = None
    limit: int | None = None
    problems: list[str] | None = None
    seeds: list[int] = field(default_factory=lambda: [0])
    out: str = "results/bench"
    cache: bool = True
    aspr_samples: int = 4
    aspr_temperature: float = 0.8
    pass_at_k: list[int] = field(default_factory=lambda: [1, 5])
    max_candidates_judged: int = 16
    agent_options: dict[str, dict] = field(default_factory=dict)
    parallel: int = 4  # items solved at once; their generate calls are merged (see LockstepBatcher)
    ray: str | None = None  # a Ray address ("auto", "ray://HOST:PORT") or "local"; None: this process
    ray_actors: int | None = None  # Ray actors (default: one per CPU of the cluster)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k (Chen et al.): 1 - C(n-c, k) / C(n, k); needs n >= k."""
    if n < k:
        raise ValueError("pass@%d needs at least %d samples, got %d" % (k, k, n))
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def item_key(row: dict) -> tuple:
    return (row["problem_id"], row["agent"], int(row["budget"]), int(row["seed"]))


def read_rows(path: Path) -> list[dict]:
    """Rows of a results file; a torn last line (killed mid-write) is ignored."""
    rows: list[dict] = []
    if not path.exists():
        return rows
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def _append_row(path: Path, row: dict) -> None:
    with open(path, "a") as fh:
        fh.write(json.dumps(row) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _repair_tail(path: Path) -> None:
    """Drop a partial last line left by a kill, so appends start on a fresh line."""
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        path.write_bytes(data[: data.rfind(b"\n") + 1])


def run_metadata() -> dict:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                                cwd=Path(__file__).resolve().parents[1]).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"python": sys.version.split()[0], "platform": platform.platform(), "packages": versions,
            "git_commit": commit, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def aspr_for(problem, steps: list, policy, judge, samples: int, temperature: float, seed: int) -> float | None:
    """Fraction of ``samples`` translate steps, sampled from the reasoning prefix, that pass."""
    from codegym.envs import render_problem
    from codegym.envs.steps import format_trajectory, parse_step

    trajectory = format_trajectory([(kind, text) for kind, text in steps if kind != "translate"])
    proposals = policy.propose_many([(render_problem(problem), trajectory, "translate", problem.kind == "stdio")],
                                    n=samples, temperature=temperature, seed=seed)[0]
    passed = 0
    for proposal in proposals:
        try:
            code = parse_step(proposal.action).text
        except ValueError:
            continue
        passed += judge.evaluate(problem, code).passed
    return passed / samples


def prepare(config: BenchConfig, backend=None) -> tuple[list, object, int]:
    """Validate every option and load the data: the benchmark's problems (public), their judge and
    the count of skipped records.
    Raises a one-line ValueError (or FileNotFoundError) before any model loads or file is written."""
    from agents import agent_class
    from codegym.envs import env_dataset
    from codegym.llm import check_spec
    from codegym.prompts import load_template

    if not config.agents:
        raise ValueError("no agents given")
    for name in config.agents:
        agent_class(name)
    stray = sorted(set(config.agent_options) - set(config.agents))
    if stray:
        raise ValueError("agent options for agents not in the run: %s" % ", ".join(stray))
    if backend is None:
        check_spec(config.policy)
    load_template(config.template)
    for name, values in (("budget_tokens", config.budget_tokens), ("seeds", config.seeds)):
        if not values:
            raise ValueError("%s is empty" % name)
    if min(config.budget_tokens) < 1 or (config.budget_calls is not None and config.budget_calls < 1):
        raise ValueError("budgets must be positive")
    if config.pass_at_k and min(config.pass_at_k) < 1:
        raise ValueError("pass@k needs k >= 1")
    if config.parallel < 1 or (config.limit is not None and config.limit < 1):
        raise ValueError("parallel and limit must be at least 1")
    options = {k: v for k, v in {"data_path": config.data_path, "split": config.split,
                                 "on_error": config.on_error}.items() if v is not None}
    dataset = env_dataset(config.env, **options)
    problems = dataset.problems
    if config.problems:
        known = {p.id for p in problems}
        unknown = [pid for pid in config.problems if pid not in known]
        if unknown:
            raise ValueError("unknown problem ids in %s: %s" % (config.env, ", ".join(unknown)))
        wanted = set(config.problems)
        problems = [p for p in problems if p.id in wanted]
    problems = problems[: config.limit] if config.limit else problems
    if not problems:
        raise ValueError("no problems to run in %s" % config.env)
    return problems, dataset.judge(), len(dataset.skipped)


def run_bench(config: BenchConfig, progress: bool = True, backend=None) -> dict:
    """Run (or resume) a benchmark; ``backend`` overrides ``config.policy`` (tests pass a scripted one)."""
    problems, judge, skipped = prepare(config, backend)
    out = Path(config.out)
    (out / "trees").mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps({"config": asdict(config), "run": run_metadata()}, indent=2))
    results = out / "results.jsonl"
    _repair_tail(results)
    done = {item_key(row) for row in read_rows(results)}

    # problem-major order: a run stopped early has complete (agent x budget) rows for its first problems
    items = [(p.id, agent, budget, seed) for seed in config.seeds for p in problems
             for budget in config.budget_tokens for agent in config.agents]
    todo = [item for item in items if item not in done]
    if todo:
        bar = tqdm(total=len(items), initial=len(items) - len(todo), desc="bench", unit="item", disable=not progress)
        lock = threading.Lock()

        def record(row: dict, tree: str | None) -> None:
            with lock:
                if tree is not None:
                    (out / row["tree"]).write_text(tree)
                _append_row(results, row)
                bar.update(1)

        if config.ray:
            _run_on_ray(config, todo, backend, problems, judge, record)
        else:
            _run_in_slots(config, todo, backend, problems, judge, record)
        bar.close()
    wanted_keys = set(items)
    rows = [row for row in read_rows(results) if item_key(row) in wanted_keys]
    summary = summarise(rows, config.pass_at_k)
    policy = config.policy if backend is None else getattr(backend, "model_id", None) or type(backend).__name__
    summary["setup"] = {"env": config.env, "split": config.split, "policy": policy, "problems": len(problems),
                        "seeds": len(config.seeds), "budget_unit": "generated tokens per problem",
                        "skipped_records": skipped}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    plot_summary(summary, out / "pass_at_1.png")
    return summary


class ItemSolver:
    """Solves and judges benchmark items with one environment and one policy (a slot or a Ray
    worker). The agent gets the environment (public problems); the judge stays here."""

    def __init__(self, config: BenchConfig, backend, problems: list, judge):
        import gymnasium as gym

        import codegym  # noqa: F401 - registers the environments
        from codegym.policy import StepPolicy

        self.config, self.judge = config, judge
        self.env = gym.make(config.env, problems=problems)
        self.problems = {p.id: p for p in problems}
        self.policy = StepPolicy(backend, config.template)

    def solve(self, item: tuple) -> tuple[dict, str | None]:
        """The item's result row, and its search tree as JSON (None without a tree)."""
        from agents import make_agent
        from agents.base import Budget

        problem_id, agent_name, budget, seed = item
        config, problem, judge = self.config, self.problems[problem_id], self.judge
        agent = make_agent(agent_name, self.policy, **{"seed": seed, **config.agent_options.get(agent_name, {})})
        started = time.time()
        solution = agent.solve(self.env, problem.id, Budget(tokens=budget, calls=config.budget_calls))
        wall = time.time() - started
        verdict = judge.evaluate(problem, solution.code) if solution.code else None
        row = {"problem_id": problem.id, "agent": agent_name, "budget": budget, "seed": seed,
               "passed": bool(verdict and verdict.passed), "status": verdict.status if verdict else "no_code",
               "code": solution.code, "reward": solution.reward, "steps": solution.trajectory,
               "generated_tokens": solution.usage.generated_tokens, "prompt_tokens": solution.usage.prompt_tokens,
               "llm_calls": solution.usage.calls, "sandbox_runs": solution.sandbox_runs + (1 if verdict else 0),
               "wall_s": round(wall, 3), "actions": solution.actions, "invalid_actions": solution.invalid_actions,
               "within_budget": solution.usage.generated_tokens <= budget}
        distinct = list(dict.fromkeys(c for c in solution.candidates if c))[: config.max_candidates_judged]
        if len(distinct) > 1:
            row["candidates_passed"] = [r.passed for r in judge.evaluate_many([(problem, c) for c in distinct])]
        if row["passed"] and config.aspr_samples:
            row["aspr"] = aspr_for(problem, solution.trajectory, self.policy, judge, config.aspr_samples,
                                   config.aspr_temperature, seed)
        if solution.tree is None:
            return row, None
        row["tree"] = "trees/%s-%d-%d-%s.json" % (agent_name, budget, seed, problem.id.replace("/", "_"))
        return row, solution.tree.to_json(problem_id=problem.id, agent=agent_name, budget=budget, seed=seed)


def _backend(config: BenchConfig, backend):
    """The backend given to ``run_bench``, else the one ``config.policy`` names."""
    from codegym.llm import load

    return backend or load(config.policy, cache=config.cache)


def _run_in_slots(config: BenchConfig, todo: list[tuple], backend, problems: list, judge, record) -> None:
    """``config.parallel`` items at a time, one per thread, their generate calls merged in
    lockstep (slot i takes items i, i + parallel, ...: the schedule never depends on timing)."""
    from codegym.llm.batching import LockstepBatcher

    slots = max(1, min(config.parallel, len(todo)))
    batcher = LockstepBatcher(_backend(config, backend), slots)

    def work(slot: int) -> None:
        with batcher.client(slot) as client:
            solver = ItemSolver(config, client, problems, judge)
            for item in todo[slot::slots]:
                record(*solver.solve(item))

    with ThreadPoolExecutor(slots, thread_name_prefix="bench-slot") as pool:
        for future in [pool.submit(work, slot) for slot in range(slots)]:
            future.result()


class _RayWorker:
    """A Ray actor: loads the environment and policy once, then solves the items it is sent."""

    def __init__(self, config: BenchConfig, backend, problems: list, judge):
        self.solver = ItemSolver(config, _backend(config, backend), problems, judge)

    def solve(self, item: tuple) -> tuple[dict, str | None]:
        return self.solver.solve(item)


def _run_on_ray(config: BenchConfig, todo: list[tuple], backend, problems: list, judge, record) -> None:
    """Spread items over a Ray cluster (``config.ray``: an address, ``auto``, or ``local`` to start
    one here), one actor per CPU unless ``config.ray_actors`` gives a count; each actor keeps
    one item in flight and rows are recorded here as they finish."""
    try:
        import ray
    except ImportError as error:
        raise RuntimeError("--ray needs Ray: pip install 'codegym[ray]'") from error

    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=None if config.ray == "local" else config.ray, include_dashboard=False,
                 log_to_driver=False, configure_logging=False)
    try:
        count = config.ray_actors or max(1, int(ray.cluster_resources().get("CPU", 1)))
        worker = ray.remote(num_cpus=1)(_RayWorker)
        actors = [worker.remote(config, backend, problems, judge) for _ in range(min(count, len(todo)))]
        queue, in_flight = list(reversed(todo)), {}
        for actor in actors:
            in_flight[actor.solve.remote(queue.pop())] = actor
        while in_flight:
            [ready], _ = ray.wait(list(in_flight), num_returns=1)
            actor = in_flight.pop(ready)
            record(*ray.get(ready))
            if queue:
                in_flight[actor.solve.remote(queue.pop())] = actor
    finally:
        if started_here:
            ray.shutdown()


def summarise(rows: list[dict], ks: list[int]) -> dict:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        groups[(row["agent"], int(row["budget"]))].append(row)
    table = []
    for (agent, budget), members in sorted(groups.items()):
        by_problem: dict[str, list[bool]] = defaultdict(list)
        for r in members:
            by_problem[r["problem_id"]].append(bool(r["passed"]))
        entry = {"agent": agent, "budget": budget, "items": len(members), "problems": len(by_problem),
                 "pass@1": sum(r["passed"] for r in members) / len(members)}
        for k in ks:
            if k == 1:
                continue
            runs = [len(passes) for passes in by_problem.values()]
            entry["pass@%d" % k] = (sum(pass_at_k(len(p), sum(p), k) for p in by_problem.values()) / len(by_problem)
                                    if min(runs) >= k else None)
        judged = [r for r in members if r.get("candidates_passed")]
        entry["any_candidate"] = (sum(any(r["candidates_passed"]) or r["passed"] for r in judged) / len(judged)
                                  if judged else None)
        entry["any_candidate_items"] = len(judged)
        asprs = [r["aspr"] for r in members if r.get("aspr") is not None]
        entry["aspr"] = sum(asprs) / len(asprs) if asprs else None
        entry["aspr_items"] = len(asprs)
        for name in ("generated_tokens", "prompt_tokens", "llm_calls", "sandbox_runs", "wall_s"):
            entry["mean_" + name] = sum(r[name] for r in members) / len(members)
        actions = sum(r["actions"] for r in members)
        entry["invalid_action_rate"] = sum(r["invalid_actions"] for r in members) / actions if actions else 0.0
        entry["all_within_budget"] = all(r["within_budget"] for r in members)
        table.append(entry)
    return {"rows": len(rows), "table": table}


def format_table(summary: dict) -> str:
    """The summary as a text table, with a legend saying what each rate is computed over."""
    ks = sorted({key for e in summary["table"] for key in e if key.startswith("pass@") and key != "pass@1"},
                key=lambda key: int(key[5:]))
    shown = [k for k in ks if any(e.get(k) is not None for e in summary["table"])]
    header = "%-10s %7s %6s %7s " % ("agent", "budget", "items", "pass@1") + "".join("%7s " % k for k in shown)
    header += "%7s %4s %9s %6s %8s %7s" % ("ASPR", "n", "tokens", "calls", "sandbox", "wall_s")
    lines = [header, "-" * len(header)]

    def fmt(value):
        return "%7.3f" % value if value is not None else "%7s" % "-"

    for e in summary["table"]:
        lines.append("%-10s %7d %6d %s " % (e["agent"], e["budget"], e["items"], fmt(e["pass@1"]))
                     + "".join(fmt(e[k]) + " " for k in shown)
                     + "%s %4d %9.0f %6.1f %8.1f %7.1f" % (fmt(e["aspr"]), e["aspr_items"], e["mean_generated_tokens"],
                                                           e["mean_llm_calls"], e["mean_sandbox_runs"],
                                                           e["mean_wall_s"]))
    setup = summary.get("setup", {})
    lines += ["", "items: problems x seeds%s; pass@1: fraction of items whose committed program passes the hidden "
              "tests." % (" (%d x %d)" % (setup["problems"], setup["seeds"]) if setup else ""),
              "pass@k: chance that one of k seeds' committed programs passes (unbiased, over problems; shown only "
              "with at least k seeds).",
              "ASPR: over the n solved items, the fraction of translate steps resampled from the solution's "
              "reasoning that pass.",
              "tokens, calls, sandbox, wall_s: means per item (budget unit: generated tokens per problem)."]
    return "\n".join(lines)


def plot_summary(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    agents = sorted({e["agent"] for e in summary["table"]})
    for agent in agents:
        points = sorted((e["budget"], e["pass@1"]) for e in summary["table"] if e["agent"] == agent)
        ax.plot([b for b, _ in points], [p for _, p in points], marker="o", label=agent)
    setup = summary.get("setup")
    if setup:
        ax.set_title("%s%s, %s: %d problems x %d seeds" % (setup["env"], " (%s)" % setup["split"] if setup["split"]
                                                           else "", setup["policy"], setup["problems"], setup["seeds"]),
                     fontsize=9)
    ax.set_xlabel("budget (generated tokens per problem)")
    ax.set_ylabel("pass@1 (hidden tests)")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
