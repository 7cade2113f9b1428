"""``codegym solve`` and ``codegym serve``: one episode with a model, or the model over HTTP."""

from __future__ import annotations

import argparse

from .common import add_command, dataset_args, load_env_data, policy_args


def register(sub) -> None:
    solve = add_command(sub, "solve", _run_solve, "play one episode greedily (define -> refine -> translate) and print it")
    solve.add_argument("--env", default="CodeGym/Starter-v0", help="a registered environment id")
    solve.add_argument("--problem", required=True, help="problem id (see `codegym datasets show`)")
    solve.add_argument("--template", default="pseudocode", help="prompt template: pseudocode, cot, direct or a JSON path")
    solve.add_argument("--refines", type=int, default=1, help="refine steps before translating")
    policy_args(solve)
    dataset_args(solve)

    serve = add_command(sub, "serve", _run_serve, "serve a policy over an OpenAI-compatible HTTP API")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on")
    serve.add_argument("--prm", default=None, help="also serve this PRM (token:PATH, value:PATH, logprob:PATH) at "
                       "/v1/prm/score, for remote:URL clients; none: no PRM")
    policy_args(serve)


def _run_solve(args: argparse.Namespace) -> int:
    import gymnasium as gym

    from ..llm import check_spec, load
    from ..policy import StepPolicy
    from ..prompts import load_template

    dataset = load_env_data(args, args.env)
    problem = dataset.get(args.problem)
    check_spec(args.policy)
    template = load_template(args.template)
    if args.refines < 0:
        raise ValueError("--refines must be at least 0")
    env = gym.make(args.env, problems=[problem], max_refine=max(args.refines, 1))
    obs, info = env.reset(options={"problem_id": problem.id})
    policy = StepPolicy(load(args.policy, cache=args.cache), template)
    print("problem %s\n%s\n" % (problem.id, obs["problem"]))
    for kind in ["define"] + ["refine"] * args.refines + ["translate"]:
        proposal = policy.propose_many([(obs["problem"], obs["trajectory"], kind, problem.kind == "stdio")])[0][0]
        obs, reward, terminated, truncated, info = env.step(proposal.action)
        print(proposal.action if info["invalid_action"] is None else "(invalid: %s)" % info["invalid_action"])
        print("-> reward %.3f\n" % reward)
        if terminated or truncated:
            break
    if "code" in info:
        print("status on %s tests: %s (%d/%d passed), reward %.3f"
              % (info["reward_tests"], info["status"], info["tests_passed"], info["tests_total"], reward))
    print("usage: %s" % policy.backend.usage.to_dict())
    return 0


def _run_serve(args: argparse.Namespace) -> int:
    from ..llm import load
    from ..llm.server import serve

    prm = None
    if args.prm:
        from ..prm.model import check_prm_spec, load_prm

        if check_prm_spec(args.prm)[0] == "remote":
            raise ValueError("--prm serves a local model; remote:URL is already served")
        prm = load_prm(args.prm)
    serve(load(args.policy, cache=args.cache), args.host, args.port, prm)
    return 0
