"""End-to-end search runs on a tiny real cache: CLI, resume equivalence, interruption, Ray = serial."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from autoproxy.cli import main
from search.config import load_config
from search.engine import Engine
from search.runner import run_search
from search_support import tiny_cache

GENERATIONS = 3
SMALL = {
    "name": "tiny", "population": 8, "generations": GENERATIONS, "time_budget_s": None, "elites": 1,
    "subsets": 2, "subset_size": 4, "split_fractions": [0.5, 0.25, 0.25],
    "diversity_probe": 4, "max_height": 6, "max_size": 20, "init_max_depth": 3, "seed": 7, "executor": "serial",
}


@pytest.fixture(scope="module")
def cache_dir(request) -> str:
    return tiny_cache(request)


@pytest.fixture(scope="module")
def config_file(tmp_path_factory, cache_dir) -> str:
    path = tmp_path_factory.mktemp("config") / "tiny.json"
    path.write_text(json.dumps({**SMALL, "caches": [cache_dir]}))
    return str(path)


def search(*args: str) -> tuple[int, str]:
    outcome = CliRunner().invoke(main, ["search", "--quiet", *args])
    return outcome.exit_code, outcome.output


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, config_file) -> Path:
    """An uninterrupted serial run of GENERATIONS generations through the CLI."""
    out = tmp_path_factory.mktemp("runs")
    code, output = search("--config", config_file, "--out", str(out), "--name", "straight")
    assert code == 0, output
    return out / "straight"


def read(run: Path, name: str):
    return json.loads((run / name).read_text())


def test_cli_run_writes_every_artefact(reference_run):
    config = read(reference_run, "config.json")
    assert config["population"] == 8 and config["seed"] == 7
    log = [json.loads(line) for line in (reference_run / "log.jsonl").read_text().splitlines()]
    assert [line["generation"] for line in log] == list(range(GENERATIONS + 1))
    for line in log:
        assert {"best_fitness", "median_fitness", "valid_pct", "unique_pct", "evaluations_per_s",
                "elapsed_s"} <= set(line)
    hall = read(reference_run, "hall_of_fame.json")   # the Pareto front, simplest first
    assert hall and len({entry["key"] for entry in hall}) == len(hall)
    complexities, train = [e["complexity"] for e in hall], [e["train_fitness"] for e in hall]
    assert complexities == sorted(set(complexities)) and train == sorted(set(train))
    assert all(e["validation_fitness"] is not None or e["validation_per_task"] is None for e in hall)
    assert read(reference_run, "checkpoint.json")["generation"] == GENERATIONS
    result = read(reference_run, "result.json")
    assert result["chosen"]["key"] in {entry["key"] for entry in hall}
    assert result["front"] == hall
    choice = result["choice"]
    assert choice["metric"] == "spearman" and choice["best_validation"] >= choice["chosen_validation"]
    assert choice["gap"] == pytest.approx(choice["best_validation"] - choice["chosen_validation"])
    assert choice["gap"] == 0 or choice["gap"] < choice["gap_standard_error"]
    assert set(result["test"]["nb201-tiny"]) == {"kendall", "spearman"}
    stability = result["stability"]["nb201-tiny"]   # the default grid: init seeds 0..4 × batch seeds 0..2
    assert stability["split"] == "test" and len(stability["draws"]) == 15
    assert {"mean", "std"} <= set(stability["summary"]["spearman"]) and "total" in stability["undefined"]
    keys = [json.loads(line)["key"] for line in (reference_run / "evaluations.jsonl").read_text().splitlines()]
    assert len(keys) == len(set(keys)), "a canonical form was evaluated twice"


def test_parsimony_pressure_holds_the_population_smaller(tmp_path, config_file, reference_run):
    from search.expressions import complexity, parse

    def mean_complexity(run: Path) -> float:
        population = read(run, "checkpoint.json")["population"]
        return sum(complexity(parse(member["expression"])) for member in population) / len(population)

    config = load_config(config_file).replace(parsimony_coefficient=1.0, generations=6)
    run_search(config, tmp_path / "lean", progress=False)
    run_search(load_config(config_file).replace(generations=6), tmp_path / "free", progress=False)
    assert mean_complexity(tmp_path / "lean") < mean_complexity(tmp_path / "free")


def test_missing_cache_is_one_clear_error(tmp_path, config_file):
    code, output = search("--config", config_file, "--cache", str(tmp_path / "nowhere"), "--out", str(tmp_path))
    assert code == 2
    assert "nowhere" in output and "Traceback" not in output


def test_interrupted_then_resumed_run_matches_uninterrupted(tmp_path, config_file, reference_run, monkeypatch):
    original_step, calls = Engine.step, []

    def step_interrupted_in_generation_2(engine):
        calls.append(engine.generation)
        if len(calls) == 2:
            engine.executor.score(["net_params"])  # some work of the generation happens ...
            raise KeyboardInterrupt                # ... then Ctrl-C arrives
        original_step(engine)

    monkeypatch.setattr(Engine, "step", step_interrupted_in_generation_2)
    code, output = search("--config", config_file, "--out", str(tmp_path), "--name", "cut")
    assert code == 130 and "--resume" in output
    run = tmp_path / "cut"
    assert read(run, "checkpoint.json")["generation"] == 1
    assert not (run / "result.json").exists()
    monkeypatch.setattr(Engine, "step", original_step)

    code, output = search("--resume", str(run))
    assert code == 0, output
    assert read(run, "hall_of_fame.json") == read(reference_run, "hall_of_fame.json")
    assert read(run, "result.json")["chosen"] == read(reference_run, "result.json")["chosen"]
    generations = [json.loads(line)["generation"] for line in (run / "log.jsonl").read_text().splitlines()]
    assert generations == list(range(GENERATIONS + 1))


def test_extending_a_finished_run_equals_running_longer(tmp_path, config_file, reference_run):
    code, output = search("--config", config_file, "--out", str(tmp_path), "--name", "short", "--generations", "1")
    assert code == 0, output
    code, output = search("--resume", str(tmp_path / "short"), "--generations", str(GENERATIONS))
    assert code == 0, output
    assert read(tmp_path / "short", "hall_of_fame.json") == read(reference_run, "hall_of_fame.json")


def test_resume_refuses_to_change_what_the_run_finds(tmp_path, reference_run):
    code, output = search("--resume", str(reference_run), "--seed", "99")
    assert code == 2 and "seed" in output


def test_a_run_records_its_environment_and_a_resume_elsewhere_says_what_changed(tmp_path, config_file):
    from search.environment import current_environment

    code, output = search("--config", config_file, "--out", str(tmp_path), "--name", "moved", "--generations", "1")
    assert code == 0, output
    run = tmp_path / "moved"
    assert read(run, "environment.json") == current_environment() == read(run, "result.json")["environment"]
    code, output = search("--resume", str(run), "--generations", "2")
    assert code == 0 and "another environment" not in output
    started = current_environment()
    started["packages"]["sympy"] = "1.0"
    (run / "environment.json").write_text(json.dumps(started))
    code, output = search("--resume", str(run), "--generations", "3")
    assert code == 0, output
    assert f"started in another environment (sympy 1.0 -> {current_environment()['packages']['sympy']})" in output


@pytest.fixture(scope="module")
def ray_session():
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=100 * 2**20)
    yield
    ray.shutdown()


def test_ray_and_serial_executors_find_the_same(tmp_path, config_file, reference_run, ray_session):
    config = load_config(config_file).replace(executor="ray", workers=2)
    outcome = run_search(config, tmp_path / "ray", progress=False)
    assert outcome.stop_reason == "generations"
    assert read(tmp_path / "ray", "hall_of_fame.json") == read(reference_run, "hall_of_fame.json")
    assert outcome.result["chosen"] == read(reference_run, "result.json")["chosen"]


# Runs the CLI with a native write to file descriptor 1 before the search, as Ray's C++ core worker
# logs its warnings (`core_worker.cc ... max_restarts > 0`): past sys.stdout and Python logging.
NATIVE_NOISE_CLI = """
import os, sys
import search.runner
search_for_real = search.runner.run_search
def noisy(*args, **kwargs):
    os.write(1, b"core_worker.cc: native noise\\n")
    return search_for_real(*args, **kwargs)
search.runner.run_search = noisy
from autoproxy.cli import main
main(sys.argv[1:])
"""


def test_a_ray_search_prints_only_results_on_stdout(tmp_path, config_file):
    args = ["search", "--config", config_file, "--executor", "ray", "--workers", "1", "--generations", "1",
            "--quiet", "--out", str(tmp_path), "--name", "ray"]
    done = subprocess.run([sys.executable, "-c", NATIVE_NOISE_CLI, *args], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "native noise" in done.stderr
    assert "native noise" not in done.stdout and "core_worker" not in done.stdout and "\x1b" not in done.stdout
    assert done.stdout.startswith(f"run: {tmp_path / 'ray'} ("), done.stdout
