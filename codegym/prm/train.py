"""Training PRMs on the labels of ``codegym prm data``.

* ``kind="token"`` (:class:`~codegym.prm.model.TokenPRM`), point-wise on ``stepwise_*.jsonl``:
  O1-CODER's soft-label cross-entropy at each step's rating tag. With label p in [0, 1] and
  q = softmax(logit(" +"), logit(" -")), loss = -(p log q+ + (1 - p) log q-). TRL's ``PRMTrainer``
  casts float labels with ``int()``, so soft labels need this loss.
* ``kind="value"`` (:class:`~codegym.prm.model.ValuePRM`): a scalar head on each tag's hidden
  state; ``objective="point"`` is the same soft cross-entropy on sigmoid(v) (stepwise rows),
  ``objective="pair"`` is Bradley-Terry, -log sigmoid(v_chosen - v_rejected), on ``pairs.jsonl``.

The rest is a plain transformers ``Trainer`` and the shared plumbing of :mod:`codegym.training`
(config written, resume after a kill, LoRA, final save).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass
class PRMTrainConfig:
    """What to train and how."""

    labels: str = ""  # stepwise_*.jsonl (point-wise) or pairs.jsonl (objective="pair")
    kind: str = "token"  # "token" or "value"
    objective: str = "point"  # "point" or (value only) "pair"
    model: str = "smollm2"  # a transformers path/id, or "smollm2" for the embedded weights
    out: str = "results/prm-token"
    max_steps: int = 60
    batch_size: int = 4
    learning_rate: float = 5e-5
    max_length: int = 1024
    lora: bool = False
    lora_rank: int = 16
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in ("token", "value"):
            raise ValueError("kind must be 'token' or 'value', not %r" % self.kind)
        if self.objective not in ("point", "pair") or (self.kind == "token" and self.objective == "pair"):
            raise ValueError("objective must be 'point', or 'pair' for a value PRM")


def _rows(path: str | Path, need: tuple[str, ...]) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError("no labels file %s (write one with codegym prm data)" % path)
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if line.strip():
            row = json.loads(line)
            missing = [name for name in need if name not in row]
            if missing:
                raise ValueError("%s:%d: missing %s" % (path, number, ", ".join(missing)))
            rows.append((number, row))
    if not rows:
        raise ValueError("%s holds no rows" % path)
    return rows


def read_stepwise(path: str | Path) -> list[dict]:
    """Stepwise rows, checked: one label in [0, 1] per completion."""
    rows = []
    for number, row in _rows(path, ("prompt", "completions", "labels")):
        labels, completions = row["labels"], row["completions"]
        if not isinstance(completions, list) or not isinstance(labels, list) or len(labels) != len(completions):
            raise ValueError("%s:%d: a row needs completions and as many labels" % (path, number))
        if not all(isinstance(x, (int, float)) and 0 <= x <= 1 for x in labels):
            raise ValueError("%s:%d: labels must be numbers in [0, 1]" % (path, number))
        rows.append(row)
    return rows


def read_pairs(path: str | Path) -> list[dict]:
    return [row for _, row in _rows(path, ("prompt", "chosen", "rejected"))]


def soft_rating_loss(logits, tags, labels, good: int, bad: int):
    """Mean soft-label cross-entropy at the rating tags (``tags``: (row, position) index tensors)."""
    import torch

    pair = logits[tags[0], tags[1]][:, [good, bad]].float().log_softmax(-1)
    target = torch.stack([labels, 1 - labels], dim=-1)
    return -(target * pair).sum(-1).mean()


def _pad(sequences: list[list[int]], pad: int):
    import torch

    width = max(map(len, sequences))
    ids = torch.full((len(sequences), width), pad, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for i, row in enumerate(sequences):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    return ids, mask


def train_prm(config: PRMTrainConfig) -> dict:
    """Train the PRM ``config`` describes; returns (and writes) the training summary."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments

    from ..training import cuda, last_checkpoint, lora_config, model_path, prepare_output, save_final, write_summary
    from .model import VALUE_HEAD, StepEncoder, rating_ids, value_head

    rows = read_pairs(config.labels) if config.objective == "pair" else read_stepwise(config.labels)
    path = model_path(config.model)
    tokenizer = AutoTokenizer.from_pretrained(path)
    good, bad = rating_ids(tokenizer)
    encoder = StepEncoder(tokenizer, config.max_length)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    if config.objective == "pair":
        examples = [{side: encoder.encode(r["prompt"], [r[side]]) for side in ("chosen", "rejected")} for r in rows]
    else:
        examples = [{"encoded": encoder.encode(r["prompt"], r["completions"]), "labels": [float(x) for x in r["labels"]]}
                    for r in rows]

    def collate(batch: list[dict]) -> dict:
        if config.objective == "pair":
            encoded = [b["chosen"] for b in batch] + [b["rejected"] for b in batch]
            labels = []
        else:
            encoded = [b["encoded"] for b in batch]
            labels = [x for b in batch for x in b["labels"]]
        ids, mask = _pad([e.ids for e in encoded], pad)
        rows_index = [i for i, e in enumerate(encoded) for _ in e.tags]
        positions = [p for e in encoded for p in e.tags]
        return {"input_ids": ids, "attention_mask": mask, "tag_rows": torch.tensor(rows_index),
                "tag_positions": torch.tensor(positions), "rating_labels": torch.tensor(labels)}

    lm = AutoModelForCausalLM.from_pretrained(path)
    peft = lora_config(config.lora, config.lora_rank)
    if peft is not None:
        from peft import get_peft_model

        lm = get_peft_model(lm, peft)
    head = value_head(lm.config.hidden_size) if config.kind == "value" else None

    class WithHead(torch.nn.Module):
        """The language model and the value head, trained together."""

        def __init__(self):
            super().__init__()
            self.lm, self.head = lm, head

        def forward(self, input_ids, attention_mask):
            hidden = self.lm(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True).hidden_states
            return self.head(hidden[-1]).squeeze(-1)

    class PRMTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            tags = (inputs["tag_rows"], inputs["tag_positions"])
            if config.kind == "token":
                outputs = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
                loss = soft_rating_loss(outputs.logits, tags, inputs["rating_labels"], good, bad)
                return (loss, outputs) if return_outputs else loss
            values = model(inputs["input_ids"], inputs["attention_mask"])[tags[0], tags[1]].float()
            if config.objective == "pair":
                half = values.shape[0] // 2
                loss = -torch.nn.functional.logsigmoid(values[:half] - values[half:]).mean()
            else:
                loss = torch.nn.functional.binary_cross_entropy_with_logits(values, inputs["rating_labels"])
            return (loss, values) if return_outputs else loss

        def _save(self, output_dir=None, state_dict=None):
            if head is None:
                return super()._save(output_dir, state_dict)
            # the LM and its head in one state dict; safetensors refuses the LM's tied embeddings
            Path(output_dir).mkdir(parents=True, exist_ok=True)
            torch.save(self.model.state_dict(), Path(output_dir) / "pytorch_model.bin")

    out = prepare_output(config.out, config)
    args = TrainingArguments(output_dir=str(out), max_steps=config.max_steps, per_device_train_batch_size=config.batch_size,
                             learning_rate=config.learning_rate, logging_steps=5, save_steps=max(10, config.max_steps // 3),
                             save_total_limit=2, report_to=[], seed=config.seed, use_cpu=not cuda(),
                             remove_unused_columns=False, disable_tqdm=False)
    trainer = PRMTrainer(model=WithHead() if head is not None else lm, args=args, train_dataset=examples,
                         data_collator=collate, processing_class=tokenizer)
    trainer.train(resume_from_checkpoint=last_checkpoint(out))
    summary = save_final(trainer, out, merge_lora=config.lora, model=lm)
    if head is not None:
        torch.save(head.state_dict(), Path(summary["final"]) / VALUE_HEAD)
    summary.update(kind=config.kind, objective=config.objective, rows=len(rows))
    return write_summary(out, summary)
