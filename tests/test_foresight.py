"""autoproxy proxies registered as zero-cost-nas / NASLib measures give the registry's scores through
those packages' own dispatch and reduction. Neither package is installed: ``StandIn`` below rewrites,
from reading them, the parts our measures meet (SamsungLabs/zero-cost-nas
``foresight/pruners/measures/__init__.py`` and ``foresight/pruners/predictive.py``; automl/NASLib
``naslib/predictors/utils/pruners/measures/__init__.py`` and ``predictive.py``). Loading data from a
dataloader is left out: the batch arrives already on the device, as ``get_some_data`` returns it."""
from __future__ import annotations

import copy
import types
from typing import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import autoproxy
from autoproxy.errors import RegistryError
from autoproxy.foresight import FORESIGHT_UNSUMMED, NASLIB_UNSUMMED, register_measures, register_naslib_measures
from autoproxy.registry import REGISTRY_ENV, proxy_document, save_proxy
from primitives.tree import parse

DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]


class StandIn:
    """One package's measure registry, ``calc_measure`` and ``find_measures`` as they behave."""

    def __init__(self, unsummed: frozenset[str]):
        self._measure_impls: dict[str, Callable] = {}
        self.available_measures: list[str] = []
        self.unsummed = unsummed

    def measure(self, name: str, bn: bool = True, copy_net: bool = True, **impl_args):
        """The ``@measure`` decorator: a native measure gets a prunable copy on the device."""
        def make_impl(func):
            def measure_impl(net_orig, device, *args, **kwargs):
                net = net_orig.get_prunable_copy(bn=bn).to(device) if copy_net else net_orig
                return func(net, *args, **kwargs, **impl_args)

            if name in self._measure_impls:
                raise KeyError(f"Duplicated measure! {name}")
            self.available_measures.append(name)
            self._measure_impls[name] = measure_impl
            return func
        return make_impl

    def calc_measure(self, name, net, device, *args, **kwargs):
        return self._measure_impls[name](net, device, *args, **kwargs)

    def find_measures_arrays(self, net_orig, inputs, targets, device, measure_names=None, loss_fn=F.cross_entropy):
        """The net goes to the CPU, the batch is on ``device``; CUDA out-of-memory retries every measure
        not yet computed with the batch split into more parts."""
        if measure_names is None:
            measure_names = self.available_measures
        if not hasattr(net_orig, "get_prunable_copy"):
            net_orig.get_prunable_copy = types.MethodType(lambda self, bn: copy.deepcopy(self), net_orig)
        net_orig = net_orig.cpu()
        done, ds, measure_values = False, 1, {}
        while not done:
            try:
                for measure_name in measure_names:
                    if measure_name not in measure_values:
                        measure_values[measure_name] = self.calc_measure(
                            measure_name, net_orig, device, inputs, targets, loss_fn=loss_fn, split_data=ds)
                done = True
            except RuntimeError as err:
                if "out of memory" not in str(err):
                    raise
                if ds == inputs.shape[0] // 2:
                    raise ValueError("Can't split data anymore, but still unable to run. Something is wrong")
                ds += 1
                while inputs.shape[0] % ds != 0:
                    ds += 1
        net_orig.to(device).train()
        return measure_values

    def find_measures(self, net_orig, inputs, targets, device, measure_names=None) -> dict[str, float]:
        """zero-cost-nas' reduction: a per-layer list is summed, the names in ``unsummed`` kept."""
        def sum_arr(arr):
            total = 0.
            for i in range(len(arr)):
                total += torch.sum(arr[i])
            return total.item()

        arrays = self.find_measures_arrays(net_orig, inputs, targets, device, measure_names=measure_names)
        return {k: v if k in self.unsummed else sum_arr(v) for k, v in arrays.items()}

    def naslib_find_measures(self, net_orig, inputs, targets, device, measure_names) -> float:
        """NASLib's ``find_measures`` reduces the same way but returns the last measure's score only."""
        return self.find_measures(net_orig, inputs, targets, device, measure_names)[measure_names[-1]]


class OutOfMemoryBeyond(nn.Module):
    """A small net that raises CUDA's out-of-memory error on batches larger than ``limit``."""

    def __init__(self, limit: int):
        super().__init__()
        self.limit = limit
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Linear(8, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] > self.limit:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB (stand-in)")
        return self.body(x)


@pytest.fixture(autouse=True)
def user_registry(tmp_path, monkeypatch):
    """A user registry holding one expression proxy, ``my_proxy``."""
    monkeypatch.setenv(REGISTRY_ENV, str(tmp_path / "registry"))
    save_proxy(proxy_document("my_proxy", parse("net_sum(node_sum(abs(mul(weight, grad))))")))


@pytest.fixture
def foresight() -> StandIn:
    """zero-cost-nas with one native measure, ``snip``, that returns a per-layer list."""
    standin = StandIn(FORESIGHT_UNSUMMED)

    @standin.measure("snip", mode="param")
    def native_snip(net, inputs, targets, mode, loss_fn, split_data=1):
        return [torch.ones(2), torch.ones(3)]

    return standin


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))


def batch(device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    inputs, targets = torch.randn(8, 3, 8, 8, generator=generator), torch.randint(0, 10, (8,), generator=generator)
    return inputs.to(device), targets.to(device)


def expected(net: nn.Module, name: str, device: str, split_data: int = 1) -> float:
    """The registry's score of ``net`` on the batch, on ``device``, with the loss zero-cost-nas passes."""
    inputs, targets = batch(device)
    return autoproxy.load_proxy(name)(copy.deepcopy(net).to(device), inputs, targets, loss_fn=F.cross_entropy,
                                      split_data=split_data)


def same(got: float, want: float, device: str) -> bool:
    """Exactly equal on the CPU; on a GPU, kernels may pick other algorithms from one call to the next."""
    return got == want if device == "cpu" else got == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("device", DEVICES)
def test_find_measures_sums_to_the_registry_scores(foresight, device):
    names = ["snip", "synflow", "nwot", "my_proxy"]
    keys = register_measures(foresight._measure_impls, names=names, prefix="ap_",
                             available=foresight.available_measures)
    assert keys == [f"ap_{name}" for name in names]
    assert foresight.available_measures == ["snip", *keys]
    net = small_net()
    scores = foresight.find_measures(net, *batch(device), device)     # measure_names=None: all available
    assert scores["snip"] == 5.0                                      # the native measure is still there
    for name in names:
        assert same(scores[f"ap_{name}"], expected(small_net(), name, device), device), name


def test_a_name_find_measures_keeps_unsummed_is_the_bare_score(foresight):
    save_proxy(proxy_document("jacob_cov", parse("net_sum(node_l2(grad))")))
    register_measures(foresight._measure_impls, names=["jacob_cov"])
    assert foresight.find_measures(small_net(), *batch(), "cpu", ["jacob_cov"]) == \
        {"jacob_cov": expected(small_net(), "jacob_cov", "cpu")}


@pytest.mark.parametrize("name", ["nwot", "jacov", "snip"])
def test_naslib_find_measures_gives_the_registry_score(name):
    naslib = StandIn(NASLIB_UNSUMMED)
    register_naslib_measures(naslib._measure_impls, names=[name])
    assert naslib.naslib_find_measures(small_net(), *batch(), "cpu", [name]) == expected(small_net(), name, "cpu")


def test_out_of_memory_retries_pass_split_data_through(foresight):
    register_measures(foresight._measure_impls, names=["snip"], prefix="ap_")
    torch.manual_seed(0)
    net = OutOfMemoryBeyond(limit=4)
    with pytest.raises(RuntimeError, match="out of memory"):
        expected(net, "snip", "cpu")
    scores = foresight.find_measures(copy.deepcopy(net), *batch(), "cpu", ["ap_snip"])
    assert scores["ap_snip"] == expected(net, "snip", "cpu", split_data=2)


def test_names_already_registered_are_refused_unless_overwritten(foresight):
    native = foresight._measure_impls["snip"]
    with pytest.raises(RegistryError, match=r"^measures 'snip' are already registered; pass overwrite=True"):
        register_measures(foresight._measure_impls, names=["synflow", "snip"])
    assert foresight._measure_impls == {"snip": native}              # nothing registered
    assert register_measures(foresight._measure_impls, names=["snip"], overwrite=True) == ["snip"]
    assert foresight.find_measures(small_net(), *batch(), "cpu", ["snip"]) == {"snip": expected(small_net(), "snip", "cpu")}


def test_unknown_names_are_refused_in_one_line(foresight):
    with pytest.raises(RegistryError, match=r"^unknown proxies 'nope', 'also_nope'; known: .*my_proxy") as err:
        register_measures(foresight._measure_impls, names=["snip", "nope", "also_nope"], prefix="ap_")
    assert "\n" not in str(err.value)
    assert list(foresight._measure_impls) == ["snip"]


def test_every_proxy_registers_by_default(foresight):
    keys = register_measures(foresight._measure_impls, prefix="ap_")
    assert keys == [f"ap_{name}" for name in autoproxy.list_proxies()] and "ap_my_proxy" in keys
    assert list(foresight._measure_impls) == ["snip", *keys]


@pytest.mark.parametrize("device", DEVICES)
def test_the_callers_net_is_untouched(foresight, device):
    names = ["snip", "synflow", "nwot", "my_proxy"]
    keys = register_measures(foresight._measure_impls, names=names, prefix="ap_")
    net = small_net().eval()
    before = copy.deepcopy(net.state_dict())
    for key in keys:
        foresight.calc_measure(key, net, device, *batch(device), mode="param", loss_fn=F.cross_entropy, split_data=1)
    assert not net.training and all(not module.training for module in net.modules())
    assert all(parameter.grad is None and parameter.device.type == "cpu" for parameter in net.parameters())
    assert all(torch.equal(value, before[name]) for name, value in net.state_dict().items())
