"""The package boundaries of the README's layout table hold (imports read with ``ast``)."""

from __future__ import annotations

import ast

import pytest

from tests.conftest import REPO_ROOT

PROJECT = ("wbc_classic", "segmentation", "features", "deep", "benchmarks")


def _imports(package: str) -> list[tuple[str, str, bool]]:
    """(file, imported module, at module level) for every import in ``package``."""
    out = []
    for path in sorted((REPO_ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        top = set(map(id, tree.body))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                out.append((str(path.relative_to(REPO_ROOT)), name, id(node) in top))
    return out


def _project(name: str) -> str | None:
    head = name.split(".")[0]
    return head if head in PROJECT else None


@pytest.mark.parametrize("package, allowed", [
    ("segmentation", {"segmentation"}),
    ("features", {"features", "segmentation.result", "segmentation.color",
                  "segmentation.threshold"}),
    ("deep", {"deep", "wbc_classic.io", "wbc_classic.data", "wbc_classic.preprocess",
              "wbc_classic.evaluation"}),
    ("wbc_classic/io", {"wbc_classic.io"}),
    ("wbc_classic/data", {"wbc_classic.io", "wbc_classic.data"}),
    ("wbc_classic/preprocess", {"wbc_classic.io", "wbc_classic.data", "wbc_classic.preprocess",
                                "segmentation"}),
    ("wbc_classic/evaluation", {"wbc_classic.io", "wbc_classic.data", "wbc_classic.evaluation",
                                "segmentation"}),
    ("wbc_classic/classical", {"wbc_classic.io", "wbc_classic.data", "wbc_classic.preprocess",
                               "wbc_classic.evaluation", "wbc_classic.classical",
                               "segmentation", "features"}),
])
def test_package_imports_only_what_the_layout_allows(package, allowed):
    # ``wbc_classic`` itself: ``from wbc_classic import __version__`` (the only name allowed, below)
    bad = [(f, m) for f, m, _ in _imports(package) if _project(m) and m != "wbc_classic"
           and not any(m == a or m.startswith(a + ".") for a in allowed)]
    assert not bad, f"{package} imports outside its layout: {bad}"


def test_rooms_import_no_package_root_but_the_version():
    """``from wbc_classic import X`` would hide which room X lives in (and invite circles)."""
    bad = []
    for package in ("wbc_classic", "deep", "benchmarks"):
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                if (isinstance(node, ast.ImportFrom) and node.level == 0
                        and node.module == "wbc_classic"
                        and any(a.name != "__version__" for a in node.names)):
                    bad.append(str(path.relative_to(REPO_ROOT)))
    assert not bad, f"import from the package root instead of the room: {bad}"


def test_no_import_circle_between_modules():
    """Module-level imports between project modules form no cycle."""
    import graphlib

    graph: dict[str, set[str]] = {}
    for package in PROJECT:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            rel = path.relative_to(REPO_ROOT).with_suffix("")
            name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
            tree = ast.parse(path.read_text(), filename=str(path))
            deps = graph.setdefault(name, set())
            for node in tree.body:
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    if _project(node.module):
                        deps.add(node.module)
    # a package's __init__ importing its own submodules is the usual re-export, not a circle
    for name, deps in graph.items():
        graph[name] = {d for d in deps if d in graph and not name.startswith(d + ".")
                       and not (d.startswith(name + ".") and name.count(".") == 0)}
    graphlib.TopologicalSorter(graph).prepare()  # raises CycleError on a circle


@pytest.mark.parametrize("package", ["wbc_classic", "segmentation", "features"])
def test_no_torch_at_module_level(package):
    bad = [(f, m) for f, m, top in _imports(package)
           if top and (m.split(".")[0] in ("torch", "torchvision") or _project(m) == "deep")]
    assert not bad, f"torch imported at module level: {bad}"
