"""Installed package versions, read from distribution metadata without importing packages."""

from __future__ import annotations

import platform
from collections.abc import Iterable
from importlib import metadata

__all__ = ["installed_version", "package_versions"]


def installed_version(distributions: Iterable[str]) -> str | None:
    """Version of the first installed distribution among ``distributions``, or None.

    Several names cover one package sold under variants (``opencv-python-headless`` /
    ``opencv-python``, ``xgboost`` / ``xgboost-cpu``).
    """
    for name in distributions:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def package_versions() -> dict[str, str]:
    """Versions of the packages that decide a model's behaviour, as ``{name: version}``.

    Read from the installed distributions' metadata: nothing heavy is imported.
    """
    from wbc_classic import __version__

    out = {"wbc_classic": __version__, "python": platform.python_version()}
    dists = {"numpy": ("numpy",), "scikit-learn": ("scikit-learn",),
             "scikit-image": ("scikit-image",), "skops": ("skops",),
             "opencv": ("opencv-python-headless", "opencv-python",
                        "opencv-contrib-python-headless", "opencv-contrib-python"),
             "xgboost": ("xgboost", "xgboost-cpu")}
    for label, names in dists.items():
        version = installed_version(names)
        if version is not None:
            out[label] = version
    return out
