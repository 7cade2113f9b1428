#!/usr/bin/env bash
# The self-play loop on the embedded SmolLM2-135M (#15): the default config (2 rounds, 40 MBPP-train
# problems searched per round, the 90 MBPP validation problems' hidden tests for evaluation), then
# each round's evaluation paired against the raw model: greedy against results/policy_eval/raw, MCTS
# against mcts-c2 of results/mbpp_val_search_variants (same protocol: budget 1,000, seed 0,
# parallel 6). Resumable: rerun after a kill and it continues.
#
#   nice bash benchmarks/selfplay.sh 2>&1 | tee results/selfplay.log
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=results/selfplay
codegym selfplay --data-path ../shared/data/mbpp --out "$OUT"
for round in "$OUT"/round-*; do
  codegym bench compare results/policy_eval/raw "$round/eval" --baseline raw:greedy --out "$round/compare-greedy" || true
  codegym bench compare results/mbpp_val_search_variants "$round/eval" --baseline mbpp_val_search_variants:mcts-c2 \
    --out "$round/compare-mcts" || true
done
codegym bench compare "$OUT"/round-*/eval --out "$OUT/compare-rounds" || true
