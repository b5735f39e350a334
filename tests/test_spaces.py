"""Search spaces: NB201 ops and edge order, NB101 pruning and channels, params and FLOPs against
the benchmark records, invalid encodings, small inputs, sampling."""
from __future__ import annotations

import random

import pytest
import torch
from torch import nn

from autoproxy.benchmark import load_benchmark
from autoproxy.errors import InvalidArchError
from autoproxy.flops import count_flops, module_flops
from autoproxy.spaces import get_space
from autoproxy.spaces.nb101 import compute_vertex_channels, prune, split_key
from autoproxy.spaces.nb201 import EDGES, Cell, is_connected, make_op

NUM_CLASSES = {"cifar10": 10, "cifar100": 100}
DISCONNECTED_NB201 = "(1, 0, 1, 4, 0, 1)"


def param_millions(model: nn.Module) -> float:
    return round(sum(p.numel() for p in model.parameters()) / 1e6, 6)


def depends_on_input(model: nn.Module, channels: int = 3, size: int = 8) -> bool:
    generator = torch.Generator().manual_seed(0)
    first, second = (torch.randn(2, channels, size, size, generator=generator) for _ in range(2))
    model.eval()
    with torch.no_grad():
        return not torch.equal(model(first), model(second))


@pytest.fixture(scope="module", autouse=True)
def single_thread():
    """Hundreds of tiny forward passes: extra threads only add synchronisation on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def nb201_records(nb201_benchmark_path):
    return load_benchmark(nb201_benchmark_path)


@pytest.fixture(scope="module")
def nb101_records(nb101_benchmark_path):
    return load_benchmark(nb101_benchmark_path)


# ----------------------------------------------------------------------------------------- NB201


def test_nb201_ops():
    torch.manual_seed(0)
    x = torch.randn(2, 4, 5, 5)
    skip, zero, conv3, conv1, pool = (make_op(op, 4) for op in range(5))
    assert torch.equal(skip(x), x)
    x.requires_grad_(True)
    zeros = zero(x)
    assert torch.equal(zeros, torch.zeros_like(x))
    zeros.sum().backward()  # the zero op stays in the graph: a zero gradient, not None
    assert torch.equal(x.grad, torch.zeros_like(x))
    for op, kernel in ((conv3, 3), (conv1, 1)):
        relu, conv, bn = op
        assert isinstance(relu, nn.ReLU) and isinstance(bn, nn.BatchNorm2d)
        assert conv.kernel_size == (kernel, kernel) and conv.bias is None and op(x).shape == x.shape
    # avg-pool 3x3 ignores padding: a constant image stays constant up to the border.
    assert torch.allclose(pool(torch.full((1, 4, 5, 5), 3.0)), torch.full((1, 4, 5, 5), 3.0))


@pytest.mark.parametrize(
    "edges_to_skip, factor",
    [
        ({(1, 4)}, 1.0),
        ({(1, 2), (2, 4)}, 1.0),
        ({(1, 3), (3, 4)}, 1.0),
        ({(1, 2), (2, 3), (3, 4)}, 1.0),
        ({(1, 4), (1, 2), (2, 4)}, 2.0),
        ({(1, 2), (2, 3)}, 0.0),
        ({(1, 3), (2, 4)}, 0.0),
    ],
)
def test_nb201_edge_order(edges_to_skip, factor):
    ops = [0 if edge in edges_to_skip else 1 for edge in EDGES]
    x = torch.randn(1, 2, 3, 3)
    assert torch.equal(Cell(ops, 2)(x), factor * x)
    assert is_connected(ops) == (factor != 0.0)


def test_nb201_layout():
    model = get_space("nb201").build("(2, 2, 2, 2, 2, 2)", num_classes=7, width=8, depth=2)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    # stem + 3 stages x 2 cells x 6 convs + 2 reduction blocks x 3 convs
    assert len(convs) == 1 + 3 * 2 * 6 + 2 * 3
    assert model.classifier.in_features == 32 and model.classifier.out_features == 7


def test_nb201_params_and_flops_match_records(nb201_records):
    space = get_space("nb201")
    sample = nb201_records[::40] + [r for r in nb201_records if r.key == DISCONNECTED_NB201]
    for record in sample:
        model = space.build(record.key, num_classes=NUM_CLASSES[record.task])
        assert param_millions(model) == record.scores["params"], record.key
        assert round(count_flops(model, (3, 32, 32)), 6) == record.scores["flops"], record.key


def test_nb201_every_op_appears_in_tested_sample(nb201_records):
    keys = {record.key for record in nb201_records[::40]}
    ops = {op for key in keys for op in get_space("nb201").parse(key)}
    assert ops == {0, 1, 2, 3, 4}


def test_nb201_output_depends_on_input_unless_disconnected(nb201_records):
    """Over every arch in the shared file, at a small size: only the cell without a non-zero path
    from input to output gives an input-independent output (the 10 %-accuracy arch)."""
    space = get_space("nb201")
    keys = sorted({record.key for record in nb201_records})
    independent = [key for key in keys if not depends_on_input(space.build(key, width=4, depth=1), size=4)]
    assert independent == [DISCONNECTED_NB201]
    assert [key for key in keys if not is_connected(space.parse(key))] == independent
    accuracy = {r.task: r.accuracy for r in nb201_records if r.key == DISCONNECTED_NB201}
    assert accuracy["cifar10"] == 10.0


def test_nb201_disconnected_output_is_constant_in_train_mode_too():
    model = get_space("nb201").build(DISCONNECTED_NB201, width=4, depth=1).train()
    first, second = torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8) * 5
    assert torch.equal(model(first), model(second))


@pytest.mark.parametrize(
    "key, message",
    [
        ("(0, 1, 2, 3, 4)", "has 5 entries, expected 6"),
        ("(0, 1, 2, 3, 4, 5)", "op outside 0..4"),
        ("(0, 1, 2, 3, 4, -1)", "op outside 0..4"),
        ("zero", "not a tuple of integers"),
        ((0, 1, 2, 3, 4, 1.5), "not a tuple of integers"),
    ],
)
def test_nb201_invalid_keys(key, message):
    with pytest.raises(InvalidArchError, match=message) as error:
        get_space("nb201").parse(key)
    assert "nb201" in str(error.value)


# ----------------------------------------------------------------------------------------- NB101


def test_nb101_prune_and_channels(nb101_records):
    # The first record keeps a dead-end vertex 5 (12 raw edges, 9 after pruning).
    matrix, ops = split_key(get_space("nb101").parse(nb101_records[0].key))
    assert sum(map(sum, matrix)) == 12
    pruned, pruned_ops = prune(matrix, ops)
    assert len(pruned_ops) == 6 and sum(map(sum, pruned)) == 9 and pruned_ops == [0, 2, 2, 4, 4, 1]
    # Vertices 1, 2, 4 feed the output: 128 = 43 + 43 + 42; vertex 3 feeds only vertex 4 and takes its 42.
    assert compute_vertex_channels(64, 128, pruned) == [64, 43, 43, 42, 42, 128]


def test_nb101_params_and_flops_match_records(nb101_records):
    space = get_space("nb101")
    for record in nb101_records[::35]:
        model = space.build(record.key)
        assert param_millions(model) == record.scores["params"], record.key
        assert round(count_flops(model, (3, 32, 32)), 6) == record.scores["flops"], record.key


def test_nb101_every_arch_depends_on_input(nb101_records):
    space = get_space("nb101")
    for record in nb101_records:
        assert depends_on_input(space.build(record.key, width=8, depth=1), size=4), record.key


def _nb101_key(edges, ops=(0, 3, 3, 3, 3, 3, 1)):
    matrix = [[0] * 7 for _ in range(7)]
    for u, v in edges:
        matrix[u][v] = 1
    return [value for row in matrix for value in row] + list(ops)


CHAIN = [(i, i + 1) for i in range(6)]


@pytest.mark.parametrize(
    "key, message",
    [
        (_nb101_key(CHAIN)[:-1], "has 55 entries, expected 56"),
        (_nb101_key(CHAIN, (0, 3, 3, 5, 3, 3, 1)), "interior ops must be one of"),
        (_nb101_key(CHAIN, (0, 3, 3, 0, 3, 3, 1)), "interior ops must be one of"),
        (_nb101_key(CHAIN, (2, 3, 3, 3, 3, 3, 1)), "first op must be 0"),
        (_nb101_key(CHAIN, (0, 3, 3, 3, 3, 3, 4)), "first op must be 0"),
        (_nb101_key(CHAIN + [(3, 1)]), "not strictly upper-triangular"),
        (_nb101_key(CHAIN + [(2, 2)]), "not strictly upper-triangular"),
        (_nb101_key(CHAIN[:3] + CHAIN[4:]), "no path from input to output"),
        (_nb101_key(CHAIN + [(0, 2), (0, 3), (0, 4), (1, 6)]), "10 edges after pruning"),
        ([2 if v == 1 else v for v in _nb101_key(CHAIN)], "entries must be 0 or 1"),
    ],
)
def test_nb101_invalid_keys(key, message):
    with pytest.raises(InvalidArchError, match=message) as error:
        get_space("nb101").parse(key)
    assert "nb101" in str(error.value)


def test_nb101_input_straight_to_output_and_width_check():
    space = get_space("nb101")
    direct = space.build(_nb101_key([(0, 6)]), width=8, depth=1)
    assert depends_on_input(direct)
    fan_in_four = _nb101_key([(0, v) for v in range(1, 5)] + [(v, 6) for v in range(1, 5)])
    with pytest.raises(ValueError, match="width 3 is too small"):
        space.build(fan_in_four, width=3)
    assert depends_on_input(space.build(fan_in_four, width=4, depth=1))


# ------------------------------------------------------------------------------------ both spaces


@pytest.mark.parametrize("name", ["nb201", "nb101"])
def test_small_and_odd_inputs(name):
    space = get_space(name)
    key = space.sample(random.Random(3))
    model = space.build(key, num_classes=10, in_channels=1, width=8, depth=1)
    for size in (1, 7, 8, 9):
        assert model(torch.randn(2, 1, size, size)).shape == (2, 10)
    assert sum(module_flops(model, (1, 8, 8)).values()) > 0


@pytest.mark.parametrize("name", ["nb201", "nb101"])
def test_sample_is_valid_canonical_and_seeded(name):
    space = get_space(name)
    keys = [space.sample(random.Random(seed)) for seed in range(30)]
    assert keys == [space.sample(random.Random(seed)) for seed in range(30)]
    assert len(set(keys)) > 20
    for key in keys:
        assert key == "(" + ", ".join(map(str, space.parse(key))) + ")"


def test_unknown_space():
    with pytest.raises(InvalidArchError, match="unknown search space 'darts'"):
        get_space("darts")


def test_module_flops_names_and_conventions():
    model = get_space("nb201").build("(0, 1, 4, 1, 1, 1)", width=4, depth=1)
    counts = module_flops(model, (3, 8, 8))
    assert counts["stem.0"] == 3 * 3 * 3 * 4 * 8 * 8  # conv: MACs
    assert counts["stem.1"] == 2 * 4 * 8 * 8  # batch norm: 2 per element
    assert counts["cells.0.edges.2"] == 9 * 4 * 8 * 8  # avg-pool 3x3: 9 per output element
    assert counts["global_pooling"] == 16 * 3 * 3  # tensorwatch's adaptive pool: C·(2+1)·(2+1)
    assert counts["classifier"] == 16 * 10  # linear: no bias term
    assert list(counts)[0] == "stem.0" and list(counts)[-1] == "classifier"
    assert model.training  # restored
