"""Train one architecture for real and measure its held-out accuracy: the ground truth a proxy is
judged against. Deterministic given the seed (one CPU thread, seeded init and shuffling)."""
from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from autoproxy.flops import count_flops
from autoproxy.datasets import ImageDataset
from autoproxy.torch_threads import one_torch_thread

_EVAL_CHUNK = 512


@dataclass(frozen=True)
class TrainSettings:
    """Everything that changes an accuracy; two runs may share a CSV only if these match."""

    epochs: int = 3
    batch_size: int = 64
    optimizer: str = "sgd"      # "sgd" (Nesterov momentum) or "adam"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    width: int | None = None    # NB201 C / NB101 stem channels; None = the space's default
    depth: int | None = None    # cells per stage; None = the space's default

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class TrainResult:
    key: str
    accuracy: float     # held-out accuracy in %
    params: float       # millions
    flops: float        # millions
    seconds: float      # wall-clock time to build, train and evaluate


def arch_seed(train_seed: int, key: str) -> int:
    """The training seed of one arch: fixed by ``train_seed`` and the key, not by sampling order."""
    digest = hashlib.sha256(f"{train_seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def train_and_evaluate(build: Callable[[], nn.Module], key: str, dataset: ImageDataset,
                       settings: TrainSettings, train_seed: int) -> TrainResult:
    """Build with ``build()`` under the arch's seed, train (cosine LR to 0), score the held-out split."""
    start = time.perf_counter()
    seed = arch_seed(train_seed, key)
    with one_torch_thread():
        torch.manual_seed(seed)
        model = build()
        params = sum(p.numel() for p in model.parameters()) / 1e6
        flops = count_flops(model, (1, *dataset.image_shape))
        _train(model, dataset, settings, seed)
        _recalibrate_batchnorm(model, dataset, settings.batch_size)
        accuracy = _accuracy(model, dataset)
    return TrainResult(key, accuracy, params, flops, time.perf_counter() - start)


def _normalised(images: np.ndarray, dataset: ImageDataset) -> torch.Tensor:
    # A fresh copy with standard strides: numpy may hand a 1-channel array with channels-last-like
    # strides (after ``[:, None]``), which sends convolutions down another kernel with other
    # rounding, so the same arch would score differently serially and on Ray.
    tensor = torch.empty(images.shape).copy_(torch.from_numpy(images)).div_(dataset.scale)
    mean = torch.tensor(dataset.mean).view(1, -1, 1, 1)
    std = torch.tensor(dataset.std).view(1, -1, 1, 1)
    return (tensor - mean) / std


def _optimizer(model: nn.Module, settings: TrainSettings) -> torch.optim.Optimizer:
    if settings.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    if settings.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=settings.lr, momentum=settings.momentum,
                               weight_decay=settings.weight_decay, nesterov=settings.momentum > 0)
    raise ValueError(f"unknown optimizer {settings.optimizer!r}: use sgd or adam")


def _train(model: nn.Module, dataset: ImageDataset, settings: TrainSettings, seed: int) -> None:
    images = _normalised(dataset.train_images, dataset)
    labels = torch.from_numpy(dataset.train_labels)
    steps_per_epoch = -(-len(labels) // settings.batch_size)
    optimizer = _optimizer(model, settings)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=max(1, settings.epochs * steps_per_epoch))
    shuffle = torch.Generator().manual_seed(seed)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for _ in range(settings.epochs):
        order = torch.randperm(len(labels), generator=shuffle)
        for batch in order.split(settings.batch_size):
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(images[batch]), labels[batch])
            if torch.isfinite(loss):  # a diverged arch keeps its weights and scores what it scores
                loss.backward()
                optimizer.step()
            schedule.step()


@torch.no_grad()
def _recalibrate_batchnorm(model: nn.Module, dataset: ImageDataset, batch_size: int) -> None:
    """Replace BatchNorm's running statistics by exact ones of the final weights over the training
    set. After a short training the running averages lag far behind the weights, and that lag,
    not the architecture, would decide much of the held-out accuracy."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None    # cumulative average over the batches below
    model.train()
    images = _normalised(dataset.train_images, dataset)
    for batch in images.split(batch_size):
        model(batch)


@torch.no_grad()
def _accuracy(model: nn.Module, dataset: ImageDataset) -> float:
    model.eval()
    correct = 0
    for start in range(0, len(dataset.val_labels), _EVAL_CHUNK):
        images = _normalised(dataset.val_images[start:start + _EVAL_CHUNK], dataset)
        labels = torch.from_numpy(dataset.val_labels[start:start + _EVAL_CHUNK])
        logits = model(images)
        finite = torch.isfinite(logits).all(dim=1)
        correct += int(((logits.argmax(dim=1) == labels) & finite).sum())
    return 100.0 * correct / len(dataset.val_labels)
