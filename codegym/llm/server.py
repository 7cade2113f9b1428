"""``codegym serve``: an OpenAI-compatible HTTP server over any backend.

Many env workers can share one loaded model: concurrent requests are gathered for a few
milliseconds and sent to the backend as one batch. Endpoints: ``GET /v1/models``,
``POST /v1/completions``, ``POST /v1/chat/completions`` (``continue_final_message`` continues a
final assistant message, as vLLM does). With a process reward model (``prm``), also
``POST /v1/prm/score``: ``{"items": [{"prompt": str, "steps": [str]}]}`` answered with
``{"scores": [[float]], "tokens_read": int}``, the PRM's score of every step (its score cache and
batching included); ``remote:URL`` loads it as a PRM anywhere a spec is taken.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from concurrent.futures import Future
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .base import Backend, Completion, GenerationRequest

MAX_BODY_BYTES = 64 << 20  # a request body larger than this is refused unread
MAX_PRM_ITEMS = 4096  # trajectories per PRM request: a larger one would hold the PRM from other clients


class _Batcher:
    """Collects requests from handler threads and runs them through the backend in batches."""

    def __init__(self, backend: Backend, max_wait_s: float = 0.01, max_batch: int = 64):
        self.backend, self.max_wait_s, self.max_batch = backend, max_wait_s, max_batch
        self.inbox: queue.Queue[tuple[GenerationRequest, Future]] = queue.Queue()
        self.thread = threading.Thread(target=self._loop, daemon=True, name="codegym-batcher")
        self.thread.start()

    def submit(self, request: GenerationRequest) -> list[Completion]:
        future: Future = Future()
        self.inbox.put((request, future))
        return future.result()

    def _loop(self) -> None:
        while True:
            batch = [self.inbox.get()]
            deadline = time.monotonic() + self.max_wait_s
            while len(batch) < self.max_batch:
                try:
                    batch.append(self.inbox.get(timeout=max(0.0, deadline - time.monotonic())))
                except queue.Empty:
                    break
            try:
                results = self.backend.generate([request for request, _ in batch]).results
            except Exception as err:  # noqa: BLE001 - reported to every waiting client
                for _, future in batch:
                    future.set_exception(err)
                continue
            for (_, future), completions in zip(batch, results):
                future.set_result(completions)


def _sampling(body: dict) -> dict:
    stop = body.get("stop") or ()
    return {"n": int(body.get("n", 1)), "max_new_tokens": int(body.get("max_tokens") or 256),
            "temperature": float(body.get("temperature", 1.0)), "top_p": float(body.get("top_p", 1.0)),
            "top_k": max(0, int(body.get("top_k") or 0)),
            "repetition_penalty": float(body.get("repetition_penalty") or 1.0),
            "stop": (stop,) if isinstance(stop, str) else tuple(stop),
            "seed": int(body.get("seed") or 0)}


def make_server(backend: Backend, host: str = "127.0.0.1", port: int = 8000, prm=None) -> ThreadingHTTPServer:
    batcher = _Batcher(backend)
    prm_lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet by default
            pass

        def _reply(self, status: int, payload: dict) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 - http.server naming
            if self.path.rstrip("/") == "/v1/models":
                self._reply(200, {"object": "list", "data": [{"id": backend.model_id, "object": "model",
                                                              "owned_by": "codegym"}]})
            else:
                self._reply(404, {"error": {"message": "unknown path %s" % self.path}})

        def do_POST(self) -> None:  # noqa: N802
            try:
                length = int(self.headers.get("Content-Length") or 0)
                if not 0 <= length <= MAX_BODY_BYTES:
                    self.close_connection = True  # the body is not read: the connection cannot be reused
                    raise ValueError("Content-Length must be between 0 and %d" % MAX_BODY_BYTES)
                body = json.loads(self.rfile.read(length) or b"{}")
                if self.path.rstrip("/") == "/v1/completions":
                    self._reply(200, self._completions(body))
                elif self.path.rstrip("/") == "/v1/chat/completions":
                    self._reply(200, self._chat(body))
                elif self.path.rstrip("/") == "/v1/prm/score" and prm is not None:
                    self._reply(200, self._prm_score(body))
                else:
                    self._reply(404, {"error": {"message": "unknown path %s" % self.path}})
            except (ValueError, KeyError, TypeError) as err:
                self._reply(400, {"error": {"message": str(err), "type": "invalid_request_error"}})
            except Exception as err:  # noqa: BLE001 - the backend failed
                self._reply(500, {"error": {"message": "%s: %s" % (type(err).__name__, err)}})

        def _completions(self, body: dict) -> dict:
            prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
            choices, usage = [], {"prompt_tokens": 0, "completion_tokens": 0}
            for prompt in prompts:
                if not isinstance(prompt, str):
                    raise ValueError("prompt must be a string or a list of strings")
                completions = batcher.submit(GenerationRequest(prompt=prompt, **_sampling(body)))
                usage["prompt_tokens"] += backend.count_tokens(prompt)
                for completion in completions:
                    usage["completion_tokens"] += completion.tokens
                    logprobs = {"token_logprobs": completion.token_logprobs} if body.get("logprobs") is not None \
                        and completion.token_logprobs is not None else None
                    choices.append({"index": len(choices), "text": completion.text, "logprobs": logprobs,
                                    "finish_reason": completion.finish_reason})
            return {"id": "cmpl-%s" % uuid.uuid4().hex, "object": "text_completion", "created": int(time.time()),
                    "model": backend.model_id, "choices": choices,
                    "usage": {**usage, "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]}}

        def _prm_score(self, body: dict) -> dict:
            items = body["items"]
            if not isinstance(items, list) or not all(isinstance(i, dict) and isinstance(i.get("prompt"), str)
                                                      and isinstance(i.get("steps"), list) and i["steps"]
                                                      and all(isinstance(s, str) for s in i["steps"]) for i in items):
                raise ValueError("items must be a list of {prompt: string, steps: [string, ...]} (one step at least)")
            if len(items) > MAX_PRM_ITEMS:
                raise ValueError("at most %d items per request" % MAX_PRM_ITEMS)
            with prm_lock:
                before = prm.tokens_read
                scores = prm.score_many([(item["prompt"], item["steps"]) for item in items])
                read = prm.tokens_read - before
            return {"scores": scores, "tokens_read": read}

        def _chat(self, body: dict) -> dict:
            messages = [{"role": str(m["role"]), "content": str(m["content"])} for m in body["messages"]]
            prefix = ""
            if body.get("continue_final_message") and messages and messages[-1]["role"] == "assistant":
                prefix = messages.pop()["content"]
            request = GenerationRequest(messages=tuple(messages), assistant_prefix=prefix, **_sampling(body))
            completions = batcher.submit(request)
            choices = [{"index": i, "message": {"role": "assistant", "content": c.text}, "finish_reason": c.finish_reason,
                        "logprobs": {"content": [{"logprob": lp} for lp in c.token_logprobs]}
                        if body.get("logprobs") and c.token_logprobs is not None else None}
                       for i, c in enumerate(completions)]
            completion_tokens = sum(c.tokens for c in completions)
            prompt_tokens = backend.count_tokens(backend.prompt_text(request))
            return {"id": "chatcmpl-%s" % uuid.uuid4().hex, "object": "chat.completion", "created": int(time.time()),
                    "model": backend.model_id, "choices": choices,
                    "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                              "total_tokens": prompt_tokens + completion_tokens}}

    return ThreadingHTTPServer((host, port), Handler)


def serve(backend: Backend, host: str = "127.0.0.1", port: int = 8000, prm=None) -> None:
    server = make_server(backend, host, port, prm)
    print("codegym: serving %s%s on http://%s:%d/v1" % (backend.model_id, " and a PRM" if prm is not None else "", host,
                                                         server.server_address[1]), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
