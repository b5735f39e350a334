"""``mbnet``: a small MobileNetV2/ResNet macro space in the spirit of NAS-Bench-Zero (Chen et al., 2023).

Network: stem (conv3x3 + BN + ReLU, ``width`` channels) → 3 stages → global average pool →
``classifier``. Stage s (0, 1, 2) has base channels ``width · 2^s`` scaled by its width choice; its first
block has stride 2 in stages 1 and 2 (1 in stage 0) and changes the channels, the others keep both.
Each stage chooses its block type, kernel size, expansion, depth and width:

* block 0, residual basic block (ResNet): conv k×k (stride) + BN + ReLU → conv k×k + BN, plus the input
  (a strided conv1x1 + BN when the shape changes), then ReLU. Its expansion is always 1.
* block 1, inverted residual (MobileNetV2): conv1x1 to ``expansion ×`` channels + BN + ReLU6 (left out
  for expansion 1) → depthwise k×k (stride) + BN + ReLU6 → conv1x1 + BN (linear bottleneck), plus the
  input when stride is 1 and the channels are unchanged.

Key: 15 integers, 5 per stage ``(block, kernel, expansion, depth, width)`` with block ∈ {0, 1},
kernel ∈ {3, 5}, expansion ∈ {1, 3, 6} (1 for a block-0 stage, so each network has one key),
depth ∈ {1, 2, 3} blocks and width ∈ {2, 3, 4} quarters of the stage's base channels (×0.5, ×0.75,
×1.0). Example: ``"(0, 3, 1, 2, 4, 1, 5, 6, 1, 2, 1, 3, 3, 3, 3)"``. 72 choices per stage, 72³ = 373 248
archs.
"""
from __future__ import annotations

import random
from typing import NamedTuple, Sequence

import torch
from torch import nn

from autoproxy.benchmark import format_key
from autoproxy.errors import InvalidArchError
from autoproxy.spaces import parse_int_tuple

NUM_STAGES = 3
FIELDS = ("block", "kernel", "expansion", "depth", "width")
RESIDUAL, INVERTED = 0, 1
BLOCK_NAMES = ("residual", "inverted_residual")
KERNELS = (3, 5)
EXPANSIONS = (1, 3, 6)
DEPTHS = (1, 2, 3)
WIDTHS = (2, 3, 4)  # quarters of the stage's base channels
DEFAULT_WIDTH = 8   # stem channels; stage bases 8/16/32
KEY_LENGTH = NUM_STAGES * len(FIELDS)


class Stage(NamedTuple):
    block: int
    kernel: int
    expansion: int
    depth: int
    width: int


def stage_choices() -> list[Stage]:
    """Every valid stage, in a fixed order (72 of them)."""
    return [
        Stage(block, kernel, expansion, depth, width)
        for block in (RESIDUAL, INVERTED)
        for kernel in KERNELS
        for expansion in (EXPANSIONS if block == INVERTED else (1,))
        for depth in DEPTHS
        for width in WIDTHS
    ]


_STAGE_CHOICES = stage_choices()


def stage_channels(base: int, stage: int, width: int) -> int:
    """Output channels of ``stage``: ``base · 2^stage · width / 4``, rounded, at least 1."""
    return max(1, round(base * 2**stage * width / 4))


class BasicBlock(nn.Module):
    """ResNet's basic block with a k×k kernel."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int) -> None:
        super().__init__()
        padding = kernel // 2
        self.conv_a = nn.Sequential(
            nn.Conv2d(c_in, c_out, kernel, stride, padding, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()
        )
        self.conv_b = nn.Sequential(nn.Conv2d(c_out, c_out, kernel, 1, padding, bias=False), nn.BatchNorm2d(c_out))
        self.shortcut: nn.Module = (
            nn.Identity()
            if stride == 1 and c_in == c_out
            else nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
        )
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv_b(self.conv_a(x)) + self.shortcut(x))


class InvertedResidual(nn.Module):
    """MobileNetV2's block: expand (conv1x1), depthwise k×k, linear projection (conv1x1)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = c_in * expansion
        layers: list[nn.Module] = []
        if expansion != 1:
            layers += [nn.Conv2d(c_in, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6()]
        layers += [
            nn.Conv2d(hidden, hidden, kernel, stride, kernel // 2, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(),
            nn.Conv2d(hidden, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out),
        ]
        self.conv = nn.Sequential(*layers)
        self.use_residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return x + out if self.use_residual else out


def make_block(stage: Stage, c_in: int, c_out: int, stride: int) -> nn.Module:
    if stage.block == RESIDUAL:
        return BasicBlock(c_in, c_out, stage.kernel, stride)
    return InvertedResidual(c_in, c_out, stage.kernel, stride, stage.expansion)


class MBNetwork(nn.Module):
    def __init__(self, stages: Sequence[Stage], num_classes: int, in_channels: int, width: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()
        )
        blocks: list[nn.Module] = []
        channels = width
        for index, stage in enumerate(stages):
            c_out = stage_channels(width, index, stage.width)
            for block in range(stage.depth):
                stride = 2 if index > 0 and block == 0 else 1
                blocks.append(make_block(stage, channels, c_out, stride))
                channels = c_out
        self.blocks = nn.Sequential(*blocks)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.global_pooling(self.blocks(self.stem(x))).flatten(1))


class MBNetSpace:
    name = "mbnet"

    def parse(self, key: str | Sequence[int]) -> tuple[int, ...]:
        """The 15 integers; InvalidArchError naming the key and the first bad choice."""
        values = parse_int_tuple(key, KEY_LENGTH, self.name)
        for index, stage in enumerate(self.stages(values, checked=False)):
            _check_stage(format_key(values), index, stage)
        return values

    def stages(self, key: str | Sequence[int], checked: bool = True) -> list[Stage]:
        """The key's three stages as ``Stage`` tuples."""
        values = self.parse(key) if checked else tuple(key)
        step = len(FIELDS)
        return [Stage(*values[start:start + step]) for start in range(0, KEY_LENGTH, step)]

    def build(
        self,
        key: str | Sequence[int],
        num_classes: int = 10,
        in_channels: int = 3,
        width: int | None = None,
        depth: int | None = None,
    ) -> nn.Module:
        """The network of ``key``; ``width`` is the stem's channels (stage bases width·1/2/4); ``depth``
        is ignored (the key chooses each stage's depth)."""
        return MBNetwork(
            self.stages(key),
            num_classes=num_classes,
            in_channels=in_channels,
            width=DEFAULT_WIDTH if width is None else width,
        )

    def sample(self, rng: random.Random) -> str:
        """One of the 72³ keys, uniformly (each stage uniformly among its 72 choices)."""
        return format_key([value for _ in range(NUM_STAGES) for value in rng.choice(_STAGE_CHOICES)])


def _check_stage(shown: str, index: int, stage: Stage) -> None:
    where = f"mbnet: key {shown}: stage {index}"
    allowed = {"block": (RESIDUAL, INVERTED), "kernel": KERNELS, "expansion": EXPANSIONS, "depth": DEPTHS,
               "width": WIDTHS}
    for field, value in zip(FIELDS, stage):
        if value not in allowed[field]:
            choices = ", ".join(str(choice) for choice in allowed[field])
            raise InvalidArchError(f"{where}: {field} {value} is not one of {choices}")
    if stage.block == RESIDUAL and stage.expansion != 1:
        raise InvalidArchError(f"{where}: a residual (block 0) stage has expansion 1, not {stage.expansion}")
