"""Score a proxy directly on the networks of a benchmark file (no statistics cache) and compare its
ranking with the file's ground truth and with the file's reference proxies on the same archs."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from autoproxy.rank_metrics import applicable_k, best_ranking_at_k, precision_at_k


@dataclass
class ArchScore:
    key: str
    accuracy: float
    score: float
    reference: dict[str, float]


@dataclass
class Evaluation:
    proxy: str
    space: str
    task: str
    num_classes: int
    archs: list[ArchScore]
    spearman: float
    kendall: float
    precision: dict[int, float]
    best_ranking: dict[int, int]
    references: dict[str, tuple[float, float, int]] = field(default_factory=dict)  # name -> (ρ, τ, archs)

    @property
    def finite(self) -> int:
        return sum(math.isfinite(a.score) for a in self.archs)


def _correlations(scores: np.ndarray, accuracy: np.ndarray) -> tuple[float, float, np.ndarray]:
    from search.fitness import kendall_tau, spearman_rho

    keep = np.isfinite(scores)
    if keep.sum() < 2:
        return math.nan, math.nan, keep
    return float(spearman_rho(scores[keep], accuracy[keep])), float(kendall_tau(scores[keep], accuracy[keep])), keep


def evaluate_proxy(proxy_name: str, benchmark: str | Path, space: str, task: str, *, data: str | Path | None = None,
                   limit: int | None = None, num_classes: int | None = None, batch_size: int = 64, seed: int = 0,
                   progress: Callable[[int, int], None] | None = None) -> Evaluation:
    """Build each arch (seeded), compute the proxy on one minibatch, rank against the file."""
    import torch

    from autoproxy.benchmark import load_benchmark
    from autoproxy.cache.build import num_classes_for, select_records
    from autoproxy.data import DataError, load_minibatch
    from autoproxy.registry import get_proxy
    from autoproxy.spaces import get_space

    proxy = get_proxy(proxy_name)
    records = select_records(load_benchmark(benchmark, space=space, task=task), seed, limit)
    classes = num_classes_for(task, num_classes)
    inputs, targets, _ = load_minibatch(data, batch_size, seed, num_classes=classes)
    if int(targets.max()) >= classes:
        raise DataError(f"{data} has labels up to {int(targets.max())} but task {task!r} has {classes} classes; "
                        "pass --num-classes")
    builder = get_space(space)
    archs = []
    for done, record in enumerate(records, start=1):
        torch.manual_seed(seed)
        model = builder.build(record.key, num_classes=classes, in_channels=inputs.shape[1])
        archs.append(ArchScore(record.key, record.accuracy, float(proxy(model, inputs, targets)), dict(record.scores)))
        if progress is not None:
            progress(done, len(records))
    scores = np.array([a.score for a in archs])
    accuracy = np.array([a.accuracy for a in archs])
    rho, tau, keep = _correlations(scores, accuracy)
    ks = applicable_k(len(archs))
    references = {}
    for name in sorted({n for a in archs for n in a.reference}):
        values = np.array([a.reference.get(name, math.nan) for a in archs])
        ref_rho, ref_tau, ref_keep = _correlations(values, accuracy)
        references[name] = (ref_rho, ref_tau, int(ref_keep.sum()))
    return Evaluation(proxy.name, space, task, classes, archs, rho, tau,
                      {k: precision_at_k(scores, accuracy, k) for k in ks},
                      {k: best_ranking_at_k(scores, accuracy, k) for k in ks}, references)


def format_evaluation(evaluation: Evaluation) -> str:
    e = evaluation
    lines = [f"{e.proxy} on {e.space}/{e.task} ({e.num_classes} classes): {len(e.archs)} archs, "
             f"{e.finite} finite scores",
             f"  spearman ρ {e.spearman:+.4f}   kendall τ {e.kendall:+.4f}   " +
             "  ".join(f"P@{k} {p:.2f} BR@{k} {e.best_ranking[k]}" for k, p in e.precision.items()),
             "  reference proxies from the benchmark file, same archs:"]
    for name, (rho, tau, count) in e.references.items():
        mark = "  <-" if name == e.proxy else ""
        lines.append(f"    {name:<10} ρ {rho:+.4f}  τ {tau:+.4f}  ({count} archs){mark}")
    return "\n".join(lines)


def evaluation_json(evaluation: Evaluation) -> dict:
    """Per-arch scores and the summary, JSON-ready (non-finite numbers become null)."""
    def clean(x: float) -> float | None:
        return x if math.isfinite(x) else None

    e = evaluation
    return {
        "proxy": e.proxy, "space": e.space, "task": e.task, "num_classes": e.num_classes,
        "spearman": clean(e.spearman), "kendall": clean(e.kendall),
        "precision_at_k": {str(k): v for k, v in e.precision.items()},
        "best_ranking_at_k": {str(k): v for k, v in e.best_ranking.items()},
        "references": {n: {"spearman": clean(r), "kendall": clean(t), "archs": c} for n, (r, t, c) in e.references.items()},
        "archs": [{"key": a.key, "accuracy": a.accuracy, "score": clean(a.score),
                   "reference": {n: clean(v) for n, v in a.reference.items()}} for a in e.archs],
    }
