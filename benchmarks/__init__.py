"""benchmarks package."""

from wbc_classic import __version__

__all__ = ["__version__"]
