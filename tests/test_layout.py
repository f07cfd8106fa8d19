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


def _module_graph(*, function_level: bool) -> dict[str, set[str]]:
    """Project module -> project modules it imports (``from pkg import mod`` counts as ``pkg.mod``
    when ``mod`` is a module); with ``function_level``, imports inside functions count too."""
    files = {}
    for package in PROJECT:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            rel = path.relative_to(REPO_ROOT).with_suffix("")
            files[".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)] = path
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        deps = graph.setdefault(name, set())
        for node in (ast.walk(tree) if function_level else tree.body):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if _project(node.module):
                    deps.add(node.module)
                    deps.update(f"{node.module}.{a.name}" for a in node.names
                                if f"{node.module}.{a.name}" in files)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if _project(a.name))
    # a package's __init__ importing its own submodules is the usual re-export, not a circle;
    # a module importing its own package (``from segmentation import color``) is resolved to
    # the submodule above
    for name, deps in graph.items():
        graph[name] = {d for d in deps if d in graph and d != name
                       and not name.startswith(d + ".") and not d.startswith(name + ".")}
    return graph


@pytest.mark.parametrize("function_level", [False, True])
def test_no_import_circle_between_modules(function_level):
    """Imports between project modules form no cycle, at module level nor inside functions
    (a deferred import only hides a circle: ``segmentation.pipeline`` once imported
    ``segmentation.field`` inside ``segment_field``, and ``field`` imports ``pipeline``)."""
    import graphlib

    graph = _module_graph(function_level=function_level)
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        pytest.fail(f"import circle: {' -> '.join(exc.args[1])}")


def test_circle_check_sees_function_level_imports(tmp_path, monkeypatch):
    """The old pipeline <-> field circle (one side inside a function) is caught."""
    import graphlib
    import sys

    pkg = tmp_path / "segmentation"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "pipeline.py").write_text("def segment_field():\n"
                                     "    from segmentation.field import impl\n")
    (pkg / "field.py").write_text("from segmentation.pipeline import segment_field\n")
    monkeypatch.setattr(sys.modules[__name__], "REPO_ROOT", tmp_path)
    graphlib.TopologicalSorter(_module_graph(function_level=False)).prepare()
    with pytest.raises(graphlib.CycleError):
        graphlib.TopologicalSorter(_module_graph(function_level=True)).prepare()


@pytest.mark.parametrize("package", ["wbc_classic", "segmentation", "features"])
def test_no_torch_at_module_level(package):
    bad = [(f, m) for f, m, top in _imports(package)
           if top and (m.split(".")[0] in ("torch", "torchvision") or _project(m) == "deep")]
    assert not bad, f"torch imported at module level: {bad}"


def test_no_two_public_classes_share_a_name():
    """One name, one thing: ``CellCrop`` once named both the features' crop of a cell and the
    deep family's crop settings, ``HEDJitter`` both the numpy augmentation and its tensor
    wrapper."""
    where: dict[str, list[str]] = {}
    for package in PROJECT:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            for node in ast.parse(path.read_text(), filename=str(path)).body:
                if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                    where.setdefault(node.name, []).append(str(path.relative_to(REPO_ROOT)))
    twins = {name: files for name, files in where.items() if len(files) > 1}
    assert not twins, f"class names defined twice: {twins}"
