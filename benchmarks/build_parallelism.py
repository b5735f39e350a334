"""How to spend the cores on a cache build: torch intra-op threads per arch, or one Ray worker per core?

On the same archs, batch and settings as ``autoproxy cache build`` (the space's default net, batch 64,
the cache's sketch), this times:

* ``serial_1_thread``: one arch after the other, one intra-op thread (what each Ray worker does);
* ``serial_N_threads``: one arch after the other with N intra-op threads (N = --workers);
* ``ray_N_workers``: ``build_cache(executor="ray", workers=N)`` into a scratch folder, wall clock.

and prints wall seconds per arch and the ratios to ``serial_1_thread`` (issue target for the Ray
build: ≤ 0.6). Ray's per-task overhead is printed too, to judge whether grouping several archs per
task could pay: it is a few milliseconds against seconds of statistics per arch.

    python benchmarks/build_parallelism.py --space nb201 --archs 12 --workers 2
    python benchmarks/build_parallelism.py --space nb101 --archs 6 --workers 2
    python benchmarks/build_parallelism.py --smoke
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from _smoke import SMOKE_HELP, TINY_NET
from autoproxy.cache import build_cache
from autoproxy.cache.build import compute_entry, _compute_entry, select_records
from autoproxy.cache.manifest import CacheSettings
from autoproxy.benchmark import load_benchmark
from autoproxy.data import load_minibatch
from autoproxy.settings import shared_path
from autoproxy.statistics import DEFAULT_SUB_BATCHES, STATISTICS_VERSION

BENCHMARKS = {"nb201": "zc_nasbench201.json", "nb101": "zc_nasbench101.json", "nb301": "zc_nasbench301.json"}


def serial_seconds(keys: list[str], settings: CacheSettings, inputs, targets, threads: int, folder: Path) -> float:
    """Wall seconds per arch of the serial path with ``threads`` intra-op threads."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        began = time.perf_counter()
        for key in keys:
            result = (compute_entry if threads == 1 else _compute_entry)(key, settings, inputs, targets, str(folder))
            assert result.error is None, result.error
        return (time.perf_counter() - began) / len(keys)
    finally:
        torch.set_num_threads(previous)


def ray_task_overhead(workers: int) -> float:
    """Seconds of one empty Ray task round trip (median of 50), on the session the build leaves."""
    import ray

    ray.init(address="local", include_dashboard=False, num_cpus=workers, log_to_driver=False, logging_level="ERROR")
    try:
        noop = ray.remote(num_cpus=1)(lambda: None)
        ray.get(noop.remote())
        times = []
        for _ in range(50):
            began = time.perf_counter()
            ray.get(noop.remote())
            times.append(time.perf_counter() - began)
        return sorted(times)[len(times) // 2]
    finally:
        ray.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="nb201", choices=sorted(BENCHMARKS))
    parser.add_argument("--archs", type=int, default=12)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args()
    net = TINY_NET if args.smoke else {"batch_size": 64, "width": None, "depth": None,
                                       "sub_batches": DEFAULT_SUB_BATCHES}
    archs = 2 if args.smoke else args.archs
    benchmark = shared_path("benchmarks", BENCHMARKS[args.space])
    records = select_records(load_benchmark(benchmark, space=args.space, task="cifar10"), args.seed, archs)
    keys = [record.key for record in records]
    inputs, targets, _ = load_minibatch(shared_path("data", "cifar10_sample.npz"), net["batch_size"], args.seed,
                                        num_classes=10)
    settings = CacheSettings(space=args.space, task="cifar10", num_classes=10, benchmark_sha256="", data_sha256=None,
                             noise=False, batch_size=net["batch_size"], seed=args.seed, width=net["width"],
                             depth=net["depth"], sub_batches=net["sub_batches"], max_channels=8, max_positions=8,
                             dtype="float16", statistics_version=STATISTICS_VERSION)
    with tempfile.TemporaryDirectory(prefix="build-parallelism-") as folder:
        one = serial_seconds(keys, settings, inputs, targets, 1, Path(folder))
        many = serial_seconds(keys, settings, inputs, targets, args.workers, Path(folder))
        if args.smoke:
            ray_wall, overhead = float("nan"), float("nan")
        else:
            began = time.perf_counter()
            summary = build_cache(Path(folder) / "ray", benchmark, space=args.space, task="cifar10",
                                  data=shared_path("data", "cifar10_sample.npz"), limit=archs, seed=args.seed,
                                  executor="ray", workers=args.workers, progress=False, echo=lambda line: None,
                                  **{k: v for k, v in net.items() if v is not None})
            ray_wall = (time.perf_counter() - began) / max(summary.built, 1)
            overhead = ray_task_overhead(args.workers)
    print(f"{args.space}: {archs} archs, batch {net['batch_size']}, {args.workers} cores")
    print(f"serial_1_thread_s_per_arch={one:.2f}")
    print(f"serial_{args.workers}_threads_s_per_arch={many:.2f} ratio={many / one:.2f}")
    print(f"ray_{args.workers}_workers_s_per_arch={ray_wall:.2f} ratio={ray_wall / one:.2f} "
          f"(including Ray start-up) ray_task_overhead_ms={overhead * 1e3:.1f}")


if __name__ == "__main__":
    main()
