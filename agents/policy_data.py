"""Policy training data from search trees: D+ for expert iteration (SFT) and step pairs for DPO.

Every example is exactly what the policy sees at that step in the environment: the prompt is the
step request of the run's template (:meth:`codegym.prompts.PromptTemplate.request`) for the
problem's public view and the trajectory so far, rendered as the backends render it (the chat
template with the generation prompt, then the step's assistant prefix); the target is the step as
the model wrote it after that prefix, ending with the end-of-turn token. Training and inference
cannot drift apart: a test renders the environment's own observations through real backends and
compares them with these rows.

* **D+** (O1-CODER's policy initialisation; rStar-Math's "top-2 traces by Q"): per problem, the
  root-to-leaf paths that end in a verified program passing all its reward tests, ranked by the
  mean Q of their steps; the best ``top_paths`` give one SFT row per step.
* **Step pairs**: sibling steps at the same prefix, the higher-Q one chosen
  (:func:`codegym.prm.labels.sibling_pairs`, margin and text distance filters).

Rows (``datasets.Dataset.from_list`` loads them; TRL reads ``prompt``/``completion`` for SFT and
``prompt``/``chosen``/``rejected`` for DPO; the rest is provenance): ``problem_id``, ``kind``,
``q`` or ``margin``, ``split``, ``reward_tests``, ``policy`` (the model that searched).

Only a run on a training split gives rows: the trees' values come from reward tests, and a split
marked for training is the only one whose problems may shape the policy.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from codegym.envs.steps import format_step, format_trajectory
from codegym.llm.base import GenerationRequest
from codegym.prm.labels import Node, load_tree, sibling_pairs
from codegym.prompts import PromptTemplate, load_template
from codegym.training import TrainerOptions

SFT_COLUMNS = ("prompt", "completion")
DPO_COLUMNS = ("prompt", "chosen", "rejected")


class ChatRenderer:
    """Renders a step request as text, the way the transformers and CTranslate2 backends do: the
    chat template where the tokenizer has one (``chat``), the template's plain form otherwise."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.chat = tokenizer.chat_template is not None
        self.end_of_turn = tokenizer.eos_token or ""

    def __call__(self, request: GenerationRequest) -> str:
        if request.messages:
            base = self.tokenizer.apply_chat_template(list(request.messages), tokenize=False, add_generation_prompt=True)
        else:
            base = request.prompt
        return base + request.assistant_prefix


@dataclass
class TreeRun:
    """A ``codegym bench`` run's trees with the public problems they searched."""

    split: str | None
    policy: str
    reward_tests: str
    template: PromptTemplate
    trees: list[tuple[object, Node]]  # (Problem, root)


def load_training_run(run: str | Path, allow_evaluation: bool = False) -> TreeRun:
    """The trees of a bench run on a training split (``allow_evaluation`` to take any split)."""
    from codegym.envs import env_dataset

    run = Path(run)
    if not (run / "config.json").is_file():
        raise FileNotFoundError("no config.json in %s (a codegym bench output folder)" % run)
    config = json.loads((run / "config.json").read_text())["config"]
    options = {k: config[k] for k in ("data_path", "split") if config.get(k) is not None}
    problems = {p.id: p for p in env_dataset(config["env"], **options).problems}
    trees = []
    for path in sorted((run / "trees").glob("*.json")):
        meta, root = load_tree(path)
        problem = problems.get(meta.get("problem_id"))
        if problem is None:
            raise ValueError("%s: problem %r is not in %s" % (path, meta.get("problem_id"), config["env"]))
        if not problem.training and not allow_evaluation:
            raise ValueError("%s searched %s, not a training split: policy data comes from a training split "
                             "(e.g. MBPP train)" % (run, config.get("split") or config["env"]))
        trees.append((problem, root))
    if not trees:
        raise ValueError("no trees in %s/trees" % run)
    return TreeRun(config.get("split"), config.get("policy", "?"), "public", load_template(config.get("template", "pseudocode")),
                   trees)


def step_completion(template: PromptTemplate, kind: str, text: str) -> str | None:
    """What the model wrote after the step's assistant prefix (None: the step does not start with it)."""
    action, prefix = format_step(kind, text), template.prefixes[kind]
    return action[len(prefix):] if action.startswith(prefix) else None


def step_prompt(template: PromptTemplate, render: Callable[[GenerationRequest], str], problem, path: list[Node]) -> str:
    """The rendered request for the last step of ``path``, after the steps before it."""
    from codegym.envs import render_problem

    trajectory = format_trajectory([(n.kind, n.text) for n in path[:-1]])
    return render(template.request(render_problem(problem), trajectory, path[-1].kind, stdio=problem.kind == "stdio",
                                   chat=getattr(render, "chat", True)))


def _leaves(node: Node, prefix: list[Node]):
    for child in node.children:
        path = prefix + [child]
        if child.terminal:
            yield path
        yield from _leaves(child, path)


def solved_problem_ids(run_dir: str | Path, success: float = 1.0) -> list[str]:
    """The problems of a training run whose trees hold a successful path: where on-policy RL gets
    a learning signal from a small model."""
    run = load_training_run(run_dir)
    return [problem.id for problem, root in run.trees
            if any(p[-1].reward is not None and p[-1].reward >= success for p in _leaves(root, []))]


def dplus_rows(run: TreeRun, render: ChatRenderer, top_paths: int = 2, success: float = 1.0) -> list[dict]:
    """SFT rows: every step of the ``top_paths`` best successful paths of each problem (over all
    its trees: a run with several seeds or budgets has several), by mean Q."""
    rows, seen = [], set()
    by_problem: dict[str, tuple[object, list[list[Node]]]] = {}
    for problem, root in run.trees:
        paths = [p for p in _leaves(root, []) if p[-1].reward is not None and p[-1].reward >= success]
        by_problem.setdefault(problem.id, (problem, []))[1].extend(paths)
    for problem, paths in by_problem.values():
        paths.sort(key=lambda p: -sum(n.value for n in p) / len(p))
        for path in paths[:top_paths]:
            q = sum(n.value for n in path) / len(path)
            for depth in range(1, len(path) + 1):
                node = path[depth - 1]
                completion = step_completion(run.template, node.kind, node.text)
                if completion is None or node.kind in run.template.fixed_steps:
                    continue
                prompt = step_prompt(run.template, render, problem, path[:depth])
                if (prompt, completion) in seen:
                    continue
                seen.add((prompt, completion))
                rows.append({"prompt": prompt, "completion": completion + render.end_of_turn, "problem_id": problem.id,
                             "kind": node.kind, "q": round(q, 6), "split": run.split, "reward_tests": run.reward_tests,
                             "policy": run.policy})
    return rows


def step_pair_rows(run: TreeRun, render: ChatRenderer, margin: float = 0.5, min_distance: float = 0.1) -> list[dict]:
    """DPO rows: sibling steps at one prefix, the higher-Q step chosen."""
    rows = []
    for problem, root in run.trees:
        for prefix, good, bad in sibling_pairs(root, margin, min_distance):
            if good.kind != bad.kind or good.kind in run.template.fixed_steps:
                continue  # a refine against a translate is no choice the policy makes in one request
            chosen = step_completion(run.template, good.kind, good.text)
            rejected = step_completion(run.template, bad.kind, bad.text)
            if chosen is None or rejected is None:
                continue
            rows.append({"prompt": step_prompt(run.template, render, problem, prefix + [good]),
                         "chosen": chosen + render.end_of_turn, "rejected": rejected + render.end_of_turn,
                         "problem_id": problem.id, "kind": good.kind, "margin": round(good.value - bad.value, 6),
                         "split": run.split, "reward_tests": run.reward_tests, "policy": run.policy})
    return rows


def write_rows(rows: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fh.writelines(json.dumps(row) + "\n" for row in rows)


@dataclass
class TreeTrainConfig(TrainerOptions):
    """What every policy trainer on search trees takes (SFT on D+, DPO on step pairs)."""

    out: str = "results/policy"
    run: str = ""  # a codegym bench output folder whose trees searched a training split


def train_on_trees(method: str, config: TreeTrainConfig, build: Callable[[TreeRun, ChatRenderer], list[dict]]) -> dict:
    """Build rows from ``config.run``'s trees (written to ``OUT/data.jsonl``), then train with TRL
    (:func:`codegym.training.train_trl`): config written, resumable, ``final/`` and ``ct2/`` saved."""
    from transformers import AutoTokenizer

    from codegym.training import finish, model_path, prepare_output, require, train_trl, write_summary

    require("datasets", "trl")
    run = load_training_run(config.run)
    model = model_path(config.model)
    rows = build(run, ChatRenderer(AutoTokenizer.from_pretrained(model)))
    if not rows:
        raise ValueError("no %s rows in %s: its trees hold no usable %s" % (
            method, config.run, "successful paths" if method == "sft" else "step pairs"))
    out = prepare_output(config.out, config)
    write_rows(rows, out / "data.jsonl")
    columns = SFT_COLUMNS if method == "sft" else DPO_COLUMNS
    trainer = train_trl(method, [{k: row[k] for k in columns} for row in rows], config, out, model)
    summary = finish(trainer, config, out)
    summary.update(rows=len(rows), problems=len({row["problem_id"] for row in rows}))
    return write_summary(out, summary)
