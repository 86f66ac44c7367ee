"""The import rules of docs/architecture.md, read from the source: the foundation layer imports nothing else of
the project, ``fer_models`` takes from ``fer_synth`` only the foundation layer and the face stage, and ``fer_synth``
never imports ``fer_models``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def project_imports(package: str) -> list[tuple[str, str]]:
    """(file, imported module) for every import of a project module in ``package``, at any depth in the code."""
    found = []
    for file in sorted((ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(file.read_text(), str(file))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            found += [
                (str(file.relative_to(ROOT)), name)
                for name in names
                if name.split(".")[0] in ("fer_synth", "fer_models")
            ]
    return found


@pytest.mark.parametrize(
    "package, allowed",
    [
        ("fer_synth/core", ("fer_synth.core",)),
        ("fer_synth/ui", ("fer_synth.ui", "fer_synth.core")),
        ("fer_synth", ("fer_synth",)),
        ("fer_models", ("fer_models", "fer_synth.core", "fer_synth.ui", "fer_synth.faces")),
    ],
)
def test_each_layer_imports_only_what_it_may(package, allowed):
    imports = project_imports(package)
    assert imports, f"no project import found in {package}: the walk is broken"
    wrong = [
        (file, name)
        for file, name in imports
        if not any(name == prefix or name.startswith(f"{prefix}.") for prefix in allowed)
    ]
    assert not wrong, f"{package} may import only {allowed}; found {wrong}"
