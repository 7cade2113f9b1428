"""Per-step overhead of the environment (no LLM, no code execution), against a bare
gymnasium step in the same process.

    python benchmarks/env_step_overhead.py [--episodes 2000]
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym

import codegym  # noqa: F401 - registers the environments
from codegym import format_step

STEPS = [format_step("define", "1. read input\n2. loop\n3. return"),
         format_step("refine", "1. read input as a list\n2. loop with an index\n3. return the total"),
         "not a step", format_step("refine", "handle the empty list")]


def time_codegym(episodes: int) -> float:
    env = gym.make("CodeGym/Starter-v0", max_refine=3)
    steps = 0
    started = time.perf_counter()
    for episode in range(episodes):
        env.reset(seed=episode)
        for action in STEPS:
            env.step(action)
            steps += 1
    return (time.perf_counter() - started) / steps


def time_cartpole(episodes: int) -> float:
    env = gym.make("CartPole-v1")
    steps = 0
    started = time.perf_counter()
    for episode in range(episodes):
        env.reset(seed=episode)
        for _ in STEPS:
            env.step(0)
            steps += 1
    return (time.perf_counter() - started) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=2000)
    args = parser.parse_args()
    ours, baseline = time_codegym(args.episodes), time_cartpole(args.episodes)
    print("codegym step (reset amortised, incl. wrappers): %.1f us" % (ours * 1e6))
    print("CartPole-v1 step, same harness:                 %.1f us" % (baseline * 1e6))
    print("ratio codegym / CartPole: %.1fx; target < 1000 us per step: %s"
          % (ours / baseline, "met" if ours < 1e-3 else "NOT met"))


if __name__ == "__main__":
    main()
