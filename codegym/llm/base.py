"""One generation API for every backend: requests in, ``n`` completions per request out.

Backends implement :meth:`Backend._generate` on a flat list of prompts that share sampling
parameters; this class adds the rest once: chat rendering, ``n`` expansion, the persistent
cache, stop-string truncation for engines that cannot stop on strings, and usage accounting.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal

Message = dict[str, str]
FinishReason = Literal["stop", "length"]


@dataclass(frozen=True)
class GenerationRequest:
    """One prompt (text, or chat ``messages``) and how to sample from it.

    ``assistant_prefix`` is appended after the chat template's generation prompt (or after a text
    prompt) and is *not* part of the completion: it lets a caller start the answer, e.g. with
    ``"[define]\\n"``, so that a small model writes exactly one step of the right kind.
    """

    prompt: str | None = None
    messages: tuple[Message, ...] | None = None
    n: int = 1
    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    repetition_penalty: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int = 0
    assistant_prefix: str = ""

    def __post_init__(self) -> None:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("a request has either a prompt or messages, not both")
        if self.messages is not None:
            object.__setattr__(self, "messages", tuple(dict(m) for m in self.messages))
            for message in self.messages:
                if set(message) != {"role", "content"} or not isinstance(message["content"], str):
                    raise ValueError("a message is {'role': ..., 'content': str}")
        object.__setattr__(self, "stop", tuple(self.stop))
        if self.n < 1 or self.max_new_tokens < 1:
            raise ValueError("n and max_new_tokens must be at least 1")
        if self.temperature < 0 or not 0 < self.top_p <= 1 or self.top_k < 0 or self.repetition_penalty <= 0:
            raise ValueError("need temperature >= 0, 0 < top_p <= 1, top_k >= 0, repetition_penalty > 0")

    def sampling_key(self) -> tuple:
        return (self.max_new_tokens,) + self.decoding_key()

    def decoding_key(self) -> tuple:
        """What must be equal for two prompts to share one ragged engine call."""
        return (self.temperature, self.top_p, self.top_k, self.repetition_penalty, self.stop)


@dataclass
class Completion:
    """One sampled continuation."""

    text: str
    tokens: int
    finish_reason: FinishReason
    token_logprobs: list[float] | None = None
    cached: bool = False

    @property
    def logprob_sum(self) -> float | None:
        return None if self.token_logprobs is None else float(sum(self.token_logprobs))

    @property
    def logprob_mean(self) -> float | None:
        if not self.token_logprobs:
            return None
        return float(sum(self.token_logprobs)) / len(self.token_logprobs)


@dataclass
class Usage:
    """Compute spent: what agents are compared on. Cached completions count their tokens too,
    so replaying an experiment from the cache reports the same compute."""

    calls: int = 0
    prompt_tokens: int = 0
    generated_tokens: int = 0
    completions: int = 0
    cache_hits: int = 0

    def add(self, other: Usage) -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class GenerationOutput:
    results: list[list[Completion]]
    usage: Usage = field(default_factory=Usage)
    prompt_tokens: list[int] = field(default_factory=list)  # per request, n samples included


@dataclass(frozen=True)
class Capabilities:
    logprobs: bool = False
    prefix_caching: bool = False
    chat_template: bool = False
    stop_strings: bool = True  # stops on strings while generating (else: truncated afterwards)
    # one engine call takes prompts with different seeds and token limits (``_generate``'s ``limits``)
    ragged_batches: bool = False


class Backend:
    """Base class of every backend. Subclasses set ``model_id`` and ``capabilities`` and
    implement ``_generate``, ``count_tokens`` and (with a chat template) ``render_chat``."""

    model_id: str = "backend"
    capabilities: Capabilities = Capabilities()

    def __init__(self, cache=None):
        self.cache = cache
        self.usage = Usage()
        self._usage_lock = threading.Lock()

    # -- what subclasses provide ------------------------------------------------------------
    def _generate(self, prompts: list[str], request: GenerationRequest, seeds: list[int],
                  limits: list[int] | None = None) -> list[Completion]:
        """Generate one completion per prompt, all with ``request``'s sampling parameters;
        ``seeds[i]`` identifies sample i (request seed + sample index). Backends with
        ``ragged_batches`` also get ``limits[i]``, prompt i's own ``max_new_tokens``."""
        raise NotImplementedError

    def count_tokens(self, text: str) -> int:
        return max(1, len(text) // 4)

    def render_chat(self, messages: Sequence[Message]) -> str:
        if not self.capabilities.chat_template:
            raise ValueError("%s has no chat template: send plain prompts" % self.model_id)
        raise NotImplementedError

    def close(self) -> None:
        """Release the model (servers, processes, GPU memory)."""

    # -- the public API ------------------------------------------------------------------------
    def prompt_text(self, request: GenerationRequest) -> str:
        """The exact text the model continues (chat rendered, assistant prefix appended)."""
        base = request.prompt if request.messages is None else self.render_chat(list(request.messages))
        return base + request.assistant_prefix

    def generate(self, requests: Sequence[GenerationRequest]) -> GenerationOutput:
        """``n`` completions for each request, in order. Requests with equal sampling parameters
        and seed go to the engine as one batch, so a result depends only on its group: agents
        that want batching give the requests of one call the same seed (samples differ by index).
        A ``ragged_batches`` engine gets every request with equal decoding parameters in one batch,
        whatever their seeds and token limits."""
        requests = list(requests)
        ragged = self.capabilities.ragged_batches
        usage = Usage(calls=1)
        texts = [self.prompt_text(r) for r in requests]
        results: list[list[Completion | None]] = [[None] * r.n for r in requests]
        pending: dict[tuple, list[tuple[int, int]]] = {}
        prompt_tokens = [self.count_tokens(text) * request.n for request, text in zip(requests, texts)]
        usage.prompt_tokens = sum(prompt_tokens)
        for i, (request, text) in enumerate(zip(requests, texts)):
            for sample in range(request.n):
                hit = self.cache.get(self._cache_key(text, request, sample)) if self.cache is not None else None
                if hit is not None:
                    results[i][sample] = replace(hit, cached=True)
                    usage.cache_hits += 1
                else:
                    key = request.decoding_key() if ragged else request.sampling_key() + (request.seed,)
                    pending.setdefault(key, []).append((i, sample))
        for slots in pending.values():
            template = requests[slots[0][0]]
            prompts = [texts[i] for i, _ in slots]
            seeds = [requests[i].seed + sample for i, sample in slots]
            if ragged:
                limits = [requests[i].max_new_tokens for i, _ in slots]
                completions = self._generate(prompts, replace(template, max_new_tokens=max(limits)), seeds, limits)
            else:
                completions = self._generate(prompts, template, seeds)
            if len(completions) != len(prompts):
                raise RuntimeError("%s returned %d completions for %d prompts" % (self.model_id, len(completions),
                                                                                   len(prompts)))
            for (i, sample), completion in zip(slots, completions):
                completion = truncate_at_stop(completion, requests[i].stop)
                results[i][sample] = completion
                if self.cache is not None:
                    self.cache.put(self._cache_key(texts[i], requests[i], sample), completion)
        flat = [c for row in results for c in row]
        usage.completions = len(flat)
        usage.generated_tokens = sum(c.tokens for c in flat)
        with self._usage_lock:
            self.usage.add(usage)
        return GenerationOutput(results=results, usage=usage, prompt_tokens=prompt_tokens)  # type: ignore[arg-type]

    def __getstate__(self) -> dict:
        """Pickling (e.g. to a Ray worker) drops the lock; engines that cannot travel fail here."""
        state = dict(self.__dict__)
        state.pop("_usage_lock", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._usage_lock = threading.Lock()

    def _cache_key(self, text: str, request: GenerationRequest, sample: int) -> tuple:
        return (self.model_id, text, request.sampling_key(), request.seed, sample)

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class WrappedBackend(Backend):
    """A backend in front of another (budgets, batching, timing): the same model, prompt rendering
    and token counts; subclasses change ``generate`` and record what passed through."""

    def __init__(self, inner: Backend):
        super().__init__(cache=None)
        self.inner, self.model_id, self.capabilities = inner, inner.model_id, inner.capabilities

    def prompt_text(self, request: GenerationRequest) -> str:
        return self.inner.prompt_text(request)

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def _record(self, output: GenerationOutput) -> GenerationOutput:
        with self._usage_lock:
            self.usage.add(output.usage)
        return output


def weights_id(kind: str, path: str | os.PathLike) -> str:
    """A backend's model id for a local model folder: the kind, the path, and a digest of its weight
    files' sizes and modification times, so that retraining into the same folder never replays the
    old model's generations from the generation cache. A hub id is kept as it is."""
    folder = Path(path)
    if not folder.is_dir():
        return "%s:%s" % (kind, path)
    files = sorted(f for f in folder.iterdir() if f.suffix in (".bin", ".safetensors", ".pt") and f.is_file())
    digest = hashlib.sha256(repr([(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files]).encode())
    return "%s:%s@%s" % (kind, path, digest.hexdigest()[:12])


def hit_stop(tokenizer, ids: list[int], stops: Sequence[str]) -> bool:
    """Whether the last tokens of ``ids`` decode to text containing a stop string (checked while
    decoding, so a finished sequence frees its batch row; a 16-token window covers any stop)."""
    return bool(stops) and any(s in tokenizer.decode(ids[-16:]) for s in stops)


def stop_position(text: str, stop: Sequence[str]) -> int:
    """Where the first stop string starts in ``text`` (-1: none occurs)."""
    return min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)


def truncate_at_stop(completion: Completion, stop: Sequence[str]) -> Completion:
    """Cut the text at the first stop string (which is not included)."""
    cut = stop_position(completion.text, stop)
    if cut < 0:
        return completion
    return replace(completion, text=completion.text[:cut], finish_reason="stop")
