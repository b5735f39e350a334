"""The software a run was found with: same seed, same formula holds within one environment only.

A run's trajectory depends on more than its seed: SymPy decides which texts share a canonical form
(the fitness cache's identity), DEAP draws the variations, NumPy and torch do the arithmetic whose
last bits break ties. The main job once chose another formula after nothing but a reinstall, so a
run records the versions it started with, a resume elsewhere says what changed, and the result
states what it was finished with.
"""
from __future__ import annotations

import platform
from importlib import metadata
from typing import Any

PACKAGES = ("torch", "numpy", "scipy", "sympy", "deap", "ray")


def current_environment() -> dict[str, Any]:
    """Python and the versions of the packages that can move a run's trajectory (None: not installed)."""
    return {"python": platform.python_version(), "packages": {name: _version(name) for name in PACKAGES}}


def environment_changes(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``"name old -> new"`` for each difference, Python first, then ``PACKAGES`` order."""
    changes = []
    if recorded.get("python") != current["python"]:
        changes.append(f"python {recorded.get('python')} -> {current['python']}")
    old = recorded.get("packages", {})
    for name in PACKAGES:
        if old.get(name) != current["packages"][name]:
            changes.append(f"{name} {old.get(name)} -> {current['packages'][name]}")
    return changes


def describe_environment(environment: dict[str, Any]) -> str:
    """One line: ``python 3.11.9, torch 2.13.0, ...``."""
    packages = ", ".join(f"{name} {version}" for name, version in environment.get("packages", {}).items())
    return f"python {environment.get('python')}, {packages}"


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None
