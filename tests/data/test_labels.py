"""wbc_classic.data.labels is the one home of the class names, their order and the aliases."""

from __future__ import annotations

import ast

from tests.conftest import REPO_ROOT
from wbc_classic.data import labels


def test_the_class_sets_and_their_order():
    assert labels.PBC8_CLASSES == ("basophil", "eosinophil", "erythroblast", "ig", "lymphocyte",
                                   "monocyte", "neutrophil", "platelet")
    assert labels.PBC5_CLASSES == tuple(c for c in labels.PBC8_CLASSES
                                        if c in labels.PBC5_CLASSES)
    assert labels.CLASS_SETS["pbc5"] is labels.PBC5_CLASSES
    assert labels.CLASS_SETS["mature"] is labels.PBC5_CLASSES
    assert labels.CLASS_SETS["pbc8"] is labels.PBC8_CLASSES
    assert set(labels.LABEL_ALIASES.values()) == set(labels.PBC8_CLASSES)
    assert labels.label_key("  Seg_NEUTROPHIL - ") == "seg neutrophil"


def test_users_import_the_one_home():
    """The renderer, the benchmarks and the loaders hold no list of their own."""
    import benchmarks.config
    import benchmarks.cross_lab
    from wbc_classic.data import datasets, synthetic

    assert synthetic.PBC5_CLASSES is labels.PBC5_CLASSES
    assert benchmarks.cross_lab.PBC5_CLASSES is labels.PBC5_CLASSES
    assert benchmarks.config.PBC8_CLASSES is labels.PBC8_CLASSES
    assert datasets.canonical_label is labels.canonical_label
    for gone in ("CLASSES5",):
        assert not hasattr(synthetic, gone) and not hasattr(benchmarks.cross_lab, gone)


def test_no_module_spells_out_a_class_list():
    """A module-level tuple or list of five or more class names exists only in labels.py."""
    names = set(labels.PBC8_CLASSES)
    found = []
    for package in ("wbc_classic", "segmentation", "features", "deep", "benchmarks"):
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            for node in ast.parse(path.read_text()).body:
                value = node.value if isinstance(node, (ast.Assign, ast.AnnAssign)) else None
                if isinstance(value, (ast.Tuple, ast.List)) and len(value.elts) >= 5 and all(
                        isinstance(e, ast.Constant) and e.value in names for e in value.elts):
                    found.append(str(path.relative_to(REPO_ROOT)))
    assert found == ["wbc_classic/data/labels.py"] * 2, found   # PBC8 and PBC5
