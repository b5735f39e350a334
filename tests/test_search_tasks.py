"""Caches of the same archs share splits; transfer caches are reported on archs no search saw."""
from __future__ import annotations

import json
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
    assigned = {("s", "a"): "test", ("s", "b"): "train", ("other", "c"): "test"}
    own = Splits(train=np.array([0, 2]), validation=np.array([1]), test=np.array([3]))
    splits = _shared_splits("s", ["a", "c", "b", "d"], own, assigned)
    assert [list(getattr(splits, name)) for name in ("train", "validation", "test")] == [[2], [1], [0, 3]]
    assert assigned == {("s", "a"): "test", ("s", "b"): "train", ("s", "c"): "validation", ("s", "d"): "test",
                        ("other", "c"): "test"}


def test_a_cache_of_another_space_is_split_as_in_a_run_of_its_own_space(twin_caches, tmp_path):
    """Multi-space runs keep each space's splits, so a transfer matrix's test archs are unseen by every row."""
    other = tmp_path / "other-space"
    shutil.copytree(twin_caches[0], other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["settings"]["space"] = "elsewhere"
    manifest["entries"].reverse()      # other positions: sharing keys with nb201's caches would show
    (other / "manifest.json").write_text(json.dumps(manifest))
    *_, mixed = load_tasks([*twin_caches, str(other)], (0.5, 0.25, 0.25), seed=3, pack_train=False)
    assert mixed.train_pack is None       # a report's tasks: the splits only
    (alone,) = load_tasks([str(other)], (0.5, 0.25, 0.25), seed=3)
    assert mixed.space == "elsewhere" and keys_of(alone, "test") != keys_of(load_tasks(twin_caches[:1], (0.5, 0.25, 0.25), 3)[0], "test")
    for split in ("train", "validation", "test"):
        assert keys_of(mixed, split) == keys_of(alone, split)


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


def test_a_split_scored_in_chunks_has_the_values_of_one_pack(twin_caches, monkeypatch):
    """Large splits are packed in chunks to bound memory, kept while they fit the budget and streamed
    beyond it; a value reads one arch, so neither chunks nor streaming change one."""
    from search import expressions

    task = load_tasks(twin_caches[:1], (0.5, 0.25, 0.25), seed=3, pack_train=False)[0]
    keys = task.split_keys("train")
    whole = expressions.SplitScorer(task.cache.load, keys)
    monkeypatch.setattr(expressions, "REPORT_CHUNK", 3)
    chunked = expressions.SplitScorer(task.cache.load, keys)
    streamed = expressions.SplitScorer(task.cache.load, keys, resident_bytes=0)
    assert len(whole.chunks) == 1 and len(chunked.chunks) == -(-len(keys) // 3) > 1
    assert np.array_equal(streamed.net_scalar("flops"), whole.net_scalar("flops"))   # read before any formula
    texts = ["net_params", "net_sum(eig_min(relu_kernel))", "logdet(net_ksum(mul(relu_kernel, input_post_relu)))",
             "net_sum(mul(node_sum(mean_batch(square(sum_pos(mul(act_out, grad_act_out))))), mul(fan_in, 0.5)))"]
    trees = [expressions.parse(text) for text in texts]
    expected = whole.values_of(trees)
    for scorer in (chunked, streamed):
        for text, values, reference in zip(texts, scorer.values_of(trees), expected):
            assert np.array_equal(values, reference), text
    assert len(chunked.resident) == len(chunked.chunks) and not streamed.resident
    monkeypatch.setattr(expressions, "REPORT_CHUNK", 1)
    first = expressions.SplitScorer(task.cache.load, keys[:1])
    first.values_of(trees[:1])
    budgeted = expressions.SplitScorer(task.cache.load, keys, resident_bytes=first.resident[0].packed.nbytes())
    budgeted.values_of(trees[:1])
    assert list(budgeted.resident) == [0] and len(budgeted.chunks) == len(keys) > 1   # the others stream
    assert np.array_equal(budgeted.values_of(trees)[3], expected[3])


def test_a_formula_a_chunk_rejects_is_void_on_the_whole_split(twin_caches, monkeypatch):
    """One rule for every chunk: linear algebra giving up on any chunk voids the split (None), as it did
    when the split was one pack, and the other formulas of the same call keep their values."""
    from search import expressions

    task = load_tasks(twin_caches[:1], (0.5, 0.25, 0.25), seed=3, pack_train=False)[0]
    monkeypatch.setattr(expressions, "REPORT_CHUNK", 3)
    scorer = expressions.SplitScorer(task.cache.load, task.split_keys("train"), resident_bytes=0)
    calls = []

    class Failing:   # rejects the formula on the second chunk only
        def __init__(self, part):
            self.part = part

        def values(self, tree):
            calls.append(1)
            if len(calls) == 2:
                raise RuntimeError("linalg.eigh: failed to converge")
            return self.part.values(tree)

    real = scorer._part
    monkeypatch.setattr(scorer, "_part", lambda chunk: Failing(real(chunk)))
    tree = expressions.parse("net_sum(eig_min(relu_kernel))")
    assert scorer.values_of([tree]) == [None]
