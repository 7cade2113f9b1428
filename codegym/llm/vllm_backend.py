"""In-process vLLM (GPU extra): prefix caching on, ``n`` samples and log-probs per request."""

from __future__ import annotations

from collections.abc import Sequence

from .base import Backend, Capabilities, Completion, GenerationRequest, Message


class VLLMBackend(Backend):
    capabilities = Capabilities(logprobs=True, prefix_caching=True, chat_template=True, stop_strings=True)

    def __init__(self, path_or_id: str, cache=None, gpu_memory_utilization: float = 0.85, max_model_len: int = 8192,
                 seed: int = 0, **engine_kwargs):
        super().__init__(cache)
        try:
            import vllm
        except ImportError as err:
            raise RuntimeError("the vllm backend needs the GPU extra: pip install 'codegym[vllm]'") from err
        self._vllm = vllm
        self.llm = vllm.LLM(model=path_or_id, enable_prefix_caching=True, seed=seed,
                            gpu_memory_utilization=gpu_memory_utilization, max_model_len=max_model_len,
                            **engine_kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        self.model_id = "vllm:%s" % path_or_id

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text))

    def render_chat(self, messages: Sequence[Message]) -> str:
        return self.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)

    def _generate(self, prompts: list[str], request: GenerationRequest, seeds: list[int]) -> list[Completion]:
        params = [self._vllm.SamplingParams(n=1, temperature=request.temperature, top_p=request.top_p,
                                            top_k=request.top_k or -1, repetition_penalty=request.repetition_penalty,
                                            max_tokens=request.max_new_tokens,
                                            stop=list(request.stop) or None, seed=seed, logprobs=0)
                  for seed in seeds]
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        completions = []
        for output in outputs:
            sample = output.outputs[0]
            logprobs = None
            if sample.logprobs:
                logprobs = [float(step[token].logprob) for step, token in zip(sample.logprobs, sample.token_ids)]
            completions.append(Completion(text=sample.text, tokens=len(sample.token_ids),
                                          finish_reason="length" if sample.finish_reason == "length" else "stop",
                                          token_logprobs=logprobs))
        return completions

    def close(self) -> None:
        del self.llm
