"""Search spaces as plug-ins: the README's user space through ground truth, cache, search and export;
entry-point discovery; and one line naming the plug-in or key for every bad input."""
from __future__ import annotations

import importlib.metadata
import json
import random
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from autoproxy.benchmark import load_benchmark
from autoproxy.cache import open_cache
from autoproxy.cli import main
from autoproxy.errors import InvalidArchError
from autoproxy.registry import REGISTRY_ENV
from autoproxy.spaces import get_space, space_names
from autoproxy.spaces.plugins import ENTRY_POINT_GROUP
from search.tasks import load_tasks
from search_support import tiny_cache
from user_space_example import ChainSpace

USER_SPACE = "user_space_example:SPACE"
TINY_SEARCH = {"name": "chain", "population": 6, "generations": 2, "time_budget_s": None, "elites": 1,
               "subsets": 2, "subset_size": 4, "split_fractions": [0.5, 0.25, 0.25],
               "diversity_probe": 4, "max_height": 5, "max_size": 15, "init_max_depth": 3, "seed": 0,
               "executor": "serial", "stability_inits": 2, "stability_batches": 1}


class RaisingSpace(ChainSpace):
    """Builds every key but those with a 5x5 conv, which it refuses with its own exception."""

    def build(self, key, num_classes=10, in_channels=3, width=None, depth=None):
        if 5 in self.parse(key):
            raise RuntimeError("no 5x5 convs today")
        return super().build(key, num_classes, in_channels, width, depth)


class NotAModuleSpace(ChainSpace):
    def build(self, key, num_classes=10, in_channels=3, width=None, depth=None):
        return "a network, promise"


class BadSampleSpace(ChainSpace):
    def sample(self, rng):
        return "three-five-three"


def broken_factory():
    raise ValueError("factory exploded")


RAISING, NOT_A_MODULE, BAD_SAMPLE = RaisingSpace(), NotAModuleSpace(), BadSampleSpace()


@pytest.fixture(autouse=True)
def fresh_spaces():
    """``get_space`` loads a plug-in once per process; each test sees its own entry points."""
    get_space.cache_clear()
    yield
    get_space.cache_clear()


@pytest.fixture
def entry_points(monkeypatch):
    """Installs fake ``autoproxy.spaces`` entry points, as a package's metadata would declare them."""
    def install(**targets: str) -> None:
        points = [importlib.metadata.EntryPoint(name, value, ENTRY_POINT_GROUP) for name, value in targets.items()]
        real = importlib.metadata.entry_points
        monkeypatch.setattr(importlib.metadata, "entry_points",
                            lambda **kw: points if kw.get("group") == ENTRY_POINT_GROUP else real(**kw))
    return install


def cli(*args: str):
    return CliRunner().invoke(main, list(args))


def test_readme_sequence_with_a_user_space(tmp_path, monkeypatch, request):
    """groundtruth train → cache build → search → export, all on ``--space user_space_example:SPACE``;
    then a search over that cache and an NB201 one together."""
    monkeypatch.setenv(REGISTRY_ENV, str(tmp_path / "registry"))
    truth, cache, runs = tmp_path / "chain-digits.csv", tmp_path / "cache", tmp_path / "runs"
    trained = cli("groundtruth", "train", "--space", USER_SPACE, "--dataset", "digits", "--n", "12",
                  "--epochs", "1", "--width", "4", "--out", str(truth))
    assert trained.exit_code == 0, trained.output
    records = load_benchmark(truth, space=USER_SPACE, task="digits")
    assert len(records) == 12 and all(ChainSpace().parse(record.key) for record in records)

    built = cli("cache", "build", "--benchmark", str(truth), "--space", USER_SPACE, "--task", "digits",
                "--data", "digits", "--width", "4", "--batch-size", "32", "--executor", "serial", "--out", str(cache))
    assert built.exit_code == 0, built.output
    assert len(open_cache(cache)) == 12

    config = tmp_path / "chain.json"
    config.write_text(json.dumps({**TINY_SEARCH, "caches": [str(cache)]}))
    searched = cli("search", "--quiet", "--config", str(config), "--out", str(runs))
    assert searched.exit_code == 0 and "chosen:" in searched.stdout, searched.output
    assert "warning: the choice was made on 3 validation archs, too few" in searched.stderr   # 12 archs × 0.25

    exported = cli("export", str(runs / "chain-seed0"), "--name", "chain_proxy")
    assert exported.exit_code == 0 and (tmp_path / "registry" / "chain_proxy.json").is_file(), exported.output

    # the user's space beside NB201 in one multi-space search: one test line per cache, and the user
    # cache split exactly as in its own run (split streams are numbered per space)
    nb201 = tiny_cache(request)
    config.write_text(json.dumps({**TINY_SEARCH, "name": "mixed", "caches": [nb201, str(cache)], "stability_inits": 0}))
    searched = cli("search", "--quiet", "--config", str(config), "--out", str(runs))
    assert searched.exit_code == 0, searched.output
    assert set(json.loads((runs / "mixed-seed0" / "result.json").read_text())["test"]) == {Path(nb201).name, "cache"}
    fractions = tuple(TINY_SEARCH["split_fractions"])
    (alone,), (_, mixed) = load_tasks([str(cache)], fractions, 0), load_tasks([nb201, str(cache)], fractions, 0)
    assert (alone.space, list(alone.splits.test)) == (USER_SPACE, list(mixed.splits.test))


def test_entry_point_spaces_are_listed_and_loaded(entry_points):
    entry_points(chain="user_space_example:ChainSpace", chain_object=USER_SPACE)
    assert space_names() == ["chain", "chain_object", "mbnet", "nb101", "nb201", "nb301"]
    for name in ("chain", "chain_object"):              # a class is instantiated, an instance used as is
        net = get_space(name).build("(3, 0, 5, 1)", num_classes=7, in_channels=1, width=4)
        assert net(torch.randn(2, 1, 8, 8)).shape == (2, 7)
    assert get_space("chain").sample(random.Random(0)) == ChainSpace().sample(random.Random(0))


@pytest.mark.parametrize("name, message", [
    ("nope", "unknown search space 'nope' (known: mbnet, nb101, nb201, nb301; or module:attribute)"),
    ("os.path:join()", "unknown search space 'os.path:join()'"),     # not identifiers: never imported
    ("no_such_module:SPACE", "search space 'no_such_module:SPACE': cannot import: ModuleNotFoundError: "
                             "No module named 'no_such_module'"),
    ("user_space_example:NOPE", "search space 'user_space_example:NOPE': cannot import: AttributeError"),
    ("user_space_example:KERNELS", "tuple is not a SearchSpace: no name, no parse, no build, no sample"),
    ("test_spaces_plugins:broken_factory", "its factory raised ValueError: factory exploded"),
])
def test_a_space_that_cannot_be_loaded_is_one_line(name, message):
    with pytest.raises(InvalidArchError) as error:
        get_space(name)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_an_entry_point_that_does_not_import_is_named(entry_points):
    entry_points(broken="their_package.spaces:SPACE")
    with pytest.raises(InvalidArchError, match=r"^search space entry point broken = their_package\.spaces:SPACE: "
                                               r"cannot import: ModuleNotFoundError"):
        get_space("broken")


@pytest.mark.parametrize("space, call, message", [
    ("RAISING", lambda space: space.build("(5, 3, 3, 3)"),
     "search space test_spaces_plugins:RAISING: build of key (5, 3, 3, 3) raised RuntimeError: no 5x5 convs today"),
    ("NOT_A_MODULE", lambda space: space.build("(1, 3, 3, 3)"),
     "search space test_spaces_plugins:NOT_A_MODULE: build of key (1, 3, 3, 3) returned str, not a torch.nn.Module"),
    ("BAD_SAMPLE", lambda space: space.sample(random.Random(0)),
     "search space test_spaces_plugins:BAD_SAMPLE: sample returned 'three-five-three', not a key"),
    ("RAISING", lambda space: space.parse("(3, 4, 3, 3)"),
     "search space test_spaces_plugins:RAISING: parse of key (3, 4, 3, 3) raised InvalidArchError: chain: key"),
])
def test_a_plugin_that_raises_or_returns_junk_is_one_line_naming_space_and_key(space, call, message):
    with pytest.raises(InvalidArchError) as error:
        call(get_space(f"test_spaces_plugins:{space}"))
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_cli_names_a_bad_plugin_in_one_line_before_any_work(tmp_path):
    result = cli("groundtruth", "train", "--space", "no_such_module:SPACE", "--dataset", "digits", "--n", "2",
                 "--out", str(tmp_path / "gt.csv"))
    assert result.exit_code == 2 and result.output.strip().splitlines() == [
        "error: search space 'no_such_module:SPACE': cannot import: ModuleNotFoundError: "
        "No module named 'no_such_module'"]
    assert not (tmp_path / "gt.csv").exists()


def test_cache_build_keeps_every_arch_a_raising_plugin_finished(tmp_path):
    keys = ["(3, 3, 3, 3)", "(1, 0, 3, 1)", "(5, 3, 3, 3)", "(0, 1, 1, 1)", "(3, 5, 0, 0)"]
    truth = tmp_path / "truth.csv"
    truth.write_text("arch,accuracy\n" + "".join(f'"{key}",{50 + i}\n' for i, key in enumerate(keys)))
    result = cli("cache", "build", "--benchmark", str(truth), "--space", "test_spaces_plugins:RAISING",
                 "--task", "digits", "--data", "digits", "--width", "4", "--batch-size", "16",
                 "--executor", "serial", "--out", str(tmp_path / "cache"))
    assert result.exit_code == 1
    assert "2 archs skipped: first reason (arch (" in result.output and "raised RuntimeError: no 5x5" in result.output
    assert sorted(open_cache(tmp_path / "cache").keys) == sorted(key for key in keys if "5" not in key)
