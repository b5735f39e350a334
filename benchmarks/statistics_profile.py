"""Where the seconds and memory of one cache entry go: a profile per statistic group, to pick what to speed up.

An entry is built as ``autoproxy.cache.build`` builds it: ``compute_statistics`` with the cache's
defaults (sketch, ZiCo sub-batches, seed), float16 packing (``encode_entry``), then the file write and
its checksum (``write_atomic``, ``sha256_bytes``). Archs: the first ``--archs`` of the shared Suite-Zero
file in a cache's seeded order (``select_records``), the batch the cache's real images give.

Method: a group is measured on the public interface, not by instrumenting private functions.
``compute_statistics(needs=keys)`` runs the always-computed ``structure`` (the network copy, the hooked
forward pass) plus the groups reading ``keys`` (``STATISTIC_GROUPS``). The ``forward + hooks`` row is a
run with ``needs=()``; every other group's seconds are a run with that group's keys minus that baseline,
per arch, so a row is what the group adds to a pass it cannot do without. The Hessian-gradient
differentiates the loss backward's own graph again, so its baseline is the run with ``needs={"grad"}``
(its row is the ``create_graph`` overhead plus the double backward). The sketch is taken inside the
hooked passes (a channel and position subset of each activation), so its cost is in the activations and
loss-backward rows; the packing and write rows are timed on the entry of a full run made beforehand.
The rows' sum is not one full call (the ``total`` line shows both): a full call shares the copy, the
forward and its graph between groups, while separate runs each pay for their own.

Each step runs twice, each time in a child forked after the model is built (``model_zoo.measure``).
Seconds are the wall clock of a child with glibc's default allocator, the one a cache build runs with.
Peak MiB comes from a second child that first fixes glibc's mmap threshold as ``model_zoo`` does, so
that a freed block returns to the system at once and RSS shows what the step holds, not the heap's
history; that setting alone made ``compute_statistics`` 1.6 times slower on NB201 (every large tensor a
fresh zeroed mapping), hence the two children. Peak MiB is the child's ``ru_maxrss`` minus its RSS just
before the step (high-water mark reset there) less the library code pages the fresh child mapped
meanwhile. The parent's freed heap is trimmed before forking, so small blocks count too (a process that
ran the step once already reuses its resident heap and shows about a quarter less on NB201: the
allocations of 64 KiB and under). ``+MiB`` is that peak over the baseline run's. Memory peaks do not
add, so there is no total of them. Medians over archs; one torch thread, so the figures are per core.

    python benchmarks/statistics_profile.py [--space nb201|nb101] [--archs N] [--batch 64] [--json OUT]
    python benchmarks/statistics_profile.py --smoke      # one tiny NB201 net at batch 8, for CI
"""
from __future__ import annotations

import argparse
import ctypes
import json
import statistics as stats_lib
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch

from _smoke import SMOKE_HELP, TINY_NET
from autoproxy.atomic import write_atomic
from autoproxy.benchmark import load_benchmark
from autoproxy.cache.build import select_records
from autoproxy.cache.defaults import DEFAULT_DTYPE, DEFAULT_MAX_CHANNELS, DEFAULT_MAX_POSITIONS
from autoproxy.cache.files import entry_file_name, sha256_bytes
from autoproxy.cache.store import encode_entry
from autoproxy.data import load_minibatch
from autoproxy.settings import shared_path
from autoproxy.spaces import get_space
from autoproxy.statistics import DEFAULT_SUB_BATCHES, STATISTIC_GROUPS, compute_statistics
from model_zoo import fixed_mmap_threshold, measure

BENCHMARK_FILES = {"nb201": "zc_nasbench201.json", "nb101": "zc_nasbench101.json"}
DEFAULT_ARCHS = {"nb201": 5, "nb101": 2}
TIMEOUT_S = 1800.0     # per measurement: a stuck child is killed rather than hanging the profile
# The keys each measured compute_statistics run asks for (None: all of them, as a cache does).
RUNS: dict[str, frozenset[str] | None] = {"structure": frozenset(), "grad": frozenset({"grad"}),
                                          **{group: keys for group, keys in STATISTIC_GROUPS.items()
                                             if group != "structure"}, "all": None}
LABELS = {"structure": "forward + hooks", "grad": "loss backward, dL/dW only", "activations": "activations (sketched)",
          "gradients": "loss backward", "hessian": "Hessian-gradient", "sub_batches": "ZiCo sub-batches",
          "synflow": "SynFlow float64 pass", "jacobian": "input Jacobian", "kernels": "kernels/covariances",
          "flops": "FLOPs count", "packing": "float16 packing", "write": "file write + sha256"}
# The run a group's cost is measured over; the rows without one are absolute.
BASELINES = {**{group: "structure" for group in STATISTIC_GROUPS if group != "structure"}, "hessian": "grad"}
ROWS = ("structure", *BASELINES, "packing", "write")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--space", choices=sorted(BENCHMARK_FILES), default="nb201")
    parser.add_argument("--archs", type=int, help=f"archs profiled (default {DEFAULT_ARCHS})")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0, help="arch order, weight init and batch seed")
    parser.add_argument("--json", type=Path, help="write every measurement and the table here")
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args(argv)
    args.width = args.depth = None
    args.sub_batches = DEFAULT_SUB_BATCHES
    if args.smoke:
        args.space, args.archs, args.batch = "nb201", 1, TINY_NET["batch_size"]
        args.width, args.depth, args.sub_batches = TINY_NET["width"], TINY_NET["depth"], TINY_NET["sub_batches"]
    args.archs = args.archs or DEFAULT_ARCHS[args.space]
    return args


def statistics_run(keys: frozenset[str] | None, options: dict[str, Any]) -> Callable[..., float]:
    """A measured call of ``compute_statistics`` with only ``keys``; its value is the number of groups
    that failed on the model (0 expected), so a group that silently did nothing would show."""
    return lambda model, inputs, targets: len(compute_statistics(model, inputs, targets, needs=keys,
                                                                 **options).unavailable)


def cache_step(step: Callable[[], object]) -> Callable[..., float]:
    """A measured step after the statistics; its value is 0, as no group can fail there."""
    def run(*_) -> float:
        step()
        return 0.0
    return run


def write_entry(path: Path, data: bytes) -> None:
    """The build's last step: the atomic write and the checksum recorded in the manifest."""
    write_atomic(path, data)
    sha256_bytes(data)


def release_free_heap() -> None:
    """Hand the parent's freed heap pages back to the system (glibc ``malloc_trim``) before forking: a
    child would otherwise reuse them, already resident, and its peak RSS would miss what a step holds."""
    ctypes.CDLL("libc.so.6").malloc_trim(0)


def with_fixed_threshold(run: Callable[..., float]) -> Callable[..., float]:
    """``run`` after fixing the mmap threshold in the measuring child only, so that the parent, and
    the timing children forked from it, keep the allocator a cache build has."""
    def fixed(*args) -> float:
        fixed_mmap_threshold()
        return run(*args)
    return fixed


def checked(result: dict[str, Any], what: str) -> dict[str, Any]:
    """A measurement's result; a failed one stops the profile (its figures would be meaningless)."""
    if "error" in result:
        raise SystemExit(f"{what}: {result['error']}")
    if result["value"]:
        print(f"warning: {what}: {result['value']:.0f} group(s) unavailable on this model")
    return result


def profile_arch(model: torch.nn.Module, key: str, batch: tuple[torch.Tensor, torch.Tensor],
                 options: dict[str, Any], directory: Path) -> dict[str, dict[str, Any]]:
    """Every measurement of one arch: the statistics runs of ``RUNS``, packing and write."""
    inputs, targets = batch
    stats = compute_statistics(model, inputs, targets, **options)   # also warms up the lazy imports
    data = encode_entry(key, stats, DEFAULT_DTYPE)
    release_free_heap()
    steps = {name: statistics_run(keys, options) for name, keys in RUNS.items()}
    steps["packing"] = cache_step(lambda: encode_entry(key, stats, DEFAULT_DTYPE))
    steps["write"] = cache_step(lambda: write_entry(directory / entry_file_name(key), data))
    return {name: {"time": checked(measure(step, model, inputs, targets, TIMEOUT_S), f"{name} on {key}"),
                   "memory": checked(measure(with_fixed_threshold(step), model, inputs, targets, TIMEOUT_S),
                                     f"{name} on {key} (memory)")}
            for name, step in steps.items()}


def own_mib(run: dict[str, dict[str, Any]]) -> float:
    """Peak RSS of a step's memory child over its start, less the code pages a fresh child maps lazily."""
    return run["memory"]["peak_mib"] - run["memory"]["file_mib"]


def row_figures(runs: dict[str, dict[str, Any]], row: str) -> dict[str, float]:
    """One arch's seconds, peak and peak over the baseline for ``row``."""
    result, base = runs[row], runs[BASELINES[row]] if row in BASELINES else None
    seconds = result["time"]["seconds"] - (base["time"]["seconds"] if base else 0.0)
    return {"seconds": seconds, "peak_mib": own_mib(result),
            "over_base_mib": own_mib(result) - (own_mib(base) if base else 0.0)}


def table(measurements: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[str, float]]:
    """Per row, the median over archs of each figure, and its share of the rows' summed seconds."""
    rows = {row: {figure: stats_lib.median(row_figures(runs, row)[figure] for runs in measurements.values())
                  for figure in ("seconds", "peak_mib", "over_base_mib")} for row in ROWS}
    total = sum(figures["seconds"] for figures in rows.values())
    for figures in rows.values():
        figures["share"] = figures["seconds"] / total if total else 0.0
    return rows


def table_lines(rows: dict[str, dict[str, float]], measurements: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """The table, biggest rows first, and the total line comparing the rows' sum with one full build."""
    lines = [f"  {'group':<24} {'median s':>9} {'share':>7} {'peak MiB':>9} {'+MiB':>8}  measured over"]
    for row, figures in sorted(rows.items(), key=lambda item: -item[1]["seconds"]):
        lines.append(f"  {LABELS[row]:<24} {figures['seconds']:>9.3f} {figures['share']:>7.1%} "
                     f"{figures['peak_mib']:>9.1f} {figures['over_base_mib']:>8.1f}  "
                     f"{LABELS.get(BASELINES.get(row), '-')}")
    full = [sum(runs[step]["time"]["seconds"] for step in ("all", "packing", "write"))
            for runs in measurements.values()]
    lines.append(f"total: {sum(f['seconds'] for f in rows.values()):.3f} s summed over the rows (groups apart); "
                 f"one entry with all groups in one call: {stats_lib.median(full):.3f} s, peak "
                 f"{stats_lib.median(own_mib(runs['all']) for runs in measurements.values()):.1f} MiB")
    return lines


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)
    records = load_benchmark(shared_path("benchmarks", BENCHMARK_FILES[args.space]), task="cifar10")
    chosen = select_records(records, args.seed, args.archs)
    inputs, targets, num_classes = load_minibatch(shared_path("data", "cifar10_sample.npz"), args.batch, args.seed)
    options = {"sub_batches": args.sub_batches, "max_channels": DEFAULT_MAX_CHANNELS,
               "max_positions": DEFAULT_MAX_POSITIONS, "seed": args.seed}
    print(f"statistics profile: {args.space}, {len(chosen)} archs, batch {args.batch}, sketch "
          f"{DEFAULT_MAX_CHANNELS}x{DEFAULT_MAX_POSITIONS}, {DEFAULT_DTYPE}, {args.sub_batches} sub-batches, "
          "1 torch thread; seconds with glibc's default allocator, peak MiB with its mmap threshold fixed", flush=True)
    measurements = {}
    with tempfile.TemporaryDirectory(prefix="statistics-profile-") as directory:
        for record in chosen:
            torch.manual_seed(args.seed)
            model = get_space(args.space).build(record.key, num_classes=num_classes, in_channels=inputs.shape[1],
                                                width=args.width, depth=args.depth)
            measurements[record.key] = profile_arch(model, record.key, (inputs, targets), options, Path(directory))
            print(f"{record.key}: all groups {measurements[record.key]['all']['time']['seconds']:.2f} s", flush=True)
    rows = table(measurements)
    for line in table_lines(rows, measurements):
        print(line)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"space": args.space, "batch": args.batch, "options": options,
                                         "rows": rows, "measurements": measurements},
                                        indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
