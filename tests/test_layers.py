"""The layer rules of ARCHITECTURE.md, checked on the source with ``ast``.

Every project import counts, those inside functions included. A module may import
only its own layer and those below it:

    application  benchmark/*  (anything)
    components   representations/  models/  protocols/    -> core, data (not models from representations,
                                                              not data from models, no component from another)
    data         benchmark/datasets/                       -> core
    core         benchmark/core/                           -> nothing of the project

A ``_``-prefixed module is private to its package: importing it from another
package is a violation too.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("benchmark", "representations", "models", "protocols")

# What each layer may import, by layer name.
ALLOWED = {
    "core": {"core"},
    "data": {"core", "data"},
    "representations": {"core", "data", "representations"},
    "models": {"core", "models"},
    "protocols": {"core", "data", "protocols"},
    "application": {"core", "data", "representations", "models", "protocols", "application"},
}


def layer(module: str) -> str | None:
    """Layer of a dotted module name; None when it is not the project's."""
    parts = module.split(".")
    if parts[0] not in PACKAGES:
        return None
    if parts[0] == "benchmark":
        if len(parts) > 1 and parts[1] == "core":
            return "core"
        if len(parts) > 1 and parts[1] == "datasets":
            return "data"
        return "application"
    return parts[0]


def module_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imported(tree: ast.AST, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, dotted target) of every import in the module, at any depth."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = module.split(".") if is_package else module.split(".")[:-1]
                pkg = pkg[: len(pkg) - node.level + 1]
                base = ".".join(pkg + ([base] if base else []))
            # ``from pkg import name`` may name a submodule: check both spellings
            out += [(node.lineno, f"{base}.{a.name}") for a in node.names]
    return out


def _private_outside(owner: str, target: str) -> bool:
    parts = target.split(".")
    for i, part in enumerate(parts):
        if part.startswith("_") and not part.startswith("__"):
            package = ".".join(parts[:i])
            return not (owner == package or owner.startswith(package + "."))
    return False


def violations(root: Path) -> list[str]:
    found = []
    for pkg in PACKAGES:
        for path in sorted((root / pkg).rglob("*.py")):
            module = module_name(path, root)
            own = layer(module)
            tree = ast.parse(path.read_text(), filename=str(path))
            for line, target in imported(tree, module, path.name == "__init__.py"):
                dest = layer(target)
                if dest is None:
                    continue
                where = f"{path.relative_to(root)}:{line} imports {target}"
                if dest not in ALLOWED[own]:
                    found.append(f"{where} ({own} may not import {dest})")
                elif _private_outside(module, target) and own != "application":
                    found.append(f"{where} (private to its package)")
    return found


def test_the_project_keeps_its_layers():
    assert violations(ROOT) == []


@pytest.mark.parametrize("pkg, source, expected", [
    ("representations", "def f():\n    from models.ststnet import STSTNet\n", "representations may not import models"),
    ("models", "import benchmark.datasets.casme2\n", "models may not import data"),
    ("benchmark/core", "from benchmark.runner import execute\n", "core may not import application"),
    ("benchmark/datasets", "from representations import base\n", "data may not import representations"),
    ("representations", "from benchmark.datasets._frames import IMAGE_EXTS\n", "private to its package"),
    ("protocols", "from . import cde\nfrom ..benchmark import cli\n", "protocols may not import application"),
])
def test_a_violation_is_caught(tmp_path, pkg, source, expected):
    for name in PACKAGES:
        (tmp_path / name).mkdir()
    (tmp_path / "benchmark" / "core").mkdir()
    (tmp_path / "benchmark" / "datasets").mkdir()
    (tmp_path / pkg / "throwaway.py").write_text(source)
    found = violations(tmp_path)
    assert len(found) == 1 and expected in found[0], found


def test_allowed_imports_pass(tmp_path):
    for name in PACKAGES:
        (tmp_path / name).mkdir()
    (tmp_path / "representations" / "ok.py").write_text(
        "from benchmark.core.samples import Sample\nfrom benchmark.datasets import read_dataset\n"
        "from representations._cache import DiskCache\nimport numpy\n")
    assert violations(tmp_path) == []
