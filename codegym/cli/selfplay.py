"""``codegym selfplay``: the self-play loop (search, labels, PRM, policy, evaluation, per round)."""

from __future__ import annotations

import argparse
import json
from dataclasses import fields

from .common import add_command

_SKIP = ("out", "extra")


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
            parser.add_argument(flag, type=_bool, default=argparse.SUPPRESS, metavar="BOOL", help="(default: %s)" % spec.default)
        else:
            kind = {"int": int, "float": float}.get(str(spec.type), None)
            caster = kind or (_optional_int if "int" in str(spec.type) else _optional_str if "None" in str(spec.type) else str)
            parser.add_argument(flag, type=caster, default=argparse.SUPPRESS, help="(default: %s)" % spec.default)


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
