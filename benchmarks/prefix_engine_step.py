"""Cost of one decode step of the prefix engine by batch width (400 cached columns), in one process.

    python benchmarks/prefix_engine_step.py [--widths 1,8,21,32,48,64] [--json FILE]

Why: on a CPU a decode step is bound by reading the weights, so wider rounds are nearly free; this
is the measurement behind running 16 searches at once with ``--policy torch:smollm2``.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from codegym.llm import load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", default="1,8,21,32,48,64")
    parser.add_argument("--columns", type=int, default=400)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--json", default="")
    args = parser.parse_args()
    model = load("torch:smollm2").model
    rows = []
    with torch.inference_mode():
        for width in (int(part) for part in args.widths.split(",")):
            kv = model.new_kv(width, args.columns + 1)
            mask = torch.ones(width, 1, 1, args.columns + 1, dtype=torch.bool)
            ids, positions = torch.randint(100, 40000, (width, 1)), torch.full((width, 1), args.columns)
            model.forward(ids, positions, kv, args.columns, mask)  # warm-up
            started = time.perf_counter()
            for _ in range(args.steps):
                model.forward(ids, positions, kv, args.columns, mask)
            seconds = (time.perf_counter() - started) / args.steps
            rows.append({"width": width, "ms_per_step": seconds * 1000, "tokens_per_s": width / seconds})
            print("%3d rows: %6.1f ms per step, %5.0f tokens/s" % (width, seconds * 1000, width / seconds))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"columns": args.columns, "dtype": str(model.dtype), "rows": rows}, fh, indent=2)


if __name__ == "__main__":
    main()
