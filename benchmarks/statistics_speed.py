"""Seconds and bytes of ``compute_statistics`` per NAS-Bench-201 arch, next to proxies computed one by one.

Two references. NASLib's time is the sum of the 12 proxies' ``time`` fields of the shared Suite-Zero
file (the same arch, all proxies, one by one, on NASLib's machine). The project's own reference proxies
(``autoproxy.proxies``: each a zero-cost-nas-style function with its own deep copy and passes, as
NASLib runs them) are also timed one by one here, on the same arch, batch and weights, so that
``ratio_all_statistics_vs_proxies_one_by_one`` (median seconds of all statistics at once over the median
summed seconds of every proxy) is measured in one run on one machine and needs no figure from
elsewhere. Runs single-threaded: the figure is per core. CPU seconds are shown next to wall seconds
because on a shared machine the wall clock also counts waiting for a core.

    python benchmarks/statistics_speed.py [--quick] [--archs N] [--batch-size 64]
    python benchmarks/statistics_speed.py --smoke      # one arch at batch 8, for CI
"""
from __future__ import annotations

import random
import statistics as stats_lib
import time

import click
import torch

from _smoke import SMOKE_HELP, TINY_NET
from autoproxy.benchmark import load_benchmark
from autoproxy.data import load_minibatch
from autoproxy.proxies import reference_names, reference_proxy
from autoproxy.settings import shared_path
from autoproxy.spaces import get_space
from autoproxy.statistics import NetworkStatistics, compute_statistics

ACTIVATION_TENSORS = ("act_out", "grad_act_out", "act_in", "grad_act_in")
EXAMPLE_SKETCH = {"max_channels": 8, "max_positions": 64}


def statistics_bytes(result: NetworkStatistics, max_channels: int | None = None, max_positions: int | None = None) -> int:
    """float32 bytes of every statistic tensor, as stored, or as a sketch of the activations would store them."""
    total = sum(t.numel() for t in result.tensors.values())
    for node in result.nodes:
        for name, tensor in node.tensors.items():
            if name in ACTIVATION_TENSORS:
                batch, channels, positions = tensor.shape
                channels = min(channels, max_channels or channels)
                positions = min(positions, max_positions or positions)
                total += batch * channels * positions
            else:
                total += tensor.numel()
    return 4 * total


def proxies_one_by_one(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    """Summed wall seconds of every reference proxy run alone on ``model``: what computing them
    separately costs, each repeating the forward and backward passes the statistics share."""
    total = 0.0
    for name in reference_names():
        start = time.perf_counter()
        reference_proxy(name)(model, inputs, targets)
        total += time.perf_counter() - start
    return total


@click.command()
@click.option("--quick", is_flag=True, help="3 archs (under a minute)")
@click.option("--archs", default=20, show_default=True, help="archs timed (seeded sample)")
@click.option("--batch-size", default=64, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--smoke", is_flag=True, help=SMOKE_HELP)
def main(quick: bool, archs: int, batch_size: int, seed: int, smoke: bool) -> None:
    torch.set_num_threads(1)
    if smoke:
        archs, batch_size, quick = 1, TINY_NET["batch_size"], False
    records = load_benchmark(shared_path("benchmarks", "zc_nasbench201.json"), task="cifar10")
    chosen = random.Random(seed).sample(records, 3 if quick else min(archs, len(records)))
    inputs, targets, num_classes = load_minibatch(shared_path("data", "cifar10_sample.npz"), batch_size, seed)
    space = get_space("nb201")
    compute_statistics(space.build(chosen[0].key, num_classes=num_classes), inputs, targets)  # warm-up

    seconds, cpu_seconds, sizes, sketched, one_by_one = [], [], [], [], []
    for record in chosen:
        torch.manual_seed(seed)
        model = space.build(record.key, num_classes=num_classes)
        start, cpu_start = time.perf_counter(), time.process_time()
        result = compute_statistics(model, inputs, targets)
        seconds.append(time.perf_counter() - start)
        cpu_seconds.append(time.process_time() - cpu_start)
        sizes.append(statistics_bytes(result))
        sketched.append(statistics_bytes(result, **EXAMPLE_SKETCH))
        one_by_one.append(proxies_one_by_one(model, inputs, targets))
        print(f"{record.key}: {seconds[-1]:.2f} s ({cpu_seconds[-1]:.2f} s CPU), {sizes[-1] / 2**20:.1f} MiB; "
              f"{len(reference_names())} proxies one by one {one_by_one[-1]:.2f} s", flush=True)

    naslib = [sum(record.times.values()) for record in chosen if record.times]
    median = stats_lib.median(seconds)
    print(f"archs={len(seconds)} batch={batch_size} median={median:.3f} s mean={stats_lib.mean(seconds):.3f} s "
          f"CPU median={stats_lib.median(cpu_seconds):.3f} s")
    if naslib:
        naslib_median = stats_lib.median(naslib)
        print(f"NASLib 12 proxies median={naslib_median:.3f} s  ratio ours/NASLib={median / naslib_median:.3f}")
    proxies_median = stats_lib.median(one_by_one)
    print(f"reference proxies one by one ({', '.join(reference_names())}): median={proxies_median:.3f} s  "
          f"ratio_all_statistics_vs_proxies_one_by_one={median / proxies_median:.3f}")
    print(f"bytes with sketch {EXAMPLE_SKETCH}: median={int(stats_lib.median(sketched))}")
    print(f"s_per_arch={median:.3f} bytes_per_arch={int(stats_lib.median(sizes))}")


if __name__ == "__main__":
    main()
