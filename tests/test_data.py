"""The minibatch: shapes, determinism, distinct samples, normalisation, noise and clear errors on bad files."""
from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from dataclasses import fields

import numpy as np
import pytest
import torch

from autoproxy.cache import open_cache
from autoproxy.cache.manifest import CacheSettings, Manifest
from autoproxy.data import CROP_PADDING, TRANSFORMS_PER_IMAGE, load_minibatch
from autoproxy.errors import CacheError, DataError
from autoproxy.settings import shared_path
from autoproxy.statistics import STATISTICS_VERSION

CIFAR_SAMPLE_IMAGES = 20
# sha256 of the seed-0 batch of 64 from cifar10_sample.npz: when it changes, so does every cache built
# from images, and STATISTICS_VERSION must be bumped (then update this digest).
SEED0_BATCH_SHA256 = "613e2ff2bcd5d186ad34b8ddec95c93987842bd6ac212684e72c3315fd5f160c"
BATCH_DIGEST_SCRIPT = """
import hashlib, sys
from autoproxy.data import load_minibatch
inputs, targets, _ = load_minibatch(sys.argv[1], 64, 0)
print(hashlib.sha256(inputs.numpy().tobytes() + targets.numpy().tobytes()).hexdigest())
"""


pytestmark = pytest.mark.usefixtures("one_torch_thread_per_module")


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


def distinct_count(inputs: torch.Tensor) -> int:
    return len(torch.unique(inputs.flatten(1), dim=0))


def batch_digest(inputs: torch.Tensor, targets: torch.Tensor) -> str:
    return hashlib.sha256(inputs.numpy().tobytes() + targets.numpy().tobytes()).hexdigest()


def write_images(path, images: np.ndarray) -> str:
    np.savez(path, images=images.astype(np.uint8), labels=np.arange(len(images)))
    return str(path)


def all_distinct_crops(images: np.ndarray) -> int:
    """How many different samples every flip and padded crop of (N, H, W) images make, by brute force."""
    pad, (height, width) = CROP_PADDING, images.shape[1:]
    padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad)))
    crops = [padded[i, top : top + height, left : left + width] for i in range(len(images))
             for top in range(2 * pad + 1) for left in range(2 * pad + 1)]
    crops += [crop[:, ::-1] for crop in crops]
    return len(np.unique(np.stack(crops).reshape(len(crops), -1), axis=0))


def test_batches_of_many_seeds_hold_distinct_samples_of_full_rank(cifar_path):
    """Seed 1 used to repeat a sample (rank 63 of 64), which made jacobian_corr singular."""
    for seed in range(200):
        inputs, _, _ = load_minibatch(cifar_path, batch_size=64, seed=seed)
        assert torch.linalg.matrix_rank(inputs.flatten(1)) == 64, seed
    inputs, _, _ = load_minibatch(cifar_path, batch_size=512, seed=0)
    assert torch.linalg.matrix_rank(inputs.flatten(1)) == 512


def test_largest_batch_uses_every_flip_and_crop_once_and_one_more_is_a_one_line_error(cifar_path):
    largest = CIFAR_SAMPLE_IMAGES * TRANSFORMS_PER_IMAGE
    for seed in (0, 1):
        inputs, targets, _ = load_minibatch(cifar_path, batch_size=largest, seed=seed)
        assert distinct_count(inputs) == largest
        assert np.all(np.bincount(targets.numpy()) == np.bincount(np.load(cifar_path)["labels"]) * TRANSFORMS_PER_IMAGE)
    with pytest.raises(DataError) as error:
        load_minibatch(cifar_path, batch_size=largest + 1)
    assert str(error.value) == (f"{cifar_path}: {CIFAR_SAMPLE_IMAGES} images make at most {largest} distinct "
                                f"samples; batch size {largest + 1} asked")


def test_same_seed_gives_the_same_batch_in_another_process(cifar_path):
    inputs, targets, _ = load_minibatch(cifar_path, batch_size=64, seed=0)
    assert batch_digest(inputs, targets) == SEED0_BATCH_SHA256, "the batch changed: bump STATISTICS_VERSION"
    other = subprocess.run([sys.executable, "-c", BATCH_DIGEST_SCRIPT, str(cifar_path)], capture_output=True,
                           text=True, check=True, env={**os.environ, "PYTHONHASHSEED": "12345"})
    assert other.stdout.strip() == SEED0_BATCH_SHA256


def test_duplicate_and_constant_images_still_give_distinct_samples(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(4, 4))
    images = np.stack([image, image, np.zeros((4, 4)), np.full((4, 4), 7)])  # a crop of padding only is all zeros
    path = write_images(tmp_path / "repeats.npz", images)
    largest = all_distinct_crops(images)
    assert largest < len(images) * TRANSFORMS_PER_IMAGE
    for seed in range(5):
        assert distinct_count(load_minibatch(path, batch_size=largest, seed=seed)[0]) == largest
    with pytest.raises(DataError, match=rf"^{re.escape(path)}: 4 images make at most {largest} distinct "
                                        rf"samples; batch size {largest + 1} asked$"):
        load_minibatch(path, batch_size=largest + 1)


def test_a_constant_zero_image_makes_one_sample(tmp_path):
    path = write_images(tmp_path / "black.npz", np.zeros((1, 5, 5)))
    assert load_minibatch(path, batch_size=1)[0].shape == (1, 1, 5, 5)
    with pytest.raises(DataError, match="black.npz: 1 images make at most 1 distinct samples; batch size 2 asked"):
        load_minibatch(path, batch_size=2)


def test_digits_batch_larger_than_the_split_has_distinct_samples():
    inputs, targets, num_classes = load_minibatch("digits", batch_size=2000, seed=0)
    assert inputs.shape == (2000, 1, 8, 8) and num_classes == 10
    assert distinct_count(inputs) == 2000


def test_noise_never_repeats_a_sample():
    inputs, _, _ = load_minibatch(None, batch_size=20000, seed=0, image_shape=(1, 1, 1))  # float32 draws collide
    assert distinct_count(inputs) == 20000


def test_caches_built_on_the_old_minibatch_are_refused_with_a_rebuild_hint(tmp_path):
    """Version 4 changed how image batches are drawn, so statistics of version 3 came from another batch."""
    unset = {field.name: None for field in fields(CacheSettings) if field.name != "statistics_version"}
    Manifest(settings=CacheSettings(**unset, statistics_version=3), benchmark_path="bench.csv",
             data_path=None).write(tmp_path)
    assert STATISTICS_VERSION >= 4
    with pytest.raises(CacheError, match="version 3.*rebuild"):
        open_cache(tmp_path)
