"""Rank correlations, data splits and subset fitness.

Everything here is plain numpy so that the driver (not the Ray workers) can score candidates from
their per-arch score vectors: workers only run the evaluator, the driver owns every judgement.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

METRICS = ("kendall", "spearman")


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


def correlation(metric: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The named rank correlation ("kendall" or "spearman") along the last axis."""
    if metric == "kendall":
        return kendall_tau(x, y)
    if metric == "spearman":
        return spearman_rho(x, y)
    raise ValueError(f"unknown metric {metric!r}; expected one of {METRICS}")


@dataclass(frozen=True)
class Splits:
    """Positions (into a cache's key list) of the train, validation and test archs."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray


def split_archs(count: int, fractions: tuple[float, float, float], seed: int, task: int = 0) -> Splits:
    """A seeded random train/validation/test partition of ``count`` archs.

    Each task (cache) of a multi-task run gets its own stream, seeded by ``(seed, task)``, so adding a
    cache never reshuffles the splits of the others. Positions within a split are sorted.
    """
    order = np.random.default_rng([seed, task]).permutation(count)
    n_train = int(round(fractions[0] * count))
    n_val = int(round(fractions[1] * count))
    return Splits(
        train=np.sort(order[:n_train]),
        validation=np.sort(order[n_train:n_train + n_val]),
        test=np.sort(order[n_train + n_val:]),
    )


def draw_subsets(n_train: int, count: int, size: int, seed: int, task: int, generation: int) -> np.ndarray:
    """``count`` subsets of ``size`` train positions (without replacement within a subset), (K, M).

    Seeded by ``(seed, task, generation)`` rather than by a running RNG, so that a resumed run draws
    exactly the subsets an uninterrupted one would. Pass ``generation=0`` for per-run subsets.
    """
    rng = np.random.default_rng([seed, task, generation, 0x5EB5E7])
    size = min(size, n_train)
    return np.stack([rng.choice(n_train, size=size, replace=False) for _ in range(count)])


def subset_fitness(scores: np.ndarray, accuracy: np.ndarray, subsets: np.ndarray, metric: str) -> float:
    """Mean rank correlation over the subsets (EZNAS). A subset where the scores tie throughout
    carries no ranking information and counts as 0."""
    values = correlation(metric, scores[subsets], accuracy[subsets])
    return float(np.nan_to_num(values, nan=0.0).mean())


def aggregate(values: list[float], how: str) -> float:
    """Combine per-task fitness values: "mean" or "min" (the worst task)."""
    if how == "mean":
        return float(np.mean(values))
    if how == "min":
        return float(np.min(values))
    raise ValueError(f"unknown task aggregate {how!r}; expected 'mean' or 'min'")
