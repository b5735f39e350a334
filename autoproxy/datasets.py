"""Labelled image sets (digits, CIFAR-10, any ``.npz``), each with a fixed held-out split.

Ground-truth training uses both splits; the proxies' minibatch (:mod:`autoproxy.data`) uses images only.

Images stay as integers (uint8) until a batch is used, so a dataset is cheap to ship to Ray workers;
``scale`` maps them to [0, 1] and ``mean``/``std`` (per channel, from the training split) standardise.
Nothing is ever unpickled: files are read with ``numpy.load(allow_pickle=False)`` or as raw bytes.
"""
from __future__ import annotations

import hashlib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from autoproxy.errors import DataError

DIGITS_TRAIN_SIZE = 1000        # of 1,797 images; the other 797 are the held-out split
NPZ_VAL_FRACTION = 0.2          # held-out share of an ``.npz`` that has no split of its own
SPLIT_SEED = 0                  # the split never changes with the training seed
_CIFAR_BINARY_RECORD = 1 + 3 * 32 * 32
_CIFAR_NPZ_NAME = "cifar10.npz"
NAMED_DATASETS = ("digits",)   # datasets that need no file (cifar10 needs a folder)
_ZIP_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06")   # an .npz is a zip archive (the second: an empty one)


@dataclass(frozen=True)
class ImageDataset:
    """A labelled image set with a fixed train / held-out split; images NCHW, unscaled integers."""

    name: str
    train_images: np.ndarray    # uint8 (N, C, H, W)
    train_labels: np.ndarray    # int64 (N,)
    val_images: np.ndarray
    val_labels: np.ndarray
    num_classes: int
    scale: float                # largest possible pixel value (16 for digits, 255 for photos)
    mean: tuple[float, ...]     # per channel, of scaled training images
    std: tuple[float, ...]

    @property
    def in_channels(self) -> int:
        return int(self.train_images.shape[1])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        channels, height, width = self.train_images.shape[1:]
        return int(channels), int(height), int(width)

    def fingerprint(self) -> str:
        """SHA-256 of the split's arrays: a resumed run must train on exactly the same data."""
        digest = hashlib.sha256()
        for array in (self.train_images, self.train_labels, self.val_images, self.val_labels):
            digest.update(str(array.shape).encode())
            digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()


def load_dataset(spec: str, data_dir: str | Path | None = None) -> ImageDataset:
    """``"digits"`` (scikit-learn's bundled 8x8 digits), ``"cifar10"`` (from ``data_dir``) or a
    path to an ``.npz`` holding ``images`` and ``labels``."""
    if spec == "digits":
        return _load_digits()
    if spec == "cifar10":
        if data_dir is None:
            raise DataError("dataset cifar10 needs --data-dir, the folder holding your copy of CIFAR-10")
        return _load_cifar10(Path(data_dir))
    path = Path(spec)
    if path.suffix != ".npz":
        raise DataError(f"unknown dataset {spec!r}: use digits, cifar10 or a path to an .npz file")
    return _load_npz(path)


def _load_digits() -> ImageDataset:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = bunch.images.astype(np.uint8)[:, None, :, :]      # values 0..16
    labels = bunch.target.astype(np.int64)
    train_x, val_x, train_y, val_y = train_test_split(
        images, labels, train_size=DIGITS_TRAIN_SIZE, stratify=labels, random_state=SPLIT_SEED)
    return _assemble("digits", train_x, train_y, val_x, val_y, scale=16.0)


def _require_zip(path: Path) -> None:
    """``numpy.load`` takes any file that is neither a zip nor an ``.npy`` for a pickle, so a text
    file would be refused as "pickled data"; say what the file is not instead."""
    with open(path, "rb") as handle:
        start = handle.read(4)
    if start not in _ZIP_SIGNATURES:
        raise DataError(f"{path} is not an .npz images file (an .npz is a zip archive of numpy arrays; "
                        f"this file starts with {start!r})")


def read_labelled_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``images`` as uint8 NCHW and ``labels`` as int64 from an ``.npz``, read without unpickling."""
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    _require_zip(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except ValueError as err:  # object arrays need pickle, which we refuse
        raise DataError(f"{path}: cannot read without unpickling ({err})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as err:
        raise DataError(f"{path}: not a readable .npz file ({err})") from None
    missing = [name for name in ("images", "labels") if name not in arrays]
    if missing:
        raise DataError(f"{path}: missing array(s) {', '.join(missing)} (has {sorted(arrays)})")
    images = _to_nchw(arrays["images"], f"{path}: images")
    return images, _to_labels(arrays["labels"], len(images), f"{path}: labels")


def _load_npz(path: Path) -> ImageDataset:
    images, labels = read_labelled_npz(path)
    train_x, val_x, train_y, val_y = _stratified_split(images, labels, NPZ_VAL_FRACTION, path)
    return _assemble(path.stem, train_x, train_y, val_x, val_y, scale=255.0)


def _load_cifar10(folder: Path) -> ImageDataset:
    """CIFAR-10 from ``cifar10.npz`` (train_images/train_labels/test_images/test_labels) or the
    official *binary* release (``data_batch_1.bin`` … ``test_batch.bin``); never the pickled one."""
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder")
    npz = folder / _CIFAR_NPZ_NAME
    if npz.is_file():
        return _load_cifar10_npz(npz)
    for binary_folder in (folder, folder / "cifar-10-batches-bin"):
        if (binary_folder / "data_batch_1.bin").is_file():
            return _load_cifar10_binary(binary_folder)
    if (folder / "data_batch_1").is_file() or (folder / "cifar-10-batches-py").is_dir():
        raise DataError(
            f"{folder}: holds the pickled python release of CIFAR-10, which autoproxy never unpickles; "
            f"use the binary release (cifar-10-binary.tar.gz) or convert to {_CIFAR_NPZ_NAME} (see README)")
    raise DataError(f"{folder}: found neither {_CIFAR_NPZ_NAME} nor data_batch_1.bin of CIFAR-10")


def _load_cifar10_npz(path: Path) -> ImageDataset:
    _require_zip(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (ValueError, OSError, EOFError) as err:
        raise DataError(f"{path}: not a readable .npz file without unpickling ({err})") from None
    needed = ("train_images", "train_labels", "test_images", "test_labels")
    missing = [name for name in needed if name not in arrays]
    if missing:
        raise DataError(f"{path}: missing array(s) {', '.join(missing)}")
    train_x = _to_nchw(arrays["train_images"], f"{path}: train_images")
    val_x = _to_nchw(arrays["test_images"], f"{path}: test_images")
    train_y = _to_labels(arrays["train_labels"], len(train_x), f"{path}: train_labels")
    val_y = _to_labels(arrays["test_labels"], len(val_x), f"{path}: test_labels")
    return _assemble("cifar10", train_x, train_y, val_x, val_y, scale=255.0)


def _load_cifar10_binary(folder: Path) -> ImageDataset:
    def read(names: list[str]) -> tuple[np.ndarray, np.ndarray]:
        chunks = []
        for name in names:
            path = folder / name
            if not path.is_file():
                raise DataError(f"{path}: missing from the CIFAR-10 binary release")
            raw = np.fromfile(path, dtype=np.uint8)
            if raw.size % _CIFAR_BINARY_RECORD:
                raise DataError(f"{path}: size is not a whole number of CIFAR-10 records")
            chunks.append(raw.reshape(-1, _CIFAR_BINARY_RECORD))
        records = np.concatenate(chunks)
        labels = records[:, 0].astype(np.int64)
        if labels.max(initial=0) > 9:
            raise DataError(f"{folder}: labels above 9, not CIFAR-10 binary batches")
        return records[:, 1:].reshape(-1, 3, 32, 32), labels

    train_x, train_y = read([f"data_batch_{i}.bin" for i in range(1, 6)])
    val_x, val_y = read(["test_batch.bin"])
    return _assemble("cifar10", train_x, train_y, val_x, val_y, scale=255.0)


def _to_nchw(images: np.ndarray, what: str) -> np.ndarray:
    """(N, H, W) or (N, H, W, C) with C in 1..4 → uint8 (N, C, H, W); integers are 0..255,
    floats 0..1 (as saved by most pipelines)."""
    if images.dtype.kind not in "uif":
        raise DataError(f"{what}: dtype {images.dtype} is not numeric")
    if images.ndim == 3:
        images = images[:, None]
    elif images.ndim == 4 and images.shape[-1] in (1, 2, 3, 4):
        images = images.transpose(0, 3, 1, 2)
    else:
        raise DataError(f"{what}: shape {images.shape} is neither (N, H, W) nor (N, H, W, C)")
    if len(images) == 0:
        raise DataError(f"{what}: no images")
    top = 1.0 if images.dtype.kind == "f" else 255
    if not np.isfinite(images).all() or images.min() < 0 or images.max() > top:
        raise DataError(f"{what}: pixel values must lie in 0..{top} for dtype {images.dtype}")
    if images.dtype.kind == "f":
        images = images * 255.0
    return np.ascontiguousarray(np.rint(images).astype(np.uint8))


def _to_labels(labels: np.ndarray, count: int, what: str) -> np.ndarray:
    if labels.ndim != 1 or len(labels) != count:
        raise DataError(f"{what}: shape {labels.shape}, expected ({count},), one per image")
    if labels.dtype.kind not in "ui":
        raise DataError(f"{what}: dtype {labels.dtype} is not an integer class index")
    if labels.min() < 0:
        raise DataError(f"{what}: negative class index {labels.min()}")
    return labels.astype(np.int64)


def _stratified_split(images: np.ndarray, labels: np.ndarray, val_fraction: float, path: Path):
    from sklearn.model_selection import train_test_split

    counts = np.bincount(labels)
    stratify = labels if counts[counts > 0].min() >= 2 else None
    try:
        return train_test_split(images, labels, test_size=val_fraction, stratify=stratify,
                                random_state=SPLIT_SEED)
    except ValueError as err:
        raise DataError(f"{path}: too few images for a held-out split ({err})") from None


def _assemble(name: str, train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray,
              val_y: np.ndarray, scale: float) -> ImageDataset:
    scaled = train_x.astype(np.float64) / scale
    mean = scaled.mean(axis=(0, 2, 3))
    std = np.maximum(scaled.std(axis=(0, 2, 3)), 1e-6)
    num_classes = int(max(train_y.max(), val_y.max())) + 1
    return ImageDataset(name, np.ascontiguousarray(train_x), train_y, np.ascontiguousarray(val_x),
                        val_y, num_classes, scale, tuple(map(float, mean)), tuple(map(float, std)))
