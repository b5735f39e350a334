"""The statistics cache: round trips, resuming, corruption handling, settings checks, the CLI."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from autoproxy.cache import build_cache, open_cache
from autoproxy.cache.files import entry_file_name
from autoproxy.cache.store import encode_entry, read_entry
from autoproxy.cli import main
from autoproxy.errors import CacheError
from autoproxy.statistics import NetworkStatistics, NodeStatistics

KEYS = ["(0, 2, 1, 1, 1, 0)", "(3, 1, 0, 1, 4, 0)", "(0, 1, 1, 3, 0, 0)", "(4, 0, 2, 1, 1, 0)"]
SMALL = dict(space="nb201", task="cifar10", batch_size=8, width=4, depth=1, sub_batches=2,
             executor="serial", progress=False, echo=lambda line: None)


def write_benchmark(path, keys) -> str:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["arch", "accuracy", "space", "task"])
        writer.writerows([key, 80.0 + i, "nb201", "cifar10"] for i, key in enumerate(keys))
    return str(path)


pytestmark = pytest.mark.usefixtures("one_torch_thread_per_module")


@pytest.fixture
def benchmark(tmp_path) -> str:
    return write_benchmark(tmp_path / "bench.csv", KEYS)


def hand_made_statistics(rng: np.random.Generator) -> NetworkStatistics:
    """Values over 60 decades, signs, zeros and non-finite markers: what float16 storage must survive."""
    def tensor(*shape, scale=1.0):
        return torch.from_numpy((rng.standard_normal(shape) * scale).astype(np.float32))

    huge = tensor(50, scale=1e30)
    huge[3] = 0.0
    huge[4] = float("inf")
    node = NodeStatistics(name="cells.0.conv", kind="conv",
                          tensors={"weight": tensor(36), "synflow_grad": huge, "grad": tensor(36, scale=1e-25),
                                   "act_out": tensor(2, 3, 4), "relu_kernel": tensor(2, 2)},
                          scalars={"params": 36.0, "depth": 0.0})
    linear = NodeStatistics(name="classifier", kind="linear", tensors={"weight": tensor(20)},
                            scalars={"params": 30.0, "depth": 1.0})
    return NetworkStatistics(nodes=[node, linear], tensors={"jacobian_corr": tensor(2, 2)},
                             scalars={"params": 66.0, "jacobian_norm": float("nan")})


def roundtrip(tmp_path, stats, dtype) -> NetworkStatistics:
    path = tmp_path / "entry.safetensors"
    path.write_bytes(encode_entry("(0, 1)", stats, dtype))
    return read_entry(path, "(0, 1)")


def assert_same_layout(a: NetworkStatistics, b: NetworkStatistics) -> None:
    assert [(n.name, n.kind, n.scalars.keys(), n.tensors.keys()) for n in a.nodes] == \
        [(n.name, n.kind, n.scalars.keys(), n.tensors.keys()) for n in b.nodes]
    assert a.tensors.keys() == b.tensors.keys()


def all_tensors(stats: NetworkStatistics) -> dict[str, torch.Tensor]:
    named = {f"net/{stat}": t for stat, t in stats.tensors.items()}
    named.update({f"node/{i}/{stat}": t for i, n in enumerate(stats.nodes) for stat, t in n.tensors.items()})
    return named


def assert_close_tensors(a: NetworkStatistics, b: NetworkStatistics, **tolerance) -> None:
    expected, actual = all_tensors(a), all_tensors(b)
    assert expected.keys() == actual.keys()
    for name, tensor in expected.items():
        assert actual[name].dtype == torch.float32, name
        torch.testing.assert_close(actual[name], tensor, equal_nan=True, msg=name, **tolerance)


def test_float32_round_trip_is_exact(tmp_path):
    stats = hand_made_statistics(np.random.default_rng(0))
    back = roundtrip(tmp_path, stats, "float32")
    assert_same_layout(stats, back)
    assert_close_tensors(stats, back, rtol=0, atol=0)
    assert back.nodes[0].scalars == stats.nodes[0].scalars
    assert np.isnan(back.scalars["jacobian_norm"])


def test_float16_round_trip_keeps_three_digits_at_any_magnitude(tmp_path):
    stats = hand_made_statistics(np.random.default_rng(1))
    back = roundtrip(tmp_path, stats, "float16")
    assert_same_layout(stats, back)
    assert_close_tensors(stats, back, rtol=1e-3, atol=0)
    assert back.nodes[0].tensors["synflow_grad"].abs().max() > 1e29  # not clipped at float16's 65504


def test_build_writes_manifest_and_loads_float32(tmp_path, benchmark):
    summary = build_cache(tmp_path / "c", benchmark, dtype="float32", limit=2, **SMALL)
    assert (summary.built, summary.reused, summary.failed) == (2, 0, [])
    cache = open_cache(tmp_path / "c")
    manifest = json.loads((tmp_path / "c" / "manifest.json").read_text())
    assert manifest["settings"]["batch_size"] == 8 and manifest["settings"]["max_channels"] == 8
    assert [e["key"] for e in manifest["entries"]] == cache.keys and len(cache.keys) == 2
    assert cache.accuracy[cache.keys[0]] == 80.0 + KEYS.index(cache.keys[0])
    assert cache.verify() == []
    (stats,) = cache.load([cache.keys[0]])
    assert stats.nodes[0].tensors["grad"].dtype == torch.float32
    assert stats.nodes[-1].kind == "linear" and stats.tensors["jacobian_corr"].shape == (8, 8)
    assert stats.nodes[0].tensors["act_out"].shape[1:] == (4, 8)  # 4 channels (all), 8 of 1024 positions


def test_resume_builds_only_missing_entries(tmp_path, benchmark):
    first = build_cache(tmp_path / "c", benchmark, limit=2, **SMALL)
    files = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "c").glob("*.safetensors")}
    second = build_cache(tmp_path / "c", benchmark, limit=4, **SMALL)
    assert (first.built, second.built, second.reused) == (2, 2, 2)
    keys = open_cache(tmp_path / "c").keys
    assert sorted(keys) == sorted(KEYS) and len(set(keys)) == 4
    for name, mtime in files.items():
        assert (tmp_path / "c" / name).stat().st_mtime_ns == mtime
    assert build_cache(tmp_path / "c", benchmark, limit=4, **SMALL).built == 0


@pytest.mark.parametrize("damage", ["flip_byte", "truncate", "delete"])
def test_damaged_entry_is_detected_and_rebuilt(tmp_path, benchmark, damage):
    build_cache(tmp_path / "c", benchmark, limit=2, **SMALL)
    cache = open_cache(tmp_path / "c")
    victim = cache.keys[1]
    path = tmp_path / "c" / entry_file_name(victim)
    data = bytearray(path.read_bytes())
    if damage == "flip_byte":
        data[-10] ^= 0xFF
        path.write_bytes(bytes(data))
    elif damage == "truncate":
        path.write_bytes(bytes(data[: len(data) // 2]))
    else:
        path.unlink()
    assert cache.verify() == [victim]
    with pytest.raises(CacheError, match=rf"{victim}.*{path.name}"):
        cache.load()
    cache.load([cache.keys[0]])  # the healthy entry still loads
    summary = build_cache(tmp_path / "c", benchmark, limit=2, **SMALL)
    assert (summary.built, summary.reused) == (1, 1)
    assert open_cache(tmp_path / "c").verify() == []


def test_truncated_entry_fails_to_parse_even_unverified(tmp_path, benchmark):
    build_cache(tmp_path / "c", benchmark, limit=1, **SMALL)
    cache = open_cache(tmp_path / "c")
    path = tmp_path / "c" / entry_file_name(cache.keys[0])
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CacheError, match="corrupt"):
        cache.load(verify=False)


def test_truncated_manifest_is_refused_by_loader_and_rebuilt_by_builder(tmp_path, benchmark):
    build_cache(tmp_path / "c", benchmark, limit=2, **SMALL)
    manifest = tmp_path / "c" / "manifest.json"
    manifest.write_text(manifest.read_text()[:50])
    with pytest.raises(CacheError, match="manifest.json is unreadable"):
        open_cache(tmp_path / "c")
    lines = []
    summary = build_cache(tmp_path / "c", benchmark, limit=2, **{**SMALL, "echo": lines.append})
    assert summary.built == 2 and "unreadable" in lines[0]
    assert open_cache(tmp_path / "c").verify() == []


@pytest.mark.parametrize("change", [{"batch_size": 4}, {"seed": 1}, {"dtype": "float32"}, {"max_positions": 16}])
def test_other_settings_are_refused(tmp_path, benchmark, change):
    build_cache(tmp_path / "c", benchmark, limit=1, **SMALL)
    setting = next(iter(change))
    with pytest.raises(CacheError, match=rf"other settings \({setting} "):
        build_cache(tmp_path / "c", benchmark, limit=1, **{**SMALL, **change})
    assert len(open_cache(tmp_path / "c").keys) == 1


def test_unbuildable_arch_is_skipped_and_named(tmp_path):
    bench = write_benchmark(tmp_path / "bench.csv", [KEYS[0], "(9, 9, 9, 9, 9, 9)"])
    summary = build_cache(tmp_path / "c", bench, **SMALL)
    assert summary.built == 1
    assert [key for key, _ in summary.failed] == ["(9, 9, 9, 9, 9, 9)"]
    assert open_cache(tmp_path / "c").keys == [KEYS[0]]


def write_images(path, labels) -> str:
    """A tiny images file: one random 8x8 RGB image per label."""
    images = np.random.default_rng(0).integers(0, 256, (len(labels), 8, 8, 3), dtype=np.uint8)
    np.savez(path, images=images, labels=np.array(labels, np.int64))
    return str(path)


def test_images_with_labels_beyond_the_task_are_refused_before_building(tmp_path, benchmark):
    images = write_images(tmp_path / "imagenet.npz", [0, 949, 3])
    with pytest.raises(CacheError, match="labels up to 949, but task 'cifar10' has 10 classes"):
        build_cache(tmp_path / "c", benchmark, data=images, **SMALL)
    assert not (tmp_path / "c").exists()


def test_build_stops_when_its_first_archs_fail_alike_and_keeps_what_it_built(tmp_path, monkeypatch):
    import autoproxy.statistics

    bench = write_benchmark(tmp_path / "bench.csv", [*KEYS, "(1, 4, 0, 2, 0, 3)", "(3, 3, 3, 1, 0, 3)"])
    build_cache(tmp_path / "c", bench, limit=1, **SMALL)
    attempts = []

    def broken(*args, **kwargs):
        attempts.append(1)
        raise IndexError("Target 949 is out of bounds.")

    monkeypatch.setattr(autoproxy.statistics, "compute_statistics", broken)
    with pytest.raises(CacheError, match=r"first 3 archs all failed with IndexError: Target 949 .* keeps its 1 "):
        build_cache(tmp_path / "c", bench, **SMALL)
    assert len(attempts) == 3
    assert len(open_cache(tmp_path / "c").keys) == 1


def test_serial_build_computes_on_one_torch_thread_like_a_ray_worker(tmp_path, benchmark, monkeypatch):
    """Intra-op threads made a serial build 10x slower per arch than one Ray worker on a busy machine."""
    import autoproxy.statistics

    compute, threads = autoproxy.statistics.compute_statistics, []

    def recording(*args, **kwargs):
        threads.append(torch.get_num_threads())
        return compute(*args, **kwargs)

    monkeypatch.setattr(autoproxy.statistics, "compute_statistics", recording)
    torch.set_num_threads(2)                # the caller's setting
    try:
        build_cache(tmp_path / "c", benchmark, limit=2, **SMALL)
        restored = torch.get_num_threads()
    finally:
        torch.set_num_threads(1)            # the module's setting
    assert threads == [1, 1] and restored == 2


def test_cli_build_with_a_skipped_arch_exits_1_and_keeps_the_others(tmp_path):
    bench = write_benchmark(tmp_path / "bench.csv", [KEYS[0], "(9, 9, 9, 9, 9, 9)"])
    out = str(tmp_path / "c")
    args = ["cache", "build", "--benchmark", bench, "--space", "nb201", "--task", "cifar10", "--batch-size", "8",
            "--width", "4", "--depth", "1", "--sub-batches", "2", "--executor", "serial", "--out", out]
    for reused in (0, 1):                  # a rerun continues: the good arch is kept, the bad one retried
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 1, result.output
        assert f"1 archs ({1 - reused} built, {reused} reused, 1 failed)" in result.stdout
        assert result.stderr.splitlines()[-1].startswith("1 archs skipped: first reason (arch (9, 9, 9, 9, 9, 9)): ")
        assert open_cache(out).keys == [KEYS[0]]


def test_cli_build_with_a_text_file_as_data_names_it(tmp_path, benchmark):
    text = tmp_path / "notes.txt"
    text.write_text("these are not images\n")
    result = CliRunner().invoke(main, ["cache", "build", "--benchmark", benchmark, "--space", "nb201", "--task",
                                       "cifar10", "--data", str(text), "--out", str(tmp_path / "c")])
    assert result.exit_code == 2
    assert result.output.strip() == (f"error: {text} is not an .npz images file (an .npz is a zip archive of "
                                     f"numpy arrays; this file starts with b'thes')")


def test_subset_is_deterministic_and_checked(tmp_path, benchmark):
    build_cache(tmp_path / "c", benchmark, limit=3, **SMALL)
    cache = open_cache(tmp_path / "c")
    subset = cache.subset(2, seed=5)
    assert subset == open_cache(tmp_path / "c").subset(2, seed=5)
    assert len(set(subset)) == 2 and set(subset) <= set(cache.keys)
    with pytest.raises(CacheError, match="subset of 4"):
        cache.subset(4)


def test_open_cache_without_manifest(tmp_path):
    with pytest.raises(CacheError, match="manifest.json is missing"):
        open_cache(tmp_path)


def test_cli_build_verify_and_mismatch(tmp_path, benchmark):
    out = str(tmp_path / "c")
    args = ["cache", "build", "--benchmark", benchmark, "--space", "nb201", "--task", "cifar10",
            "--batch-size", "8", "--width", "4", "--depth", "1", "--sub-batches", "2", "--limit", "1",
            "--executor", "serial", "--out", out]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "1 archs (1 built, 0 reused, 0 failed)" in result.output
    result = CliRunner().invoke(main, ["cache", "verify", out])
    assert result.exit_code == 0 and "1 of 1 entries verified" in result.output
    result = CliRunner().invoke(main, [*args, "--seed", "3"])
    assert result.exit_code == 2 and "other settings (seed 0 (cache) vs 3 (requested))" in result.output


@pytest.fixture(scope="module")
def ray_session():
    ray = pytest.importorskip("ray")
    ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=100 * 1024**2,
             log_to_driver=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


def test_ray_build_matches_serial(tmp_path, benchmark, ray_session):
    build_cache(tmp_path / "serial", benchmark, limit=2, **SMALL)
    summary = build_cache(tmp_path / "ray", benchmark, limit=2, workers=2, **{**SMALL, "executor": "ray"})
    assert summary.built == 2 and summary.failed == []
    serial, parallel = open_cache(tmp_path / "serial"), open_cache(tmp_path / "ray")
    assert serial.keys == parallel.keys
    for a, b in zip(serial.load(), parallel.load()):
        assert_close_tensors(a, b, rtol=0, atol=0)   # one torch thread in both: the same arithmetic


def test_device_is_recorded_checked_and_old_manifests_read_as_cpu(tmp_path, benchmark):
    build_cache(tmp_path / "c", benchmark, limit=1, device="cpu", **SMALL)
    path = tmp_path / "c" / "manifest.json"
    manifest = json.loads(path.read_text())
    assert manifest["settings"]["device"] == "cpu"
    del manifest["settings"]["device"]                  # a cache built before the setting existed
    path.write_text(json.dumps(manifest))
    assert open_cache(tmp_path / "c").manifest.settings.device == "cpu"
    assert build_cache(tmp_path / "c", benchmark, limit=1, **SMALL).reused == 1
    for device, message in (("meta", "cache builds run on cpu or cuda"), ("gpu0", "is not a torch device")):
        with pytest.raises(CacheError, match=message):
            build_cache(tmp_path / "d", benchmark, limit=1, device=device, **SMALL)
    if not torch.cuda.is_available():
        with pytest.raises(CacheError, match="sees no CUDA device"):
            build_cache(tmp_path / "d", benchmark, limit=1, device="cuda", **SMALL)
