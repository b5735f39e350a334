"""NAS-Bench-101 (Ying et al., ICML 2019): the network of google-research/nasbench, in PyTorch.

Key: 56 integers, the 7x7 upper-triangular adjacency matrix row by row, then 7 ops in NASLib's
numbering 0 = input, 1 = output, 2 = maxpool3x3, 3 = conv1x1-bn-relu, 4 = conv3x3-bn-relu.
Network: stem conv3x3-bn-relu (128 channels) → 3 stacks of 3 cells, a 2x2 max-pool and channel
doubling before stacks 2 and 3 → global average pool → ``classifier``. As in nasbench, vertices not
on an input→output path are pruned, interior vertices share the output channels
(``compute_vertex_channels``), the cell input reaches vertices through 1x1 projections, and
vertex-to-vertex edges truncate channels. Parameter counts match the benchmark's ``params``.
"""
from __future__ import annotations

import random
from typing import Callable, Iterable, Sequence

import torch
from torch import nn

from autoproxy.benchmark import format_key
from autoproxy.errors import InvalidArchError
from autoproxy.spaces import parse_int_tuple

NUM_VERTICES = 7
MAX_EDGES = 9
INPUT, OUTPUT, MAXPOOL, CONV1, CONV3 = range(5)
OP_NAMES: tuple[str, ...] = ("input", "output", "maxpool3x3", "conv1x1-bn-relu", "conv3x3-bn-relu")
INTERIOR_OPS = (MAXPOOL, CONV1, CONV3)
DEFAULT_WIDTH = 128
DEFAULT_DEPTH = 3
NUM_STACKS = 3
KEY_LENGTH = NUM_VERTICES * NUM_VERTICES + NUM_VERTICES


def split_key(values: Sequence[int]) -> tuple[list[list[int]], list[int]]:
    """(adjacency matrix as rows, ops) of the 56 integers."""
    n = NUM_VERTICES
    matrix = [list(values[row * n : (row + 1) * n]) for row in range(n)]
    return matrix, list(values[n * n :])


def prune(matrix: list[list[int]], ops: list[int]) -> tuple[list[list[int]], list[int]]:
    """Drop vertices not on an input→output path (nasbench ``ModelSpec._prune``).

    Returns empty lists when no path leads from the input to the output.
    """
    n = len(ops)
    from_input = _reachable(0, lambda v: (w for w in range(v + 1, n) if matrix[v][w]))
    to_output = _reachable(n - 1, lambda v: (u for u in range(v) if matrix[u][v]))
    kept = sorted(from_input & to_output)
    if len(kept) < 2:
        return [], []
    return [[matrix[u][v] for v in kept] for u in kept], [ops[v] for v in kept]


def _reachable(start: int, neighbours: Callable[[int], Iterable[int]]) -> set[int]:
    seen, frontier = {start}, [start]
    while frontier:
        for vertex in neighbours(frontier.pop()):
            if vertex not in seen:
                seen.add(vertex)
                frontier.append(vertex)
    return seen


def compute_vertex_channels(c_in: int, c_out: int, matrix: list[list[int]]) -> list[int]:
    """Channels per vertex, as nasbench ``ComputeVertexChannels``.

    The output concatenates the vertices feeding it, so those split ``c_out`` (the first ones get
    the remainder); every other interior vertex takes the widest of its successors, which then
    truncate it.
    """
    n = len(matrix)
    channels = [0] * n
    channels[0], channels[n - 1] = c_in, c_out
    if n == 2:
        return channels
    fan_in_output = sum(matrix[v][n - 1] for v in range(1, n - 1))
    share, remainder = divmod(c_out, fan_in_output)
    for v in range(1, n - 1):
        if matrix[v][n - 1]:
            channels[v] = share + (1 if remainder > 0 else 0)
            remainder -= 1
    for v in range(n - 3, 0, -1):
        if not matrix[v][n - 1]:
            for dest in range(v + 1, n - 1):
                if matrix[v][dest]:
                    channels[v] = max(channels[v], channels[dest])
    return channels


class ConvBnRelu(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=False),
        )


def make_op(op: int, channels: int) -> nn.Module:
    if op == MAXPOOL:
        return nn.MaxPool2d(3, stride=1, padding=1)
    return ConvBnRelu(channels, channels, 1 if op == CONV1 else 3)


class Cell(nn.Module):
    """One nasbench module on a pruned graph: vertex t = op(sum of truncated predecessors and the
    projected input); output = concat of the vertices feeding it (+ projected input if connected)."""

    def __init__(self, matrix: list[list[int]], ops: list[int], c_in: int, c_out: int) -> None:
        super().__init__()
        self.matrix = matrix
        n = len(ops)
        self.channels = compute_vertex_channels(c_in, c_out, matrix)
        self.projections = nn.ModuleDict(
            {str(v): ConvBnRelu(c_in, self.channels[v], 1) for v in range(1, n) if matrix[0][v]}
        )
        self.vertex_ops = nn.ModuleDict({str(v): make_op(ops[v], self.channels[v]) for v in range(1, n - 1)})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = len(self.matrix)
        values: list[torch.Tensor] = [x]
        concat: list[torch.Tensor] = []
        for t in range(1, n - 1):
            inputs = [values[s][:, : self.channels[t]] for s in range(1, t) if self.matrix[s][t]]
            if self.matrix[0][t]:
                inputs.append(self.projections[str(t)](x))
            values.append(self.vertex_ops[str(t)](sum(inputs[1:], inputs[0])))
            if self.matrix[t][n - 1]:
                concat.append(values[t])
        if not concat:
            return self.projections[str(n - 1)](x)
        out = torch.cat(concat, dim=1) if len(concat) > 1 else concat[0]
        if self.matrix[0][n - 1]:
            out = out + self.projections[str(n - 1)](x)
        return out


class NB101Network(nn.Module):
    def __init__(
        self,
        matrix: list[list[int]],
        ops: list[int],
        num_classes: int,
        in_channels: int,
        width: int,
        depth: int,
    ) -> None:
        super().__init__()
        self.stem = ConvBnRelu(in_channels, width, 3)
        layers: list[nn.Module] = []
        c_in = c_out = width
        for stack in range(NUM_STACKS):
            if stack > 0:
                # ceil_mode: TF's "same" padding, so odd sizes keep their last row/column.
                layers.append(nn.MaxPool2d(2, stride=2, ceil_mode=True))
                c_out *= 2
            for _ in range(depth):
                layers.append(Cell(matrix, ops, c_in, c_out))
                c_in = c_out
        self.layers = nn.Sequential(*layers)
        self.classifier = nn.Linear(c_out, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # A plain mean, as nasbench's reduce_mean: no pooling module, so FLOP counters see none.
        return self.classifier(self.layers(self.stem(x)).mean(dim=(2, 3)))


class NB101Space:
    name = "nb101"

    def parse(self, key: str | Sequence[int]) -> tuple[int, ...]:
        """The 56 integers, checked as nasbench's ``is_valid`` does.

        Like nasbench, the edge limit applies to the pruned graph: NASLib's keys keep dead-end
        vertices, so the raw matrix of a valid key may hold more than 9 edges.
        """
        values = parse_int_tuple(key, KEY_LENGTH, self.name)
        shown = format_key(values)
        matrix, ops = split_key(values)
        if any(value not in (0, 1) for row in matrix for value in row):
            raise InvalidArchError(f"nb101: key {shown}: adjacency entries must be 0 or 1")
        if any(matrix[u][v] for u in range(NUM_VERTICES) for v in range(u + 1)):
            raise InvalidArchError(f"nb101: key {shown}: adjacency matrix is not strictly upper-triangular")
        if ops[0] != INPUT or ops[-1] != OUTPUT:
            raise InvalidArchError(
                f"nb101: key {shown}: first op must be {INPUT} (input), last {OUTPUT} (output)"
            )
        if any(op not in INTERIOR_OPS for op in ops[1:-1]):
            allowed = ", ".join(f"{op} ({OP_NAMES[op]})" for op in INTERIOR_OPS)
            raise InvalidArchError(f"nb101: key {shown}: interior ops must be one of {allowed}")
        pruned_matrix, pruned_ops = prune(matrix, ops)
        if not pruned_ops:
            raise InvalidArchError(f"nb101: key {shown}: no path from input to output")
        edges = sum(map(sum, pruned_matrix))
        if edges > MAX_EDGES:
            raise InvalidArchError(f"nb101: key {shown}: {edges} edges after pruning, at most {MAX_EDGES}")
        return values

    def build(
        self,
        key: str | Sequence[int],
        num_classes: int = 10,
        in_channels: int = 3,
        width: int | None = None,
        depth: int | None = None,
    ) -> nn.Module:
        """The network of ``key``; ``width`` is the stem's channels, ``depth`` the cells per stack."""
        values = self.parse(key)
        matrix, ops = prune(*split_key(values))
        width = DEFAULT_WIDTH if width is None else width
        fan_in_output = sum(row[-1] for row in matrix[1:])
        if width < max(fan_in_output, 1):
            raise ValueError(
                f"nb101: width {width} is too small for key {format_key(values)}: "
                f"its output concatenates {fan_in_output} vertices, each needs a channel"
            )
        return NB101Network(
            matrix,
            ops,
            num_classes=num_classes,
            in_channels=in_channels,
            width=width,
            depth=DEFAULT_DEPTH if depth is None else depth,
        )

    def sample(self, rng: random.Random) -> str:
        """A valid key, uniformly over valid labelled encodings (rejection sampling, as NASLib)."""
        while True:
            matrix = [
                [rng.randrange(2) if v > u else 0 for v in range(NUM_VERTICES)]
                for u in range(NUM_VERTICES)
            ]
            ops = [INPUT] + [rng.choice(INTERIOR_OPS) for _ in range(NUM_VERTICES - 2)] + [OUTPUT]
            values = [value for row in matrix for value in row] + ops
            try:
                return format_key(self.parse(values))
            except InvalidArchError:
                continue
