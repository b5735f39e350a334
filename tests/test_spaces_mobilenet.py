"""The MobileNet/ResNet space ``mbnet``: keys, sampling, networks, and its embedded benchmark."""
from __future__ import annotations

import json
import random

import pytest
import torch
from torch import nn

from autoproxy.benchmark import load_benchmark
from autoproxy.cache.builtin import BUILTIN_RECIPES
from autoproxy.errors import InvalidArchError
from autoproxy.flops import count_flops
from autoproxy.spaces import get_space, space_names
from autoproxy.spaces.mobilenet import (
    DEPTHS, EXPANSIONS, INVERTED, KERNELS, KEY_LENGTH, RESIDUAL, WIDTHS, BasicBlock, InvertedResidual,
    MBNetSpace, stage_choices,
)

KEY = "(0, 3, 1, 2, 4, 1, 5, 6, 1, 2, 1, 3, 3, 3, 3)"
SPACE = MBNetSpace()


@pytest.fixture(scope="module", autouse=True)
def single_thread(one_torch_thread_per_module):
    yield


def params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_registered_and_listed():
    assert "mbnet" in space_names()
    assert get_space("mbnet").name == "mbnet"
    assert get_space("mbnet").parse(KEY) == tuple(json.loads(KEY.replace("(", "[").replace(")", "]")))


def test_parse_text_and_sequence_alike():
    values = SPACE.parse(KEY)
    assert len(values) == KEY_LENGTH
    assert SPACE.parse(list(values)) == values
    stages = SPACE.stages(KEY)
    assert [stage.block for stage in stages] == [RESIDUAL, INVERTED, INVERTED]
    assert stages[1].kernel == 5 and stages[1].expansion == 6 and stages[2].depth == 3


@pytest.mark.parametrize("key, message", [
    ("(0, 3, 1, 2)", "has 4 entries, expected 15"),
    ("(0, 3, 1, 2, 4, 1, 5, 6, 1, 2, 1, 3, 3, 3, (3, 1))", "is not a tuple of integers"),
    ("nonsense", "is not a tuple of integers"),
    ("(2, 3, 1, 2, 4, 1, 5, 6, 1, 2, 1, 3, 3, 3, 3)", "stage 0: block 2 is not one of 0, 1"),
    ("(0, 3, 1, 2, 4, 1, 4, 6, 1, 2, 1, 3, 3, 3, 3)", "stage 1: kernel 4 is not one of 3, 5"),
    ("(0, 3, 1, 2, 4, 1, 5, 2, 1, 2, 1, 3, 3, 3, 3)", "stage 1: expansion 2 is not one of 1, 3, 6"),
    ("(0, 3, 1, 2, 4, 1, 5, 6, 1, 2, 1, 3, 3, 0, 3)", "stage 2: depth 0 is not one of 1, 2, 3"),
    ("(0, 3, 1, 2, 4, 1, 5, 6, 1, 2, 1, 3, 3, 3, 5)", "stage 2: width 5 is not one of 2, 3, 4"),
    ("(0, 3, 6, 2, 4, 1, 5, 6, 1, 2, 1, 3, 3, 3, 3)", "stage 0: a residual (block 0) stage has expansion 1"),
])
def test_bad_keys_are_one_line_naming_the_key(key, message):
    with pytest.raises(InvalidArchError, match="^mbnet: ") as err:
        SPACE.build(key, num_classes=10, in_channels=1)
    assert message in str(err.value) and "\n" not in str(err.value)
    if "stage" in message:
        assert str(err.value).startswith(f"mbnet: key {key}: ")


def test_sampling_is_deterministic_canonical_and_covers_every_choice():
    keys = [SPACE.sample(random.Random(7)) for _ in range(2)]
    assert keys[0] == keys[1]
    rng = random.Random(0)
    drawn = [SPACE.sample(rng) for _ in range(400)]
    assert len(set(drawn)) > 390
    seen: dict[str, set[int]] = {field: set() for field in ("block", "kernel", "expansion", "depth", "width")}
    for key in drawn:
        assert SPACE.parse(key) and key == str(SPACE.parse(key))   # canonical spelling
        for stage in SPACE.stages(key):
            for field, value in stage._asdict().items():
                seen[field].add(value)
    assert seen == {"block": {RESIDUAL, INVERTED}, "kernel": set(KERNELS), "expansion": set(EXPANSIONS),
                    "depth": set(DEPTHS), "width": set(WIDTHS)}
    assert len(stage_choices()) == 72


@pytest.mark.parametrize("in_channels, size, width", [(1, 8, None), (3, 32, None), (3, 32, 4)])
def test_builds_and_runs_forward(in_channels, size, width):
    for key in (KEY, SPACE.sample(random.Random(1))):
        torch.manual_seed(0)
        net = SPACE.build(key, num_classes=10, in_channels=in_channels, width=width)
        out = net(torch.randn(2, in_channels, size, size))
        assert out.shape == (2, 10) and torch.isfinite(out).all()
        out.sum().backward()
        assert count_flops(net, (1, in_channels, size, size)) > 0


def test_blocks_and_depth_follow_the_key():
    net = SPACE.build(KEY, num_classes=10, in_channels=1)
    blocks = list(net.blocks)
    assert [type(block) for block in blocks] == [BasicBlock] * 2 + [InvertedResidual] * 4
    strides = [next(m for m in block.modules() if isinstance(m, nn.Conv2d) and m.kernel_size != (1, 1)).stride
               for block in blocks]
    assert strides == [(1, 1), (1, 1), (2, 2), (2, 2), (1, 1), (1, 1)]
    assert net.classifier.in_features == 24                    # 32 channels × 3/4
    assert not blocks[2].use_residual and blocks[4].use_residual
    assert SPACE.build(KEY, depth=1) is not None                # depth is ignored: the key has the depths


def test_every_choice_changes_the_parameter_count():
    base = list(SPACE.parse(KEY))
    reference = params(SPACE.build(base, num_classes=10, in_channels=1))
    for index, value in [(1, 5), (3, 3), (4, 2), (5, 0), (6, 3), (7, 3), (8, 2), (14, 4)]:
        key = base.copy()
        key[index] = value
        if index == 5:
            key[7] = 1                                           # a residual stage has expansion 1
        assert params(SPACE.build(key, num_classes=10, in_channels=1)) != reference, (index, value)
    assert params(SPACE.build(KEY, num_classes=10, in_channels=1, width=16)) > reference


def test_embedded_benchmark_is_a_builtin():
    recipe = BUILTIN_RECIPES["mbnet-digits"]
    assert recipe["space"] == "mbnet" and recipe["benchmark"].is_file()
    records = load_benchmark(recipe["benchmark"], space="mbnet", task="digits")
    assert len(records) >= 200 and len({r.key for r in records}) == len(records)
    settings = json.loads(recipe["benchmark"].with_suffix(".settings.json").read_text())
    assert settings["space"] == "mbnet" and settings["dataset"] == "digits"
    accuracies = sorted(r.accuracy for r in records)
    assert 10 < accuracies[0] < accuracies[-1] <= 100
    torch.manual_seed(0)
    first = records[0]
    net = SPACE.build(first.key, num_classes=10, in_channels=1)
    assert round(params(net) / 1e6, 6) == pytest.approx(first.scores["params"])
