"""Building a cache: the statistics of many archs, in parallel with Ray or serially, resumable.

Which archs: the benchmark's records in a seeded shuffle of the file order (the cache's ``seed``),
the first ``limit`` of them. So ``--limit`` draws a uniform sample, and a larger limit with the same
seed extends a smaller one instead of replacing it.

Workers compute and write their entry file themselves (only a small result crosses Ray's object
store); the driver records each finished entry in the manifest at once and reports an arch that
fails as one line without stopping the others, unless the first ``FAIL_FAST_ARCHS`` all fail the
same way (a bad input, not a bad arch: the build stops rather than fail every arch). Weights are
initialised with ``torch.manual_seed(seed)`` before each build and every arch runs on one torch
thread, so an entry does not depend on the executor or on which worker computed it.
"""
from __future__ import annotations

import os
import random
import sys
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import torch

from autoproxy.atomic import remove_stale_temporaries, write_atomic
from autoproxy.benchmark import ArchRecord, load_benchmark
from autoproxy.cache.defaults import DEFAULT_DTYPE, DEFAULT_MAX_CHANNELS, DEFAULT_MAX_POSITIONS, TASK_CLASSES
from autoproxy.cache.files import entry_file_name, sha256_bytes, sha256_file
from autoproxy.cache.loader import StatisticsCache
from autoproxy.cache.manifest import MANIFEST_NAME, CacheSettings, Entry, Manifest, read_manifest, settings_mismatch
from autoproxy.cache.store import encode_entry
from autoproxy.errors import AutoproxyError, CacheError
from autoproxy.statistics import DEFAULT_SUB_BATCHES, STATISTICS_VERSION
from autoproxy.torch_threads import one_torch_thread

_RAY_OBJECT_STORE_BYTES = 200 * 1024**2
FAIL_FAST_ARCHS = 3     # the build stops when its first this-many archs all fail with the same error


@dataclass(frozen=True)
class EntryResult:
    """What a worker reports back: the written entry, or why the arch was skipped."""

    key: str
    file: str | None = None
    sha256: str | None = None
    bytes: int = 0
    error: str | None = None


@dataclass
class BuildSummary:
    """What one ``build_cache`` call did; ``seconds`` is wall time over the archs it built."""

    directory: Path
    archs: int = 0        # entries in the cache after the build
    built: int = 0
    reused: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    total_bytes: int = 0
    seconds: float = 0.0

    def skipped_line(self) -> str | None:
        """One line on the skipped archs (None when there are none)."""
        if not self.failed:
            return None
        key, error = self.failed[0]
        return f"{len(self.failed)} archs skipped: first reason (arch {key}): {error}"

    @property
    def seconds_per_arch(self) -> float:
        return self.seconds / self.built if self.built else 0.0

    def line(self) -> str:
        per_arch = self.total_bytes / self.archs / 1e6 if self.archs else 0.0
        return (f"cache {self.directory}: {self.archs} archs ({self.built} built, {self.reused} reused, "
                f"{len(self.failed)} failed), {self.total_bytes / 1e6:.1f} MB ({per_arch:.2f} MB/arch), "
                f"{self.seconds_per_arch:.2f} s/arch")


def num_classes_for(task: str, num_classes: int | None) -> int:
    """Classes of the classifier: given explicitly, else known from the task name."""
    if num_classes is not None:
        return num_classes
    if task not in TASK_CLASSES:
        raise CacheError(f"task {task!r} has no known class count: pass --num-classes")
    return TASK_CLASSES[task]


def select_records(records: Sequence[ArchRecord], seed: int, limit: int | None) -> list[ArchRecord]:
    """The first ``limit`` records of a ``seed``-shuffled file order (prefix-stable as limit grows)."""
    order = list(records)
    random.Random(seed).shuffle(order)
    return order if limit is None else order[:limit]


def compute_entry(key: str, settings: CacheSettings, inputs: torch.Tensor, targets: torch.Tensor,
                  directory: str) -> EntryResult:
    """Build arch ``key``, compute its statistics and write its entry file; never raises."""
    with one_torch_thread():
        return _compute_entry(key, settings, inputs, targets, directory)


def _compute_entry(key: str, settings: CacheSettings, inputs: torch.Tensor, targets: torch.Tensor,
                   directory: str) -> EntryResult:
    from autoproxy.spaces import get_space
    from autoproxy.statistics import compute_statistics

    try:
        torch.manual_seed(settings.seed)
        model = get_space(settings.space).build(key, num_classes=settings.num_classes,
                                                in_channels=inputs.shape[1],
                                                width=settings.width, depth=settings.depth)
        device = torch.device(settings.device)      # the weights are drawn on the CPU, then moved
        model, inputs, targets = model.to(device), inputs.to(device), targets.to(device)
        stats = compute_statistics(model, inputs, targets, sub_batches=settings.sub_batches,
                                   max_channels=settings.max_channels,
                                   max_positions=settings.max_positions, seed=settings.seed)
        data = encode_entry(key, stats, settings.dtype)
        name = entry_file_name(key)
        write_atomic(Path(directory) / name, data)
        return EntryResult(key, name, sha256_bytes(data), len(data))
    except AutoproxyError as err:
        return EntryResult(key, error=str(err))
    except Exception as err:  # one bad arch must not stop the build; the key and cause are reported
        return EntryResult(key, error=f"{type(err).__name__}: {err}")


def _run_serial(keys, settings, inputs, targets, directory) -> Iterator[EntryResult]:
    for key in keys:
        yield compute_entry(key, settings, inputs, targets, directory)


def _run_ray(keys, settings, inputs, targets, directory, workers: int) -> Iterator[EntryResult]:
    """Results in completion order, at most ``2 * workers`` tasks in flight."""
    import ray

    started_here = not ray.is_initialized()
    if started_here:
        # address="local": our own instance, even when another process runs a cluster on this machine
        ray.init(address="local", include_dashboard=False, num_cpus=workers, object_store_memory=_RAY_OBJECT_STORE_BYTES,
                 log_to_driver=False, logging_level="ERROR")
    in_flight: dict = {}
    try:
        # on a GPU the workers share it (Ray sets CUDA_VISIBLE_DEVICES for tasks that ask for a share)
        gpus = {"num_gpus": 1 / workers} if settings.device.startswith("cuda") else {}
        remote = ray.remote(num_cpus=1, **gpus)(compute_entry)
        inputs_ref, targets_ref = ray.put(inputs), ray.put(targets)  # one copy, shared by all tasks
        pending_keys = list(keys)[::-1]
        while pending_keys or in_flight:
            while pending_keys and len(in_flight) < 2 * workers:
                key = pending_keys.pop()
                ref = remote.remote(key, settings, inputs_ref, targets_ref, directory)
                in_flight[ref] = key
            done, _ = ray.wait(list(in_flight), num_returns=1)
            key = in_flight.pop(done[0])
            try:
                yield ray.get(done[0])
            except Exception as err:  # a crashed worker (e.g. out of memory) costs only its arch
                yield EntryResult(key, error=f"worker failed: {type(err).__name__}: {err}".splitlines()[0])
    finally:
        for ref in in_flight:   # left when the build stops early
            ray.cancel(ref)
        if started_here:
            ray.shutdown()


def _open_for_build(directory: Path, settings: CacheSettings, benchmark_path: Path,
                    data_path: Path | None, echo: Callable[[str], None]) -> Manifest:
    """The manifest to extend: the existing one if its settings agree (corrupt entries dropped), else new.

    A manifest with other settings is refused; an unreadable one is reported and replaced (its entry
    files are rebuilt, as nothing vouches for them).
    """
    fresh = Manifest(settings=settings, benchmark_path=str(benchmark_path),
                     data_path=None if data_path is None else str(data_path))
    if not (directory / MANIFEST_NAME).exists():
        return fresh
    try:
        manifest = read_manifest(directory)
    except CacheError as err:
        echo(f"warning: {err}; starting a new manifest")
        return fresh
    mismatch = settings_mismatch(manifest.settings, settings)
    if mismatch:
        raise CacheError(f"{directory} was built with other settings ({mismatch}); use another --out")
    cache = StatisticsCache(directory, manifest)
    for key in cache.verify():
        entry = manifest.entries.pop(key)
        echo(f"cache entry {key} ({directory / entry.file}) is corrupt or missing: rebuilding it")
    return manifest


def _checked_device(device: str) -> str:
    """``cpu`` or an available ``cuda[:N]``, else one line naming it."""
    try:
        parsed = torch.device(device)
    except RuntimeError:
        raise CacheError(f"device {device!r} is not a torch device (cpu, cuda, cuda:1)") from None
    if parsed.type not in ("cpu", "cuda"):
        raise CacheError(f"device {device!r}: cache builds run on cpu or cuda")
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise CacheError(f"device {device!r}: this torch sees no CUDA device")
    return device


def check_labels_fit(data: str | Path, label_classes: int, classes: int, task: str) -> None:
    """Refuse, before building anything, an images file whose labels the classifier cannot output
    (every arch would fail its loss with an out-of-bounds target)."""
    if label_classes > classes:
        raise CacheError(f"--data {data} has labels up to {label_classes - 1}, but task {task!r} has {classes} "
                         f"classes: use images of that task or pass --num-classes (at least {label_classes})")


def _stop_if_first_archs_fail_alike(summary: BuildSummary, kept: int) -> None:
    """Stop the build when its first ``FAIL_FAST_ARCHS`` archs all failed with the same error (arch
    keys masked): the input is bad, not the archs, and every other arch would fail the same way."""
    if summary.built or len(summary.failed) != FAIL_FAST_ARCHS:
        return
    reasons = {error.replace(key, "<arch>") for key, error in summary.failed}
    if len(reasons) == 1:
        raise CacheError(f"stopped: the first {FAIL_FAST_ARCHS} archs all failed with {reasons.pop()} "
                         f"({summary.directory} keeps its {kept} finished entries)")


def _data_sha256(data: str | Path | None) -> str | None:
    """Fingerprint of the minibatch source: a file's sha256, or a named dataset's split fingerprint."""
    from autoproxy.datasets import NAMED_DATASETS, load_dataset

    if data is None:
        return None
    if str(data) in NAMED_DATASETS:
        return load_dataset(str(data)).fingerprint()
    return sha256_file(Path(data))


def build_cache(
    out: str | Path,
    benchmark: str | Path,
    *,
    space: str,
    task: str,
    data: str | Path | None = None,
    noise: bool = False,
    batch_size: int = 64,
    seed: int = 0,
    width: int | None = None,
    depth: int | None = None,
    sub_batches: int = DEFAULT_SUB_BATCHES,
    max_channels: int | None = DEFAULT_MAX_CHANNELS,
    max_positions: int | None = DEFAULT_MAX_POSITIONS,
    dtype: str = DEFAULT_DTYPE,
    num_classes: int | None = None,
    limit: int | None = None,
    executor: str = "ray",
    workers: int | None = None,
    device: str = "cpu",
    progress: bool = True,
    echo: Callable[[str], None] = print,
) -> BuildSummary:
    """Compute and store the statistics of the selected archs of ``benchmark`` under ``out``.

    Rerunning continues where a previous run stopped; entries whose checksum fails are rebuilt.
    """
    from tqdm import tqdm

    from autoproxy.data import load_minibatch
    from autoproxy.datasets import NAMED_DATASETS

    if executor not in ("ray", "serial"):
        raise CacheError(f"unknown executor {executor!r}: choose ray or serial")
    directory, benchmark_path = Path(out), Path(benchmark)
    data_path = None if data is None else (str(data) if str(data) in NAMED_DATASETS else Path(data))
    records = load_benchmark(benchmark_path, space=space, task=task)
    classes = num_classes_for(task, num_classes)
    inputs, targets, label_classes = load_minibatch(data_path, batch_size, seed, noise=noise, num_classes=classes)
    if data_path is not None:
        check_labels_fit(data_path, label_classes, classes, task)
    settings = CacheSettings(
        space=space, task=task, num_classes=classes, benchmark_sha256=sha256_file(benchmark_path),
        data_sha256=_data_sha256(data_path), noise=noise, batch_size=batch_size, seed=seed, width=width,
        depth=depth, sub_batches=sub_batches, max_channels=max_channels, max_positions=max_positions,
        dtype=dtype, statistics_version=STATISTICS_VERSION, device=_checked_device(device))
    directory.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(directory)
    manifest = _open_for_build(directory, settings, benchmark_path, data_path, echo)
    selected = select_records(records, seed, limit)
    accuracy = {record.key: record.accuracy for record in records}
    rank = {record.key: i for i, record in enumerate(select_records(records, seed, None))}
    todo = [record.key for record in selected if record.key not in manifest.entries]
    summary = BuildSummary(directory, reused=sum(r.key in manifest.entries for r in selected))
    manifest.write(directory)

    if executor == "serial":
        results = _run_serial(todo, settings, inputs, targets, str(directory))
    else:
        results = _run_ray(todo, settings, inputs, targets, str(directory), workers or os.cpu_count() or 1)
    start = time.perf_counter()
    with tqdm(total=len(todo), unit="arch", desc="statistics", disable=not progress or not todo) as bar, \
            closing(results):
        for result in results:
            bar.update()
            if result.error is not None:
                summary.failed.append((result.key, result.error))
                tqdm.write(f"skipped arch {result.key}: {result.error}", file=sys.stderr)
                _stop_if_first_archs_fail_alike(summary, kept=len(manifest.entries))
                continue
            manifest.entries[result.key] = Entry(result.key, accuracy[result.key], result.file,
                                                 result.sha256, result.bytes)
            manifest.entries = dict(sorted(manifest.entries.items(), key=lambda item: rank[item[0]]))
            manifest.write(directory)
            summary.built += 1
    summary.seconds = time.perf_counter() - start
    summary.archs = len(manifest.entries)
    summary.total_bytes = sum(entry.bytes for entry in manifest.entries.values())
    return summary
