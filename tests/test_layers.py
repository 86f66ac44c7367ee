"""The rules of docs/architecture.md, read from the source: who may import whom (the data contract imports nothing
else of the project and draws nothing; the presentation layer takes only the data contract; ``fer_models`` takes from
``fer_synth`` only the data contract, the presentation layer and the face stage; ``fer_synth`` never imports
``fer_models``), no module imports itself through others, one place draws the plots, the tests mirror the packages
and no benchmark imports another."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT = ("fer_synth", "fer_models")


def imports_of(file: Path, top_level_only: bool = False) -> list[str]:
    """Every module ``file`` imports (absolute imports; ``from a import b`` gives ``a.b`` when that is a module of the
    project, else ``a``), anywhere in the code or, with ``top_level_only``, where the module runs at import time."""
    tree = ast.parse(file.read_text(), str(file))
    nodes = ast.walk(tree)
    if top_level_only:  # statements at module level, and inside a module-level if/try
        nodes = (n for stmt in tree.body for n in (ast.walk(stmt) if isinstance(stmt, ast.If | ast.Try) else [stmt]))
    names = []
    for node in nodes:
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names += [
                f"{node.module}.{a.name}" if module_file(f"{node.module}.{a.name}") else node.module for a in node.names
            ]
    return names


def module_file(name: str) -> Path | None:
    """The file of a project module or package, None for anything else."""
    path = ROOT.joinpath(*name.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if name.split(".")[0] in PROJECT and candidate.is_file():
            return candidate
    return None


def project_imports(package: str) -> list[tuple[str, str]]:
    """(file, imported module) for every import of a project module in ``package``, at any depth in the code."""
    return [
        (str(file.relative_to(ROOT)), name)
        for file in sorted((ROOT / package).rglob("*.py"))
        for name in imports_of(file)
        if name.split(".")[0] in PROJECT
    ]


def third_party_imports(package: str, library: str) -> list[str]:
    """The files of ``package`` that import ``library``, at any depth in the code."""
    return sorted(
        str(file.relative_to(ROOT))
        for file in (ROOT / package).rglob("*.py")
        if any(name.split(".")[0] == library for name in imports_of(file))
    )


@pytest.mark.parametrize(
    "package, allowed",
    [
        ("fer_synth/core", ("fer_synth.core",)),
        ("fer_synth/ui", ("fer_synth.ui", "fer_synth.core")),
        ("fer_synth/data", ("fer_synth.data", "fer_synth.core")),  # manifests and judgements are plain data to it
        ("fer_synth/faces", ("fer_synth.faces", "fer_synth.core", "fer_synth.ui")),
        ("fer_synth/generation", ("fer_synth.generation", "fer_synth.faces", "fer_synth.core", "fer_synth.ui")),
        # the dataset report describes a generation run: it reads the run's prompt file
        (
            "fer_synth/report",
            ("fer_synth.report", "fer_synth.data", "fer_synth.generation", "fer_synth.core", "fer_synth.ui"),
        ),
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


@pytest.mark.parametrize("library", ["click", "rich", "matplotlib"])
def test_the_data_contract_draws_nothing(library):
    assert third_party_imports("fer_synth/ui", library), "the walk is broken"
    assert not third_party_imports("fer_synth/core", library)


def test_plots_are_drawn_in_one_place():
    for package in PROJECT:
        assert set(third_party_imports(package, "matplotlib")) <= {"fer_synth/ui/plots.py"}


def test_only_the_command_lines_and_the_presentation_layer_use_click():
    found = set(third_party_imports("fer_synth", "click")) | set(third_party_imports("fer_models", "click"))
    assert {"fer_synth/cli.py", "fer_models/cli.py"} <= found
    # faces/options.py: the face stage's options, which three commands of both command lines share
    assert found - {"fer_synth/cli.py", "fer_models/cli.py", "fer_synth/faces/options.py"} <= {
        str(f.relative_to(ROOT)) for f in (ROOT / "fer_synth/ui").rglob("*.py")
    }


def test_no_module_imports_itself_through_others():
    modules = {
        ".".join(f.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): f
        for package in PROJECT
        for f in (ROOT / package).rglob("*.py")
    }
    graph = {m: {n for n in imports_of(f, top_level_only=True) if n in modules} for m, f in modules.items()}
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = "open"
        path.append(module)
        for imported in sorted(graph[module]):
            assert state.get(imported) != "open", "import cycle: " + " -> ".join(
                [*path[path.index(imported) :], imported]
            )
            if imported not in state:
                visit(imported)
        path.pop()
        state[module] = "done"

    assert len(graph) > 50, "the walk is broken"
    for module in sorted(graph):
        if module not in state:
            visit(module)


def test_the_tests_mirror_the_packages():
    for package in PROJECT:
        folders = [d for d in (ROOT / "tests" / package).rglob("*") if d.is_dir() and d.name != "__pycache__"]
        assert folders, f"tests/{package} holds no sub-folders: the walk is broken"
        strays = [str(d.relative_to(ROOT)) for d in folders if not (ROOT / d.relative_to(ROOT / "tests")).is_dir()]
        assert not strays, f"test folders with no package of that name: {strays}"


def test_no_benchmark_imports_another():
    for script in sorted((ROOT / "bench").glob("*.py")):
        benches = [name for name in imports_of(script) if name.split(".")[0] == "bench"]
        assert set(benches) <= {"bench.common"}, f"{script.name} imports {benches}: shared code goes in bench/common.py"
