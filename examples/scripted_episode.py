"""Play one episode with a hand-written step sequence and print the reward.

    python examples/scripted_episode.py
"""

import codegym
from codegym import format_step

# The environment gets public problems only; the judge, kept apart, holds the hidden tests.
env, judge = codegym.make_with_judge("CodeGym/Starter-v0", render_mode="ansi")
obs, info = env.reset(options={"problem_id": "starter/fizzbuzz"})
print(obs["problem"], "\n")

steps = [
    format_step("define", "1. For each i from 1 to n build a label.\n2. Collect the labels in a list."),
    format_step("refine", "label = 'Fizz' if i % 3 == 0, + 'Buzz' if i % 5 == 0; empty label -> str(i)."),
    format_step("translate", """
def fizzbuzz(n):
    out = []
    for i in range(1, n + 1):
        label = ("Fizz" if i % 3 == 0 else "") + ("Buzz" if i % 5 == 0 else "")
        out.append(label or str(i))
    return out
"""),
]
for action in steps:
    obs, reward, terminated, truncated, info = env.step(action)
    print("%-9s reward=%.2f terminated=%s" % (info["step_kind"], reward, terminated))

print("\nreward tests: %s, passed %d/%d" % (info["reward_tests"], info["tests_passed"], info["tests_total"]))
hidden = judge.evaluate(info["problem_id"], info["code"])
print("hidden tests (judging call): passed=%s (%d/%d tests)" % (hidden.passed, hidden.tests_passed, hidden.tests_total))
