"""Generation backends, the cache, the HTTP server and client, and the prompts."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import threading

import pytest

from codegym.llm import GenerationCache, GenerationRequest, load
from codegym.llm.http import ServerUnreachable
from codegym.llm.scripted import ScriptedBackend
from codegym.llm.server import make_server

CHAT = ({"role": "user", "content": "Write a Python function add(a, b) that returns a + b."},)


@pytest.fixture(scope="module")
def embedded():
    return load("smollm2")


@pytest.fixture(scope="module")
def transformers_backend():
    return load("hf:smollm2")


def _check_backend(backend):
    requests = [GenerationRequest(messages=CHAT, n=3, max_new_tokens=24, temperature=0.9, seed=5,
                                  assistant_prefix="```python\n", stop=("```",)),
                GenerationRequest(prompt="def fibonacci(n):", max_new_tokens=12, temperature=0.0, stop=("\n\n",))]
    out = backend.generate(requests)
    assert [len(row) for row in out.results] == [3, 1]
    for completion in (c for row in out.results for c in row):
        assert 0 < completion.tokens <= 24 and completion.finish_reason in ("stop", "length")
        assert "```" not in completion.text
        assert completion.token_logprobs is not None and completion.logprob_sum <= 0
    assert "\n\n" not in out.results[1][0].text
    assert out.usage.completions == 4 and out.usage.generated_tokens == sum(c.tokens for r in out.results for c in r)
    again = backend.generate(requests)
    assert [c.text for c in again.results[0]] == [c.text for c in out.results[0]]  # same seed, same batch
    assert again.results[1][0].text == out.results[1][0].text  # greedy
    assert out.results[1][0].text.strip()


def test_embedded_backend(embedded):
    _check_backend(embedded)
    assert embedded.capabilities.logprobs and embedded.capabilities.prefix_caching


def test_transformers_backend_same_model(transformers_backend):
    _check_backend(transformers_backend)


def test_prefix_sharing_batch_keeps_its_promises(embedded):
    """Prompts sharing a long prefix go through CTranslate2's static prompt. Batched int8 greedy
    decoding does not promise the text of one request at a time (a row's numerics depend on the
    batch's shape), so check what is promised: one result per request, within its token limit,
    the same prompt accounting as alone, and the same batch giving the same text again."""
    long_prefix = "You are a Python expert. " * 20
    requests = [GenerationRequest(prompt=long_prefix + "Q%d: write def f%d():" % (i, i), max_new_tokens=8) for i in range(3)]
    out = embedded.generate(requests)
    again = embedded.generate(requests)
    singles = [embedded.generate([r]) for r in requests]
    assert [len(row) for row in out.results] == [1, 1, 1]
    assert all(0 < row[0].tokens <= 8 and row[0].text for row in out.results)
    assert out.prompt_tokens == [single.prompt_tokens[0] for single in singles]
    assert [row[0].text for row in again.results] == [row[0].text for row in out.results]


@pytest.fixture(scope="module")
def server(embedded):
    srv = make_server(embedded, port=0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield "http://127.0.0.1:%d" % srv.server_address[1]
    srv.shutdown()
    srv.server_close()


def test_http_client_against_codegym_serve(server):
    client = load("openai:%s/v1" % server)
    assert client.model.startswith("smollm2")
    _check_backend(client)


def test_server_batches_concurrent_clients(server):
    client = load("openai:%s" % server)
    results = []

    def ask(i):
        results.append(client.generate([GenerationRequest(prompt="x = %d\ny =" % i, max_new_tokens=4)]).results[0][0])

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 6 and all(r.tokens >= 1 for r in results)


def test_serve_command_starts_and_answers(tmp_path):
    import socket
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "codegym.cli", "serve", "--policy", "smollm2", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/v1/models" % port, timeout=2) as response:
                    assert b"smollm2" in response.read()
                    break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("codegym serve did not come up")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_bad_specs_and_unreachable_server():
    for spec in ("", "bogus:thing", "openai:not-a-url"):
        with pytest.raises(ValueError):
            load(spec)
    with pytest.raises(ServerUnreachable, match="cannot reach"):
        load("openai:http://127.0.0.1:9#m", retries=1, backoff_s=0.01, timeout_s=2).generate(
            [GenerationRequest(prompt="x")])
    with pytest.raises(ValueError):
        GenerationRequest(prompt="x", messages=CHAT)
    with pytest.raises(ValueError):
        GenerationRequest(prompt="x", n=0)


def test_scripted_backend_counts_and_truncates():
    backend = ScriptedBackend(lambda prompt, seed: "alpha beta STOP gamma %d" % seed)
    out = backend.generate([GenerationRequest(prompt="p", n=2, stop=("STOP",), seed=10)])
    assert [c.text for c in out.results[0]] == ["alpha beta ", "alpha beta "]
    assert out.usage.generated_tokens == 10 and backend.usage.calls == 1


def test_cache_returns_identical_results(tmp_path):
    calls = []
    backend = ScriptedBackend(lambda prompt, seed: calls.append(seed) or "text %d" % seed,
                              cache=GenerationCache(tmp_path / "c.sqlite"))
    request = GenerationRequest(prompt="p", n=3, seed=1, temperature=0.7)
    first = backend.generate([request])
    second = backend.generate([request])
    assert [c.text for c in second.results[0]] == [c.text for c in first.results[0]]
    assert all(c.cached for c in second.results[0]) and len(calls) == 3
    assert second.usage.cache_hits == 3 and second.usage.generated_tokens == first.usage.generated_tokens
    other = backend.generate([GenerationRequest(prompt="p", n=1, seed=1, temperature=0.5)])
    assert not other.results[0][0].cached


def _writer(path: str, worker: int) -> None:
    cache = GenerationCache(path)
    backend = ScriptedBackend(lambda prompt, seed: "w%d-%s-%d" % (worker, prompt, seed), cache=cache)
    for i in range(50):
        backend.generate([GenerationRequest(prompt="shared-%d" % (i % 10), n=2)])


def test_cache_survives_concurrent_writers(tmp_path):
    path = str(tmp_path / "shared.sqlite")
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_writer, args=(path, w)) for w in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    assert all(w.exitcode == 0 for w in workers)
    cache = GenerationCache(path)
    assert len(cache) == 20  # 10 prompts x 2 samples, first writer wins
    replay = ScriptedBackend(lambda prompt, seed: "never", cache=cache)
    texts = [c.text for c in replay.generate([GenerationRequest(prompt="shared-3", n=2)]).results[0]]
    assert all(t.startswith("w") for t in texts)


@pytest.mark.gpu
def test_vllm_backend_on_cuda():
    torch = pytest.importorskip("torch")
    pytest.importorskip("vllm")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    from codegym.llm.embedded import prepare_embedded

    backend = load("vllm:%s" % (prepare_embedded() / "hf"), gpu_memory_utilization=0.3, max_model_len=2048)
    _check_backend(backend)


def test_ragged_engines_get_mixed_seeds_and_limits_in_one_call():
    backend = ScriptedBackend(lambda prompt, seed: "w " * 30 + str(seed), ragged=True)
    requests = [GenerationRequest(prompt="a", max_new_tokens=5, temperature=0.8, seed=1),
                GenerationRequest(prompt="b", n=2, max_new_tokens=12, temperature=0.8, seed=7),
                GenerationRequest(prompt="c", max_new_tokens=4, temperature=0.0)]
    out = backend.generate(requests)
    assert backend.engine_calls == [3, 1]  # the sampled requests share a call; greedy decodes apart
    assert [[c.tokens for c in row] for row in out.results] == [[5], [12, 12], [4]]
    assert all(c.finish_reason == "length" for row in out.results for c in row)
    plain = ScriptedBackend(lambda prompt, seed: "w", ragged=False)
    plain.generate(requests)
    assert plain.engine_calls == [1, 2, 1]


def test_embedded_honours_per_prompt_limits_in_one_batch(embedded):
    requests = [GenerationRequest(messages=CHAT, max_new_tokens=limit, temperature=0.8, seed=seed)
                for seed, limit in ((1, 3), (2, 17), (3, 9))]
    out = embedded.generate(requests)
    assert [row[0].tokens for row in out.results] == [3, 17, 9]
    assert [row[0].finish_reason for row in out.results] == ["length"] * 3
    assert [row[0].text for row in embedded.generate(requests).results] == [row[0].text for row in out.results]


def _slot_calls(batcher, slot: int, calls: int) -> list[str]:
    with batcher.client(slot) as client:
        return [client.generate([GenerationRequest(prompt="slot%d call%d" % (slot, i), temperature=0.5, seed=slot)]
                                ).results[0][0].text for i in range(calls)]


def test_lockstep_batcher_merges_rounds_deterministically():
    from concurrent.futures import ThreadPoolExecutor

    from codegym.llm.batching import LockstepBatcher

    def run() -> tuple[list, list, list]:
        backend = ScriptedBackend(lambda prompt, seed: "echo " + prompt.split()[-1] + " " + prompt.split()[0],
                                  ragged=True)
        batcher = LockstepBatcher(backend, slots=3)
        with ThreadPoolExecutor(3) as pool:
            answers = list(pool.map(lambda slot: _slot_calls(batcher, slot, [2, 4, 3][slot]), range(3)))
        return answers, batcher.round_sizes, backend.prompts_seen

    answers, rounds, prompts = run()
    assert answers[1] == ["echo call%d slot1" % i for i in range(4)]  # each slot gets its own answers
    assert rounds == [3, 3, 2, 1]  # slots leave after 2, 3 and 4 calls; every round waits for all live slots
    assert prompts[:3] == ["slot0 call0", "slot1 call0", "slot2 call0"]  # slot order, whatever the timing
    assert all(run()[1:] == (rounds, prompts) for _ in range(3))


def test_lockstep_batcher_reports_failures_to_every_slot():
    from concurrent.futures import ThreadPoolExecutor

    from codegym.llm.batching import LockstepBatcher

    def fail(prompt: str, seed: int) -> str:
        raise RuntimeError("engine down")

    batcher = LockstepBatcher(ScriptedBackend(fail), slots=2)
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(_slot_calls, batcher, slot, 1) for slot in range(2)]
        for future in futures:
            with pytest.raises(RuntimeError, match="engine down"):
                future.result(timeout=10)
    with pytest.raises(ValueError):
        LockstepBatcher(ScriptedBackend(fail), slots=0)


def test_lockstep_slots_report_their_own_usage():
    from codegym.llm.batching import LockstepBatcher

    backend = ScriptedBackend(lambda prompt, seed: "one two three", ragged=True)
    batcher = LockstepBatcher(backend, slots=1)
    with batcher.client(0) as client:
        out = client.generate([GenerationRequest(prompt="four words in here", n=2),
                               GenerationRequest(prompt="two words")])
    assert out.prompt_tokens == [8, 2]
    assert (out.usage.prompt_tokens, out.usage.generated_tokens, out.usage.completions) == (10, 9, 3)
    assert client.usage.prompt_tokens == backend.usage.prompt_tokens == 10


def test_a_retrained_model_in_the_same_folder_gets_a_new_model_id(tmp_path):
    """The generation cache is keyed by model id: the same folder with new weights must not replay
    the old model's generations."""
    from codegym.llm.base import weights_id

    (tmp_path / "model.bin").write_bytes(b"old weights")
    (tmp_path / "config.json").write_text("{}")
    before = weights_id("ct2", tmp_path)
    assert before == weights_id("ct2", tmp_path) and before.startswith("ct2:%s@" % tmp_path)
    (tmp_path / "model.bin").write_bytes(b"new weights, retrained")
    assert weights_id("ct2", tmp_path) != before
    assert weights_id("hf", "org/model") == "hf:org/model"  # a hub id stays as it is
