"""GRPO through TRL's ``GRPOTrainer``, with whole episodes played in the codegym environment.

TRL 1.16 offers two hooks for environments: ``environment_factory`` (the environment's methods
become *tools* the model calls in its chat template's tool-call syntax) and ``rollout_func`` (the
caller generates). A codegym episode is not a tool conversation: every step is its own request,
rendered by the step template with the trajectory so far, exactly as the search agents and the
greedy agent see it. So this adapter uses ``rollout_func``:

* The dataset holds one row per training problem: the rendered request of its first step.
* For each problem, ``episodes`` episodes run side by side in :class:`CodeReasoningEnv` on the
  split's reward tests: define, ``refines`` refine steps, translate. Each step's request is
  rendered from the environment's observation (the same text a backend renders at inference),
  sampled from the model being trained, cut at the template's stop strings, and applied with
  ``env.step``. The episode's return (the sum of the environment's rewards: the terminal reward on
  the reward tests, plus process rewards with a PRM) is its reward.
* Every step of an episode is one GRPO sample (its own prompt, its sampled tokens and their
  log-probs), all carrying the episode's return, so ``num_generations = episodes * steps``. The
  group baseline (the mean over the problem's episodes) is GRPO's; each step's tokens get the
  advantage of the episode it belongs to, which is the policy gradient of the multi-step episode.

Hidden tests never enter: the environment holds a training split's public problems only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from codegym.llm.base import stop_position

from .policy_data import ChatRenderer


@dataclass
class GRPOTrainConfig:
    """A GRPO run on a training split."""

    model: str = "smollm2"  # a transformers path/id, or "smollm2" for the embedded weights
    out: str = "results/policy-grpo"
    env: str = "CodeGym/MBPP-v0"
    data_path: str | None = None
    split: str | None = "train"
    # True marks a split for training that is not one (custom data): its hidden tests become the
    # problems' all_tests. Never for an evaluation split; the CLI does not offer it.
    training: bool | None = None
    problems: int | None = None  # the first N problems of the split (None: all)
    solved_in: str | None = None  # only problems a search of this bench run (a training split) solved
    template: str = "pseudocode"
    episodes: int = 4  # episodes per problem: the GRPO group
    refines: int = 0  # refine steps in every episode
    problems_per_step: int = 1
    max_steps: int = 20
    learning_rate: float = 1e-6
    temperature: float = 0.8
    beta: float = 0.0  # KL to the starting policy
    reward_tests: str = "public"  # or "all" (a training split's full test list)
    env_options: dict = field(default_factory=dict)  # more CodeReasoningEnv arguments (alpha, prm, ...)
    lora: bool = False
    lora_rank: int = 16
    seed: int = 0
    export_ct2: bool = True

    def __post_init__(self) -> None:
        if self.episodes < 2:
            raise ValueError("GRPO needs at least 2 episodes per problem (a group)")
        if self.refines < 0 or self.problems_per_step < 1 or self.max_steps < 1:
            raise ValueError("need refines >= 0, problems_per_step >= 1 and max_steps >= 1")

    @property
    def kinds(self) -> list[str]:
        return ["define"] + ["refine"] * self.refines + ["translate"]


class EpisodeRollout:
    """TRL's ``rollout_func``: plays whole codegym episodes with the model being trained."""

    def __init__(self, config: GRPOTrainConfig, env, tokenizer):
        from codegym.prompts import load_template

        self.config, self.env, self.tokenizer = config, env, tokenizer
        self.template = load_template(config.template)
        self.render = ChatRenderer(tokenizer)
        self.sampled_kinds = [kind for kind in config.kinds if kind not in self.template.fixed_steps]
        self.problem_of: dict[str, str] = {}  # first-step prompt -> problem id
        self.calls = 0

    def first_prompt(self, problem_id: str) -> str:
        """The dataset row of a problem: the rendered request of its first sampled step."""
        self.env.reset(options={"problem_id": problem_id})
        state = self.env.get_state()
        for kind in self.config.kinds[: self.config.kinds.index(self.sampled_kinds[0])]:  # fixed steps first
            self.env.step(self.template.prefixes[kind] + self.template.fixed_steps[kind])
            state = self.env.get_state()
        prompt = self.render(self.request(state, self.sampled_kinds[0]))
        if prompt in self.problem_of and self.problem_of[prompt] != problem_id:
            raise ValueError("problems %s and %s render the same prompt" % (self.problem_of[prompt], problem_id))
        self.problem_of[prompt] = problem_id
        return prompt

    def request(self, state: dict, kind: str):
        """The step request after ``state``, built as the search agents build it: the observation's
        problem text and the trajectory of the state's steps."""
        from codegym.envs import format_trajectory

        observation = self.env.set_state(state)
        return self.template.request(observation["problem"], format_trajectory(state["steps"]), kind,
                                     stdio=self.env.problem.kind == "stdio", chat=self.render.chat)

    def _sample(self, model, prompts: list[str], kind: str, seed: int) -> list[tuple[list[int], list[int], list[float]]]:
        """(prompt ids, sampled ids, their log-probs under the sampling distribution) per prompt."""
        import torch

        tok = self.tokenizer
        encoded = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
        width = max(map(len, encoded))
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        ids = torch.tensor([[pad] * (width - len(e)) + e for e in encoded])
        mask = torch.tensor([[0] * (width - len(e)) + [1] * len(e) for e in encoded])
        torch.manual_seed(seed)
        with torch.no_grad():
            out = model.generate(input_ids=ids.to(model.device), attention_mask=mask.to(model.device), do_sample=True,
                                 temperature=self.config.temperature, top_p=1.0, top_k=0,
                                 max_new_tokens=self.template.max_new_tokens.get(kind, 256),
                                 repetition_penalty=self.template.repetition_penalty.get(kind, 1.0),
                                 stop_strings=list(self.template.stops[kind]), tokenizer=tok, pad_token_id=pad,
                                 output_scores=True, return_dict_in_generate=True)
        new = out.sequences[:, width:].cpu()
        scores = torch.stack(out.scores, dim=1).float().log_softmax(-1).cpu()  # temperature already applied
        samples = []
        for row, prompt_ids in enumerate(encoded):
            tokens = new[row].tolist()
            tokens = tokens[: self.sampled_length(tokens, kind, pad)]
            logprobs = [scores[row, i, t].item() for i, t in enumerate(tokens)]
            samples.append((prompt_ids, tokens, logprobs))
        return samples

    def sampled_length(self, tokens: list[int], kind: str, pad: int) -> int:
        """How many generated tokens were sampled: through the first stop string or end-of-turn
        token. transformers pads a finished row with the pad token, which for SmolLM2 is the
        end-of-turn token itself, so an end-of-turn after a stop string is padding, not a sample."""
        eos, stops = self.tokenizer.eos_token_id, self.template.stops[kind]
        for index, token in enumerate(tokens):
            if token == eos:
                return index + 1
            if token == pad:
                return index
            if stop_position(self.tokenizer.decode(tokens[: index + 1], skip_special_tokens=True), stops) >= 0:
                return index + 1
        return len(tokens)

    def cut(self, kind: str, text: str) -> str:
        """The completion up to the first stop string, as the backends cut it."""
        end = stop_position(text, self.template.stops[kind])
        return text[:end] if end >= 0 else text

    def play(self, model, problem_ids: list[str], seed: int) -> list[dict]:
        """One episode per entry of ``problem_ids``; per episode, its steps' samples and its return."""
        states = []
        for problem_id in problem_ids:
            self.env.reset(options={"problem_id": problem_id})
            states.append(self.env.get_state())
        returns = [0.0] * len(states)
        steps: list[list[tuple]] = [[] for _ in states]
        for depth, kind in enumerate(self.config.kinds):
            if kind in self.template.fixed_steps:  # the template writes this step: nothing to sample or train
                for index, state in enumerate(states):
                    self.env.set_state(state)
                    if not self.env.done:
                        returns[index] += float(self.env.step(self.template.prefixes[kind] + self.template.fixed_steps[kind])[1])
                    states[index] = self.env.get_state()
                continue
            prompts = [self.render(self.request(state, kind)) for state in states]
            for index, sample in enumerate(self._sample(model, prompts, kind, seed * 1000 + depth)):
                self.env.set_state(states[index])
                if not self.env.done:
                    text = self.cut(kind, self.tokenizer.decode(sample[1], skip_special_tokens=True))
                    _, reward, _, _, _ = self.env.step(self.template.action(kind, text))
                    returns[index] += float(reward)
                states[index] = self.env.get_state()
                steps[index].append(sample)
        return [{"steps": s, "return": r, "done": st["done"]} for s, r, st in zip(steps, returns, states)]

    def __call__(self, prompts: list, trainer) -> dict:
        """TRL's rollout hook: ``num_generations`` samples per prompt, grouped by prompt."""
        model = trainer.accelerator.unwrap_model(trainer.model)
        unique = list(dict.fromkeys(prompts))  # TRL repeats each prompt once per generation, consecutively
        wanted = self.config.episodes * len(self.sampled_kinds)
        if len(prompts) != wanted * len(unique):
            raise ValueError("rollout_func got %d prompts for %d problems; expected %d each"
                             % (len(prompts), len(unique), wanted))
        problem_ids = [self.problem_of[p] for p in unique for _ in range(self.config.episodes)]
        was_training = model.training
        model.eval()
        episodes = self.play(model, problem_ids, seed=self.config.seed * 100003 + self.calls)
        model.train(was_training)
        self.calls += 1
        result: dict[str, list] = {"prompt_ids": [], "completion_ids": [], "logprobs": [], "episode_return": []}
        for episode in episodes:
            for prompt_ids, tokens, logprobs in episode["steps"]:
                result["prompt_ids"].append(prompt_ids)
                result["completion_ids"].append(tokens)
                result["logprobs"].append(logprobs)
                result["episode_return"].append(episode["return"])
        return result


def episode_return(prompts, completions, episode_return, **columns) -> list[float]:
    """The reward of a GRPO sample: the return of the episode its step belongs to."""
    return [float(r) for r in episode_return]


def make_training_env(config: GRPOTrainConfig):
    """The environment of a GRPO run: a training split's public problems, its reward tests."""
    import gymnasium as gym

    from codegym.envs import training_problems

    problems = training_problems(config.env, config.data_path, config.split, mark_training=bool(config.training))
    if config.solved_in:
        from .policy_data import solved_problem_ids

        solved = set(solved_problem_ids(config.solved_in))
        problems = [p for p in problems if p.id in solved]
        if not problems:
            raise ValueError("no problem of %s was solved in %s" % (config.split, config.solved_in))
    problems = problems[: config.problems] if config.problems else problems
    if len(problems) < config.problems_per_step:
        raise ValueError("%d problems for %d per step: GRPO would train on nothing" % (len(problems), config.problems_per_step))
    env = gym.make(config.env, problems=problems, reward_tests=config.reward_tests, max_refine=config.refines,
                   max_steps=len(config.kinds) + 2, **config.env_options).unwrapped
    return env, problems


def train_grpo(config: GRPOTrainConfig) -> dict:
    """Train with TRL's ``GRPOTrainer`` and the episode rollout; resumable, config written."""
    import os

    from codegym.training import (
        cuda,
        finish,
        last_checkpoint,
        lora_config,
        model_path,
        prepare_output,
        require,
        write_summary,
    )

    require("datasets", "trl")
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    env, problems = make_training_env(config)
    model = model_path(config.model)
    tokenizer = AutoTokenizer.from_pretrained(model)
    rollout = EpisodeRollout(config, env, tokenizer)
    rows = [{"prompt": rollout.first_prompt(p.id), "problem_id": p.id} for p in problems]
    out = prepare_output(config.out, config)
    group = config.episodes * len(rollout.sampled_kinds)
    args = GRPOConfig(output_dir=str(out), max_steps=config.max_steps,
                      per_device_train_batch_size=group * config.problems_per_step, num_generations=group,
                      learning_rate=config.learning_rate, beta=config.beta,
                      temperature=config.temperature, max_completion_length=max(rollout.template.max_new_tokens.values()),
                      logging_steps=1, save_steps=max(5, config.max_steps // 4), save_total_limit=2, report_to=[],
                      seed=config.seed, use_cpu=not cuda(), disable_tqdm=False, gradient_checkpointing=False,
                      shuffle_dataset=True)
    trainer = GRPOTrainer(model=model, reward_funcs=[episode_return], args=args, train_dataset=Dataset.from_list(rows),
                          processing_class=tokenizer, peft_config=lora_config(config.lora, config.lora_rank),
                          rollout_func=rollout)
    trainer.train(resume_from_checkpoint=last_checkpoint(out))
    summary = finish(trainer, config, Path(out))
    rewards = [entry["reward"] for entry in trainer.state.log_history if "reward" in entry]
    summary.update(first_reward=rewards[0] if rewards else None, last_reward=rewards[-1] if rewards else None,
                   mean_reward=sum(rewards) / len(rewards) if rewards else None, problems=len(problems),
                   config=asdict(config))
    return write_summary(Path(out), summary)
