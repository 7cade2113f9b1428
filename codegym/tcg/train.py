"""Training the test case generator with TRL: SFT, then DPO (optionally LoRA through PEFT); the
plumbing (output folder, resume, LoRA, final save) is :mod:`codegym.training`, shared with the PRM.

Works on any transformers causal LM; on CPU with the embedded SmolLM2 at small step counts.
Each run writes its config next to the output, resumes from the last checkpoint in ``out``, and
can export the result for the embedded CPU engine (``export_ct2``), loadable as ``ct2:PATH``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..training import cuda, last_checkpoint, lora_config, model_path, prepare_output, require, save_final, write_summary


@dataclass
class TCGTrainConfig:
    """What to train and how (shared by SFT and DPO)."""

    model: str = "smollm2"  # a transformers path/id, or "smollm2" for the embedded weights
    dataset: str = "mbpp"
    data_path: str | None = None  # MBPP: the split folder, or CODEGYM_MBPP_PATH
    split: str | None = None  # MBPP: "train" when not given
    training: bool | None = None  # True marks a split that is not a training split for training
    on_error: str = "raise"  # a malformed record: "raise" or "skip"
    out: str = "results/tcg-sft"
    max_steps: int = 60
    batch_size: int = 4
    learning_rate: float = 5e-5
    lora: bool = False
    lora_rank: int = 16
    beta: float = 0.1  # DPO
    seed: int = 0
    export_ct2: bool = True


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


def _finish(trainer, config: TCGTrainConfig, out: Path) -> dict:
    summary = save_final(trainer, out, merge_lora=config.lora)
    if config.export_ct2:
        from ctranslate2.converters import TransformersConverter

        final = Path(summary["final"])
        tokenizer_files = [name for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja")
                           if (final / name).exists()]
        TransformersConverter(str(final), copy_files=tokenizer_files).convert(str(out / "ct2"), quantization="int8",
                                                                               force=True)
        summary["ct2"] = str(out / "ct2")
    return write_summary(out, summary)


def train_sft(config: TCGTrainConfig) -> dict:
    from .data import sft_rows

    rows = sft_rows(_problems(config))
    if not rows:
        raise ValueError("no SFT rows: the dataset has no function problems with call tests")
    require("datasets", "trl")
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    out, model = prepare_output(config.out, config), model_path(config.model)
    args = SFTConfig(output_dir=str(out), max_steps=config.max_steps, per_device_train_batch_size=config.batch_size,
                     learning_rate=config.learning_rate, logging_steps=5, save_steps=max(10, config.max_steps // 3),
                     save_total_limit=2, report_to=[], seed=config.seed, use_cpu=not cuda(), completion_only_loss=True,
                     disable_tqdm=False, gradient_checkpointing=False)
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows),
                         processing_class=AutoTokenizer.from_pretrained(model),
                         peft_config=lora_config(config.lora, config.lora_rank))
    trainer.train(resume_from_checkpoint=last_checkpoint(out))
    return _finish(trainer, config, out)


def train_dpo(config: TCGTrainConfig) -> dict:
    from .data import dpo_rows

    rows = dpo_rows(_problems(config), seed=config.seed)
    if not rows:
        raise ValueError("no DPO rows: the dataset has no function problems with call tests")
    require("datasets", "trl")
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    out, model = prepare_output(config.out, config), model_path(config.model)
    args = DPOConfig(output_dir=str(out), max_steps=config.max_steps, per_device_train_batch_size=config.batch_size,
                     learning_rate=config.learning_rate, beta=config.beta, logging_steps=5,
                     save_steps=max(10, config.max_steps // 3), save_total_limit=2, report_to=[], seed=config.seed,
                     use_cpu=not cuda(), disable_tqdm=False, gradient_checkpointing=False)
    trainer = DPOTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows),
                         processing_class=AutoTokenizer.from_pretrained(model),
                         peft_config=lora_config(config.lora, config.lora_rank))
    trainer.train(resume_from_checkpoint=last_checkpoint(out))
    return _finish(trainer, config, out)
