"""compute_statistics on tiny nets: shapes, and each statistic against its definition."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from autoproxy.errors import StatisticsError
from autoproxy.flops import count_flops, module_flops
from autoproxy.statistics import compute_statistics

BATCH = 8


class TinyNet(nn.Module):
    """conv → BN → ReLU → conv → ReLU → pool → linear: post-ReLU and raw-input nodes, both kinds."""

    def __init__(self, batch_norm: bool = True) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(4) if batch_norm else nn.Identity()
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(4, 6, 3, stride=2, padding=1)
        self.relu2 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(6, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu2(self.conv2(self.relu1(self.bn(self.conv1(x)))))
        return self.fc(self.pool(x).flatten(1))


def make_batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(BATCH, 3, 8, 8, generator=generator), torch.randint(0, 5, (BATCH,), generator=generator)


@pytest.fixture(scope="module")
def tiny() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    inputs, targets = make_batch()
    return TinyNet(), inputs, targets


@pytest.fixture(scope="module")
def stats(tiny):
    return compute_statistics(*tiny)


def test_nodes_in_execution_order_with_shapes(stats):
    assert [node.name for node in stats.nodes] == ["conv1", "conv2", "fc"]
    assert [node.kind for node in stats.nodes] == ["conv", "conv", "linear"]
    conv2 = stats.nodes[1].tensors
    assert conv2["weight"].shape == (6 * 4 * 9,)
    for name in ("grad", "grad_std", "hess_grad", "synflow_grad"):
        assert conv2[name].shape == conv2["weight"].shape
    assert conv2["act_out"].shape == conv2["grad_act_out"].shape == (BATCH, 6, 16)
    assert conv2["act_in"].shape == conv2["grad_act_in"].shape == (BATCH, 4, 64)
    assert stats.nodes[2].tensors["act_in"].shape == (BATCH, 6, 1)
    assert conv2["act_cov"].shape == (6, 6) and conv2["relu_kernel"].shape == (BATCH, BATCH)
    assert all(t.dtype == torch.float32 for node in stats.nodes for t in node.tensors.values())
    assert stats.tensors["jacobian_corr"].shape == (BATCH, BATCH)


def test_scalars(stats, tiny):
    model = tiny[0]
    conv2 = stats.nodes[1].scalars
    assert conv2["params"] == 6 * 4 * 9 + 6 and conv2["fan_in"] == 36 and conv2["fan_out"] == 54
    assert conv2["flops"] == module_flops(model, (3, 8, 8))["conv2"] >= 6 * 16 * 36
    assert stats.scalars["flops"] == pytest.approx(count_flops(model, (3, 8, 8)))
    assert [node.scalars["depth"] for node in stats.nodes] == [0.0, 0.5, 1.0]
    assert [node.scalars["input_post_relu"] for node in stats.nodes] == [0.0, 1.0, 0.0]
    assert stats.scalars["params"] == pytest.approx(sum(p.numel() for p in model.parameters()) / 1e6)
    assert stats.scalars["num_nodes"] == 3


def test_user_model_is_untouched(tiny):
    model, inputs, targets = tiny
    before = copy.deepcopy(model.state_dict())
    model.eval()
    compute_statistics(model, inputs, targets)
    assert not model.training and model.relu1.inplace
    assert all(torch.equal(before[key], value) for key, value in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_grad_and_activation_grads_equal_autograd(stats, tiny):
    model, inputs, targets = tiny
    net = copy.deepcopy(model).train()
    net.relu1.inplace = False
    kept = {}
    net.conv2.register_forward_hook(lambda m, args, out: kept.update(act_in=args[0], act_out=out))
    loss = nn.functional.cross_entropy(net(inputs), targets)
    grads = torch.autograd.grad(loss, [net.conv2.weight, kept["act_out"], kept["act_in"]])
    conv2 = stats.nodes[1].tensors
    torch.testing.assert_close(conv2["grad"], grads[0].flatten())
    torch.testing.assert_close(conv2["act_out"], kept["act_out"].detach().flatten(2))
    torch.testing.assert_close(conv2["grad_act_out"], grads[1].flatten(2))
    torch.testing.assert_close(conv2["grad_act_in"], grads[2].flatten(2))


def test_sub_batch_gradients_average_to_grad_without_batch_norm():
    torch.manual_seed(1)
    model, (inputs, targets) = TinyNet(batch_norm=False), make_batch(1)
    stats = compute_statistics(model, inputs, targets, sub_batches=2)
    chunks = [
        torch.autograd.grad(nn.functional.cross_entropy(model(x), y), model.conv2.weight)[0].flatten()
        for x, y in zip(inputs.chunk(2), targets.chunk(2))
    ]
    conv2 = stats.nodes[1].tensors
    torch.testing.assert_close(conv2["grad"], (chunks[0] + chunks[1]) / 2)
    torch.testing.assert_close(conv2["grad_std"], (chunks[0] - chunks[1]).abs() / 2)


def test_hess_grad_is_hessian_times_gradient(stats, tiny):
    model, inputs, targets = tiny
    net = copy.deepcopy(model).train()
    weight = net.fc.weight

    def loss_of(w: torch.Tensor) -> torch.Tensor:
        features = net.pool(net.relu2(net.conv2(net.relu1(net.bn(net.conv1(inputs)))))).flatten(1)
        return nn.functional.cross_entropy(nn.functional.linear(features, w, net.fc.bias), targets)

    # Only the fc block of Hg is checked exactly: H_fc,fc g_fc + H_fc,rest g_rest needs the full Hessian.
    all_weights = [net.conv1.weight, net.conv2.weight, weight]
    g = [gr.detach() for gr in torch.autograd.grad(loss_of(weight), all_weights)]
    hessian_rows = torch.autograd.functional.jacobian(
        lambda w: torch.cat([gr.flatten() for gr in torch.autograd.grad(loss_of(w), [net.conv1.weight, net.conv2.weight, w], create_graph=True)]),
        weight,
    )
    expected = hessian_rows.reshape(-1, weight.numel()).T @ torch.cat([gr.flatten() for gr in g])
    torch.testing.assert_close(stats.nodes[2].tensors["hess_grad"], expected, rtol=1e-4, atol=1e-6)


def test_synflow_grad_of_linear_layer_is_abs_input_path(stats, tiny):
    model = tiny[0]
    # d sum(out) / d W_fc[j, i] = |pooled feature i| of the all-ones |W| network, the same for every j
    synflow = stats.nodes[2].tensors["synflow_grad"].reshape(5, 6)
    assert torch.all(synflow >= 0)
    torch.testing.assert_close(synflow, synflow[:1].expand(5, 6))


def test_relu_kernel_symmetric_with_dimension_on_diagonal(stats):
    for node in stats.nodes:
        kernel = node.tensors["relu_kernel"]
        dimension = node.scalars["channels_in_total"] * node.scalars["positions_in_total"]
        torch.testing.assert_close(kernel, kernel.T)
        assert torch.all(kernel.diagonal() == dimension)
        codes = (node.tensors["act_in"].flatten(1) > 0).double()
        torch.testing.assert_close(kernel.double(), codes @ codes.T + (1 - codes) @ (1 - codes).T)


def test_act_kernel_and_channel_covariance(stats):
    conv2 = stats.nodes[1].tensors
    flat = conv2["act_out"].flatten(1)
    torch.testing.assert_close(conv2["act_kernel"], flat @ flat.T / flat.shape[1])
    torch.testing.assert_close(conv2["act_cov"], torch.cov(conv2["act_out"].transpose(0, 1).flatten(1)))


def test_jacobian_corr_is_correlation_of_input_gradients(stats, tiny):
    model, inputs, _ = tiny
    x = inputs.clone().requires_grad_(True)
    copy.deepcopy(model).train()(x).sum().backward()
    jacobian = x.grad.flatten(1)
    torch.testing.assert_close(stats.tensors["jacobian_corr"], torch.corrcoef(jacobian), rtol=1e-4, atol=1e-5)
    assert stats.scalars["jacobian_norm"] == pytest.approx(float(jacobian.norm()) / BATCH, rel=1e-4)


def test_sketch_none_is_exact_and_sketch_is_a_seeded_subset(stats, tiny):
    exact = compute_statistics(*tiny, max_channels=None, max_positions=None)
    torch.testing.assert_close(exact.nodes[1].tensors["act_out"], stats.nodes[1].tensors["act_out"])
    sketched = compute_statistics(*tiny, max_channels=2, max_positions=5, seed=7)
    again = compute_statistics(*tiny, max_channels=2, max_positions=5, seed=7)
    act, grad = sketched.nodes[1].tensors["act_out"], sketched.nodes[1].tensors["grad_act_out"]
    assert act.shape == grad.shape == (BATCH, 2, 5)
    assert torch.equal(act, again.nodes[1].tensors["act_out"])
    full_act, full_grad = stats.nodes[1].tensors["act_out"], stats.nodes[1].tensors["grad_act_out"]
    matches = [(c, p) for c in range(6) for p in range(16) if torch.equal(full_act[:, c, p], act[:, 0, 0])]
    assert any(torch.equal(full_grad[:, c, p], grad[:, 0, 0]) for c, p in matches)
    torch.testing.assert_close(sketched.nodes[1].tensors["relu_kernel"], stats.nodes[1].tensors["relu_kernel"])
    assert sketched.nodes[1].scalars["positions_out_total"] == 16


def test_bad_sub_batches_and_layerless_model(tiny):
    model, inputs, targets = tiny
    with pytest.raises(StatisticsError, match="3 equal sub-batches"):
        compute_statistics(model, inputs, targets, sub_batches=3)
    with pytest.raises(StatisticsError, match="model Sequential has no parameterised layer"):
        compute_statistics(nn.Sequential(nn.Flatten(), nn.ReLU()), inputs, targets)


def test_needs_computes_only_the_groups_read_and_leaves_the_others_absent(stats, tiny):
    partial = compute_statistics(*tiny, needs={"grad", "act_cov", "jacobian_norm"})
    assert partial.scalars["jacobian_norm"] == stats.scalars["jacobian_norm"]
    assert partial.scalars["params"] == stats.scalars["params"]
    assert "flops" not in partial.scalars and "synflow_log_scale" not in partial.scalars
    assert "jacobian_corr" not in partial.tensors and partial.unavailable == {}
    for full, part in zip(stats.nodes, partial.nodes):
        assert set(part.tensors) == {"grad", "act_cov"}       # only what was asked: not even the weight
        for name in part.tensors:
            assert torch.equal(full.tensors[name], part.tensors[name]), name
        assert "flops" not in part.scalars
    assert compute_statistics(*tiny, needs={"jacobian_corr"}).tensors["jacobian_corr"].equal(stats.tensors["jacobian_corr"])


def test_unknown_statistic_in_needs_is_refused(tiny):
    with pytest.raises(StatisticsError, match="unknown statistics"):
        compute_statistics(*tiny, needs={"grad", "gradd"})
