"""Error bars and paired comparisons for pass rates on small problem sets.

Our splits hold 90-500 problems and our model solves few, so a difference is a claim only with its
interval and a paired test on the same items (Miller, "Adding Error Bars to Evals", 2024):

* :func:`wilson_interval`: 95% interval of a rate over independent items (one seed);
* :func:`cluster_bootstrap_interval`: 95% interval of a mean when items share a problem (several
  seeds): problems are resampled, never single items;
* :func:`mcnemar_exact`: exact two-sided McNemar p-value from the discordant counts;
* :func:`paired_comparison`: difference of two systems on their shared items, with its paired
  (problem-clustered) bootstrap interval, the McNemar p-value and the discordant counts.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Hashable, Mapping, Sequence

Z95 = 1.959963984540054


def wilson_interval(successes: int, total: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of ``successes / total`` (0, 0 for no items)."""
    if total <= 0:
        return (0.0, 0.0)
    rate = successes / total
    denominator = 1 + z * z / total
    centre = (rate + z * z / (2 * total)) / denominator
    half = z * math.sqrt(rate * (1 - rate) / total + z * z / (4 * total * total)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


def cluster_bootstrap_interval(clusters: Sequence[Sequence[float]], iters: int = 2000, seed: int = 0,
                               level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the mean over all values, resampling whole clusters (problems)."""
    clusters = [list(c) for c in clusters if len(c)]
    if not clusters:
        return (0.0, 0.0)
    rng = random.Random(seed)
    sums = [(sum(c), len(c)) for c in clusters]
    means = []
    for _ in range(iters):
        total = count = 0.0
        for _ in range(len(sums)):
            s, n = sums[rng.randrange(len(sums))]
            total += s
            count += n
        means.append(total / count)
    means.sort()
    tail = (1 - level) / 2
    return (means[int(tail * (iters - 1))], means[int(round((1 - tail) * (iters - 1)))])


def rate_interval(passes_by_problem: Mapping[Hashable, Sequence[bool]], seed: int = 0) -> tuple[float, float]:
    """95% interval of a pass rate: Wilson with one item per problem, clustered bootstrap otherwise."""
    groups = list(passes_by_problem.values())
    if all(len(g) == 1 for g in groups):
        return wilson_interval(sum(bool(g[0]) for g in groups), len(groups))
    return cluster_bootstrap_interval([[float(x) for x in g] for g in groups], seed=seed)


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value: the binomial test of the discordant pairs against 1/2."""
    n = only_a + only_b
    if n == 0:
        return 1.0
    k = min(only_a, only_b)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def paired_comparison(a: Mapping[tuple, bool], b: Mapping[tuple, bool], iters: int = 2000,
                      seed: int = 0) -> dict:
    """Compare two systems on their shared items, keyed ``(problem_id, seed, ...)``.

    Returns the item count, both pass@1 values, ``diff`` (a - b), its 95% paired bootstrap interval
    (problems resampled, so several seeds of one problem move together), the exact McNemar p-value
    and the discordant counts ``a_only`` / ``b_only``."""
    shared = sorted(set(a) & set(b), key=repr)
    if not shared:
        return {"items": 0}
    by_problem: dict[Hashable, list[float]] = defaultdict(list)
    for key in shared:
        by_problem[key[0]].append(float(bool(a[key])) - float(bool(b[key])))
    only_a = sum(bool(a[k]) and not b[k] for k in shared)
    only_b = sum(bool(b[k]) and not a[k] for k in shared)
    return {"items": len(shared), "problems": len(by_problem),
            "pass@1_a": sum(bool(a[k]) for k in shared) / len(shared),
            "pass@1_b": sum(bool(b[k]) for k in shared) / len(shared),
            "diff": (only_a - only_b) / len(shared),
            "diff_ci": list(cluster_bootstrap_interval(list(by_problem.values()), iters, seed)),
            "p_mcnemar": mcnemar_exact(only_a, only_b), "a_only": only_a, "b_only": only_b}


def auc(scores: Sequence[float], positives: Sequence[bool]) -> float | None:
    """Area under the ROC curve: the chance a random positive outscores a random negative (ties
    count half). None without both classes."""
    pairs = sorted(zip(scores, positives))
    pos = sum(1 for _, p in pairs if p)
    neg = len(pairs) - pos
    if not pos or not neg:
        return None
    rank_sum, index = 0.0, 0
    while index < len(pairs):
        end = index
        while end < len(pairs) and pairs[end][0] == pairs[index][0]:
            end += 1
        mean_rank = (index + 1 + end) / 2  # ranks are 1-based; ties share their mean rank
        rank_sum += mean_rank * sum(1 for _, p in pairs[index:end] if p)
        index = end
    return (rank_sum - pos * (pos + 1) / 2) / (pos * neg)


def auc_interval(clusters: Sequence[Sequence[tuple[float, bool]]], iters: int = 1000, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float] | None:
    """Percentile interval of the AUC over (score, positive) pairs, resampling whole clusters
    (problems: the steps of one problem's trees are not independent). None without both classes."""
    clusters = [list(c) for c in clusters if len(c)]
    if auc(*_split([x for c in clusters for x in c])) is None:
        return None
    rng = random.Random(seed)
    values = []
    for _ in range(iters):
        value = auc(*_split([x for _ in clusters for x in clusters[rng.randrange(len(clusters))]]))
        if value is not None:
            values.append(value)
    values.sort()
    tail = (1 - level) / 2
    return (values[int(tail * (len(values) - 1))], values[int(round((1 - tail) * (len(values) - 1)))])


def sign_flip_p(diffs: Sequence[float], iters: int = 20000, seed: int = 0) -> float:
    """Two-sided paired permutation test of mean(diffs) = 0: each problem's difference keeps its
    size and gets a random sign. Exact over all signs up to 16 nonzero differences, else
    ``iters`` seeded draws. With 0/1 differences this is the exact McNemar test."""
    nonzero = [d for d in diffs if d != 0]
    if not nonzero:
        return 1.0
    observed = abs(sum(nonzero)) - 1e-12
    if len(nonzero) <= 16:
        signs = range(1 << len(nonzero))
        hits = sum(abs(sum(d if mask >> i & 1 else -d for i, d in enumerate(nonzero))) >= observed for mask in signs)
        return hits / (1 << len(nonzero))
    rng = random.Random(seed)
    hits = sum(abs(sum(d if rng.random() < 0.5 else -d for d in nonzero)) >= observed for _ in range(iters))
    return (hits + 1) / (iters + 1)


def paired_auc_difference(a: Sequence[Sequence[tuple[float, bool]]], b: Sequence[Sequence[tuple[float, bool]]],
                          iters: int = 1000, seed: int = 0, level: float = 0.95) -> dict | None:
    """AUC(a) - AUC(b) for two scorers of the same steps (cluster i of ``a`` and of ``b`` hold the
    same problem's steps in the same order): the difference, its percentile interval and a
    two-sided bootstrap p-value, resampling problems. None without both classes."""
    if len(a) != len(b) or any(len(x) != len(y) for x, y in zip(a, b)):
        raise ValueError("the two scorers must score the same steps")

    def diff(indices: Sequence[int]) -> float | None:
        left = [x for i in indices for x in a[i]]
        right = [x for i in indices for x in b[i]]
        auc_a, auc_b = auc(*_split(left)), auc(*_split(right))
        return None if auc_a is None or auc_b is None else auc_a - auc_b

    point = diff(range(len(a)))
    if point is None:
        return None
    rng = random.Random(seed)
    values = sorted(d for d in (diff([rng.randrange(len(a)) for _ in a]) for _ in range(iters)) if d is not None)
    tail = (1 - level) / 2
    p = min(1.0, 2 * min(sum(d <= 0 for d in values), sum(d >= 0 for d in values)) / len(values))
    return {"diff": point, "diff_ci": [values[int(tail * (len(values) - 1))],
                                       values[int(round((1 - tail) * (len(values) - 1)))]], "p_bootstrap": p}


def _split(pairs: Sequence[tuple[float, bool]]) -> tuple[list[float], list[bool]]:
    return [s for s, _ in pairs], [p for _, p in pairs]
