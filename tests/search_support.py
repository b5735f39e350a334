"""A tiny real statistics cache for the search tests: 8 NB201 nets at width 4, batch 8, noise inputs,
fake accuracies. Built once into pytest's cache folder and reused (the cache builder resumes)."""
from __future__ import annotations

import csv
import random
from pathlib import Path

ARCHS = 8


def tiny_cache(request) -> str:
    """Path of the tiny cache (in pytest's cache folder, or a temporary one without the cache plugin)."""
    from autoproxy.cache import build_cache
    from autoproxy.spaces import get_space
    from autoproxy.statistics import STATISTICS_VERSION

    store = getattr(request.config, "cache", None)
    name = f"autoproxy-search-stats-v{STATISTICS_VERSION}"  # a statistics change gets a fresh cache
    directory = Path(store.mkdir(name) if store is not None else request.getfixturevalue("tmp_path_factory").mktemp(name))
    rng, space, keys = random.Random(0), get_space("nb201"), []
    while len(keys) < ARCHS:
        key = space.sample(rng)
        if key not in keys:
            keys.append(key)
    benchmark = directory / "benchmark.csv"
    with open(benchmark, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["arch", "accuracy", "space", "task"])
        writer.writerows([key, round(70 + 20 * rng.random(), 3), "nb201", "cifar10"] for key in keys)
    build_cache(directory / "nb201-tiny", benchmark, space="nb201", task="cifar10", noise=True, batch_size=8,
                width=4, depth=1, sub_batches=2, executor="serial", progress=False, echo=lambda line: None)
    return str(directory / "nb201-tiny")
