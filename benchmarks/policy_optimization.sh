#!/usr/bin/env bash
# Policy optimization on the embedded SmolLM2-135M (#14): train each method on MBPP *train* only,
# then score greedy decoding on the 90 MBPP validation problems' hidden tests, paired against the
# raw model. Every step is resumable (trainers continue from their last checkpoint, benches from
# their rows) and skipped once its output exists, so rerunning the script continues after a kill.
#
#   nice bash benchmarks/policy_optimization.sh 2>&1 | tee results/policy_optimization.log
#
# Needs the MBPP train trees of the PRM section (results/mbpp_train_trees).
set -euo pipefail
cd "$(dirname "$0")/.."
TREES=results/mbpp_train_trees
VAL=(--env CodeGym/MBPP-v0 --data-path ../shared/data/mbpp --split validation --agents greedy
     --budget-tokens 1000 --aspr-samples 0 --parallel 6 --no-cache)
stamp() { echo "== $(date -u +%H:%M:%S) $*"; }

stamp "raw greedy"
[ -f results/policy_eval/raw/summary.json ] || codegym bench "${VAL[@]}" --policy smollm2 --out results/policy_eval/raw

stamp "SFT on D+"
[ -d results/policy-sft/ct2 ] || codegym train sft "$TREES" --out results/policy-sft --max-steps 60 --batch-size 4 \
  --learning-rate 2e-5 --seed 0
[ -f results/policy_eval/sft/summary.json ] || codegym bench "${VAL[@]}" --policy ct2:results/policy-sft/ct2 \
  --out results/policy_eval/sft

stamp "DPO on step pairs"
[ -d results/policy-dpo/ct2 ] || codegym train dpo "$TREES" --out results/policy-dpo --max-steps 30 --batch-size 4 \
  --learning-rate 5e-6 --seed 0
[ -f results/policy_eval/dpo/summary.json ] || codegym bench "${VAL[@]}" --policy ct2:results/policy-dpo/ct2 \
  --out results/policy_eval/dpo

stamp "GRPO on episodes of the problems search solved"
[ -d results/policy-grpo/ct2 ] || codegym train grpo --data-path ../shared/data/mbpp --solved-in "$TREES" \
  --out results/policy-grpo --max-steps 12 --episodes 4 --learning-rate 5e-6 --seed 0
[ -f results/policy_eval/grpo/summary.json ] || codegym bench "${VAL[@]}" --policy ct2:results/policy-grpo/ct2 \
  --out results/policy_eval/grpo

stamp "paired comparisons against the raw model"
for method in sft dpo grpo; do
  codegym bench compare results/policy_eval/raw "results/policy_eval/$method" --baseline raw:greedy \
    --out "results/policy_eval/compare-$method" || true
done
stamp done
