"""Class names: the one home of the label vocabulary.

The class names, their order, the named class sets (PBC-8, PBC-5) and the aliases that map
raw folder and annotation labels onto them live here; the loaders (:mod:`wbc_classic.data.
datasets`), the synthetic renderer (:mod:`wbc_classic.data.synthetic`), the benchmarks and
the command line all import them from this module.

Class names are lower case.  :func:`canonical_label` ignores case, surrounding spaces and
``_``/``-``/space differences, then applies :data:`LABEL_ALIASES` (plus any user aliases), so
``Neutrophils/``, ``SEG_NEUTROPHIL/`` and ``band/`` all become ``"neutrophil"``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = [
    "BLOODMNIST_CLASSES",
    "CLASS_SETS",
    "LABEL_ALIASES",
    "PBC5_CLASSES",
    "PBC8_CLASSES",
    "canonical_label",
    "label_key",
]

#: The eight PBC classes, alphabetical (the label order of the 8-class task).
PBC8_CLASSES: tuple[str, ...] = (
    "basophil", "eosinophil", "erythroblast", "ig", "lymphocyte", "monocyte", "neutrophil",
    "platelet",
)
#: The five mature leukocyte classes (the usual 5-class task), alphabetical.
PBC5_CLASSES: tuple[str, ...] = ("basophil", "eosinophil", "lymphocyte", "monocyte", "neutrophil")
#: BloodMNIST label names in official label order 0..7 (0 basophil, ..., 3 immature
#: granulocytes, ..., 7 platelet); identical to :data:`PBC8_CLASSES` (BloodMNIST is PBC).
BLOODMNIST_CLASSES: tuple[str, ...] = PBC8_CLASSES

#: Named class sets accepted wherever a list of classes is (``classes="pbc5"``).
CLASS_SETS: dict[str, tuple[str, ...]] = {"pbc8": PBC8_CLASSES, "pbc5": PBC5_CLASSES,
                                          "all": PBC8_CLASSES, "mature": PBC5_CLASSES}


def label_key(name: str) -> str:
    """Lower case, strip, collapse runs of space/underscore/hyphen into one space."""
    return re.sub(r"[\s_\-]+", " ", str(name).strip().lower()).strip()


_ALIAS_GROUPS: dict[str, tuple[str, ...]] = {
    "neutrophil": ("neutrophils", "neutrophile", "neutrophiles", "seg neutrophil",
                   "segmented neutrophil", "segmented neutrophils", "band", "band neutrophil",
                   "band neutrophils", "band cell", "neut", "neutro", "neu", "sne", "bne",
                   "pmn"),
    "eosinophil": ("eosinophils", "eosinophile", "eosino", "eosi", "eos", "eo"),
    "basophil": ("basophils", "basophile", "baso", "bas", "ba"),
    "lymphocyte": ("lymphocytes", "lymph", "lymp", "lym", "lympho", "ly", "small lymphocyte",
                   "large lymphocyte", "small lymph", "large lymph"),
    "monocyte": ("monocytes", "mono", "mon", "mo"),
    "ig": ("immature granulocyte", "immature granulocytes", "immature", "igs",
           "metamyelocyte", "metamyelocytes", "myelocyte", "myelocytes", "promyelocyte",
           "promyelocytes", "mmy", "my", "pmy"),
    "erythroblast": ("erythroblasts", "nrbc", "nrbcs", "normoblast", "normoblasts", "erb",
                     "nucleated red blood cell", "nucleated red blood cells"),
    "platelet": ("platelets", "thrombocyte", "thrombocytes", "plt", "plts"),
}

#: Built-in label aliases, normalised key -> canonical class name.  Keys are normalised with
#: the same rule as folder names (lower case, ``_``/``-``/spaces collapsed to one space).
LABEL_ALIASES: Mapping[str, str] = {
    **{alias: canon for canon, aliases in _ALIAS_GROUPS.items() for alias in aliases},
    **{canon: canon for canon in _ALIAS_GROUPS},
}


def canonical_label(name: str, aliases: Mapping[str, str] | None = None) -> str:
    """Map a raw label (folder name, annotation name) to its canonical class name.

    Parameters
    ----------
    name : str
        Raw label, e.g. ``"Neutrophils"``, ``"SEG_NEUTROPHIL"``, ``"immature granulocyte"``.
    aliases : mapping of str to str, optional
        User aliases ``raw name -> class name``, applied before (and overriding)
        :data:`LABEL_ALIASES`.  Keys are matched like ``name``; values are final class names
        (lower-cased, spaces to ``"_"``; not looked up again in the built-in table, so
        ``{"band": "band_neutrophil"}`` keeps band forms as their own class).

    Returns
    -------
    str
        The canonical name (lower case).  Unknown labels are returned normalised, with runs
        of spaces/underscores/hyphens turned into ``"_"`` (``"Mixt Cells"`` -> ``"mixt_cells"``).
    """
    key = label_key(name)
    if aliases:
        user = {label_key(k): v for k, v in aliases.items()}
        if key in user:
            return label_key(user[key]).replace(" ", "_")
    if key in LABEL_ALIASES:
        return LABEL_ALIASES[key]
    return key.replace(" ", "_")
