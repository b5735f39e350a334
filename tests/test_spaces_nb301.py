"""NAS-Bench-301 (the DARTS space): params and FLOPs against the shared file, forward passes, invalid
keys, sampling, and the loader for a file without a search-space level."""
from __future__ import annotations

import json
import random

import pytest
import torch
from torch import nn

from autoproxy.benchmark import canonical_arch_key, load_benchmark
from autoproxy.errors import BenchmarkError, InvalidArchError
from autoproxy.flops import count_flops
from autoproxy.spaces import get_space
from autoproxy.spaces.nb301 import NUM_NODES, FactorizedReduce, make_op

FIRST_KEY = (
    "[[(0, 0), (1, 5), (1, 1), (0, 1), (1, 3), (0, 3), (1, 3), (3, 2)], "
    "[(1, 0), (0, 2), (1, 3), (0, 3), (3, 0), (0, 1), (2, 0), (3, 6)]]"
)
NORMAL = "[(0, 0), (1, 5), (1, 1), (0, 1), (1, 3), (0, 3), (1, 3), (3, 2)]"


def param_millions(model: nn.Module) -> float:
    return round(sum(p.numel() for p in model.parameters()) / 1e6, 6)


@pytest.fixture(scope="module", autouse=True)
def single_thread(one_torch_thread_per_module):
    """DARTS nets on a shared 2-core machine: extra intra-op threads only contend."""


@pytest.fixture(scope="module")
def nb301_records(nb301_benchmark_path):
    return load_benchmark(nb301_benchmark_path, space="nb301", task="cifar10")


def test_loader_reads_the_file_without_a_space_level(nb301_benchmark_path, nb301_records):
    assert len(nb301_records) == 507
    first = nb301_records[0]
    assert (first.space, first.task, first.key, first.idx) == ("nb301", "cifar10", FIRST_KEY, 534)
    assert first.scores["params"] == 0.856298 and first.scores["flops"] == 153.499136
    assert first.accuracy == pytest.approx(93.32119084207302) and set(first.times) == set(first.scores)
    assert [r.key for r in load_benchmark(nb301_benchmark_path, space="nasbench301")] == [r.key for r in nb301_records]
    with pytest.raises(BenchmarkError, match="no search-space level.*pass the space"):
        load_benchmark(nb301_benchmark_path)


def test_loader_names_file_and_key_in_a_malformed_task_level_file(tmp_path):
    path = tmp_path / "nb301.json"
    path.write_text(json.dumps({"cifar10": {FIRST_KEY: {"flops": 1.0}}}))
    with pytest.raises(BenchmarkError, match="missing val_accuracy") as error:
        load_benchmark(path, space="nb301")
    assert str(path) in str(error.value) and FIRST_KEY in str(error.value)


def test_keys_are_canonicalised_to_the_file_spelling():
    as_tuples = FIRST_KEY.replace(" ", "").replace("[(", "((").replace(")]", "))")
    as_tuples = "(" + as_tuples[1:-1] + ",)"
    assert canonical_arch_key(as_tuples) == FIRST_KEY
    space = get_space("nb301")
    assert space.parse(FIRST_KEY) == space.parse(json.loads(FIRST_KEY.replace("(", "[").replace(")", "]")))


def test_params_match_the_file_on_a_seeded_sample(nb301_records):
    space = get_space("nb301")
    for record in random.Random(0).sample(nb301_records, 20):
        assert param_millions(space.build(record.key)) == record.scores["params"], record.key


def test_flops_match_the_file_on_a_seeded_sample(nb301_records):
    space = get_space("nb301")
    for record in random.Random(1).sample(nb301_records, 3):
        flops = count_flops(space.build(record.key), (3, 32, 32))
        assert round(flops, 6) == record.scores["flops"], record.key


def test_forward_small_batch_and_custom_sizes():
    space = get_space("nb301")
    torch.manual_seed(0)
    model = space.build(FIRST_KEY)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    # Odd sizes: 30 → 15 → 8; the second reduction and its FactorizedReduce run on 15×15.
    small = space.build(FIRST_KEY, num_classes=7, in_channels=1, width=4, depth=3)
    logits = small(torch.randn(2, 1, 30, 30))
    assert logits.shape == (2, 7) and torch.isfinite(logits).all()
    assert len(small.cells) == 3 and small.classifier.in_features == NUM_NODES * 4 * 4


def test_ops_keep_or_halve_the_resolution():
    x = torch.randn(1, 4, 7, 7)
    for op in range(7):
        assert make_op(op, 4, 1)(x).shape == (1, 4, 7, 7)
        assert make_op(op, 4, 2)(x).shape == (1, 4, 4, 4)
    assert FactorizedReduce(6, 8, affine=True)(torch.randn(1, 6, 8, 8)).shape == (1, 8, 4, 4)


@pytest.mark.parametrize(
    "key, message",
    [
        (f"[{NORMAL}]", "is not 2 cells of 8 \\(input, op\\) pairs"),
        (f"[{NORMAL}, {NORMAL}, {NORMAL}]", "is not 2 cells of 8"),
        (f"[{NORMAL}, {NORMAL[:-9]}]]", "is not 2 cells of 8"),
        (f"[{NORMAL}, {NORMAL.replace('(3, 2)', '(3, 2, 1)')}]", "is not 2 cells of 8"),
        (f"[{NORMAL}, {NORMAL.replace('(3, 2)', '(3, 7)')}]", "reduction cell, node 5: op 7 outside 0..6"),
        (f"[{NORMAL.replace('(0, 0)', '(0, -1)')}, {NORMAL}]", "normal cell, node 2: op -1 outside"),
        (f"[{NORMAL.replace('(0, 0)', '(2, 0)')}, {NORMAL}]", "node 2: input 2 is not an earlier node"),
        (f"[{NORMAL.replace('(1, 5)', '(0, 5)')}, {NORMAL}]", "node 2: reads input 0 twice"),
        ("darts", "is not a tuple of integers"),
    ],
)
def test_invalid_keys(key, message):
    with pytest.raises(InvalidArchError, match=message) as error:
        get_space("nb301").parse(key)
    assert str(error.value).startswith("nb301: key ") and "\n" not in str(error.value)


def test_sample_is_valid_and_deterministic():
    space = get_space("nb301")
    keys = [space.sample(random.Random(7)) for _ in range(2)]
    assert keys[0] == keys[1]
    rng = random.Random(0)
    sampled = [space.sample(rng) for _ in range(200)]
    assert len(set(sampled)) == 200
    for key in sampled:
        assert canonical_arch_key(key) == key
        space.parse(key)
    # Every op and, for the last node, every input appears.
    genes = [pair for key in sampled for cell in space.parse(key) for pair in cell]
    assert {op for _, op in genes} == set(range(7)) and {source for source, _ in genes} == set(range(5))
