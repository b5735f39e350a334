"""Reference proxies on the building blocks of modern networks (tests/model_blocks.py: plain torch, no
timm, the blocks compute_statistics is tested on): every proxy gives a finite value or NaN with a
one-line warning, honours ``split_data``, lays activations out as (batch, channels, positions) and leaves
the caller's model alone."""
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
from model_blocks import (CLASSES, BatchNormAct2d, Conv1dNet, Conv3dNet, ConvNeXtBlock, MobileBlock, NormActNet,
                          TokenMLP, VitBlock, mlp)

pytestmark = pytest.mark.usefixtures("one_torch_thread_per_module")
PROXIES = reference_names()
LOSS_PROXIES = ["fisher", "grad_norm", "grasp", "plain", "snip", "zico"]


def norm_act_net(*norm: nn.Module) -> nn.Module:
    """The same weights whatever the norm (a norm or an activation draws no random numbers)."""
    torch.manual_seed(0)
    return NormActNet(*norm)


BUILDERS = {
    "mobilenet_v3": (MobileBlock, (3, 8, 8)),
    "vit": (VitBlock, (3, 8, 8)),
    "vit_mha": (lambda: VitBlock(attention="torch"), (3, 8, 8)),
    "convnext": (ConvNeXtBlock, (3, 8, 8)),
    "norm_act": (lambda: NormActNet(BatchNormAct2d(6)), (3, 6, 6)),
    # Conv3d → SiLU, then a grouped Conv1d on the flattened (B, C, D·H·W) maps
    "conv1d_3d": (lambda: Conv3dNet(3, 4, act=nn.SiLU, then=Conv1dNet(4, 8, groups=2, stem=False, padding=1)),
                  (3, 3, 4, 4)),
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


def test_tokens_are_positions_as_for_a_conv1d():
    """A Linear over tokens and a 1x1 Conv1d with the same weights give every proxy the same value
    (fisher and meco treat the T tokens as positions, not as channels)."""
    generator = torch.Generator().manual_seed(0)
    inputs, targets = torch.randn(8, 7, 6, generator=generator), torch.randint(0, CLASSES, (8,), generator=generator)
    for name in ["fisher", "meco", "nwot", "snip", "grad_norm", "grasp", "zico", "jacov", "l2_norm", "synflow"]:
        torch.manual_seed(0)
        linear = reference_proxy(name)(TokenMLP(conv=False), inputs, targets)
        torch.manual_seed(0)                             # the same Linear weights, copied into the convs
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
    fused = reference_proxy("synflow")(norm_act_net(BatchNormAct2d(6)), inputs, targets)
    separate = norm_act_net(nn.BatchNorm2d(6), nn.SiLU())
    assert fused == pytest.approx(reference_proxy("synflow")(separate, inputs, targets), rel=1e-12)
    without = norm_act_net()                             # neither the batch norm nor the SiLU
    assert fused != pytest.approx(reference_proxy("synflow")(without, inputs, targets), rel=1e-6)
