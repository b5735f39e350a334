"""Smoke mode of the benchmark scripts: ``--smoke`` runs a script's real code path end to end on tiny
inputs in seconds, so that CI runs every script and none can rot unnoticed (tests/test_benchmarks_smoke.py).
Its figures mean nothing. What several scripts share lives here, once.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

SMOKE_HELP = "run the real code path on tiny inputs in seconds (CI); the figures mean nothing"
SMOKE_ARCHS = 8       # archs of a tiny cache
FEW_ARCHS = 3         # archs a smoke run computes afresh (3: the fewest a rank correlation needs)
# build_cache sizes of a tiny net: NB201 with 4 channels and 1 cell per stage, batch 8
TINY_NET: dict[str, int] = {"batch_size": 8, "width": 4, "depth": 1, "sub_batches": 2}
# search config changes for a search of a few seconds on a SMOKE_ARCHS-arch cache (train split: 4 archs);
# smoke searches also run serially, since starting Ray alone takes longer than the whole search
SMOKE_SEARCH: dict[str, Any] = {
    "population": 8, "generations": 2, "elites": 1, "subsets": 2, "subset_size": 4,
    "split_fractions": [0.5, 0.25, 0.25], "diversity_probe": 4, "max_height": 6, "max_size": 20,
    "init_max_depth": 3, "stability_inits": 1, "stability_batches": 1,
}


def tiny_cache(directory: Path, archs: int = SMOKE_ARCHS) -> Path:
    """A real statistics cache of ``archs`` NB201 cifar10 archs of the shared Suite-Zero file (real
    accuracies, so every script can compare with the file) on the shared cifar10 image sample, built
    in ``directory`` by the project's own ``build_cache`` with tiny nets. Leaves torch single-threaded for
    the rest of the run: on tiny tensors intra-op threads only contend (a build on a busy 2-core machine
    was 12 times slower with two)."""
    import torch

    from autoproxy.cache import build_cache
    from autoproxy.settings import shared_path

    torch.set_num_threads(1)
    out = directory / "nb201-cifar10-tiny"
    build_cache(out, shared_path("benchmarks", "zc_nasbench201.json"), space="nb201", task="cifar10",
                data=shared_path("data", "cifar10_sample.npz"), limit=archs, executor="serial",
                progress=False, echo=lambda line: None, **TINY_NET)
    return out
