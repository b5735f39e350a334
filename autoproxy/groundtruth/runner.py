"""Sample distinct archs and train the ones the output file lacks, serially or one per Ray worker."""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator

from tqdm import tqdm

from autoproxy.datasets import ImageDataset
from autoproxy.errors import GroundTruthError
from autoproxy.groundtruth.store import GroundTruthStore
from autoproxy.groundtruth.train import TrainResult, TrainSettings, train_and_evaluate

if TYPE_CHECKING:
    from autoproxy.spaces import SearchSpace

_MAX_DUPLICATE_DRAWS = 10_000


@dataclass(frozen=True)
class TrainJob:
    """What a worker needs to train one arch; the space is named so that it is rebuilt there."""

    space_name: str
    key: str
    settings: TrainSettings
    train_seed: int


def sample_distinct(space: "SearchSpace", n: int, seed: int) -> list[str]:
    """The first ``n`` distinct keys drawn with ``random.Random(seed)``; a prefix of the list for a
    larger ``n``, so that growing a run only adds archs."""
    rng = random.Random(seed)
    keys: dict[str, None] = {}
    duplicates_in_a_row = 0
    while len(keys) < n:
        key = space.sample(rng)
        if key in keys:
            duplicates_in_a_row += 1
            if duplicates_in_a_row > _MAX_DUPLICATE_DRAWS:
                raise GroundTruthError(f"could only sample {len(keys)} distinct archs, fewer than --n {n}")
            continue
        duplicates_in_a_row = 0
        keys[key] = None
    return list(keys)


def run_settings(space_name: str, dataset: ImageDataset, settings: TrainSettings, seed: int,
                 train_seed: int) -> dict:
    """The record kept beside the CSV; everything that changes which archs or which accuracies."""
    return {"space": space_name, "dataset": dataset.name, "data_sha256": dataset.fingerprint(),
            "sample_seed": seed, "train_seed": train_seed, **settings.as_dict()}


def train_missing(space_name: str, dataset: ImageDataset, settings: TrainSettings, n: int, seed: int,
                  train_seed: int, out: Path, executor: str = "serial", workers: int = 1,
                  progress: bool = True) -> GroundTruthStore:
    """Train the first ``n`` sampled archs that ``out`` does not hold yet, appending each as it ends."""
    from autoproxy.spaces import get_space

    if n < 1:
        raise GroundTruthError(f"--n must be at least 1, got {n}")
    if workers < 1:
        raise GroundTruthError(f"--workers must be at least 1, got {workers}")
    space = get_space(space_name)
    store = GroundTruthStore(out, run_settings(space_name, dataset, settings, seed, train_seed))
    keys = sample_distinct(space, n, seed)
    jobs = [TrainJob(space_name, key, settings, train_seed) for key in keys if key not in store.done]
    if executor == "serial":
        results: Iterable[TrainResult] = (_run_job(job, dataset) for job in jobs)
    elif executor == "ray":
        results = _run_on_ray(jobs, dataset, workers)
    else:
        raise GroundTruthError(f"unknown executor {executor!r}: use serial or ray")
    with tqdm(total=len(keys), initial=len(keys) - len(jobs), unit="arch", disable=not progress,
              desc=f"training {space_name} on {dataset.name}") as bar:
        for result in results:
            store.append(result)
            bar.update(1)
    return store


def _run_job(job: TrainJob, dataset: ImageDataset) -> TrainResult:
    from autoproxy.spaces import get_space

    space = get_space(job.space_name)

    def build():
        return space.build(job.key, num_classes=dataset.num_classes, in_channels=dataset.in_channels,
                           width=job.settings.width, depth=job.settings.depth)

    return train_and_evaluate(build, job.key, dataset, job.settings, job.train_seed)


def _run_on_ray(jobs: list[TrainJob], dataset: ImageDataset, workers: int) -> Iterator[TrainResult]:
    """Yield results in the order they finish; the dataset goes to the object store once."""
    import ray

    if not jobs:
        return
    started_here = not ray.is_initialized()
    if started_here:
        # address="local": a private cluster even when another one runs on this machine
        ray.init(address="local", include_dashboard=False, num_cpus=workers,
                 object_store_memory=200 * 1024**2, log_to_driver=False)
    try:
        remote_job = ray.remote(num_cpus=1)(_run_job)
        dataset_ref = ray.put(dataset)
        pending = [remote_job.remote(job, dataset_ref) for job in jobs]
        while pending:
            finished, pending = ray.wait(pending, num_returns=1)
            yield ray.get(finished[0])
    finally:
        if started_here:
            ray.shutdown()
