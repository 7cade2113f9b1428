"""Tokens/second of the embedded default (CTranslate2 int8) and of transformers (fp32, same
weights) at batch 1, 8 and 16, in one run; prints the ratios.

    python benchmarks/generation_throughput.py [--tokens 64] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import time

from codegym.llm import GenerationRequest, load

PROMPT = "Write a Python function that returns the n-th Fibonacci number, then explain it."


def rate(backend, batch: int, tokens: int) -> float:
    requests = [GenerationRequest(messages=({"role": "user", "content": PROMPT},), max_new_tokens=tokens,
                                  temperature=0.8, seed=i) for i in range(batch)]
    backend.generate(requests[:1])  # warm up
    started = time.perf_counter()
    output = backend.generate(requests)
    return output.usage.generated_tokens / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--batches", default="1,8,16")
    parser.add_argument("--json", default="")
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    started = time.perf_counter()
    embedded = load("smollm2")
    load_s = time.perf_counter() - started
    transformers = load("hf:smollm2")
    report = {"embedded_load_s": load_s, "rows": []}
    print("embedded backend loaded in %.1f s" % load_s)
    print("%6s %14s %16s %7s" % ("batch", "ct2-int8 tok/s", "transformers tok/s", "ratio"))
    for batch in batches:
        ours, theirs = rate(embedded, batch, args.tokens), rate(transformers, batch, args.tokens)
        report["rows"].append({"batch": batch, "ct2_int8": ours, "transformers_fp32": theirs, "ratio": ours / theirs})
        print("%6d %14.1f %16.1f %6.1fx" % (batch, ours, theirs, ours / theirs))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=2)


if __name__ == "__main__":
    main()
