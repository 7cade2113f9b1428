"""Agents on a scripted backend (known trees), selectors, budgets, metrics, resume, tree viewer."""

from __future__ import annotations

import json
import math
import sys
from html.parser import HTMLParser

import gymnasium as gym
import pytest
from ray import cloudpickle as ray_pickle

import agents
import codegym  # noqa: F401
from agents import Budget, agent_class, make_agent
from agents.base import BudgetedBackend, BudgetExhausted, Tree
from agents.mcts import MCTSAgent, MCTSConfig, puct_score, softmax_priors, uct_score
from agents.selectors import Candidate, by_reward, dual_agreement, majority_vote
from codegym.bench import BenchConfig, pass_at_k, read_rows, run_bench, summarise
from codegym.datasets import Problem
from codegym.execution import TestCase
from codegym.llm import GenerationRequest
from codegym.llm.scripted import ScriptedBackend
from codegym.policy import StepPolicy
from codegym.tree_view import render_html

GOOD = "def gcd(a, b):\n    while b:\n        a, b = b, a % b\n    return a\n"
BAD = "def gcd(a, b):\n    return a * b\n"


def scripted(prompt: str, seed: int) -> str:
    """define -> 'plan <seed>'; refine -> 'more detail'; translate -> correct code only after plan 1."""
    if prompt.endswith("```python\n"):
        return GOOD if "plan 1" in prompt else BAD
    if prompt.endswith("[refine]\n1."):
        return " more detail"
    return " plan %d" % seed


@pytest.fixture
def env(sandbox):
    return gym.make("CodeGym/Starter-v0", sandbox=sandbox)


def _policy(script=scripted):
    return StepPolicy(ScriptedBackend(script), "pseudocode", chat=False)


def test_greedy_follows_one_trajectory(env):
    agent = make_agent("greedy", _policy(), refines=1)
    solution = agent.solve(env, "starter/gcd", Budget(tokens=10_000))
    assert [kind for kind, _ in solution.trajectory] == ["define", "refine", "translate"]
    assert solution.code.strip() == BAD.strip() and solution.reward == 0.0  # seed 0 -> plan 0 -> wrong code
    assert solution.usage.calls == 3 and solution.usage.generated_tokens == 2 + 2 + len(BAD.split())


def test_mcts_finds_the_good_branch_and_exports_its_tree(env):
    agent = make_agent("mcts", _policy(), expansion=3, leaves_per_round=1, seed=0)
    solution = agent.solve(env, "starter/gcd", Budget(tokens=400))
    tree = solution.tree
    assert [child.text for child in tree.root.children] == ["1. plan 0", "1. plan 1", "1. plan 2"]
    assert solution.code.strip() == GOOD.strip() and solution.reward == 1.0
    chosen = [n for n in tree.nodes() if n.chosen]
    assert [n.kind for n in chosen] == ["root", "define", "translate"] and chosen[1].text == "1. plan 1"
    # every backed-up value passes through the root
    assert tree.root.visits == sum(child.visits for child in tree.root.children)
    assert solution.usage.generated_tokens <= 400
    data = json.loads(tree.to_json(problem_id="starter/gcd"))
    assert data["root"]["children"][1]["chosen"] is True


def test_uct_puct_and_priors_by_hand():
    tree = Tree({"steps": [], "done": False})
    a = tree.add(tree.root, "define", "a", visits=2, value_sum=1.0, prior=0.7)
    b = tree.add(tree.root, "define", "b", visits=1, value_sum=0.9, prior=0.3)
    c = tree.add(tree.root, "define", "c")
    assert uct_score(c, 3, 2.0) == math.inf
    assert uct_score(a, 3, 2.0) == pytest.approx(0.5 + 2.0 * math.sqrt(math.log(3) / 2))
    assert uct_score(b, 3, 2.0) == pytest.approx(0.9 + 2.0 * math.sqrt(math.log(3) / 1))
    assert puct_score(a, 3, 1.0) == pytest.approx(0.5 + 0.7 * math.sqrt(3) / 3)
    assert softmax_priors([math.log(0.2), math.log(0.6)]) == pytest.approx([0.25, 0.75])
    assert softmax_priors([None, -1.0]) == [0.5, 0.5]
    tree.root.visits, tree.root.expanded = 3, True
    agent = MCTSAgent(_policy(), MCTSConfig(c=2.0))
    assert agent._select(tree.root, {}) is c  # unvisited first
    c.dead = True
    assert agent._select(tree.root, {}) is b  # then the higher UCT score
    agent.config.selection = "puct"
    assert agent._select(tree.root, {}) is a if puct_score(a, 3, 2.0) > puct_score(b, 3, 2.0) else b


@pytest.mark.parametrize("name", ["greedy", "best-of-n", "beam", "mcts"])
@pytest.mark.parametrize("tokens", [30, 120, 700])
def test_every_agent_honours_token_budgets(env, name, tokens):
    solution = make_agent(name, _policy()).solve(env, "starter/gcd", Budget(tokens=tokens))
    assert solution.usage.generated_tokens <= tokens


@pytest.mark.parametrize("name", ["greedy", "best-of-n", "beam", "mcts"])
def test_every_agent_honours_call_budgets(env, name):
    solution = make_agent(name, _policy()).solve(env, "starter/gcd", Budget(calls=2))
    assert solution.usage.calls <= 2


def test_budgeted_backend_clamps_and_refuses():
    backend = BudgetedBackend(ScriptedBackend(lambda p, s: " ".join(["w"] * 50)), Budget(tokens=60), min_tokens=8)
    out = backend.generate([GenerationRequest(prompt="x", n=2, max_new_tokens=50)])
    assert [c.tokens for c in out.results[0]] == [30, 30]
    with pytest.raises(BudgetExhausted):
        backend.generate([GenerationRequest(prompt="x", max_new_tokens=50)])


def test_best_of_n_picks_the_passing_candidate(env):
    agent = make_agent("best-of-n", _policy(), n=3, batch=3, selector="public")
    solution = agent.solve(env, "starter/gcd", Budget(tokens=10_000))
    assert len(solution.candidates) == 3 and solution.code.strip() == GOOD.strip()


def _problem():
    return Problem(id="sq", statement="square", entry_point="f",
                   public_tests=[TestCase.call("f", [2], 4)],
                   generated_tests=[TestCase.call("f", [3], 9), TestCase.call("f", [4], 16)])


def test_selectors_by_hand(sandbox):
    problem = _problem()
    square, double, plus2 = "def f(x): return x * x", "def f(x): return x + x", "def f(x): return x + 2"
    candidates = [Candidate(double, 1.0, []), Candidate(square, 1.0, []), Candidate(plus2, 1.0, []),
                  Candidate(square + "  # again", 1.0, [])]
    assert by_reward(candidates, problem) == 0  # tie on public reward: the earliest
    assert majority_vote(candidates, problem, sandbox) == 1  # two candidates agree on every output
    assert dual_agreement(candidates, problem, sandbox) == 1  # 2 programs x 3 tests passed


def test_prm_selector_aggregates_by_hand():
    from agents.selectors import by_prm

    class TablePRM:  # step scores looked up by the step's text
        def score(self, problem, steps):
            return [float(step.text) for step in steps]

    candidates = [Candidate("a", 0.0, [("define", "0.9"), ("translate", "0.2")]),  # mean .55, min .2, last .2
                  Candidate("b", 0.0, [("define", "0.5"), ("translate", "0.5")]),  # mean .5, min .5, last .5
                  Candidate("c", 0.0, [("define", "0.1"), ("translate", "0.8")])]  # mean .45, min .1, last .8
    picks = {aggregate: by_prm(TablePRM(), aggregate)(candidates, _problem()) for aggregate in ("mean", "min", "last")}
    assert picks == {"mean": 0, "min": 1, "last": 2}
    with pytest.raises(ValueError, match="unknown PRM aggregate"):
        by_prm(TablePRM(), "max")


def test_pass_at_k_and_summary_by_hand():
    assert pass_at_k(5, 2, 1) == pytest.approx(0.4)
    assert pass_at_k(5, 2, 2) == pytest.approx(0.7)
    assert pass_at_k(3, 0, 2) == 0.0 and pass_at_k(4, 3, 2) == 1.0
    with pytest.raises(ValueError):
        pass_at_k(1, 1, 2)
    base = {"agent": "a", "budget": 10, "generated_tokens": 5, "prompt_tokens": 1, "llm_calls": 1, "sandbox_runs": 1,
            "wall_s": 1.0, "actions": 2, "invalid_actions": 0, "within_budget": True}
    # two problems x three seeds: p passes with seeds 0 and 2, q never
    rows = [dict(base, problem_id="p", seed=0, passed=True, aspr=0.5, candidates_passed=[True, False]),
            dict(base, problem_id="p", seed=1, passed=False, invalid_actions=1, candidates_passed=[False, False]),
            dict(base, problem_id="p", seed=2, passed=True, aspr=1.0),
            dict(base, problem_id="q", seed=0, passed=False, candidates_passed=[False, True]),
            dict(base, problem_id="q", seed=1, passed=False),
            dict(base, problem_id="q", seed=2, passed=False)]
    (entry,) = summarise(rows, [1, 2, 5])["table"]
    assert entry["items"] == 6 and entry["problems"] == 2
    assert entry["pass@1"] == pytest.approx(2 / 6)
    assert entry["pass@2"] == pytest.approx((pass_at_k(3, 2, 2) + 0.0) / 2)  # = (1 + 0) / 2
    assert entry["pass@5"] is None  # three seeds cannot estimate pass@5
    assert entry["pool_pass@2"] == pytest.approx(2 / 3) and entry["pool_pass@2_items"] == 3
    lo, hi = entry["pool_pass@2_ci"]  # clustered by problem: p's two pools move together
    assert 0.0 <= lo <= 2 / 3 <= hi <= 1.0 and entry["aspr_ci"][0] <= 0.75 <= entry["aspr_ci"][1]
    assert entry["pool_pass@5"] is None
    lo, hi = entry["pass@1_ci"]
    assert 0.0 <= lo < 2 / 6 < hi <= 1.0
    assert entry["aspr"] == pytest.approx(0.75) and entry["aspr_items"] == 2
    assert entry["invalid_action_rate"] == pytest.approx(1 / 12)


def test_bench_resumes_without_duplicates(tmp_path):
    calls = []
    backend = ScriptedBackend(lambda p, s: calls.append(1) or scripted(p, s))
    config = BenchConfig(env="CodeGym/Starter-v0", agents=["greedy", "mcts"], budget_tokens=[200], limit=2,
                         problems=["starter/gcd", "starter/fizzbuzz"], out=str(tmp_path), aspr_samples=2, cache=False)
    run_bench(config, progress=False, backend=backend)
    results = tmp_path / "results.jsonl"
    rows = read_rows(results)
    assert len(rows) == 4 and all(r["within_budget"] for r in rows)
    assert {"problem_id", "agent", "budget", "seed", "passed", "code", "generated_tokens", "llm_calls",
            "sandbox_runs", "wall_s"} <= set(rows[0])
    # simulate kill -9 in the middle of writing the last row
    text = results.read_text().splitlines()
    results.write_text("\n".join(text[:-1]) + "\n" + text[-1][: len(text[-1]) // 2])
    before = len(calls)
    summary = run_bench(config, progress=False, backend=backend)
    rows = read_rows(results)
    keys = [(r["problem_id"], r["agent"], r["budget"], r["seed"]) for r in rows]
    assert len(rows) == 4 and len(set(keys)) == 4
    assert len(calls) > before  # only the torn item was redone
    run_bench(config, progress=False, backend=backend)
    assert len(read_rows(results)) == 4
    assert summary["rows"] == 4 and (tmp_path / "pass_at_1.png").stat().st_size > 0
    config_json = json.loads((tmp_path / "config.json").read_text())
    assert config_json["run"]["packages"]["gymnasium"] and "git_commit" in config_json["run"]


class _Nodes(HTMLParser):
    def __init__(self):
        super().__init__()
        self.details, self.chosen, self.external = 0, 0, []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "details":
            self.details += 1
            self.chosen += "chosen" in attrs.get("class", "")
        for key in ("src", "href"):
            if attrs.get(key):
                self.external.append(attrs[key])


def test_tree_viewer_renders_a_real_tree(env, tmp_path):
    solution = make_agent("mcts", _policy(), leaves_per_round=2).solve(env, "starter/gcd", Budget(tokens=400))
    tree = json.loads(solution.tree.to_json(problem_id="starter/gcd"))
    page = render_html(tree)
    parser = _Nodes()
    parser.feed(page)
    assert parser.details == len(solution.tree.nodes())
    assert parser.chosen == sum(n.chosen for n in solution.tree.nodes()) >= 2
    assert parser.external == [] and "http" not in page.lower().replace("http-equiv", "")
    path = tmp_path / "tree.json"
    path.write_text(solution.tree.to_json())
    from codegym.tree_view import write_tree_html

    assert write_tree_html(path).read_text() == render_html(json.loads(path.read_text()))


def test_registry_finds_agents_by_name_and_import_path():
    assert agent_class("mcts") is MCTSAgent
    assert agent_class("agents.greedy:GreedyAgent").name == "greedy"
    with pytest.raises(ValueError):
        agent_class("nope")


def _bench_rows(tmp_path, name: str, **options) -> dict:
    config = BenchConfig(env="CodeGym/Starter-v0", agents=["greedy", "best-of-n", "mcts"], budget_tokens=[200],
                         problems=["starter/gcd", "starter/fizzbuzz", "starter/is_palindrome"], out=str(tmp_path / name),
                         aspr_samples=2, cache=False, **options)
    run_bench(config, progress=False, backend=ScriptedBackend(scripted, ragged=True))
    return {(r["problem_id"], r["agent"]): (r["passed"], r["code"], r["generated_tokens"], r["llm_calls"])
            for r in read_rows(tmp_path / name / "results.jsonl")}


def test_bench_slots_and_ray_give_the_sequential_results(tmp_path):
    """Merged batches (3 slots) and Ray workers change where items run, not what they answer."""
    sequential = _bench_rows(tmp_path, "one", parallel=1)
    assert len(sequential) == 9 and any(passed for passed, *_ in sequential.values())
    assert _bench_rows(tmp_path, "slots", parallel=3) == sequential
    ray_pickle.register_pickle_by_value(sys.modules[__name__])  # Ray workers cannot import this test module
    try:
        assert _bench_rows(tmp_path, "ray", ray="local", ray_actors=2) == sequential
    finally:
        ray_pickle.unregister_pickle_by_value(sys.modules[__name__])


def test_error_bars_and_paired_tests_by_hand():
    from codegym.stats import mcnemar_exact, paired_comparison, rate_interval, wilson_interval

    # the brief's example: 4 solved against 2, none in common -> p = 44/64
    assert mcnemar_exact(4, 2) == pytest.approx(0.6875) and mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(10, 0) == pytest.approx(2 / 1024)
    # Wilson for 0/60: the upper end is z^2 / (n + z^2); 4/60 from the closed form
    assert wilson_interval(0, 60) == (0.0, pytest.approx(3.8414588 / 63.8414588))
    assert wilson_interval(4, 60) == (pytest.approx(0.02623, abs=1e-4), pytest.approx(0.15925, abs=1e-4))
    lo, hi = wilson_interval(10, 90)
    assert lo == pytest.approx(0.0614, abs=1e-3) and hi == pytest.approx(0.1925, abs=1e-3)
    assert rate_interval({"p": [True], "q": [False]}) == wilson_interval(1, 2)
    a = {("p%d" % i, 0): i < 4 for i in range(60)}
    b = {("p%d" % i, 0): 4 <= i < 6 for i in range(60)}
    result = paired_comparison(a, b)
    assert (result["items"], result["a_only"], result["b_only"]) == (60, 4, 2)
    assert result["diff"] == pytest.approx(2 / 60) and result["p_mcnemar"] == pytest.approx(0.6875)
    assert result["diff_ci"][0] < 0 < result["diff_ci"][1]  # the interval holds zero: no finding
    base = {"budget": 10, "generated_tokens": 5, "prompt_tokens": 1, "llm_calls": 1, "sandbox_runs": 1,
            "wall_s": 1.0, "actions": 2, "invalid_actions": 0, "within_budget": True, "seed": 0}
    rows = [dict(base, agent=agent, problem_id=problem, passed=outcome[(problem, 0)])
            for agent, outcome in (("mcts", a), ("best-of-n", b)) for problem, _ in outcome]
    summary = summarise(rows, [1])
    (pair,) = summary["paired"]
    assert (pair["a"], pair["b"], pair["a_only"], pair["b_only"]) == ("best-of-n", "mcts", 2, 4)
    from codegym.bench import format_table

    text = format_table(summary, baseline="best-of-n")
    assert "mcts" in text and "+0.033" in text and "0.688" in text


def test_auc_and_its_problem_clustered_interval_by_hand():
    from codegym.stats import auc, auc_interval

    # 2 positives, 2 negatives; of the 4 (positive, negative) pairs the positive wins 3, ties 0.5 of 1
    assert auc([0.9, 0.5, 0.5, 0.1], [True, True, False, False]) == pytest.approx(3.5 / 4)
    assert auc([0.3, 0.2], [True, True]) is None
    separated = [[(0.9, True), (0.1, False)], [(0.8, True), (0.2, False)], [(0.7, True), (0.3, False)]]
    assert auc_interval(separated) == (1.0, 1.0)
    assert auc_interval([[(0.5, True)], [(0.4, True)]]) is None
    from codegym.stats import mcnemar_exact, sign_flip_p

    assert sign_flip_p([1.0] * 4 + [-1.0] * 2 + [0.0] * 9) == pytest.approx(mcnemar_exact(4, 2))
    assert sign_flip_p([0.5, 0.5]) == pytest.approx(0.5) and sign_flip_p([0.0]) == 1.0
    noisy = [[(0.9, True), (0.95, False)], [(0.8, True), (0.2, False)], [(0.1, True), (0.3, False)]]
    from codegym.stats import paired_auc_difference

    flipped = [[(1 - s, p) for s, p in cluster] for cluster in separated]
    result = paired_auc_difference(separated, flipped)
    assert result["diff"] == 1.0 and result["diff_ci"] == [1.0, 1.0] and result["p_bootstrap"] == 0.0
    assert paired_auc_difference(separated, separated)["diff"] == 0.0
    with pytest.raises(ValueError, match="same steps"):
        paired_auc_difference(separated, separated[:2])
    low, high = auc_interval(noisy, seed=1)
    assert low < auc(*zip(*[x for c in noisy for x in c])) < high


def test_config_file_variants_cli_overrides_and_round_trip(tmp_path):
    from codegym.bench import load_config
    from codegym.cli import build_parser
    from codegym.cli.bench import bench_config

    path = tmp_path / "run.toml"
    path.write_text('env = "CodeGym/Starter-v0"\nbudget_tokens = [300]\nlimit = 2\nout = "%s"\n'
                    '[agents.mcts-c05]\nagent = "mcts"\nc = 0.5\n[agents.mcts-c8]\nagent = "mcts"\nc = 8.0\n'
                    '[agents.bon-codet]\nagent = "best-of-n"\nselector = "codet"\n' % (tmp_path / "out"))
    config = load_config(path)
    assert list(config.agents) == ["mcts-c05", "mcts-c8", "bon-codet"]
    assert [s.config().c for s in config.agent_specs()[:2]] == [0.5, 8.0]
    args = build_parser().parse_args(["bench", "--config", str(path), "--limit", "1", "--seeds", "0,1"])
    overridden = bench_config(args)
    assert overridden.limit == 1 and overridden.seeds == [0, 1] and list(overridden.agents) == list(config.agents)
    args = build_parser().parse_args(["bench", "--config", str(path), "--agent", "g=greedy:refines=0"])
    assert bench_config(args).agents == {"g": {"agent": "greedy", "refines": 0}}
    run_bench(config, progress=False, backend=ScriptedBackend(scripted))
    again = load_config(tmp_path / "out" / "config.json")  # a run's config.json is a --config
    assert again == config
    rows = read_rows(tmp_path / "out" / "results.jsonl")
    assert {r["agent"] for r in rows} == {"mcts-c05", "mcts-c8", "bon-codet"}
    assert {r["agent_class"] for r in rows} == {"mcts", "best-of-n"}
    assert all(r["tree"].startswith("trees/mcts-c") for r in rows if r["agent_class"] == "mcts")
    (tmp_path / "bad.toml").write_text('[agents.m]\nagent = "mcts"\ncc = 1\n')
    with pytest.raises(ValueError, match="agent 'm' \\(mcts\\) has no field 'cc'; fields: expansion"):
        run_bench(load_config(tmp_path / "bad.toml", out=str(tmp_path / "never")), backend=ScriptedBackend(scripted))
    (tmp_path / "worse.toml").write_text('agentz = ["greedy"]\n')
    with pytest.raises(ValueError, match="unknown field\\(s\\) agentz"):
        load_config(tmp_path / "worse.toml")
    assert not (tmp_path / "never").exists()


def test_plugin_agent_gets_config_seed_and_prm_like_a_builtin(tmp_path):
    from agents import AgentSpec, parse_agent_spec

    spec = parse_agent_spec("s3=examples/custom_agent.py:SampleThenVote:samples=3")
    assert (spec.label, spec.agent, spec.options) == ("s3", "examples/custom_agent.py:SampleThenVote", {"samples": 3})
    prm = object()
    agent = spec.build(_policy(), prm, seed=7)
    assert agent.config.samples == 3 and agent.config.seed == 7
    with pytest.raises(ValueError, match="samples must be at least 1"):
        AgentSpec("s0", spec.agent, {"samples": 0}).build(None)

    class Seedless:
        def __init__(self, policy, config, prm):
            self.got = (policy, config, prm)

    agents.register("seedless", Seedless)
    try:
        assert AgentSpec("x", "seedless").build("policy", prm).got == ("policy", None, prm)
        with pytest.raises(ValueError, match="declares no Config"):
            AgentSpec("x", "seedless", {"k": 1}).build(None)
        with pytest.raises(ValueError, match="no seed field"):
            run_bench(BenchConfig(agents=["seedless"], seeds=[0, 1], out=str(tmp_path / "never")),
                      backend=ScriptedBackend(scripted))
    finally:
        agents.REGISTRY.pop("seedless")
    config = BenchConfig(agents=["greedy", "s3=examples/custom_agent.py:SampleThenVote:samples=2"], budget_tokens=[400],
                         problems=["starter/gcd"], out=str(tmp_path / "run"), aspr_samples=0, cache=False)
    summary = run_bench(config, progress=False, backend=ScriptedBackend(scripted))
    assert {e["agent"] for e in summary["table"]} == {"greedy", "s3"}


def test_compare_joins_runs_on_shared_items(tmp_path):
    from codegym.bench import compare_runs

    base = {"budget": 10, "generated_tokens": 5, "prompt_tokens": 1, "llm_calls": 1, "sandbox_runs": 1,
            "wall_s": 1.0, "actions": 2, "invalid_actions": 0, "within_budget": True, "seed": 0, "agent": "mcts"}
    for name, solved in (("before", {"p0"}), ("after", {"p0", "p1", "p2"})):
        (tmp_path / name).mkdir()
        problems = ["p0", "p1", "p2", "p3"] + (["extra"] if name == "after" else [])
        (tmp_path / name / "results.jsonl").write_text("".join(
            json.dumps(dict(base, problem_id=p, passed=p in solved)) + "\n" for p in problems))
    summary = compare_runs([tmp_path / "before", tmp_path / "after"])
    assert {e["agent"]: e["items"] for e in summary["table"]} == {"before:mcts": 4, "after:mcts": 4}
    (pair,) = summary["paired"]
    assert (pair["a"], pair["b"], pair["a_only"], pair["b_only"], pair["p_mcnemar"]) == (
        "after:mcts", "before:mcts", 2, 0, 0.5)


class _UsageSpy:
    """Records, at each solve, how many calls the policy's backend had served: an agent's view of
    whether extra (ASPR) work ran after an earlier item passed."""

    seen: list[int] = []

    def __init__(self, policy, config, prm):
        self.inner = make_agent("greedy", policy, refines=0)

    def solve(self, env, problem_id, budget):
        backend, calls = self.inner.policy.backend, []
        while backend is not None:  # the slot's client, and the model backend behind it
            calls.append((backend.usage.calls, len(getattr(backend, "prompts_seen", []))))
            backend = getattr(backend, "inner", None)
        _UsageSpy.seen.append(calls)
        return self.inner.solve(env, problem_id, budget)


def test_aspr_runs_after_every_agent_so_no_agent_learns_earlier_verdicts(tmp_path):
    agents.register("usage-spy", _UsageSpy)
    try:
        sequences = []
        for aspr in (0, 3):
            _UsageSpy.seen = []
            config = BenchConfig(agents=["usage-spy"], budget_tokens=[400], parallel=1, aspr_samples=aspr,
                                 problems=["starter/gcd", "starter/is_prime", "starter/flatten"],  # gcd runs first
                                 out=str(tmp_path / str(aspr)), cache=False)
            summary = run_bench(config, progress=False, backend=ScriptedBackend(lambda p, s: GOOD if p.endswith(
                "```python\n") else " plan"))
            sequences.append(list(_UsageSpy.seen))
        assert summary["table"][0]["aspr_items"] > 0  # ASPR ran in the second run...
        assert sequences[0] == sequences[1]  # ...and no agent could tell
        assert (tmp_path / "3" / "aspr.jsonl").exists()
    finally:
        agents.REGISTRY.pop("usage-spy")


def test_bench_rewards_on_generated_tests_and_judges_on_hidden_ones(tmp_path):
    """--reward-tests reaches the agents' environment: a wrong generated test lowers the reward of
    a correct program, whose hidden-test verdict stays a pass."""
    from codegym.tcg import save_generated

    wrong = tmp_path / "generated.jsonl"
    save_generated(wrong, {"starter/gcd": ([TestCase.call("gcd", [4, 6], 3, origin="generated")], {})})
    always_good = ScriptedBackend(lambda p, s: GOOD if p.endswith("```python\n") else " plan")

    def row(name: str, **options) -> dict:
        config = BenchConfig(env="CodeGym/Starter-v0", agents=["greedy"], budget_tokens=[400], problems=["starter/gcd"],
                             out=str(tmp_path / name), aspr_samples=0, cache=False, **options)
        run_bench(config, progress=False, backend=always_good)
        return read_rows(tmp_path / name / "results.jsonl")[0]

    public = row("public")
    assert public["passed"] and public["reward"] == 1.0
    generated = row("generated", reward_tests="generated", generated_tests=str(wrong))
    assert generated["passed"] and generated["reward"] == 0.0
    both = row("both", reward_tests="public+generated", generated_tests=str(wrong))
    assert both["passed"] and 0.0 < both["reward"] < 1.0
    for options, message in (({"reward_tests": "all"}, "never rewards on hidden"),
                             ({"reward_tests": "generated"}, "needs generated_tests"),
                             ({"generated_tests": str(tmp_path / "missing.jsonl")}, "no file")):
        with pytest.raises((ValueError, FileNotFoundError), match=message):
            run_bench(BenchConfig(env="CodeGym/Starter-v0", agents=["greedy"], out=str(tmp_path / "never"), **options),
                      progress=False, backend=always_good)
