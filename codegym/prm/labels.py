"""Process-reward labels from search trees (the JSON trees that agents and ``codegym bench`` write).

Every label comes from a node's value in the tree, and every node's value comes from reward-test
verdicts the environment gave during search (public, generated, or a training split's full test
list); hidden tests never enter a tree, so they never enter a label.

Point-wise labels, one per step prefix (root -> node):
  * ``q``: the node's value, accumulated reward / visits (O1-CODER's and rStar's soft value);
  * ``tree_mc_soft`` / ``tree_mc_hard``: over the verified programs below the node, the fraction
    that pass all their reward tests, and whether any does (Math-Shepherd's soft and hard labels,
    with the tree's own translates as the completions).

Monte-Carlo labels from dedicated rollouts (:func:`rollout_rows`): from every reasoning prefix
(define, refine) of a tree, ``k`` translate steps are sampled in one batched generation and run on
the reward tests: ``mc_soft`` is the fraction that pass, ``mc_hard`` whether any does; a translate
step's own label is its verdict.

Pair-wise labels: at each parent, the (up to) two best siblings by Q against the two worst, kept
when the Q margin is at least ``margin`` and the step texts differ by at least ``min_distance``
(1 - difflib ratio), as in rStar-Math's preference pairs.

Formats, both loadable straight into ``datasets.Dataset.from_list`` for TRL:
  * stepwise: ``{"prompt", "completions": [step texts], "labels": [float], ...provenance}``, one row
    per root-to-node path (TRL's stepwise supervision; soft labels are floats);
  * pairs: ``{"prompt", "chosen", "rejected", "margin", ...provenance}`` (TRL's RewardTrainer with a
    margin column), where the prompt holds the problem and the shared prefix.
Provenance on every row: ``problem_id``, ``split``, ``label_source``, ``reward_tests`` and ``policy``.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..envs.steps import format_step, format_trajectory, parse_step

POINT_LABELS = ("q", "tree_mc_soft", "tree_mc_hard")


@dataclass(frozen=True)
class Provenance:
    """Where a tree's labels come from; written on every row."""

    split: str | None
    reward_tests: str
    policy: str


@dataclass
class Node:
    id: int
    kind: str
    text: str
    visits: int
    value: float
    reward: float | None
    terminal: bool
    children: list[Node]

    @classmethod
    def from_dict(cls, data: dict) -> Node:
        return cls(int(data["id"]), data["kind"], data["text"], int(data.get("visits", 0)),
                   float(data.get("value", 0.0)), data.get("reward"), bool(data.get("terminal")),
                   [cls.from_dict(child) for child in data.get("children", [])])


def terminal_rewards(node: Node) -> list[float]:
    """Rewards of the verified programs (terminal translate nodes) in ``node``'s subtree."""
    own = [float(node.reward)] if node.terminal and node.reward is not None else []
    return own + [r for child in node.children for r in terminal_rewards(child)]


def point_label(node: Node, source: str) -> float | None:
    """The node's label by ``source`` (None where the tree holds no evidence for it)."""
    if source == "q":
        return node.value if node.visits > 0 else None
    rewards = terminal_rewards(node)
    if not rewards:
        return None
    passes = [r >= 1.0 for r in rewards]
    if source == "tree_mc_soft":
        return sum(passes) / len(passes)
    if source == "tree_mc_hard":
        return float(any(passes))
    raise ValueError("unknown label source %r; known: %s" % (source, ", ".join(POINT_LABELS)))


def _paths(node: Node, prefix: list[Node]) -> Iterable[list[Node]]:
    for child in node.children:
        path = prefix + [child]
        yield path
        yield from _paths(child, path)


def stepwise_rows(root: Node, prompt: str, problem_id: str, provenance: Provenance, source: str = "q") -> list[dict]:
    """One row per root-to-node path whose every step has a label."""
    rows = []
    for path in _paths(root, []):
        labels = [point_label(node, source) for node in path]
        if any(label is None for label in labels):
            continue
        rows.append({"prompt": prompt, "completions": [format_step(n.kind, n.text) for n in path], "labels": labels,
                     "problem_id": problem_id, "split": provenance.split, "label_source": source,
                     "reward_tests": provenance.reward_tests, "policy": provenance.policy})
    return rows


def text_distance(a: str, b: str) -> float:
    return 1.0 - difflib.SequenceMatcher(None, a, b).ratio()


def sibling_pairs(root: Node, margin: float = 0.5, min_distance: float = 0.1,
                  top: int = 2) -> list[tuple[list[Node], Node, Node]]:
    """(shared prefix, better step, worse step) triples: at each parent, the ``top`` best visited
    siblings by Q against the ``top`` worst, kept when the Q margin is at least ``margin`` and the
    step texts differ by at least ``min_distance``. The PRM's pairs and the policy's DPO pairs."""
    triples = []
    stack: list[tuple[Node, list[Node]]] = [(root, [])]
    while stack:
        parent, prefix = stack.pop()
        scored = sorted((c for c in parent.children if c.visits > 0), key=lambda c: (-c.value, c.id))
        best, worst = scored[:top], scored[::-1][:top]
        for good in best:
            for bad in worst:
                if good is bad or good.value - bad.value < margin:
                    continue
                if text_distance(good.text, bad.text) < min_distance:
                    continue
                triples.append((prefix, good, bad))
        stack.extend((child, prefix + [child]) for child in parent.children)
    return triples


def pair_rows(root: Node, prompt: str, problem_id: str, provenance: Provenance, margin: float = 0.5,
              min_distance: float = 0.1, top: int = 2) -> list[dict]:
    """Sibling preference pairs (:func:`sibling_pairs`) as PRM rows: the prompt holds the problem
    and the shared prefix."""
    rows = []
    for prefix, good, bad in sibling_pairs(root, margin, min_distance, top):
        context = prompt + "".join("\n" + format_step(n.kind, n.text) for n in prefix)
        rows.append({"prompt": context, "chosen": format_step(good.kind, good.text),
                     "rejected": format_step(bad.kind, bad.text), "margin": good.value - bad.value,
                     "problem_id": problem_id, "split": provenance.split, "label_source": "q_pair",
                     "reward_tests": provenance.reward_tests, "policy": provenance.policy})
    return rows


def rollout_labels(root: Node, problem, policy, sandbox, tests: list, k: int = 4, temperature: float = 0.8,
                   seed: int = 0) -> dict[int, tuple[float, float]]:
    """(soft, hard) Monte-Carlo label of every node of the tree: ``k`` sampled translates from each
    reasoning prefix, run on ``tests`` (the reward tests); a translate node gets its own verdict."""
    from ..envs import render_problem

    prefixes, translates = [], []
    for path in _paths(root, []):
        (prefixes if path[-1].kind in ("define", "refine") else translates).append(path)
    text = render_problem(problem)
    items = [(text, format_trajectory([(n.kind, n.text) for n in path]), "translate", problem.kind == "stdio")
             for path in prefixes]
    proposals = policy.propose_many(items, n=k, temperature=temperature, seed=seed) if items else []
    runs, owners = [], []
    for index, options in enumerate(proposals):
        for proposal in options:
            try:
                code = parse_step(proposal.action).text
            except ValueError:
                continue
            runs.append((problem.program_for_tests(code), tests))
            owners.append(("prefix", index))
    for index, path in enumerate(translates):
        runs.append((problem.program_for_tests(path[-1].text), tests))
        owners.append(("translate", index))
    verdicts = sandbox.run_batch(runs) if runs else []
    passes: dict[tuple, list[bool]] = {}
    for owner, result in zip(owners, verdicts):
        passes.setdefault(owner, []).append(result.passed)
    labels = {}
    for index, path in enumerate(prefixes):
        got = passes.get(("prefix", index), [])
        labels[path[-1].id] = (sum(got) / k, float(any(got)))
    for index, path in enumerate(translates):
        passed = float(all(passes.get(("translate", index), [False])))
        labels[path[-1].id] = (passed, passed)
    return labels


def rollout_rows(root: Node, prompt: str, problem_id: str, provenance: Provenance,
                 labels: dict[int, tuple[float, float]]) -> dict[str, list[dict]]:
    """Stepwise rows of the ``mc_soft`` and ``mc_hard`` labels of :func:`rollout_labels`."""
    rows: dict[str, list[dict]] = {"mc_soft": [], "mc_hard": []}
    for path in _paths(root, []):
        if any(node.id not in labels for node in path):
            continue
        for which, source in enumerate(("mc_soft", "mc_hard")):
            rows[source].append({"prompt": prompt, "completions": [format_step(n.kind, n.text) for n in path],
                                 "labels": [labels[n.id][which] for n in path], "problem_id": problem_id,
                                 "split": provenance.split, "label_source": source,
                                 "reward_tests": provenance.reward_tests, "policy": provenance.policy})
    return rows


def load_tree(path: str | Path) -> tuple[dict, Node]:
    data = json.loads(Path(path).read_text())
    return data.get("meta", {}), Node.from_dict(data["root"])


def label_run(run: str | Path, out: str | Path, margin: float = 0.5, min_distance: float = 0.1, rollouts: int = 0,
              policy=None, temperature: float = 0.8, seed: int = 0, sandbox=None) -> dict:
    """Write the labels of every tree of a ``codegym bench`` run into ``out``: one
    ``stepwise_<source>.jsonl`` per point-label source and ``pairs.jsonl``; with ``rollouts`` k > 0
    and a ``policy`` (a StepPolicy), also ``stepwise_mc_soft/hard.jsonl`` from k sampled translates
    per reasoning prefix, run on the public tests. Returns the counts."""
    from ..envs import env_dataset, render_problem
    from ..judge import shared_sandbox

    run, out = Path(run), Path(out)
    config_path = run / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError("no config.json in %s (a codegym bench output folder)" % run)
    config = json.loads(config_path.read_text())["config"]
    options = {k: config[k] for k in ("data_path", "split") if config.get(k) is not None}
    problems = {p.id: p for p in env_dataset(config["env"], training=False, **options).problems}
    provenance = Provenance(config.get("split"), "public", config.get("policy", "?"))
    if rollouts and policy is None:
        raise ValueError("Monte-Carlo rollouts need a policy")
    sources = POINT_LABELS + (("mc_soft", "mc_hard") if rollouts else ())
    trees = sorted((run / "trees").glob("*.json"))
    if not trees:
        raise ValueError("no trees in %s/trees" % run)
    rows: dict[str, list[dict]] = {source: [] for source in sources}
    pairs: list[dict] = []
    for path in trees:
        meta, root = load_tree(path)
        problem = problems.get(meta.get("problem_id"))
        if problem is None:
            raise ValueError("%s: problem %r is not in %s" % (path, meta.get("problem_id"), config["env"]))
        prompt = render_problem(problem)
        for source in POINT_LABELS:
            rows[source] += stepwise_rows(root, prompt, problem.id, provenance, source)
        pairs += pair_rows(root, prompt, problem.id, provenance, margin, min_distance)
        if rollouts:
            labels = rollout_labels(root, problem, policy, sandbox or shared_sandbox(), list(problem.public_tests),
                                    rollouts, temperature, seed)
            for source, items in rollout_rows(root, prompt, problem.id, provenance, labels).items():
                rows[source] += items
    out.mkdir(parents=True, exist_ok=True)
    for name, items in [("stepwise_%s" % s, r) for s, r in rows.items()] + [("pairs", pairs)]:
        with open(out / (name + ".jsonl"), "w") as fh:
            fh.writelines(json.dumps(item) + "\n" for item in items)
    return {"trees": len(trees), **{"stepwise_" + s: len(r) for s, r in rows.items()}, "pairs": len(pairs),
            "out": str(out)}
