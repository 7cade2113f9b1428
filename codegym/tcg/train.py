"""Training the test case generator with TRL: SFT, then DPO (optionally LoRA through PEFT); the
plumbing (output folder, resume, LoRA, final save) is :mod:`codegym.training`, shared with the PRM.

Works on any transformers causal LM; on CPU with the embedded SmolLM2 at small step counts.
Each run writes its config next to the output, resumes from the last checkpoint in ``out``, and
can export the result for the embedded CPU engine (``export_ct2``), loadable as ``ct2:PATH``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..training import TrainerOptions, finish, model_path, prepare_output, train_trl


@dataclass
class TCGTrainConfig(TrainerOptions):
    """What to train and how (shared by SFT and DPO)."""

    out: str = "results/tcg-sft"
    dataset: str = "mbpp"
    data_path: str | None = None  # MBPP: the split folder, or CODEGYM_MBPP_PATH
    split: str | None = None  # MBPP: "train" when not given
    training: bool | None = None  # True marks a split that is not a training split for training
    on_error: str = "raise"  # a malformed record: "raise" or "skip"
    beta: float = 0.1  # DPO


def _problems(config: TCGTrainConfig):
    """The training problems: only a split marked for training has the references that label rows."""
    from ..datasets import load_dataset

    split = config.split or ("train" if config.dataset.lower().startswith("mbpp") else None)
    dataset = load_dataset(config.dataset, data_path=config.data_path, split=split, training=config.training,
                           on_error=config.on_error)
    problems = [p for p in dataset.problems if p.training]
    if not problems:
        raise ValueError("%s is not a training split: train on one (e.g. mbpp --split train), or pass training=True "
                         "(--mark-training) to train on it anyway" % dataset.name)
    return problems


def train_sft(config: TCGTrainConfig) -> dict:
    from .data import sft_rows

    rows = sft_rows(_problems(config))
    if not rows:
        raise ValueError("no SFT rows: the dataset has no function problems with call tests")
    out = prepare_output(config.out, config)
    return finish(train_trl("sft", rows, config, out, model_path(config.model)), config, out)


def train_dpo(config: TCGTrainConfig) -> dict:
    from .data import dpo_rows

    rows = dpo_rows(_problems(config), seed=config.seed)
    if not rows:
        raise ValueError("no DPO rows: the dataset has no function problems with call tests")
    out = prepare_output(config.out, config)
    return finish(train_trl("dpo", rows, config, out, model_path(config.model)), config, out)
