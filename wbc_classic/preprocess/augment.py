"""Seeded numpy image augmentations for both model families (no torch).

Each augmentation exists as a plain function ``f(image, rng, **params) -> image`` and as a small
callable class holding its parameters (``HEDJitter(sigma=0.05)(image, rng)``), so they compose::

    aug = Compose([HEDJitter(), BrightnessContrast(), RandomApply(GaussianBlur(), p=0.3)])
    rng = np.random.default_rng(0)
    out = aug(image, rng)

Conventions: ``image`` is RGB ``uint8`` of shape (H, W, 3) (float images in [0, 1] are accepted
and returned as float64 in [0, 1]); every function returns an array of the same shape and dtype;
``rng`` is a :class:`numpy.random.Generator` (or an int seed), so a given seed always yields the
same output.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from skimage.color import hed_from_rgb, rgb_from_hed

from wbc_classic.preprocess.scale import rescale_image, rescale_mask

__all__ = [
    "hed_jitter",
    "brightness_contrast",
    "scale_jitter",
    "gaussian_blur",
    "flip_rotate",
    "HEDJitter",
    "BrightnessContrast",
    "ScaleJitter",
    "GaussianBlur",
    "FlipRotate",
    "RandomApply",
    "Compose",
    "default_augmentation",
    "AugmentedImage",
    "augmented_copies",
]

Augmentation = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def _rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


def _to_float01(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB image of shape (H, W, 3), got shape {image.shape}")
    if image.dtype == np.uint8:
        return image.astype(np.float64) / 255.0
    return np.clip(image.astype(np.float64), 0.0, 1.0)


def _back(out: np.ndarray, like: np.ndarray) -> np.ndarray:
    """float [0, 1] -> dtype of ``like``."""
    out = np.clip(out, 0.0, 1.0)
    if like.dtype == np.uint8:
        return np.rint(out * 255.0).astype(np.uint8)
    return out.astype(like.dtype, copy=False)


def hed_jitter(image: np.ndarray, rng: np.random.Generator | int | None = None, *,
               sigma: float = 0.05, bias: float = 0.02) -> np.ndarray:
    """Stain jitter in haematoxylin-eosin-DAB space (Tellez et al., 2018).

    Each HED channel ``c`` (Ruifrok-Johnston colour deconvolution, natural-log optical
    density) becomes ``c * a + b`` with ``a ~ U(1 - sigma, 1 + sigma)`` and
    ``b ~ U(-bias, bias)``, independently per channel.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8 (or float in [0, 1])
    rng : numpy.random.Generator or int, optional
    sigma : float
        Relative amplitude of the per-channel scale.
    bias : float
        Amplitude of the per-channel shift (HED units; stained pixels are ~0.05-0.3).

    Returns
    -------
    ndarray, same shape and dtype as ``image``
    """
    rng = _rng(rng)
    alpha = rng.uniform(1.0 - sigma, 1.0 + sigma, size=3)
    beta = rng.uniform(-bias, bias, size=3)
    # Ruifrok-Johnston HED colour deconvolution without skimage's clipping of negative
    # stain amounts, so that zero jitter is an exact identity even for colours (pink red
    # cells, blue cytoplasm) outside the H-E-DAB cone
    od = -np.log(np.maximum(_to_float01(image), 1e-6))
    hed = od @ hed_from_rgb
    out = np.exp(-((hed * alpha + beta) @ rgb_from_hed))
    return _back(out, np.asarray(image))


def brightness_contrast(image: np.ndarray, rng: np.random.Generator | int | None = None, *,
                        brightness: float = 0.1, contrast: float = 0.1) -> np.ndarray:
    """Random brightness (additive) and contrast (around the image mean) change.

    ``out = (x - mean) * c + mean + b`` with ``c ~ U(1 - contrast, 1 + contrast)``,
    ``b ~ U(-brightness, brightness)`` (on the [0, 1] scale).

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8 (or float in [0, 1])
    rng : numpy.random.Generator or int, optional
    brightness, contrast : float

    Returns
    -------
    ndarray, same shape and dtype as ``image``
    """
    rng = _rng(rng)
    c = rng.uniform(1.0 - contrast, 1.0 + contrast)
    b = rng.uniform(-brightness, brightness)
    x = _to_float01(image)
    mean = x.mean()
    return _back((x - mean) * c + mean + b, np.asarray(image))


def _fit_to_shape(image: np.ndarray, shape: tuple[int, int], fill: np.ndarray | float
                  ) -> np.ndarray:
    """Centre-crop or pad (with ``fill``) ``image`` to ``shape`` (H, W)."""
    h, w = shape
    ih, iw = image.shape[:2]
    out = np.empty((h, w) + image.shape[2:], dtype=image.dtype)
    out[...] = fill
    # source and destination windows, centred
    sy, dy = max(0, (ih - h) // 2), max(0, (h - ih) // 2)
    sx, dx = max(0, (iw - w) // 2), max(0, (w - iw) // 2)
    ch, cw = min(h, ih), min(w, iw)
    out[dy:dy + ch, dx:dx + cw] = image[sy:sy + ch, sx:sx + cw]
    return out


def scale_jitter(image: np.ndarray, rng: np.random.Generator | int | None = None, *,
                 scale_range: tuple[float, float] = (0.8, 1.25),
                 masks: Sequence[np.ndarray] | None = None, keep_shape: bool = True
                 ) -> np.ndarray | tuple[np.ndarray, list[np.ndarray]]:
    """Random zoom by a log-uniform factor in ``scale_range``.

    Enlarged images are centre-cropped; shrunk ones are padded with the background colour
    (the median of the border pixels), so the output keeps the input's shape by default.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8 (or float)
    rng : numpy.random.Generator or int, optional
    scale_range : (float, float)
        Minimum and maximum zoom factors (> 0).
    masks : sequence of ndarray of bool/int, shape (H, W), optional
        Masks transformed identically (nearest neighbour, padded with 0/False).
    keep_shape : bool
        Crop/pad back to (H, W); if False the resized image is returned.

    Returns
    -------
    ndarray, same dtype as ``image`` (same shape when ``keep_shape``), or
    ``(image, masks)`` when ``masks`` is given.
    """
    rng = _rng(rng)
    lo, hi = scale_range
    if not 0 < lo <= hi:
        raise ValueError(f"scale_range must satisfy 0 < lo <= hi, got {scale_range}")
    factor = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    image = np.asarray(image)
    out = rescale_image(image, factor)
    out_masks = [rescale_mask(np.asarray(m), factor) for m in (masks or [])]
    if keep_shape:
        border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]], axis=0)
        fill = np.median(border, axis=0).astype(image.dtype)
        out = _fit_to_shape(out, image.shape[:2], fill)
        out_masks = [_fit_to_shape(m, image.shape[:2], 0) for m in out_masks]
    if masks is not None:
        return out, out_masks
    return out


def gaussian_blur(image: np.ndarray, rng: np.random.Generator | int | None = None, *,
                  sigma_range: tuple[float, float] = (0.0, 1.5)) -> np.ndarray:
    """Gaussian blur with ``sigma ~ U(sigma_range)`` pixels (defocus).

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8 (or float)
    rng : numpy.random.Generator or int, optional
    sigma_range : (float, float)

    Returns
    -------
    ndarray, same shape and dtype as ``image``
    """
    rng = _rng(rng)
    sigma = float(rng.uniform(*sigma_range))
    image = np.asarray(image)
    if sigma < 0.1:
        return image.copy()
    work = image if image.dtype in (np.uint8, np.float32, np.float64) else image.astype(float)
    out = cv2.GaussianBlur(work, (0, 0), sigmaX=sigma, sigmaY=sigma,
                           borderType=cv2.BORDER_REFLECT)
    return out.astype(image.dtype, copy=False)


def flip_rotate(image: np.ndarray, rng: np.random.Generator | int | None = None, *,
                masks: Sequence[np.ndarray] | None = None
                ) -> np.ndarray | tuple[np.ndarray, list[np.ndarray]]:
    """One of the 8 flips / right-angle rotations (cells have no orientation).

    Returns
    -------
    ndarray (same dtype; H and W swapped for odd rotations of non-square images), or
    ``(image, masks)`` when ``masks`` is given.
    """
    rng = _rng(rng)
    k = int(rng.integers(4))
    flip = bool(rng.integers(2))

    def f(a: np.ndarray) -> np.ndarray:
        a = np.rot90(np.asarray(a), k, axes=(0, 1))
        return np.ascontiguousarray(a[:, ::-1] if flip else a)

    if masks is not None:
        return f(image), [f(m) for m in masks]
    return f(image)


# --------------------------------------------------------------------------------------------
# composable callables


class _Aug:
    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({params})"


class HEDJitter(_Aug):
    """Callable form of :func:`hed_jitter`."""

    def __init__(self, sigma: float = 0.05, bias: float = 0.02) -> None:
        self.sigma = sigma
        self.bias = bias

    def __call__(self, image: np.ndarray, rng: np.random.Generator | int | None = None
                 ) -> np.ndarray:
        return hed_jitter(image, rng, sigma=self.sigma, bias=self.bias)


class BrightnessContrast(_Aug):
    """Callable form of :func:`brightness_contrast`."""

    def __init__(self, brightness: float = 0.1, contrast: float = 0.1) -> None:
        self.brightness = brightness
        self.contrast = contrast

    def __call__(self, image: np.ndarray, rng: np.random.Generator | int | None = None
                 ) -> np.ndarray:
        return brightness_contrast(image, rng, brightness=self.brightness,
                                   contrast=self.contrast)


class ScaleJitter(_Aug):
    """Callable form of :func:`scale_jitter` (shape-preserving, image only)."""

    def __init__(self, scale_range: tuple[float, float] = (0.8, 1.25)) -> None:
        self.scale_range = scale_range

    def __call__(self, image: np.ndarray, rng: np.random.Generator | int | None = None
                 ) -> np.ndarray:
        return scale_jitter(image, rng, scale_range=self.scale_range)  # type: ignore[return-value]


class GaussianBlur(_Aug):
    """Callable form of :func:`gaussian_blur`."""

    def __init__(self, sigma_range: tuple[float, float] = (0.0, 1.5)) -> None:
        self.sigma_range = sigma_range

    def __call__(self, image: np.ndarray, rng: np.random.Generator | int | None = None
                 ) -> np.ndarray:
        return gaussian_blur(image, rng, sigma_range=self.sigma_range)


class FlipRotate(_Aug):
    """Callable form of :func:`flip_rotate`."""

    def __call__(self, image: np.ndarray, rng: np.random.Generator | int | None = None
                 ) -> np.ndarray:
        return flip_rotate(image, rng)  # type: ignore[return-value]


class RandomApply(_Aug):
    """Apply ``transform`` with probability ``p``."""

    def __init__(self, transform: Augmentation, p: float = 0.5) -> None:
        self.transform = transform
        self.p = p

    def __call__(self, image: np.ndarray, rng: np.random.Generator | int | None = None
                 ) -> np.ndarray:
        rng = _rng(rng)
        if rng.random() < self.p:
            return self.transform(image, rng)
        return np.asarray(image).copy()


class Compose(_Aug):
    """Apply augmentations in order, sharing one generator."""

    def __init__(self, transforms: Sequence[Augmentation]) -> None:
        self.transforms = list(transforms)

    def __call__(self, image: np.ndarray, rng: np.random.Generator | int | None = None
                 ) -> np.ndarray:
        rng = _rng(rng)
        out = np.asarray(image)
        for t in self.transforms:
            out = t(out, rng)
        return out


def default_augmentation(strength: float = 1.0, *, scale: bool = True) -> Compose:
    """A sensible cross-lab augmentation: HED stain jitter, brightness/contrast, scale jitter
    (+-20 %), occasional blur, and flips/rotations; ``strength`` scales the amplitudes.

    Parameters
    ----------
    strength : float, default=1.0
        Multiplies every amplitude (2.0: twice the stain jitter, +-40 % scale, ...).
    scale : bool, default=True
        Include the scale jitter (False: colour, blur and orientation only).

    Returns
    -------
    Compose
    """
    s = float(strength)
    transforms: list[Augmentation] = [
        HEDJitter(sigma=0.05 * s, bias=0.02 * s),
        BrightnessContrast(brightness=0.08 * s, contrast=0.1 * s),
    ]
    if scale:
        transforms.append(ScaleJitter((1.0 / (1.0 + 0.2 * s), 1.0 + 0.2 * s)))
    transforms += [RandomApply(GaussianBlur((0.3, 1.0 + 0.5 * s)), p=0.3), FlipRotate()]
    return Compose(transforms)


# --------------------------------------------------------------------------------------------
# augmented copies of a training set (classical family)


@dataclass(frozen=True, eq=False)  # compared by identity: the source may be an array
class AugmentedImage:
    """One augmented copy of a training image, read lazily.

    An item that :func:`wbc_classic.classical.extraction.extract_features` and
    :class:`wbc_classic.classical.model.WBCModel` accept next to paths and arrays: the image is
    read from
    ``source`` and passed through ``augmentation`` with a generator seeded by ``seed`` *before*
    segmentation, so scale jitter moves the masks as well.  The content key combines the
    source's bytes, the augmentation's settings and the seed, so the feature cache tells the
    copies apart and reuses them across runs.

    Parameters
    ----------
    source : path or ndarray of shape (H, W, 3), uint8
    augmentation : callable ``(image, rng) -> image``
        Its ``repr`` must state every setting (true of the classes in this module).
    seed : int
    source_sha256 : str, optional
        The source's content hash when already known (:func:`augmented_copies` passes it, so
        a file is hashed once for all its copies); computed when needed otherwise.
    """

    source: Any
    augmentation: Augmentation
    seed: int
    source_sha256: str | None = None

    def read(self, max_pixels: int | None = None) -> np.ndarray:
        """The augmented RGB uint8 image, shape (H, W, 3)."""
        from wbc_classic.io.images import read_image

        if isinstance(self.source, np.ndarray):
            image = self.source
        else:
            image = read_image(self.source, **({} if max_pixels is None else
                                                {"max_pixels": max_pixels}))
        return self.augmentation(image, np.random.default_rng(self.seed))

    def content_sha256(self) -> str:
        """Hex SHA-256 of (source content, augmentation settings, seed)."""
        source = self.source_sha256 or _source_sha256(self.source)
        text = json.dumps({"source": source, "augmentation": repr(self.augmentation),
                           "seed": int(self.seed)}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def __str__(self) -> str:
        source = "<array>" if isinstance(self.source, np.ndarray) else str(self.source)
        return f"{source} (augmented, seed {self.seed})"


def _source_sha256(source: Any) -> str:
    from wbc_classic.io.images import array_sha256, image_sha256

    return array_sha256(source) if isinstance(source, np.ndarray) else image_sha256(source)


def augmented_copies(sources: Sequence[Any], augmentation: Augmentation, copies: int, *,
                     seed: int = 0) -> list[AugmentedImage]:
    """``copies`` augmented versions of every source image, copy by copy.

    Parameters
    ----------
    sources : sequence of path or ndarray, length n
    augmentation : callable ``(image, rng) -> image``
    copies : int
        Copies per image (0 gives an empty list).
    seed : int, default=0
        Copy ``c`` of an image gets the seed derived from ``(seed, c, the image's content
        hash)``: the same image is augmented the same way whatever list it comes in (so
        ``wbc-classic train`` and ``benchmarks.cross_lab`` share cached copies) and on every
        run. An unreadable source falls back to its position; it fails when read.

    Returns
    -------
    list of AugmentedImage, length ``copies * n``, item ``c * n + i`` = copy ``c`` of image
    ``i``
    """
    from wbc_classic.io.images import ImageReadError

    if copies < 0:
        raise ValueError(f"copies must be >= 0, got {copies}")
    sources = list(sources)
    digests: list[str | None] = []
    for src in sources:
        try:
            digests.append(_source_sha256(src))
        except ImageReadError:
            digests.append(None)
    keys = [int(d[:15], 16) if d is not None else i for i, d in enumerate(digests)]
    return [AugmentedImage(src, augmentation,
                           int(np.random.SeedSequence([seed, c, key]).generate_state(1)[0]),
                           digest)
            for c in range(copies)
            for src, key, digest in zip(sources, keys, digests, strict=True)]
