"""``codegym train``: policy optimization (SFT on D+, DPO on step pairs, GRPO on episodes, PPO over
candidate steps). The learning agents live in ``agents/``; this module only parses options."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .common import add_command, training_args


def register(sub) -> None:
    train = add_command(sub, "train", None, "policy optimization: sft | dpo | grpo | ppo-choice")
    methods = train.add_subparsers(dest="method", required=True, metavar="METHOD")
    sft = add_command(methods, "sft", _run_sft, "expert iteration: SFT on D+, the successful paths of search trees")
    _tree_args(sft)
    sft.add_argument("--top-paths", type=int, default=2, help="successful paths kept per problem, best mean Q first")
    sft.add_argument("--success", type=float, default=1.0, help="the least reward of a successful path")
    dpo = add_command(methods, "dpo", _run_dpo, "DPO on sibling step pairs of search trees (higher Q chosen)")
    _tree_args(dpo)
    dpo.add_argument("--margin", type=float, default=0.5, help="least Q difference of a pair")
    dpo.add_argument("--min-distance", type=float, default=0.1, help="least text distance (1 - difflib ratio) of a pair")
    dpo.add_argument("--beta", type=float, default=0.1, help="DPO's KL strength")
    grpo = add_command(methods, "grpo", _run_grpo, "GRPO (TRL) on whole define -> translate episodes of a training split")
    _split_args(grpo)
    training_args(grpo, "problems")
    grpo.set_defaults(learning_rate=1e-6, max_steps=20, batch_size=1)
    grpo.add_argument("--episodes", type=int, default=4, help="episodes per problem: the GRPO group")
    grpo.add_argument("--refines", type=int, default=0, help="refine steps in every episode")
    grpo.add_argument("--temperature", type=float, default=0.8, help="sampling temperature of the episodes")
    grpo.add_argument("--beta", type=float, default=0.0, help="KL strength to the starting policy")
    grpo.add_argument("--reward-tests", default="public", help="public, or all (the training split's full tests)")
    grpo.add_argument("--template", default="pseudocode", help="the step template the episodes are written in")
    grpo.add_argument("--prm", default=None, help="a PRM spec whose step scores join the episode return (none: no PRM)")
    grpo.add_argument("--aggregate", action="store_true",
                      help="with --prm, the return is O1-CODER's phi (codegym.rewards.aggregate_reward) instead of a sum")
    grpo.add_argument("--no-ct2", action="store_true", help="skip the CTranslate2 export")
    ppo = add_command(methods, "ppo-choice", _run_ppo, "MaskablePPO choosing among k LLM-proposed steps (stable-baselines3)")
    _split_args(ppo)
    ppo.set_defaults(problems=16)
    ppo.add_argument("--policy", default="smollm2", help="the LLM that proposes candidates (a --policy spec)")
    ppo.add_argument("--features-model", default="smollm2", help="transformers model whose hidden states describe candidates")
    ppo.add_argument("--out", required=True, help="output folder; a rerun resumes from its last checkpoint")
    ppo.add_argument("--k", type=int, default=4, help="candidates per step")
    ppo.add_argument("--d", type=int, default=32, help="projected hidden-state features per candidate")
    ppo.add_argument("--refines", type=int, default=0, help="refine steps in every episode")
    ppo.add_argument("--timesteps", type=int, default=256, help="environment steps to train")
    ppo.add_argument("--n-steps", type=int, default=32, help="PPO rollout length")
    ppo.add_argument("--batch-size", type=int, default=16, help="PPO minibatch")
    ppo.add_argument("--learning-rate", type=float, default=3e-4, help="PPO learning rate")
    ppo.add_argument("--eval-split", default="validation",
                     help="held-out split where PPO's choice meets the first and the random candidate; none: skip")
    ppo.add_argument("--eval-problems", type=int, default=30, help="held-out problems evaluated")
    ppo.add_argument("--seed", type=int, default=0, help="seed of sampling, PPO and the random chooser")


def _tree_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN", help="a codegym bench output folder whose trees searched a training split")
    training_args(parser, "rows")
    parser.add_argument("--no-ct2", action="store_true", help="skip the CTranslate2 export")


def _split_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", default="CodeGym/MBPP-v0", help="environment id")
    parser.add_argument("--data-path", default=None, help="data file or folder; none: the environment's default")
    parser.add_argument("--split", type=_optional, default="train",
                        help="the training split (one marked for training: MBPP train, or data marked so); none: the "
                        "whole data, refused where it holds an evaluation split (MBPP's folder does)")
    parser.add_argument("--problems", type=int, default=None, help="the split's first N problems; none: all")
    parser.add_argument("--solved-in", default=None, metavar="RUN",
                        help="only the problems a search solved in this bench run of the training split; none: all")


def _optional(text: str) -> str | None:
    return None if text.lower() == "none" else text


def _common(args: argparse.Namespace) -> dict:
    return dict(model=args.model, out=args.out, max_steps=args.max_steps, learning_rate=args.learning_rate,
                lora=args.lora, seed=args.seed, export_ct2=not args.no_ct2)


def _tree_run(args: argparse.Namespace) -> None:
    if not (Path(args.run_dir) / "config.json").is_file():
        raise FileNotFoundError("no config.json in %s (a codegym bench output folder)" % args.run_dir)


def _run_sft(args: argparse.Namespace) -> int:
    from agents.expert_iteration import ExpertIterationConfig, train_expert_iteration

    _tree_run(args)
    config = ExpertIterationConfig(run=args.run_dir, batch_size=args.batch_size, top_paths=args.top_paths,
                                   success=args.success, **_common(args))
    print(json.dumps(train_expert_iteration(config), indent=2))
    return 0


def _run_dpo(args: argparse.Namespace) -> int:
    from agents.step_dpo import StepDPOConfig, train_step_dpo

    _tree_run(args)
    config = StepDPOConfig(run=args.run_dir, batch_size=args.batch_size, margin=args.margin,
                           min_distance=args.min_distance, beta=args.beta, **_common(args))
    print(json.dumps(train_step_dpo(config), indent=2))
    return 0


def _run_grpo(args: argparse.Namespace) -> int:
    from agents.grpo import GRPOTrainConfig, train_grpo

    config = GRPOTrainConfig(env=args.env, data_path=args.data_path, split=args.split, problems=args.problems,
                             template=args.template, solved_in=args.solved_in, env_options=_prm_options(args),
                             episodes=args.episodes, refines=args.refines,
                             problems_per_step=args.batch_size,
                             temperature=args.temperature, beta=args.beta, reward_tests=args.reward_tests, **_common(args))
    print(json.dumps(train_grpo(config), indent=2))
    return 0


def _prm_options(args: argparse.Namespace) -> dict:
    if args.aggregate and not args.prm:
        raise ValueError("--aggregate needs --prm")
    if not args.prm:
        return {}
    from ..prm.model import check_prm_spec

    check_prm_spec(args.prm)
    return {"prm": args.prm, "aggregate": args.aggregate}


def _run_ppo(args: argparse.Namespace) -> int:
    from agents.ppo_choice import PPOChoiceConfig, evaluate_choosers, make_choice_env, standard_choosers, train_ppo_choice

    config = PPOChoiceConfig(policy=args.policy, features_model=args.features_model, out=args.out, env=args.env,
                             data_path=args.data_path, split=args.split, problems=args.problems,
                             solved_in=args.solved_in, k=args.k, d=args.d, refines=args.refines,
                             timesteps=args.timesteps, n_steps=args.n_steps, batch_size=args.batch_size,
                             learning_rate=args.learning_rate, seed=args.seed)
    env = make_choice_env(config)
    summary = train_ppo_choice(config, env)
    if args.eval_split and args.eval_split.lower() != "none":
        from sb3_contrib import MaskablePPO

        held_out = make_choice_env(config, policy=env.policy, featurizer=env.featurizer, split=args.eval_split,
                                   training=False, problems=args.eval_problems)
        model = MaskablePPO.load(summary["final"])
        results = evaluate_choosers(held_out, held_out.problem_ids, standard_choosers(model, args.seed), args.seed)
        summary["held_out"] = {"split": args.eval_split, **results}
        (Path(args.out) / "eval.json").write_text(json.dumps(summary["held_out"], indent=2))
    print(json.dumps(summary, indent=2))
    return 0
