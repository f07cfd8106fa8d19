"""Robust image reading: every file becomes a C-contiguous ``(H, W, 3)`` ``uint8`` RGB array.

One error type, :class:`ImageReadError` (a :class:`ValueError`), covers every way a file can
fail to be an image: missing, a directory, zero bytes, not an image, truncated or corrupt, or
absurdly large (a decompression bomb).  Its message names the file and the problem; its
``path`` and ``reason`` attributes carry the same information for programs.

Conversions (all done by :func:`read_image`)
--------------------------------------------
* grey (``L``, ``1``) -> RGB by repeating the channel;
* palette (``P``/``PA``) -> RGB(A) through the palette, then as below;
* alpha (``RGBA``, ``LA``, ``PA``, palette transparency) -> **composited on white**.  Blood
  smears have a bright background, and the colour under fully transparent pixels is arbitrary
  (often black), so dropping alpha would invent dark structures; compositing on white does not;
* 16-bit grey (``I;16*``) -> 8-bit by keeping the high byte (``v >> 8``), i.e. scaling by the
  container bit depth, so a pixel value maps to the same 8-bit value in every image.  Pillow
  already reduces 16-bit-per-channel RGB PNG/TIFF to 8-bit the same way;
* 32-bit integer grey (``I``) -> values up to 255 kept, up to 65535 ``>> 8``, larger shifted by
  the bit length of the maximum;
* floating point, grey (``F``) or RGB (float32/float64 TIFFs, which Pillow cannot open and
  ``tifffile`` reads): NaN and infinities become 0, negative values 0; then data within
  ``[0, 1]`` is scaled by 255 (the usual convention of float images), data within
  ``[0, 255]`` is kept, and anything larger is scaled so that its maximum becomes 255.  One
  rule for the whole image (never per channel), so colours keep their ratios;
* CMYK, YCbCr, LAB, HSV -> RGB with Pillow's conversions;
* EXIF orientation **is applied** (the array is what a viewer shows); microscope images rarely
  carry the tag, phone photographs of smears often do;
* multi-frame files (TIFF stacks, animated GIF/PNG) -> the first frame.

The pixel count is checked from the header, before any pixel is decoded
(:func:`check_pixel_limit` does the same for an image about to be resized).
"""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image, ImageOps

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_EXTENSIONS",
    "ImageReadError",
    "ReadBatch",
    "ReadFailure",
    "array_sha256",
    "check_pixel_limit",
    "image_sha256",
    "image_size",
    "is_image_file",
    "read_grey",
    "read_image",
    "read_images",
    "read_sample",
]

logger = logging.getLogger(__name__)

#: Default refusal limit for :func:`read_image`: 100 megapixels (a 10,000 x 10,000 image).
DEFAULT_MAX_PIXELS: int = 100_000_000

#: File-name extensions (lower case, with dot) treated as images by the dataset loaders.
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".dib", ".tif", ".tiff", ".gif", ".webp",
     ".ppm", ".pgm", ".pbm", ".pnm"}
)

PathLike = str | os.PathLike[str]
_EXIF_ORIENTATION = 0x0112


class ImageReadError(ValueError):
    """A file could not be read as an image.

    Parameters
    ----------
    path : str or Path
        The offending file.
    reason : str
        What went wrong, in words (``"file not found"``, ``"truncated or corrupt image data:
        ..."``, ...).

    Attributes
    ----------
    path : Path
    reason : str
    """

    def __init__(self, path: PathLike, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"cannot read image {str(self.path)!r}: {reason}")

    def __reduce__(self):  # keep pickling (joblib workers) working with two arguments
        return (type(self), (self.path, self.reason))


def is_image_file(path: PathLike) -> bool:
    """True when ``path``'s extension is one of :data:`IMAGE_EXTENSIONS` (case-insensitive).

    Hidden files and AppleDouble companions (names starting with ``"."``, e.g. ``._a.jpg``)
    are never image files.
    """
    p = Path(path)
    return (not p.name.startswith(".")) and p.suffix.lower() in IMAGE_EXTENSIONS


def _check_file(path: Path) -> None:
    """Raise :class:`ImageReadError` for a missing path, a directory or an empty file."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ImageReadError(path, "file not found") from None
    except PermissionError:
        raise ImageReadError(path, "permission denied") from None
    except OSError as exc:
        raise ImageReadError(path, f"cannot access file: {exc.strerror or exc}") from None
    if path.is_dir():
        raise ImageReadError(path, "is a directory, not an image file")
    if st.st_size == 0:
        raise ImageReadError(path, "empty file (0 bytes)")


def _open_loaded(path: PathLike, max_pixels: int | None) -> Image.Image:
    """Open ``path`` with Pillow, check the header size, decode the first frame.

    Returns a fully loaded Pillow image with EXIF orientation applied; every failure is
    turned into :class:`ImageReadError`.
    """
    p = Path(path)
    _check_file(p)
    if max_pixels is not None and max_pixels <= 0:
        raise ValueError(f"max_pixels must be positive or None, got {max_pixels}")
    with warnings.catch_warnings():
        # We enforce our own limit below; Pillow's own (~89 MP warning, ~179 MP error) would
        # otherwise warn about images the caller explicitly allowed.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            im: Image.Image = Image.open(p)
        except Image.DecompressionBombError as exc:
            raise ImageReadError(p, f"refused as a possible decompression bomb ({exc})") from None
        except PermissionError:
            raise ImageReadError(p, "permission denied") from None
        except Image.UnidentifiedImageError:
            raise ImageReadError(p, "not a recognised image format") from None
        except Exception as exc:  # Pillow plugins raise many types on corrupt headers
            raise ImageReadError(p, f"corrupt image header: {type(exc).__name__}: {exc}") from None
        try:
            width, height = im.size
            if width <= 0 or height <= 0:
                raise ImageReadError(p, f"invalid image size {width}x{height} in header")
            n_pixels = int(width) * int(height)
            if max_pixels is not None and n_pixels > max_pixels:
                raise ImageReadError(
                    p,
                    f"image is {width}x{height} = {n_pixels:,} pixels, more than max_pixels="
                    f"{max_pixels:,}; refused as a possible decompression bomb (raise max_pixels "
                    f"to read it anyway)",
                )
            try:
                im.seek(0)
                im.load()
            except Image.DecompressionBombError as exc:
                raise ImageReadError(p, f"refused as a possible decompression bomb ({exc})") \
                    from None
            except MemoryError:
                raise ImageReadError(p, f"out of memory decoding a {width}x{height} image") \
                    from None
            except Exception as exc:
                raise ImageReadError(
                    p, f"truncated or corrupt image data: {type(exc).__name__}: {exc}"
                ) from None
            try:
                orientation = int(im.getexif().get(_EXIF_ORIENTATION, 1) or 1)
                oriented = ImageOps.exif_transpose(im) if orientation in range(2, 9) else im
            except Exception:  # a broken EXIF block must not make a readable image unreadable
                oriented = im
            if oriented is not None and oriented is not im:
                oriented.load()
                im.close()
                im = oriented
            return im
        except BaseException:
            im.close()
            raise


def _float_to_uint8(a: np.ndarray) -> np.ndarray:
    """Floating-point pixels (any shape) -> uint8 by the module docstring's one rule."""
    a = np.nan_to_num(np.asarray(a, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    a = np.clip(a, 0.0, None)
    vmax = float(a.max()) if a.size else 0.0
    if vmax <= 1.0:
        a = a * 255.0
    elif vmax > 255.0:
        a = a * (255.0 / vmax)
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


def _int_to_uint8(a: np.ndarray) -> np.ndarray:
    """Integer pixels -> uint8: up to 255 kept, up to 65535 ``>> 8``, larger by bit length."""
    a = np.clip(np.asarray(a).astype(np.int64), 0, None)
    vmax = int(a.max()) if a.size else 0
    if vmax <= 255:
        return a.astype(np.uint8)
    if vmax <= 65535:
        return (a >> 8).astype(np.uint8)
    return (a >> (vmax.bit_length() - 8)).astype(np.uint8)


def _looks_like_tiff(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError:
        return False
    return head[:2] in (b"II", b"MM") and head[2:4] in (b"*\x00", b"\x00*", b"+\x00", b"\x00+")


def _read_tiff(path: Path, max_pixels: int | None) -> np.ndarray:
    """A TIFF that Pillow cannot decode (float RGB, planar, ...) through ``tifffile``.

    ``tifffile`` ships with scikit-image, a dependency; without it the original Pillow error
    stands.  The first page only; its size is checked before its pixels are decoded.
    """
    try:
        import tifffile
    except ImportError:
        raise ImageReadError(path, "not a recognised image format (a TIFF that Pillow "
                                   "cannot decode; pip install tifffile)") from None
    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            shape = tuple(int(v) for v in page.shape)
            planar = len(shape) == 3 and shape[0] in (3, 4) and shape[2] not in (3, 4)
            h, w = (shape[1], shape[2]) if planar else (shape[0], shape[1])
            if max_pixels is not None and h * w > max_pixels:
                raise ImageReadError(
                    path, f"image is {w}x{h} = {h * w:,} pixels, more than max_pixels="
                          f"{max_pixels:,}; refused as a possible decompression bomb")
            a = page.asarray()
    except ImageReadError:
        raise
    except MemoryError:
        raise ImageReadError(path, "out of memory decoding the TIFF") from None
    except Exception as exc:
        raise ImageReadError(path, f"truncated or corrupt TIFF: {type(exc).__name__}: {exc}") \
            from None
    if a.ndim == 3 and a.shape[0] in (3, 4) and a.shape[2] not in (3, 4):
        a = np.moveaxis(a, 0, -1)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] not in (1, 2, 3, 4):
        raise ImageReadError(path, f"unsupported TIFF layout: array of shape {a.shape}")
    if np.issubdtype(a.dtype, np.floating):
        alpha = a[..., -1] if a.shape[2] in (2, 4) else None
        colour = _float_to_uint8(a[..., :3] if a.shape[2] >= 3 else a[..., :1])
        if alpha is not None:
            alpha = _float_to_uint8(alpha)
    elif np.issubdtype(a.dtype, np.integer) or a.dtype == bool:
        alpha = a[..., -1] if a.shape[2] in (2, 4) else None
        colour = _int_to_uint8(a[..., :3] if a.shape[2] >= 3 else a[..., :1])
        if alpha is not None:
            alpha = _int_to_uint8(alpha)
    else:
        raise ImageReadError(path, f"unsupported TIFF sample type {a.dtype}")
    if colour.shape[2] == 1:
        colour = np.repeat(colour, 3, axis=2)
    if alpha is not None:
        f = alpha[..., None].astype(np.float32) / 255.0
        colour = np.clip(np.rint(colour * f + 255.0 * (1.0 - f)), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(colour)


def check_pixel_limit(shape: tuple[int, ...], factor: float = 1.0, *,
                      max_pixels: int | None = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """The ``(height, width)`` of an image of ``shape`` resized by ``factor``, or ValueError
    when that exceeds ``max_pixels``: the decompression-bomb limit of :func:`read_image`,
    applied to an image about to be enlarged (``wbc-classic count --rescale``).

    Parameters
    ----------
    shape : tuple of int
        ``(H, W, ...)`` of the image before resizing.
    factor : float
        Resize factor (> 0, finite).
    max_pixels : int or None
        ``None`` disables the check.

    Returns
    -------
    (int, int)
        The rounded output size.
    """
    factor = float(factor)
    if not np.isfinite(factor) or factor <= 0:
        raise ValueError(f"resize factor must be a positive number, got {factor!r}")
    h, w = max(1, int(round(shape[0] * factor))), max(1, int(round(shape[1] * factor)))
    if max_pixels is not None and h * w > max_pixels:
        raise ValueError(f"resizing a {shape[1]}x{shape[0]} image by {factor:g} would give "
                         f"{w}x{h} = {h * w:,} pixels, more than the limit of {max_pixels:,} "
                         f"(the decompression-bomb guard); use a smaller factor")
    return h, w


def _composite_on_white(im: Image.Image) -> np.ndarray:
    """RGBA Pillow image -> ``(H, W, 3)`` uint8 composited on a white background."""
    rgba = np.asarray(im.convert("RGBA"), dtype=np.float32)
    alpha = rgba[..., 3:4] / 255.0
    out = rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _pil_to_rgb(im: Image.Image, path: Path) -> np.ndarray:
    """Convert a loaded Pillow image of any mode into ``(H, W, 3)`` uint8 RGB."""
    mode = im.mode
    try:
        if mode == "RGB":
            arr = np.asarray(im)
        elif mode in ("RGBA", "LA", "PA", "RGBa", "La"):
            arr = _composite_on_white(im)
        elif mode == "P":
            if "transparency" in im.info:
                arr = _composite_on_white(im.convert("RGBA"))
            else:
                arr = np.asarray(im.convert("RGB"))
        elif mode in ("L", "1"):
            g = np.asarray(im.convert("L"))
            arr = np.repeat(g[..., None], 3, axis=2)
        elif mode.startswith("I;16"):
            g = np.asarray(im).astype(np.uint16) >> 8
            arr = np.repeat(g.astype(np.uint8)[..., None], 3, axis=2)
        elif mode == "I":
            arr = np.repeat(_int_to_uint8(np.asarray(im))[..., None], 3, axis=2)
        elif mode == "F":
            arr = np.repeat(_float_to_uint8(np.asarray(im))[..., None], 3, axis=2)
        else:  # CMYK, YCbCr, LAB, HSV, RGBX, ...
            arr = np.asarray(im.convert("RGB"))
    except ImageReadError:
        raise
    except Exception as exc:
        raise ImageReadError(path, f"cannot convert image mode {mode!r} to RGB: {exc}") from None
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise ImageReadError(
            path, f"unexpected decoded array {arr.shape} {arr.dtype} from mode {mode!r}"
        )
    return np.ascontiguousarray(arr)


def read_image(path: PathLike, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image file (JPEG, PNG, BMP, TIFF, ...) as RGB.

    Parameters
    ----------
    path : str or Path
        The file to read.
    max_pixels : int or None, optional
        Refuse images whose header claims more than this many pixels (width x height),
        before decoding them: protection against decompression bombs.  Default 100 MP.
        ``None`` disables the check (Pillow's own hard limit of ~179 MP still applies).

    Returns
    -------
    image : ndarray of uint8, shape (H, W, 3)
        C-contiguous RGB pixels.  See the module docstring for how grey, palette, alpha,
        16-bit, CMYK and EXIF orientation are handled.

    Raises
    ------
    ImageReadError
        The file is missing, a directory, empty, not an image, truncated/corrupt, or too large.
        The message names the file and the problem.
    """
    p = Path(path)
    try:
        im = _open_loaded(p, max_pixels)
    except ImageReadError as exc:
        # Pillow has no float RGB (or planar) TIFF decoder
        if exc.reason.startswith(("not a recognised", "corrupt image header")) \
                and _looks_like_tiff(p):
            return _read_tiff(p, max_pixels)
        raise
    try:
        return _pil_to_rgb(im, p)
    finally:
        im.close()


def read_grey(path: PathLike, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image file as one 8-bit channel, e.g. a label mask.

    Grey files are returned as stored (16-bit data whose maximum is <= 255 is kept as is,
    otherwise shifted to 8 bits); colour files are averaged over their RGB channels (which
    keeps grey-valued masks saved as RGB exact); alpha is ignored.

    Returns
    -------
    grey : ndarray of uint8, shape (H, W)

    Raises
    ------
    ImageReadError
        As :func:`read_image`.
    """
    p = Path(path)
    im = _open_loaded(p, max_pixels)
    try:
        mode = im.mode
        if mode in ("L", "1"):
            g = np.asarray(im.convert("L"))
        elif mode.startswith("I;16") or mode == "I":
            a = np.clip(np.asarray(im).astype(np.int64), 0, None)
            vmax = int(a.max()) if a.size else 0
            g = (a >> max(vmax.bit_length() - 8, 0)).astype(np.uint8)
        elif mode == "F":
            g = _float_to_uint8(np.asarray(im))
        else:
            rgb = np.asarray(im.convert("RGB"), dtype=np.uint16)
            g = ((rgb.sum(axis=2) + 1) // 3).astype(np.uint8)
    except Exception as exc:
        raise ImageReadError(p, f"cannot convert image mode {im.mode!r} to grey: {exc}") \
            from None
    finally:
        im.close()
    return np.ascontiguousarray(g, dtype=np.uint8)


def image_size(path: PathLike) -> tuple[int, int]:
    """``(height, width)`` of an image from its header, without decoding pixels.

    Raises
    ------
    ImageReadError
        When the file is missing or its header cannot be parsed.
    """
    p = Path(path)
    _check_file(p)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(p) as im:
                w, h = im.size
        except Image.DecompressionBombError:
            raise ImageReadError(p, "image header claims a decompression-bomb size") from None
        except Image.UnidentifiedImageError:
            raise ImageReadError(p, "not a recognised image format") from None
        except Exception as exc:
            raise ImageReadError(p, f"corrupt image header: {type(exc).__name__}: {exc}") \
                from None
    return int(h), int(w)


def array_sha256(image: np.ndarray) -> str:
    """SHA-256 hex digest of an in-memory image (shape, dtype and bytes): its cache key."""
    a = np.ascontiguousarray(image)
    h = hashlib.sha256(f"{a.shape}|{a.dtype}|".encode())
    h.update(a.tobytes())
    return h.hexdigest()


def image_sha256(path: PathLike, *, chunk_size: int = 1 << 20) -> str:
    """SHA-256 hex digest of a file's bytes: a content key for on-disk caches.

    Two byte-identical files share the key wherever they live; renaming a file keeps it.

    Raises
    ------
    ImageReadError
        When the file is missing, a directory or unreadable.
    """
    p = Path(path)
    h = hashlib.sha256()
    try:
        with open(p, "rb") as fh:
            while True:
                chunk = fh.read(chunk_size)
                if not chunk:
                    break
                h.update(chunk)
    except FileNotFoundError:
        raise ImageReadError(p, "file not found") from None
    except IsADirectoryError:
        raise ImageReadError(p, "is a directory, not an image file") from None
    except PermissionError:
        raise ImageReadError(p, "permission denied") from None
    except OSError as exc:
        if p.is_dir():
            raise ImageReadError(p, "is a directory, not an image file") from None
        raise ImageReadError(p, f"cannot read file: {exc}") from None
    return h.hexdigest()


@dataclass(frozen=True)
class ReadFailure:
    """One file that :func:`read_images` could not read.

    Attributes
    ----------
    index : int
        Position of the file in the input sequence.
    path : Path
    reason : str
        The :attr:`ImageReadError.reason`.
    """

    index: int
    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass
class ReadBatch:
    """Result of :func:`read_images`: the images that were read and the files that were not.

    Attributes
    ----------
    images : list of ndarray of uint8, each (H, W, 3)
        The successfully read images, in input order.
    paths : list of Path
        Their paths (same length as ``images``).
    indices : ndarray of int64, shape (n_ok,)
        Their positions in the input sequence (use it to subset labels).
    failures : list of ReadFailure
        Every file that failed, in input order.
    """

    images: list[np.ndarray]
    paths: list[Path]
    indices: np.ndarray
    failures: list[ReadFailure] = field(default_factory=list)

    @property
    def n_ok(self) -> int:
        """Number of images read."""
        return len(self.images)

    @property
    def n_failed(self) -> int:
        """Number of files that failed."""
        return len(self.failures)

    def __len__(self) -> int:
        return len(self.images)

    def __iter__(self):
        """Unpack as ``images, failures = read_images(...)``."""
        return iter((self.images, self.failures))

    def summary(self, max_listed: int = 10) -> str:
        """One line of counts, then up to ``max_listed`` failures, one per line."""
        lines = [f"read {self.n_ok} image(s), {self.n_failed} failed"]
        lines += [f"  {f}" for f in self.failures[:max_listed]]
        if self.n_failed > max_listed:
            lines.append(f"  ... and {self.n_failed - max_listed} more")
        return "\n".join(lines)


def read_images(
    paths: Iterable[PathLike],
    *,
    on_error: Literal["skip", "raise"] = "skip",
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> ReadBatch:
    """Read many images, going on past bad files and reporting them.

    Parameters
    ----------
    paths : iterable of str or Path
    on_error : {"skip", "raise"}, optional
        ``"skip"`` (default): a bad file is recorded in ``failures`` (and logged as a warning)
        and reading continues; ``"raise"``: the first :class:`ImageReadError` propagates.
    max_pixels : int or None, optional
        Passed to :func:`read_image`.

    Returns
    -------
    ReadBatch
        ``images`` (list of (H, W, 3) uint8), ``paths``, ``indices`` (int64 positions in the
        input) and ``failures`` (list of :class:`ReadFailure`).  Nothing is dropped silently:
        ``n_ok + n_failed`` equals the number of inputs.
    """
    if on_error not in ("skip", "raise"):
        raise ValueError(f"on_error must be 'skip' or 'raise', got {on_error!r}")
    images: list[np.ndarray] = []
    ok_paths: list[Path] = []
    indices: list[int] = []
    failures: list[ReadFailure] = []
    for i, path in enumerate(paths):
        p = Path(path)
        try:
            img = read_image(p, max_pixels=max_pixels)
        except ImageReadError as exc:
            if on_error == "raise":
                raise
            failures.append(ReadFailure(i, p, exc.reason))
            logger.warning("skipping unreadable image %s: %s", p, exc.reason)
            continue
        images.append(img)
        ok_paths.append(p)
        indices.append(i)
    if failures:
        logger.warning("read_images: %d of %d file(s) could not be read",
                       len(failures), len(failures) + len(images))
    return ReadBatch(images, ok_paths, np.asarray(indices, dtype=np.int64), failures)


def read_sample(items: Sequence[Any], n: int, *, seed: int = 0,
                read: Callable[[Any], np.ndarray] | None = None,
                failures: list[ReadFailure] | None = None) -> list[np.ndarray]:
    """Read a seeded pick of at most ``n`` of ``items`` (paths or arrays), in input order,
    skipping the ones that cannot be read.

    How a model learns a reference from its training images (stain colours, pixel scale)
    without reading them all.  An unreadable pick is logged, recorded in ``failures`` and
    replaced by the next item of a seeded order of the others, so a bad file changes the
    sample by one image instead of stopping the run; without bad files the pick is
    ``sorted(numpy.random.default_rng(seed).choice(len(items), min(n, len(items)),
    replace=False))``.

    Parameters
    ----------
    items : sequence of path or (H, W, 3) uint8 array
    n : int
        At most this many images are returned.
    seed : int
    read : callable, optional
        ``item -> (H, W, 3) uint8``; default :func:`read_image` for paths and the array itself
        otherwise.  :class:`ImageReadError`, other ``ValueError`` and ``OSError`` mean
        "unreadable".
    failures : list, optional
        :class:`ReadFailure` entries of the skipped items are appended to it.

    Returns
    -------
    list of ndarray
        Fewer than ``min(n, len(items))`` only when too few items can be read (empty when
        none can).
    """
    items = list(items)
    if read is None:
        def read(item: Any) -> np.ndarray:
            return np.asarray(item) if isinstance(item, np.ndarray) else read_image(item)
    rng = np.random.default_rng(seed)
    k = min(max(int(n), 0), len(items))
    pick = np.sort(rng.choice(len(items), k, replace=False))
    rest = np.setdiff1d(np.arange(len(items)), pick)
    # replacements in a seeded order, drawn only when a pick fails (same rng, after the pick)
    spare = iter(rest[rng.permutation(len(rest))]) if len(rest) else iter(())
    got: dict[int, np.ndarray] = {}
    queue = [int(i) for i in pick]
    while queue:
        i = queue.pop(0)
        try:
            got[i] = read(items[i])
        except (ValueError, OSError) as exc:
            reason = getattr(exc, "reason", None) or f"{type(exc).__name__}: {exc}"
            path = getattr(exc, "path", None) or (items[i] if isinstance(items[i], (str, Path))
                                                  else Path(f"<item {i}>"))
            logger.warning("skipping unreadable image %s in the reference sample: %s",
                           path, reason)
            if failures is not None:
                failures.append(ReadFailure(i, Path(path), reason))
            nxt = next(spare, None)
            if nxt is not None:
                queue.append(int(nxt))
    return [got[i] for i in sorted(got)]
