"""One generation API from a 2-core laptop to a GPU server.

``codegym.llm.load(spec)`` builds a backend from one string, so every CLI command takes
``--policy SPEC``:

=========================  ===============================================================
``smollm2`` (default)      the embedded SmolLM2-135M-Instruct on CTranslate2 int8 (offline)
``hf:PATH_OR_ID``          transformers on CPU/CUDA (``hf:smollm2`` = the embedded weights)
``vllm:PATH_OR_ID``        in-process vLLM (GPU extra)
``openai:URL#MODEL``       any OpenAI-compatible server (``#MODEL`` optional)
``ct2:PATH``               a CTranslate2 model folder (tokenizer in the same folder)
``torch:PATH_OR_smollm2``  the prefix-caching torch engine for Llama models (search on CPU)
=========================  ===============================================================
"""

from __future__ import annotations

import os

from .base import Backend, Capabilities, Completion, GenerationOutput, GenerationRequest, Message, Usage
from .cache import GenerationCache, cache_dir

DEFAULT_POLICY = "smollm2"


POLICY_KINDS = ("hf", "ct2", "torch", "vllm", "openai")


def check_spec(spec: str) -> tuple[str, str]:
    """Validate a policy spec without loading anything; returns (kind, target). Raises a
    one-line ValueError, or FileNotFoundError for a ``ct2:`` folder that does not exist."""
    from .embedded import EMBEDDED_NAMES

    if not isinstance(spec, str) or not spec.strip():
        raise ValueError("a policy spec is a non-empty string such as 'smollm2' or 'hf:PATH'")
    if spec.lower() in EMBEDDED_NAMES:
        return "embedded", ""
    kind, _, target = spec.partition(":")
    kind = kind.lower()
    if kind not in POLICY_KINDS or not target:
        raise ValueError("unknown policy spec %r: use smollm2, hf:PATH, torch:PATH, vllm:PATH, ct2:PATH or "
                         "openai:URL#MODEL" % spec)
    if kind == "openai" and not target.startswith(("http://", "https://")):
        raise ValueError("openai spec is openai:http(s)://HOST:PORT[/v1]#MODEL, got %r" % spec)
    if kind == "ct2" and not os.path.isdir(target):
        raise FileNotFoundError("policy %r: no CTranslate2 model folder at %s" % (spec, target))
    return kind, target


def load(spec: str = DEFAULT_POLICY, cache: bool | str | GenerationCache = False, **options) -> Backend:
    """Build a backend from a spec string; ``cache=True`` adds the persistent generation cache
    (or pass a path or a :class:`GenerationCache`)."""
    from .embedded import EMBEDDED_NAMES, load_embedded, prepare_embedded

    kind, target = check_spec(spec)
    store = cache if isinstance(cache, GenerationCache) else GenerationCache(cache) if isinstance(cache, str) else (
        GenerationCache() if cache else None)
    if kind == "embedded":
        return load_embedded(cache=store, **options)
    if kind == "hf":
        from .hf import TransformersBackend

        if target.lower() in EMBEDDED_NAMES:
            return TransformersBackend(str(prepare_embedded() / "hf"), cache=store,
                                       model_id="smollm2-135m-instruct(hf)", **options)
        return TransformersBackend(target, cache=store, **options)
    if kind == "ct2":
        from .embedded import CTranslate2Backend

        return CTranslate2Backend(target, cache=store, **options)
    if kind == "torch":
        from .prefix_engine import PrefixCachingBackend

        if target.lower() in EMBEDDED_NAMES:
            return PrefixCachingBackend(prepare_embedded() / "hf", cache=store,
                                        model_id="smollm2-135m-instruct(torch-prefix)", **options)
        return PrefixCachingBackend(target, cache=store, **options)
    if kind == "vllm":
        from .vllm_backend import VLLMBackend

        return VLLMBackend(target, cache=store, **options)
    from .http import OpenAIBackend

    url, _, model = target.partition("#")
    return OpenAIBackend(url, model, cache=store, **options)


__all__ = ["DEFAULT_POLICY", "Backend", "Capabilities", "Completion", "GenerationCache", "GenerationOutput",
           "GenerationRequest", "Message", "POLICY_KINDS", "Usage", "cache_dir", "check_spec", "load"]
