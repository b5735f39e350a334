"""The one rule for scoring a split (undefined archs rank last and are counted), the ranking figures,
and the stability report over weight initialisations × minibatches on real NB201 archs."""
from __future__ import annotations

import numpy as np
import pytest

from autoproxy.benchmark import load_benchmark
from autoproxy.cache import open_cache
from autoproxy.cache.build import select_records
from autoproxy.rank_metrics import (count_undefined, partial_spearman, ranking_figures, spearman_rho, top1_regret,
                                    undefined_last)
from autoproxy.registry import get_proxy
from autoproxy.settings import shared_path
from autoproxy.stability import Grid, Setup, measure_stability, summary_line
from search import expressions
from search.config import SearchConfig
from search.stability_report import ExpressionScorer, stability_report
from search_support import tiny_cache

CIFAR10 = str(shared_path("data", "cifar10_sample.npz"))
FULL_SIZE = Setup("nb201", 10, CIFAR10, batch_size=8)                      # the file's networks
TINY = Setup("nb201", 10, CIFAR10, batch_size=8, width=4, depth=1)         # fast, for seed effects


@pytest.fixture(scope="module")
def records(nb201_benchmark_path):
    return select_records(load_benchmark(nb201_benchmark_path, space="nb201", task="cifar10"), 0, 5)


def stability(scorer, setup, records, grid=Grid(5, 3)):
    return measure_stability(scorer, setup, [r.key for r in records], [r.accuracy for r in records], grid)


def test_undefined_archs_rank_last_and_are_counted():
    scores = np.array([0.3, np.nan, 0.9, -np.inf, 0.1, np.inf])
    ranked = undefined_last(scores)
    assert np.isfinite(ranked).all() and ranked[[0, 2, 4]].tolist() == [0.3, 0.9, 0.1]
    assert ranked[[1, 3, 5]].max() < ranked[[0, 2, 4]].min()
    assert count_undefined(scores) == 3
    accuracy = np.arange(6.0)
    figures = ranking_figures(scores, accuracy, np.arange(6.0), np.arange(6.0))
    assert figures["undefined"] == 3
    assert figures["spearman"] == pytest.approx(float(spearman_rho(ranked, accuracy)))
    assert figures["top1_regret"] == pytest.approx(3.0)   # the proxy's favourite is arch 2


def test_the_search_scores_splits_by_the_same_rule():
    class Values:   # a split scorer stand-in: raw per-arch values
        def values_of(self, trees):
            return [np.array([0.25, np.nan, 0.75, 0.125]) for _ in trees]

    assert expressions.report_scores(None, Values()).tolist() == undefined_last([0.25, np.nan, 0.75, 0.125]).tolist()


def test_partial_spearman_removes_what_size_explains():
    rng = np.random.default_rng(0)
    params = rng.random(40)
    flops = 2 * params + 0.1 * rng.random(40)
    accuracy = params + rng.random(40)
    assert partial_spearman(params, accuracy, [params, flops]) == pytest.approx(0.0, abs=1e-9)
    assert partial_spearman(accuracy, accuracy, [params, flops]) == pytest.approx(1.0)
    assert abs(partial_spearman(rng.random(40), accuracy, [params, flops])) < 0.5


def test_top1_regret_is_zero_only_for_the_best_pick():
    accuracy = np.array([90.0, 93.0, 91.5])
    assert top1_regret(accuracy, accuracy) == 0.0
    assert top1_regret(np.array([3.0, 1.0, 2.0]), accuracy) == pytest.approx(3.0)


def test_params_is_stable_and_agrees_with_the_file(records):
    report = stability(get_proxy("params"), FULL_SIZE, records).to_json()
    assert len(report["draws"]) == 15 and report["init_seeds"] == [0, 1, 2, 3, 4] and report["batch_seeds"] == [0, 1, 2]
    file_figures = ranking_figures(np.array([r.scores["params"] for r in records]),
                                   np.array([r.accuracy for r in records]), np.zeros(5), np.zeros(5))
    for name in ("spearman", "kendall", "top1_regret"):
        assert report["summary"][name]["std"] == pytest.approx(0.0, abs=1e-12)
        assert report["summary"][name]["mean"] == pytest.approx(file_figures[name])
    assert report["summary"]["partial_spearman"]["mean"] == pytest.approx(0.0, abs=1e-9)  # params out of params
    assert report["undefined"] == {"min": 0, "max": 0, "total": 0}


def test_snip_moves_with_the_draw_and_synflow_with_the_init_only(records):
    snip = stability(get_proxy("snip"), TINY, records, Grid(2, 2))
    report = snip.to_json()
    assert len(report["draws"]) == 4 and report["summary"]["spearman"]["std"] > 0
    assert "±" in summary_line(report) and "undefined (ranked last): 0 of 5 archs per draw" in summary_line(report)
    synflow = stability(get_proxy("synflow"), TINY, records, Grid(2, 2)).scores   # (archs, inits, batches)
    assert np.array_equal(synflow[:, :, 0], synflow[:, :, 1])                     # data-free: batches agree
    assert (synflow[:, 0, 0] != synflow[:, 1, 0]).all()                           # weights differ per init


def test_regret_of_accuracy_itself_is_zero(records):
    accuracy_of = {str(TINY.network(r.key, 0, 3)): r.accuracy for r in records}   # arch → its accuracy

    def oracle(model, inputs, targets):
        return accuracy_of[str(model)]

    report = stability(oracle, TINY, records, Grid(2, 1)).to_json()
    assert report["summary"]["top1_regret"] == {"mean": 0.0, "std": 0.0, "min": 0.0, "max": 0.0}
    assert report["summary"]["spearman"]["mean"] == pytest.approx(1.0)
    contrary = stability(lambda model, inputs, targets: -oracle(model, inputs, targets), TINY, records, Grid(2, 1))
    assert contrary.to_json()["summary"]["top1_regret"]["mean"] > 0


def test_undefined_scores_are_counted_per_draw(records):
    def undefined_on_first(model, inputs, targets):
        return float("nan") if str(model) == first else float(sum(p.numel() for p in model.parameters()))

    first = str(TINY.network(records[0].key, 0, 3))
    report = stability(undefined_on_first, TINY, records, Grid(1, 2)).to_json()
    assert report["undefined"] == {"min": 1, "max": 1, "total": 2}
    assert all(draw["undefined"] == 1 for draw in report["draws"])


def test_draw_of_the_cache_seed_reproduces_the_cache(request):
    """An expression scored on fresh networks at draw (seed, seed) of a cache built with ``seed`` gives
    the cache's value (up to its float16 storage)."""
    cache = open_cache(tiny_cache(request))
    settings, keys = cache.manifest.settings, cache.keys[:3]
    text = "net_sum(node_sum(abs(mul(weight, grad))))"
    scorer = ExpressionScorer(text, settings.sub_batches, settings.max_channels, settings.max_positions, settings.seed)
    setup = Setup(settings.space, settings.num_classes, cache.manifest.data_path, noise=settings.noise,
                  batch_size=settings.batch_size, width=settings.width, depth=settings.depth)
    inputs, targets = setup.minibatch(settings.seed)
    fresh = [scorer(setup.network(key, settings.seed, inputs.shape[1]), inputs, targets) for key in keys]
    cached = [expressions.arch_value(expressions.parse(text), statistics) for statistics in cache.load(keys)]
    assert fresh == pytest.approx(cached, rel=1e-2)


def test_a_zero_grid_disables_the_search_report():
    for changes in ({"stability_inits": 0}, {"stability_batches": 0}):
        assert stability_report("net_params", [], SearchConfig(**changes), executor=None) is None
