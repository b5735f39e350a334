"""NAS-Bench-301: the DARTS space (Liu et al., ICLR 2019) as NASLib builds it for NAS-Bench-Suite-Zero.

Key: NASLib's compact encoding ``[normal, reduction]``, each 8 ``(input, op)`` pairs, two per
intermediate node 2..5 in order; input 0 and 1 are the cell inputs c_{k-2} and c_{k-1}, 2..5 earlier
intermediate nodes; a node reads two distinct inputs. Ops: 0 max_pool_3x3, 1 avg_pool_3x3,
2 skip_connect, 3 sep_conv_3x3, 4 sep_conv_5x5, 5 dil_conv_3x3, 6 dil_conv_5x5.
Canonical spelling (the file's): ``"[[(0, 0), (1, 5), ...], [(1, 0), ...]]"``.

Network (NASLib ``NasBench301SearchSpace``, whose parameter counts the benchmark's ``params`` match):
stem conv3x3 + BN (3C channels) → ``depth`` cells, the ones at depth//3 and 2·depth//3 reducing
(stride 2 on the edges from the cell inputs, channels doubled) → global average pool →
``classifier``. Each cell preprocesses c_{k-2} and c_{k-1} with ReLU-Conv1x1-BN to its C channels
(a FactorizedReduce for c_{k-2} right after a reduction cell), sums two ops per node and
concatenates nodes 2..5 (4C channels). Preprocessing BNs are affine, the ops' BNs are not;
pools are followed by a BN, skip in a reduction cell is a FactorizedReduce. NASLib attaches its
auxiliary head only in ``prepare_evaluation``; the file's ``params`` and ``flops`` match a network
without it (all 507 archs exactly), so it is absent here.
"""
from __future__ import annotations

import random
from typing import Sequence

import torch
from torch import nn

from autoproxy.benchmark import format_key
from autoproxy.errors import InvalidArchError
from autoproxy.spaces import key_values
from autoproxy.spaces.nb201 import ReLUConvBN

OP_NAMES: tuple[str, ...] = (
    "max_pool_3x3", "avg_pool_3x3", "skip_connect",
    "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5",
)
MAX_POOL, AVG_POOL, SKIP, SEP_CONV_3, SEP_CONV_5, DIL_CONV_3, DIL_CONV_5 = range(len(OP_NAMES))
CELL_INPUTS = 2
NUM_NODES = 4
INPUTS_PER_NODE = 2
PAIRS_PER_CELL = NUM_NODES * INPUTS_PER_NODE
CELL_NAMES = ("normal", "reduction")
DEFAULT_WIDTH = 32  # NASLib's channels [32, 64, 128]; the file's params match these, not 16/32/64
DEFAULT_DEPTH = 8
STEM_MULTIPLIER = 3

Genes = tuple[tuple[int, int], ...]


class FactorizedReduce(nn.Module):
    """Halves the resolution with two strided 1x1 convs, one shifted by a pixel, concatenated.

    The shifted branch is padded by one row and column at the far side, so odd sizes give the same
    output size as the other branch; for even sizes the padding is never sampled (DARTS' values).
    """

    def __init__(self, c_in: int, c_out: int, affine: bool) -> None:
        super().__init__()
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out - c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        shifted = nn.functional.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))


class SepConv(nn.Sequential):
    """DARTS' separable conv: (ReLU, depthwise k×k, pointwise, BN) twice, the first one strided."""

    def __init__(self, channels: int, kernel: int, stride: int) -> None:
        super().__init__(
            *_dil_conv_layers(channels, kernel, stride, dilation=1),
            *_dil_conv_layers(channels, kernel, 1, dilation=1),
        )


class DilConv(nn.Sequential):
    """DARTS' dilated separable conv: ReLU, depthwise k×k with dilation 2, pointwise, BN."""

    def __init__(self, channels: int, kernel: int, stride: int) -> None:
        super().__init__(*_dil_conv_layers(channels, kernel, stride, dilation=2))


def _dil_conv_layers(channels: int, kernel: int, stride: int, dilation: int) -> list[nn.Module]:
    padding = dilation * (kernel - 1) // 2
    return [
        nn.ReLU(inplace=False),
        nn.Conv2d(channels, channels, kernel, stride, padding, dilation, groups=channels, bias=False),
        nn.Conv2d(channels, channels, 1, bias=False),
        nn.BatchNorm2d(channels, affine=False),
    ]


def make_op(op: int, channels: int, stride: int) -> nn.Module:
    """One edge op; stride 2 on a reduction cell's edges from its inputs."""
    if op == MAX_POOL:
        return nn.Sequential(nn.MaxPool2d(3, stride, padding=1), nn.BatchNorm2d(channels, affine=False))
    if op == AVG_POOL:
        pool = nn.AvgPool2d(3, stride, padding=1, count_include_pad=False)
        return nn.Sequential(pool, nn.BatchNorm2d(channels, affine=False))
    if op == SKIP:
        return nn.Identity() if stride == 1 else FactorizedReduce(channels, channels, affine=False)
    if op in (SEP_CONV_3, SEP_CONV_5):
        return SepConv(channels, 3 if op == SEP_CONV_3 else 5, stride)
    return DilConv(channels, 3 if op == DIL_CONV_3 else 5, stride)


class Cell(nn.Module):
    """Node 2 + j = sum of its two ops on earlier states; the output concatenates nodes 2..5."""

    def __init__(
        self,
        genes: Genes,
        c_prev_prev: int,
        c_prev: int,
        channels: int,
        reduction: bool,
        reduction_prev: bool,
    ) -> None:
        super().__init__()
        self.preprocess0: nn.Module = (
            FactorizedReduce(c_prev_prev, channels, affine=True)
            if reduction_prev
            else ReLUConvBN(c_prev_prev, channels, 1, 1)
        )
        self.preprocess1 = ReLUConvBN(c_prev, channels, 1, 1)
        self.sources = [source for source, _ in genes]
        self.edges = nn.ModuleList(
            make_op(op, channels, 2 if reduction and source < CELL_INPUTS else 1) for source, op in genes
        )

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for node in range(NUM_NODES):
            edges = range(node * INPUTS_PER_NODE, (node + 1) * INPUTS_PER_NODE)
            states.append(sum(self.edges[edge](states[self.sources[edge]]) for edge in edges))
        return torch.cat(states[CELL_INPUTS:], dim=1)


def reduction_cells(depth: int) -> set[int]:
    """Indices of the reduction cells, as DARTS places them: a third and two thirds of the way."""
    return {depth // 3, 2 * depth // 3}


class NB301Network(nn.Module):
    def __init__(
        self, normal: Genes, reduction: Genes, num_classes: int, in_channels: int, width: int, depth: int
    ) -> None:
        super().__init__()
        stem_channels = STEM_MULTIPLIER * width
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, stem_channels, 3, padding=1, bias=False), nn.BatchNorm2d(stem_channels)
        )
        c_prev_prev, c_prev, channels = stem_channels, stem_channels, width
        reduces, reduction_prev = reduction_cells(depth), False
        cells: list[Cell] = []
        for index in range(depth):
            is_reduction = index in reduces
            channels *= 2 if is_reduction else 1
            genes = reduction if is_reduction else normal
            cells.append(Cell(genes, c_prev_prev, c_prev, channels, is_reduction, reduction_prev))
            c_prev_prev, c_prev, reduction_prev = c_prev, NUM_NODES * channels, is_reduction
        self.cells = nn.ModuleList(cells)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return self.classifier(self.global_pooling(s1).flatten(1))


class NB301Space:
    name = "nb301"

    def parse(self, key: str | Sequence) -> tuple[Genes, Genes]:
        """(normal, reduction) genes; InvalidArchError naming the key for a malformed encoding."""
        values = key_values(key, self.name)
        shown = format_key(values)
        if not _is_compact(values):
            raise InvalidArchError(
                f"nb301: key {shown} is not 2 cells of {PAIRS_PER_CELL} (input, op) pairs"
            )
        for cell_name, genes in zip(CELL_NAMES, values):
            _check_genes(shown, cell_name, genes)
        return values

    def build(
        self,
        key: str | Sequence,
        num_classes: int = 10,
        in_channels: int = 3,
        width: int | None = None,
        depth: int | None = None,
    ) -> nn.Module:
        """The network of ``key``; ``width`` is the first cells' channels C, ``depth`` the number of cells."""
        normal, reduction = self.parse(key)
        return NB301Network(
            normal,
            reduction,
            num_classes=num_classes,
            in_channels=in_channels,
            width=DEFAULT_WIDTH if width is None else width,
            depth=DEFAULT_DEPTH if depth is None else depth,
        )

    def sample(self, rng: random.Random) -> str:
        """A valid key, uniformly: per node an ordered pair of distinct inputs and two ops, as NASLib."""
        return format_key([_sample_genes(rng) for _ in CELL_NAMES])


def _is_compact(values: tuple) -> bool:
    """Whether ``values`` has the shape 2 × 8 × (input, op) with integers at the leaves."""
    return (
        len(values) == len(CELL_NAMES)
        and all(isinstance(genes, tuple) and len(genes) == PAIRS_PER_CELL for genes in values)
        and all(
            isinstance(pair, tuple) and len(pair) == 2 and all(isinstance(value, int) for value in pair)
            for genes in values
            for pair in genes
        )
    )


def _check_genes(shown: str, cell_name: str, genes: Genes) -> None:
    for node in range(NUM_NODES):
        pairs = genes[node * INPUTS_PER_NODE : (node + 1) * INPUTS_PER_NODE]
        where = f"nb301: key {shown}: {cell_name} cell, node {node + CELL_INPUTS}"
        for source, op in pairs:
            if not 0 <= op < len(OP_NAMES):
                raise InvalidArchError(f"{where}: op {op} outside 0..{len(OP_NAMES) - 1}")
            if not 0 <= source < node + CELL_INPUTS:
                raise InvalidArchError(f"{where}: input {source} is not an earlier node (0..{node + 1})")
        if len({source for source, _ in pairs}) < len(pairs):
            raise InvalidArchError(f"{where}: reads input {pairs[0][0]} twice")


def _sample_genes(rng: random.Random) -> list[tuple[int, int]]:
    genes: list[tuple[int, int]] = []
    for node in range(NUM_NODES):
        sources = rng.sample(range(node + CELL_INPUTS), INPUTS_PER_NODE)
        genes.extend((source, rng.randrange(len(OP_NAMES))) for source in sources)
    return genes
