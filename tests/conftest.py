"""Shared fixtures: where the real NAS-Bench-Suite-Zero ground truth lives."""
from __future__ import annotations

from pathlib import Path

import pytest

from autoproxy.settings import shared_path


def _shared_benchmark(name: str) -> Path:
    path = shared_path("benchmarks", name)
    if not path.is_file():
        pytest.fail(f"shared benchmark file missing: {path} (set AUTOPROXY_SHARED)")
    return path


@pytest.fixture(scope="module")
def one_torch_thread_per_module():
    """Tiny nets and small SVDs: on a shared 2-core machine a second intra-op thread makes them many
    times slower (``matrix_rank`` hundreds of times)."""
    from autoproxy.torch_threads import one_torch_thread

    with one_torch_thread():
        yield


@pytest.fixture(scope="session")
def nb201_benchmark_path() -> Path:
    """NAS-Bench-201 ground truth: cifar10 (506 archs) and cifar100 (507 archs)."""
    return _shared_benchmark("zc_nasbench201.json")


@pytest.fixture(scope="session")
def nb101_benchmark_path() -> Path:
    """NAS-Bench-101 ground truth: cifar10 (350 archs)."""
    return _shared_benchmark("zc_nasbench101.json")


@pytest.fixture(scope="session")
def nb301_benchmark_path() -> Path:
    """NAS-Bench-301 ground truth: cifar10 (507 archs); the file has no search-space level."""
    return _shared_benchmark("zc_nasbench301.json")
