"""Effective generation throughput during MCTS (batched leaves and samples) against the default
engine answering one request at a time, in one process.

    python benchmarks/mcts_batching.py [--problems 8] [--budget 1500] [--slots 1,8]
        [--baseline smollm2] [--policies smollm2,torch:smollm2] [--json FILE]

With ``--slots 8`` eight searches run at once (as ``codegym bench --parallel 8`` does) and a
:class:`~codegym.llm.batching.LockstepBatcher` merges their leaves into one engine call per round.
The 1x is ``--baseline``'s rate on short prompts one request at a time; each engine's own
one-at-a-time rate is reported too. The prefix engine's cache is emptied before every run.
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ThreadPoolExecutor

import gymnasium as gym

import codegym  # noqa: F401
from agents import Budget, make_agent
from codegym.llm import GenerationRequest, load
from codegym.llm.base import Backend, WrappedBackend
from codegym.llm.batching import LockstepBatcher
from codegym.policy import StepPolicy


class Timed(WrappedBackend):
    """Counts the time spent inside generate calls and the batch sizes sent."""

    def __init__(self, inner: Backend):
        super().__init__(inner)
        self.seconds, self.batch_sizes = 0.0, []

    def generate(self, requests):
        started = time.perf_counter()
        output = self.inner.generate(requests)
        self.seconds += time.perf_counter() - started
        self.batch_sizes.append(sum(r.n for r in requests))
        return self._record(output)


def one_at_a_time_rate(backend: Backend, prompts: list[str], tokens: int) -> float:
    generated, started = 0, time.perf_counter()
    for i, prompt in enumerate(prompts):
        out = backend.generate([GenerationRequest(prompt=prompt, max_new_tokens=tokens, temperature=0.8, seed=i)])
        generated += out.usage.generated_tokens
    return generated / (time.perf_counter() - started)


def run_mcts(backend: Backend, problems: list[str], budget: int, slots: int) -> dict:
    """MCTS on ``problems`` with ``slots`` searches at a time, their calls merged by the batcher."""
    timed = Timed(backend)
    batcher = LockstepBatcher(timed, slots)

    def work(slot: int) -> None:
        with batcher.client(slot) as client:
            env = gym.make("CodeGym/Starter-v0")
            agent = make_agent("mcts", StepPolicy(client), expansion=3, leaves_per_round=4)
            for problem_id in problems[slot::slots]:
                agent.solve(env, problem_id, Budget(tokens=budget))

    started = time.perf_counter()
    with ThreadPoolExecutor(slots) as pool:
        for future in [pool.submit(work, slot) for slot in range(slots)]:
            future.result()
    wall = time.perf_counter() - started
    tokens = timed.usage.generated_tokens
    return {"slots": slots, "generated_tokens": tokens, "generate_seconds": timed.seconds, "search_wall_seconds": wall,
            "tokens_per_s_in_generate": tokens / timed.seconds, "tokens_per_s_whole_search": tokens / wall,
            "mean_sequences_per_call": sum(timed.batch_sizes) / len(timed.batch_sizes)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=8)
    parser.add_argument("--budget", type=int, default=1500)
    parser.add_argument("--slots", default="1,8", help="comma-separated numbers of searches run at once")
    parser.add_argument("--baseline", default="smollm2", help="the engine whose one-request-at-a-time rate is 1x")
    parser.add_argument("--policies", default="smollm2,torch:smollm2", help="comma-separated engines to run MCTS on")
    parser.add_argument("--json", default="")
    args = parser.parse_args()
    env = gym.make("CodeGym/Starter-v0")
    problems = [p.id for p in env.unwrapped.problems[: args.problems]]
    starts = [codegym.envs.render_problem(problem) + "\n[define]\n1." for problem in env.unwrapped.problems[:8]]
    with load(args.baseline) as backend:
        baseline = one_at_a_time_rate(backend, starts, 64)
    report = {"problems": len(problems), "budget": args.budget, "engines": [],
              "baseline": {"policy": args.baseline, "one_at_a_time_tokens_per_s": baseline}}
    print("baseline %s: one request at a time %.1f tokens/s" % (args.baseline, baseline))
    for spec in args.policies.split(","):
        backend = load(spec)
        own = baseline if spec == args.baseline else one_at_a_time_rate(backend, starts, 64)
        engine = {"policy": spec, "model_id": backend.model_id, "one_at_a_time_tokens_per_s": own, "runs": []}
        print("%s: one request at a time %.1f tokens/s; MCTS (expansion 3, 4 leaves per round) on %d starter "
              "problems, %d tokens each" % (spec, own, len(problems), args.budget))
        for slots in (int(part) for part in args.slots.split(",")):
            prefixes = getattr(backend, "prefixes", None)
            if prefixes is not None:
                prefixes.clear()  # every run starts cold
            run = run_mcts(backend, problems, args.budget, slots)
            run["ratio_generate"] = run["tokens_per_s_in_generate"] / baseline
            run["ratio_whole_search"] = run["tokens_per_s_whole_search"] / baseline
            run["ratio_to_own_one_at_a_time"] = run["tokens_per_s_in_generate"] / own
            if prefixes is not None:
                run["prompt_tokens_reused"] = prefixes.hit_tokens
                run["prompt_tokens_forwarded"] = prefixes.miss_tokens
            engine["runs"].append(run)
            print("  %d search(es) at once: %.1f sequences per call; %.1f tokens/s inside generate (%.1fx baseline, "
                  "%.1fx own), %.1f tokens/s over the whole search incl. sandbox (%.1fx)"
                  % (slots, run["mean_sequences_per_call"], run["tokens_per_s_in_generate"], run["ratio_generate"],
                     run["ratio_to_own_one_at_a_time"], run["tokens_per_s_whole_search"], run["ratio_whole_search"]),
                  flush=True)
        report["engines"].append(engine)
        backend.close()
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=2)


if __name__ == "__main__":
    main()
