"""Any transformers causal LM on CPU or CUDA (also GGUF files, dequantized on load)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from .base import Backend, Capabilities, Completion, GenerationRequest, Message, weights_id


class TransformersBackend(Backend):
    """Left-padded batches, ``n`` samples per prompt, stop strings, per-token log-probs."""

    def __init__(self, path_or_id: str, device: str | None = None, dtype: str = "auto", cache=None,
                 batch_size: int = 16, model_id: str | None = None):
        super().__init__(cache)
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        path = Path(path_or_id)
        kwargs = {}
        if path.suffix == ".gguf":
            kwargs["gguf_file"] = path.name
            path_or_id = str(path.parent)
        elif not path.exists():
            kwargs["local_files_only"] = os.environ.get("HF_HUB_OFFLINE", "1") == "1"
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        torch_dtype = {"auto": torch.float16 if self.device.startswith("cuda") else torch.float32,
                       "float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[dtype]
        self.tokenizer = AutoTokenizer.from_pretrained(path_or_id, **kwargs)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(path_or_id, dtype=torch_dtype, **kwargs).to(self.device)
        self.model.eval()
        self.batch_size = batch_size
        self.model_id = model_id or weights_id("hf", path_or_id)
        self.capabilities = Capabilities(logprobs=True, prefix_caching=False,
                                         chat_template=self.tokenizer.chat_template is not None, stop_strings=True)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text))

    def render_chat(self, messages: Sequence[Message]) -> str:
        if not self.capabilities.chat_template:
            return super().render_chat(messages)
        return self.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)

    def _generate(self, prompts: list[str], request: GenerationRequest, seeds: list[int]) -> list[Completion]:
        torch = self.torch
        completions: list[Completion] = []
        for start in range(0, len(prompts), self.batch_size):
            chunk = prompts[start:start + self.batch_size]
            torch.manual_seed(seeds[start])
            batch = self.tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
            sampling = {"do_sample": False} if request.temperature == 0 else {
                "do_sample": True, "temperature": request.temperature, "top_p": request.top_p,
                "top_k": request.top_k or None}
            with torch.no_grad():
                out = self.model.generate(**batch, max_new_tokens=request.max_new_tokens, return_dict_in_generate=True,
                                          output_scores=True, stop_strings=list(request.stop) or None,
                                          tokenizer=self.tokenizer, pad_token_id=self.tokenizer.pad_token_id,
                                          repetition_penalty=request.repetition_penalty,
                                          **sampling)
            new_tokens = out.sequences[:, batch["input_ids"].shape[1]:]
            scores = self.model.compute_transition_scores(out.sequences, out.scores, normalize_logits=True)
            for row, row_scores in zip(new_tokens, scores):
                keep = [i for i, token in enumerate(row.tolist()) if token != self.tokenizer.pad_token_id]
                ids = [row[i].item() for i in keep]
                ended = bool(ids) and ids[-1] == self.tokenizer.eos_token_id
                if ended:
                    ids = ids[:-1]
                text = self.tokenizer.decode(ids, skip_special_tokens=True)
                finish = "stop" if ended or len(keep) < request.max_new_tokens else "length"
                completions.append(Completion(text=text, tokens=len(keep), finish_reason=finish,
                                              token_logprobs=[float(row_scores[i]) for i in keep]))
        return completions
