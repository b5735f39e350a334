"""The building blocks of modern networks, built in plain torch (no timm), for the tests of both
``compute_statistics`` (tests/test_statistics_models.py) and the reference proxies
(tests/test_proxies_models.py).

One definition of each block kind lives here so that statistics and proxies are tested on the same
blocks: a layout the statistics handle (say a channels-last Linear, a fused qkv, an activation inside a
batch norm) is then the layout the proxies score. Sizes, activations and the attention variant are
parameters, since the two files need different ones; every block ends in a ``head`` Linear with
``classes`` outputs."""
from __future__ import annotations

import torch
from torch import nn

CLASSES = 5


class SqueezeExcite(nn.Module):
    """MobileNetV3's squeeze-excite: global mean → 1x1 reduce → ReLU → 1x1 expand → Hardsigmoid gate."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, channels // 2, 1)
        self.relu = nn.ReLU()
        self.expand = nn.Conv2d(channels // 2, channels, 1)
        self.gate = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.expand(self.relu(self.reduce(x.mean((2, 3), keepdim=True)))))


class MobileBlock(nn.Module):
    """MobileNetV3: conv → BN → Hardswish → depthwise conv → squeeze-excite (Hardsigmoid gate: neither
    Hardswish nor Hardsigmoid has a double backward) → mean → head."""

    def __init__(self, channels: int = 8, classes: int = CLASSES) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, channels, 3, padding=1)
        self.bn = nn.BatchNorm2d(channels)
        self.act = nn.Hardswish()
        self.depthwise = nn.Conv2d(channels, channels, 3, padding=1, groups=channels)
        self.se = SqueezeExcite(channels)
        self.head = nn.Linear(channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.se(self.depthwise(self.act(self.bn(self.stem(x)))))
        return self.head(x.mean((2, 3)))


class FusedQkvAttention(nn.Module):
    """timm's ``Attention``: one fused qkv Linear, functional matmuls and softmax, an output projection."""

    def __init__(self, dim: int, heads: int = 2) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = x.shape
        q, k, v = self.qkv(x).reshape(batch, tokens, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        attention = (q @ k.transpose(-2, -1) * (dim // self.heads) ** -0.5).softmax(-1)
        return self.proj((attention @ v).transpose(1, 2).reshape(batch, tokens, dim))


class Mlp(nn.Module):
    """timm's ``Mlp``: fc1 → activation → fc2, on the last dimension."""

    def __init__(self, features: int, hidden: int, out: int, act: type[nn.Module] = nn.GELU) -> None:
        super().__init__()
        self.fc1 = nn.Linear(features, hidden)
        self.act = act()
        self.fc2 = nn.Linear(hidden, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


ATTENTIONS = ("fused", "torch", "torch_sequence_first")


class VitBlock(nn.Module):
    """Patch embedding (Conv2d, stride = patch) → tokens → a pre-norm transformer block → head on the
    mean token.

    ``attention``: ``"fused"`` (timm's fused qkv), ``"torch"`` (``nn.MultiheadAttention`` with (B, T, E)
    tensors), ``"torch_sequence_first"`` (the same module with ``batch_first=False`` and (T, B, E) tensors,
    its state dict the same as ``"torch"``'s) or None (no attention); ``mlp``: whether the block has its
    LayerNorm → GELU MLP."""

    def __init__(self, dim: int = 16, patch: int = 4, attention: str | None = "fused", mlp: bool = True,
                 classes: int = CLASSES) -> None:
        super().__init__()
        if attention not in ATTENTIONS + (None,):
            raise ValueError(f"attention {attention!r} is not one of {ATTENTIONS} or None")
        self.embed = nn.Conv2d(3, dim, patch, stride=patch)
        if attention is not None:
            self.norm1 = nn.LayerNorm(dim)
            self.attn = (FusedQkvAttention(dim) if attention == "fused" else
                         nn.MultiheadAttention(dim, 2, batch_first=attention == "torch"))
        if mlp:
            self.norm2 = nn.LayerNorm(dim)
            self.mlp = Mlp(dim, 2 * dim, dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x).flatten(2).transpose(1, 2)                    # (B, tokens, dim)
        if hasattr(self, "attn"):
            x = x + self.attention(self.norm1(x))
        if hasattr(self, "mlp"):
            x = x + self.mlp(self.norm2(x))
        return self.head(x.mean(1))

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(self.attn, nn.MultiheadAttention):
            return self.attn(x)
        if not self.attn.batch_first:
            x = x.transpose(0, 1)
        mixed = self.attn(x, x, x)[0]        # need_weights=False would take a path without double backward
        return mixed if self.attn.batch_first else mixed.transpose(0, 1)


class ConvNeXtBlock(nn.Module):
    """Stem → dwconv → permute → LayerNorm → Linear → GELU → Linear → permute (Linear on channels-last
    maps) → residual → mean → head."""

    def __init__(self, dim: int = 8, classes: int = CLASSES) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, dim, 2, stride=2)
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        y = self.dwconv(x).permute(0, 2, 3, 1)                           # (B, H, W, C)
        y = self.pwconv2(self.act(self.pwconv1(self.norm(y)))).permute(0, 3, 1, 2)
        return self.head((x + y).mean((2, 3)))


class BatchNormAct2d(nn.BatchNorm2d):
    """timm's ``BatchNormAct2d``: a ``BatchNorm2d`` subclass applying its activation inside ``forward``."""

    def __init__(self, channels: int, act: nn.Module | None = None) -> None:
        super().__init__(channels)
        self.act = nn.SiLU() if act is None else act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(super().forward(x))


class NormActNet(nn.Module):
    """conv → ``norm`` (the given modules in turn: a ``BatchNormAct2d``, a norm and an activation, ...;
    none: an identity) → [conv2] → mean → head. ``conv2``: a conv fed by the norm (a node fed by its
    activation, as nwot needs); without it the head reads the pooled normed maps."""

    def __init__(self, *norm: nn.Module, channels: int = 6, conv2: bool = True, classes: int = CLASSES) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, channels, 3, padding=1)
        self.norm = nn.Sequential(*norm)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1) if conv2 else nn.Identity()
        self.head = nn.Linear(channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv2(self.norm(self.conv(x))).mean((2, 3)))


class Conv1dNet(nn.Module):
    """(B, C, L): Conv1d → activation → grouped Conv1d → mean over positions → head; without ``stem`` the
    grouped Conv1d reads the input itself (as after a ``Conv3dNet``'s activation)."""

    def __init__(self, in_channels: int = 3, channels: int = 6, groups: int = 3, act: type[nn.Module] = nn.ReLU,
                 stem: bool = True, padding: int = 0, classes: int = CLASSES) -> None:
        super().__init__()
        if stem:
            self.conv = nn.Conv1d(in_channels, channels, 3, padding=1)
            self.act = act()
        self.conv2 = nn.Conv1d(channels if stem else in_channels, channels, 3, padding=padding, groups=groups)
        self.head = nn.Linear(channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if hasattr(self, "conv"):
            x = self.act(self.conv(x))
        return self.head(self.conv2(x).mean(2))


class Conv3dNet(nn.Module):
    """(B, C, D, H, W): Conv3d → activation → mean → head; with ``then`` (say a ``Conv1dNet``) in place of
    the mean and head, the activated maps flattened to (B, C, D·H·W) go on through ``then``."""

    def __init__(self, in_channels: int = 2, channels: int = 4, act: type[nn.Module] = nn.ReLU,
                 then: nn.Module | None = None, classes: int = CLASSES) -> None:
        super().__init__()
        self.conv = nn.Conv3d(in_channels, channels, 3, padding=1)
        self.act = act()
        if then is None:
            self.head = nn.Linear(channels, classes)
        else:
            self.then = then

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.conv(x).flatten(2))          # (B, C, D·H·W): the activation feeds ``then``
        return self.then(x) if hasattr(self, "then") else self.head(x.mean(2))


class TokenMLP(nn.Module):
    """An ``Mlp`` on (B, T, C) tokens averaged over T; with ``conv``, the same weights as 1x1 Conv1d on
    (B, C, T)."""

    def __init__(self, conv: bool, features: int = 6, hidden: int = 10, classes: int = CLASSES) -> None:
        super().__init__()
        self.conv = conv
        self.mlp = Mlp(features, hidden, classes)
        if conv:
            self.mlp.fc1, self.mlp.fc2 = self.as_conv(self.mlp.fc1), self.as_conv(self.mlp.fc2)

    @staticmethod
    def as_conv(linear: nn.Linear) -> nn.Conv1d:
        conv = nn.Conv1d(linear.in_features, linear.out_features, 1)
        with torch.no_grad():
            conv.weight.copy_(linear.weight[:, :, None])
            conv.bias.copy_(linear.bias)
        return conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:   # x: (B, T, C)
        if self.conv:
            return self.mlp(x.transpose(1, 2)).mean(2)
        return self.mlp(x).mean(1)


def mlp(features: int = 3 * 4 * 4, hidden: int = 12, act: type[nn.Module] = nn.SiLU,
        classes: int = CLASSES) -> nn.Sequential:
    """Flatten → Linear on (B, C) → activation → Linear."""
    return nn.Sequential(nn.Flatten(), nn.Linear(features, hidden), act(), nn.Linear(hidden, classes))
