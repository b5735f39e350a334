"""Fitness, splits, diversity, config and run-store units of the search package (no evaluator needed)."""
from __future__ import annotations

import json
import random

import numpy as np
import pytest
from scipy.stats import kendalltau, spearmanr

from autoproxy.errors import ConfigError
from search.config import SearchConfig, config_from_dict, load_config, named_configs, parse_duration
from search.diversity import near_duplicates
from search.fitness import draw_subsets, kendall_tau, spearman_rho, split_archs, subset_fitness
from search.store import RunStore, rng_state_from_json, rng_state_to_json


@pytest.mark.parametrize("ties", [False, True])
def test_rank_correlations_match_scipy_batched(ties):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 30))
    y = rng.normal(size=(5, 30))
    if ties:
        x, y = np.round(x), np.round(y * 2)
    tau, rho = kendall_tau(x, y), spearman_rho(x, y)
    for row in range(5):
        assert tau[row] == pytest.approx(kendalltau(x[row], y[row]).statistic, abs=1e-12)
        assert rho[row] == pytest.approx(spearmanr(x[row], y[row]).statistic, abs=1e-12)


def test_correlation_of_constant_is_nan_and_counts_zero_in_subsets():
    assert np.isnan(kendall_tau(np.ones(5), np.arange(5.0)))
    assert np.isnan(spearman_rho(np.ones(5), np.arange(5.0)))
    scores = np.array([1.0, 1.0, 1.0, 5.0, 6.0])
    accuracy = np.arange(5.0)
    subsets = np.array([[0, 1, 2], [2, 3, 4]])
    assert subset_fitness(scores, accuracy, subsets, "kendall") == pytest.approx(0.5)


def test_splits_partition_and_are_seeded():
    splits = split_archs(50, (0.6, 0.2, 0.2), seed=3, task=1)
    together = np.concatenate([splits.train, splits.validation, splits.test])
    assert sorted(together) == list(range(50))
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (30, 10, 10)
    again = split_archs(50, (0.6, 0.2, 0.2), seed=3, task=1)
    assert np.array_equal(again.train, splits.train)
    assert not np.array_equal(split_archs(50, (0.6, 0.2, 0.2), seed=4, task=1).train, splits.train)


def test_subsets_are_deterministic_and_within_range():
    a = draw_subsets(30, 4, 20, seed=0, task=0, generation=2)
    assert a.shape == (4, 20) and a.max() < 30
    assert all(len(set(row)) == 20 for row in a)
    assert np.array_equal(a, draw_subsets(30, 4, 20, seed=0, task=0, generation=2))
    assert not np.array_equal(a, draw_subsets(30, 4, 20, seed=0, task=0, generation=3))
    assert draw_subsets(8, 2, 20, seed=0, task=0, generation=0).shape == (2, 8)


def test_near_duplicates_penalise_the_worse_of_equal_rankings():
    behaviours = [[1, 2, 3, 4], [1, 2, 3, 4], [4, 3, 2, 1], None]
    mask = near_duplicates([0.1, 0.5, 0.2, -2.0], behaviours, threshold=0.99)
    assert mask.tolist() == [True, False, False, False]


def test_named_configs_load_and_validate():
    assert {"nb201-cifar10", "nb201-multi", "nb301-cifar10", "multi-space"} <= set(named_configs())
    for name in named_configs():
        config = load_config(name)
        assert config.name == name and config_from_dict(config.to_dict(), source="roundtrip") == config
    assert load_config("nb201-multi").caches == ("caches/nb201-cifar10", "caches/nb201-cifar100", "caches/nb101-cifar10")
    assert load_config("multi-space").caches == ("caches/nb201-cifar10", "caches/nb101-cifar10", "caches/nb301-cifar10")


@pytest.mark.parametrize("data, culprit", [
    ({"populaton": 3}, "populaton"),
    ({"metric": "pearson"}, "metric"),
    ({"split_fractions": [0.5, 0.5, 0.5]}, "split_fractions"),
    ({"elites": 99}, "elites"),
    ({"generations": None, "time_budget_s": None}, "generations"),
    ({"mutation_weights": {"teleport": 1}}, "mutation_weights"),
    ({"stability_inits": -1}, "stability_inits"),
    ({"stability_batches": 1.5}, "stability_batches"),
])
def test_bad_config_names_the_culprit(data, culprit):
    with pytest.raises(ConfigError, match=culprit):
        config_from_dict(data, source="bad.json")


def test_unknown_config_name_is_one_clear_error():
    with pytest.raises(ConfigError, match="no-such-config"):
        load_config("no-such-config")


@pytest.mark.parametrize("text, seconds", [("24h", 86400), ("30m", 1800), ("90s", 90), ("1.5h", 5400), ("12", 12)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


def test_parse_duration_rejects_nonsense():
    with pytest.raises(ConfigError, match="fortnight"):
        parse_duration("fortnight")


def test_store_checkpoint_is_json_and_journal_truncates(tmp_path):
    store = RunStore(tmp_path / "run")
    store.create(SearchConfig(caches=("c",)))
    state = random.Random(1).getstate()
    store.append_evaluations([{"key": "a"}, {"key": "b"}])
    store.save_checkpoint({"generation": 0, "evaluations": 2, "python_random": rng_state_to_json(state)})
    store.append_evaluations([{"key": "c"}])  # a generation interrupted before its checkpoint
    loaded = store.load_checkpoint()
    assert json.loads(store.checkpoint_path.read_text())["generation"] == 0
    assert rng_state_from_json(loaded["python_random"]) == state
    assert [r["key"] for r in store.replay_evaluations(loaded["evaluations"])] == ["a", "b"]
    assert len(store.journal_path.read_text().splitlines()) == 2
    with pytest.raises(ConfigError, match="already holds a run"):
        store.create(SearchConfig(caches=("c",)))


def test_fitness_cache_finds_every_form_before_and_after_merging(monkeypatch):
    from search import fitness_cache
    from search.fitness_cache import FitnessCache

    monkeypatch.setattr(fitness_cache, "MERGE_AT", 7)
    cache, expected = FitnessCache(), {}
    for i in range(50):
        key = f"net_sum(node_sum(grad)) + {i}"
        cache.add(key, i / 10)
        expected[key] = i / 10
    assert len(cache) == 50 and len(cache._digests) == 49  # seven merges happened
    assert all(cache.get(key) == value for key, value in expected.items())
    assert cache.get("net_params") is None and "net_params" not in cache
