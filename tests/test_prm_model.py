"""PRM models on a tiny random Llama: batched scoring, the soft-label loss, training, evaluation."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")


ITEMS = [("Add two numbers.", ["[define]\n1. add a and b", "[translate]\n```python\ndef f(a, b): return a + b\n```"]),
         ("Reverse a string.", ["[define]\n1. slice backwards"]),
         ("Sort a list, a long statement " * 20, ["[define]\n1. sorted", "[refine]\n1. key", "[translate]\nx"])]


@pytest.mark.parametrize("kind", ["token", "logprob"])
def test_batched_scores_equal_one_at_a_time(tiny, kind):
    from codegym.prm.model import load_prm

    prm = load_prm("%s:%s" % (kind, tiny), batch_size=3, cache_size=0)  # no cache: every call computes
    together = prm.score_many(ITEMS)
    alone = [prm.score_many([item])[0] for item in ITEMS]
    assert [len(s) for s in together] == [2, 1, 3]
    for a, b in zip(together, alone):
        assert a == pytest.approx(b, abs=1e-5)
    assert all(0.0 <= x <= 1.0 for row in together for x in row) and prm.tokens_read > 0


def test_score_cache_answers_repeats_without_reading_tokens(tiny):
    from codegym.prm.model import load_prm

    prm = load_prm("token:%s" % tiny, batch_size=2)
    first = prm.score_many(ITEMS + ITEMS[:1])  # a repeat within one call is computed once
    read = prm.tokens_read
    uncached = load_prm("token:%s" % tiny, batch_size=2, cache_size=0)
    uncached.score_many(ITEMS)
    assert read == uncached.tokens_read and prm.cache_hits == 1
    again = prm.score_many(list(reversed(ITEMS)))
    assert again == list(reversed(first[:3])) and prm.tokens_read == read and prm.cache_hits == 4
    small = load_prm("token:%s" % tiny, cache_size=1)
    small.score_many(ITEMS)
    assert len(small.cache) == 1  # least recently used entries are dropped


def test_soft_rating_loss_by_hand():
    from codegym.prm.train import soft_rating_loss

    logits = torch.zeros((1, 2, 4))
    logits[0, 1, 2] = 2.0  # the "good" token's logit at position 1
    loss = soft_rating_loss(logits, (torch.tensor([0]), torch.tensor([1])), torch.tensor([0.75]), good=2, bad=3)
    q = torch.tensor([2.0, 0.0]).softmax(0)
    assert float(loss) == pytest.approx(float(-(0.75 * q[0].log() + 0.25 * q[1].log())), rel=1e-6)


def test_training_lowers_the_loss_and_learns_to_rank_steps(tiny, tmp_path):
    from codegym.prm.model import TokenPRM, evaluate_prm
    from codegym.prm.train import PRMTrainConfig, read_stepwise, train_prm

    rows = []
    for i in range(16):
        rows.append({"prompt": "Problem %d: compute the total." % i,
                     "completions": ["[define]\n1. loop and add the numbers correctly", "[translate]\nwrong guess %d" % i],
                     "labels": [0.9, 0.1]})
    labels = tmp_path / "stepwise_q.jsonl"
    labels.write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = train_prm(PRMTrainConfig(labels=str(labels), model=tiny, out=str(tmp_path / "prm"), max_steps=20,
                                             batch_size=4, learning_rate=3e-3))
    assert summary["steps"] == 20 and summary["last_loss"] < summary["first_loss"]
    assert json.loads((tmp_path / "prm" / "train_config.json").read_text())["max_steps"] == 20
    untrained = TokenPRM(tiny)
    result = evaluate_prm(TokenPRM(summary["final"]), read_stepwise(labels), against=untrained)
    assert result["steps"] == 32 and result["auc"] > 0.9 and result["accuracy"] > 0.9
    against = result["against"]  # the same steps, scored by the untrained model, paired by problem
    assert against["tokens_read"] == untrained.tokens_read > 0
    assert against["diff"] == pytest.approx(result["auc"] - against["auc"])
    assert against["diff_ci"][0] <= against["diff"] <= against["diff_ci"][1]


def test_bad_labels_and_specs_are_one_line_errors(tmp_path):
    from codegym.cli import main
    from codegym.prm.model import load_prm
    from codegym.prm.train import read_stepwise

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "p", "completions": ["a", "b"], "labels": [0.5]}) + "\n")
    with pytest.raises(ValueError, match="as many labels"):
        read_stepwise(bad)
    with pytest.raises(ValueError, match="unknown PRM spec"):
        load_prm("vibes:x")
    with pytest.raises(FileNotFoundError, match="no model folder"):
        load_prm("value:/nonexistent")
    assert main(["prm", "train", "--labels", str(bad), "--out", str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists()


def test_a_prm_spec_drives_env_rewards_and_every_agent_in_bench(tiny, tmp_path):
    import gymnasium as gym

    import codegym
    from codegym.bench import BenchConfig, read_rows, run_bench
    from codegym.llm.scripted import ScriptedBackend

    env = gym.make("CodeGym/Starter-v0", prm="token:%s" % tiny)
    env.reset(options={"problem_id": "starter/gcd"})
    _, reward, _, _, info = env.step(codegym.format_step("define", "1. Euclid"))
    assert 0.0 < reward < 1.0 and info["process_reward"] == reward

    def script(prompt, seed):
        return "def gcd(a, b):\n    return a\n" if prompt.endswith("```python\n") else " plan %d" % seed

    config = BenchConfig(agents=["m=mcts:value=prm", "b=best-of-n:selector=prm", "beam=beam:score=prm"],
                         budget_tokens=[200], problems=["starter/gcd"], out=str(tmp_path / "run"), aspr_samples=0,
                         cache=False, prm="token:%s" % tiny)
    run_bench(config, progress=False, backend=ScriptedBackend(script))
    rows = read_rows(tmp_path / "run" / "results.jsonl")
    assert len(rows) == 3 and all(r["prm_tokens"] > 0 for r in rows)
    with pytest.raises(ValueError, match="needs a process reward model"):
        run_bench(BenchConfig(agents=["m=mcts:value=prm"], out=str(tmp_path / "never")),
                  backend=ScriptedBackend(script))
    assert not (tmp_path / "never").exists()


@pytest.mark.parametrize("objective", ["point", "pair"])
def test_value_prm_trains_point_and_pair_wise(tiny, tmp_path, objective):
    from codegym.prm.model import ValuePRM, evaluate_prm, load_prm
    from codegym.prm.train import PRMTrainConfig, train_prm

    stepwise = [{"prompt": "Problem %d: compute the total." % i,
                 "completions": ["[define]\n1. loop and add the numbers correctly", "[translate]\nwrong guess %d" % i],
                 "labels": [0.9, 0.1]} for i in range(16)]
    pairs = [{"prompt": "Problem %d: compute the total." % i, "chosen": "[define]\n1. loop and add the numbers correctly",
              "rejected": "[translate]\nwrong guess %d" % i, "margin": 0.8} for i in range(16)]
    labels = tmp_path / "labels.jsonl"
    labels.write_text("".join(json.dumps(r) + "\n" for r in (pairs if objective == "pair" else stepwise)))
    config = PRMTrainConfig(labels=str(labels), kind="value", objective=objective, model=tiny,
                            out=str(tmp_path / "prm"), max_steps=20, batch_size=4, learning_rate=3e-3)
    summary = train_prm(config)  # saves checkpoints at steps 10 and 20 (the tied embeddings included)
    assert summary["last_loss"] < summary["first_loss"]
    config.max_steps = 24
    resumed = train_prm(config)  # continues from checkpoint-20: its logged history comes back
    assert resumed["steps"] == 24 and resumed["first_loss"] == summary["first_loss"]
    prm = load_prm("value:%s" % summary["final"])
    assert isinstance(prm, ValuePRM)
    assert evaluate_prm(prm, stepwise)["auc"] > 0.9
    together = prm.score_many(ITEMS)
    assert together[1] == pytest.approx(prm.score_many([ITEMS[1]])[0], abs=1e-5)
    with pytest.raises(ValueError, match="objective"):
        PRMTrainConfig(kind="token", objective="pair")


def test_rerank_scores_selectors_on_a_runs_candidates_with_ties_split(tiny, tmp_path):
    from codegym.bench import BenchConfig, run_bench
    from codegym.llm.scripted import ScriptedBackend
    from codegym.prm.rerank import format_rerank, rerank, tie_split_value

    assert tie_split_value([1.0, 1.0, 0.0], [True, False, True]) == 0.5  # the tied best: one of two passes
    assert tie_split_value([0.2, 0.9], [False, True]) == 1.0

    def script(prompt, seed):
        if prompt.endswith("```python\n"):  # right or wrong by seed: candidates whose verdicts differ
            return "import math\ndef gcd(a, b):\n    return math.gcd(a, b)\n" if seed % 2 else "def gcd(a, b):\n    return a\n"
        return " plan %d" % seed

    run_bench(BenchConfig(agents=["mcts"], budget_tokens=[400], problems=["starter/gcd"], out=str(tmp_path / "run"),
                          aspr_samples=0, cache=False), progress=False, backend=ScriptedBackend(script))
    report = rerank(tmp_path / "run", ["token:%s" % tiny], tmp_path / "rerank", n=8, progress=False)
    assert report["problems"] == 1 and report["candidates"] >= 2 and report["disagreeing"] == 1
    candidates = [json.loads(line) for line in (tmp_path / "rerank" / "candidates.jsonl").read_text().splitlines()]
    passed = [c["passed"] for c in candidates]
    assert True in passed and False in passed
    selectors = report["selectors"]
    assert selectors["random"]["all"]["pass@1"] == sum(passed) / len(passed)
    public = tie_split_value([c["public_reward"] for c in candidates], passed)
    assert selectors["public"]["all"]["pass@1"] == public
    assert 0.0 <= selectors["token:%s" % tiny]["disagreeing"]["pass@1"] <= 1.0
    assert "disagreeing" in format_rerank(report)


def test_a_served_prm_scores_like_the_local_one_and_counts_what_it_read(tiny):
    """codegym serve --prm: remote:URL clients get the local PRM's scores; tokens are counted per
    client, and a malformed request is a one-line error."""
    import threading

    import gymnasium as gym

    import codegym
    from codegym.llm.scripted import ScriptedBackend
    from codegym.llm.server import make_server
    from codegym.prm.model import check_prm_spec, load_prm

    local = load_prm("token:%s" % tiny, cache_size=0)
    server = make_server(ScriptedBackend(["x"]), port=0, prm=load_prm("token:%s" % tiny, cache_size=0))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = "http://127.0.0.1:%d/v1" % server.server_address[1]
        remote = load_prm("remote:" + url)
        got = remote.score_many(ITEMS)
        want = local.score_many(ITEMS)
        for a, b in zip(got, want):
            assert a == pytest.approx(b, abs=1e-6)
        assert remote.tokens_read == local.tokens_read > 0
        env = gym.make("CodeGym/Starter-v0", prm="remote:" + url)  # an environment's step rewards, served
        env.reset(options={"problem_id": "starter/gcd"})
        assert 0.0 < env.step(codegym.format_step("define", "1. Euclid"))[1] < 1.0
        from codegym.llm.http import post_json

        for bad in ({"items": [{"prompt": 1}]}, {"items": [{"prompt": "p", "steps": []}]}):
            with pytest.raises(RuntimeError, match="answered 400: .*items must be a list"):
                post_json(url.removesuffix("/v1") + "/v1/prm/score", bad, retries=0)
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(ValueError, match="http"):
        check_prm_spec("remote:localhost:8000")
