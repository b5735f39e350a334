"""The unified proxy registry, its safety against code in files, the Python API, and exported modules
(which bundle the engine's own statistics, kernels and evaluator, so they agree with it exactly)."""
from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import math
import random
import sys

import pytest
import torch
from click.testing import CliRunner

import autoproxy
from autoproxy.cli import main
from autoproxy.errors import ExportError, RegistryError
from autoproxy.export import standalone_source
from autoproxy.expression_proxy import expression_score
from autoproxy.registry import (ENTRY_POINT_GROUP, REGISTRY_ENV, RegistryWarning, all_proxies,
                                check_name, get_proxy, proxy_document, save_proxy)
from autoproxy.spaces import get_space
from autoproxy.statistics import compute_statistics
from primitives.catalog import NAMES, PRIMITIVES_BY_KEY
from primitives.leaves import LEAVES
from primitives.evaluate import Evaluator
from primitives.packed import pack
from primitives.pset import random_tree
from primitives.reference import REFERENCE_EXPRESSIONS, reference_tree
from primitives.program import to_program
from primitives.tree import node_label, parse, to_json, to_string

# A document a third-party package could ship through the entry-point group (see the entry-point test).
THIRD_PARTY_DOC = proxy_document("third_party", parse("net_sum(node_l2(grad_std))"))


@pytest.fixture(autouse=True)
def registry(tmp_path, monkeypatch):
    directory = tmp_path / "registry"
    monkeypatch.setenv(REGISTRY_ENV, str(directory))
    return directory


@pytest.fixture(scope="module")
def net_and_batch():
    torch.manual_seed(0)
    net = get_space("nb201").build("(2, 3, 0, 4, 2, 3)", num_classes=10, width=4, depth=1)
    generator = torch.Generator().manual_seed(1)
    return net, torch.randn(8, 3, 32, 32, generator=generator), torch.randint(0, 10, (8,), generator=generator)


@pytest.fixture(scope="module")
def statistics(net_and_batch):
    net, inputs, targets = net_and_batch
    return compute_statistics(net, inputs, targets, sub_batches=4)


@pytest.fixture(scope="module")
def standalone(tmp_path_factory):
    """An exported module, imported as its user would: the statistics, kernels and evaluator it bundles
    are what every exported proxy runs."""
    path = tmp_path_factory.mktemp("standalone") / "exported_snip.py"
    path.write_text(standalone_source(proxy_document("exported_snip", reference_tree("snip"))))
    spec = importlib.util.spec_from_file_location("exported_snip", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module         # as ``import`` does (dataclasses look their module up there)
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def _outcome(values):
    """The values a callable computes, or the error it raises (both sides must raise alike)."""
    try:
        return values()
    except Exception as err:        # noqa: BLE001 - compared, not swallowed
        return f"{type(err).__name__}: {err}"


def test_standalone_module_bundles_the_engines_tables_and_statistics(standalone, net_and_batch, statistics):
    assert standalone.VARIANTS_BY_KEY.keys() == PRIMITIVES_BY_KEY.keys()
    assert [(leaf.name, leaf.key) for leaf in standalone.LEAVES] == [(leaf.name, leaf.key) for leaf in LEAVES]
    net, inputs, targets = net_and_batch
    bundled = standalone.compute_statistics(net, inputs, targets, sub_batches=4)
    assert [node.name for node in bundled.nodes] == [node.name for node in statistics.nodes]
    for mine, theirs in zip([bundled, *bundled.nodes], [statistics, *statistics.nodes]):
        assert mine.scalars == theirs.scalars and mine.tensors.keys() == theirs.tensors.keys()
        for key, tensor in mine.tensors.items():
            torch.testing.assert_close(tensor, theirs.tensors[key], rtol=0, atol=0, equal_nan=True)


def test_standalone_module_equals_engine_on_reference_and_random_expressions(standalone, net_and_batch,
                                                                            statistics):
    """Zero tolerance: the module runs the engine's own kernels on the same statistics."""
    net, inputs, targets = net_and_batch
    for name in REFERENCE_EXPRESSIONS:
        tree = reference_tree(name)
        exported = standalone.expression_score(standalone.from_program(to_program(tree)), net, inputs, targets)
        engine = expression_score(tree, net, inputs, targets)
        assert exported == engine or (math.isnan(exported) and math.isnan(engine)), name
    assert standalone.exported_snip(net, inputs, targets) == expression_score(reference_tree("snip"), net, inputs,
                                                                              targets)
    assert standalone.exported_snip(net, inputs, targets, split_data=2) == expression_score(
        reference_tree("snip"), net, inputs, targets, split_data=2)    # split_data reaches the statistics
    engine = Evaluator(pack([statistics]), memo_bytes=0)
    bundled = standalone.Evaluator(standalone.pack([statistics]), memo_bytes=0)
    covered = set()
    for seed in range(400):
        random.seed(seed)
        tree = random_tree(random.Random(seed), 1, 6)
        program = standalone.from_program(to_program(tree))
        expected, got = _outcome(lambda: engine.values(tree)), _outcome(lambda: bundled.values(program))
        if isinstance(expected, str):
            assert got == expected, to_string(tree)
        else:
            torch.testing.assert_close(got, expected, rtol=0, atol=0, equal_nan=True, msg=to_string(tree))
        covered |= {node_label(node) for node in tree if node.arity > 0}
    assert covered == NAMES


def test_registry_round_trip(registry, net_and_batch):
    net, inputs, targets = net_and_batch
    tree = parse("net_sum(node_sum(abs(mul(weight, grad_abs_mean))))")
    path = save_proxy(proxy_document("my_proxy", tree, source={"run": "runs/x"}))
    assert path == registry / "my_proxy.json"
    proxy = get_proxy("my_proxy")
    assert proxy.kind == "expression" and proxy.expression == "net_sum(node_sum(abs(mul(weight, grad_abs_mean))))"
    assert proxy.document["source"] == {"run": "runs/x"}
    assert get_proxy(str(path)).expression == proxy.expression
    assert "my_proxy" in autoproxy.list_proxies() and "nwot" in autoproxy.list_proxies()
    assert autoproxy.load_proxy("my_proxy").expression == proxy.expression
    expected = expression_score(tree, net, inputs, targets)
    assert autoproxy.score(net, inputs, targets, proxy="my_proxy") == expected
    with pytest.raises(RegistryError, match="exists"):
        save_proxy(proxy_document("my_proxy", tree))


def test_builtin_proxies_are_in_the_same_registry(net_and_batch):
    from autoproxy.proxies import reference_proxy as direct

    net, inputs, targets = net_and_batch
    assert autoproxy.score(net, inputs, targets, proxy="snip") == direct("snip")(net, inputs, targets)
    assert all_proxies()["params"].origin == "built-in"
    with pytest.raises(RegistryError, match="built-in"):
        save_proxy(proxy_document("snip", reference_tree("snip")))


def test_reference_expression_matches_direct_proxy_through_the_registry(registry, net_and_batch):
    net, inputs, targets = net_and_batch
    save_proxy(proxy_document("expr_snip", reference_tree("snip")))
    assert math.isclose(autoproxy.score(net, inputs, targets, proxy="expr_snip"),
                        autoproxy.score(net, inputs, targets, proxy="snip"), rel_tol=1e-4)


@pytest.mark.parametrize("content, message", [
    ("import os\nos.system('echo pwned')\n", "not JSON"),
    ('__import__("os").system("echo pwned")', "not JSON"),
    (json.dumps({**THIRD_PARTY_DOC, "name": "evil", "expression": "__import__('os').system('echo pwned')"}),
     "refused"),
    (json.dumps({**THIRD_PARTY_DOC, "name": "evil", "expression": "net_sum(node_sum(exec(weight)))"}), "refused"),
    (json.dumps({**THIRD_PARTY_DOC, "name": "evil", "tree": {"op": "system", "args": [{"leaf": "weight"}]}}),
     "refused"),
    (json.dumps({**THIRD_PARTY_DOC, "name": "evil", "tree": to_json(reference_tree("snip"))}), "disagree"),
    (json.dumps({**THIRD_PARTY_DOC, "name": "evil", "code": "print(1)"}), "unknown fields"),
    (json.dumps({**THIRD_PARTY_DOC, "name": "../evil"}), "invalid proxy name"),
    (json.dumps({**THIRD_PARTY_DOC, "name": "evil", "simplified": 'x"""\nimport os\nos.system("echo pwned")\n"""'}),
     "one printable line"),
    (json.dumps({**THIRD_PARTY_DOC, "name": "evil", "simplified": "\x1b[2J\x1b[31mnet_params"}), "one printable line"),
    (json.dumps({**THIRD_PARTY_DOC, "name": "evil", "source": {"run": "runs/x\nimport os"}}), "one printable line"),
    (json.dumps({**THIRD_PARTY_DOC, "name": "evil", "source": {"a": {"b": {"c": {"d": {"e": "deep"}}}}}}), "nested"),
    ('{"a": ' * 3000 + "1" + "}" * 3000, "nested too deeply"),
])
def test_files_holding_code_or_unknown_names_are_refused(registry, content, message):
    registry.mkdir(parents=True)
    (registry / "evil.json").write_text(content)
    with pytest.raises(RegistryError, match=message) as caught:
        get_proxy("evil")
    assert "evil.json" in str(caught.value)
    with pytest.warns(RegistryWarning, match="evil.json"):
        assert "nwot" in autoproxy.list_proxies()    # a bad file hides only itself


def test_list_shows_every_good_proxy_and_names_each_bad_file(registry):
    save_proxy(proxy_document("good", parse("net_sum(node_l2(grad))")))
    (registry / "broken.json").write_text("{not json")
    (registry / "evil.json").write_text(json.dumps({**THIRD_PARTY_DOC, "name": "evil", "expression": "exec(weight)"}))
    result = CliRunner().invoke(main, ["list"])
    assert result.exit_code == 1
    listed = {line.split()[0]: line for line in result.stdout.splitlines()}
    assert {"good", "nwot", "snip"} <= set(listed) and "evil" not in listed
    assert listed["good"].endswith("net_sum(node_l2(grad))")
    problems = result.stderr.splitlines()
    assert len(problems) == 2 and all(line.startswith("skipped: ") for line in problems)
    assert "broken.json" in problems[0] and "evil.json" in problems[1]
    assert autoproxy.load_proxy("good").expression == "net_sum(node_l2(grad))"
    with pytest.raises(RegistryError, match="unknown proxy 'nope'.*good"):
        get_proxy("nope")


def test_free_text_is_never_shown_as_the_formula_nor_written_into_code(registry):
    injected = '"""; import os; os.system("echo pwned"); """'      # one printable line: accepted as free text
    doc = {**proxy_document("good", parse("net_sum(node_l2(grad))")), "simplified": injected,
           "source": {"run": injected}}
    registry.mkdir(parents=True)
    (registry / "good.json").write_text(json.dumps(doc))
    result = CliRunner().invoke(main, ["list"])
    assert result.exit_code == 0 and "pwned" not in result.output
    source = standalone_source(get_proxy("good").document)
    assert "pwned" not in source
    assert "Formula: net_sum(node_l2(grad))" in source


def test_a_module_whose_docstring_was_escaped_is_refused(monkeypatch):
    import primitives.symbolic

    doc = proxy_document("good", parse("net_sum(node_l2(grad))"))
    monkeypatch.setattr(primitives.symbolic, "simplified_text", lambda tree: 'x"""\nimport os\n"""')
    with pytest.raises(ExportError, match="statements the generator did not write"):
        standalone_source(doc)


@pytest.mark.parametrize("name", ["class", "None", "match", "type", "sum", "print"])
def test_keywords_and_builtins_are_not_proxy_names(name):
    with pytest.raises(RegistryError, match=f"invalid proxy name '{name}': a Python keyword or builtin"):
        check_name(name)


@pytest.fixture
def run_dir(tmp_path):
    """A finished search run, as far as export reads one."""
    directory = tmp_path / "run"
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps({"name": "tiny", "seed": 0, "caches": []}))
    chosen = {"expression": "net_sum(node_l2(grad))", "train_fitness": 0.5, "validation_fitness": 0.4}
    (directory / "result.json").write_text(json.dumps({"chosen": chosen, "test": None}))
    return directory


def test_export_under_a_keyword_name_writes_nothing(run_dir, registry, tmp_path):
    result = CliRunner().invoke(main, ["export", str(run_dir), "--name", "class", "--python", str(tmp_path / "m.py")])
    assert result.exit_code == 2
    assert result.output.strip() == ("error: invalid proxy name 'class': a Python keyword or builtin name; "
                                     "choose another")
    assert not registry.exists() and not (tmp_path / "m.py").exists()


def test_export_that_cannot_write_the_registry_leaves_the_module_as_it_was(run_dir, tmp_path, monkeypatch):
    blocked = tmp_path / "not_a_folder"
    blocked.write_text("")
    monkeypatch.setenv(REGISTRY_ENV, str(blocked))          # the registry write fails after the module's
    module = tmp_path / "found.py"
    for before in (None, "# the user's previous module\n"):
        if before is not None:
            module.write_text(before)
        result = CliRunner().invoke(main, ["export", str(run_dir), "--name", "found", "--python", str(module)])
        assert result.exit_code == 2 and "nothing was exported" in result.output, result.output
        assert (module.read_text() if module.exists() else None) == before


def test_unknown_name_lists_what_is_known():
    with pytest.raises(RegistryError, match="unknown proxy 'nope'.*nwot"):
        get_proxy("nope")


def test_entry_point_proxies(monkeypatch, net_and_batch):
    net, inputs, targets = net_and_batch
    points = [importlib.metadata.EntryPoint("third_party", "test_registry:THIRD_PARTY_DOC", ENTRY_POINT_GROUP),
              importlib.metadata.EntryPoint("their_fn", "autoproxy.proxies.gradient:snip", ENTRY_POINT_GROUP)]
    real = importlib.metadata.entry_points
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda **kw: points if kw.get("group") == ENTRY_POINT_GROUP else real(**kw))
    assert {"third_party", "their_fn"} <= set(autoproxy.list_proxies())
    assert get_proxy("third_party").kind == "expression"
    assert autoproxy.score(net, inputs, targets, proxy="their_fn") == autoproxy.score(net, inputs, targets, proxy="snip")
