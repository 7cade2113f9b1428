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
  * pool_pass@k: the same estimator over an item's distinct verified candidate programs (up to
    ``max_candidates_judged``, judged after the agent committed; items with at least k): what a
    selector could gain. A search's pool holds its unfinished ideas too, so it can sit below pass@1;
  * every rate carries a 95% interval over problems (Wilson; clustered bootstrap with several
    seeds), and each pair of agents at a budget is compared on shared items: difference, paired
    bootstrap interval, exact McNemar p-value, discordant counts (:mod:`codegym.stats`);
  * ASPR (O1-CODER's average sampling pass rate, our exact definition): for every item whose final
    program passes, keep its reasoning prefix (all steps before translate), sample ``aspr_samples``
    translate steps from it at temperature ``aspr_temperature``, and take the fraction that pass;
    ASPR is the mean over those items. It runs after every agent has finished, with a policy no
    agent held, and its tokens are not charged to any budget;
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
from dataclasses import asdict, dataclass, field, fields
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from tqdm import tqdm

from .limits import TimeLimits

PACKAGES = ("codegym", "gymnasium", "torch", "transformers", "ctranslate2", "numpy")


@dataclass
class BenchConfig:
    """One benchmark run. ``agents`` maps a label to ``{"agent": NAME, **options}`` (a list of
    names or inline specs ``LABEL=AGENT:field=value,...`` is accepted and converted). A TOML or
    JSON file with these fields, ``[agents.LABEL]`` tables included, is a ``--config``; the
    ``config.json`` a run writes is one too."""

    env: str = "CodeGym/Starter-v0"
    data_path: str | None = None
    split: str | None = None
    on_error: str = "raise"  # a malformed record: "raise" or "skip" (counted in summary["setup"])
    agents: dict[str, dict] = field(default_factory=lambda: {"greedy": {"agent": "greedy"},
                                                              "mcts": {"agent": "mcts"}})
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
    parallel: int = 4  # items solved at once; their generate calls are merged (see LockstepBatcher)
    ray: str | None = None  # a Ray address ("auto", "ray://HOST:PORT") or "local"; None: this process
    ray_actors: int | None = None  # Ray actors (default: one per CPU of the cluster)
    baseline: str | None = None  # the label the table compares every agent against (None: all pairs)
    prm: str | None = None  # a PRM spec (token:PATH, logprob:PATH) every agent receives
    # The tests the agents' environment rewards: "public", or with a TCG file (``codegym tcg generate``)
    # "public+generated" or "generated". Never hidden tests: a benchmark's problems are public.
    reward_tests: str = "public"
    generated_tests: str | None = None
    # A program gets max(T_base, k * T_ref) CPU seconds, in the agents' environment and at judging
    # alike (codegym.limits); T_ref is the reference's calibrated time on the test set.
    time_limit_base_s: float = 2.0
    time_limit_factor: float = 4.0

    def __post_init__(self) -> None:
        if self.generated_tests is not None:  # Ray workers elsewhere resolve it against their own directory
            self.generated_tests = str(Path(self.generated_tests).resolve())
        if isinstance(self.agents, (list, tuple)):
            from agents import parse_agent_spec

            specs = [parse_agent_spec(text) for text in self.agents]
            self.agents = {spec.label: {"agent": spec.agent, **spec.options} for spec in specs}
            if len(self.agents) < len(specs):
                raise ValueError("agent labels must be unique")

    def agent_specs(self) -> list:
        """The agents as :class:`agents.AgentSpec` (label, agent, options), in order."""
        from agents import AgentSpec

        specs = []
        for label, table in self.agents.items():
            if not isinstance(table, dict) or not isinstance(table.get("agent", label), str):
                raise ValueError("agent %r: expected a table with agent = NAME and its fields" % label)
            options = {k: v for k, v in table.items() if k != "agent"}
            specs.append(AgentSpec(str(label), table.get("agent", label), options))
        return specs


BENCH_REWARD_TESTS = ("public", "public+generated", "generated")


def load_config(path: str | os.PathLike, **overrides) -> BenchConfig:
    """A BenchConfig from a TOML or JSON file (a run's ``config.json`` too), then ``overrides``."""
    return config_from_file(BenchConfig, path, **overrides)


def config_from_file(cls, path: str | os.PathLike, **overrides):
    """A config dataclass ``cls`` from a TOML or JSON file (a run's ``config.json``, which holds
    ``config`` and ``run``, too), then ``overrides``. Unknown fields are a one-line ValueError
    naming them and the known ones."""
    import tomllib

    if not Path(path).is_file():
        raise FileNotFoundError("no config file %s" % path)
    text = Path(path).read_text()
    try:
        data = json.loads(text) if str(path).endswith(".json") else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as error:
        raise ValueError("%s: %s" % (path, error)) from None
    if "config" in data and "run" in data:  # a run's config.json
        data = data["config"]
    known = [f.name for f in fields(cls)]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ValueError("%s: unknown field(s) %s; fields: %s" % (path, ", ".join(unknown), ", ".join(known)))
    return cls(**{**data, **overrides})


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


def aspr_for(problem, steps: list, seed: int, policy, judge, samples: int, temperature: float) -> float:
    """The fraction of ``samples`` translate steps, sampled from the reasoning prefix of ``steps``,
    whose program passes the hidden tests."""
    from codegym.envs import render_problem
    from codegym.envs.steps import format_trajectory, parse_step

    prompt = (render_problem(problem), format_trajectory([(k, t) for k, t in steps if k != "translate"]),
              "translate", problem.kind == "stdio")
    codes = []
    for proposal in policy.propose_many([prompt], n=samples, temperature=temperature, seed=seed)[0]:
        try:
            codes.append(parse_step(proposal.action).text)
        except ValueError:
            continue
    verdicts = judge.evaluate_many([(problem.id, code) for code in codes]) if codes else []
    return sum(v.passed for v in verdicts) / samples


def prepare(config: BenchConfig, backend=None) -> tuple[list, object, int]:
    """Validate every option and load the data: the benchmark's problems (public), their judge and
    the count of skipped records.
    Raises a one-line ValueError (or FileNotFoundError) before any model loads or file is written."""
    from codegym.envs import env_dataset
    from codegym.llm import check_spec
    from codegym.prompts import load_template

    if not config.agents:
        raise ValueError("no agents given")
    if config.prm is not None:
        from codegym.prm.model import check_prm_spec

        check_prm_spec(config.prm)
    for spec in config.agent_specs():
        spec.build(None, object() if config.prm else None)  # finds the class, checks fields, runs its checks
        if len(config.seeds) > 1 and not spec.takes_seed():
            raise ValueError("agent %r (%s) has no seed field: %d seeds would repeat one run"
                             % (spec.label, spec.agent, len(config.seeds)))
    if config.baseline is not None and config.baseline not in config.agents:
        raise ValueError("baseline %r is not an agent label (%s)" % (config.baseline, ", ".join(config.agents)))
    if backend is None:
        check_spec(config.policy)
    load_template(config.template)
    if config.reward_tests not in BENCH_REWARD_TESTS:
        raise ValueError("reward_tests must be one of %s (a benchmark never rewards on hidden tests)"
                         % ", ".join(BENCH_REWARD_TESTS))
    if "generated" in config.reward_tests and config.generated_tests is None:
        raise ValueError("reward_tests=%r needs generated_tests (a file written by codegym tcg generate)"
                         % config.reward_tests)
    if config.generated_tests is not None and not Path(config.generated_tests).is_file():
        raise FileNotFoundError("generated_tests: no file %s" % config.generated_tests)
    for name, values in (("budget_tokens", config.budget_tokens), ("seeds", config.seeds)):
        if not values:
            raise ValueError("%s is empty" % name)
    if min(config.budget_tokens) < 1 or (config.budget_calls is not None and config.budget_calls < 1):
        raise ValueError("budgets must be positive")
    if config.pass_at_k and min(config.pass_at_k) < 1:
        raise ValueError("pass@k needs k >= 1")
    if config.parallel < 1 or (config.limit is not None and config.limit < 1):
        raise ValueError("parallel and limit must be at least 1")
    limits = TimeLimits(config.time_limit_base_s, config.time_limit_factor)
    options = {k: v for k, v in {"data_path": config.data_path, "split": config.split,
                                 "on_error": config.on_error}.items() if v is not None}
    # training=False: a benchmark's problems never carry references or full test lists, whatever the split
    dataset = env_dataset(config.env, training=False, **options)
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
    return problems, dataset.judge(limits=limits), len(dataset.skipped)


def run_bench(config: BenchConfig, progress: bool = True, backend=None) -> dict:
    """Run (or resume) a benchmark; ``backend`` overrides ``config.policy`` (tests pass a scripted one)."""
    problems, judge, skipped = prepare(config, backend)
    policy = config.policy if backend is None else getattr(backend, "model_id", None) or type(backend).__name__
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

        def judged(solved: tuple[dict, str | None, list[str]]) -> None:
            record(*judge_item(judge, *solved, config.max_candidates_judged))

        if config.ray:
            _run_on_ray(config, todo, backend, problems, judged)
        else:
            backend = _backend(config, backend)  # loaded once: the slots and ASPR share it
            _run_in_slots(config, todo, backend, problems, judged)
        bar.close()
    if config.aspr_samples:
        _run_aspr(config, backend, problems, judge, out, set(items), progress)
    setup = {"env": config.env, "split": config.split, "policy": policy, "problems": len(problems),
             "seeds": len(config.seeds), "budget_unit": "generated tokens per problem", "skipped_records": skipped}
    return write_summary(out, set(items), config.pass_at_k, setup)


def judge_item(judge, row: dict, tree: str | None, candidates: list[str], limit: int) -> tuple[dict, str | None]:
    """Add the hidden-test verdicts to a solved item's row: its committed program (``passed``,
    ``status``) and up to ``limit`` distinct candidates (``candidates_passed``)."""
    verdict = judge.evaluate(row["problem_id"], row["code"]) if row["code"] else None
    row.update(passed=bool(verdict and verdict.passed), status=verdict.status if verdict else "no_code",
               sandbox_runs=row["sandbox_runs"] + (1 if verdict else 0))
    distinct = list(dict.fromkeys(c for c in candidates if c))[:limit]
    if len(distinct) > 1:
        row["candidates_passed"] = [v.passed for v in judge.evaluate_many([(row["problem_id"], c) for c in distinct])]
    return row, tree


def _run_aspr(config: BenchConfig, backend, problems: list, judge, out: Path, items: set[tuple],
              progress: bool) -> None:
    """ASPR for every solved item, after every agent has finished and with a policy no agent ever
    held (so no agent can learn from the extra calls whether an earlier item passed). Values go
    to ``aspr.jsonl``, one per item; a rerun computes only the missing ones."""
    from codegym.policy import StepPolicy

    path = out / "aspr.jsonl"
    _repair_tail(path)
    done = {tuple(entry["item"]) for entry in read_rows(path)}
    solved = [r for r in read_rows(out / "results.jsonl")
              if r["passed"] and item_key(r) in items and item_key(r) not in done and r.get("aspr") is None]
    if not solved:
        return
    by_id = {p.id: p for p in problems}
    policy = StepPolicy(_backend(config, backend), config.template)
    for row in tqdm(solved, desc="aspr", unit="item", disable=not progress):
        value = aspr_for(by_id[row["problem_id"]], row["steps"], int(row["seed"]), policy, judge,
                         config.aspr_samples, config.aspr_temperature)
        _append_row(path, {"item": list(item_key(row)), "aspr": value})


def write_summary(out: Path, items: set[tuple], ks: list[int], setup: dict) -> dict:
    """Summarise the rows of ``items`` in ``out/results.jsonl`` (with ``aspr.jsonl``) into
    ``summary.json`` and the plot."""
    aspr = {tuple(entry["item"]): entry["aspr"] for entry in read_rows(out / "aspr.jsonl")}
    rows = [row for row in read_rows(out / "results.jsonl") if item_key(row) in items]
    for row in rows:
        if item_key(row) in aspr:
            row["aspr"] = aspr[item_key(row)]
    summary = summarise(rows, ks)
    summary["setup"] = setup
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    plot_summary(summary, out / "pass_at_1.png")
    return summary


class ItemSolver:
    """Solves benchmark items with one environment and one policy (a slot or a Ray worker). It
    never holds the judge: agents get the environment (public problems, and a sandbox the judge
    does not use), and verdicts are added by :func:`judge_item` afterwards."""

    def __init__(self, config: BenchConfig, backend, problems: list, sandbox=None, prm=None):
        import gymnasium as gym

        import codegym  # noqa: F401 - registers the environments
        from codegym.execution import Sandbox
        from codegym.policy import StepPolicy

        self.config, self.prm = config, prm
        self.env = gym.make(config.env, problems=problems, sandbox=sandbox or Sandbox(),
                            reward_tests=config.reward_tests, generated_tests=config.generated_tests,
                            time_limit_base_s=config.time_limit_base_s, time_limit_factor=config.time_limit_factor)
        self.specs = {spec.label: spec for spec in config.agent_specs()}
        self.policy = StepPolicy(backend, config.template)

    def solve(self, item: tuple) -> tuple[dict, str | None, list[str]]:
        """The item's row (without verdicts), its search tree as JSON (None without a tree) and
        its candidate programs."""
        from agents.base import Budget

        problem_id, label, budget, seed = item
        spec = self.specs[label]
        prm_before = self.prm.tokens_read if self.prm is not None else 0
        agent = spec.build(self.policy, self.prm, seed)
        started = time.time()
        solution = agent.solve(self.env, problem_id, Budget(tokens=budget, calls=self.config.budget_calls))
        wall = time.time() - started
        row = {"problem_id": problem_id, "agent": label, "agent_class": spec.agent, "budget": budget, "seed": seed,
               "code": solution.code, "reward": solution.reward, "steps": solution.trajectory,
               "generated_tokens": solution.usage.generated_tokens, "prompt_tokens": solution.usage.prompt_tokens,
               "llm_calls": solution.usage.calls, "sandbox_runs": solution.sandbox_runs,
               "wall_s": round(wall, 3), "actions": solution.actions, "invalid_actions": solution.invalid_actions,
               "within_budget": solution.usage.generated_tokens <= budget,
               "prm_tokens": (self.prm.tokens_read - prm_before) if self.prm is not None else 0}
        tree = None
        if solution.tree is not None:
            row["tree"] = "trees/%s-%d-%d-%s.json" % (_file_part(label), budget, seed, _file_part(problem_id))
            tree = solution.tree.to_json(problem_id=problem_id, agent=label, budget=budget, seed=seed)
        return row, tree, list(solution.candidates)


def _prm(config: BenchConfig):
    if config.prm is None:
        return None
    from codegym.prm.model import load_prm

    return load_prm(config.prm)


def _file_part(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


def _backend(config: BenchConfig, backend):
    """The backend given to ``run_bench``, else the one ``config.policy`` names."""
    from codegym.llm import load

    return backend or load(config.policy, cache=config.cache)


def _run_in_slots(config: BenchConfig, todo: list[tuple], backend, problems: list, record) -> None:
    """With ``backend`` (loaded), ``config.parallel`` items at a time, one per thread, their generate calls merged in
    lockstep (slot i takes items i, i + parallel, ...: the schedule never depends on timing)."""
    from codegym.execution import Sandbox
    from codegym.llm.batching import LockstepBatcher

    slots = max(1, min(config.parallel, len(todo)))
    batcher = LockstepBatcher(backend, slots)
    agents_sandbox = Sandbox()  # the environments' own: the judge never runs in it
    prm, prm_lock = _prm(config), threading.Lock()

    def work(slot: int) -> None:
        from codegym.prm.model import MeteredPRM

        with batcher.client(slot) as client:
            metered = MeteredPRM(prm, prm_lock) if prm is not None else None
            solver = ItemSolver(config, client, problems, agents_sandbox, metered)
            for item in todo[slot::slots]:
                record(solver.solve(item))

    try:
        with ThreadPoolExecutor(slots, thread_name_prefix="bench-slot") as pool:
            for future in [pool.submit(work, slot) for slot in range(slots)]:
                future.result()
    finally:
        agents_sandbox.close()


class _RayWorker:
    """A Ray actor: loads the environment and policy once, then solves the items it is sent."""

    def __init__(self, config: BenchConfig, backend, problems: list):
        import threading

        from codegym.prm.model import MeteredPRM

        prm = _prm(config)
        metered = MeteredPRM(prm, threading.Lock()) if prm is not None else None
        self.solver = ItemSolver(config, _backend(config, backend), problems, prm=metered)

    def solve(self, item: tuple) -> tuple[dict, str | None, list[str]]:
        return self.solver.solve(item)


def _run_on_ray(config: BenchConfig, todo: list[tuple], backend, problems: list, record) -> None:
    """Spread items over a Ray cluster (``config.ray``: an address, ``auto``, or ``local`` to start
    one here), one actor per CPU unless ``config.ray_actors`` gives a count; each actor keeps
    one item in flight, and its solutions are judged and recorded here, in the driver."""
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
        actors = [worker.remote(config, backend, problems) for _ in range(min(count, len(todo)))]
        queue, in_flight = list(reversed(todo)), {}
        for actor in actors:
            in_flight[actor.solve.remote(queue.pop())] = actor
        while in_flight:
            [ready], _ = ray.wait(list(in_flight), num_returns=1)
            actor = in_flight.pop(ready)
            record(ray.get(ready))  # judged here, in the driver: actors never hold the judge
            if queue:
                in_flight[actor.solve.remote(queue.pop())] = actor
    finally:
        if started_here:
            ray.shutdown()


def summarise(rows: list[dict], ks: list[int]) -> dict:
    """Per (agent, budget): rates with 95% intervals over problems, compute means; and, per budget,
    every pair of agents compared on their shared items (see :mod:`codegym.stats`)."""
    from codegym.stats import cluster_bootstrap_interval, paired_comparison, rate_interval

    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        groups[(row["agent"], int(row["budget"]))].append(row)
    table = []
    for (agent, budget), members in sorted(groups.items()):
        by_problem: dict[str, list[bool]] = defaultdict(list)
        for r in members:
            by_problem[r["problem_id"]].append(bool(r["passed"]))
        entry = {"agent": agent, "budget": budget, "items": len(members), "problems": len(by_problem),
                 "pass@1": sum(r["passed"] for r in members) / len(members),
                 "pass@1_ci": list(rate_interval(by_problem))}
        for k in ks:
            if k == 1:
                continue
            runs = [len(passes) for passes in by_problem.values()]
            entry["pass@%d" % k] = (sum(pass_at_k(len(p), sum(p), k) for p in by_problem.values()) / len(by_problem)
                                    if min(runs) >= k else None)
            pools: dict[str, list[float]] = defaultdict(list)
            for r in members:
                if len(r.get("candidates_passed") or []) >= k:
                    c = r["candidates_passed"]
                    pools[r["problem_id"]].append(pass_at_k(len(c), sum(c), k))
            estimates = [v for group in pools.values() for v in group]
            entry["pool_pass@%d" % k] = sum(estimates) / len(estimates) if estimates else None
            entry["pool_pass@%d_ci" % k] = list(cluster_bootstrap_interval(list(pools.values()))) if estimates else None
            entry["pool_pass@%d_items" % k] = len(estimates)
        asprs: dict[str, list[float]] = defaultdict(list)
        for r in members:
            if r.get("aspr") is not None:
                asprs[r["problem_id"]].append(r["aspr"])
        values = [v for group in asprs.values() for v in group]
        entry["aspr"] = sum(values) / len(values) if values else None
        entry["aspr_ci"] = list(cluster_bootstrap_interval(list(asprs.values()))) if values else None
        entry["aspr_items"] = len(values)
        for name in ("generated_tokens", "prompt_tokens", "llm_calls", "sandbox_runs", "wall_s", "prm_tokens"):
            entry["mean_" + name] = sum(r.get(name, 0) for r in members) / len(members)
        actions = sum(r["actions"] for r in members)
        entry["invalid_action_rate"] = sum(r["invalid_actions"] for r in members) / actions if actions else 0.0
        entry["all_within_budget"] = all(r["within_budget"] for r in members)
        table.append(entry)
    paired = []
    for budget in sorted({b for _, b in groups}):
        agents = sorted(a for a, b in groups if b == budget)
        outcomes = {a: {(r["problem_id"], int(r["seed"])): bool(r["passed"]) for r in groups[(a, budget)]}
                    for a in agents}
        for i, first in enumerate(agents):
            for second in agents[i + 1:]:
                paired.append({"budget": budget, "a": first, "b": second,
                               **paired_comparison(outcomes[first], outcomes[second])})
    return {"rows": len(rows), "table": table, "paired": paired}


def _columns(header: list[str], body: list[list[str]]) -> list[str]:
    """Rows of text in columns as wide as their content (first column left-aligned)."""
    widths = [max(len(row[i]) for row in [header] + body) for i in range(len(header))]

    def line(row: list[str]) -> str:
        return "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))

    return [line(header), "-" * len(line(header))] + [line(row) for row in body]


def _rate(value, interval=None) -> str:
    if value is None:
        return "-"
    return "%.3f" % value + (" [%.2f,%.2f]" % tuple(interval) if interval else "")


def format_table(summary: dict, baseline: str | None = None) -> str:
    """The summary as text: one row per (agent, budget) with 95% intervals, the paired comparisons
    (all pairs, or each agent against ``baseline``), and a legend of what each rate is over."""
    table = summary["table"]
    ks = sorted({key for e in table for key in e if key.startswith("pass@") and key[5:].isdigit() and key != "pass@1"},
                key=lambda key: int(key[5:]))
    seeds_k = [k for k in ks if any(e.get(k) is not None for e in table)]
    pool_k = [k for k in ks if any(e.get("pool_" + k) is not None for e in table)]
    header = ["agent", "budget", "items", "pass@1 [95% CI]"] + seeds_k + ["pool_" + k for k in pool_k]
    header += ["ASPR (n)", "tokens", "calls", "sandbox", "wall_s"]
    body = []
    for e in table:
        body.append([e["agent"], str(e["budget"]), str(e["items"]), _rate(e["pass@1"], e.get("pass@1_ci"))]
                    + [_rate(e[k]) for k in seeds_k] + [_rate(e["pool_" + k], e.get("pool_%s_ci" % k)) for k in pool_k]
                    + ["%s (%d)" % (_rate(e["aspr"], e.get("aspr_ci")), e["aspr_items"]), "%.0f" % e["mean_generated_tokens"],
                       "%.1f" % e["mean_llm_calls"], "%.1f" % e["mean_sandbox_runs"], "%.1f" % e["mean_wall_s"]])
    lines = _columns(header, body)
    pairs = [p for p in summary.get("paired", []) if p.get("items")]
    if baseline is not None:
        known = {e["agent"] for e in table}
        if baseline not in known:
            raise ValueError("no agent %r in this run; agents: %s" % (baseline, ", ".join(sorted(known))))
        pairs = [dict(p, a=p["b"], b=p["a"], diff=-p["diff"], diff_ci=[-p["diff_ci"][1], -p["diff_ci"][0]],
                      a_only=p["b_only"], b_only=p["a_only"]) if p["a"] == baseline else p
                 for p in pairs if baseline in (p["a"], p["b"])]
    if pairs:
        lines += ["", "paired on shared items (a - b; 95% CI clustered by problem; exact McNemar p):"]
        lines += _columns(["budget", "a", "b", "items", "diff [95% CI]", "a only", "b only", "p"],
                          [[str(p["budget"]), p["a"], p["b"], str(p["items"]),
                            "%+.3f [%+.2f,%+.2f]" % (p["diff"], *p["diff_ci"]), str(p["a_only"]), str(p["b_only"]),
                            "%.3g" % p["p_mcnemar"]] for p in pairs])
    setup = summary.get("setup", {})
    lines += ["", "items: problems x seeds%s; pass@1: share of items whose committed program passes the hidden "
              "tests." % (" (%d x %d)" % (setup["problems"], setup["seeds"]) if setup else ""),
              "pass@k: chance that one of k seeds' committed programs passes (shown with at least k seeds); "
              "pool_pass@k: the same over an item's verified candidates (items with at least k).",
              "ASPR: over the n solved items, the share of translate steps resampled from the solution's reasoning "
              "that pass. A difference is a finding only where p < 0.05.",
              "tokens, calls, sandbox, wall_s: means per item (budget unit: generated tokens per problem)."]
    return "\n".join(lines)


def plot_summary(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    agents = sorted({e["agent"] for e in summary["table"]})
    budgets = sorted({e["budget"] for e in summary["table"]})
    for index, agent in enumerate(agents):
        entries = sorted((e for e in summary["table"] if e["agent"] == agent), key=lambda e: e["budget"])
        xs = [e["budget"] * (1 + 0.02 * (index - (len(agents) - 1) / 2)) for e in entries]  # side by side
        ys = [e["pass@1"] for e in entries]
        low = [max(0.0, e["pass@1"] - e.get("pass@1_ci", [e["pass@1"]] * 2)[0]) for e in entries]
        high = [max(0.0, e.get("pass@1_ci", [e["pass@1"]] * 2)[1] - e["pass@1"]) for e in entries]
        ax.errorbar(xs, ys, yerr=[low, high], marker="o", capsize=3, label=agent)
    if len(budgets) > 1:
        ax.set_xscale("log")
    ax.set_xticks(budgets)
    ax.set_xticklabels([str(b) for b in budgets])
    ax.minorticks_off()
    top = max([e.get("pass@1_ci", [0, e["pass@1"]])[1] for e in summary["table"]] + [0.05])
    ax.set_ylim(-0.01, min(1.02, top * 1.15 + 0.02))
    setup = summary.get("setup")
    if setup:
        ax.set_title("%s%s, %s: %d problems x %d seeds" % (setup["env"], " (%s)" % setup["split"] if setup["split"]
                                                           else "", setup["policy"], setup["problems"], setup["seeds"]),
                     fontsize=9)
    ax.set_xlabel("budget (generated tokens per problem)")
    ax.set_ylabel("pass@1 on hidden tests (95% CI)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def compare_runs(runs: list[str | os.PathLike], ks: list[int] = (1,)) -> dict:
    """Join benchmark runs on the (problem, budget, seed) items they all hold and summarise them
    together: agents are labelled ``RUN:label`` (RUN: the folder's name), so the paired table
    compares, say, a policy before and after training on the same items."""
    if len(runs) < 1:
        raise ValueError("compare needs at least one run folder")
    tagged, names = [], [Path(run).name for run in runs]
    if len(set(names)) < len(names):
        names = [str(Path(run)) for run in runs]
    for run, name in zip(runs, names):
        results = Path(run) / "results.jsonl"
        if not results.exists():
            raise FileNotFoundError("no results.jsonl in %s" % run)
        tagged.append([dict(row, agent="%s:%s" % (name, row["agent"])) for row in read_rows(results)])
    shared = set.intersection(*({(r["problem_id"], int(r["budget"]), int(r["seed"])) for r in rows} for rows in tagged))
    if not shared:
        raise ValueError("the runs share no (problem, budget, seed) item")
    rows = [r for rows in tagged for r in rows if (r["problem_id"], int(r["budget"]), int(r["seed"])) in shared]
    summary = summarise(rows, list(ks))
    summary["setup"] = {"env": "compare", "split": None, "policy": ", ".join(names),
                        "problems": len({item[0] for item in shared}), "seeds": len({item[2] for item in shared}),
                        "budget_unit": "generated tokens per problem", "skipped_records": 0}
    return summary
