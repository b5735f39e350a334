"""Statistics by group on demand, unavailable groups (in results, cache entries, packing and scoring),
split_data, bad input, and the caller's model left as it was."""
from __future__ import annotations

import copy
import json

import pytest
import safetensors
import safetensors.numpy
import torch
from torch import nn

from autoproxy.errors import StatisticsError
from autoproxy.expression_proxy import expression_score
from autoproxy.cache.store import encode_entry, read_entry
from autoproxy.statistics import ALL_STATISTICS, STATISTIC_GROUPS, compute_statistics, groups_reading
from primitives.evaluate import Evaluator
from primitives.leaves import LEAVES
from primitives.packed import pack
from primitives.tree import parse

pytestmark = pytest.mark.usefixtures("one_torch_thread_per_module")

BATCH, CLASSES = 8, 5


class Net(nn.Module):
    """conv → (BN) → ReLU → conv → ReLU → pool → linear."""

    def __init__(self, batch_norm: bool = False, act: type[nn.Module] = nn.ReLU) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6) if batch_norm else nn.Identity()
        self.act1 = act()
        self.conv2 = nn.Conv2d(6, 8, 3, stride=2, padding=1)
        self.act2 = act()
        self.fc = nn.Linear(8, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act2(self.conv2(self.act1(self.bn(self.conv1(x)))))
        return self.fc(x.mean((2, 3)))


def batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(BATCH, 3, 16, 16, generator=generator), torch.randint(0, CLASSES, (BATCH,), generator=generator)


def model(**kwargs) -> nn.Module:
    torch.manual_seed(0)
    return Net(**kwargs)


def test_every_leaf_belongs_to_exactly_one_group():
    keys = {leaf.key for leaf in LEAVES}
    assert keys == ALL_STATISTICS
    assert sum(len(members) for members in STATISTIC_GROUPS.values()) == len(ALL_STATISTICS)
    assert groups_reading({"grad"}) == {"structure", "gradients"}


def test_only_the_keys_asked_for_and_no_graph_without_a_gradient_group():
    net, (inputs, targets) = model(), batch()
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel()) or t, lambda t: t):
        structure = compute_statistics(net, inputs, targets, needs={"weight", "fan_in", "channels_in_total"})
    assert saved == []                                   # no autograd graph: nothing saved for a backward
    assert set(structure.nodes[1].tensors) == {"weight"}
    assert structure.nodes[1].scalars["channels_in_total"] == 6 and "flops" not in structure.nodes[1].scalars
    assert set(structure.tensors) == set() and set(structure.scalars) == {"params", "num_nodes"}


def test_grad_alone_is_the_full_grad_and_cheaper():
    net, (inputs, targets) = model(), batch()
    forwards = []
    net.conv1.register_forward_hook(lambda *args: forwards.append(1))     # copied along with the model
    full = compute_statistics(net, inputs, targets)
    full_forwards, forwards[:] = len(forwards), []
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel()) or t, lambda t: t):
        grad_only = compute_statistics(net, inputs, targets, needs={"grad"})
    assert len(forwards) == 1 < full_forwards
    for full_node, node in zip(full.nodes, grad_only.nodes):
        assert set(node.tensors) == {"grad"}
        assert torch.equal(node.tensors["grad"], full_node.tensors["grad"])
    full_saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: full_saved.append(t.numel()) or t, lambda t: t):
        compute_statistics(net, inputs, targets, needs={"grad", "hess_grad", "grad_act_out"})
    assert sum(saved) < sum(full_saved)                  # no double-backward graph, no activation gradients


def test_only_grad_act_in_is_materialised():
    net, (inputs, targets) = model(), batch()
    stats = compute_statistics(net, inputs, targets, needs={"grad_act_in"})
    full = compute_statistics(net, inputs, targets)
    for full_node, node in zip(full.nodes, stats.nodes):
        assert set(node.tensors) == {"grad_act_in"}
        assert torch.equal(node.tensors["grad_act_in"], full_node.tensors["grad_act_in"])


def test_split_data_gives_the_whole_batch_statistics_without_batch_norm():
    net, (inputs, targets) = model(), batch()
    whole = compute_statistics(net, inputs, targets)
    for split in (2, 8):                                  # 8 > sub_batches: each sub-batch in two pieces
        split_stats = compute_statistics(net, inputs, targets, split_data=split)
        assert split_stats.unavailable == {}
        for a, b in zip(whole.nodes, split_stats.nodes):
            assert a.scalars == b.scalars and set(a.tensors) == set(b.tensors)
            for key in a.tensors:
                torch.testing.assert_close(b.tensors[key], a.tensors[key], rtol=1e-5, atol=1e-7, msg=key)
        torch.testing.assert_close(split_stats.tensors["jacobian_corr"], whole.tensors["jacobian_corr"],
                                   rtol=1e-5, atol=1e-6)
        assert split_stats.scalars["jacobian_norm"] == pytest.approx(whole.scalars["jacobian_norm"], rel=1e-5)


def test_split_data_reaches_expression_scores():
    net, (inputs, targets) = model(), batch()
    tree = parse("net_sum(node_sum(mul(weight, hess_grad)))")
    whole = expression_score(tree, net, inputs, targets)
    assert expression_score(tree, net, inputs, targets, split_data=4) == pytest.approx(whole, rel=1e-5)


def test_unavailable_group_in_a_cache_entry_and_entries_without_the_field():
    net, (inputs, targets) = model(act=nn.Hardsigmoid), batch()
    stats = compute_statistics(net, inputs, targets, max_channels=2, max_positions=4)
    assert set(stats.unavailable) == {"hessian"}
    data = encode_entry("arch", stats, "float32")
    back = read_entry(_write(data, "entry.safetensors"), "arch")
    assert back.unavailable == stats.unavailable
    assert all("hess_grad" not in node.tensors and "grad" in node.tensors for node in back.nodes)
    arrays = safetensors.numpy.load(data)
    with safetensors.safe_open(str(_write(data, "again.safetensors")), framework="np") as handle:
        metadata = handle.metadata()
    content = json.loads(metadata["content"])
    del content["unavailable"]                            # as entries were written before the field existed
    old = safetensors.numpy.save(arrays, metadata={**metadata, "content": json.dumps(content)})
    assert read_entry(_write(old, "old.safetensors"), "arch").unavailable == {}


@pytest.fixture(autouse=True)
def _directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def _write(data: bytes, name: str):
    from pathlib import Path

    path = Path(name)
    path.write_bytes(data)
    return path


def test_packing_archs_that_lack_a_group_makes_formulas_reading_it_undefined_there_only():
    inputs, targets = batch()
    lacking = compute_statistics(model(act=nn.Hardsigmoid), inputs, targets)
    complete = compute_statistics(model(), inputs, targets)
    evaluator = Evaluator(pack([complete, lacking]), memo_bytes=0)
    grasp = evaluator.values(parse("net_sum(node_sum(neg(mul(weight, hess_grad))))"))
    assert torch.isfinite(grasp[0]) and torch.isnan(grasp[1])
    assert torch.isfinite(evaluator.values(parse("net_sum(node_sum(abs(mul(weight, grad))))"))).all()


def test_a_leaf_no_arch_holds_is_not_packed_and_reads_as_undefined():
    stats = compute_statistics(model(), *batch(), needs={"grad"})
    packed = pack([stats])
    assert set(packed.params) == {"grad"} and packed.kernels == {} and packed.out_buckets == []
    assert torch.isnan(Evaluator(packed).values(parse("net_sum(trace(act_kernel))"))).all()
    assert torch.isfinite(Evaluator(packed).values(parse("net_sum(node_l2(grad))"))).all()


def test_bad_inputs_are_one_line_errors_naming_the_model():
    net, (inputs, targets) = model(), batch()
    with pytest.raises(StatisticsError, match=r"targets reach class 7 but model Net has 5 outputs"):
        compute_statistics(net, inputs, torch.full_like(targets, 7))
    with pytest.raises(StatisticsError, match="not a scalar"):
        compute_statistics(net, inputs, targets, nn.CrossEntropyLoss(reduction="none"))
    with pytest.raises(StatisticsError, match="model Sequential has no parameterised layer"):
        compute_statistics(nn.Sequential(nn.Flatten(), nn.ReLU()), inputs, targets)
    with pytest.raises(StatisticsError, match="split_data=9"):
        compute_statistics(net, inputs, targets, split_data=9)
    with pytest.raises(StatisticsError, match="targets reach class"):     # even when no loss group is asked for
        compute_statistics(net, inputs, torch.full_like(targets, 7), needs={"weight"})


@pytest.mark.parametrize("act", [nn.ReLU, nn.Hardsigmoid])
def test_the_callers_model_is_left_as_it_was(act):
    net, (inputs, targets) = model(batch_norm=True, act=act), batch()
    net.eval()
    net.act1.inplace = True if act is nn.ReLU else net.act1.inplace
    net.conv1.weight.requires_grad_(False)
    handle = net.conv2.register_forward_hook(lambda *args: None)
    before = copy.deepcopy(net.state_dict())
    hooks = [dict(module._forward_hooks) for module in net.modules()]
    compute_statistics(net, inputs, targets, split_data=2)
    assert not any(module.training for module in net.modules())
    assert all(torch.equal(before[key], value) for key, value in net.state_dict().items())
    assert [dict(module._forward_hooks) for module in net.modules()] == hooks
    assert not net.conv1.weight.requires_grad and net.conv2.weight.requires_grad
    assert all(p.grad is None for p in net.parameters())
    assert getattr(net.act1, "inplace", False) == (act is nn.ReLU)
    handle.remove()


def test_statistics_under_the_callers_no_grad_are_the_same():
    net, (inputs, targets) = model(), batch()
    expected = compute_statistics(net, inputs, targets, needs={"grad", "hess_grad", "grad_std", "synflow_grad"})
    with torch.no_grad():
        found = compute_statistics(net, inputs, targets, needs={"grad", "hess_grad", "grad_std", "synflow_grad"})
    assert found.unavailable == {}
    for a, b in zip(expected.nodes, found.nodes):
        assert all(torch.equal(a.tensors[key], b.tensors[key]) for key in a.tensors)
