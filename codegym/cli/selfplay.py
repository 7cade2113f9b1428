"""``codegym selfplay``: the self-play loop (search, labels, PRM, policy, evaluation, per round)."""

from __future__ import annotations

import argparse
import json
from dataclasses import fields

from .common import add_command

_SKIP = ("out", "extra")

# what each SelfPlayConfig field does, for --help
HELP = {
    "rounds": "rounds to run (a finished run continues with more)",
    "env": "a registered environment id",
    "data_path": "data file or folder; none: the environment's default",
    "train_split": "the split searched and trained on (marked for training)",
    "eval_split": "the split whose hidden tests score each round",
    "train_problems": "the training split's first N problems searched per round; none: all",
    "eval_problems": "the evaluation split's first N problems; none: all",
    "model": "round 0's policy: a transformers folder, or smollm2 (the embedded weights)",
    "tcg": "a TCG model spec (smollm2, ct2:PATH) writing reward tests each round; none: public tests only",
    "tcg_count": "tests asked per problem",
    "tcg_temperature": "TCG sampling temperature (0: the same tests every round)",
    "search_budget": "generated tokens per problem in the training search",
    "search_value": "MCTS value in search: rollout, or prm (the previous round's PRM)",
    "eval_budget": "generated tokens per problem in the evaluation's MCTS",
    "eval_mcts": "evaluate MCTS beside greedy",
    "parallel": "items solved at once in every bench phase",
    "ray": "run the search phase on Ray: local, auto or an address; none: here",
    "prm_kind": "the PRM: token or value",
    "prm_labels": "the step labels it trains on (tree_mc_soft, tree_mc_hard, q)",
    "prm_steps": "PRM optimizer steps per round",
    "sft_steps": "SFT optimizer steps per round",
    "sft_success": "the least reward of a D+ path",
    "dpo_steps": "DPO steps on step pairs after SFT (0: none)",
    "grpo_steps": "GRPO steps after SFT and DPO, on the problems the search solved (0: none)",
    "grpo_episodes": "GRPO group size: episodes per problem",
    "grpo_learning_rate": "GRPO learning rate",
    "batch_size": "batch size of the PRM, SFT and DPO trainers",
    "learning_rate": "learning rate of the PRM, SFT and DPO trainers",
    "prm_eval_sample": "evaluation steps the PRM's AUC is measured on; none: all",
    "seed": "seed of every stochastic part (search uses seed + round)",
}


def register(sub) -> None:
    from ..selfplay import SelfPlayConfig

    parser = add_command(sub, "selfplay", _run, "the self-play loop: search, labels, PRM and policy training, evaluation",
                         description="Rounds of O1-CODER's loop in OUT/round-K/; a rerun of the same command "
                         "continues where a killed run stopped. Options below override --config and --smoke.")
    parser.add_argument("--out", required=True, help="output folder (a rerun resumes it)")
    parser.add_argument("--config", default=None, help="a TOML or JSON file of SelfPlayConfig fields (OUT/config.json too)")
    parser.add_argument("--smoke", action="store_true", help="a preset that runs a round in minutes")
    for spec in fields(SelfPlayConfig):
        if spec.name in _SKIP:
            continue
        flag = "--" + spec.name.replace("_", "-")
        if spec.type in ("bool", bool):
            parser.add_argument(flag, type=_bool, default=argparse.SUPPRESS, metavar="BOOL",
                                help="%s (default: %s)" % (HELP[spec.name], spec.default))
        else:
            kind = {"int": int, "float": float}.get(str(spec.type), None)
            caster = kind or (_optional_int if "int" in str(spec.type) else _optional_str if "None" in str(spec.type) else str)
            parser.add_argument(flag, type=caster, default=argparse.SUPPRESS,
                                help="%s (default: %s)" % (HELP[spec.name], spec.default))


def _bool(text: str) -> bool:
    if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
        raise argparse.ArgumentTypeError("expected true or false, got %r" % text)
    return text.lower() in ("true", "1", "yes")


def _optional_int(text: str) -> int | None:
    return None if text.lower() == "none" else int(text)


def _optional_str(text: str) -> str | None:
    return None if text.lower() == "none" else text


def _run(args: argparse.Namespace) -> int:
    from ..bench import config_from_file
    from ..selfplay import SelfPlayConfig, run_selfplay, smoke

    overrides = {spec.name: getattr(args, spec.name) for spec in fields(SelfPlayConfig)
                 if spec.name not in _SKIP and hasattr(args, spec.name)}
    if args.config and args.smoke:
        raise ValueError("--smoke is a preset config: give it or --config, not both")
    if args.config:
        config = config_from_file(SelfPlayConfig, args.config, out=args.out, **overrides)
    elif args.smoke:
        config = smoke(args.out, **overrides)
    else:
        config = SelfPlayConfig(out=args.out, **overrides)
    print(json.dumps(run_selfplay(config), indent=2))
    return 0
