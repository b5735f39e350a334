"""How a proxy's ranking of archs is scored against their accuracy: one rule for archs where the proxy
is undefined, the rank correlations, and the top-K, regret and size-controlled figures that
NAS-Bench-Suite-Zero-style reports give next to them.

Plain numpy and scipy, imported by the search (fitness, validation, final report), by ``autoproxy
evaluate`` and by the stability report, so that every figure of the project means the same thing.

The rule for undefined scores (:func:`undefined_last`): an arch where the proxy is not finite ranks
last (worst), as a failed proxy does in NAS-Bench-Suite-Zero; it is never dropped, since dropping the
archs a proxy fails on would flatter it. Reports print how many archs were undefined.

Top-K metrics rank archs by the proxy (highest score first; ties in input order) and by accuracy
(highest first):

* Precision@K: the fraction of the proxy's top K that are among the K most accurate archs;
* BestRanking@K: the true rank (1 = the most accurate arch) of the best arch among the proxy's top K;
* top-1 regret: accuracy of the best arch minus accuracy of the arch the proxy ranks first.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.stats import rankdata

TOP_K = (5, 25, 100)
_RESIDUAL_TOLERANCE = 1e-9  # residual norm / centred norm below which nothing is left after partialling out


def undefined_last(scores: np.ndarray) -> np.ndarray:
    """A copy of ``scores`` whose non-finite entries sit below every finite score, so they rank last."""
    values = np.array(scores, dtype=np.float64)
    finite = np.isfinite(values)
    lowest = values[finite].min() if finite.any() else 0.0
    values[~finite] = lowest - max(1.0, abs(lowest))
    return values


def count_undefined(scores: np.ndarray) -> int:
    """How many archs the proxy is undefined (non-finite) on."""
    return int((~np.isfinite(np.asarray(scores, dtype=np.float64))).sum())


def _pairwise_signs(values: np.ndarray) -> np.ndarray:
    """sign(v_i - v_j) for every pair, batched over leading axes: (..., M) -> (..., M, M)."""
    return np.sign(values[..., :, None] - values[..., None, :])


def kendall_tau(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall's tau-b along the last axis (ties handled as scipy does); nan where x or y is constant.

    O(M²) memory per row, meant for subsets and splits of at most a few thousand archs.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    sx, sy = _pairwise_signs(x), _pairwise_signs(y)
    pairs_x = (sx != 0).sum(axis=(-2, -1)) / 2.0
    pairs_y = (sy != 0).sum(axis=(-2, -1)) / 2.0
    concordance = (sx * sy).sum(axis=(-2, -1)) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        return concordance / np.sqrt(pairs_x * pairs_y)


def leave_one_out(metric: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The rank correlation ("kendall" or "spearman") of ``x`` and ``y`` (1-D, length n) with each arch
    left out in turn, (n,): the jackknife's replicates. Kendall in O(n²) from the pair counts."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if metric == "kendall":
        sx, sy = _pairwise_signs(x), _pairwise_signs(y)
        concordance = (sx * sy).sum() / 2.0 - (sx * sy).sum(axis=1)
        pairs_x = (sx != 0).sum() / 2.0 - (sx != 0).sum(axis=1)
        pairs_y = (sy != 0).sum() / 2.0 - (sy != 0).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return concordance / np.sqrt(pairs_x * pairs_y)
    if metric == "spearman":
        n = len(x)
        kept = np.array([np.delete(np.arange(n), k) for k in range(n)])
        return spearman_rho(x[kept], y[kept])
    raise ValueError(f"unknown metric {metric!r}; expected 'kendall' or 'spearman'")


def spearman_rho(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's rho along the last axis (average ranks for ties); nan where x or y is constant."""
    return pearson(rankdata(x, axis=-1), rankdata(y, axis=-1))


def pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson correlation along the last axis; nan where x or y is constant."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    xc = x - x.mean(axis=-1, keepdims=True)
    yc = y - y.mean(axis=-1, keepdims=True)
    denominator = np.sqrt((xc * xc).sum(axis=-1) * (yc * yc).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        result = (xc * yc).sum(axis=-1) / denominator
    return np.where(denominator > 0, result, np.nan)


def partial_spearman(scores: np.ndarray, accuracy: np.ndarray, controls: Sequence[np.ndarray]) -> float:
    """Spearman's rho of scores and accuracy with the ``controls`` (params, FLOPs) partialled out: what a
    proxy knows about accuracy beyond network size. Ranks of scores and accuracy are each regressed on
    [1, ranks of every control]; the result is the Pearson correlation of the residuals, and 0 when
    either is a function of the controls alone (nothing is left to correlate). Scores must be finite
    (see :func:`undefined_last`)."""
    design = np.column_stack([np.ones(len(accuracy))] + [rankdata(control) for control in controls])
    score_residual = _residual(rankdata(scores), design)
    accuracy_residual = _residual(rankdata(accuracy), design)
    if score_residual is None or accuracy_residual is None:
        return 0.0
    return float(pearson(score_residual, accuracy_residual))


def _residual(ranks: np.ndarray, design: np.ndarray) -> np.ndarray | None:
    """Least-squares residual of ``ranks`` on ``design``; None when it is numerically zero."""
    residual = ranks - design @ np.linalg.lstsq(design, ranks, rcond=None)[0]
    centred = np.linalg.norm(ranks - ranks.mean())
    return None if np.linalg.norm(residual) <= _RESIDUAL_TOLERANCE * max(centred, 1.0) else residual


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


def top1_regret(scores: np.ndarray, accuracy: np.ndarray) -> float:
    """Accuracy lost by picking the proxy's favourite: best accuracy minus that of the top-ranked arch."""
    _check(scores, accuracy, 1)
    accuracy = np.asarray(accuracy, dtype=np.float64)
    return float(accuracy.max() - accuracy[_order(scores)[0]])


def applicable_k(count: int, ks: tuple[int, ...] = TOP_K) -> tuple[int, ...]:
    """The K values that say something for ``count`` archs (K below the number of archs)."""
    return tuple(k for k in ks if k < count)


def ranking_figures(scores: np.ndarray, accuracy: np.ndarray, params: np.ndarray,
                    flops: np.ndarray) -> dict[str, float]:
    """Every figure of one ranking, archs where the proxy is undefined ranked last: ``spearman``,
    ``kendall``, ``partial_spearman`` (params and FLOPs partialled out), ``top1_regret``,
    ``precision_at_K`` and ``best_ranking_at_K`` for each applicable K, and the ``undefined`` count."""
    ranked = undefined_last(scores)
    accuracy = np.asarray(accuracy, dtype=np.float64)
    figures = {
        "spearman": float(spearman_rho(ranked, accuracy)),
        "kendall": float(kendall_tau(ranked, accuracy)),
        "partial_spearman": partial_spearman(ranked, accuracy, [params, flops]),
        "top1_regret": top1_regret(ranked, accuracy),
    }
    ks = applicable_k(len(ranked))
    figures.update({f"precision_at_{k}": precision_at_k(ranked, accuracy, k) for k in ks})
    figures.update({f"best_ranking_at_{k}": best_ranking_at_k(ranked, accuracy, k) for k in ks})
    figures["undefined"] = count_undefined(scores)
    return figures
