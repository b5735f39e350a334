"""NAS-Bench-201: the cell-based "TinyNetwork" of Dong & Yang (ICLR 2020), as xautodl builds it.

Network: stem (conv3x3 + BN) → N cells → ResNet reduction block → N cells (2C) → reduction →
N cells (4C) → BN + ReLU → global average pool → ``classifier``. The cell is a 4-node DAG; the key
names one op per edge in NASLib's order (1,2),(1,3),(1,4),(2,3),(2,4),(3,4) and op numbering
0 = skip, 1 = zero, 2 = ReLU-Conv3x3-BN, 3 = ReLU-Conv1x1-BN, 4 = avg-pool 3x3.
The layout (and so the parameter count) matches the benchmark's ``params`` exactly.
"""
from __future__ import annotations

import random
from typing import Sequence

import torch
from torch import nn

from autoproxy.benchmark import format_key
from autoproxy.errors import InvalidArchError
from autoproxy.spaces import parse_int_tuple

EDGES: tuple[tuple[int, int], ...] = ((1, 2), (1, 3), (1, 4), (2, 3), (2, 4), (3, 4))
OP_NAMES: tuple[str, ...] = ("skip_connect", "none", "nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3")
SKIP, ZERO, CONV3, CONV1, POOL = range(5)
DEFAULT_WIDTH = 16
DEFAULT_DEPTH = 5


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(c_out),
        )


class Zero(nn.Module):
    """The "none" op. Multiplying by 0 (not ``zeros_like``) keeps the graph, so gradients are 0, not None."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


def make_op(op: int, channels: int) -> nn.Module:
    if op == SKIP:
        return nn.Identity()
    if op == ZERO:
        return Zero()
    if op == CONV3:
        return ReLUConvBN(channels, channels, 3, 1)
    if op == CONV1:
        return ReLUConvBN(channels, channels, 1, 1)
    return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)


class Cell(nn.Module):
    """Node j = sum over i < j of edge_op(i, j)(node i); the cell's output is node 4."""

    def __init__(self, ops: Sequence[int], channels: int) -> None:
        super().__init__()
        self.edges = nn.ModuleList(make_op(op, channels) for op in ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = {1: x}
        for target in (2, 3, 4):
            nodes[target] = sum(
                self.edges[index](nodes[source])
                for index, (source, dest) in enumerate(EDGES)
                if dest == target
            )
        return nodes[4]


class ResNetBlock(nn.Module):
    """The reduction block between stages: two ReLU-Conv3x3-BN (first strided) + avg-pool/1x1 shortcut.

    The shortcut pools with ``ceil_mode`` so odd input sizes stay aligned with the strided conv
    (identical to xautodl's floor mode for even sizes).
    """

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1)
        self.downsample = nn.Sequential(
            nn.AvgPool2d(2, stride=2, ceil_mode=True, count_include_pad=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))


class NB201Network(nn.Module):
    def __init__(
        self, ops: Sequence[int], num_classes: int, in_channels: int, width: int, depth: int
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width)
        )
        cells: list[nn.Module] = []
        channels = width
        for stage in range(3):
            if stage > 0:
                cells.append(ResNetBlock(channels, channels * 2))
                channels *= 2
            cells.extend(Cell(ops, channels) for _ in range(depth))
        self.cells = nn.Sequential(*cells)
        self.lastact = nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(inplace=False))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.lastact(self.cells(self.stem(x)))
        return self.classifier(self.global_pooling(features).flatten(1))


class NB201Space:
    name = "nb201"

    def parse(self, key: str | Sequence[int]) -> tuple[int, ...]:
        ops = parse_int_tuple(key, len(EDGES), self.name)
        if any(not 0 <= op < len(OP_NAMES) for op in ops):
            raise InvalidArchError(f"nb201: key {format_key(ops)} has an op outside 0..{len(OP_NAMES) - 1}")
        return ops

    def build(
        self,
        key: str | Sequence[int],
        num_classes: int = 10,
        in_channels: int = 3,
        width: int | None = None,
        depth: int | None = None,
    ) -> nn.Module:
        """The network of ``key``; ``width`` is the stem's channels C, ``depth`` the cells per stage N."""
        return NB201Network(
            self.parse(key),
            num_classes=num_classes,
            in_channels=in_channels,
            width=DEFAULT_WIDTH if width is None else width,
            depth=DEFAULT_DEPTH if depth is None else depth,
        )

    def sample(self, rng: random.Random) -> str:
        """One of the 5^6 keys, uniformly."""
        return format_key([rng.randrange(len(OP_NAMES)) for _ in EDGES])


def is_connected(ops: Sequence[int]) -> bool:
    """Whether some path of non-zero ops leads from the cell input (node 1) to its output (node 4)."""
    reached = {1}
    for (source, dest), op in zip(EDGES, ops):  # EDGES is in topological order
        if op != ZERO and source in reached:
            reached.add(dest)
    return 4 in reached
