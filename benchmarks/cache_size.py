"""Cost of the statistics cache: build seconds and bytes per NB201 arch, and loading 256 archs.

Builds ``--archs`` real cifar10 archs at full size (batch 64, width 16, depth 5) serially on one
thread, reports seconds and bytes per arch, and extrapolates the bytes of all 506 public archs from
their parameter counts (param-shaped statistics) plus the mean of everything else. To time loading
``--load-archs`` distinct entries without building them all, it re-encodes the built statistics
under other keys of the benchmark (same sizes, same format) and loads those in a fresh process,
reporting wall and CPU seconds and peak RSS with and without checksum verification (wall time
on a busy machine overstates the cost; CPU seconds divided by the cores shows what to expect).

    python benchmarks/cache_size.py --archs 6 --load-archs 256
    python benchmarks/cache_size.py --cache caches/nb201-cifar10 --load-archs 256   # a real, built cache
    python benchmarks/cache_size.py --smoke     # 3 tiny nets, 8 loaded, both reports, for CI
"""
from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _smoke import FEW_ARCHS, SMOKE_ARCHS, SMOKE_HELP, TINY_NET


def entry_bytes_by_class(path: Path) -> tuple[int, int]:
    """(bytes of param-shaped tensors, i.e. shaped like their node's weight; all other bytes)."""
    from safetensors import safe_open

    param = 0
    with safe_open(str(path), framework="np") as handle:
        shapes = {name: handle.get_slice(name).get_shape() for name in handle.keys()}
        for name, shape in shapes.items():
            node = name.rsplit("/", 1)[0]
            if name.startswith("node/") and shape == shapes[f"{node}/weight"]:
                param += handle.get_tensor(name).nbytes
    return param, path.stat().st_size - param


def build_sample(directory: Path, args: argparse.Namespace, net: dict[str, Any]) -> None:
    """Build ``--archs`` archs (``net``: build_cache's net and batch sizes, the defaults if empty),
    print their seconds and bytes, and replicate them to ``--load-archs`` entries for the load timing."""
    import torch

    from autoproxy.benchmark import load_benchmark
    from autoproxy.cache import build_cache, open_cache
    from autoproxy.settings import shared_path

    torch.set_num_threads(1)
    benchmark = shared_path("benchmarks", "zc_nasbench201.json")
    cpu_start = time.process_time()
    summary = build_cache(
        directory / "built", benchmark, space="nb201", task="cifar10",
        data=shared_path("data", "cifar10_sample.npz"), limit=args.archs, dtype=args.dtype,
        max_channels=args.max_channels or None, max_positions=args.max_positions or None,
        executor="serial", progress=False, **net)
    cpu_per_arch = (time.process_time() - cpu_start) / summary.built
    cache = open_cache(directory / "built")
    records = load_benchmark(benchmark, space="nb201", task="cifar10")
    params = {record.key: record.scores["params"] * 1e6 for record in records}
    param_bytes, other_bytes = zip(*(entry_bytes_by_class(directory / "built" / e.file)
                                     for e in cache.manifest.entries.values()))
    bytes_per_param = sum(param_bytes) / sum(params[key] for key in cache.keys)
    estimate = bytes_per_param * sum(params.values()) + len(records) * sum(other_bytes) / len(other_bytes)
    print(f"build: {summary.built} archs, {summary.seconds_per_arch:.2f} s/arch ({cpu_per_arch:.2f} s CPU, 1 thread), "
          f"{summary.total_bytes / summary.archs / 1e6:.2f} MB/arch "
          f"(param-shaped {sum(param_bytes) / len(param_bytes) / 1e6:.2f} MB, "
          f"rest {sum(other_bytes) / len(other_bytes) / 1e6:.2f} MB)")
    print(f"estimate for all {len(records)} public NB201 cifar10 archs: {estimate / 1e9:.2f} GB "
          f"({args.dtype}, max_channels={args.max_channels}, max_positions={args.max_positions})")
    replicate(cache, records, directory / "load", args.load_archs)


def replicate(cache, records, target: Path, count: int) -> None:
    """A cache of ``count`` distinct keys whose statistics cycle through the built ones (timing only)."""
    from autoproxy.atomic import write_atomic
    from autoproxy.cache.files import entry_file_name, sha256_bytes
    from autoproxy.cache.manifest import Entry, Manifest
    from autoproxy.cache.store import encode_entry, read_entry

    target.mkdir(parents=True)
    built = [read_entry(cache.directory / cache.manifest.entries[key].file, key) for key in cache.keys]
    manifest = Manifest(cache.manifest.settings, cache.manifest.benchmark_path, cache.manifest.data_path)
    for i, record in enumerate(records[:count]):
        data = encode_entry(record.key, built[i % len(built)], cache.manifest.settings.dtype)
        write_atomic(target / entry_file_name(record.key), data)
        manifest.entries[record.key] = Entry(record.key, record.accuracy, entry_file_name(record.key),
                                             sha256_bytes(data), len(data))
    manifest.write(target)


def measure_load(directory: str, verify: bool, count: int) -> None:
    """Run in a fresh process: load ``count`` entries (a seeded subset), print seconds and peak RSS as JSON."""
    from autoproxy.cache import open_cache

    cache = open_cache(directory)
    keys = cache.subset(min(count, len(cache)))
    start, cpu_start = time.perf_counter(), time.process_time()
    stats = cache.load(keys, verify=verify)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    print(json.dumps({"archs": len(stats), "seconds": seconds, "cpu_seconds": cpu_seconds,
                      "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", type=int, default=6, help="real archs to build")
    parser.add_argument("--load-archs", type=int, default=256)
    parser.add_argument("--dtype", choices=["float16", "float32"], default="float16")
    parser.add_argument("--max-channels", type=int, default=8, help="0: all")
    parser.add_argument("--max-positions", type=int, default=8, help="0: all")
    parser.add_argument("--cache", help="measure this built cache instead of building a sample")
    parser.add_argument("--measure-load", metavar="DIR", help=argparse.SUPPRESS)
    parser.add_argument("--no-verify", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args()
    if args.smoke:
        args.archs, args.load_archs = FEW_ARCHS, SMOKE_ARCHS
    if args.measure_load:
        measure_load(args.measure_load, verify=not args.no_verify, count=args.load_archs)
        return
    if args.cache:
        report_built(Path(args.cache))
        time_loads(Path(args.cache), args.load_archs)
        return
    directory = Path(tempfile.mkdtemp(prefix="autoproxy-cache-size-"))
    try:
        build_sample(directory, args, TINY_NET if args.smoke else {})
        if args.smoke:  # the --cache report too, on the sample just built
            report_built(directory / "built")
        time_loads(directory / "load", args.load_archs)
    finally:
        shutil.rmtree(directory)


def report_built(directory: Path) -> None:
    from autoproxy.cache import open_cache

    cache = open_cache(directory)
    entries = cache.manifest.entries.values()
    total = sum(entry.bytes for entry in entries)
    settings = cache.manifest.settings
    print(f"cache {directory}: {len(cache)} archs, {total / 1e9:.2f} GB on disk, {total / len(cache) / 1e6:.2f} MB/arch "
          f"({settings.dtype}, max_channels={settings.max_channels}, max_positions={settings.max_positions})")


def time_loads(directory: Path, count: int) -> None:
    """Load ``count`` entries in a fresh process, without and with checksum verification."""
    for path in directory.iterdir():  # warm the page cache, as for a cache in regular use
        if path.suffix == ".safetensors":
            path.read_bytes()
    for extra in (["--no-verify"], []):
        out = subprocess.run([sys.executable, __file__, "--measure-load", str(directory), "--load-archs", str(count),
                              *extra], check=True, capture_output=True, text=True).stdout
        result = json.loads(out)
        print(f"load {result['archs']} archs ({'no checksum' if extra else 'sha256 verified'}): "
              f"{result['seconds']:.2f} s ({result['cpu_seconds']:.2f} s CPU), peak RSS {result['peak_rss_gb']:.2f} GB")


if __name__ == "__main__":
    main()
