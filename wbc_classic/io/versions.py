"""Installed package versions, read from distribution metadata without importing packages."""

from __future__ import annotations

from collections.abc import Iterable
from importlib import metadata

__all__ = ["installed_version"]


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
