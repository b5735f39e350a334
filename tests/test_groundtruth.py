"""Ground truth by real training: the CLI end to end, resume, refusals, and no unpickling."""
from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from click.testing import CliRunner

from autoproxy.benchmark import load_benchmark
from autoproxy.cli import main
from autoproxy.datasets import load_dataset
from autoproxy.errors import DataError, GroundTruthError
from autoproxy.groundtruth import TrainResult, TrainSettings, sample_distinct, train_and_evaluate
from autoproxy.groundtruth.store import GroundTruthStore, settings_path
from autoproxy.spaces import get_space

TINY = ["--space", "nb201", "--dataset", "digits", "--epochs", "1", "--width", "4", "--depth", "1"]


def _train(out, n: int, *extra: str):
    return CliRunner().invoke(main, ["groundtruth", "train", *TINY, "--n", str(n), "--out", str(out), *extra])


def test_cli_trains_writes_a_loadable_benchmark_and_resumes(tmp_path):
    out = tmp_path / "gt.csv"
    first = _train(out, 2)
    assert first.exit_code == 0, first.output
    records = load_benchmark(out, space="nb201", task="digits")
    assert [r.key for r in records] == sample_distinct(get_space("nb201"), 2, seed=0)
    for record in records:
        assert 0.0 <= record.accuracy <= 100.0
        assert record.scores["params"] > 0 and record.scores["flops"] > 0
        assert "seconds" not in record.scores  # training time is recorded, but is no proxy score
    before = out.read_text().splitlines()

    second = _train(out, 3)
    assert second.exit_code == 0, second.output
    after = out.read_text().splitlines()
    assert after[:len(before)] == before          # finished archs are neither retrained nor rewritten
    assert len(after) == len(before) + 1


def test_settings_mismatch_is_refused_in_one_line(tmp_path):
    out = tmp_path / "gt.csv"
    assert _train(out, 1).exit_code == 0
    result = _train(out, 1, "--train-seed", "7")
    assert result.exit_code == 2
    assert "train_seed=0, not 7" in result.output
    assert len(out.read_text().splitlines()) == 2   # header + the one arch, nothing mixed in


def test_csv_without_sidecar_is_refused(tmp_path):
    out = tmp_path / "gt.csv"
    out.write_text("arch,accuracy\n\"(0, 0, 0, 0, 0, 0)\",50\n")
    with pytest.raises(GroundTruthError, match="without gt.settings.json"):
        GroundTruthStore(out, {"epochs": 1})


def test_torn_last_row_is_dropped_on_resume(tmp_path):
    out = tmp_path / "gt.csv"
    store = GroundTruthStore(out, {"epochs": 1})
    store.append(TrainResult("(0, 0, 0, 0, 0, 0)", 50.0, 0.1, 1.0, 2.0))
    with open(out, "a") as handle:
        handle.write('"(1, 1, 1, 1, 1, 1)",4')  # killed mid-write
    resumed = GroundTruthStore(out, {"epochs": 1})
    assert list(resumed.done) == ["(0, 0, 0, 0, 0, 0)"]
    assert out.read_text().endswith("\n")


def test_training_is_deterministic_given_the_seed():
    dataset = load_dataset("digits")
    space = get_space("nb201")
    key = "(2, 0, 3, 2, 4, 1)"
    settings = TrainSettings(epochs=1, width=4, depth=1)

    def run(seed: int) -> float:
        build = lambda: space.build(key, num_classes=10, in_channels=1, width=4, depth=1)  # noqa: E731
        return train_and_evaluate(build, key, dataset, settings, train_seed=seed).accuracy

    assert run(0) == run(0)
    assert run(0) != run(1)


def test_digits_split_is_fixed_and_stratified():
    dataset = load_dataset("digits")
    assert dataset.train_images.shape == (1000, 1, 8, 8) and dataset.val_images.shape == (797, 1, 8, 8)
    assert dataset.fingerprint() == load_dataset("digits").fingerprint()
    assert set(np.bincount(dataset.val_labels)) <= set(range(75, 85))


def test_npz_dataset_reads_nhwc_uint8(tmp_path):
    path = tmp_path / "imgs.npz"
    rng = np.random.default_rng(0)
    np.savez(path, images=rng.integers(0, 256, (40, 6, 6, 3), dtype=np.uint8),
             labels=np.repeat(np.arange(4), 10))
    dataset = load_dataset(str(path))
    assert dataset.image_shape == (3, 6, 6) and dataset.num_classes == 4
    assert len(dataset.train_labels) == 32 and len(dataset.val_labels) == 8


@pytest.mark.parametrize("arrays, message", [
    ({"images": np.zeros((4, 6, 6), np.uint8)}, "missing array"),
    ({"images": np.zeros((4, 6, 6), np.uint8), "labels": np.zeros(3, np.int64)}, "one per image"),
    ({"images": np.zeros((4, 6), np.uint8), "labels": np.zeros(4, np.int64)}, "shape"),
    ({"images": np.full((4, 6, 6), 2.0), "labels": np.zeros(4, np.int64)}, "0..1"),
    ({"images": np.zeros((4, 6, 6), np.uint8), "labels": np.zeros(4)}, "integer"),
])
def test_malformed_npz_is_refused(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=message):
        load_dataset(str(path))


def test_npz_needing_pickle_is_refused_without_unpickling(tmp_path, monkeypatch):
    path = tmp_path / "objects.npz"
    np.savez(path, images=np.array([object()], dtype=object), labels=np.zeros(1, np.int64))
    monkeypatch.setattr(pickle, "loads", _forbidden)
    monkeypatch.setattr(pickle, "load", _forbidden)
    with pytest.raises(DataError, match="unpickling"):
        load_dataset(str(path))


def test_pickled_cifar_release_is_refused_without_unpickling(tmp_path, monkeypatch):
    (tmp_path / "data_batch_1").write_bytes(pickle.dumps({"data": "never read"}))
    monkeypatch.setattr(pickle, "loads", _forbidden)
    monkeypatch.setattr(pickle, "load", _forbidden)
    with pytest.raises(DataError, match="never unpickles"):
        load_dataset("cifar10", tmp_path)


def test_cifar_binary_release_is_read(tmp_path):
    def batch(labels: list[int]) -> bytes:
        return b"".join(bytes([label]) + bytes([label * 10]) * 3072 for label in labels)

    for index in range(1, 6):
        (tmp_path / f"data_batch_{index}.bin").write_bytes(batch([index, 0]))
    (tmp_path / "test_batch.bin").write_bytes(batch([9]))
    dataset = load_dataset("cifar10", tmp_path)
    assert dataset.train_images.shape == (10, 3, 32, 32) and dataset.val_labels.tolist() == [9]
    assert int(dataset.train_images[0].max()) == 10


def test_bad_dataset_name_is_one_line(tmp_path):
    result = CliRunner().invoke(main, ["groundtruth", "train", "--space", "nb201", "--dataset", "mnist",
                                       "--n", "1", "--out", str(tmp_path / "x.csv")])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == ["error: unknown dataset 'mnist': use digits, cifar10 or a "
                                                  "path to an .npz file"]
    assert not settings_path(tmp_path / "x.csv").exists()


def test_sidecar_records_the_recipe(tmp_path):
    out = tmp_path / "gt.csv"
    assert _train(out, 1, "--lr", "0.01").exit_code == 0
    recorded = json.loads(settings_path(out).read_text())
    assert recorded["lr"] == 0.01 and recorded["dataset"] == "digits" and recorded["width"] == 4


def _forbidden(*args, **kwargs):
    raise AssertionError("something was unpickled")


def test_training_inputs_have_standard_strides():
    """A 1-channel array made by ``[:, None]`` has channels-last-like strides; kept, they would send
    convolutions down another kernel and make serial and Ray results differ."""
    from autoproxy.groundtruth.train import _normalised

    dataset = load_dataset("digits")
    assert dataset.train_images.strides[1] != 64            # the odd layout is really there
    assert _normalised(dataset.train_images[:4], dataset).stride() == (64, 64, 8, 1)
