"""``autoproxy evaluate``: proxies computed directly on benchmark networks, compared with the file."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from autoproxy.cli import main
from autoproxy.registry import REGISTRY_ENV, proxy_document, save_proxy
from autoproxy.settings import shared_path
from primitives.reference import reference_tree

DATA = {"cifar10": shared_path("data", "cifar10_sample.npz"), "cifar100": shared_path("data", "cifar100_sample.npz")}


def evaluate(benchmark, *args: str) -> tuple[int, str]:
    outcome = CliRunner().invoke(main, ["evaluate", "--benchmark", str(benchmark), "--space", "nb201", *args])
    return outcome.exit_code, outcome.output


def test_params_proxy_agrees_exactly_with_the_file(nb201_benchmark_path, tmp_path):
    for task in ("cifar10", "cifar100"):   # the classifier's size follows the task's class count
        out = tmp_path / f"{task}.json"
        code, output = evaluate(nb201_benchmark_path, "--task", task, "--proxy", "params", "--data", str(DATA[task]),
                                "--limit", "4", "--batch-size", "8", "--json", str(out))
        assert code == 0, output
        result = json.loads(out.read_text())
        assert len(result["stability"]["draws"]) == 15      # the default grid: 5 inits × 3 batches
        archs = result["archs"]
        assert len(archs) == 4
        for arch in archs:   # every draw, init by batch
            rounded = [[round(score, 6) for score in row] for row in arch["scores"]]
            assert rounded == [[arch["reference"]["params"]] * 3] * 5
        spearman = result["stability"]["summary"]["spearman"]["mean"]
        assert spearman == pytest.approx(result["references"]["params"]["spearman"])


def test_evaluate_reports_mean_and_std_next_to_the_reference_proxies(nb201_benchmark_path, tmp_path):
    out = tmp_path / "nwot.json"
    code, output = evaluate(nb201_benchmark_path, "--task", "cifar10", "--proxy", "nwot", "--data",
                            str(DATA["cifar10"]), "--limit", "6", "--batch-size", "8", "--inits", "2", "--batches", "2",
                            "--json", str(out))
    assert code == 0, output
    assert "draws: 4 (init seeds 0–1 × batch seeds 0–1)" in output
    assert "undefined (ranked last): 0 of 6 archs per draw" in output
    for label in ("spearman ρ", "kendall τ", "partial ρ", "top-1 regret", "P@5", "BR@5"):
        assert any(line.strip().startswith(label) and "±" in line for line in output.splitlines()), label
    assert "nwot       ρ" in output and "(0 of 6 undefined)  <-" in output
    result = json.loads(out.read_text())
    assert [(d["init_seed"], d["batch_seed"]) for d in result["stability"]["draws"]] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert all(-1 <= d["spearman"] <= 1 and d["undefined"] == 0 for d in result["stability"]["draws"])
    assert set(result["references"]) >= {"nwot", "params", "synflow"}
    assert all(score is not None for a in result["archs"] for row in a["scores"] for score in row)


def test_evaluate_a_registry_expression_file(nb201_benchmark_path, tmp_path, monkeypatch):
    monkeypatch.setenv(REGISTRY_ENV, str(tmp_path / "registry"))
    path = save_proxy(proxy_document("my_synflow", reference_tree("synflow")))
    for proxy in ("my_synflow", str(path)):
        code, output = evaluate(nb201_benchmark_path, "--task", "cifar10", "--proxy", proxy, "--limit", "3",
                                "--batch-size", "4", "--inits", "1", "--batches", "1")
        assert code == 0, output
        assert "my_synflow on nb201/cifar10 (10 classes): 3 archs, draws: 1 (init seeds 0 × batch seeds 0)" in output


def test_unknown_proxy_and_task_are_one_line_errors(nb201_benchmark_path):
    code, output = evaluate(nb201_benchmark_path, "--task", "cifar10", "--proxy", "nope", "--limit", "2")
    assert code == 2 and output.strip().startswith("error: unknown proxy 'nope'")
    code, output = evaluate(nb201_benchmark_path, "--task", "svhn", "--proxy", "params", "--limit", "2")
    assert code == 2 and output.count("\n") == 1
