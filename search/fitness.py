"""Rank correlations, data splits and subset fitness.

Everything here is plain numpy so that the driver (not the Ray workers) can score candidates from
their per-arch score vectors: workers only run the evaluator, the driver owns every judgement. The
correlations themselves live in ``autoproxy.rank_metrics``, shared with ``autoproxy evaluate`` and the
stability report.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from autoproxy.rank_metrics import kendall_tau, spearman_rho

METRICS = ("kendall", "spearman")


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
