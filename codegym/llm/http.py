"""A client for any OpenAI-compatible server (vLLM serve, SGLang, llama.cpp, Ollama, TGI,
``codegym serve``): concurrent requests with a limit, retries with backoff, timeouts, and the
API key from ``CODEGYM_API_KEY`` or ``OPENAI_API_KEY``."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from .base import Backend, Capabilities, Completion, GenerationRequest, Message

_CHAT = "\x00chat:"
_RETRYABLE = {408, 409, 429, 500, 502, 503, 504}


class ServerUnreachable(ConnectionError):
    pass


def post_json(url: str, payload: dict | None, api_key: str | None = None, timeout_s: float = 300.0, retries: int = 3,
              backoff_s: float = 0.5) -> dict:
    """POST ``payload`` (GET when None) and return the JSON reply; retries what may pass on a
    retry (connection errors, 429 and 5xx) with exponential backoff, raises on the rest."""
    data = json.dumps(payload).encode() if payload is not None else None
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = "Bearer %s" % api_key
    last_error: Exception | None = None
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(backoff_s * 2 ** (attempt - 1))
        request = urllib.request.Request(url, data=data, headers=headers, method="POST" if data else "GET")
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as err:
            body = err.read().decode("utf-8", "replace")[:500]
            if err.code not in _RETRYABLE:
                raise RuntimeError("%s answered %d: %s" % (url, err.code, body)) from err
            last_error = RuntimeError("%s answered %d: %s" % (url, err.code, body))
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as err:
            last_error = err
    raise ServerUnreachable("cannot reach %s after %d attempts: %s" % (url, retries + 1, last_error))


class OpenAIBackend(Backend):
    capabilities = Capabilities(logprobs=True, prefix_caching=False, chat_template=True, stop_strings=True)

    def __init__(self, base_url: str, model: str = "", api_key: str | None = None, concurrency: int = 8,
                 timeout_s: float = 300.0, retries: int = 3, backoff_s: float = 0.5, cache=None):
        super().__init__(cache)
        self.base_url = base_url.rstrip("/")
        if self.base_url.endswith("/v1"):
            self.base_url = self.base_url[:-3]
        self.api_key = api_key or os.environ.get("CODEGYM_API_KEY") or os.environ.get("OPENAI_API_KEY")
        self.concurrency, self.timeout_s, self.retries, self.backoff_s = concurrency, timeout_s, retries, backoff_s
        self.model = model or self._first_model()
        self.model_id = "openai:%s#%s" % (self.base_url, self.model)

    def _post(self, path: str, payload: dict | None) -> dict:
        return post_json(self.base_url + path, payload, self.api_key, self.timeout_s, self.retries, self.backoff_s)

    def _first_model(self) -> str:
        models = self._post("/v1/models", None).get("data") or []
        if not models:
            raise RuntimeError("%s lists no models; name one with openai:URL#MODEL" % self.base_url)
        return models[0]["id"]

    def render_chat(self, messages: Sequence[Message]) -> str:
        return _CHAT + json.dumps(list(messages))

    def prompt_text(self, request: GenerationRequest) -> str:
        if request.messages is None:
            return request.prompt + request.assistant_prefix
        return _CHAT + json.dumps({"messages": list(request.messages), "prefix": request.assistant_prefix})

    def _call(self, prompt: str, request: GenerationRequest, seed: int, n: int) -> list[Completion]:
        """One HTTP request for ``n`` samples (seeds ``seed .. seed + n - 1`` on codegym serve)."""
        params = {"model": self.model, "n": n, "max_tokens": request.max_new_tokens,
                  "temperature": request.temperature, "top_p": request.top_p, "seed": seed}
        if request.top_k:
            params["top_k"] = request.top_k
        if request.repetition_penalty != 1.0:
            params["repetition_penalty"] = request.repetition_penalty  # vLLM/SGLang/TGI extension
        if request.stop:
            params["stop"] = list(request.stop)
        if prompt.startswith(_CHAT):
            chat = json.loads(prompt[len(_CHAT):])
            messages = chat["messages"]
            if chat["prefix"]:
                messages = messages + [{"role": "assistant", "content": chat["prefix"]}]
                params.update(continue_final_message=True, add_generation_prompt=False)
            body = self._post("/v1/chat/completions", {**params, "messages": messages, "logprobs": True})
        else:
            body = self._post("/v1/completions", {**params, "prompt": prompt, "logprobs": 1})
        choices = sorted(body["choices"], key=lambda c: c.get("index", 0))
        if len(choices) != n:
            raise RuntimeError("%s returned %d choices for n=%d" % (self.base_url, len(choices), n))
        completions = []
        for choice in choices:
            if "message" in choice:
                text = choice["message"]["content"] or ""
                entries = (choice.get("logprobs") or {}).get("content") or []
                logprobs = [float(e["logprob"]) for e in entries] or None
            else:
                text = choice["text"]
                logprobs = [float(x) for x in ((choice.get("logprobs") or {}).get("token_logprobs") or [])
                            if x is not None] or None
            tokens = len(logprobs) if logprobs else self.count_tokens(text)
            finish = "length" if choice.get("finish_reason") == "length" else "stop"
            completions.append(Completion(text=text, tokens=tokens, finish_reason=finish, token_logprobs=logprobs))
        if n == 1 and (body.get("usage") or {}).get("completion_tokens"):
            completions[0].tokens = int(body["usage"]["completion_tokens"])
        return completions

    def _generate(self, prompts: list[str], request: GenerationRequest, seeds: list[int]) -> list[Completion]:
        # Consecutive samples of one prompt (seeds s, s+1, ...) travel as one request with n.
        runs: list[tuple[str, int, int]] = []
        for prompt, seed in zip(prompts, seeds):
            if runs and runs[-1][0] == prompt and runs[-1][1] + runs[-1][2] == seed:
                runs[-1] = (prompt, runs[-1][1], runs[-1][2] + 1)
            else:
                runs.append((prompt, seed, 1))
        with ThreadPoolExecutor(max(1, min(self.concurrency, len(runs)))) as pool:
            batches = list(pool.map(lambda run: self._call(run[0], request, run[1], run[2]), runs))
        return [completion for batch in batches for completion in batch]
