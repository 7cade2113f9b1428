"""Process reward models on a causal LM, and the baseline they must beat.

* :class:`TokenPRM`: after each step comes a rating tag (``"\\nRating:"``); the step's score is
  the model's probability of ``" +"`` against ``" -"`` as the next token (O1-CODER's and
  Math-Shepherd's token PRM). Trained by :mod:`codegym.prm.train` with a soft-label loss.
* :class:`LogProbPRM`: no training: a step's score is the exponentiated mean log-probability of its
  tokens under a causal LM given the problem and the steps before it (the policy's own confidence).

Both score every step of many trajectories in batched forward passes (right-padded; a step's
score does not depend on its batch) and count the tokens they read (``tokens_read``), so the PRM's
compute can be reported beside the policy's. ``load_prm(spec)``: ``token:PATH``, ``value:PATH``,
``logprob:PATH`` (``smollm2`` for the embedded weights), ``remote:URL`` (:class:`RemotePRM`, a
PRM served by ``codegym serve --prm SPEC``).

* :class:`ValuePRM`: a scalar head on the hidden state at each step's rating tag, squashed to
  (0, 1); trained point-wise (cross-entropy on soft labels) or pair-wise (Bradley-Terry on
  sibling pairs), as rStar-Math's process preference model.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from ..datasets import Problem
from ..envs.steps import Step, format_step

RATING_TAG = "\nRating:"
GOOD, BAD = " +", " -"


@dataclass
class Encoded:
    """One trajectory as token ids: where each step's rating tag ends, and each step's token span."""

    ids: list[int]
    tags: list[int]
    spans: list[tuple[int, int]]


class StepEncoder:
    """Builds token ids piece by piece, so positions are exact (no re-tokenisation drift). A
    sequence over ``max_length`` loses the start of its problem text, never a step."""

    def __init__(self, tokenizer, max_length: int = 1024):
        self.tokenizer, self.max_length = tokenizer, max_length

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def encode(self, prompt: str, steps: Sequence[str], tags: bool = True) -> Encoded:
        head = self._ids(prompt)
        body, tag_positions, spans = [], [], []
        for step in steps:
            start = len(body)
            body += self._ids("\n" + step)
            spans.append((start, len(body)))
            if tags:
                body += self._ids(RATING_TAG)
                tag_positions.append(len(body) - 1)
        head = head[max(0, len(head) + len(body) - self.max_length):]
        shift = len(head)
        return Encoded(head + body, [p + shift for p in tag_positions], [(a + shift, b + shift) for a, b in spans])


def _batches(encoded: list[Encoded], size: int):
    """Indices in batches of similar length (longest first), each batch right-padded."""
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i].ids))
    for start in range(0, len(order), size):
        yield order[start:start + size]


def _score_episode(prm, problem: Problem, steps: Sequence[Step]) -> list[float]:
    """The scores of an episode's steps, with the problem shown as the environment shows it."""
    from ..envs import render_problem

    return prm.score_many([(render_problem(problem), [format_step(s.kind, s.text) for s in steps])])[0]


class _CausalLMScorer:
    """Batched step scoring with a score cache keyed by (prompt, steps): a search asks for the
    same prefix again (a node's value, then its children's), and a cached answer reads no tokens,
    so ``tokens_read`` counts only the compute spent."""

    def __init__(self, path: str, device: str | None = None, batch_size: int = 8, max_length: int = 1024,
                 cache_size: int = 65536):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from ..training import model_path

        path = model_path(path)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForCausalLM.from_pretrained(path).to(self.device).eval()
        self.encoder = StepEncoder(self.tokenizer, max_length)
        self.batch_size, self.tokens_read, self.path = batch_size, 0, path
        self.cache: OrderedDict[tuple[str, tuple[str, ...]], list[float]] = OrderedDict()
        self.cache_size, self.cache_hits = cache_size, 0
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0

    def _logits(self, rows: list[list[int]]):
        """The model's per-position outputs for right-padded ``rows`` (logits; hidden states and
        the value head's scores for :class:`ValuePRM`)."""
        import torch

        width = max(map(len, rows))
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row)
            mask[i, : len(row)] = 1
        self.tokens_read += sum(map(len, rows))
        with torch.no_grad():
            output = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                                output_hidden_states=self.wants_hidden)
        return self._outputs(output)

    wants_hidden = False

    def _outputs(self, output):
        return output.logits.float()

    def score(self, problem: Problem, steps: Sequence[Step]) -> list[float]:
        return _score_episode(self, problem, steps)

    def score_many(self, items: Sequence[tuple[str, Sequence[str]]], progress: bool = False) -> list[list[float]]:
        """One score per step of each (prompt, step texts) item (``progress``: a bar per batch)."""
        from tqdm import tqdm

        keys = [(prompt, tuple(steps)) for prompt, steps in items]
        todo = list(dict.fromkeys(key for key in keys if key not in self.cache))  # each new item once
        self.cache_hits += len(keys) - len(todo)
        encoded = [self._encode(prompt, list(steps)) for prompt, steps in todo]
        batches = list(_batches(encoded, self.batch_size))
        fresh: dict[tuple[str, tuple[str, ...]], list[float]] = {}
        for batch in tqdm(batches, desc="prm", unit="batch", disable=not progress):
            logits = self._logits([encoded[i].ids for i in batch])
            for row, index in enumerate(batch):
                fresh[todo[index]] = self._read(logits[row], encoded[index])
        scores = [list(fresh[key]) if key in fresh else list(self.cache[key]) for key in keys]
        for key, value in fresh.items():
            self.cache[key] = value
        for key in keys:
            if key in self.cache:
                self.cache.move_to_end(key)
        while len(self.cache) > self.cache_size:
            self.cache.popitem(last=False)
        return scores


class TokenPRM(_CausalLMScorer):
    """p(" +") against p(" -") at the rating tag after each step."""

    def __init__(self, path: str, **options):
        super().__init__(path, **options)
        self.good, self.bad = rating_ids(self.tokenizer)

    def _encode(self, prompt: str, steps: Sequence[str]) -> Encoded:
        return self.encoder.encode(prompt, steps)

    def _read(self, logits, encoded: Encoded) -> list[float]:
        pair = logits[encoded.tags][:, [self.good, self.bad]]
        return pair.softmax(-1)[:, 0].tolist()


class LogProbPRM(_CausalLMScorer):
    """exp(mean log-probability of the step's tokens) given everything before it."""

    def _encode(self, prompt: str, steps: Sequence[str]) -> Encoded:
        return self.encoder.encode(prompt, steps, tags=False)

    def _read(self, logits, encoded: Encoded) -> list[float]:
        import torch

        log_probs = torch.log_softmax(logits, -1)
        ids = torch.tensor(encoded.ids)
        out = []
        for start, end in encoded.spans:
            start = max(start, 1)
            picked = log_probs[start - 1:end - 1].gather(1, ids[start:end].to(log_probs.device)[:, None])
            out.append(float(picked.mean().exp()) if end > start else 0.0)
        return out


VALUE_HEAD = "value_head.pt"


def value_head(hidden_size: int):
    """The scalar head on a step's last hidden state (rStar-Math's PPM), zero-initialised."""
    import torch

    head = torch.nn.Linear(hidden_size, 1)
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    return head


class ValuePRM(_CausalLMScorer):
    """sigmoid(head(last hidden state at the rating tag after each step)); the head is saved
    beside the model as ``value_head.pt`` by :func:`codegym.prm.train.train_value_prm`."""

    wants_hidden = True

    def __init__(self, path: str, **options):
        import os

        import torch

        super().__init__(path, **options)
        file = os.path.join(self.path, VALUE_HEAD)
        if not os.path.exists(file):
            raise FileNotFoundError("no %s in %s: train a value PRM with codegym prm train --kind value" % (VALUE_HEAD, path))
        self.head = value_head(self.model.config.hidden_size)
        self.head.load_state_dict(torch.load(file, map_location="cpu"))
        self.head.to(self.device).eval()

    def _outputs(self, output):
        import torch

        with torch.no_grad():
            return torch.sigmoid(self.head(output.hidden_states[-1].float())).squeeze(-1)

    def _encode(self, prompt: str, steps: Sequence[str]) -> Encoded:
        return self.encoder.encode(prompt, steps)

    def _read(self, values, encoded: Encoded) -> list[float]:
        return values[encoded.tags].tolist()


def rating_ids(tokenizer) -> tuple[int, int]:
    """The token ids of the ratings (each must be a single token)."""
    good, bad = (tokenizer(text, add_special_tokens=False)["input_ids"] for text in (GOOD, BAD))
    if len(good) != 1 or len(bad) != 1:
        raise ValueError("the tokenizer splits the ratings %r / %r into several tokens" % (GOOD, BAD))
    return good[0], bad[0]


class RemotePRM:
    """A PRM served over HTTP by ``codegym serve --prm SPEC`` (spec ``remote:URL``): many
    environment workers or cluster nodes share one loaded PRM. ``tokens_read`` adds up what the
    server read for this client's requests (its cache answers read nothing)."""

    def __init__(self, url: str, timeout_s: float = 300.0, **_options):
        self.url = url.rstrip("/").removesuffix("/v1")
        self.timeout_s, self.tokens_read = timeout_s, 0

    def score(self, problem: Problem, steps: Sequence[Step]) -> list[float]:
        return _score_episode(self, problem, steps)

    def score_many(self, items: Sequence[tuple[str, Sequence[str]]], progress: bool = False) -> list[list[float]]:
        from ..llm.http import post_json

        reply = post_json(self.url + "/v1/prm/score", {"items": [{"prompt": p, "steps": list(s)} for p, s in items]},
                          timeout_s=self.timeout_s)
        self.tokens_read += int(reply["tokens_read"])
        return reply["scores"]


KINDS = {"token": TokenPRM, "value": ValuePRM, "logprob": LogProbPRM, "remote": RemotePRM}


def check_prm_spec(spec: str) -> tuple[str, str]:
    """Validate a PRM spec without loading it (a one-line ValueError or FileNotFoundError): a
    known kind and a local model folder, so nothing is ever fetched from a hub."""
    import os

    kind, _, path = spec.partition(":")
    if kind not in KINDS or not path:
        raise ValueError("unknown PRM spec %r: use token:PATH, value:PATH, logprob:PATH (logprob:smollm2 for the "
                         "policy's weights) or remote:URL (a codegym serve --prm server)" % spec)
    if kind == "remote":
        if not path.startswith(("http://", "https://")):
            raise ValueError("PRM %r: remote:URL needs an http:// or https:// address" % spec)
        return kind, path
    if path.lower() not in ("smollm2", "embedded", "default") and not os.path.isdir(path):
        raise FileNotFoundError("PRM %r: no model folder at %s" % (spec, path))
    return kind, path


def load_prm(spec: str, **options):
    """A PRM from a spec: ``token:PATH``, ``value:PATH`` (trained PRMs) or ``logprob:PATH`` (the baseline)."""
    kind, path = check_prm_spec(spec)
    return KINDS[kind](path, **options)


def scored_steps(prm, rows: Sequence[dict], threshold: float = 0.5, progress: bool = False) -> dict[str, list]:
    """Each problem's labelled steps as (score, good) pairs, in row order (a label at or above
    ``threshold`` is a good step)."""
    scores = prm.score_many([(row["prompt"], row["completions"]) for row in rows], progress=progress)
    by_problem: dict[str, list[tuple[float, bool]]] = {}
    for index, (row, row_scores) in enumerate(zip(rows, scores)):
        steps = by_problem.setdefault(str(row.get("problem_id", index)), [])
        steps.extend((s, label >= threshold) for s, label in zip(row_scores, row["labels"]))
    return by_problem


def evaluate_prm(prm, rows: Sequence[dict], threshold: float = 0.5, progress: bool = False,
                 against=None) -> dict:
    """Step-level AUC (with a 95% interval, problems resampled) and accuracy of ``prm`` against
    stepwise rows' labels, over every labelled step. With ``against`` (another scorer, e.g. the
    log-prob baseline), that scorer's AUC on the same steps and the paired difference too."""
    from ..stats import auc, auc_interval, paired_auc_difference

    by_problem = scored_steps(prm, rows, threshold, progress)
    flat = [x for steps in by_problem.values() for x in steps]
    interval = auc_interval(list(by_problem.values()))
    result = {"steps": len(flat), "problems": len(by_problem), "positives": sum(p for _, p in flat),
              "auc": auc([s for s, _ in flat], [p for _, p in flat]), "auc_ci": list(interval) if interval else None,
              "accuracy": sum((s >= 0.5) == p for s, p in flat) / len(flat) if flat else None,
              "tokens_read": prm.tokens_read}
    if against is not None:
        other = scored_steps(against, rows, threshold, progress)
        mine, theirs = [by_problem[k] for k in by_problem], [other[k] for k in by_problem]
        pooled = [x for steps in theirs for x in steps]
        other_interval = auc_interval(theirs)
        result["against"] = {"auc": auc([s for s, _ in pooled], [p for _, p in pooled]),
                             "auc_ci": list(other_interval) if other_interval else None,
                             "tokens_read": against.tokens_read, **(paired_auc_difference(mine, theirs) or {})}
    return result


class MeteredPRM:
    """One user's view of a shared PRM: calls are serialised, and the tokens read for this user
    are counted in ``tokens_read`` (a benchmark row reports them beside the generated tokens)."""

    def __init__(self, inner, lock):
        self.inner, self.lock, self.tokens_read = inner, lock, 0

    def score(self, problem: Problem, steps: Sequence[Step]) -> list[float]:
        with self.lock:
            before = self.inner.tokens_read
            scores = self.inner.score(problem, steps)
            self.tokens_read += self.inner.tokens_read - before
        return scores
