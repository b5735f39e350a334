"""The hall of fame per complexity and the paired one-standard-error choice (search/front.py)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from search.fitness import kendall_tau
from search.front import choose, difference_error, pareto_front


def entry(index: int, complexity: int, train: float, validation: float | None) -> dict:
    return {"index": index, "complexity": complexity, "train_fitness": train, "validation_fitness": validation}


def test_front_keeps_only_formulas_no_simpler_one_matches():
    entries = [entry(0, 5, 0.30, None), entry(1, 3, 0.40, None), entry(2, 9, 0.50, None),
               entry(3, 9, 0.50, None), entry(4, 12, 0.45, None), entry(5, 3, 0.40, None)]
    front = pareto_front(entries, lambda e: e["complexity"], lambda e: e["train_fitness"], lambda e: e["index"])
    assert [e["index"] for e in front] == [1, 2]      # ties go to the earlier formula


def test_difference_error_is_the_jackknife_and_paired():
    rng = np.random.default_rng(0)
    accuracy = rng.normal(size=60)
    best = accuracy + rng.normal(size=60)
    near = best + 0.05 * rng.normal(size=60)          # ranks almost like the best
    other = accuracy + rng.normal(size=60)            # scores alike, ranks otherwise
    n = 60
    replicates = np.array([kendall_tau(np.delete(near, k), np.delete(accuracy, k))
                           - kendall_tau(np.delete(best, k), np.delete(accuracy, k)) for k in range(n)])
    expected = math.sqrt((n - 1) / n * ((replicates - replicates.mean()) ** 2).sum())
    assert difference_error([near], [best], [accuracy], "kendall", "mean") == pytest.approx(expected)
    assert difference_error([near], [best], [accuracy], "kendall", "mean") < \
        0.3 * difference_error([other], [best], [accuracy], "kendall", "mean")
    two = difference_error([near, other], [best, best], [accuracy, accuracy], "spearman", "mean")
    assert two == pytest.approx(math.hypot(difference_error([near], [best], [accuracy], "spearman", "mean"),
                                           difference_error([other], [best], [accuracy], "spearman", "mean")) / 2)


def test_choice_is_the_simplest_member_within_one_paired_standard_error_of_the_best():
    rng = np.random.default_rng(1)
    accuracy = rng.normal(size=80)
    signal = accuracy + 0.8 * rng.normal(size=80)
    order = np.argsort(signal)
    i, j = next((a, b) for a, b in zip(order, order[1:]) if accuracy[a] < accuracy[b])   # a concordant neighbour pair
    swapped = signal.copy()
    swapped[[i, j]] = swapped[[j, i]]
    scores = {0: rng.normal(size=80),                                   # simple and useless
              1: swapped,                                               # simple, one pair off the best
              2: signal, 3: None}                                       # the best; undefined on validation
    front = [entry(i, c, 0.1 * i, None) for i, c in zip(range(4), (2, 5, 20, 40))]

    def by_index(member):
        return None if scores[member["index"]] is None else [scores[member["index"]]]

    chosen, figures = choose(front, by_index, [accuracy], "kendall", "mean")
    assert chosen["index"] == 1 and 0 < figures["gap"] < figures["gap_standard_error"]
    assert choose(front, by_index, [accuracy], "kendall", "mean", within=0)[0]["index"] == 2   # no parsimony
    assert figures["best_validation"] == pytest.approx(float(kendall_tau(signal, accuracy)))
    assert figures["chosen_validation"] == pytest.approx(float(kendall_tau(swapped, accuracy)))
    scores[1] = rng.normal(size=80) + 0.3 * accuracy                    # now clearly worse: the best wins
    chosen, figures = choose(front, by_index, [accuracy], "kendall", "mean")
    assert chosen["index"] == 2 and figures["gap"] == 0 and figures["metric"] == "kendall"
    assert choose([entry(3, 3, 0.4, None)], by_index, [accuracy], "kendall", "mean") is None


def test_tau_b_flatters_a_coarse_formula_and_the_default_choice_metric_does_not():
    # a coarse formula (three values, like num_nodes) against a fine one, over 20 draws: Kendall's tau-b
    # finds the coarse one within a paired standard error most of the time, Spearman rarely
    from search.config import SearchConfig

    close = {"kendall": 0, "spearman": 0}
    for seed in range(20):
        rng = np.random.default_rng(seed)
        accuracy = rng.normal(size=100)
        scores = {1: accuracy + 0.4 * rng.normal(size=100),
                  0: np.digitize(accuracy + 0.4 * rng.normal(size=100), [-0.4, 0.4]).astype(float)}
        front = [entry(0, 1, 0.5, None), entry(1, 9, 0.7, None)]
        for metric in close:
            chosen, _ = choose(front, lambda member: [scores[member["index"]]], [accuracy], metric, "mean")
            close[metric] += chosen["index"] == 0
    assert SearchConfig().choice_metric == "spearman"
    assert close["kendall"] >= 10 and close["spearman"] <= 4, close
