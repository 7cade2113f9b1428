"""Best-of-N reranking: does a PRM pick the right program among a problem's candidates?

Candidates are the verified programs (terminal translate nodes, with their reasoning steps and
public-test reward) in the trees of a ``codegym bench`` run, up to ``n`` distinct programs per
problem in a fixed order. Each selector picks one candidate per problem without hidden tests:

* ``random``: any candidate (its expected pass rate is the fraction of candidates that pass);
* ``public``: the highest public-test reward;
* ``majority``: the most common outputs on the public inputs (:func:`agents.selectors.majority_vote`);
* each PRM spec (``logprob:PATH`` is the untrained baseline): the highest aggregated step score.

Ties are split evenly: a selector's value on a problem is the fraction of passing candidates among
its tied best, so no tie-break order flatters a selector. Where all of a problem's candidates
share one verdict every selector scores that verdict, so PRMs score only the other problems.
Hidden verdicts (the judge) only score the picks. Reported over every problem and over the
*disagreeing* subset (candidates whose hidden verdicts differ, the only problems where choosing
matters), with 95% intervals (problems resampled) and a paired sign-flip test against ``public``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..envs.steps import format_step
from .labels import Node, load_tree


@dataclass
class Candidate:
    problem_id: str
    steps: list[tuple[str, str]]
    code: str
    public_reward: float
    passed: bool = False  # hidden verdict: scores the picks, never seen by a selector


def _terminals(node: Node, prefix: list[Node]) -> list[list[Node]]:
    out = []
    for child in node.children:
        path = prefix + [child]
        if child.terminal and child.kind == "translate" and child.reward is not None:
            out.append(path)
        out += _terminals(child, path)
    return out


def collect_candidates(run: str | Path, n: int = 8) -> dict[str, list[Candidate]]:
    """Up to ``n`` distinct verified programs per problem from a bench run's trees (tree files in
    name order, nodes in creation order)."""
    found: dict[str, list[Candidate]] = {}
    for path in sorted((Path(run) / "trees").glob("*.json")):
        meta, root = load_tree(path)
        problem_id = str(meta.get("problem_id"))
        pool = found.setdefault(problem_id, [])
        for nodes in sorted(_terminals(root, []), key=lambda p: p[-1].id):
            code = nodes[-1].text
            if len(pool) < n and all(c.code != code for c in pool):
                pool.append(Candidate(problem_id, [(x.kind, x.text) for x in nodes], code, float(nodes[-1].reward)))
    return {pid: pool for pid, pool in found.items() if pool}


def tie_split_value(scores: Sequence[float], passed: Sequence[bool]) -> float:
    """The expected hidden pass of picking the best score, ties broken uniformly at random."""
    best = max(scores)
    tied = [p for s, p in zip(scores, passed) if s == best]
    return sum(tied) / len(tied)


def rerank(run: str | Path, prm_specs: Sequence[str], out: str | Path, n: int = 8, how: str = "mean",
           seed: int = 0, progress: bool = True) -> dict:
    """Score every selector on the run's candidates; writes ``candidates.jsonl`` and ``rerank.json``."""
    from agents.selectors import PRM_AGGREGATES, majority_vote
    from agents.selectors import Candidate as SelectorCandidate

    from ..envs import env_dataset, render_problem
    from ..judge import shared_sandbox
    from ..stats import cluster_bootstrap_interval, sign_flip_p
    from .model import load_prm

    if how not in PRM_AGGREGATES:
        raise ValueError("aggregate must be one of %s" % ", ".join(PRM_AGGREGATES))
    combine = PRM_AGGREGATES[how]
    run, out = Path(run), Path(out)
    config = json.loads((run / "config.json").read_text())["config"]
    options = {k: config[k] for k in ("data_path", "split") if config.get(k) is not None}
    dataset = env_dataset(config["env"], training=False, **options)
    problems = dataset.by_id()
    candidates = collect_candidates(run, n)
    if not candidates:
        raise ValueError("no verified programs in %s/trees" % run)
    flat = [c for pool in candidates.values() for c in pool]
    for candidate, verdict in zip(flat, dataset.judge().evaluate_many([(c.problem_id, c.code) for c in flat])):
        candidate.passed = verdict.passed
    values: dict[str, dict[str, float]] = {"random": {}, "public": {}, "majority": {}}
    for pid, pool in candidates.items():
        passed = [c.passed for c in pool]
        values["random"][pid] = sum(passed) / len(passed)
        values["public"][pid] = tie_split_value([c.public_reward for c in pool], passed)
        picked = majority_vote([SelectorCandidate(c.code, c.public_reward, c.steps) for c in pool], problems[pid],
                               shared_sandbox())
        values["majority"][pid] = float(passed[picked])
    # Only where the candidates' verdicts differ can a pick matter: elsewhere every selector's value
    # is that common verdict, so only those problems' candidates are scored.
    disagreeing = [pid for pid, pool in candidates.items() if len({c.passed for c in pool}) > 1]
    scored = [c for pid in disagreeing for c in candidates[pid]]
    for spec in prm_specs:
        prm = load_prm(spec)
        items = [(render_problem(problems[c.problem_id]), [format_step(k, t) for k, t in c.steps]) for c in scored]
        scores = iter(prm.score_many(items, progress=progress))
        values[spec] = {pid: float(pool[0].passed) for pid, pool in candidates.items()}
        for pid in disagreeing:
            pool = candidates[pid]
            step_scores = [next(scores) for _ in pool]
            values[spec][pid] = tie_split_value([combine(s) for s in step_scores], [c.passed for c in pool])
    report = {"run": str(run), "n": n, "aggregate": how, "problems": len(candidates),
              "candidates": len(flat), "mean_candidates": len(flat) / len(candidates),
              "problems_with_a_passing_candidate": sum(any(c.passed for c in p) for p in candidates.values()),
              "disagreeing": len(disagreeing), "selectors": {}}
    for subset_name, subset in (("all", list(candidates)), ("disagreeing", disagreeing)):
        for name, by_problem in values.items():
            own = [by_problem[pid] for pid in subset]
            entry = report["selectors"].setdefault(name, {})
            if not own:
                entry[subset_name] = None
                continue
            diffs = [by_problem[pid] - values["public"][pid] for pid in subset]
            entry[subset_name] = {
                "pass@1": sum(own) / len(own), "ci": list(cluster_bootstrap_interval([[v] for v in own], seed=seed)),
                "vs_public": sum(diffs) / len(diffs),
                "vs_public_ci": list(cluster_bootstrap_interval([[d] for d in diffs], seed=seed)),
                "p_vs_public": sign_flip_p(diffs, seed=seed)}
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "candidates.jsonl", "w") as fh:
        fh.writelines(json.dumps(c.__dict__) + "\n" for c in flat)
    (out / "rerank.json").write_text(json.dumps({**report, "by_problem": values}, indent=2) + "\n")
    return report


def format_rerank(report: dict) -> str:
    lines = ["best-of-%d reranking on %d problems (%d candidates; %d with a passing candidate; %d disagreeing)"
             % (report["n"], report["problems"], report["candidates"], report["problems_with_a_passing_candidate"],
                report["disagreeing"]),
             "%-32s %-26s %-26s %s" % ("selector", "pass@1 all [95% CI]", "disagreeing [95% CI]", "vs public (disagr.), p")]
    for name, entry in report["selectors"].items():
        cells = []
        for subset in ("all", "disagreeing"):
            e = entry.get(subset)
            cells.append("-" if e is None else "%.3f [%.3f, %.3f]" % (e["pass@1"], *e["ci"]))
        d = entry.get("disagreeing")
        cells.append("-" if d is None else "%+.3f, p=%.3f" % (d["vs_public"], d["p_vs_public"]))
        lines.append("%-32s %-26s %-26s %s" % (name, *cells))
    return "\n".join(lines)
