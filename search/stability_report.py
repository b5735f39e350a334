"""The final report's stability figures: the chosen formula scored afresh on every test arch of each
task under init seeds × batch seeds (``autoproxy.stability``), so that its test figure is not one
weight initialisation's and one minibatch's luck.

Networks and batches are made as the task's cache was built (its manifest's settings), so the draw
(seed, seed) of a cache built with ``seed`` reproduces the statistics the search saw. Archs are spread
over the run's executor.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from autoproxy.cache.manifest import Manifest
from autoproxy.stability import Grid, Setup, measure_stability
from search import expressions
from search.config import SearchConfig
from search.executor import Executor
from search.tasks import Task


@dataclass(frozen=True)
class ExpressionScorer:
    """A formula as a proxy of a fresh network: the statistics it reads, computed as its cache computed
    them, then the evaluator. Travels to workers as text (trees do not pickle across processes)."""

    expression: str
    sub_batches: int
    max_channels: int | None
    max_positions: int | None
    sketch_seed: int

    def __call__(self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> float:
        from autoproxy.statistics import compute_statistics

        tree = expressions.parse(self.expression)
        statistics = compute_statistics(model, inputs, targets, sub_batches=self.sub_batches,
                                        max_channels=self.max_channels, max_positions=self.max_positions,
                                        seed=self.sketch_seed, needs=expressions.statistics_read(tree))
        return expressions.arch_value(tree, statistics)


def stability_report(expression: str, tasks: Sequence[Task], config: SearchConfig,
                     executor: Executor) -> dict[str, Any] | None:
    """Per task: ``Stability.to_json()`` of the formula on the test split, or why it was skipped; None
    when the config disables the report (``stability_inits`` or ``stability_batches`` 0). No wall-clock
    field, so that equal runs write equal results."""
    if not config.stability_inits or not config.stability_batches:
        return None
    grid = Grid(config.stability_inits, config.stability_batches)
    return {task.name: _task_stability(expression, task, grid, executor) for task in tasks}


def _task_stability(expression: str, task: Task, grid: Grid, executor: Executor) -> dict[str, Any]:
    manifest: Manifest = task.cache.manifest
    keys = [task.keys[i] for i in task.splits.test]
    missing = _missing_data(manifest)
    if missing or len(keys) < 2:
        return {"skipped": missing or f"{len(keys)} test archs; the stability report needs 2"}
    settings = manifest.settings
    setup = Setup.of_cache(manifest)
    scorer = ExpressionScorer(expression, settings.sub_batches, settings.max_channels, settings.max_positions,
                              settings.seed)
    report = measure_stability(scorer, setup, keys, task.accuracy_of("test"), grid, mapper=executor.map).to_json()
    return {"split": "test", **report}


def _missing_data(manifest: Manifest) -> str | None:
    """Why the cache's minibatch source cannot be read again (an images file moved away), else None."""
    from autoproxy.datasets import NAMED_DATASETS

    path = manifest.data_path
    if path is None or path in NAMED_DATASETS or Path(path).is_file():
        return None
    return f"the cache's images file {path} is not there any more"
