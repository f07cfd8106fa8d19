"""wbc-classic: leukocyte image analysis, classical and deep, benchmarked side by side.

The front door: ``wbc_classic.load(path)`` opens a saved classical model
(:class:`wbc_classic.classical.model.WBCModel`), ``wbc_classic.read_image`` reads any image file.
Heavy modules are imported on first use so ``import wbc_classic`` stays cheap.
"""

from __future__ import annotations

from typing import Any

from wbc_classic._version import __version__

_LAZY = {
    "load": ("wbc_classic.classical.modelfile", "load"),
    "WBCModel": ("wbc_classic.classical.model", "WBCModel"),
    "read_image": ("wbc_classic.io.images", "read_image"),
    "ImageReadError": ("wbc_classic.io.images", "ImageReadError"),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'wbc_classic' has no attribute {name!r}")
