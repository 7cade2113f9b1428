"""The prefix-caching torch engine against transformers' own Llama, on a tiny random model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from codegym.llm import GenerationRequest, load
from codegym.llm.prefix_engine import PrefixCache, PrefixCachingBackend, _Sampler

PROMPTS = ("def add(a, b):\n    return a + b\n\ndef mul(a, b):\n",
           "Count to ten: one, two, three, four, five, six, seven,")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A 2-layer Llama with grouped-query attention and the embedded model's tokenizer."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from codegym.llm.embedded import prepare_embedded

    folder = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = AutoTokenizer.from_pretrained(prepare_embedded() / "hf")
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                         rope_theta=10000.0, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder, model, tokenizer


@pytest.fixture()
def engine(tiny) -> PrefixCachingBackend:
    return PrefixCachingBackend(tiny[0], dtype="float32", block=8)


def _ids(tokenizer, text: str) -> np.ndarray:
    return np.asarray(tokenizer.encode(text, add_special_tokens=False), dtype=np.int64)


def test_logits_match_transformers_cold_and_with_a_reused_prefix(tiny, engine):
    _, model, tokenizer = tiny
    ids = _ids(tokenizer, PROMPTS[0] * 2)
    with torch.inference_mode():
        expected = model(torch.from_numpy(ids)[None]).logits[0, -1]
        engine._prefill(ids[:20])  # caches two 8-token blocks
        reused = engine._prefill(ids).logits
    assert engine.prefixes.hit_tokens == 16 and engine.prefixes.miss_tokens == 20 + len(ids) - 16
    assert torch.allclose(reused, expected, atol=1e-4)


def test_greedy_ragged_batch_matches_transformers_one_prompt_at_a_time(tiny, engine):
    _, model, tokenizer = tiny
    requests = [GenerationRequest(prompt=p, max_new_tokens=limit) for p, limit in zip(PROMPTS, (12, 7))]
    out = engine.generate(requests)
    for request, [completion] in zip(requests, out.results):
        encoded = tokenizer(request.prompt, return_tensors="pt", add_special_tokens=False)
        with torch.inference_mode():
            reference = model.generate(**encoded, max_new_tokens=request.max_new_tokens, do_sample=False,
                                       pad_token_id=tokenizer.eos_token_id)
        new = reference[0, encoded["input_ids"].shape[1]:].tolist()
        assert completion.tokens == len(new) == request.max_new_tokens and completion.finish_reason == "length"
        assert completion.text == tokenizer.decode(new)
        assert len(completion.token_logprobs) == completion.tokens and all(lp <= 0 for lp in completion.token_logprobs)
    assert out.usage.generated_tokens == 12 + 7


def test_a_sample_depends_on_its_seed_not_on_its_batch(engine):
    alone = engine.generate([GenerationRequest(prompt=PROMPTS[0], n=3, temperature=1.0, seed=11, max_new_tokens=10)])
    shared = engine.generate([GenerationRequest(prompt=PROMPTS[1], n=2, temperature=1.0, seed=3, max_new_tokens=6),
                              GenerationRequest(prompt=PROMPTS[0], n=3, temperature=1.0, seed=11, max_new_tokens=10)])
    texts = [c.text for c in alone.results[0]]
    assert texts == [c.text for c in shared.results[1]]
    assert len(set(texts)) > 1  # samples of one request differ by index
    assert all(c.tokens <= 6 for c in shared.results[0])


def test_stop_strings_end_a_sequence_while_decoding(engine):
    [[first]] = engine.generate([GenerationRequest(prompt=PROMPTS[1], max_new_tokens=8)]).results
    stop = first.text[len(first.text) // 2:][:3]
    assert stop.strip()
    [[cut]] = engine.generate([GenerationRequest(prompt=PROMPTS[1], max_new_tokens=8, stop=(stop,))]).results
    assert cut.finish_reason == "stop" and stop not in cut.text and first.text.startswith(cut.text)
    assert cut.tokens < first.tokens


def test_sampler_penalty_top_k_and_top_p():
    logits = torch.tensor([[4.0, 3.9, 0.0, -1.0]])
    penalised = _Sampler(GenerationRequest(prompt="x", repetition_penalty=2.0), [0], 4)
    first, _ = penalised.choose(logits, [0])
    second, _ = penalised.choose(logits, [0])
    assert first.item() == 0 and second.item() == 1  # token 0 was generated, so its logit is halved
    for seed in range(20):
        top_k = _Sampler(GenerationRequest(prompt="x", temperature=1.0, top_k=2), [seed], 4)
        assert top_k.choose(logits, [0])[0].item() in (0, 1)
        top_p = _Sampler(GenerationRequest(prompt="x", temperature=1.0, top_p=0.4), [seed], 4)
        assert top_p.choose(logits, [0])[0].item() == 0
    draws = {_Sampler(GenerationRequest(prompt="x", temperature=1.0), [seed], 4).choose(logits, [0])[0].item()
             for seed in range(40)}
    assert {0, 1} <= draws


def test_prefix_cache_keeps_block_aligned_prefixes_and_evicts_the_least_recent():
    cache = PrefixCache(block=4, capacity_tokens=8)
    states = torch.arange(2 * 2 * 1 * 10 * 1, dtype=torch.float32).view(2, 2, 1, 10, 1)
    ids = np.arange(10)
    cache.insert(ids, states)  # two full blocks fit; the last 2 tokens are no block
    assert len(cache) == 8
    found = cache.lookup(ids, limit=9)
    assert found is not None and torch.equal(found, states[:, :, :, :8])
    assert cache.lookup(ids, limit=7).shape[3] == 4
    assert cache.lookup(np.array([9, 1, 2, 3, 4]), limit=5) is None
    cache.insert(np.arange(100, 104), states[:, :, :, :4])  # evicts the least recently used block
    assert len(cache) == 8 and cache.lookup(ids, limit=9).shape[3] == 4


def test_load_spec_and_unsupported_models(tiny, tmp_path):
    backend = load("torch:%s" % tiny[0], dtype="float32")
    assert isinstance(backend, PrefixCachingBackend) and backend.capabilities.ragged_batches
    from transformers import LlamaConfig

    config = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=4,
                         attention_bias=True)
    with pytest.raises(ValueError, match="attention_bias"):
        from codegym.llm.prefix_engine import LlamaModel

        LlamaModel(config, {}, torch.float32)
    with pytest.raises(ValueError, match="dtype"):
        PrefixCachingBackend(tiny[0], dtype="float16")


def test_bench_rows_do_not_depend_on_parallel_with_the_prefix_engine(tiny, tmp_path):
    """One random stream per sequence: merging 3 searches' calls changes no sampled answer."""
    from codegym.bench import BenchConfig, read_rows, run_bench

    def rows(name: str, parallel: int) -> dict:
        config = BenchConfig(env="CodeGym/Starter-v0", agents=["best-of-n", "mcts"], budget_tokens=[120],
                             problems=["starter/gcd", "starter/fizzbuzz"], out=str(tmp_path / name), aspr_samples=0,
                             cache=False, parallel=parallel)
        run_bench(config, progress=False, backend=PrefixCachingBackend(tiny[0], dtype="float32"))
        return {(r["problem_id"], r["agent"]): (r["code"], r["generated_tokens"], r["llm_calls"])
                for r in read_rows(tmp_path / name / "results.jsonl")}

    sequential = rows("one", 1)
    assert len(sequential) == 4 and all(tokens > 0 for _, tokens, _ in sequential.values())
    assert rows("three", 3) == sequential
