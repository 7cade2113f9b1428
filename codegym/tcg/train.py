"""Training the test case generator with TRL: SFT, then DPO (optionally LoRA through PEFT).

Works on any transformers causal LM; on CPU with the embedded SmolLM2 at small step counts.
Each run writes its config next to the output, resumes from the last checkpoint in ``out``, and
can export the result for the embedded CPU engine (``export_ct2``), loadable as ``ct2:PATH``.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path


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


def _model_path(name: str) -> str:
    if name.lower() in ("smollm2", "embedded", "default"):
        from ..llm.embedded import prepare_embedded

        return str(prepare_embedded() / "hf")
    return name


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


def _last_checkpoint(out: Path) -> str | None:
    checkpoints = sorted(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    return str(checkpoints[-1]) if checkpoints else None


def _peft(config: TCGTrainConfig):
    if not config.lora:
        return None
    from peft import LoraConfig

    return LoraConfig(r=config.lora_rank, lora_alpha=2 * config.lora_rank, task_type="CAUSAL_LM",
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])


def _finish(trainer, config: TCGTrainConfig, out: Path, model_path: str) -> dict:
    model = trainer.model
    if config.lora:
        model = model.merge_and_unload()
    final = out / "final"
    model.save_pretrained(final)
    trainer.processing_class.save_pretrained(final)
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    summary = {"first_loss": losses[0] if losses else None, "last_loss": losses[-1] if losses else None,
               "steps": trainer.state.global_step, "final": str(final)}
    if config.export_ct2:
        from ctranslate2.converters import TransformersConverter

        tokenizer_files = [name for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja")
                           if (final / name).exists()]
        TransformersConverter(str(final), copy_files=tokenizer_files).convert(str(out / "ct2"), quantization="int8",
                                                                               force=True)
        summary["ct2"] = str(out / "ct2")
    (out / "train_summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _prepare(config: TCGTrainConfig) -> tuple[Path, str]:
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_config.json").write_text(json.dumps(asdict(config), indent=2))
    os.environ.setdefault("WANDB_DISABLED", "true")
    return out, _model_path(config.model)


def _training_packages() -> None:
    import importlib.util

    missing = [name for name in ("datasets", "trl") if importlib.util.find_spec(name) is None]
    if missing:
        raise ValueError("TCG training needs %s: pip install 'codegym[train]'" % " and ".join(missing))


def train_sft(config: TCGTrainConfig) -> dict:
    from .data import sft_rows

    rows = sft_rows(_problems(config))
    if not rows:
        raise ValueError("no SFT rows: the dataset has no function problems with call tests")
    _training_packages()
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    out, model_path = _prepare(config)
    args = SFTConfig(output_dir=str(out), max_steps=config.max_steps, per_device_train_batch_size=config.batch_size,
                     learning_rate=config.learning_rate, logging_steps=5, save_steps=max(10, config.max_steps // 3),
                     save_total_limit=2, report_to=[], seed=config.seed, use_cpu=not _cuda(), completion_only_loss=True,
                     disable_tqdm=False, gradient_checkpointing=False)
    trainer = SFTTrainer(model=model_path, args=args, train_dataset=Dataset.from_list(rows),
                         processing_class=AutoTokenizer.from_pretrained(model_path), peft_config=_peft(config))
    trainer.train(resume_from_checkpoint=_last_checkpoint(out))
    return _finish(trainer, config, out, model_path)


def train_dpo(config: TCGTrainConfig) -> dict:
    from .data import dpo_rows

    rows = dpo_rows(_problems(config), seed=config.seed)
    if not rows:
        raise ValueError("no DPO rows: the dataset has no function problems with call tests")
    _training_packages()
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    out, model_path = _prepare(config)
    args = DPOConfig(output_dir=str(out), max_steps=config.max_steps, per_device_train_batch_size=config.batch_size,
                     learning_rate=config.learning_rate, beta=config.beta, logging_steps=5,
                     save_steps=max(10, config.max_steps // 3), save_total_limit=2, report_to=[], seed=config.seed,
                     use_cpu=not _cuda(), disable_tqdm=False, gradient_checkpointing=False)
    trainer = DPOTrainer(model=model_path, args=args, train_dataset=Dataset.from_list(rows),
                         processing_class=AutoTokenizer.from_pretrained(model_path), peft_config=_peft(config))
    trainer.train(resume_from_checkpoint=_last_checkpoint(out))
    return _finish(trainer, config, out, model_path)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()
