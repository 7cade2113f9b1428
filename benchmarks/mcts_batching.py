"""Effective generation throughput during MCTS (batched leaves and samples) against the same
backend answering one request at a time, in one process.

    python benchmarks/mcts_batching.py [--problems 4] [--budget 1500] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import time

import gymnasium as gym

import codegym  # noqa: F401
from agents import Budget, make_agent
from codegym.llm import GenerationRequest, load
from codegym.llm.base import Backend
from codegym.policy import StepPolicy


class Timed(Backend):
    """Counts the time spent inside generate calls and the batch sizes sent."""

    def __init__(self, inner: Backend):
        super().__init__()
        self.inner, self.model_id, self.capabilities = inner, inner.model_id, inner.capabilities
        self.seconds, self.batch_sizes = 0.0, []

    def generate(self, requests):
        started = time.perf_counter()
        output = self.inner.generate(requests)
        self.seconds += time.perf_counter() - started
        self.batch_sizes.append(sum(r.n for r in requests))
        self.usage.add(output.usage)
        return output

    def prompt_text(self, request):
        return self.inner.prompt_text(request)

    def count_tokens(self, text):
        return self.inner.count_tokens(text)


def one_at_a_time_rate(backend: Backend, prompts: list[str], tokens: int) -> float:
    generated, started = 0, time.perf_counter()
    for i, prompt in enumerate(prompts):
        out = backend.generate([GenerationRequest(prompt=prompt, max_new_tokens=tokens, temperature=0.8, seed=i)])
        generated += out.usage.generated_tokens
    return generated / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=4)
    parser.add_argument("--budget", type=int, default=1500)
    parser.add_argument("--json", default="")
    args = parser.parse_args()
    backend = load("smollm2")
    timed = Timed(backend)
    env = gym.make("CodeGym/Starter-v0")
    problems = [p.id for p in env.unwrapped.problems[: args.problems]]
    agent = make_agent("mcts", StepPolicy(timed), expansion=3, leaves_per_round=4)
    started = time.perf_counter()
    for problem_id in problems:
        agent.solve(env, problem_id, Budget(tokens=args.budget))
    wall = time.perf_counter() - started
    tokens = timed.usage.generated_tokens
    baseline = one_at_a_time_rate(backend, [codegym.envs.render_problem(env.unwrapped.problems[i]) + "\n[define]\n1."
                                            for i in range(8)], 64)
    report = {"problems": len(problems), "budget": args.budget, "generated_tokens": tokens,
              "generate_seconds": timed.seconds, "search_wall_seconds": wall,
              "tokens_per_s_in_generate": tokens / timed.seconds, "tokens_per_s_whole_search": tokens / wall,
              "one_at_a_time_tokens_per_s": baseline, "mean_batch": sum(timed.batch_sizes) / len(timed.batch_sizes),
              "ratio_generate": tokens / timed.seconds / baseline, "ratio_whole_search": tokens / wall / baseline}
    print("MCTS (expansion 3, 4 leaves per round) on %d starter problems, budget %d tokens each" % (len(problems),
                                                                                                  args.budget))
    print("  mean sequences per generate call: %.1f" % report["mean_batch"])
    print("  tokens/s inside generate: %.1f   over the whole search (incl. sandbox): %.1f"
          % (report["tokens_per_s_in_generate"], report["tokens_per_s_whole_search"]))
    print("  one request at a time:   %.1f tokens/s" % baseline)
    print("  ratio: %.1fx (generate), %.1fx (whole search)" % (report["ratio_generate"], report["ratio_whole_search"]))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=2)


if __name__ == "__main__":
    main()
