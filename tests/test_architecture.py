"""The dependency direction of ARCHITECTURE.md's layer table holds for every import in the code,
function-local ones included (they are how a cycle hides)."""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("autoproxy", "primitives", "search")
LANGUAGE_DOOR = "search.expressions"   # search's only way into primitives


def layer_table() -> dict[str, int]:
    """Module prefix -> layer number, read from the "## Layers" table of ARCHITECTURE.md."""
    text = (ROOT / "ARCHITECTURE.md").read_text()
    section = text.split("## Layers", 1)[1].split("\n## ", 1)[0]
    table = {}
    for number, cells in re.findall(r"^\| (\d) [^|]*\| (.*) \|$", section, flags=re.MULTILINE):
        for name in re.findall(r"`([\w.]+)`", cells):
            table[name] = int(number)
    return table


def layer_of(module: str, table: dict[str, int]) -> int | None:
    """The layer of the longest listed prefix; the bare ``autoproxy`` entry means the package itself."""
    matches = [name for name in table
               if module == name or (name != "autoproxy" and module.startswith(name + "."))]
    return table[max(matches, key=len)] if matches else None


def project_modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imported(path: Path) -> set[str]:
    """Every project module a file imports, at any depth of the file."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return {name for name in names if name.split(".")[0] in PACKAGES}


def test_every_module_has_a_layer():
    table = layer_table()
    assert table, "ARCHITECTURE.md has no layer table"
    missing = [module for module in project_modules() if layer_of(module, table) is None]
    assert not missing, f"add these modules to ARCHITECTURE.md's layer table: {missing}"


def test_imports_never_point_up():
    table = layer_table()
    upward = []
    for module, path in project_modules().items():
        for target in sorted(imported(path)):
            if layer_of(target, table) is not None and layer_of(target, table) > layer_of(module, table):
                upward.append(f"{module} (layer {layer_of(module, table)}) imports {target} "
                              f"(layer {layer_of(target, table)})")
    assert not upward, "\n".join(upward)


def test_search_reaches_primitives_only_through_its_door():
    crossings = [f"{module} imports {target}" for module, path in project_modules().items()
                 if module.startswith("search.") and module != LANGUAGE_DOOR
                 for target in imported(path) if target.split(".")[0] == "primitives"]
    assert not crossings, "\n".join(crossings)


def test_the_check_sees_an_upward_import(tmp_path):
    """The walker finds a function-local import, so the checks above can fail."""
    sample = tmp_path / "sample.py"
    sample.write_text("def late():\n    from autoproxy.registry import get_proxy\n")
    table = layer_table()
    assert imported(sample) == {"autoproxy.registry"}
    assert layer_of("autoproxy.registry", table) > layer_of("autoproxy.statistics", table)
    assert layer_of("autoproxy.cache.build", table) == layer_of("autoproxy.cache", table) == 1
    assert layer_of("autoproxy", table) == 4
