"""Score a proxy directly on the networks of a benchmark file (no statistics cache) under a grid of
weight initialisations and minibatches, and compare its ranking with the file's ground truth and with
the file's reference proxies on the same archs (single numbers, as the file has one score per arch)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from autoproxy.rank_metrics import ranking_figures
from autoproxy.stability import Grid, Setup, Stability, figure_lines, json_ready, measure_stability, undefined_line


@dataclass
class Evaluation:
    proxy: str
    space: str
    task: str
    num_classes: int
    stability: Stability
    references: dict[str, dict[str, float]]      # name -> ranking_figures of the file's scores
    reference_scores: list[dict[str, float]]     # per arch: the file's scores


def evaluate_proxy(proxy_name: str, benchmark: str | Path, space: str, task: str, *, data: str | Path | None = None,
                   limit: int | None = None, num_classes: int | None = None, batch_size: int = 64, seed: int = 0,
                   grid: Grid = Grid(), progress: Callable[[int, int], None] | None = None) -> Evaluation:
    """The proxy's figures over the ``grid`` of draws on the archs of ``benchmark`` (``seed`` shuffles the
    file before ``limit``), next to the file's reference proxies scored by the same rule."""
    from autoproxy.benchmark import load_benchmark
    from autoproxy.cache.build import num_classes_for, select_records
    from autoproxy.registry import get_proxy

    proxy = get_proxy(proxy_name)
    records = select_records(load_benchmark(benchmark, space=space, task=task), seed, limit)
    classes = num_classes_for(task, num_classes)
    setup = Setup(space, classes, None if data is None else str(data), batch_size=batch_size)
    stability = measure_stability(proxy, setup, [r.key for r in records], [r.accuracy for r in records], grid,
                                  progress=progress)
    names = sorted({name for record in records for name in record.scores})
    references = {name: ranking_figures(np.array([r.scores.get(name, np.nan) for r in records]), stability.accuracy,
                                        stability.params, stability.flops) for name in names}
    return Evaluation(proxy.name, space, task, classes, stability, references, [dict(r.scores) for r in records])


def format_evaluation(evaluation: Evaluation) -> str:
    """One line per figure (mean ± std over the draws), then the reference proxies' single figures."""
    e = evaluation
    report = e.stability.to_json()
    inits, batches = e.stability.grid.init_seeds, e.stability.grid.batch_seeds
    lines = [f"{e.proxy} on {e.space}/{e.task} ({e.num_classes} classes): {len(e.stability.keys)} archs, "
             f"draws: {len(inits) * len(batches)} (init seeds {_span(inits)} × batch seeds {_span(batches)})",
             f"  {undefined_line(report)}",
             f"  {'figure':<14}mean ± std over draws   [min, max]",
             *(f"  {line}" for line in figure_lines(report)),
             "  reference proxies from the benchmark file, same archs (one score per arch):"]
    for name, figures in e.references.items():
        mark = "  <-" if name == e.proxy else ""
        lines.append(f"    {name:<10} ρ {figures['spearman']:+.4f}  τ {figures['kendall']:+.4f}  "
                     f"partial ρ {figures['partial_spearman']:+.4f}  ({figures['undefined']} of "
                     f"{len(e.stability.keys)} undefined){mark}")
    return "\n".join(lines)


def _span(seeds: list[int]) -> str:
    return f"{seeds[0]}" if len(seeds) == 1 else f"{seeds[0]}–{seeds[-1]}"


def evaluation_json(evaluation: Evaluation) -> dict[str, Any]:
    """The summary, the per-draw figures, the references and every arch's scores (``[init][batch]``),
    JSON-ready (non-finite numbers become null)."""
    e, s = evaluation, evaluation.stability
    return json_ready({
        "proxy": e.proxy, "space": e.space, "task": e.task, "num_classes": e.num_classes,
        "stability": s.to_json(),
        "references": e.references,
        "archs": [{"key": key, "accuracy": float(accuracy), "params": float(params), "flops": float(flops),
                   "scores": scores.tolist(), "reference": reference}
                  for key, accuracy, params, flops, scores, reference
                  in zip(s.keys, s.accuracy, s.params, s.flops, s.scores, e.reference_scores)],
    })
