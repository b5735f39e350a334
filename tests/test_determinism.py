"""Same seed, same formula: runs in fresh processes with different ``PYTHONHASHSEED`` (so any draw from
an unordered collection shows up), serial and Ray, and with a kill -9 + ``--resume`` in between, write
identical journals, halls of fame and results."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from search_support import tiny_cache

CONFIG = {
    "name": "determinism", "population": 32, "generations": 8, "time_budget_s": None, "elites": 2,
    "subsets": 2, "subset_size": 4, "split_fractions": [0.5, 0.25, 0.25],
    "diversity_probe": 4, "max_height": 8, "max_size": 30, "init_max_depth": 4, "seed": 3,
    "executor": "serial",
}


@pytest.fixture(scope="module")
def config_file(request, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("config") / "determinism.json"
    path.write_text(json.dumps({**CONFIG, "caches": [tiny_cache(request)]}))
    return path


def start_search(hash_seed: int, *args: str) -> subprocess.Popen:
    """``autoproxy search`` in a fresh interpreter with the given string-hash seed."""
    env = {**os.environ, "PYTHONHASHSEED": str(hash_seed), "RAY_ADDRESS": ""}
    return subprocess.Popen([sys.executable, "-m", "autoproxy", "search", "--quiet", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def run_search(hash_seed: int, *args: str) -> None:
    process = start_search(hash_seed, *args)
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output


def outcome(run: Path) -> dict:
    """What a run found, without wall-clock fields."""
    result = json.loads((run / "result.json").read_text())
    result.pop("elapsed_s")
    return {"journal": (run / "evaluations.jsonl").read_text(),
            "hall": json.loads((run / "hall_of_fame.json").read_text()), "result": result}


@pytest.fixture(scope="module")
def reference(config_file, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("runs")
    run_search(1, "--config", str(config_file), "--out", str(out), "--name", "reference")
    return outcome(out / "reference")


def test_serial_runs_in_other_processes_agree(config_file, reference, tmp_path):
    run_search(2, "--config", str(config_file), "--out", str(tmp_path), "--name", "again")
    assert outcome(tmp_path / "again") == reference


def test_ray_run_agrees_with_serial(config_file, reference, tmp_path):
    run_search(3, "--config", str(config_file), "--out", str(tmp_path), "--name", "ray", "--executor", "ray",
               "--workers", "2")
    assert outcome(tmp_path / "ray") == reference


def test_killed_and_resumed_run_agrees(config_file, reference, tmp_path):
    run = tmp_path / "killed"
    process = start_search(4, "--config", str(config_file), "--out", str(tmp_path), "--name", "killed")
    checkpoint = run / "checkpoint.json"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if checkpoint.exists() and json.loads(checkpoint.read_text())["generation"] >= 2:
            break
        time.sleep(0.01)
    assert process.poll() is None, "the run finished before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (run / "result.json").exists()
    run_search(5, "--resume", str(run))
    assert outcome(run) == reference
