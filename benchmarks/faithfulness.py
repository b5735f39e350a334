"""Do our reference proxies rank archs like NAS-Bench-Suite-Zero's scores (NB201 afresh; any space from a cache)?

For each task and batch kind: Spearman ρ with ``val_accuracy`` of each of our proxies, next to ρ of
the file's score for the same archs, and Δρ = ours − file. Scores come from one
``compute_statistics`` per arch through the reference expressions of :mod:`primitives.reference`
(equal to the direct implementations, see tests/test_primitives_reference.py); ``--direct`` runs the
registry's direct implementations instead.

A cache stores activations and their gradients sketched (``max_channels`` × ``max_positions``, 8 × 8
by default), so from a cache a proxy that reads them (fisher) is an estimate, marked as such;
``--exact-sketched`` recomputes those directly on each arch, built and fed as the cache built it.

    python benchmarks/faithfulness.py [--limit N] [--task cifar10|cifar100|both] [--batch real|noise|both]
    python benchmarks/faithfulness.py --cache caches/nb301-cifar10     # every arch of a built cache, in seconds
    python benchmarks/faithfulness.py --cache DIR --exact-sketched     # and fisher exactly (one pass per arch)
    python benchmarks/faithfulness.py --smoke [--cache DIR]             # 3 archs, batch 8, real batch (or DIR), for CI
"""
from __future__ import annotations

import math
import random

import click
import torch
from scipy.stats import spearmanr

from _smoke import FEW_ARCHS, SMOKE_HELP, TINY_NET
from autoproxy.benchmark import ArchRecord, load_benchmark
from autoproxy.data import load_minibatch
from autoproxy.proxies import reference_proxy
from autoproxy.settings import shared_path
from autoproxy.spaces import get_space
from autoproxy.stability import Setup
from autoproxy.statistics import compute_statistics
from primitives.reference import REFERENCE_EXPRESSIONS
from primitives.tree import parse
from search.expressions import SplitScorer, arch_value, reads_sketched_activations

EXPRESSIONS = {"params": "net_params", "flops": "net_flops", **REFERENCE_EXPRESSIONS}

TARGET_DELTA = 0.05
TARGETED = ("params", "flops", "synflow", "nwot", "snip", "grad_norm")


def spearman(scores: list[float], accuracies: list[float]) -> float:
    pairs = [(s, a) for s, a in zip(scores, accuracies) if math.isfinite(s) and s > -1e8]
    if len(pairs) < 3:
        return float("nan")
    return float(spearmanr(*zip(*pairs)).statistic)


def our_scores(record: ArchRecord, inputs: torch.Tensor, targets: torch.Tensor, num_classes: int, direct: bool, seed: int) -> dict[str, float]:
    torch.manual_seed(seed)
    model = get_space("nb201").build(record.key, num_classes=num_classes)
    if direct:
        return {name: reference_proxy(name)(model, inputs, targets) for name in EXPRESSIONS}
    statistics = compute_statistics(model, inputs, targets)
    return {name: arch_value(parse(text), statistics) for name, text in EXPRESSIONS.items()}


@click.command()
@click.option("--limit", default=None, type=int, help="archs per task (seeded sample); all if omitted")
@click.option("--task", type=click.Choice(["cifar10", "cifar100", "both"]), default="cifar10", show_default=True)
@click.option("--batch", "batch_kind", type=click.Choice(["real", "noise", "both"]), default="both", show_default=True)
@click.option("--batch-size", default=64, show_default=True)
@click.option("--direct", is_flag=True, help="run the direct proxy implementations (slower)")
@click.option("--seed", default=0, show_default=True)
@click.option("--cache", "cache_dir", default=None,
              help="score a built cache's archs (any space; its batch) against its ground-truth file instead")
@click.option("--benchmark", default=None, help="with --cache: the ground-truth file, if not where the cache recorded it")
@click.option("--exact-sketched", is_flag=True,
              help="with --cache: recompute the proxies that read sketched activations (fisher) directly")
@click.option("--smoke", is_flag=True, help=SMOKE_HELP)
def main(limit: int | None, task: str, batch_kind: str, batch_size: int, direct: bool, seed: int,
         cache_dir: str | None, benchmark: str | None, exact_sketched: bool, smoke: bool) -> None:
    if cache_dir:
        compare_on_cache(cache_dir, benchmark, exact_sketched)
        return
    if smoke:
        limit, batch_size, batch_kind = FEW_ARCHS, TINY_NET["batch_size"], "real"
    torch.set_num_threads(1)
    tasks = ["cifar10", "cifar100"] if task == "both" else [task]
    kinds = ["real", "noise"] if batch_kind == "both" else [batch_kind]
    for task_name in tasks:
        records = load_benchmark(shared_path("benchmarks", "zc_nasbench201.json"), task=task_name)
        if limit is not None and limit < len(records):
            records = random.Random(seed).sample(records, limit)
        images = shared_path("data", f"{task_name}_sample.npz")
        for kind in kinds:
            inputs, targets, num_classes = load_minibatch(images, batch_size, seed, noise=kind == "noise")
            num_classes = 100 if task_name == "cifar100" else num_classes  # 20 images may miss classes
            ours = [our_scores(r, inputs, targets, num_classes, direct, seed) for r in records]
            print(f"\n{task_name}, {kind} batch, {len(records)} archs")
            print_table({name: [scores[name] for scores in ours] for name in EXPRESSIONS}, records)


def print_table(ours: dict[str, list[float]], records: list[ArchRecord], sources: dict[str, str] | None = None) -> None:
    """ρ of our scores and of the file's scores with accuracy, per proxy, on the same archs; ρ between
    ours and the file's (how alike the two rank the archs); where each of ours came from, when not
    every one was computed alike."""
    accuracies = [record.accuracy for record in records]
    print(f"{'proxy':10s} {'rho_ours':>9s} {'rho_file':>9s} {'delta':>7s} {'rho(ours,file)':>15s}"
          + ("  ours from" if sources else ""))
    for name, scores in ours.items():
        file_scores = [r.scores.get(name, float("nan")) for r in records]
        mine, theirs = spearman(scores, accuracies), spearman(file_scores, accuracies)
        flag = " !" if name in TARGETED and not abs(mine - theirs) <= TARGET_DELTA else "  "
        source = f"  {sources[name]}" if sources else ""
        print(f"{name:10s} {mine:9.3f} {theirs:9.3f} {mine - theirs:+7.3f}{flag} {spearman(scores, file_scores):13.3f}"
              f"{source}", flush=True)


def sketched_proxies(settings) -> list[str]:
    """The proxies a cache can only estimate: their expressions read activations it stores sketched."""
    if not settings.sketched:
        return []
    return [name for name, text in EXPRESSIONS.items() if reads_sketched_activations(text)]


def compare_on_cache(directory: str, benchmark: str | None = None, exact_sketched: bool = False) -> None:
    """The reference expressions on every arch of a cache of any space (exact pack of its stored
    statistics), against the scores of the ground-truth file it was built from (or ``benchmark``);
    the proxies reading sketched activations recomputed directly with ``exact_sketched``."""
    from autoproxy.cache import open_cache

    cache = open_cache(directory)
    settings = cache.manifest.settings
    path = benchmark or cache.manifest.benchmark_path
    by_key = {r.key: r for r in load_benchmark(path, space=settings.space, task=settings.task)}
    records = [by_key[key] for key in cache.keys]
    sketch = f"{settings.max_channels}x{settings.max_positions}"
    print(f"{settings.task}, cache {directory} ({settings.space}, {'noise' if settings.noise else 'real'} batch, "
          f"{len(records)} archs, {settings.dtype}, sketch {sketch})")
    estimated = sketched_proxies(settings)
    direct = estimated if exact_sketched else []
    scores: dict[str, list[float]] = {name: [] for name in EXPRESSIONS}
    from_cache = [name for name in EXPRESSIONS if name not in direct]
    streamed = SplitScorer(cache.load, cache.keys, resident_bytes=0)   # one pass, a chunk at a time (NB301: 39 MB/arch)
    for name, values in zip(from_cache, streamed.values_of([parse(EXPRESSIONS[name]) for name in from_cache])):
        scores[name] = [math.nan] * len(records) if values is None else values.tolist()
    if direct:
        setup = Setup.of_cache(cache.manifest)
        inputs, targets = setup.minibatch(settings.seed)
        for key in cache.keys:
            model = setup.network(key, settings.seed, inputs.shape[1])
            for name in direct:
                scores[name].append(reference_proxy(name)(model, inputs, targets))
    sources = {name: "direct (exact)" if name in direct else f"cache, {sketch} sketch (estimate)" if name in estimated
               else "cache" for name in EXPRESSIONS}
    print_table(scores, records, sources if estimated else None)

if __name__ == "__main__":
    main()
