"""The one minibatch the proxies see: real images augmented to a batch, or Gaussian noise.

Zero-cost proxies are computed on a single batch (NASLib: 64 CIFAR training images with the usual
random crop and flip). A small images file is enough to build such a batch: each image is drawn a
balanced number of times and gets a horizontal flip or not and a 32x32 crop from the image
zero-padded by 4 pixels (torchvision's ``RandomCrop(padding=4)`` default, padding in raw pixel space
before normalisation). Channels are then normalised with the mean and std computed from the file
itself, so any dataset (grayscale included) works without hard-coded constants.

A batch never holds two equal samples: a repeated sample makes the batch rank-deficient, which turns
kernel and correlation statistics (jacov's ``jacobian_corr``, NWOT's kernel) singular. Each
(image, flip, crop offset) is therefore drawn at most once, and a sample whose pixels equal an
earlier one (duplicate or constant images) is skipped for the next draw.
"""
from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from autoproxy.datasets import NAMED_DATASETS, load_dataset, read_labelled_npz
from autoproxy.errors import DataError

CROP_PADDING = 4
CROP_OFFSETS = 2 * CROP_PADDING + 1                 # crop tops (and lefts) 0..8 of the padded image
TRANSFORMS_PER_IMAGE = 2 * CROP_OFFSETS ** 2        # flip or not × top × left = 162


def load_minibatch(
    path: str | Path | None,  # an images .npz, a named dataset ("digits"), or None for noise
    batch_size: int = 64,
    seed: int = 0,
    *,
    noise: bool = False,
    image_shape: tuple[int, int, int] = (3, 32, 32),
    num_classes: int = 10,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """``(inputs float32 NCHW, targets int64, num_classes_hint)`` for one seeded batch of distinct samples.

    With ``noise`` (or no ``path``) the inputs are standard Gaussian noise with uniform random labels;
    the shape and class count come from the file when one is given, else from ``image_shape`` and
    ``num_classes``. The class hint of a file is ``max(label) + 1``. A file whose images cannot make
    ``batch_size`` distinct samples is a ``DataError`` naming it.
    """
    if batch_size < 1:
        raise DataError(f"batch size must be positive, got {batch_size}")
    rng = np.random.default_rng(seed)
    if path is None:
        return _noise_batch(rng, batch_size, image_shape, num_classes)
    images, labels = _read_images(path)
    num_classes_hint = int(labels.max()) + 1
    if noise:
        return _noise_batch(rng, batch_size, tuple(images.shape[1:]), num_classes_hint)
    inputs, targets = _augmented_batch(rng, images, labels, batch_size, str(path))
    return inputs, targets, num_classes_hint


def _noise_batch(
    rng: np.random.Generator, batch_size: int, shape: tuple[int, ...], num_classes: int
) -> tuple[torch.Tensor, torch.Tensor, int]:
    if batch_size > 1 and math.prod(shape) == 0:
        raise DataError(f"noise samples of shape {shape} are empty, so {batch_size} of them cannot be distinct")
    inputs = _distinct_noise(rng, batch_size, shape)
    targets = rng.integers(0, num_classes, size=batch_size)
    return torch.from_numpy(inputs), torch.from_numpy(targets.astype(np.int64)), num_classes


def _distinct_noise(rng: np.random.Generator, batch_size: int, shape: tuple[int, ...]) -> np.ndarray:
    """Gaussian samples, redrawing those that repeat an earlier one (float32 draws of a tiny shape
    collide); a batch without repeats is exactly the plain draw."""
    inputs = rng.standard_normal((batch_size, *shape), dtype=np.float32)
    repeated = _repeated_samples(inputs)
    while repeated:
        inputs[repeated] = rng.standard_normal((len(repeated), *shape), dtype=np.float32)
        repeated = _repeated_samples(inputs)
    return inputs


def _repeated_samples(batch: np.ndarray) -> list[int]:
    """Indices of the samples equal to an earlier sample of the batch."""
    seen: set[bytes] = set()
    repeated = []
    for index, sample in enumerate(batch):
        digest = _fingerprint(sample)
        if digest in seen:
            repeated.append(index)
        seen.add(digest)
    return repeated


def _fingerprint(sample: np.ndarray) -> bytes:
    """Equal for equal samples, whatever their memory layout; ``+ 0`` makes -0.0 and 0.0 equal."""
    return hashlib.sha256(np.ascontiguousarray(sample + np.float32(0)).tobytes()).digest()


def _read_images(spec: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Images as float32 NCHW in raw pixel units and labels as int64: a named dataset's training
    split (``"digits"``) or every image of an ``.npz`` file."""
    if str(spec) in NAMED_DATASETS:
        dataset = load_dataset(str(spec))
        images, labels = dataset.train_images, dataset.train_labels
    else:
        images, labels = read_labelled_npz(Path(spec))
    return np.ascontiguousarray(images, dtype=np.float32), labels


def _augmented_batch(
    rng: np.random.Generator, images: np.ndarray, labels: np.ndarray, batch_size: int, source: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``batch_size`` candidates of the seeded draw whose pixels differ from every earlier one."""
    channels = images.shape[1]
    mean = images.mean(axis=(0, 2, 3)).reshape(channels, 1, 1)
    std = np.maximum(images.std(axis=(0, 2, 3)).reshape(channels, 1, 1), 1e-6)
    samples, picks, seen = [], [], set()
    for index, transform in _candidate_transforms(rng, len(images)):
        sample = (_transformed(images[index], transform) - mean) / std
        digest = _fingerprint(sample)
        if digest in seen:
            continue
        seen.add(digest)
        samples.append(sample)
        picks.append(index)
        if len(samples) == batch_size:
            batch = np.stack(samples).astype(np.float32)
            return torch.from_numpy(batch), torch.from_numpy(labels[picks])
    raise DataError(f"{source}: {len(images)} images make at most {len(samples)} distinct samples; "
                    f"batch size {batch_size} asked")


def _candidate_transforms(rng: np.random.Generator, count: int) -> Iterator[tuple[int, int]]:
    """Every (image, transform) pair exactly once, in a seeded order that uses the images evenly:
    passes over the images in a fresh random order, each image taking the next transform of its own
    random permutation of ``range(TRANSFORMS_PER_IMAGE)`` (drawn when the image first comes up)."""
    orders: list[np.ndarray | None] = [None] * count
    for position in range(TRANSFORMS_PER_IMAGE):
        for index in rng.permutation(count).tolist():
            if orders[index] is None:
                orders[index] = rng.permutation(TRANSFORMS_PER_IMAGE)
            yield index, int(orders[index][position])


def _transformed(image: np.ndarray, transform: int) -> np.ndarray:
    """Transform ``flip * CROP_OFFSETS**2 + top * CROP_OFFSETS + left`` of a CHW image: a crop of
    the image's size at (top, left) of the zero-padded image, mirrored left-right if ``flip``."""
    flip, offset = divmod(transform, CROP_OFFSETS ** 2)
    top, left = divmod(offset, CROP_OFFSETS)
    height, width = image.shape[1:]
    padded = np.pad(image, ((0, 0), (CROP_PADDING, CROP_PADDING), (CROP_PADDING, CROP_PADDING)))
    crop = padded[:, top : top + height, left : left + width]
    return crop[:, :, ::-1] if flip else crop
