"""``autoproxy try``: formula, rank correlations with accuracy, invalid expressions and bad input."""
from __future__ import annotations

import pytest
from click.testing import CliRunner
from scipy.stats import kendalltau, spearmanr

from autoproxy.cli import main
from search_support import ARCHS, tiny_cache


@pytest.fixture(scope="module")
def cache_dir(request) -> str:
    return tiny_cache(request)


def _fields(output: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in output.strip().splitlines())


def test_reference_proxy_by_name_gives_its_correlations(cache_dir):
    from autoproxy.cache import open_cache
    from primitives.evaluate import evaluate
    from primitives.packed import pack
    from primitives.reference import reference_tree

    result = CliRunner().invoke(main, ["try", "snip", "--cache", cache_dir])
    assert result.exit_code == 0, result.output
    fields = _fields(result.output)
    assert fields["expression"] == "net_sum(node_sum(abs(mul(weight, grad))))"
    assert fields["simplified"] == "net_sum(node_sum(Abs(grad*weight)))"
    assert fields["archs"] == str(ARCHS)
    cache = open_cache(cache_dir)
    scores = evaluate(reference_tree("snip"), pack(cache.load())).scores.double().numpy()
    accuracy = [cache.accuracy[key] for key in cache.keys]
    assert float(fields["kendall_tau"]) == pytest.approx(kendalltau(scores, accuracy)[0], abs=1e-4)
    assert float(fields["spearman_rho"]) == pytest.approx(spearmanr(scores, accuracy)[0], abs=1e-4)


def test_limit_and_metric_select_archs_and_lines(cache_dir):
    result = CliRunner().invoke(main, ["try", "net_sum(node_l2(grad))", "--cache", cache_dir,
                                       "--limit", "5", "--metric", "kendall"])
    assert result.exit_code == 0, result.output
    fields = _fields(result.output)
    assert fields["archs"] == "5" and "kendall_tau" in fields and "spearman_rho" not in fields


def test_invalid_expression_says_why(cache_dir):
    result = CliRunner().invoke(main, ["try", "div(num_nodes, num_nodes)", "--cache", cache_dir])
    assert result.exit_code == 1
    assert _fields(result.output)["valid"] == "no (constant)"


def test_unknown_primitive_is_one_error_line(cache_dir):
    result = CliRunner().invoke(main, ["try", "net_sum(frobnicate(weight))", "--cache", cache_dir])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "frobnicate" in lines[0] and lines[0].startswith("error:")


def test_too_deep_expression_is_one_error_line_naming_the_limit(tmp_path):
    from primitives.parse import MAX_DEPTH

    expression = "net_sum(node_sum(" + "abs(" * 2998 + "weight" + ")" * 3000
    result = CliRunner().invoke(main, ["try", expression, "--cache", str(tmp_path)])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and f"deeper than {MAX_DEPTH} calls" in lines[0]


def test_several_caches_give_one_block_each(cache_dir):
    single = _fields(CliRunner().invoke(main, ["try", "nwot", "--cache", cache_dir]).output)
    result = CliRunner().invoke(main, ["try", "nwot", "--cache", cache_dir, "--cache", cache_dir])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    blocks = [i for i, line in enumerate(lines) if line == f"cache: {cache_dir}"]
    assert len(blocks) == 2
    for start in blocks:
        block = dict(line.split(": ", 1) for line in lines[start + 1:start + 5])
        assert block == {k: single[k] for k in ("archs", "undefined archs (ranked last)", "kendall_tau", "spearman_rho")}
