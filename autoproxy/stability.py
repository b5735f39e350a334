"""A proxy's figures as mean ± std over weight initialisations and minibatches.

A zero-cost proxy sees one randomly initialised network and one minibatch, so one figure can be luck:
a cache rebuilt with another seed once moved a discovered formula from ρ 0.933 to −0.085 on the same
archs. The field's protocol scores every arch under a grid of draws (by default init seeds 0..4 ×
batch seeds 0..2), computes the ranking figures per draw (``autoproxy.rank_metrics.ranking_figures``:
ρ, τ, partial ρ given params and FLOPs, Precision@K, BestRanking@K, top-1 regret, undefined archs) and
reports their mean and (population) standard deviation across draws.

A draw builds each arch after ``torch.manual_seed(init_seed)`` and scores it on
``autoproxy.data.load_minibatch(data, batch_size, batch_seed)``, exactly as a cache build with
``--seed`` does, so the draw (s, s) reproduces a cache built with seed s. The scorer is any function
``score(model, inputs, targets) -> float`` (the proxy signature); it must leave the model as it found
it (the project's proxies work on a copy), since one model serves every batch of its init seed.

Generic on purpose (no ``search`` or ``primitives`` import): ``autoproxy evaluate`` passes a registry
proxy, the search's final report an expression scorer and its executor's ``map`` to spread archs
over its workers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn

from autoproxy.errors import DataError
from autoproxy.rank_metrics import ranking_figures
from autoproxy.torch_threads import one_torch_thread

if TYPE_CHECKING:
    from autoproxy.cache.manifest import Manifest

Scorer = Callable[[nn.Module, torch.Tensor, torch.Tensor], float]
Mapper = Callable[[Callable[[Any], Any], Sequence[Any]], Iterable[Any]]   # like the builtin ``map``, in order


@dataclass(frozen=True)
class Grid:
    """Which draws: init seeds ``0..inits-1`` × batch seeds ``0..batches-1``."""

    inits: int = 5
    batches: int = 3

    @property
    def init_seeds(self) -> list[int]:
        return list(range(self.inits))

    @property
    def batch_seeds(self) -> list[int]:
        return list(range(self.batches))


@dataclass(frozen=True)
class Setup:
    """Everything but the seeds that decides a proxy's score of an arch: the networks and the batch."""

    space: str
    num_classes: int
    data: str | None                 # an images .npz, a named dataset ("digits"), or None for noise
    noise: bool = False
    batch_size: int = 64
    width: int | None = None
    depth: int | None = None

    @classmethod
    def of_cache(cls, manifest: "Manifest") -> "Setup":
        """The networks and batch a cache was built with: the draw (seed, seed) reproduces its entries."""
        settings = manifest.settings
        return cls(settings.space, settings.num_classes, manifest.data_path, noise=settings.noise,
                   batch_size=settings.batch_size, width=settings.width, depth=settings.depth)

    def minibatch(self, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch of ``seed``; labels beyond the networks' classes are a ``DataError``."""
        from autoproxy.data import load_minibatch

        inputs, targets, _ = load_minibatch(self.data, self.batch_size, seed, noise=self.noise,
                                            num_classes=self.num_classes)
        if int(targets.max()) >= self.num_classes:
            raise DataError(f"{self.data} has labels up to {int(targets.max())} but the networks have "
                            f"{self.num_classes} classes; pass --num-classes")
        return inputs, targets

    def network(self, key: str, init_seed: int, in_channels: int) -> nn.Module:
        """Arch ``key`` with the weights of ``init_seed``."""
        from autoproxy.spaces import get_space

        torch.manual_seed(init_seed)
        return get_space(self.space).build(key, num_classes=self.num_classes, in_channels=in_channels,
                                           width=self.width, depth=self.depth)


@dataclass(frozen=True)
class ArchJob:
    """One arch under every draw: what a worker needs (the batches travel with it, made once)."""

    key: str
    scorer: Scorer
    setup: Setup
    init_seeds: tuple[int, ...]
    batches: tuple[tuple[torch.Tensor, torch.Tensor], ...]


@dataclass(frozen=True)
class ArchScores:
    """An arch's scores, ``(inits, batches)``, and its size (the same under every draw)."""

    scores: np.ndarray
    params: float
    flops: float


def score_arch(job: ArchJob) -> ArchScores:
    """Build the arch once per init seed and score it on every batch, with one torch thread (the same
    figures serially and on workers); size from the params and flops proxies, so it is measured
    exactly as the reference files measure it."""
    from autoproxy.proxies.structure import flops, params

    in_channels = job.batches[0][0].shape[1]
    scores = np.empty((len(job.init_seeds), len(job.batches)))
    with one_torch_thread():
        for row, init_seed in enumerate(job.init_seeds):
            model = job.setup.network(job.key, init_seed, in_channels)
            for column, (inputs, targets) in enumerate(job.batches):
                scores[row, column] = float(job.scorer(model, inputs, targets))
        inputs, targets = job.batches[0]
        return ArchScores(scores, params(model, inputs, targets), flops(model, inputs, targets))


@dataclass
class Stability:
    """Per-arch scores under every draw and the ranking figures of each draw."""

    keys: list[str]
    accuracy: np.ndarray
    params: np.ndarray
    flops: np.ndarray
    grid: Grid
    scores: np.ndarray                  # (archs, inits, batches)

    def draws(self) -> list[dict[str, Any]]:
        """Per draw: the seeds and ``ranking_figures`` of its scores."""
        return [{"init_seed": init_seed, "batch_seed": batch_seed,
                 **ranking_figures(self.scores[:, row, column], self.accuracy, self.params, self.flops)}
                for row, init_seed in enumerate(self.grid.init_seeds)
                for column, batch_seed in enumerate(self.grid.batch_seeds)]

    def to_json(self) -> dict[str, Any]:
        """Summary (mean, std and range of each figure), undefined counts and per-draw figures; JSON-ready
        (non-finite numbers become null)."""
        draws = self.draws()
        figures = [name for name in draws[0] if name not in ("init_seed", "batch_seed", "undefined")]
        undefined = [draw["undefined"] for draw in draws]
        return json_ready({
            "archs": len(self.keys),
            "init_seeds": self.grid.init_seeds, "batch_seeds": self.grid.batch_seeds,
            "summary": {name: _spread([draw[name] for draw in draws]) for name in figures},
            "undefined": {"min": min(undefined), "max": max(undefined), "total": sum(undefined)},
            "draws": draws,
        })


def measure_stability(scorer: Scorer, setup: Setup, keys: Sequence[str], accuracy: Sequence[float],
                      grid: Grid = Grid(), *, mapper: Mapper = map,
                      progress: Callable[[int, int], None] | None = None) -> Stability:
    """Score every arch under every draw of ``grid`` (archs spread by ``mapper``)."""
    if grid.inits < 1 or grid.batches < 1:
        raise ValueError(f"a stability grid needs at least one init and one batch, got {grid}")
    batches = tuple(setup.minibatch(seed) for seed in grid.batch_seeds)
    jobs = [ArchJob(key, scorer, setup, tuple(grid.init_seeds), batches) for key in keys]
    results = []
    for result in mapper(score_arch, jobs):
        results.append(result)
        if progress is not None:
            progress(len(results), len(jobs))
    return Stability(list(keys), np.asarray(accuracy, dtype=np.float64),
                     np.array([r.params for r in results]), np.array([r.flops for r in results]), grid,
                     np.stack([r.scores for r in results]))


def _spread(values: list[float]) -> dict[str, float]:
    array = np.asarray(values, dtype=np.float64)
    return {"mean": float(array.mean()), "std": float(array.std()), "min": float(array.min()),
            "max": float(array.max())}


def json_ready(value: Any) -> Any:
    """Non-finite floats → None, recursively (result files are written with ``allow_nan=False``)."""
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, list):
        return [json_ready(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


FIGURE_LABELS = {"spearman": "spearman ρ", "kendall": "kendall τ", "partial_spearman": "partial ρ",
                 "top1_regret": "top-1 regret"}


def figure_label(name: str) -> str:
    """``precision_at_5`` → ``P@5``, ``best_ranking_at_5`` → ``BR@5``, others from FIGURE_LABELS."""
    for prefix, short in (("precision_at_", "P@"), ("best_ranking_at_", "BR@")):
        if name.startswith(prefix):
            return short + name[len(prefix):]
    return FIGURE_LABELS[name]


def _mean_std(spread: dict[str, float | None]) -> str:
    if spread["mean"] is None:
        return "undefined"
    return f"{spread['mean']: .4f} ± {spread['std']:.4f}"


def undefined_line(report: dict[str, Any]) -> str:
    """How many archs were undefined per draw (they rank last)."""
    undefined = report["undefined"]
    span = f"{undefined['min']}" if undefined["min"] == undefined["max"] else f"{undefined['min']}–{undefined['max']}"
    return f"undefined (ranked last): {span} of {report['archs']} archs per draw"


def figure_lines(report: dict[str, Any]) -> list[str]:
    """One table line per figure: mean ± std [min, max] over the draws (``Stability.to_json`` form)."""
    lines = []
    for name, spread in report["summary"].items():
        bounds = "" if spread["mean"] is None else f"   [{spread['min']: .4f}, {spread['max']: .4f}]"
        lines.append(f"{figure_label(name):<14}{_mean_std(spread)}{bounds}")
    return lines


def summary_line(report: dict[str, Any]) -> str:
    """ρ, τ, partial ρ and top-1 regret as mean ± std on one line, with the draws and undefined archs."""
    figures = "  ".join(f"{label} {_mean_std(report['summary'][name])}" for name, label in
                        (("spearman", "ρ"), ("kendall", "τ"), ("partial_spearman", "partial ρ"),
                         ("top1_regret", "top-1 regret")))
    inits, batches = len(report["init_seeds"]), len(report["batch_seeds"])
    return f"{figures}  over {inits * batches} draws ({inits} inits × {batches} batches); {undefined_line(report)}"
