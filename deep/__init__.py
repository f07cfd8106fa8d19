"""Deep-learning branch of wbc-classic (torch only here; see ``deep/README.md``).

Submodules: :mod:`deep.models` (the zoo, ``get_model``/``list_models``), :mod:`deep.cache`
(decode + resize once), :mod:`deep.data`, :mod:`deep.train` (``python -m deep.train``),
:mod:`deep.predict` (``python -m deep.predict``), :mod:`deep.export` (ONNX),
:mod:`deep.checkpoint`, :mod:`deep.pretrained`.
"""

from wbc_classic import __version__

__all__ = ["__version__"]
