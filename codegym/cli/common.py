"""What every command group shares: help formatting, dataset and policy options, data loading."""

from __future__ import annotations

import argparse
import sys

POLICY_HELP = "the model: smollm2 (embedded) | torch:smollm2 | hf:PATH | vllm:PATH | openai:URL#MODEL | ct2:PATH"


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows each option's default, and keeps the descriptions' line breaks."""


def add_command(sub, name: str, run, help_text: str, description: str | None = None) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=help_text, description=description or help_text, formatter_class=HelpFormatter)
    if run is not None:
        parser.set_defaults(run=run)
    return parser


def dataset_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-path", default=None,
                        help="data file or folder (MBPP, APPS, custom); none: the environment's default")
    parser.add_argument("--split", default=None,
                        help="MBPP split (train, validation, test, prompt); none: every split present")
    parser.add_argument("--on-error", choices=("raise", "skip"), default="raise",
                        help="a malformed record stops the command (raise) or is skipped and counted (skip)")


def dataset_options(args: argparse.Namespace) -> dict:
    options = {"data_path": args.data_path, "split": args.split, "on_error": args.on_error}
    return {k: v for k, v in options.items() if v is not None}


def policy_args(parser: argparse.ArgumentParser, default: str = "smollm2") -> None:
    parser.add_argument("--policy", default=default, help=POLICY_HELP)
    parser.add_argument("--cache", action="store_true", help="reuse generations from the persistent generation cache")


def training_args(parser: argparse.ArgumentParser, batch_unit: str) -> None:
    """The options every trainer takes (model, output folder, steps, batch, rate, LoRA, seed)."""
    parser.add_argument("--model", default="smollm2", help="transformers path/id, or smollm2 (the embedded weights)")
    parser.add_argument("--out", required=True, help="output folder; a rerun resumes from its last checkpoint")
    parser.add_argument("--max-steps", type=int, default=60, help="optimizer steps")
    parser.add_argument("--batch-size", type=int, default=4, help="%s per step" % batch_unit)
    parser.add_argument("--learning-rate", type=float, default=5e-5, help="peak learning rate")
    parser.add_argument("--lora", action="store_true", help="train LoRA adapters (PEFT) instead of all weights")
    parser.add_argument("--seed", type=int, default=0, help="seed for data order, shuffles and init")


def report_skipped(dataset) -> None:
    """One stderr line when malformed records were skipped."""
    if dataset.skipped:
        print("codegym: skipped %d malformed record(s) in %s (first: %s)"
              % (len(dataset.skipped), dataset.name, dataset.skipped[0][2]), file=sys.stderr)


def load_env_data(args: argparse.Namespace, env_id: str):
    """The dataset behind ``env_id`` with the command's dataset options (validated, nothing loaded
    but data); skipped records are reported."""
    from ..envs import env_dataset

    dataset = env_dataset(env_id, **dataset_options(args))
    report_skipped(dataset)
    return dataset


def int_list(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError("expected comma-separated integers, got %r" % text) from None
