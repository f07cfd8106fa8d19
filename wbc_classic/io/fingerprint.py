"""Fingerprints of source code, so that caches keyed by them go stale when the code changes."""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["code_fingerprint"]


def code_fingerprint(module_name: str, max_files: int = 300) -> str:
    """SHA-256 of the source of the top-level package that defines ``module_name``.

    Used in the cache key so that editing the segmenter's or the extractor's code (during
    development, without a version bump) invalidates their cached rows. Large third-party
    packages (more than ``max_files`` files) are identified by their ``__version__`` instead.

    Parameters
    ----------
    module_name : str
        E.g. ``"segmentation.pipeline"``; its top-level package (``segmentation``) is hashed.

    Returns
    -------
    str
        Hex digest, or ``"<package> <version>"``, or ``"?"`` when it cannot be located.
    """
    import importlib
    import sys

    top = module_name.split(".")[0]
    try:
        package = sys.modules.get(top) or importlib.import_module(top)
    except ImportError:
        return "?"
    location = getattr(package, "__file__", None)
    if location is None:
        return "?"
    root = Path(location).parent
    files = sorted(root.rglob("*.py")) if Path(location).name == "__init__.py" else [Path(
        location)]
    if len(files) > max_files:
        return f"{top} {getattr(package, '__version__', '?')}"
    h = hashlib.sha256()
    for f in files:
        try:
            data = f.read_bytes()
        except OSError:
            continue
        h.update(str(f.relative_to(root.parent) if f.is_relative_to(root.parent) else f.name)
                 .encode())
        h.update(hashlib.sha256(data).digest())
    return h.hexdigest()
