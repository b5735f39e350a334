"""Reference proxies on the building blocks of modern networks (built here in torch, no timm): every
proxy gives a finite value or NaN with a one-line warning, honours ``split_data``, lays activations out
as (batch, channels, positions) and leaves the caller's model alone."""
from __future__ import annotations

import copy
import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from autoproxy.errors import StatisticsError
from autoproxy.proxies import reference_names, reference_proxy

pytestmark = pytest.mark.usefixtures("one_torch_thread_per_module")
PROXIES = reference_names()
LOSS_PROXIES = ["fisher", "grad_norm", "grasp", "plain", "snip", "zico"]
CLASSES = 5


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, channels // 2, 1)
        self.act = nn.ReLU()
        self.expand = nn.Conv2d(channels // 2, channels, 1)
        self.gate = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.expand(self.act(self.reduce(self.pool(x)))))


def mobilenet_v3_block() -> nn.Module:
    """Hardswish, depthwise conv and a hardsigmoid squeeze-excite (hardsigmoid: no double backward)."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.Hardswish(),
        nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False), nn.BatchNorm2d(8), nn.Hardswish(),
        SqueezeExcite(8), nn.Conv2d(8, 12, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(12, CLASSES))


class Attention(nn.Module):
    """timm's ``Attention``: one fused qkv Linear, functional matmuls, an output projection."""

    def __init__(self, dim: int, heads: int = 2) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = x.shape
        q, k, v = self.qkv(x).reshape(batch, tokens, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        attn = (q @ k.transpose(-2, -1) * (dim // self.heads) ** -0.5).softmax(-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(batch, tokens, dim))


class VitBlock(nn.Module):
    """Patch embedding, a pre-norm transformer block (timm-style attention or nn.MultiheadAttention),
    a GELU MLP and a head on the mean token."""

    def __init__(self, dim: int = 16, patch: int = 4, torch_attention: bool = False) -> None:
        super().__init__()
        self.embed = nn.Conv2d(3, dim, patch, stride=patch)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, 2, batch_first=True) if torch_attention else Attention(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.head = nn.Linear(dim, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x).flatten(2).transpose(1, 2)
        y = self.norm1(x)
        x = x + (self.attn(y, y, y)[0] if isinstance(self.attn, nn.MultiheadAttention) else self.attn(y))
        x = x + self.mlp(self.norm2(x))
        return self.head(x.mean(1))


class ConvNeXtBlock(nn.Module):
    """dwconv → permute → LayerNorm → Linear → GELU → Linear → permute (Linear on channels-last maps)."""

    def __init__(self, dim: int = 8) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, dim, 2, stride=2)
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.head = nn.Linear(dim, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        y = self.pwconv2(self.act(self.pwconv1(self.norm(self.dwconv(x).permute(0, 2, 3, 1)))))
        return self.head((x + y.permute(0, 3, 1, 2)).mean((2, 3)))


class BatchNormAct2d(nn.BatchNorm2d):
    """timm's ``BatchNormAct2d``: a batch norm applying its activation in ``forward``."""

    def __init__(self, channels: int, act: type[nn.Module] = nn.SiLU) -> None:
        super().__init__(channels)
        self.act = act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(super().forward(x))


def norm_act_net(fused: bool) -> nn.Module:
    torch.manual_seed(0)
    norm = [BatchNormAct2d(6)] if fused else [nn.BatchNorm2d(6), nn.SiLU()]
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), *norm, nn.Conv2d(6, 4, 3, padding=1),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, CLASSES))


def conv1d_3d_net() -> nn.Module:
    """Conv3d and grouped Conv1d on a (B, C, D, H, W) input."""

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv3d = nn.Conv3d(3, 4, 3, padding=1)
            self.act = nn.SiLU()
            self.conv1d = nn.Conv1d(4, 8, 3, padding=1, groups=2)
            self.head = nn.Linear(8, CLASSES)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.act(self.conv3d(x).flatten(2))
            return self.head(self.conv1d(x).mean(2))

    return Net()


def mlp() -> nn.Module:
    """Linear on (B, C) with SiLU."""
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 12), nn.SiLU(), nn.Linear(12, CLASSES))


BUILDERS = {
    "mobilenet_v3": (mobilenet_v3_block, (3, 8, 8)),
    "vit": (VitBlock, (3, 8, 8)),
    "vit_mha": (lambda: VitBlock(torch_attention=True), (3, 8, 8)),
    "convnext": (ConvNeXtBlock, (3, 8, 8)),
    "norm_act": (lambda: norm_act_net(True), (3, 6, 6)),
    "conv1d_3d": (conv1d_3d_net, (3, 3, 4, 4)),
    "mlp": (mlp, (3, 4, 4)),
}
WITHOUT_BATCH_NORM = ["vit", "vit_mha", "convnext", "conv1d_3d", "mlp"]


def build(name: str) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    builder, shape = BUILDERS[name]
    torch.manual_seed(0)
    net = builder()
    generator = torch.Generator().manual_seed(1)
    return net, torch.randn(8, *shape, generator=generator), torch.randint(0, CLASSES, (8,), generator=generator)


def score(name: str, net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, **kwargs) -> tuple[float, list[str]]:
    """The proxy's value and the warnings it gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = reference_proxy(name)(net, inputs, targets, **kwargs)
    return value, [str(warning.message) for warning in caught]


@pytest.mark.parametrize("model", sorted(BUILDERS))
def test_every_proxy_is_finite_or_nan_with_a_warning(model):
    net, inputs, targets = build(model)
    for name in PROXIES:
        value, caught = score(name, net, inputs, targets)
        assert isinstance(value, float), name
        undefined = model == "mobilenet_v3" and name == "grasp"   # hardsigmoid has no double backward
        if undefined:
            assert math.isnan(value) and len(caught) == 1 and "grasp" in caught[0] and "hardsigmoid" in caught[0]
        else:
            assert math.isfinite(value) and not caught, (model, name, value, caught)


@pytest.mark.parametrize("model", WITHOUT_BATCH_NORM)
def test_split_data_gives_the_same_value(model):
    net, inputs, targets = build(model)
    for name in PROXIES:
        whole = reference_proxy(name)(net, inputs, targets)
        for split_data in (2, 4):
            assert reference_proxy(name)(net, inputs, targets, split_data=split_data) == pytest.approx(
                whole, rel=1e-5, abs=1e-7), (model, name, split_data)


def test_split_data_out_of_range_is_one_line():
    net, inputs, targets = build("mlp")
    for name in ["snip", "nwot", "meco", "jacov", "zico", "fisher", "grasp"]:
        with pytest.raises(StatisticsError, match="split_data=9 must be between 1 and the batch size 8"):
            reference_proxy(name)(net, inputs, targets, split_data=9)
    with pytest.raises(StatisticsError, match="zico needs a batch of at least 4 samples"):
        reference_proxy("zico")(net, inputs[:3], targets[:3])


@pytest.mark.parametrize("name", PROXIES)
def test_caller_model_is_never_changed(name):
    net, inputs, targets = build("vit_mha")
    net.eval()
    net.register_forward_hook(lambda *args: None)
    before = copy.deepcopy(net.state_dict())
    hooks = {key: dict(module._forward_hooks) for key, module in net.named_modules()}
    score(name, net, inputs, targets, split_data=2)
    assert not net.training and not any(module.training for module in net.modules())
    assert all(torch.equal(before[key], value) for key, value in net.state_dict().items())
    assert all(parameter.grad is None and parameter.requires_grad for parameter in net.parameters())
    assert {key: dict(module._forward_hooks) for key, module in net.named_modules()} == hooks


@pytest.mark.parametrize("name", [n for n in PROXIES if n not in ("params", "flops")])
def test_a_model_without_nodes_is_one_line(name):
    net = nn.Sequential(nn.Flatten(), nn.Dropout())
    inputs, targets = torch.randn(4, 5), torch.zeros(4, dtype=torch.long)
    with pytest.raises(StatisticsError, match=r"^model Sequential has no parameterised layer") as error:
        reference_proxy(name)(net, inputs, targets)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("name", LOSS_PROXIES)
def test_bad_labels_and_losses_are_one_line(name):
    net, inputs, targets = build("mlp")
    with pytest.raises(StatisticsError, match=f"targets reach class 7 but model Sequential has {CLASSES} outputs"):
        reference_proxy(name)(net, inputs, torch.full_like(targets, 7))
    with pytest.raises(StatisticsError, match=r"loss_fn returned \(\d+,\), not a scalar tensor"):
        reference_proxy(name)(net, inputs, targets, loss_fn=nn.CrossEntropyLoss(reduction="none"))


class TokenMLP(nn.Module):
    """Linear on (B, T, C) tokens, or the same weights as 1x1 Conv1d on (B, C, T)."""

    def __init__(self, conv: bool) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = conv
        self.fc1, self.act, self.fc2 = nn.Linear(6, 10), nn.GELU(), nn.Linear(10, CLASSES)
        if conv:
            self.fc1, self.fc2 = self.as_conv(self.fc1), self.as_conv(self.fc2)

    @staticmethod
    def as_conv(linear: nn.Linear) -> nn.Conv1d:
        conv = nn.Conv1d(linear.in_features, linear.out_features, 1)
        with torch.no_grad():
            conv.weight.copy_(linear.weight[:, :, None])
            conv.bias.copy_(linear.bias)
        return conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:   # x: (B, T, C)
        if self.conv:
            return self.fc2(self.act(self.fc1(x.transpose(1, 2)))).mean(2)
        return self.fc2(self.act(self.fc1(x))).mean(1)


def test_tokens_are_positions_as_for_a_conv1d():
    """A Linear over tokens and a 1x1 Conv1d with the same weights give every proxy the same value
    (fisher and meco treat the T tokens as positions, not as channels)."""
    generator = torch.Generator().manual_seed(0)
    inputs, targets = torch.randn(8, 7, 6, generator=generator), torch.randint(0, CLASSES, (8,), generator=generator)
    for name in ["fisher", "meco", "nwot", "snip", "grad_norm", "grasp", "zico", "jacov", "l2_norm", "synflow"]:
        linear = reference_proxy(name)(TokenMLP(conv=False), inputs, targets)
        conv = reference_proxy(name)(TokenMLP(conv=True), inputs, targets)
        assert linear == pytest.approx(conv, rel=1e-4), name


def test_meco_does_not_scale_with_the_token_count():
    """With tokens as channels a 16-channel block read 17 vs 197 "channels" (5.55 vs 0.030); with tokens
    as positions the channel correlation is over the same 16 channels whatever the image size."""
    generator = torch.Generator().manual_seed(0)
    targets = torch.randint(0, CLASSES, (8,), generator=generator)
    few, many = torch.randn(8, 3, 16, 16, generator=generator), torch.randn(8, 3, 56, 56, generator=generator)
    torch.manual_seed(0)
    net = VitBlock()
    small, large = reference_proxy("meco")(net, few, targets), reference_proxy("meco")(net, many, targets)
    assert 0.8 < small / large < 1.25   # (tokens as channels: 1.40 vs 0.40 here)


def test_nwot_codes_are_the_sign_pattern_feeding_a_node():
    """GELU net: the second Linear's code is the sign of the first Linear's output (GELU's input)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 6), nn.GELU(), nn.Dropout(0.0), nn.Linear(6, CLASSES))
    inputs, targets = torch.randn(5, 4), torch.zeros(5, dtype=torch.long)
    code = (net[0](inputs) > 0).double().numpy()
    expected = np.linalg.slogdet(code @ code.T + (1 - code) @ (1 - code).T)[1]
    assert reference_proxy("nwot")(net, inputs, targets) == pytest.approx(expected, rel=1e-12)


def test_undefined_proxies_are_nan_with_a_warning():
    inputs, targets = torch.randn(4, 3), torch.zeros(4, dtype=torch.long)
    linear = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, CLASSES))
    with pytest.warns(RuntimeWarning, match="nwot is undefined on this model: no node is fed by"):
        assert math.isnan(reference_proxy("nwot")(linear, inputs, targets))
    dead = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, CLASSES))
    with torch.no_grad():
        dead[0].weight.zero_()
        dead[0].bias.fill_(-1.0)
    with pytest.warns(RuntimeWarning, match="nwot is undefined on this model: the activation-code kernel is singular"):
        assert math.isnan(reference_proxy("nwot")(dead, inputs, targets))
    with pytest.warns(RuntimeWarning, match="jacov is undefined on this model"):
        assert math.isnan(reference_proxy("jacov")(dead, inputs, targets))
    with torch.no_grad():
        dead[0].bias.zero_()
    with pytest.warns(RuntimeWarning, match="synflow is undefined on this model: the synaptic-flow sum is 0"):
        assert math.isnan(reference_proxy("synflow")(dead, inputs, targets))


def test_attention_node_holds_every_projection():
    torch.manual_seed(0)
    attention = nn.MultiheadAttention(8, 2, batch_first=True)
    weights = torch.cat([attention.in_proj_weight.flatten(), attention.out_proj.weight.flatten()]).detach()

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attn = attention

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.attn(x, x, x)[0].mean(1)

    assert reference_proxy("l2_norm")(Net(), torch.randn(2, 3, 8), torch.zeros(2, dtype=torch.long)) == pytest.approx(
        float(weights.norm()))


def test_synflow_keeps_an_activation_fused_into_a_batch_norm():
    """Batch norm is bypassed, its fused SiLU is not: as a separate BatchNorm2d + SiLU."""
    inputs, targets = torch.randn(2, 3, 6, 6), torch.zeros(2, dtype=torch.long)
    fused = reference_proxy("synflow")(norm_act_net(True), inputs, targets)
    assert fused == pytest.approx(reference_proxy("synflow")(norm_act_net(False), inputs, targets), rel=1e-12)
    without = nn.Sequential(*[m for m in norm_act_net(False) if not isinstance(m, (nn.BatchNorm2d, nn.SiLU))])
    assert fused != pytest.approx(reference_proxy("synflow")(without, inputs, targets), rel=1e-6)
