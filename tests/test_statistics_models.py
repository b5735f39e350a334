"""compute_statistics on the building blocks of real models (tests/model_blocks.py: plain torch, no timm,
the blocks the reference proxies are tested on): every node found, every activation laid out as
(batch, channels, positions), every group computed or recorded as unavailable with its reason."""
from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from autoproxy.expression_proxy import expression_score
from autoproxy.statistics import compute_statistics, relu_kernel, synflow_gradients
from model_blocks import CLASSES, BatchNormAct2d, Conv1dNet, Conv3dNet, ConvNeXtBlock, MobileBlock, NormActNet, VitBlock
from primitives.tree import parse

pytestmark = pytest.mark.usefixtures("one_torch_thread_per_module")

BATCH = 8
PARAM_KEYS = ("weight", "grad", "grad_abs_mean", "grad_std", "synflow_grad")


def images(channels: int = 3, size: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(BATCH, channels, size, size, generator=generator),
            torch.randint(0, CLASSES, (BATCH,), generator=generator))


def statistics_of(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, **kwargs):
    torch.manual_seed(0)
    return compute_statistics(model, inputs, targets, **kwargs)


def assert_consistent(stats) -> None:
    """Per-weight statistics share the weight's length, activations and their gradients share a
    3-d (B, C, P) shape that the node's totals describe, kernels are B × B."""
    for node in stats.nodes:
        tensors, scalars = node.tensors, node.scalars
        for key in PARAM_KEYS + ("hess_grad",):
            if key in tensors:
                assert tensors[key].shape == tensors["weight"].shape, (node.name, key)
        for side in ("out", "in"):
            act = tensors[f"act_{side}"]
            assert act.shape == tensors[f"grad_act_{side}"].shape
            assert act.shape == (BATCH, scalars[f"channels_{side}_total"], scalars[f"positions_{side}_total"])
            assert torch.isfinite(act).all()
        assert tensors["relu_kernel"].shape == tensors["act_kernel"].shape == (BATCH, BATCH)
        channels = int(scalars["channels_out_total"])
        assert tensors["act_cov"].shape == (channels, channels)


def test_hardswish_squeeze_excite_hessian_unavailable_the_rest_computed():
    stats = statistics_of(MobileBlock(), *images())
    assert set(stats.unavailable) == {"hessian"}
    assert "hardsigmoid" in stats.unavailable["hessian"] or "hardswish" in stats.unavailable["hessian"]
    assert "\n" not in stats.unavailable["hessian"]
    assert [node.name for node in stats.nodes] == ["stem", "depthwise", "se.reduce", "se.expand", "head"]
    assert all("hess_grad" not in node.tensors for node in stats.nodes)
    assert_consistent(stats)
    assert {"jacobian_corr"} <= set(stats.tensors) and {"synflow_log_scale", "flops"} <= set(stats.scalars)
    # Hardswish feeds the depthwise conv: its code is the sign pattern of the Hardswish input
    assert [node.scalars["input_post_relu"] for node in stats.nodes] == [0.0, 1.0, 0.0, 1.0, 0.0]


def test_formula_reading_the_unavailable_group_is_nan_with_one_warning_others_score():
    model, (inputs, targets) = MobileBlock(), images()
    snip = parse("net_sum(node_sum(abs(mul(weight, grad))))")
    assert torch.isfinite(torch.tensor(expression_score(snip, model, inputs, targets)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        grasp = expression_score(parse("net_sum(node_sum(neg(mul(weight, hess_grad))))"), model, inputs, targets)
    assert grasp != grasp
    assert len(caught) == 1 and "hessian" in str(caught[0].message) and "MobileBlock" in str(caught[0].message)


def test_depthwise_conv_weights_fans_and_activations():
    stats = statistics_of(MobileBlock(), *images())
    depthwise = stats.nodes[1]
    assert depthwise.kind == "conv" and depthwise.tensors["weight"].shape == (8 * 9,)
    assert depthwise.scalars["fan_in"] == 9 and depthwise.scalars["params"] == 8 * 9 + 8
    assert depthwise.tensors["act_in"].shape == depthwise.tensors["act_out"].shape == (BATCH, 8, 256)


def test_patch_embedding_and_layer_norm_tokens_as_channels_by_tokens():
    stats = statistics_of(VitBlock(dim=12, attention=None), *images())   # tokens → LayerNorm → GELU MLP
    assert [node.name for node in stats.nodes] == ["embed", "mlp.fc1", "mlp.fc2", "head"]
    assert_consistent(stats)
    patch, fc1, fc2, head = stats.nodes
    assert patch.tensors["act_out"].shape == (BATCH, 12, 16)
    assert fc1.tensors["act_in"].shape == (BATCH, 12, 16) and fc1.tensors["act_out"].shape == (BATCH, 24, 16)
    assert head.tensors["act_in"].shape == (BATCH, 12, 1)
    assert fc2.scalars["input_post_relu"] == 1.0 and fc1.scalars["input_post_relu"] == 0.0
    # fc2's code is the sign pattern of the GELU's input, fc1's output
    torch.testing.assert_close(fc2.tensors["relu_kernel"], relu_kernel(fc1.tensors["act_out"]))
    # act_cov covers channels over batch × tokens
    samples = fc1.tensors["act_out"].transpose(0, 1).reshape(24, -1)
    torch.testing.assert_close(fc1.tensors["act_cov"], torch.cov(samples))


def test_fused_qkv_attention_nodes():
    stats = statistics_of(VitBlock(dim=12, patch=1, mlp=False), *images(size=4))   # a token per pixel
    assert [node.name for node in stats.nodes] == ["embed", "attn.qkv", "attn.proj", "head"]
    assert_consistent(stats)
    qkv = stats.nodes[1]
    assert qkv.tensors["act_out"].shape == (BATCH, 36, 16) and qkv.tensors["act_cov"].shape == (36, 36)
    assert torch.isfinite(qkv.tensors["hess_grad"]).all() and torch.isfinite(stats.tensors["jacobian_corr"]).all()


@pytest.mark.parametrize("batch_first", [True, False])
def test_multihead_attention_is_one_node(batch_first):
    attention = "torch" if batch_first else "torch_sequence_first"
    stats = statistics_of(VitBlock(dim=12, patch=1, attention=attention, mlp=False), *images(size=4))
    names = [node.name for node in stats.nodes]
    node = stats.nodes[1]
    assert node.kind == "attention" and len(names) == 3
    assert node.tensors["weight"].shape == (3 * 12 * 12 + 12 * 12,)
    assert node.tensors["act_in"].shape == node.tensors["act_out"].shape == (BATCH, 12, 16)
    assert_consistent(stats)


def test_multihead_attention_layouts_agree():
    torch.manual_seed(3)
    net_a = VitBlock(dim=12, patch=1, attention="torch", mlp=False)
    net_b = VitBlock(dim=12, patch=1, attention="torch_sequence_first", mlp=False)
    net_b.load_state_dict(net_a.state_dict())               # the same weights, sequence-first layout
    a = compute_statistics(net_a, *images(size=4), needs={"act_out", "act_in", "grad"})
    b = compute_statistics(net_b, *images(size=4), needs={"act_out", "act_in", "grad"})
    for key in ("act_out", "act_in", "grad"):
        torch.testing.assert_close(a.nodes[1].tensors[key], b.nodes[1].tensors[key], rtol=1e-5, atol=1e-6)


def test_convnext_channels_last_linear():
    stats = statistics_of(ConvNeXtBlock(), *images())
    assert [node.name for node in stats.nodes] == ["stem", "dwconv", "pwconv1", "pwconv2", "head"]
    assert_consistent(stats)
    dwconv, pw1, pw2 = stats.nodes[1:4]
    assert pw1.tensors["act_in"].shape == (BATCH, 8, 64) and pw1.tensors["act_out"].shape == (BATCH, 32, 64)
    # the channels-last Linear sees the same (channel, position) entries the conv wrote, normalised
    normalised = F.layer_norm(dwconv.tensors["act_out"].transpose(1, 2), (8,)).transpose(1, 2)
    torch.testing.assert_close(pw1.tensors["act_in"], normalised, rtol=1e-4, atol=1e-5)
    assert pw2.scalars["input_post_relu"] == 1.0
    torch.testing.assert_close(pw2.tensors["relu_kernel"], relu_kernel(pw1.tensors["act_out"]))


def test_conv1d_and_conv3d():
    generator = torch.Generator().manual_seed(0)
    targets = torch.randint(0, CLASSES, (BATCH,), generator=generator)
    one = statistics_of(Conv1dNet(), torch.randn(BATCH, 3, 10, generator=generator), targets)
    assert one.nodes[0].tensors["act_out"].shape == (BATCH, 6, 10)
    assert one.nodes[1].tensors["act_out"].shape == (BATCH, 6, 8) and one.nodes[1].scalars["fan_in"] == 6
    assert one.nodes[1].scalars["input_post_relu"] == 1.0
    three = statistics_of(Conv3dNet(), torch.randn(BATCH, 2, 4, 4, 4, generator=generator), targets)
    assert three.nodes[0].tensors["act_out"].shape == (BATCH, 4, 64)
    assert three.nodes[0].scalars["fan_in"] == 2 * 27
    for stats in (one, three):
        assert_consistent(stats)
        assert set(stats.unavailable) <= {"flops"}       # FLOPs are counted for image models only
        assert all(torch.isfinite(node.tensors["hess_grad"]).all() for node in stats.nodes)


def test_synflow_keeps_an_activation_fused_into_batch_norm():
    torch.manual_seed(0)
    fused = NormActNet(BatchNormAct2d(4, nn.Hardtanh(0.0, 0.5)), channels=4, conv2=False)
    plain = NormActNet(nn.Hardtanh(0.0, 0.5), channels=4, conv2=False)
    plain.conv.load_state_dict(fused.conv.state_dict())
    plain.head.load_state_dict(fused.head.state_dict())
    with torch.no_grad():
        fused.norm[0].running_mean.fill_(3.0)           # a bypass must not depend on the running statistics
    expected = synflow_gradients(plain, (3, 8, 8))
    found = synflow_gradients(fused, (3, 8, 8))
    assert set(found) == {"conv", "head"}
    for name in expected:
        assert torch.equal(found[name], expected[name]), name
    assert float(found["head"].max()) <= 0.5         # the clamp ran: dR/dW_head is a pooled clamped feature


def test_a_formula_that_is_not_finite_on_a_model_is_nan_with_its_reason():
    """nwot's expression on a net without a nonlinearity module: every code is absent, the kernel is zero and
    its logdet -inf; a caller gets NaN and one warning, never a silent -inf."""
    from primitives.reference import reference_tree

    model = nn.Sequential(nn.Linear(12, 16), nn.Linear(16, 4))
    inputs, targets = torch.randn(8, 12), torch.arange(8) % 4
    with pytest.warns(UserWarning, match="undefined, its value is -inf"):
        assert math.isnan(expression_score(reference_tree("nwot"), model, inputs, targets))
