"""wbc-classic: leukocyte image analysis, classical and deep, benchmarked side by side."""

__version__ = "0.1.0"

