"""Training plumbing shared by every trainer (TCG, PRM, policy): model paths, output folders that
record their config and resume, LoRA, the final save and its loss summary.

Each trainer keeps only what is its own (data rows, loss); everything here behaves the same for
all of them, so a run of any trainer writes ``train_config.json``, resumes from the last
``checkpoint-*`` in its output folder after a kill, and ends with ``final/`` and
``train_summary.json``.
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass
class TrainerOptions:
    """What every TRL-based trainer takes (TCG, policy SFT and DPO): the fields :func:`train_trl`
    and :func:`finish` read. A trainer's config subclasses it and adds its data."""

    model: str = "smollm2"  # a transformers path/id, or "smollm2" for the embedded weights
    out: str = "results/train"
    max_steps: int = 60
    batch_size: int = 4
    learning_rate: float = 5e-5
    lora: bool = False
    lora_rank: int = 16
    seed: int = 0
    export_ct2: bool = True  # also write OUT/ct2, loadable as ct2:OUT/ct2


def model_path(name: str) -> str:
    """A transformers path or id; ``smollm2`` is the embedded model's weights."""
    if name.lower() in ("smollm2", "embedded", "default"):
        from .llm.embedded import prepare_embedded

        return str(prepare_embedded() / "hf")
    return name


def require(*packages: str) -> None:
    """A one-line error naming the extra to install when a training package is missing."""
    missing = [name for name in packages if importlib.util.find_spec(name) is None]
    if missing:
        raise ValueError("training needs %s: pip install 'codegym[train]'" % " and ".join(missing))


def prepare_output(out: str | os.PathLike, config: Any, may_change: tuple[str, ...] = ("max_steps", "timesteps")) -> Path:
    """Create ``out`` and write the run's config there (a dataclass). A folder that holds a run
    with other settings is refused (a resume would mix the two); only ``may_change`` (how long to
    train) may differ, so a rerun with more steps continues."""
    path = Path(out)
    path.mkdir(parents=True, exist_ok=True)
    mine, file = asdict(config), path / "train_config.json"
    if file.exists():
        theirs = json.loads(file.read_text())
        changed = sorted(k for k in set(mine) | set(theirs) if k not in may_change and mine.get(k) != theirs.get(k))
        if changed:
            raise ValueError("%s holds a training run with other settings (%s); use another --out"
                             % (path, ", ".join(changed)))
    file.write_text(json.dumps(mine, indent=2))
    os.environ.setdefault("WANDB_DISABLED", "true")
    return path


def last_checkpoint(out: Path) -> str | None:
    """The newest complete ``checkpoint-N`` folder in ``out`` (a run killed mid-way resumes
    there; a folder cut short while saving has no ``trainer_state.json`` and is passed over)."""
    checkpoints = sorted((p for p in out.glob("checkpoint-*") if (p / "trainer_state.json").exists()),
                         key=lambda p: int(p.name.split("-")[-1]))
    return str(checkpoints[-1]) if checkpoints else None


def lora_config(enabled: bool, rank: int):
    """PEFT LoRA on the attention projections, or None."""
    if not enabled:
        return None
    from peft import LoraConfig

    return LoraConfig(r=rank, lora_alpha=2 * rank, task_type="CAUSAL_LM",
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])


def cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def save_final(trainer, out: Path, merge_lora: bool, model=None) -> dict:
    """Save the trained model (``model``, else the trainer's) and tokenizer to ``out/final``;
    returns the loss summary."""
    model = model if model is not None else trainer.model
    model = model.merge_and_unload() if merge_lora else model
    final = out / "final"
    model.save_pretrained(final)
    trainer.processing_class.save_pretrained(final)
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    return {"first_loss": losses[0] if losses else None, "last_loss": losses[-1] if losses else None,
            "steps": trainer.state.global_step, "final": str(final)}


def write_summary(out: Path, summary: dict) -> dict:
    (out / "train_summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def train_trl(method: str, rows: list[dict], config: Any, out: Path, model: str):
    """Run TRL's ``SFTTrainer`` (``method="sft"``: prompt/completion rows, loss on the completion)
    or ``DPOTrainer`` (``"dpo"``: prompt/chosen/rejected rows) on ``rows``, resuming from the last
    checkpoint in ``out``; returns the trainer. ``config`` carries the shared fields
    (max_steps, batch_size, learning_rate, lora, lora_rank, seed, and beta for DPO)."""
    require("datasets", "trl")
    from datasets import Dataset
    from transformers import AutoTokenizer

    common = dict(output_dir=str(out), max_steps=config.max_steps, per_device_train_batch_size=config.batch_size,
                  learning_rate=config.learning_rate, logging_steps=5, save_steps=max(10, config.max_steps // 3),
                  save_total_limit=2, report_to=[], seed=config.seed, use_cpu=not cuda(), disable_tqdm=False,
                  gradient_checkpointing=False)
    if method == "sft":
        from trl import SFTConfig as Arguments
        from trl import SFTTrainer as Trainer

        common["completion_only_loss"] = True
    elif method == "dpo":
        from trl import DPOConfig as Arguments
        from trl import DPOTrainer as Trainer

        common["beta"] = config.beta
    else:
        raise ValueError("method must be 'sft' or 'dpo', not %r" % method)
    trainer = Trainer(model=model, args=Arguments(**common), train_dataset=Dataset.from_list(rows),
                      processing_class=AutoTokenizer.from_pretrained(model),
                      peft_config=lora_config(config.lora, config.lora_rank))
    trainer.train(resume_from_checkpoint=last_checkpoint(out))
    return trainer


def export_ct2(final: Path, out: Path) -> str:
    """The CTranslate2 int8 export of a saved model (``ct2:OUT`` loads it)."""
    from ctranslate2.converters import TransformersConverter

    tokenizer_files = [name for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja")
                       if (final / name).exists()]
    TransformersConverter(str(final), copy_files=tokenizer_files).convert(str(out), quantization="int8", force=True)
    return str(out)


def finish(trainer, config: Any, out: Path) -> dict:
    """Save ``final/`` (LoRA merged), export ``ct2/`` when ``config.export_ct2``, write the summary."""
    summary = save_final(trainer, out, merge_lora=config.lora)
    if getattr(config, "export_ct2", False):
        summary["ct2"] = export_ct2(Path(summary["final"]), out / "ct2")
    return write_summary(out, summary)
