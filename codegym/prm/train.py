"""Training a token PRM on stepwise labels (``codegym prm data``'s ``stepwise_*.jsonl``).

The loss is O1-CODER's soft-label cross-entropy at each step's rating tag: with label p in [0, 1]
and q = softmax(logit(" +"), logit(" -")), loss = -(p log q+ + (1 - p) log q-). TRL's
``PRMTrainer`` casts float labels with ``int()``, so soft labels need this loss; the rest is a
plain transformers ``Trainer`` and the shared plumbing of :mod:`codegym.training` (config written,
resume after a kill, LoRA, final save).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass
class PRMTrainConfig:
    """What to train and how."""

    labels: str = ""  # a stepwise_*.jsonl file
    model: str = "smollm2"  # a transformers path/id, or "smollm2" for the embedded weights
    out: str = "results/prm-token"
    max_steps: int = 60
    batch_size: int = 4
    learning_rate: float = 5e-5
    max_length: int = 1024
    lora: bool = False
    lora_rank: int = 16
    seed: int = 0


def read_stepwise(path: str | Path) -> list[dict]:
    """Stepwise rows, checked: one label in [0, 1] per completion."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError("no labels file %s (write one with codegym prm data)" % path)
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        row = json.loads(line)
        labels, completions = row.get("labels"), row.get("completions")
        if not isinstance(completions, list) or not isinstance(labels, list) or len(labels) != len(completions):
            raise ValueError("%s:%d: a row needs completions and as many labels" % (path, number))
        if not all(isinstance(x, (int, float)) and 0 <= x <= 1 for x in labels):
            raise ValueError("%s:%d: labels must be numbers in [0, 1]" % (path, number))
        rows.append(row)
    if not rows:
        raise ValueError("%s holds no rows" % path)
    return rows


def soft_rating_loss(logits, tags, labels, good: int, bad: int):
    """Mean soft-label cross-entropy at the rating tags (``tags``: (row, position) index tensors)."""
    import torch

    pair = logits[tags[0], tags[1]][:, [good, bad]].float().log_softmax(-1)
    target = torch.stack([labels, 1 - labels], dim=-1)
    return -(target * pair).sum(-1).mean()


def train_token_prm(config: PRMTrainConfig) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments

    from ..training import cuda, last_checkpoint, lora_config, model_path, prepare_output, save_final, write_summary
    from .model import StepEncoder, rating_ids

    rows = read_stepwise(config.labels)
    path = model_path(config.model)
    tokenizer = AutoTokenizer.from_pretrained(path)
    good, bad = rating_ids(tokenizer)
    encoder = StepEncoder(tokenizer, config.max_length)
    examples = []
    for row in rows:
        encoded = encoder.encode(row["prompt"], row["completions"])
        examples.append({"input_ids": encoded.ids, "tags": encoded.tags, "labels": [float(x) for x in row["labels"]]})
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def collate(batch: list[dict]) -> dict:
        width = max(len(b["input_ids"]) for b in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        rows_index, positions, labels = [], [], []
        for i, b in enumerate(batch):
            ids[i, : len(b["input_ids"])] = torch.tensor(b["input_ids"])
            mask[i, : len(b["input_ids"])] = 1
            rows_index += [i] * len(b["tags"])
            positions += b["tags"]
            labels += b["labels"]
        return {"input_ids": ids, "attention_mask": mask, "tag_rows": torch.tensor(rows_index),
                "tag_positions": torch.tensor(positions), "rating_labels": torch.tensor(labels)}

    class SoftRatingTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            outputs = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
            loss = soft_rating_loss(outputs.logits, (inputs["tag_rows"], inputs["tag_positions"]),
                                    inputs["rating_labels"], good, bad)
            return (loss, outputs) if return_outputs else loss

    out = prepare_output(config.out, config)
    model = AutoModelForCausalLM.from_pretrained(path)
    peft = lora_config(config.lora, config.lora_rank)
    if peft is not None:
        from peft import get_peft_model

        model = get_peft_model(model, peft)
    args = TrainingArguments(output_dir=str(out), max_steps=config.max_steps, per_device_train_batch_size=config.batch_size,
                             learning_rate=config.learning_rate, logging_steps=5, save_steps=max(10, config.max_steps // 3),
                             save_total_limit=2, report_to=[], seed=config.seed, use_cpu=not cuda(),
                             remove_unused_columns=False, disable_tqdm=False)
    trainer = SoftRatingTrainer(model=model, args=args, train_dataset=examples, data_collator=collate,
                                processing_class=tokenizer)
    trainer.train(resume_from_checkpoint=last_checkpoint(out))
    summary = save_final(trainer, out, merge_lora=config.lora)
    summary["rows"], summary["steps_labelled"] = len(rows), sum(len(r["labels"]) for r in rows)
    return write_summary(out, summary)
