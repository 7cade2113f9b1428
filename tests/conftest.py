from __future__ import annotations

import os
from pathlib import Path

import pytest

MBPP_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mbpp"


@pytest.fixture(scope="session")
def mbpp_dir() -> Path:
    """The MBPP splits the team keeps beside the repository (tests skip where absent)."""
    path = Path(os.environ.get("CODEGYM_MBPP_PATH", MBPP_DIR))
    if not (path / "validation.jsonl").exists():
        pytest.skip("MBPP data not found at %s" % path)
    return path


@pytest.fixture(scope="session")
def sandbox():
    from codegym.execution import Sandbox

    with Sandbox(timeout_s=5.0, workers=2) as sb:
        yield sb


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> str:
    """A tiny random Llama with the embedded model's tokenizer and, like SmolLM2, tied embeddings:
    trainers run on it in seconds."""
    torch = pytest.importorskip("torch")
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from codegym.llm.embedded import prepare_embedded

    path = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = AutoTokenizer.from_pretrained(prepare_embedded() / "hf")
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         tie_word_embeddings=True)
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)
