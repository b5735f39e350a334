"""Top-K metrics of a proxy's ranking, as NAS-Bench-Suite-Zero-style reports give them next to the
rank correlations (which live in ``search/fitness.py``).

Both rank archs by the proxy (highest score first; NaN last; ties in input order) and by accuracy
(highest first):

* Precision@K: the fraction of the proxy's top K that are among the K most accurate archs;
* BestRanking@K: the true rank (1 = the most accurate arch) of the best arch among the proxy's top K.
"""
from __future__ import annotations

import numpy as np

TOP_K = (5, 25, 100)


def _order(values: np.ndarray) -> np.ndarray:
    """Positions from highest to lowest value, NaN last, ties in input order."""
    values = np.asarray(values, dtype=np.float64)
    return np.argsort(-np.nan_to_num(values, nan=-np.inf), kind="stable")


def _check(scores: np.ndarray, accuracy: np.ndarray, k: int) -> None:
    if len(scores) != len(accuracy):
        raise ValueError(f"{len(scores)} scores but {len(accuracy)} accuracies")
    if not 1 <= k <= len(scores):
        raise ValueError(f"K = {k} needs between 1 and {len(scores)} archs")


def precision_at_k(scores: np.ndarray, accuracy: np.ndarray, k: int) -> float:
    """|proxy top-K ∩ accuracy top-K| / K."""
    _check(scores, accuracy, k)
    return len(set(_order(scores)[:k]) & set(_order(accuracy)[:k])) / k


def best_ranking_at_k(scores: np.ndarray, accuracy: np.ndarray, k: int) -> int:
    """The best true rank (1-based) among the proxy's top-K archs."""
    _check(scores, accuracy, k)
    true_rank = np.empty(len(accuracy), dtype=np.int64)
    true_rank[_order(accuracy)] = np.arange(1, len(accuracy) + 1)
    return int(true_rank[_order(scores)[:k]].min())


def applicable_k(count: int, ks: tuple[int, ...] = TOP_K) -> tuple[int, ...]:
    """The K values that say something for ``count`` archs (K below the number of archs)."""
    return tuple(k for k in ks if k < count)
