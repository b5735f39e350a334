"""Caches of the same archs share splits; transfer caches are reported on archs no search saw."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from search.config import config_from_dict
from search.fitness import Splits, split_archs
from search.runner import run_search
from search.tasks import _shared_splits, load_tasks
from search_support import tiny_cache


@pytest.fixture(scope="module")
def twin_caches(request, tmp_path_factory) -> tuple[str, str]:
    """The tiny cache and a copy of it under another name (the same archs, as a second seed's cache is)."""
    original = tiny_cache(request)
    twin = tmp_path_factory.mktemp("twin") / "nb201-twin"
    shutil.copytree(original, twin)
    return original, str(twin)


def keys_of(task, split: str) -> set[str]:
    return {task.keys[i] for i in getattr(task.splits, split)}


def test_caches_of_the_same_archs_share_every_split(twin_caches):
    first, second = load_tasks(twin_caches, (0.5, 0.25, 0.25), seed=3)
    for split in ("train", "validation", "test"):
        assert keys_of(first, split) == keys_of(second, split)
    own = split_archs(len(second.keys), (0.5, 0.25, 0.25), seed=3, task=1)   # what task 1 would draw alone
    assert {second.keys[i] for i in own.test} != keys_of(second, "test")


def test_archs_new_to_a_cache_keep_its_own_split_and_known_ones_move():
    assigned = {"a": "test", "b": "train"}
    own = Splits(train=np.array([0, 2]), validation=np.array([1]), test=np.array([3]))
    splits = _shared_splits(["a", "c", "b", "d"], own, assigned)
    assert [list(getattr(splits, name)) for name in ("train", "validation", "test")] == [[2], [1], [0, 3]]
    assert assigned == {"a": "test", "b": "train", "c": "validation", "d": "test"}


def test_the_final_report_scores_transfer_caches_on_unseen_archs_only(twin_caches, tmp_path):
    config = config_from_dict({"name": "tiny", "population": 6, "generations": 1, "elites": 1, "subset_size": 4,
                               "split_fractions": [0.5, 0.25, 0.25], "diversity_probe": 4, "max_height": 6,
                               "max_size": 20, "init_max_depth": 3, "seed": 7, "executor": "serial",
                               "stability_inits": 0, "caches": [twin_caches[0]],
                               "transfer_caches": [twin_caches[1]]}, "test")
    result = run_search(config, tmp_path / "run", progress=False).result
    (task,) = load_tasks(config.caches, config.split_fractions, config.seed)
    transfer = result["transfer"][Path(twin_caches[1]).name]
    assert transfer["archs"] == len(task.splits.test)
    assert (transfer["kendall"], transfer["spearman"]) == pytest.approx(
        (result["test"][task.name]["kendall"], result["test"][task.name]["spearman"]))
