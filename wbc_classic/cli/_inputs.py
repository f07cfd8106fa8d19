"""What several sub-commands share: the model file and input list, and the pixel scale."""

from __future__ import annotations

import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from wbc_classic.io.options import EXIT_USAGE
from wbc_classic.io.predictions import expand_inputs

__all__ = ["UM_PER_PIXEL_RANGE", "is_deep_checkpoint", "load_model_and_inputs",
           "resolve_scale"]


#: the range of --um-per-pixel (a PBC pixel is 0.1 um; 0.01-10 covers every microscope)
UM_PER_PIXEL_RANGE = (0.01, 10.0)


def resolve_scale(value: str | None, paths: Sequence[Path]) -> float | None:
    """The ``--um-per-pixel`` value: None, the number given, or the batch estimate for
    ``"auto"`` (ValueError when it is neither or nothing can be measured)."""
    if value is None:
        return None
    if value == "auto":
        from wbc_classic.io.images import ImageReadError, read_image
        from wbc_classic.preprocess.scale import estimate_batch_scale

        def read(p):
            try:
                return read_image(p)
            except ImageReadError:  # a bad file is reported by the prediction itself
                return np.full((16, 16, 3), 255, np.uint8)

        um = estimate_batch_scale(paths, read=read)
        if not np.isfinite(um):
            raise ValueError("--um-per-pixel auto: no red cells measurable in the first 50 "
                             "images; give the scale as a number")
        return um
    from wbc_classic.io.options import check_range

    try:
        um = float(value)
    except ValueError:
        raise ValueError(f"--um-per-pixel takes a number or 'auto', got {value!r}") from None
    return float(check_range("--um-per-pixel", um, *UM_PER_PIXEL_RANGE))


def is_deep_checkpoint(path: str | Path) -> bool:
    """True for an existing file that is a PyTorch checkpoint (``.pt``/``.pth``, or the zip
    archive ``torch.save`` writes, whose pickle is ``<name>/data.pkl``): a deep network, which
    the classical commands cannot use. Read without torch (nothing is unpickled)."""
    p = Path(path)
    if not p.is_file():
        return False
    if p.suffix.lower() in (".pt", ".pth"):
        return True
    try:
        with zipfile.ZipFile(p) as z:
            return any(n == "data.pkl" or n.endswith("/data.pkl") for n in z.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def load_model_and_inputs(model_path: str, inputs: Sequence[str], what: str = "image files",
                          deep_command: str | None = None, *, n_jobs: int = 1):
    """Load the model and expand the inputs for a CLI command.

    The model file is first checked cheaply (it exists and is a zip archive) and the inputs
    expanded; with ``n_jobs`` other than 1 the feature workers are then started in the
    background (:func:`wbc_classic.classical.workers.start_workers`), so that their
    start-up overlaps the model's loading; a typo in a path fails before either.

    Returns ``(model, paths, None)`` on success or ``(None, None, exit_code)`` after printing
    the problem: 2 when the model file cannot be loaded (a deep checkpoint gets one line
    pointing to ``deep_command``, the deep family's command for the same job) or no input
    file was found.
    """
    from wbc_classic.classical.modelfile import ModelFileError, check_model_file

    if is_deep_checkpoint(model_path):
        hint = f"; for a network use: {deep_command}" if deep_command else ""
        print(f"error: {model_path} is a deep-network checkpoint (PyTorch); this command "
              f"takes a classical model (.skops){hint}", file=sys.stderr)
        return None, None, EXIT_USAGE
    try:
        check_model_file(model_path)
    except ModelFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None, None, EXIT_USAGE
    paths = expand_inputs(inputs)
    if not paths:
        print(f"error: no {what} found in {' '.join(str(i) for i in inputs)} (empty folder?)",
              file=sys.stderr)
        return None, None, EXIT_USAGE
    if n_jobs != 1:
        from wbc_classic.classical.workers import start_workers

        start_workers(n_jobs)
    from wbc_classic.classical.modelfile import load

    try:
        model = load(model_path)
    except (ModelFileError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None, None, EXIT_USAGE
    return model, paths, None
