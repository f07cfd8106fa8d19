"""Classical leukocyte segmentation: colour spaces, Otsu, morphology, marker-controlled watershed.

Pure functions over NumPy arrays; nothing here reads files.
"""

from segmentation.result import FieldCell, Segmentation

__all__ = ["FieldCell", "Segmentation"]
