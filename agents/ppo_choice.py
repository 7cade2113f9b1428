"""PPO over candidate steps: the language model proposes, a small stable-baselines3 policy chooses.

:class:`CandidateChoice` turns the text environment into spaces SB3 supports. At each step the LLM
proposes ``k`` candidate steps of the next kind (define, then ``refines`` refines, then translate);
the agent picks one by index and the environment applies it.

* Observation: ``Dict(features=Box(k, d + 6), mask=MultiBinary(k))``. Per candidate: the policy
  LM's mean-pooled last hidden state of the candidate step, projected to ``d`` by a fixed seeded
  random matrix; its mean token log-prob; the PRM's score of the step (0 without a PRM); the step
  index over the episode length; the kind, one-hot. ``mask`` marks the distinct steps that parse.
* Action: ``Discrete(k)``; a masked index is replaced by the first unmasked one (``info`` says so).
* Reward: the environment's (the terminal reward on the reward tests; process rewards with a PRM).

Candidates are sampled with a seed fixed per (problem, trajectory), so a revisited state shows the
same candidates (the generation cache makes revisits free), and every chooser of
:func:`evaluate_choosers` picks among ``k`` proposals per step: the same samples and calls for all,
the same proposals wherever their paths agree; generated tokens are reported per chooser.
sb3-contrib's ``MaskablePPO`` trains on it (``action_masks()``).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from codegym.envs.steps import STEP_KINDS, format_step, format_trajectory, parse_step

EXTRA_FEATURES = 3 + len(STEP_KINDS)  # log-prob, PRM score, step index, kind one-hot


class HiddenStateFeaturizer:
    """The mean-pooled last hidden state of each text under a transformers model, projected to
    ``d`` by a fixed Gaussian matrix (seeded)."""

    def __init__(self, model: str, d: int = 32, seed: int = 0, max_tokens: int = 256):
        import torch
        from transformers import AutoModel, AutoTokenizer

        from codegym.training import model_path

        path = model_path(model)
        self.tokenizer, self.model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
        hidden = self.model.config.hidden_size
        generator = torch.Generator().manual_seed(seed)
        self.projection = torch.randn(hidden, d, generator=generator) / hidden ** 0.5
        self.d, self.max_tokens = d, max_tokens

    def __call__(self, texts: list[str]) -> np.ndarray:
        import torch

        batch = self.tokenizer(texts, return_tensors="pt", padding=True, truncation=True, max_length=self.max_tokens)
        with torch.no_grad():
            hidden = self.model(**batch).last_hidden_state.float()
        mask = batch["attention_mask"].unsqueeze(-1).float()
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
        return (pooled @ self.projection).numpy().astype(np.float32)


class CandidateChoice(gym.Wrapper):
    """Choose among ``k`` LLM-proposed steps (see the module docstring for the spaces)."""

    def __init__(self, env: gym.Env, policy, featurizer: Callable[[list[str]], np.ndarray], d: int, k: int = 4,
                 refines: int = 0, temperature: float = 0.8, seed: int = 0, prm=None,
                 problem_ids: list[str] | None = None):
        super().__init__(env)
        base = env.unwrapped
        if k < 2:
            raise ValueError("k must be at least 2 (a choice)")
        self.policy, self.featurizer, self.k, self.d = policy, featurizer, k, d
        self.kinds = ["define"] + ["refine"] * refines + ["translate"]
        self.temperature, self.seed, self.prm = temperature, seed, prm
        self.problem_ids = problem_ids or [p.id for p in base.problems]
        self.observation_space = spaces.Dict({
            "features": spaces.Box(-np.inf, np.inf, shape=(k, d + EXTRA_FEATURES), dtype=np.float32),
            "mask": spaces.MultiBinary(k),
        })
        self.action_space = spaces.Discrete(k)
        self.candidates: list[str] = []
        self.problem_text = ""
        self.depth = 0
        self.generated_tokens = 0
        self.episode_returns: list[float] = []  # every finished episode's return, in order
        self._return = 0.0
        self._rng = np.random.default_rng(seed)

    # -- candidates ------------------------------------------------------------------------------------
    def _propose(self) -> dict:
        base = self.env.unwrapped
        kind = self.kinds[self.depth]
        trajectory = format_trajectory(base.steps)
        state_seed = int.from_bytes(hashlib.sha256(("%d|%s|%s" % (self.seed, base.problem.id, trajectory)).encode())
                                    .digest()[:4], "little")
        [proposals] = self.policy.propose_many([(self.problem_text, trajectory, kind, base.problem.kind == "stdio")],
                                               n=self.k, temperature=self.temperature, seed=state_seed)
        self.candidates = [p.action for p in proposals]
        self.generated_tokens += sum(p.completion.tokens for p in proposals if p.completion is not None)
        mask, parsed = np.zeros(self.k, dtype=np.int8), {}
        for index, action in enumerate(self.candidates):
            try:
                step = parse_step(action)
            except ValueError:
                continue
            if step.kind == kind and step.text not in {s.text for s in parsed.values()}:
                mask[index] = 1
                parsed[index] = step
        if not mask.any():
            mask[0] = 1  # nothing parses: the first candidate, whose invalid step the environment penalises
        features = np.zeros((self.k, self.d + EXTRA_FEATURES), dtype=np.float32)
        features[:, : self.d] = self.featurizer(self.candidates)
        features[:, self.d] = [p.completion.logprob_mean or 0.0 if p.completion is not None else 0.0 for p in proposals]
        if self.prm is not None:
            before = [format_step(s.kind, s.text) for s in base.steps]
            items = [(self.problem_text, before + [format_step(kind, step.text)]) for step in parsed.values()]
            for index, row in zip(parsed, self.prm.score_many(items) if items else []):
                features[index, self.d + 1] = row[-1]
        features[:, self.d + 2] = self.depth / len(self.kinds)
        features[:, self.d + 3 + STEP_KINDS.index(kind)] = 1.0
        self.mask = mask
        return {"features": features, "mask": mask.copy()}

    def action_masks(self) -> np.ndarray:
        """For sb3-contrib's MaskablePPO."""
        return self.mask.astype(bool)

    # -- gym API -----------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        options = dict(options or {})
        options.setdefault("problem_id", self.problem_ids[int(self._rng.integers(len(self.problem_ids)))])
        observation, info = self.env.reset(seed=seed, options=options)
        self.problem_text = observation["problem"]  # what every request of this episode shows
        self.depth, self._return = 0, 0.0
        return self._propose(), info

    def step(self, action):
        index = int(action)
        info_extra = {}
        if not 0 <= index < self.k or not self.mask[index]:
            info_extra["replaced_action"] = index
            index = int(np.flatnonzero(self.mask)[0])
        _, reward, terminated, truncated, info = self.env.step(self.candidates[index])
        info.update(info_extra, chosen=index)
        if not info.get("invalid_action"):
            self.depth += 1
        self._return += float(reward)
        done = terminated or truncated or self.depth >= len(self.kinds)
        if done:
            terminated = terminated or not truncated
            self.episode_returns.append(self._return)
            return {"features": np.zeros(self.observation_space["features"].shape, dtype=np.float32),
                    "mask": np.ones(self.k, dtype=np.int8)}, float(reward), terminated, truncated, info
        return self._propose(), float(reward), False, False, info


@dataclass
class PPOChoiceConfig:
    """A MaskablePPO run on the candidate-choice environment of a training split."""

    policy: str = "smollm2"  # the LLM that proposes (a --policy spec)
    features_model: str = "smollm2"  # the transformers model whose hidden states describe candidates
    out: str = "results/policy-ppo-choice"
    env: str = "CodeGym/MBPP-v0"
    data_path: str | None = None
    split: str | None = "train"
    training: bool | None = None  # as GRPOTrainConfig.training: never for an evaluation split
    problems: int | None = 16  # the first N problems of the split
    solved_in: str | None = None  # only problems a search of this bench run (a training split) solved
    k: int = 4
    d: int = 32
    refines: int = 0
    temperature: float = 0.8
    timesteps: int = 256
    n_steps: int = 32
    batch_size: int = 16
    learning_rate: float = 3e-4
    save_every: int = 32  # timesteps between checkpoints
    seed: int = 0

    def __post_init__(self) -> None:
        if self.k < 2 or self.d < 1 or self.timesteps < 1 or self.n_steps < 2:
            raise ValueError("need k >= 2, d >= 1, timesteps >= 1 and n_steps >= 2")


def make_choice_env(config: PPOChoiceConfig, policy=None, featurizer=None, split: str | None = None,
                    training: bool | None = None, problems: int | None = None, cache: bool = True) -> CandidateChoice:
    """The candidate-choice environment over a split's first ``problems`` problems: the config's
    training split (refused unless it is one), or another ``split`` to evaluate on."""
    from codegym.envs import env_dataset, training_problems
    from codegym.llm import load
    from codegym.policy import StepPolicy

    if split is None:
        if training is not None:
            raise ValueError("training= marks an evaluation split given as split=; the config's own split uses "
                             "config.training")
        split = config.split
        chosen = training_problems(config.env, config.data_path, split, mark_training=bool(config.training))
    else:
        options = {k: v for k, v in (("data_path", config.data_path), ("split", split), ("training", training))
                   if v is not None}
        chosen = env_dataset(config.env, **options).problems
    if config.solved_in and split == config.split:
        from .policy_data import solved_problem_ids

        solved = set(solved_problem_ids(config.solved_in))
        chosen = [p for p in chosen if p.id in solved]
    chosen = chosen[: problems or config.problems]
    env = gym.make(config.env, problems=chosen, max_refine=config.refines, max_steps=config.refines + 4)
    policy = policy or StepPolicy(load(config.policy, cache=cache))
    featurizer = featurizer or HiddenStateFeaturizer(config.features_model, config.d, config.seed)
    return CandidateChoice(env, policy, featurizer, config.d, config.k, config.refines, config.temperature, config.seed)


def train_ppo_choice(config: PPOChoiceConfig, env: CandidateChoice | None = None) -> dict:
    """MaskablePPO on the choice environment, in chunks of whole rollouts: after each chunk of
    about ``save_every`` timesteps (a multiple of ``n_steps``, so every saved model has had all its
    updates) the model and the episode returns so far are saved, and a rerun continues from there.
    Writes ``train_config.json``, ``checkpoint.zip``, ``episodes.json``, ``final.zip`` and the
    summary; a finished run is not retrained."""
    from sb3_contrib import MaskablePPO
    from tqdm import tqdm

    from codegym.training import prepare_output, write_summary

    out = prepare_output(config.out, config)
    summary_file, checkpoint, episodes_file = out / "train_summary.json", out / "checkpoint.zip", out / "episodes.json"
    if summary_file.exists() and json.loads(summary_file.read_text())["timesteps"] >= config.timesteps:
        return json.loads(summary_file.read_text())
    env = env or make_choice_env(config)
    state = json.loads(episodes_file.read_text()) if episodes_file.exists() else {"returns": [], "generated_tokens": 0}
    if checkpoint.exists():
        model = MaskablePPO.load(checkpoint, env=env, seed=config.seed)
    else:
        model = MaskablePPO("MultiInputPolicy", env, n_steps=config.n_steps, batch_size=config.batch_size,
                            learning_rate=config.learning_rate, seed=config.seed, verbose=0)
    chunk = max(1, config.save_every // config.n_steps) * config.n_steps
    bar = tqdm(total=config.timesteps, initial=min(model.num_timesteps, config.timesteps), desc="ppo", unit="step")
    while model.num_timesteps < config.timesteps:
        seen, tokens = len(env.episode_returns), env.generated_tokens
        before = model.num_timesteps
        model.learn(min(chunk, config.timesteps - model.num_timesteps), reset_num_timesteps=False)
        model.save(out / "checkpoint.tmp.zip")
        os.replace(out / "checkpoint.tmp.zip", checkpoint)
        state["returns"] += env.episode_returns[seen:]
        state["generated_tokens"] += env.generated_tokens - tokens
        (out / "episodes.tmp.json").write_text(json.dumps(state))
        os.replace(out / "episodes.tmp.json", episodes_file)
        bar.update(model.num_timesteps - before)
    bar.close()
    model.save(out / "final.zip")
    rewards = state["returns"]
    quarter = max(1, len(rewards) // 4)
    return write_summary(out, {
        "timesteps": int(model.num_timesteps), "episodes": len(rewards),
        "first_rewards_mean": float(np.mean(rewards[:quarter])) if rewards else None,
        "last_rewards_mean": float(np.mean(rewards[-quarter:])) if rewards else None,
        "generated_tokens": state["generated_tokens"], "final": str(out / "final.zip")})


def evaluate_choosers(env: CandidateChoice, problem_ids: list[str], choosers: dict[str, Callable[[dict], int]],
                      seed: int = 0) -> dict[str, dict]:
    """Each chooser plays one episode per problem; mean return, solved count and the tokens its
    proposals took (cached proposals count as generated: it is the compute a fresh run spends)."""
    results = {}
    for name, choose in choosers.items():
        returns, tokens_before = [], env.generated_tokens
        for problem_id in problem_ids:
            observation, _ = env.reset(seed=seed, options={"problem_id": problem_id})
            total, done = 0.0, False
            while not done:
                observation, reward, terminated, truncated, _ = env.step(choose(observation))
                total, done = total + reward, terminated or truncated
            returns.append(total)
        results[name] = {"episodes": len(returns), "mean_return": float(np.mean(returns)),
                         "solved": int(sum(r >= 1.0 for r in returns)), "returns": returns,
                         "generated_tokens": env.generated_tokens - tokens_before}
    return results


def standard_choosers(model=None, seed: int = 0) -> dict[str, Callable[[dict], int]]:
    """The first candidate, a seeded random valid one, and (given) a trained PPO model's choice."""
    rng = np.random.default_rng(seed)
    choosers: dict[str, Callable[[dict], int]] = {
        "first": lambda obs: int(np.flatnonzero(obs["mask"])[0]),
        "random": lambda obs: int(rng.choice(np.flatnonzero(obs["mask"]))),
    }
    if model is not None:
        choosers["ppo"] = lambda obs: int(model.predict(obs, deterministic=True, action_masks=obs["mask"].astype(bool))[0])
    return choosers
