"""Imports of optional dependencies the classical path does not need, kept out.

Importing scikit-learn imports pandas (``sklearn.utils.fixes``, ~0.3 s) for a module-level
name that no scikit-learn code uses, and walking scikit-learn's estimators imports torch and
dask through its array-API wrappers, which define no estimators.  :func:`without_packages`
refuses such packages for the length of one import; :func:`import_sklearn` is the first
scikit-learn import of the predict path (model loading, the workers' warm-up).

This module imports nothing of the project (the workers import it before anything heavy).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

__all__ = ["import_sklearn", "without_packages"]

#: imported eagerly by scikit-learn (``sklearn.utils.fixes``, 0.3 s) for nothing: that
#: module's ``pd`` is used nowhere, and scikit-learn imports pandas itself where it handles
#: a data frame
_EAGER_ONLY = ("pandas",)


class _Refuse:
    """Import hook refusing some top-level packages (see :func:`without_packages`)."""

    def __init__(self, refused: tuple[str, ...]):
        self.refused = refused

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name.split(".", 1)[0] in self.refused:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


@contextlib.contextmanager
def without_packages(packages: tuple[str, ...]) -> Iterator[None]:
    """Within the block, importing one of ``packages`` (top-level names) fails as if it were
    not installed; those already imported stay usable, and nothing is refused afterwards.

    For imports of optional dependencies that cost start-up time and are not needed:
    torch and dask during scikit-learn's estimator walk
    (:func:`wbc_classic.classical.modelfile._sklearn_estimator_names`),
    pandas while scikit-learn is first imported (:func:`import_sklearn`).
    """
    refused = tuple(m for m in packages if m not in sys.modules)
    if not refused:
        yield
        return
    finder = _Refuse(refused)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)


def import_sklearn() -> None:
    """Import scikit-learn's base modules without pandas, if not done yet (0.3 s less).

    The first import of :mod:`sklearn` imports pandas for a module-level name that no
    scikit-learn code uses; where scikit-learn handles a data frame, it imports pandas
    then, which works as before.  Called before the first scikit-learn import of the
    predict path (:func:`wbc_classic.classical.modelfile.load`, the workers' warm-up).
    """
    if "sklearn.utils" in sys.modules:
        return
    with without_packages(_EAGER_ONLY):
        import sklearn.utils  # noqa: F401
