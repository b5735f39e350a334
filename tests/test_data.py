"""The minibatch: shapes, determinism, normalisation, noise and clear errors on bad files."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from autoproxy.data import load_minibatch
from autoproxy.errors import DataError
from autoproxy.settings import shared_path


@pytest.fixture(scope="module")
def cifar_path():
    path = shared_path("data", "cifar10_sample.npz")
    if not path.is_file():
        pytest.fail(f"shared images missing: {path}")
    return path


def test_real_batch_is_seeded_normalised_and_uses_every_image(cifar_path):
    inputs, targets, num_classes = load_minibatch(cifar_path, batch_size=64, seed=3)
    again, again_targets, _ = load_minibatch(cifar_path, batch_size=64, seed=3)
    other, _, _ = load_minibatch(cifar_path, batch_size=64, seed=4)
    assert inputs.shape == (64, 3, 32, 32) and inputs.dtype == torch.float32
    assert targets.dtype == torch.int64 and num_classes == 10
    assert torch.equal(inputs, again) and torch.equal(targets, again_targets)
    assert not torch.equal(inputs, other)
    assert abs(float(inputs.mean())) < 0.5 and 0.7 < float(inputs.std()) < 1.5
    labels = np.load(cifar_path)["labels"]
    expected = np.bincount(labels, minlength=10) * 3  # 64 draws = 3 full passes over the 20 images + 4
    counts = np.bincount(targets.numpy(), minlength=10)
    assert np.all(counts >= expected) and counts.sum() - expected.sum() == 64 - 3 * len(labels)


def test_augmentation_is_flip_and_crop_of_a_file_image(tmp_path):
    image = np.arange(2 * 8 * 8 * 1, dtype=np.uint8).reshape(2, 8, 8) * 3
    path = tmp_path / "gray.npz"
    np.savez(path, images=image, labels=np.array([0, 1]))
    inputs, targets, num_classes = load_minibatch(path, batch_size=6, seed=0)
    assert inputs.shape == (6, 1, 8, 8) and num_classes == 2
    raw = image.astype(np.float32)
    normalised = (raw - raw.mean()) / raw.std()
    zero_level = -raw.mean() / raw.std()
    padded = np.pad(normalised, ((0, 0), (4, 4), (4, 4)), constant_values=zero_level)
    for sample, label in zip(inputs[:, 0].numpy(), targets.tolist()):
        crops = [padded[label, top : top + 8, left : left + 8] for top in range(9) for left in range(9)]
        assert any(np.allclose(sample, crop, atol=1e-5) or np.allclose(sample, crop[:, ::-1], atol=1e-5) for crop in crops)


def test_noise_batch_has_requested_shape_and_labels():
    inputs, targets, num_classes = load_minibatch(None, batch_size=8, seed=1, image_shape=(1, 5, 5), num_classes=3)
    assert inputs.shape == (8, 1, 5, 5) and num_classes == 3
    assert int(targets.min()) >= 0 and int(targets.max()) < 3
    assert torch.equal(inputs, load_minibatch(None, batch_size=8, seed=1, image_shape=(1, 5, 5), num_classes=3)[0])


def test_noise_from_file_keeps_the_file_shape(cifar_path):
    inputs, _, num_classes = load_minibatch(cifar_path, batch_size=4, noise=True)
    assert inputs.shape == (4, 3, 32, 32) and num_classes == 10


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(DataError, match="nothing.npz"):
        load_minibatch(tmp_path / "nothing.npz")


def test_missing_key_names_file_and_key(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, pictures=np.zeros((2, 4, 4, 3), np.uint8), labels=np.array([0, 1]))
    with pytest.raises(DataError, match=r"bad\.npz.*images"):
        load_minibatch(path)


def test_not_an_npz_is_a_data_error(tmp_path):
    path = tmp_path / "garbage.npz"
    path.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="garbage.npz"):
        load_minibatch(path)


def test_label_count_mismatch_is_rejected(tmp_path):
    path = tmp_path / "short.npz"
    np.savez(path, images=np.zeros((3, 4, 4, 3), np.uint8), labels=np.array([0, 1]))
    with pytest.raises(DataError, match="short.npz"):
        load_minibatch(path)
