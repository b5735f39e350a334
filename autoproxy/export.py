"""Turn a formula of a search run into a registry proxy, and a registry proxy into a standalone
Python module that needs nothing but torch.

Standalone module, how: the engine's own torch-only modules (``BUNDLED_MODULES``: statistics,
packing, the primitives' kernels, the evaluator and ``autoproxy/expression_proxy.py``, which scores one
network exactly as ``autoproxy.score`` does) are copied verbatim, with the expression embedded as JSON
data: the typed program of ``primitives/program.py``. Why: there is no second implementation of
any primitive that could drift from the engine, and the exported file is checked (by parsing it) to
import only torch and the standard library. Bundled modules import names from each other
(``from primitives.kernels import VARIANTS_BY_KEY``), never whole modules, since one file has no
modules to refer to.

Nothing read from a file reaches the generated code as text: the formula in its docstring is
derived from the parsed expression, the expression is embedded through ``repr``, and the parsed
module must hold exactly the docstring and the statements the generator wrote. An export
generates and checks everything before it writes anything, then writes each file atomically.
"""
from __future__ import annotations

import ast
import json
import sys
from pathlib import Path
from typing import Any

from autoproxy.atomic import write_atomic
from autoproxy.errors import ExportError
from autoproxy.registry import DEFAULT_SUB_BATCHES, proxy_document, registry_entry, validate_document

# In dependency order: each module's top-level code uses only names defined above it.
BUNDLED_MODULES = ("autoproxy.errors", "autoproxy.flops", "autoproxy.nodes", "autoproxy.statistics",
                   "primitives.types", "primitives.leaves", "primitives.packed", "primitives.kernels", "primitives.fold",
                   "primitives.evaluate", "primitives.program", "autoproxy.expression_proxy")
BUNDLED_PACKAGES = frozenset(module.split(".")[0] for module in BUNDLED_MODULES)
ALLOWED_IMPORTS = frozenset(sys.stdlib_module_names) | {"torch"}


# ---------------------------------------------------------------- from a run to the registry
def pick_expression(directory: Path, pick: str) -> str:
    """``best``: the run's chosen formula (result.json); a number: that row of ``autoproxy inspect``."""
    from autoproxy.inspect_run import pareto_front, read_candidates
    from search.store import RunStore

    if pick == "best":
        result = RunStore(directory).read_result()
        if result is None:
            raise ExportError(f"{directory} has no result.json (unfinished run): pass --pick ROW from "
                              f"`autoproxy inspect {directory}`")
        chosen = result.get("chosen")
        if chosen is None:
            raise ExportError(f"{directory}: the run found no valid formula")
        return chosen["expression"]
    if not pick.isdigit():
        raise ExportError(f"--pick must be 'best' or a row number of `autoproxy inspect`, got {pick!r}")
    front = pareto_front(read_candidates(directory))
    row = int(pick)
    if not 1 <= row <= len(front):
        raise ExportError(f"row {row} does not exist: the Pareto front of {directory} has {len(front)} rows")
    return front[row - 1].expression


def _run_sub_batches(config: dict[str, Any]) -> int:
    """The sub-batch count the run's statistics used (grad_std depends on it)."""
    from autoproxy.cache.manifest import read_manifest

    caches = config.get("caches") or []
    if not caches or not Path(caches[0]).is_dir():
        return DEFAULT_SUB_BATCHES
    return read_manifest(Path(caches[0])).settings.sub_batches


def run_document(directory: str | Path, name: str, pick: str = "best") -> dict[str, Any]:
    """The registry document of a run's formula, with where it came from and how it scored."""
    from primitives.tree import parse
    from search.store import RunStore

    directory = Path(directory)
    store = RunStore(directory)
    if not store.config_path.is_file():
        raise ExportError(f"{directory} is not a search run directory (no config.json)")
    config = store.read_config_dict()
    expression = pick_expression(directory, pick)
    source: dict[str, Any] = {"run": str(directory.resolve()), "config": config.get("name"), "seed": config.get("seed"),
                              "caches": config.get("caches"), "metric": config.get("metric"), "pick": pick}
    result = store.read_result() or {}
    chosen = result.get("chosen") or {}
    if chosen.get("expression") == expression:
        source["scores"] = {"train_fitness": chosen.get("train_fitness"),
                            "validation_fitness": chosen.get("validation_fitness"), "test": result.get("test")}
    return proxy_document(name, parse(expression), sub_batches=_run_sub_batches(config), source=source)


def export_run(directory: str | Path, name: str, pick: str = "best", *, registry: Path | None = None,
               overwrite: bool = False, python_out: str | Path | None = None) -> tuple[dict[str, Any], Path]:
    """Add a run's formula to the user registry and, with ``python_out``, write its standalone module;
    returns the document and its registry file. Both files are generated and checked before either
    is written, so a refused or failed export leaves neither."""
    doc = run_document(directory, name, pick)
    path, entry = registry_entry(doc, registry, overwrite=overwrite)
    module = [] if python_out is None else [(Path(python_out), standalone_source(doc).encode())]
    write_all_or_none([*module, (path, entry)])
    return doc, path


def write_all_or_none(files: list[tuple[Path, bytes]]) -> None:
    """Write each file atomically, in order; when one fails, restore the ones already written."""
    written: list[tuple[Path, bytes | None]] = []
    try:
        for path, content in files:
            previous = path.read_bytes() if path.is_file() else None
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, content)
            written.append((path, previous))
    except OSError as err:
        failed = err.filename or path
        for done, previous in reversed(written):
            if previous is None:
                done.unlink(missing_ok=True)
            else:
                write_atomic(done, previous)
        raise ExportError(f"cannot write {failed}: {err.strerror}; nothing was exported") from None


# ---------------------------------------------------------------- standalone module
def _module_source(module: str) -> str:
    import importlib.util

    return Path(importlib.util.find_spec(module).origin).read_text()


def _top_level_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def _imported_names(tree: ast.Module) -> set[str]:
    return {alias.asname or alias.name.split(".")[0] for node in tree.body
            if isinstance(node, (ast.Import, ast.ImportFrom)) for alias in node.names}


def _strip_package_imports(module: str, source: str) -> tuple[str, set[str], set[str]]:
    """The source without ``from __future__`` imports and imports from the bundled packages; also the
    names those imports brought in and the module's own top-level names."""
    tree = ast.parse(source)
    dropped_lines: set[int] = set()
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and \
                (node.module == "__future__" or node.module.split(".")[0] in BUNDLED_PACKAGES):
            dropped_lines |= set(range(node.lineno, node.end_lineno + 1))
            if node.module != "__future__":
                imported |= {alias.asname or alias.name for alias in node.names}
        elif isinstance(node, ast.Import) and any(a.name.split(".")[0] in BUNDLED_PACKAGES for a in node.names):
            raise ExportError(f"cannot bundle {module}: it imports a whole package module (line {node.lineno})")
    kept = [line for number, line in enumerate(source.splitlines(), start=1) if number not in dropped_lines]
    return "\n".join(kept) + "\n", imported, _top_level_names(tree)


def standalone_source(doc: dict[str, Any]) -> str:
    """A Python module defining ``<name>(net, inputs, targets, loss_fn=None, split_data=1) -> float``."""
    from autoproxy import __version__
    from primitives.program import to_program
    from primitives.symbolic import simplified_text
    from primitives.tree import parse

    doc = validate_document(doc, f"proxy {doc.get('name')!r}")
    name = doc["name"]
    tree = parse(doc["expression"])
    parts: list[tuple[str, str]] = []
    needed: set[str] = set()
    defined: set[str] = set()
    for module in BUNDLED_MODULES:
        source, imported, names = _strip_package_imports(module, _module_source(module))
        clash = defined & names
        if clash:
            raise ExportError(f"cannot bundle {module}: top-level names {sorted(clash)} are defined twice")
        parts.append((module, source))
        needed |= imported
        defined |= names
    missing = needed - defined
    if missing:
        raise ExportError(f"cannot bundle: {sorted(missing)} are imported from a bundled package but not bundled")
    program = json.dumps(to_program(tree), separators=(",", ":"), allow_nan=False)
    sub_batches = int(doc.get("statistics", {}).get("sub_batches", DEFAULT_SUB_BATCHES))
    docstring = (
        f"Zero-cost proxy {name!r}, exported by autoproxy {__version__}; needs only torch.\n\n"
        f"Formula: {simplified_text(tree)}\n"
        f"Expression: {doc['expression']}\n\n"
        f"Call ``{name}(net, inputs, targets, loss_fn=None, split_data=1) -> float`` (the NASLib /\n"
        "zero-cost-nas measure signature). The code below is autoproxy's own statistics, packing,\n"
        "kernels and evaluator, copied verbatim; the expression is data.\n")
    code = ["from __future__ import annotations\n\nimport json\n"]
    for module, source in parts:
        code.append(f"# {'-' * 20} copied verbatim from {module.replace('.', '/')}.py {'-' * 20}\n{source}")
    code.append(
        f"# {'-' * 20} the exported proxy {'-' * 20}\n"
        f"_EXPORTED_PROGRAM = from_program(json.loads({program!r}))\n"
        f"_EXPORTED_SUB_BATCHES = {sub_batches}\n\n\n"
        f"def {name}(net, inputs, targets, loss_fn=None, split_data=1) -> float:\n"
        f'    """{name!r} of ``net`` on one minibatch ({sub_batches} equal sub-batches for gradient moments);\n'
        "    ``split_data`` runs the batch in that many chunks (less memory, the same score up to float\n"
        '    rounding without train-mode batch norm). ``net`` is not modified."""\n'
        "    return expression_score(_EXPORTED_PROGRAM, net, inputs, targets, loss_fn,\n"
        "                            sub_batches=_EXPORTED_SUB_BATCHES, split_data=split_data)\n")
    text = "\n\n".join([f'"""{docstring}"""', *code])
    _check_module(text, docstring, code, name)
    return text


def _check_module(text: str, docstring: str, code: list[str], name: str) -> None:
    """The module must parse into exactly the intended docstring followed by the generator's own
    statements (so no text can have escaped the docstring), bind the proxy's name only by its final
    ``def`` (an earlier binding of that name would be shadowed), and import nothing but torch and the
    standard library."""
    try:
        module = ast.parse(text)
    except SyntaxError as err:
        raise ExportError(f"generated module does not parse: {err}") from None
    statements = 1 + sum(len(ast.parse(piece).body) for piece in code)
    if ast.get_docstring(module, clean=False) != docstring or len(module.body) != statements:
        raise ExportError("generated module holds statements the generator did not write; refused")
    before = ast.Module(body=module.body[:-1], type_ignores=[])
    if name in _top_level_names(before) | _imported_names(before) or name.startswith("_EXPORTED"):
        raise ExportError(f"proxy name {name!r} clashes with a name of the bundled code; choose another --name")
    for node in ast.walk(module):
        modules = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        for imported in modules:
            if imported.split(".")[0] not in ALLOWED_IMPORTS:
                raise ExportError(f"generated module would import {imported!r}; only torch and the stdlib are allowed")
