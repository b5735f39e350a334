"""The one minibatch the proxies see: real images augmented to a batch, or Gaussian noise.

Zero-cost proxies are computed on a single batch (NASLib: 64 CIFAR training images with the usual
random crop and flip). A small images file is enough to build such a batch: each image is drawn a
balanced number of times and gets a seeded random horizontal flip and a random 32x32 crop from the
image zero-padded by 4 pixels (torchvision's ``RandomCrop(padding=4)`` default, padding in raw pixel
space before normalisation). Channels are then normalised with the mean and std computed from the
file itself, so any dataset (grayscale included) works without hard-coded constants.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from autoproxy.datasets import NAMED_DATASETS, load_dataset, read_labelled_npz
from autoproxy.errors import DataError

CROP_PADDING = 4


def load_minibatch(
    path: str | Path | None,  # an images .npz, a named dataset ("digits"), or None for noise
    batch_size: int = 64,
    seed: int = 0,
    *,
    noise: bool = False,
    image_shape: tuple[int, int, int] = (3, 32, 32),
    num_classes: int = 10,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """``(inputs float32 NCHW, targets int64, num_classes_hint)`` for one seeded batch.

    With ``noise`` (or no ``path``) the inputs are standard Gaussian noise with uniform random labels;
    the shape and class count come from the file when one is given, else from ``image_shape`` and
    ``num_classes``. The class hint of a file is ``max(label) + 1``.
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
    inputs, targets = _augmented_batch(rng, images, labels, batch_size)
    return inputs, targets, num_classes_hint


def _noise_batch(
    rng: np.random.Generator, batch_size: int, shape: tuple[int, ...], num_classes: int
) -> tuple[torch.Tensor, torch.Tensor, int]:
    inputs = rng.standard_normal((batch_size, *shape), dtype=np.float32)
    targets = rng.integers(0, num_classes, size=batch_size)
    return torch.from_numpy(inputs), torch.from_numpy(targets.astype(np.int64)), num_classes


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
    rng: np.random.Generator, images: np.ndarray, labels: np.ndarray, batch_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    count, channels, height, width = images.shape
    repeats = -(-batch_size // count)
    picks = np.concatenate([rng.permutation(count) for _ in range(repeats)])[:batch_size]
    padded = np.pad(images, ((0, 0), (0, 0), (CROP_PADDING, CROP_PADDING), (CROP_PADDING, CROP_PADDING)))
    batch = np.empty((batch_size, channels, height, width), dtype=np.float32)
    for slot, index in enumerate(picks):
        top, left = rng.integers(0, 2 * CROP_PADDING + 1, size=2)
        crop = padded[index, :, top : top + height, left : left + width]
        batch[slot] = crop[:, :, ::-1] if rng.random() < 0.5 else crop
    mean = images.mean(axis=(0, 2, 3)).reshape(1, channels, 1, 1)
    std = images.std(axis=(0, 2, 3)).reshape(1, channels, 1, 1)
    batch = (batch - mean) / np.maximum(std, 1e-6)
    return torch.from_numpy(batch.astype(np.float32)), torch.from_numpy(labels[picks])
