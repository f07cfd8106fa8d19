"""Decode + resize each image once, keep the result as a uint8 memory-mapped array.

The cache is one ``.npy`` file per (image list, size, resize settings) in a cache directory.
Its name is a SHA-256 over the *content* hashes of the image files (not their paths or mtimes),
the size and the settings, so a renamed file hits the cache and a changed file misses it.
The array is written through :func:`wbc_classic.io.atomic.atomic_path`, so a killed run never
leaves a half-written cache behind; a re-run with the same files is a memory-map open, and the
temporary file a killed build could not remove is deleted by the next build
(:func:`wbc_classic.io.atomic.clean_stale_temporaries`).  The folder follows the project's one
cache rule (:mod:`wbc_classic.io.cachedir`): ``<cache root>/deep``.

Only numpy, OpenCV and the project's image reader are used here (no torch).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from wbc_classic.io.images import image_sha256

__all__ = ["CachedImages", "build_cache", "deep_cache_dir", "default_cache_dir", "prepare_image",
           "resize_square"]

CACHE_VERSION = 1
#: crop conventions understood by :func:`prepare_image`
CROPS = ("center", "none", "cell")


def default_cache_dir() -> Path:
    """``<cache root>/deep``: ``$WBC_CACHE_DIR/deep`` if set, else
    ``~/.cache/wbc_classic/deep`` (:func:`wbc_classic.io.cachedir.default_cache_root`)."""
    from wbc_classic.io.cachedir import default_cache_root

    return default_cache_root() / "deep"


def deep_cache_dir(cache_root: str | os.PathLike[str] | None = None) -> Path:
    """The decoded-image folder of a command's ``--cache-dir`` (the cache root): its ``deep/``
    sub-folder, by :func:`wbc_classic.io.cachedir.resolve_cache_dir` (an unusable root falls
    back to a temporary cache with a warning)."""
    from wbc_classic.io.cachedir import resolve_cache_dir

    return resolve_cache_dir(cache_root) / "deep"


def resize_square(image: np.ndarray, size: int, *, crop: str = "center") -> np.ndarray:
    """Centre-crop an RGB image to a square and resize it to ``size`` x ``size``.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8
        RGB image.
    size : int
        Output side in pixels (>= 8).
    crop : {"center", "none"}
        ``"center"`` crops the longer side to the shorter before resizing (keeps the aspect
        ratio, the cell is centred in PBC/CellaVision crops); ``"none"`` stretches.

    Returns
    -------
    ndarray, shape (size, size, 3), uint8
        Area interpolation when shrinking, bicubic when enlarging.
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB image of shape (H, W, 3), got shape {image.shape}")
    if size < 8:
        raise ValueError(f"size must be >= 8 pixels, got {size}")
    h, w = image.shape[:2]
    if crop == "center" and h != w:
        s = min(h, w)
        top, left = (h - s) // 2, (w - s) // 2
        image = image[top:top + s, left:left + s]
    elif crop not in ("center", "none"):
        raise ValueError(f"crop must be 'center' or 'none', got {crop!r}")
    h, w = image.shape[:2]
    interp = cv2.INTER_AREA if min(h, w) >= size else cv2.INTER_CUBIC
    out = cv2.resize(np.ascontiguousarray(image), (size, size), interpolation=interp)
    return out.astype(np.uint8, copy=False)


def _check_crop(crop: str) -> None:
    if crop not in CROPS:
        raise ValueError(f"crop must be one of {', '.join(CROPS)}, got {crop!r}")


def prepare_image(image: np.ndarray, size: int, *, crop: str = "center",
                  crop_options: dict | None = None, stain: Any = None) -> np.ndarray:
    """The model's view of one decoded image: stain normalisation, crop convention, resize.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8
    size : int
        Output side in pixels.
    crop : {"center", "none", "cell"}
        ``"center"``/``"none"``: see :func:`resize_square`. ``"cell"``: a square of a fixed
        physical size centred on the segmented leukocyte, everything outside it blanked to the
        background colour (:func:`wbc_classic.preprocess.cellcrop.cell_crop`), so a model cannot
        learn a
        laboratory's crop convention, scale or red-cell colour.
    crop_options : dict, optional
        Keyword arguments of :class:`wbc_classic.preprocess.cellcrop.CellCropper` (``crop="cell"``
        only).
    stain : wbc_classic.preprocess.stain.StainNormalizer, optional
        A fitted normaliser applied to the pixels first (the cell crop still segments the
        raw image).

    Returns
    -------
    ndarray, shape (size, size, 3), uint8
    """
    _check_crop(crop)
    pixels = image if stain is None else stain.transform(image)
    if crop == "cell":
        # segmentation.* stays behind wbc_classic's front door (deep imports none of it)
        from wbc_classic.preprocess.cellcrop import CellCropper

        return resize_square(CellCropper(**(crop_options or {}))(image, pixels=pixels), size)
    return resize_square(pixels, size, crop=crop)


def _default_reader() -> Callable[[Path], np.ndarray]:
    from wbc_classic.io.images import read_image

    return read_image


@dataclass(frozen=True)
class CachedImages:
    """A decoded, resized image set backed by a memory-mapped ``.npy`` file.

    Attributes
    ----------
    images : ndarray, shape (N, size, size, 3), uint8
        Read-only memory map (rows of failed images are zeros).
    ok : ndarray, shape (N,), bool
        False where the image could not be read.
    errors : dict[int, str]
        Index -> error message for the failed images.
    path : Path
        The ``.npy`` file.
    size : int
    """

    images: np.ndarray
    ok: np.ndarray
    errors: dict[int, str]
    path: Path
    size: int

    def __len__(self) -> int:
        return len(self.images)


def _digest(path: Path) -> str:
    """Content hash of an image file; for a file that cannot even be opened (missing, a
    looping symlink) a stand-in naming it, so that its row fails in the build, not the key."""
    from wbc_classic.io.images import ImageReadError

    try:
        return image_sha256(path)
    except ImageReadError as exc:
        return f"unreadable:{path}:{exc.reason}"


def _key(digests: Sequence[str], size: int, crop: str, crop_options: dict | None = None,
         stain: Any = None) -> str:
    h = hashlib.sha256()
    h.update(f"v{CACHE_VERSION}|size={size}|crop={crop}|n={len(digests)}|".encode())
    if stain is not None:
        h.update(json.dumps(stain.to_dict(), sort_keys=True).encode())
    if crop == "cell":
        # the crop depends on the segmenter: its code is part of the key
        from wbc_classic.io.fingerprint import code_fingerprint
        from wbc_classic.preprocess.cellcrop import CELL_CROP_VERSION

        h.update(json.dumps({"options": crop_options or {}, "version": CELL_CROP_VERSION,
                             "segmenter": code_fingerprint("segmentation.pipeline")},
                            sort_keys=True).encode())
    for d in digests:
        h.update(d.encode())
    return h.hexdigest()[:32]


def build_cache(
    paths: Sequence[str | os.PathLike[str]],
    size: int = 64,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    crop: str = "center",
    crop_options: dict | None = None,
    stain: Any = None,
    on_error: str = "raise",
    reader: Callable[[Path], np.ndarray] | None = None,
    progress: bool = False,
) -> CachedImages:
    """Decode and resize every image once; return a memory-mapped uint8 array.

    Parameters
    ----------
    paths : sequence of path-like
        Image files, in the order the rows should have.
    size : int
        Output side in pixels.
    cache_dir : path-like, optional
        Where the ``.npy`` (and a ``.json`` sidecar with paths and errors) live;
        :func:`default_cache_dir` when None.
    crop : {"center", "none", "cell"}
        See :func:`prepare_image`.
    crop_options : dict, optional
        Options of the ``"cell"`` crop (part of the cache key).
    stain : wbc_classic.preprocess.stain.StainNormalizer, optional
        Fitted normaliser (see :func:`prepare_image`; its state is part of the cache key).
    on_error : {"raise", "skip"}
        ``"raise"`` stops at the first unreadable image with a message naming it;
        ``"skip"`` leaves its row zero, sets ``ok[i] = False`` and records the message.
    reader : callable, optional
        ``reader(path) -> (H, W, 3) uint8``; ``wbc_classic.io.images.read_image`` by default.
    progress : bool
        Show a tqdm bar while decoding.

    Returns
    -------
    CachedImages
    """
    from wbc_classic.io.atomic import atomic_path, atomic_write_text

    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    files = [Path(p) for p in paths]
    if not files:
        raise ValueError("build_cache: no image paths given")
    missing = [str(p) for p in files if not p.is_file()]
    if missing and on_error == "raise":
        raise FileNotFoundError(f"{len(missing)} image file(s) not found, e.g. {missing[0]}")
    from wbc_classic.io.atomic import clean_stale_temporaries

    cache_dir = Path(cache_dir) if cache_dir is not None else deep_cache_dir()
    cache_dir.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(cache_dir)  # left by a killed build (kill -9 skips the cleanup)
    digests = [_digest(p) for p in files]
    _check_crop(crop)  # before decoding anything, and also on a cache hit
    key = _key(digests, size, crop, crop_options, stain)
    npy = cache_dir / f"images_{size}px_{key}.npy"
    meta = npy.with_suffix(".json")
    if npy.is_file() and meta.is_file():
        try:
            info = json.loads(meta.read_text())
            arr = np.load(npy, mmap_mode="r")
            if arr.shape == (len(files), size, size, 3) and arr.dtype == np.uint8:
                errors: dict[int, str] = {int(k): v for k, v in info.get("errors", {}).items()}
                ok = np.ones(len(files), bool)
                ok[list(errors)] = False
                if errors and on_error == "raise":
                    i = min(errors)
                    raise ValueError(f"cannot read image {files[i]}: {errors[i]}")
                return CachedImages(arr, ok, errors, npy, size)
        except (ValueError, OSError, json.JSONDecodeError) as exc:
            if "cannot read image" in str(exc):
                raise
            # a damaged cache file: rebuild it below
    read = reader if reader is not None else _default_reader()
    errors = {}
    from wbc_classic.io.progress import progress as _progress

    iterator = _progress(range(len(files)), desc=f"decode+resize {size}px", unit="img",
                         disable=not progress)
    with atomic_path(npy) as tmp:
        arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8,
                                        shape=(len(files), size, size, 3))
        for i in iterator:
            try:
                img = read(files[i])
                arr[i] = prepare_image(np.asarray(img), size, crop=crop,
                                       crop_options=crop_options, stain=stain)
            except (OSError, ValueError) as exc:
                if on_error == "raise":
                    raise ValueError(f"cannot read image {files[i]}: {exc}") from exc
                errors[i] = f"{type(exc).__name__}: {exc}"
        arr.flush()
        del arr
    atomic_write_text(meta, json.dumps({
        "version": CACHE_VERSION, "size": size, "crop": crop,
        "crop_options": crop_options or {},
        "paths": [str(p) for p in files], "digests": digests,
        "errors": {str(k): v for k, v in errors.items()},
    }))
    ok = np.ones(len(files), bool)
    ok[list(errors)] = False
    return CachedImages(np.load(npy, mmap_mode="r"), ok, errors, npy, size)
