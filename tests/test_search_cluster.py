"""A two-node Ray cluster on this machine (head + worker, one CPU each): `--ray-address` finds what the
serial executor finds. Deselect with ``-m "not cluster"``.

The nodes run with ``ray start --block`` so that the test stops exactly the processes it started
(by their ids) instead of ``ray stop``, which would end every Ray process on the machine.
"""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from autoproxy.cli import main
from search_support import tiny_cache

RAY = str(Path(sys.executable).with_name("ray"))
AUTOPROXY = str(Path(sys.executable).with_name("autoproxy"))
CONFIG = {
    "name": "tiny", "population": 8, "generations": 2, "time_budget_s": None, "elites": 1,
    "subsets": 2, "subset_size": 4, "split_fractions": [0.5, 0.25, 0.25], "diversity_probe": 4, "max_height": 6,
    "max_size": 20, "init_max_depth": 3, "seed": 3,
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_node(*args: str) -> subprocess.Popen:
    return subprocess.Popen([RAY, "start", "--block", "--num-cpus=1", "--disable-usage-stats",
                             "--node-ip-address=127.0.0.1", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_for_cpus(address: str, cpus: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = subprocess.run([RAY, "status", f"--address={address}"], capture_output=True, text=True)
        if f"/{cpus}.0 CPU" in status.stdout:
            return
        time.sleep(1.0)
    raise TimeoutError(f"the Ray cluster at {address} did not reach {cpus} CPUs")


@pytest.mark.cluster
def test_cluster_run_equals_serial_run(request, tmp_path, monkeypatch):
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # Ray >= 2.5x enables token auth for `ray start`
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({**CONFIG, "caches": [tiny_cache(request)]}))
    runner = CliRunner()
    serial = runner.invoke(main, ["search", "--quiet", "--config", str(config), "--out", str(tmp_path),
                                  "--name", "serial", "--executor", "serial"])
    assert serial.exit_code == 0, serial.output

    port = free_port()
    address = f"127.0.0.1:{port}"
    nodes = [start_node("--head", f"--port={port}", "--include-dashboard=false")]
    try:
        wait_for_cpus(address, 1)
        nodes.append(start_node(f"--address={address}"))
        wait_for_cpus(address, 2)
        # a separate driver process, as a user's would be (and free of Ray state left by other tests)
        cluster = subprocess.run([AUTOPROXY, "search", "--quiet", "--config", str(config), "--out", str(tmp_path),
                                  "--name", "cluster", "--executor", "ray", "--ray-address", address],
                                 capture_output=True, text=True, timeout=300)
    finally:
        for node in reversed(nodes):
            node.terminate()
            node.wait(timeout=60)
    assert cluster.returncode == 0, cluster.stderr[-2000:]
    for name in ("hall_of_fame.json", "result.json"):
        serial_doc = json.loads((tmp_path / "serial" / name).read_text())
        cluster_doc = json.loads((tmp_path / "cluster" / name).read_text())
        if name == "result.json":
            serial_doc, cluster_doc = serial_doc["chosen"], cluster_doc["chosen"]
        assert serial_doc == cluster_doc
