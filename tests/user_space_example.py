"""A complete user search space, the README's plug-in example: ``--space user_space_example:SPACE``.

Key: one entry per block, the kernel size of its conv-BN-ReLU (1, 3 or 5) or 0 to leave the block
out, e.g. ``"(3, 0, 5, 1)"`` (4^4 = 256 archs). Network: stem conv → blocks 1-2 → 2x2 max-pool →
blocks 3-4 → global average pool → linear classifier; ``width`` is the channels (default 16).
"""
import random

from torch import nn

from autoproxy.errors import InvalidArchError
from autoproxy.spaces import format_key, parse_int_tuple

KERNELS = (0, 1, 3, 5)
BLOCKS = 4


def conv_bn_relu(c_in: int, c_out: int, kernel: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]


class ChainSpace:
    name = "chain"

    def parse(self, key) -> tuple[int, ...]:
        kernels = parse_int_tuple(key, BLOCKS, self.name)
        if any(kernel not in KERNELS for kernel in kernels):
            raise InvalidArchError(f"chain: key {format_key(kernels)} has a kernel outside {KERNELS}")
        return kernels

    def build(self, key, num_classes=10, in_channels=3, width=None, depth=None) -> nn.Module:
        width = 16 if width is None else width          # depth: this space has no such knob
        layers = conv_bn_relu(in_channels, width, 3)
        for block, kernel in enumerate(self.parse(key)):
            layers += conv_bn_relu(width, width, kernel) if kernel else []
            layers += [nn.MaxPool2d(2)] if block == 1 else []
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes)]
        return nn.Sequential(*layers)

    def sample(self, rng: random.Random) -> str:
        return format_key([rng.choice(KERNELS) for _ in range(BLOCKS)])


SPACE = ChainSpace()
