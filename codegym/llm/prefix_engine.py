"""A small Llama-family inference engine in plain torch, built for tree search on a CPU.

Why it exists: a search step's prompt is the problem plus the steps so far, ~5 prompt tokens per
generated token, and consecutive prompts overlap almost entirely (a child's prompt extends its
parent's). CTranslate2 re-reads every prompt on every call; this engine keeps prompts' key/value
states in a block prefix cache across calls, so a child step pays only for its new tokens,
siblings (``n`` samples, or equal prompts in one call) share one prefill, and every sequence of a
call decodes in one batch. On CPUs with AMX/AVX-512 bf16 it runs in bfloat16.

Sampling draws from one random stream per sequence, seeded by that sample's seed, so a sample does
not depend on which other prompts shared its call (up to bf16 rounding in batched matrix products).
``token_logprobs`` are the model's own log-probabilities (before temperature and penalties).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .base import Backend, Capabilities, Completion, GenerationRequest, Message, hit_stop, weights_id


@dataclass
class _Layer:
    attn_norm: torch.Tensor
    qkv: torch.Tensor
    out: torch.Tensor
    mlp_norm: torch.Tensor
    gate_up: torch.Tensor
    down: torch.Tensor


class LlamaModel:
    """Llama-architecture forward pass over one key/value tensor ``kv`` of shape
    (layers, 2, batch, kv_heads, columns, head_dim); new tokens are written at ``start``."""

    def __init__(self, config, state: dict[str, torch.Tensor], dtype: torch.dtype):
        theta, rope_type = _rope(config)
        unsupported = [name for name, bad in (
            ("model_type=%s" % config.model_type, config.model_type != "llama"),
            ("attention_bias", getattr(config, "attention_bias", False)),
            ("mlp_bias", getattr(config, "mlp_bias", False)),
            ("hidden_act=%s" % config.hidden_act, config.hidden_act != "silu"),
            ("rope scaling", rope_type != "default")) if bad]
        if unsupported:
            raise ValueError("the prefix engine runs plain Llama models; this one has %s" % ", ".join(unsupported))
        self.dtype = dtype
        self.heads, self.kv_heads = config.num_attention_heads, config.num_key_value_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        self.eps = config.rms_norm_eps
        self.vocab_size = config.vocab_size

        def weight(name: str) -> torch.Tensor:
            return state[name].to(dtype).contiguous()

        def projection(*names: str) -> torch.Tensor:
            """(in, out) view for ``x @ w``: oneDNN picks a slow path for F.linear on one row."""
            return torch.cat([weight(name) for name in names]).t()

        self.layers = []
        for i in range(config.num_hidden_layers):
            p = "model.layers.%d." % i
            self.layers.append(_Layer(
                attn_norm=weight(p + "input_layernorm.weight"),
                qkv=projection(*(p + "self_attn.%s_proj.weight" % x for x in "qkv")),
                out=projection(p + "self_attn.o_proj.weight"),
                mlp_norm=weight(p + "post_attention_layernorm.weight"),
                gate_up=projection(p + "mlp.gate_proj.weight", p + "mlp.up_proj.weight"),
                down=projection(p + "mlp.down_proj.weight")))
        self.embed = weight("model.embed_tokens.weight")
        self.norm = weight("model.norm.weight")
        self.lm_head = projection("lm_head.weight" if "lm_head.weight" in state else "model.embed_tokens.weight")
        self.inv_freq = 1.0 / theta ** (torch.arange(0, self.head_dim, 2, dtype=torch.float32) / self.head_dim)

    def new_kv(self, batch: int, columns: int) -> torch.Tensor:
        return torch.zeros(len(self.layers), 2, batch, self.kv_heads, columns, self.head_dim, dtype=self.dtype)

    def _rotate(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        half = x.shape[-1] // 2
        return x * cos + torch.cat([-x[..., half:], x[..., :half]], dim=-1) * sin

    def forward(self, ids: torch.Tensor, positions: torch.Tensor, kv: torch.Tensor, start: int,
                mask: torch.Tensor) -> torch.Tensor:
        """Logits (float32) at the last of ``ids`` (batch, tokens) for each row. ``mask`` (batch, 1,
        tokens, start + tokens) says which cached or new columns each new token attends to."""
        batch, tokens = ids.shape
        end = start + tokens
        angles = positions[..., None].float() * self.inv_freq
        angles = torch.cat([angles, angles], dim=-1)[:, None]
        cos, sin = angles.cos().to(self.dtype), angles.sin().to(self.dtype)
        q_size, kv_size = self.heads * self.head_dim, self.kv_heads * self.head_dim
        bias = torch.zeros(mask.shape, dtype=self.dtype).masked_fill_(~mask, float("-inf"))  # once, not per layer
        x = F.embedding(ids, self.embed)
        for index, layer in enumerate(self.layers):
            h = F.rms_norm(x, (x.shape[-1],), layer.attn_norm, self.eps)
            q, k, v = (h @ layer.qkv).split([q_size, kv_size, kv_size], dim=-1)
            q = self._rotate(q.view(batch, tokens, self.heads, self.head_dim).transpose(1, 2), cos, sin)
            k = self._rotate(k.view(batch, tokens, self.kv_heads, self.head_dim).transpose(1, 2), cos, sin)
            kv[index, 0, :, :, start:end] = k
            kv[index, 1, :, :, start:end] = v.view(batch, tokens, self.kv_heads, self.head_dim).transpose(1, 2)
            attended = F.scaled_dot_product_attention(q, kv[index, 0, :, :, :end], kv[index, 1, :, :, :end],
                                                      attn_mask=bias, enable_gqa=True)
            x = x + attended.transpose(1, 2).reshape(batch, tokens, q_size) @ layer.out
            h = F.rms_norm(x, (x.shape[-1],), layer.mlp_norm, self.eps)
            gate, up = (h @ layer.gate_up).chunk(2, dim=-1)
            x = x + (F.silu(gate) * up) @ layer.down
        last = F.rms_norm(x[:, -1], (x.shape[-1],), self.norm, self.eps)
        return (last @ self.lm_head).float()


def _rope(config) -> tuple[float, str]:
    parameters = getattr(config, "rope_parameters", None) or {}
    scaling = getattr(config, "rope_scaling", None) or {}
    theta = parameters.get("rope_theta", getattr(config, "rope_theta", 10000.0))
    kind = parameters.get("rope_type") or scaling.get("rope_type") or scaling.get("type") or "default"
    return float(theta), kind


class PrefixCache:
    """Key/value states of prompt prefixes, stored in blocks of ``block`` tokens and keyed by the
    exact token ids up to the block's end; least recently used blocks go first beyond
    ``capacity_tokens``."""

    def __init__(self, block: int = 32, capacity_tokens: int = 65536):
        if block < 1 or capacity_tokens < block:
            raise ValueError("need block >= 1 and capacity_tokens >= block")
        self.block, self.capacity = block, capacity_tokens // block
        self._blocks: OrderedDict[bytes, torch.Tensor] = OrderedDict()
        self.hit_tokens = self.miss_tokens = 0

    @staticmethod
    def _key(ids: np.ndarray, end: int) -> bytes:
        return ids[:end].tobytes()

    def lookup(self, ids: np.ndarray, limit: int) -> torch.Tensor | None:
        """The cached states of the longest block-aligned prefix of ``ids`` no longer than
        ``limit`` tokens, as (layers, 2, kv_heads, tokens, head_dim), or None."""
        found = []
        for end in range(self.block, limit + 1, self.block):
            block = self._blocks.get(self._key(ids, end))
            if block is None:
                break
            self._blocks.move_to_end(self._key(ids, end))
            found.append(block)
        return torch.cat(found, dim=3) if found else None

    def insert(self, ids: np.ndarray, kv: torch.Tensor) -> None:
        """Store the full blocks of ``kv`` (layers, 2, kv_heads, len(ids), head_dim) not yet cached."""
        for end in range(self.block, len(ids) + 1, self.block):
            key = self._key(ids, end)
            if key in self._blocks:
                self._blocks.move_to_end(key)
                continue
            self._blocks[key] = kv[:, :, :, end - self.block:end].clone()
            while len(self._blocks) > self.capacity:
                self._blocks.popitem(last=False)

    def clear(self) -> None:
        self._blocks.clear()
        self.hit_tokens = self.miss_tokens = 0

    def __len__(self) -> int:
        return len(self._blocks) * self.block


@dataclass
class _Prefilled:
    kv: torch.Tensor  # (layers, 2, kv_heads, prompt tokens, head_dim)
    logits: torch.Tensor  # (vocab,) at the prompt's last token


class PrefixCachingBackend(Backend):
    """:class:`LlamaModel` behind the backend API: ragged batches (mixed seeds and token limits in
    one call), stop strings checked while decoding, per-token log-probabilities, and a
    :class:`PrefixCache` shared across calls."""

    capabilities = Capabilities(logprobs=True, prefix_caching=True, chat_template=True, stop_strings=True,
                                ragged_batches=True)

    def __init__(self, model_dir: str | os.PathLike, dtype: str = "auto", threads: int | None = None,
                 block: int = 32, cache_tokens: int = 65536, model_id: str | None = None, cache=None):
        super().__init__(cache)
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        if threads:
            torch.set_num_threads(threads)
        config = AutoConfig.from_pretrained(str(model_dir))
        torch_dtype = _pick_dtype(dtype)
        state = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).state_dict()
        self.model = LlamaModel(config, state, torch_dtype)
        del state
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        if self.tokenizer.chat_template is None:
            self.capabilities = Capabilities(logprobs=True, prefix_caching=True, stop_strings=True, ragged_batches=True)
        self.prefixes = PrefixCache(block, cache_tokens)
        eos = getattr(config, "eos_token_id", None)
        self.end_ids = set(eos if isinstance(eos, list) else [eos]) | {self.tokenizer.eos_token_id}
        self.end_ids.discard(None)
        self.model_id = model_id or weights_id("torch", model_dir)
        self._lock = threading.Lock()

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def render_chat(self, messages: Sequence[Message]) -> str:
        if not self.capabilities.chat_template:
            return super().render_chat(messages)
        return self.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)

    def __getstate__(self) -> dict:
        raise TypeError("the prefix engine holds its model in memory: load it in each worker instead")

    def close(self) -> None:
        self.prefixes.clear()

    # -- prefill -------------------------------------------------------------------------------
    def _prefill(self, ids: np.ndarray) -> _Prefilled:
        """The prompt's states: the cached prefix reused, the rest forwarded (at least one token)."""
        cached = self.prefixes.lookup(ids, len(ids) - 1)
        reused = 0 if cached is None else cached.shape[3]
        self.prefixes.hit_tokens += reused
        self.prefixes.miss_tokens += len(ids) - reused
        kv = self.model.new_kv(1, len(ids))
        if cached is not None:
            kv[:, :, 0, :, :reused] = cached
        new = len(ids) - reused
        causal = torch.ones(new, len(ids), dtype=torch.bool).tril(diagonal=reused)
        logits = self.model.forward(torch.from_numpy(ids[reused:]).long()[None],
                                    torch.arange(reused, len(ids))[None], kv, reused, causal[None, None])
        states = kv[:, :, 0]
        self.prefixes.insert(ids, states)
        return _Prefilled(states, logits[0])

    # -- decoding ------------------------------------------------------------------------------
    def _generate(self, prompts: list[str], request: GenerationRequest, seeds: list[int],
                  limits: list[int] | None = None) -> list[Completion]:
        with self._lock, torch.inference_mode():
            return self._decode(prompts, request, seeds, limits or [request.max_new_tokens] * len(prompts))

    def _decode(self, prompts: list[str], request: GenerationRequest, seeds: list[int],
                limits: list[int]) -> list[Completion]:
        prefilled: dict[str, _Prefilled] = {}
        for prompt in prompts:
            if prompt not in prefilled:
                ids = np.asarray(self.tokenizer.encode(prompt, add_special_tokens=False), dtype=np.int64)
                if len(ids) == 0:
                    raise ValueError("empty prompt")
                prefilled[prompt] = self._prefill(ids)
        count = len(prompts)
        lengths = [prefilled[p].kv.shape[3] for p in prompts]
        longest = max(lengths)
        kv = self.model.new_kv(count, longest + max(limits))
        visible = torch.zeros(count, kv.shape[4], dtype=torch.bool)
        for row, prompt in enumerate(prompts):
            kv[:, :, row, :, longest - lengths[row]:longest] = prefilled[prompt].kv
            visible[row, longest - lengths[row]:longest] = True
        logits = torch.stack([prefilled[p].logits for p in prompts])
        positions = torch.tensor(lengths)
        sampler = _Sampler(request, seeds, self.model.vocab_size)
        stops = [s for s in request.stop if s]
        ids: list[list[int]] = [[] for _ in prompts]
        logprobs: list[list[float]] = [[] for _ in prompts]
        finish: list[str | None] = [None] * count
        rows = list(range(count))  # the prompt index of each batch row
        column = longest
        while True:
            tokens, token_logprobs = sampler.choose(logits, rows)
            for row, index in enumerate(rows):
                if finish[index]:
                    continue
                token = int(tokens[row])
                if token in self.end_ids:
                    finish[index] = "stop"
                    continue
                ids[index].append(token)
                logprobs[index].append(float(token_logprobs[row]))
                if hit_stop(self.tokenizer, ids[index], stops):
                    finish[index] = "stop"
                elif len(ids[index]) >= limits[index]:
                    finish[index] = "length"
            live = [row for row, index in enumerate(rows) if not finish[index]]
            if not live:
                break
            if len(live) <= 0.75 * len(rows):  # drop finished rows once they are a quarter of the batch
                keep = torch.tensor(live)
                kv, visible, positions, tokens = kv[:, :, keep], visible[keep], positions[keep], tokens[keep]
                rows = [rows[row] for row in live]
            visible[:, column] = True
            logits = self.model.forward(tokens[:, None], positions[:, None], kv, column,
                                        visible[:, None, None, :column + 1])
            positions = positions + 1
            column += 1
        return [Completion(text=self.tokenizer.decode(ids[i]), tokens=len(ids[i]), token_logprobs=logprobs[i],
                           finish_reason=finish[i] or "length") for i in range(count)]


class _Sampler:
    """Greedy or sampled choice with one random stream per sequence; repetition penalty on the
    tokens a sequence has generated (as CTranslate2 does)."""

    def __init__(self, request: GenerationRequest, seeds: list[int], vocab_size: int):
        self.request = request
        self.generators = [torch.Generator().manual_seed(seed) for seed in seeds]
        self.seen = torch.zeros(len(seeds), vocab_size, dtype=torch.bool)

    def choose(self, logits: torch.Tensor, rows: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        request = self.request
        model_logprobs = torch.log_softmax(logits, dim=-1)
        seen = self.seen[rows]
        if request.repetition_penalty != 1.0:
            penalty = request.repetition_penalty
            logits = torch.where(seen, torch.where(logits > 0, logits / penalty, logits * penalty), logits)
        if request.temperature == 0:
            tokens = logits.argmax(dim=-1)
        else:
            logits = logits / request.temperature
            if request.top_k:
                kth = logits.topk(min(request.top_k, logits.shape[-1]), dim=-1).values[:, -1:]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            if request.top_p < 1.0:
                ordered, order = logits.sort(dim=-1, descending=True)
                before = ordered.softmax(dim=-1).cumsum(dim=-1) - ordered.softmax(dim=-1)
                logits = logits.scatter(-1, order, ordered.masked_fill(before >= request.top_p, float("-inf")))
            # inverse-CDF draw: one uniform number per sequence and token from its own stream
            cumulative = logits.softmax(dim=-1).cumsum(dim=-1)
            uniform = torch.cat([torch.rand(1, generator=self.generators[i]) for i in rows])[:, None]
            tokens = torch.searchsorted(cumulative, uniform * cumulative[:, -1:], right=True)[:, 0]
            tokens = tokens.clamp(max=logits.shape[-1] - 1)
        self.seen[rows, tokens] = True
        return tokens, model_logprobs.gather(-1, tokens[:, None])[:, 0]


def _pick_dtype(dtype: str) -> torch.dtype:
    """bfloat16 where the CPU has native bf16 matrix units (AMX/AVX-512 bf16), else float32."""
    if dtype == "auto":
        cpuinfo = Path("/proc/cpuinfo")
        flags = cpuinfo.read_text() if cpuinfo.exists() else ""
        return torch.bfloat16 if ("amx_bf16" in flags or "avx512_bf16" in flags) else torch.float32
    choices = {"float32": torch.float32, "bfloat16": torch.bfloat16}
    if dtype not in choices:
        raise ValueError("dtype is auto, float32 or bfloat16, got %r" % dtype)
    return choices[dtype]
