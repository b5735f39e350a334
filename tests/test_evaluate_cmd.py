"""``autoproxy evaluate``: proxies computed directly on benchmark networks, compared with the file."""
from __future__ import annotations

import json

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
        archs = json.loads(out.read_text())["archs"]
        assert len(archs) == 4
        assert [round(a["score"], 6) for a in archs] == [a["reference"]["params"] for a in archs]


def test_evaluate_reports_correlations_next_to_the_reference_proxies(nb201_benchmark_path, tmp_path):
    out = tmp_path / "nwot.json"
    code, output = evaluate(nb201_benchmark_path, "--task", "cifar10", "--proxy", "nwot", "--data",
                            str(DATA["cifar10"]), "--limit", "6", "--batch-size", "8", "--json", str(out))
    assert code == 0, output
    assert "spearman ρ" in output and "P@5" in output and "BR@5" in output
    assert "nwot       ρ" in output and "(6 archs)  <-" in output
    result = json.loads(out.read_text())
    assert -1 <= result["spearman"] <= 1 and set(result["references"]) >= {"nwot", "params", "synflow"}
    assert all(a["score"] is not None for a in result["archs"])


def test_evaluate_a_registry_expression_file(nb201_benchmark_path, tmp_path, monkeypatch):
    monkeypatch.setenv(REGISTRY_ENV, str(tmp_path / "registry"))
    path = save_proxy(proxy_document("my_synflow", reference_tree("synflow")))
    for proxy in ("my_synflow", str(path)):
        code, output = evaluate(nb201_benchmark_path, "--task", "cifar10", "--proxy", proxy, "--limit", "3",
                                "--batch-size", "4")
        assert code == 0, output
        assert "my_synflow on nb201/cifar10 (10 classes): 3 archs, 3 finite scores" in output


def test_unknown_proxy_and_task_are_one_line_errors(nb201_benchmark_path):
    code, output = evaluate(nb201_benchmark_path, "--task", "cifar10", "--proxy", "nope", "--limit", "2")
    assert code == 2 and output.strip().startswith("error: unknown proxy 'nope'")
    code, output = evaluate(nb201_benchmark_path, "--task", "svhn", "--proxy", "params", "--limit", "2")
    assert code == 2 and output.count("\n") == 1
