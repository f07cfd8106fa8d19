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
    ("deep", {"deep", "wbc_classic"}),
])
def test_package_imports_only_what_the_layout_allows(package, allowed):
    bad = [(f, m) for f, m, _ in _imports(package) if _project(m)
           and not any(m == a or m.startswith(a + ".") for a in allowed)]
    assert not bad, f"{package} imports outside its layout: {bad}"


@pytest.mark.parametrize("package", ["wbc_classic", "segmentation", "features"])
def test_no_torch_at_module_level(package):
    bad = [(f, m) for f, m, top in _imports(package)
           if top and (m.split(".")[0] in ("torch", "torchvision") or _project(m) == "deep")]
    assert not bad, f"torch imported at module level: {bad}"
