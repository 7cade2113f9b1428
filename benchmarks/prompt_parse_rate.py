"""How often the embedded model writes a step the environment accepts, per step kind.

Plays define -> refine -> translate greedily (and with sampling) on the starter set and MBPP
validation, and counts actions the env rejects as invalid.

    python benchmarks/prompt_parse_rate.py --mbpp ../shared/data/mbpp [--template pseudocode] [--limit 0]
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter

import codegym
from codegym.envs.steps import StepParseError, parse_step
from codegym.llm import load
from codegym.policy import StepPolicy


def measure(problems, policy: StepPolicy, temperature: float, seed: int) -> dict:
    counts, valid = Counter(), Counter()
    trajectories = {p.id: "" for p in problems}
    texts = {p.id: codegym.envs.render_problem(p) for p in problems}
    for kind in ("define", "refine", "translate"):
        items = [(texts[p.id], trajectories[p.id], kind, p.kind == "stdio") for p in problems]
        proposals = policy.propose_many(items, temperature=temperature, seed=seed)
        for problem, (proposal,) in zip(problems, proposals):
            counts[kind] += 1
            try:
                step = parse_step(proposal.action)
                valid[kind] += step.kind == kind
                trajectories[problem.id] += "\n\n" + codegym.format_step(step.kind, step.text)
            except StepParseError:
                pass
    return {kind: valid[kind] / counts[kind] for kind in counts} | {"all": sum(valid.values()) / sum(counts.values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", default="smollm2")
    parser.add_argument("--template", default="pseudocode")
    parser.add_argument("--mbpp", default="", help="MBPP split folder (validation is used)")
    parser.add_argument("--limit", type=int, default=0, help="problems per set (0: all)")
    parser.add_argument("--json", default="")
    args = parser.parse_args()
    policy = StepPolicy(load(args.policy), args.template)
    sets = {"starter": codegym.load_dataset("starter").problems}
    if args.mbpp:
        sets["mbpp-validation"] = codegym.load_dataset("mbpp", data_path=args.mbpp, split="validation").problems
    report = {}
    for name, problems in sets.items():
        problems = problems[: args.limit or None]
        for label, temperature in (("greedy", 0.0), ("t=0.8", 0.8)):
            started = time.time()
            rates = measure(problems, policy, temperature, seed=0)
            report["%s/%s" % (name, label)] = rates
            print("%-16s %-7s problems=%3d  define %.1f%%  refine %.1f%%  translate %.1f%%  all %.1f%%  (%.0f s)"
                  % (name, label, len(problems), 100 * rates["define"], 100 * rates["refine"],
                     100 * rates["translate"], 100 * rates["all"], time.time() - started))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"policy": args.policy, "template": args.template, "rates": report}, fh, indent=2)


if __name__ == "__main__":
    main()
