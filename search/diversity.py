"""Behavioural diversity (EMQ's diversity prompting): a candidate that ranks the archs almost exactly
like a better one already in the population adds nothing, so it is penalised.

Behaviour is the rank vector of a candidate's scores on a fixed probe of train archs (at most
``diversity_probe`` of them, chosen by seed); it is stored with each evaluation so that a cached
candidate never needs re-scoring.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.stats import rankdata


def probe_positions(n_train: int, size: int, seed: int) -> np.ndarray:
    """Which train positions (sorted) make up the behaviour probe of one task."""
    if n_train <= size:
        return np.arange(n_train)
    return np.sort(np.random.default_rng([seed, 0xD1BE]).choice(n_train, size=size, replace=False))


def behaviour(task_scores: Sequence[np.ndarray], probes: Sequence[np.ndarray]) -> list[float]:
    """The concatenated per-task rank vectors of a candidate's scores on the probes."""
    return [float(r) for scores, probe in zip(task_scores, probes) for r in rankdata(scores[probe])]


def near_duplicates(fitness: Sequence[float], behaviours: Sequence[Sequence[float] | None],
                    threshold: float) -> np.ndarray:
    """Mask of candidates whose behaviour has Spearman > ``threshold`` with a better, kept candidate.

    Candidates are visited best first (ties by position, so the result is deterministic); a
    candidate without behaviour (invalid) is never a duplicate and never shadows one.
    """
    count = len(fitness)
    duplicate = np.zeros(count, dtype=bool)
    valid = [i for i in range(count) if behaviours[i] is not None]
    if len(valid) < 2:
        return duplicate
    ranks = np.array([behaviours[i] for i in valid], dtype=np.float64)
    centred = ranks - ranks.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(centred, axis=1, keepdims=True)
    unit = np.divide(centred, norms, out=np.zeros_like(centred), where=norms > 0)
    similarity = unit @ unit.T
    order = sorted(range(len(valid)), key=lambda j: (-fitness[valid[j]], j))
    kept: list[int] = []
    for j in order:
        if kept and similarity[j, kept].max() > threshold:
            duplicate[valid[j]] = True
        else:
            kept.append(j)
    return duplicate
