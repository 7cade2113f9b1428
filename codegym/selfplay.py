"""The self-play loop (O1-CODER's Figure 2): search, labels, PRM and policy training, evaluation,
round after round; ``codegym selfplay``.

Round r, in ``OUT/round-r/``:

0. ``tests``: with ``tcg`` set, the TCG writes tests for the searched training problems, labelled by
   their reference solutions (``tests.jsonl``); search, labels and GRPO then reward on public +
   generated tests. Refreshed every round.
1. ``search``: MCTS on the training split with round r's policy (and, with ``search_value="prm"``,
   round r-1's PRM as its value), on the public reward tests; a ``codegym bench`` run in
   ``search/`` (on a Ray cluster with ``ray``).
2. ``labels``: PRM labels from those trees (``codegym prm data``) in ``labels/``.
3. ``prm``: the PRM trained on them, starting from round r-1's PRM, in ``prm/``.
4. ``policy``: SFT on D+ from the trees (then DPO on step pairs if ``dpo_steps``, then GRPO on the
   problems the search solved if ``grpo_steps``), starting from round r's policy, in ``policy/``
   (``policy-dpo/``, ``policy-grpo/``); round r+1 searches with it.
5. ``eval``: the fixed protocol on the evaluation split's hidden tests: greedy and MCTS at
   ``eval_budget`` tokens (pass@1, tokens), with the new policy; the PRM's step AUC on labels from
   the evaluation MCTS trees (public tests only; a seeded sample of ``prm_eval_sample`` steps).
6. ``report``: the round's metrics, appended to ``OUT/metrics.json``, and the plot.

Resumable at step granularity: a finished step leaves ``round-r/<step>.json`` and is never redone;
a step cut short resumes inside (bench rows are kept, trainers continue from their checkpoints).
Every artifact records the commit and package versions (``OUT/config.json``, each bench's config).
The hidden tests of the evaluation split only score round answers; no label or training row sees
them.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

STEPS = ("tests", "search", "labels", "prm", "policy", "eval", "report")
# Fields added after runs were written without them, and the value such a run behaved as.
BEFORE_FIELDS = {"prm_eval_sample": None}


@dataclass
class SelfPlayConfig:
    """One self-play run; a file of these fields (TOML/JSON) is a ``--config``."""

    out: str = "results/selfplay"
    rounds: int = 2
    env: str = "CodeGym/MBPP-v0"
    data_path: str | None = None
    train_split: str | None = "train"
    eval_split: str | None = "validation"
    train_problems: int | None = 40  # the training split's first N problems searched per round (None: all)
    eval_problems: int | None = None  # the evaluation split's first N problems (None: all)
    model: str = "smollm2"  # round 0's policy: a transformers folder, or smollm2 (the embedded weights)
    tcg: str | None = None  # a TCG model spec (smollm2, ct2:PATH, ...) writing reward tests each round; None: public only
    tcg_count: int = 8  # tests asked per problem
    tcg_temperature: float = 0.8  # above 0 each round samples new tests (seeded by the round); 0: the same every round
    search_budget: int = 1000
    search_value: str = "rollout"  # MCTS value in search: "rollout", or "prm" (round r-1's PRM)
    eval_budget: int = 1000
    eval_mcts: bool = True
    parallel: int = 6
    ray: str | None = None  # the search phase on a Ray cluster ("local", "auto", an address); None: here
    prm_kind: str = "token"
    prm_labels: str = "tree_mc_soft"
    prm_steps: int = 24
    sft_steps: int = 24
    sft_success: float = 1.0  # the least reward of a D+ path (the smoke preset takes every verified program)
    dpo_steps: int = 0
    grpo_steps: int = 0  # GRPO after SFT (and DPO), on the problems the round's search solved
    grpo_episodes: int = 4  # the GRPO group: episodes per problem
    grpo_learning_rate: float = 5e-6
    batch_size: int = 4
    learning_rate: float = 2e-5
    prm_eval_sample: int | None = 200  # evaluation steps the PRM's AUC is measured on (None: all)
    seed: int = 0
    extra: dict = field(default_factory=dict)  # free-form notes kept with the config

    def __post_init__(self) -> None:
        if self.rounds < 1 or self.search_budget < 1 or self.eval_budget < 1:
            raise ValueError("rounds and budgets must be at least 1")
        if self.search_value not in ("rollout", "prm"):
            raise ValueError("search_value must be 'rollout' or 'prm'")
        if min(self.prm_steps, self.sft_steps, self.tcg_count) < 1 or min(self.dpo_steps, self.grpo_steps) < 0:
            raise ValueError("prm_steps, sft_steps and tcg_count must be at least 1, dpo_steps and grpo_steps at least 0")
        if self.grpo_episodes < 2:
            raise ValueError("grpo_episodes must be at least 2 (a GRPO group)")
        if self.tcg_temperature < 0:
            raise ValueError("tcg_temperature must be at least 0")
        if self.prm_eval_sample is not None and self.prm_eval_sample < 1:
            raise ValueError("prm_eval_sample must be at least 1 (None: every step)")


def smoke(out: str, **overrides) -> SelfPlayConfig:
    """A round in minutes on 2 cores: a few MBPP problems, small budgets, a few training steps."""
    options = dict(out=out, rounds=1, train_problems=4, eval_problems=3, search_budget=400, eval_budget=300,
                   eval_mcts=True, parallel=4, prm_steps=2, sft_steps=2, sft_success=0.0, dpo_steps=2, batch_size=2)
    return SelfPlayConfig(**{**options, **overrides})


def _write_json(path: Path, payload) -> None:
    """Atomically: a reader (or a resumed run) never sees half a file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2))
    os.replace(tmp, path)


class SelfPlay:
    """Runs (or resumes) the loop of a config; each step is a method of the same name."""

    def __init__(self, config: SelfPlayConfig, progress: bool = True, log=print, backend=None):
        self.config, self.progress, self.log = config, progress, log
        self.backend = backend  # a backend object in place of the rounds' policy specs (tests pass a scripted one)
        self.out = Path(config.out)

    # -- the run and its resumption ---------------------------------------------------------------------
    def run(self) -> dict:
        from .bench import run_metadata

        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / "config.json"
        self.check_stored_config(path)
        self.check_splits()
        _write_json(path, {"config": asdict(self.config), "run": run_metadata()})
        for round_index in range(self.config.rounds):
            for step in STEPS:
                self._step(round_index, step)
        return self.write_metrics()  # on every run, so a resumed run's report is current

    def check_stored_config(self, path: Path) -> None:
        """One output folder holds one configuration: only ``rounds`` may change on a rerun."""
        if not path.exists():
            return
        mine, defaults = asdict(self.config), asdict(SelfPlayConfig())
        stored = json.loads(path.read_text())["config"]
        # a field added since that run was written: what the run behaved as
        theirs = {k: stored.get(k, BEFORE_FIELDS.get(k, defaults[k])) for k in mine}
        changed = sorted(k for k in mine if k != "rounds" and theirs[k] != mine[k])
        if changed:
            raise ValueError("%s holds a self-play run with other settings (%s); rerun with those or use another --out"
                             % (self.out, ", ".join("%s=%r, not %r" % (k, theirs[k], mine[k]) for k in changed)))

    def check_splits(self) -> None:
        """Before any work: search and training on a training split, evaluation on another."""
        c = self.config
        if c.train_split == c.eval_split:
            raise ValueError("the evaluation split must differ from the training split (both %r)" % c.train_split)
        self.train_problems()

    def train_problems(self) -> list:
        """The training split's problems (with their references), the first ``train_problems``; an
        evaluation split is refused."""
        from .envs import training_problems

        c = self.config
        return training_problems(c.env, c.data_path, c.train_split)[: c.train_problems]

    def _step(self, round_index: int, step: str) -> dict:
        folder = self.round_dir(round_index)
        marker = folder / ("%s.json" % step)
        if marker.exists():
            return json.loads(marker.read_text())
        folder.mkdir(parents=True, exist_ok=True)
        self.log("selfplay: round %d, %s" % (round_index, step))
        start = time.monotonic()
        result = getattr(self, step)(round_index)
        result = {"step": step, "round": round_index, "minutes": round((time.monotonic() - start) / 60, 2), **result}
        _write_json(marker, result)
        return result

    def round_dir(self, round_index: int) -> Path:
        return self.out / ("round-%d" % round_index)

    def done(self, round_index: int, step: str) -> dict:
        return json.loads((self.round_dir(round_index) / ("%s.json" % step)).read_text())

    # -- what each round hands the next -----------------------------------------------------------------
    def policy_model(self, round_index: int) -> str:
        """The transformers folder round ``round_index`` searches with (round 0: the config's model)."""
        if round_index == 0:
            return self.config.model
        return self.done(round_index - 1, "policy")["model"]

    def policy_spec(self, round_index: int) -> str:
        model = self.policy_model(round_index)
        if round_index == 0:
            return model if model == "smollm2" else "hf:%s" % model
        return self.done(round_index - 1, "policy")["spec"]

    def prm_model(self, round_index: int) -> str | None:
        return self.done(round_index - 1, "prm").get("model") if round_index > 0 else None

    def generated_tests(self, round_index: int) -> str | None:
        """The round's TCG test file (None without ``tcg``)."""
        return self.done(round_index, "tests").get("out")

    def reward_options(self, round_index: int) -> dict:
        """The environment options that reward the round's training on public + generated tests."""
        tests = self.generated_tests(round_index)
        return {"reward_tests": "public+generated", "generated_tests": tests} if tests else {}

    # -- steps --------------------------------------------------------------------------------------------
    def tests(self, round_index: int) -> dict:
        c = self.config
        if c.tcg is None:
            return {"skipped": "no tcg: search rewards on the public tests"}
        from .llm import load
        from .tcg import LLMTestCaseGenerator, generate_test_file

        problems = [p for p in self.train_problems() if p.kind == "function"]
        generator = LLMTestCaseGenerator(self.backend or load(c.tcg), count=c.tcg_count, temperature=c.tcg_temperature,
                                         seed=c.seed + round_index)
        return generate_test_file(generator, problems, self.round_dir(round_index) / "tests.jsonl", progress=self.progress)

    def _bench(self, round_index: int, name: str, split: str | None, problems: int | None, agents: dict,
               budget: int, policy: str, prm: str | None, training: bool) -> dict:
        from .bench import BenchConfig, run_bench

        # search samples afresh each round; the evaluation is one fixed protocol, so rounds pair up item by item
        rewards = self.reward_options(round_index) if training else {}
        seed = self.config.seed + (round_index if training else 0)
        config = BenchConfig(**rewards, env=self.config.env, data_path=self.config.data_path, split=split, agents=agents,
                             policy=policy, budget_tokens=[budget], limit=problems, seeds=[seed],
                             out=str(self.round_dir(round_index) / name), aspr_samples=0, parallel=self.config.parallel,
                             ray=self.config.ray if training else None, prm=prm, cache=False)
        return run_bench(config, progress=self.progress, backend=self.backend)

    def search(self, round_index: int) -> dict:
        c = self.config
        agent = {"agent": "mcts", "value": c.search_value}
        prm = None
        if c.search_value == "prm":
            model = self.prm_model(round_index)
            if model is None:  # round 0 has no PRM yet: rollouts
                agent["value"] = "rollout"
            else:
                prm = "%s:%s" % (c.prm_kind, model)
        summary = self._bench(round_index, "search", c.train_split, c.train_problems, {"search": agent}, c.search_budget,
                              self.policy_spec(round_index), prm, training=True)
        row = summary["table"][0]
        return {"problems": row["problems"], "hidden_pass@1_train": row["pass@1"], "policy": self.policy_spec(round_index)}

    def labels(self, round_index: int) -> dict:
        from .prm.labels import label_run

        folder = self.round_dir(round_index)
        return label_run(folder / "search", folder / "labels")

    def prm(self, round_index: int) -> dict:
        from .prm.train import PRMTrainConfig, train_prm

        c = self.config
        folder = self.round_dir(round_index)
        labels = folder / "labels" / ("stepwise_%s.jsonl" % c.prm_labels)
        if not labels.read_text().strip():
            previous = self.prm_model(round_index)
            return {"model": previous, "skipped": "no %s labels this round" % c.prm_labels}
        summary = train_prm(PRMTrainConfig(labels=str(labels), kind=c.prm_kind, model=self.prm_model(round_index) or c.model,
                                           out=str(folder / "prm"), max_steps=c.prm_steps, batch_size=c.batch_size,
                                           seed=c.seed + round_index))
        return {"model": summary["final"], "first_loss": summary["first_loss"], "last_loss": summary["last_loss"]}

    def policy(self, round_index: int) -> dict:
        from agents.expert_iteration import ExpertIterationConfig, train_expert_iteration
        from agents.step_dpo import StepDPOConfig, train_step_dpo

        c = self.config
        folder = self.round_dir(round_index)
        common = dict(run=str(folder / "search"), batch_size=c.batch_size, learning_rate=c.learning_rate,
                      seed=c.seed + round_index)
        try:
            sft = train_expert_iteration(ExpertIterationConfig(model=self.policy_model(round_index), out=str(folder / "policy"),
                                                               max_steps=c.sft_steps, success=c.sft_success, **common))
        except ValueError as err:
            if "no sft rows" not in str(err):
                raise
            # nothing succeeded in this round's search: the policy carries over unchanged
            return {"model": self.policy_model(round_index), "spec": self.policy_spec(round_index), "skipped": str(err)}
        result = {"model": sft["final"], "spec": "ct2:%s" % sft["ct2"], "sft_rows": sft["rows"],
                  "sft_loss": [sft["first_loss"], sft["last_loss"]]}
        if c.dpo_steps:
            try:
                dpo = train_step_dpo(StepDPOConfig(model=sft["final"], out=str(folder / "policy-dpo"), max_steps=c.dpo_steps,
                                                   **common))
                result.update(model=dpo["final"], spec="ct2:%s" % dpo["ct2"], dpo_rows=dpo["rows"])
            except ValueError as err:
                if "no dpo rows" not in str(err):
                    raise
                result["dpo_skipped"] = str(err)
        if c.grpo_steps:
            result.update(self._grpo(round_index, result["model"]))
        return result

    def _grpo(self, round_index: int, model: str) -> dict:
        """GRPO from ``model`` on the problems this round's search solved, rewarded as the search was."""
        from agents.grpo import GRPOTrainConfig, train_grpo

        c = self.config
        folder, options = self.round_dir(round_index), self.reward_options(round_index)
        config = GRPOTrainConfig(model=model, out=str(folder / "policy-grpo"), env=c.env, data_path=c.data_path,
                                 split=c.train_split, solved_in=str(folder / "search"), episodes=c.grpo_episodes,
                                 max_steps=c.grpo_steps, learning_rate=c.grpo_learning_rate, seed=c.seed + round_index,
                                 reward_tests=options.pop("reward_tests", "public"), env_options=options)
        try:
            grpo = train_grpo(config)
        except ValueError as err:
            if "was solved in" not in str(err):
                raise
            return {"grpo_skipped": str(err)}
        return {"model": grpo["final"], "spec": "ct2:%s" % grpo["ct2"], "grpo_mean_reward": grpo["mean_reward"]}

    def eval(self, round_index: int) -> dict:
        from .prm.labels import label_run
        from .prm.model import evaluate_prm, load_prm
        from .prm.train import read_stepwise

        c = self.config
        agents = {"greedy": {"agent": "greedy"}}
        if c.eval_mcts:
            agents["mcts"] = {"agent": "mcts"}
        spec = self.done(round_index, "policy")["spec"]
        summary = self._bench(round_index, "eval", c.eval_split, c.eval_problems, agents, c.eval_budget, spec, None,
                              training=False)
        result = {"policy": spec}
        for row in summary["table"]:
            result[row["agent"]] = {"pass@1": row["pass@1"], "pass@1_ci": row["pass@1_ci"], "problems": row["problems"],
                                    "mean_generated_tokens": row["mean_generated_tokens"]}
        prm_model = self.done(round_index, "prm").get("model")
        if c.eval_mcts and prm_model:
            folder = self.round_dir(round_index)
            label_run(folder / "eval", folder / "eval-labels")
            rows = read_stepwise(folder / "eval-labels" / "stepwise_tree_mc_hard.jsonl") \
                if (folder / "eval-labels" / "stepwise_tree_mc_hard.jsonl").read_text().strip() else []
            if rows and c.prm_eval_sample is not None and len(rows) > c.prm_eval_sample:
                import random

                rows = random.Random(c.seed).sample(rows, c.prm_eval_sample)
            if rows:
                scored = evaluate_prm(load_prm("%s:%s" % (c.prm_kind, prm_model)), rows)
                result["prm_auc"] = scored["auc"]
                result["prm_auc_ci"] = scored.get("auc_ci")
        return result

    def report(self, round_index: int) -> dict:
        metrics = self.write_metrics()
        current = metrics["rounds"][-1]
        self.log("selfplay: round %d: %s" % (round_index, json.dumps(current)))
        return {"metrics": str(self.out / "metrics.json")}

    # -- metrics ------------------------------------------------------------------------------------------
    def write_metrics(self) -> dict:
        """``metrics.json`` and ``metrics.png`` from the rounds evaluated so far."""
        metrics = self.metrics()
        _write_json(self.out / "metrics.json", metrics)
        self.plot(metrics)
        return metrics

    def metrics(self) -> dict:
        rounds = []
        for round_index in range(self.config.rounds):
            folder = self.round_dir(round_index)
            if not (folder / "eval.json").exists():
                break
            evaluation = self.done(round_index, "eval")
            minutes = {step: self.done(round_index, step)["minutes"] for step in STEPS
                       if (folder / ("%s.json" % step)).exists()}
            row = {"round": round_index, "policy": evaluation["policy"]}
            for agent in ("greedy", "mcts"):
                scored = evaluation.get(agent, {})
                row.update({"%s_pass@1" % agent: scored.get("pass@1"), "%s_pass@1_ci" % agent: scored.get("pass@1_ci"),
                            "%s_tokens" % agent: scored.get("mean_generated_tokens")})
            policy = self.done(round_index, "policy")
            row.update(prm_auc=evaluation.get("prm_auc"), prm_auc_ci=evaluation.get("prm_auc_ci"),
                       search_pass_train=self.done(round_index, "search").get("hidden_pass@1_train"),
                       sft_rows=policy.get("sft_rows"), minutes=minutes)
            rounds.append(row)
        return {"out": str(self.out), "rounds": rounds}

    def plot(self, metrics: dict) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        rounds = metrics["rounds"]
        if not rounds:
            return
        xs = [r["round"] for r in rounds]
        figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
        def with_errors(axis, key: str, label: str | None = None) -> None:
            """Points with their 95% intervals as error bars (none where a round has no interval)."""
            nan = float("nan")
            ys = [r.get(key) if r.get(key) is not None else nan for r in rounds]
            bounds = [r.get(key + "_ci") or (y, y) for r, y in zip(rounds, ys)]
            errors = [[max(0.0, y - lo) for y, (lo, _) in zip(ys, bounds)], [max(0.0, hi - y) for y, (_, hi) in zip(ys, bounds)]]
            axis.errorbar(xs, ys, yerr=errors, marker="o", capsize=4, label=label)

        for key, label in (("greedy_pass@1", "greedy"), ("mcts_pass@1", "MCTS")):
            if any(r.get(key) is not None for r in rounds):
                with_errors(left, key, label)
        left.set(xlabel="round", ylabel="validation pass@1 (hidden tests)", title="policy (95% CI)")
        left.set_xticks(xs)
        left.legend()
        with_errors(right, "prm_auc")
        right.set_xticks(xs)
        right.set(xlabel="round", ylabel="step AUC", title="PRM (95% CI)")
        figure.tight_layout()
        figure.savefig(self.out / "metrics.png", dpi=100)
        plt.close(figure)


def run_selfplay(config: SelfPlayConfig, progress: bool = True) -> dict:
    return SelfPlay(config, progress).run()
