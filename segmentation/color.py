"""Colour-space conversions and the stain channels used by the segmenter.

Every function takes an RGB image (``uint8`` in [0, 255] or float in [0, 1]) of shape
(H, W, 3) and returns ``float32`` arrays.  Ranges are documented per function; they do
not depend on the image, so thresholds computed on them are comparable between images.

The nucleus of a May-Grunwald-Giemsa / Wright stained leukocyte is blue-purple, its
cytoplasm pale blue to lilac, red cells pink, and the background beige or pale grey.
The channels below turn those colour differences into one grey level each:

* :func:`blue_green_chromaticity` -- ``(B - G) / (R + G + B)``: high on the nucleus
  in every stain tried; the default nucleus channel.
* :func:`blue_minus_red` -- ``B - R``: high on nucleus and cytoplasm, low on red cells
  and on a beige background; the default cell (cytoplasm) channel.
* HSI saturation, CMYK cyan/magenta and CIE Lab b* are the classic alternatives from
  the literature and can be chosen in :class:`segmentation.pipeline.SegmenterParams`.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

__all__ = [
    "as_float_rgb",
    "rgb_to_hsi",
    "rgb_to_cmyk",
    "rgb_to_lab",
    "blue_green_chromaticity",
    "blue_minus_red",
    "blue_ratio",
    "hsi_saturation",
    "lab_minus_b",
    "cmyk_cyan",
    "cmyk_magenta",
    "NUCLEUS_CHANNELS",
    "channel",
]

_EPS = 1e-6


def as_float_rgb(image: np.ndarray) -> np.ndarray:
    """Return ``image`` as ``float32`` RGB in [0, 1].

    Parameters
    ----------
    image : ndarray, shape (H, W, 3)
        ``uint8`` (0..255), other integer types (scaled by their maximum) or float
        (assumed already in [0, 1]; clipped).

    Returns
    -------
    ndarray of float32, shape (H, W, 3)
        ``image`` itself when it already is float32 in [0, 1] (treat it as read-only).
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB image of shape (H, W, 3), got shape {image.shape}")
    if image.dtype == np.uint8:
        out = image.astype(np.float32)
        out *= np.float32(1.0 / 255.0)
        return out
    if np.issubdtype(image.dtype, np.integer):
        return image.astype(np.float32) / np.float32(np.iinfo(image.dtype).max)
    if image.dtype == np.float32 and image.min() >= 0.0 and image.max() <= 1.0:
        # already what was asked for (the segmenter passes its float image to every
        # channel function): two reductions instead of a clipped copy
        return image
    if np.issubdtype(image.dtype, np.floating):
        return np.clip(image, 0.0, 1.0).astype(np.float32, copy=False)
    raise ValueError(f"unsupported image dtype {image.dtype}")


def rgb_to_hsi(image: np.ndarray) -> np.ndarray:
    """Convert RGB to HSI (hue, saturation, intensity), as in Gonzalez & Woods.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3)
        RGB, ``uint8`` or float in [0, 1].

    Returns
    -------
    ndarray of float32, shape (H, W, 3)
        Channel 0: hue as a fraction of a turn in [0, 1) (0 = red, 1/3 = green,
        2/3 = blue); 0 where the pixel is grey.  Channel 1: saturation
        ``1 - min(R, G, B) / I`` in [0, 1].  Channel 2: intensity ``(R + G + B) / 3``
        in [0, 1].
    """
    rgb = as_float_rgb(image)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    i = (r + g + b) / 3.0
    s = np.where(i > _EPS, 1.0 - np.minimum(np.minimum(r, g), b) / np.maximum(i, _EPS), 0.0)
    num = 0.5 * ((r - g) + (r - b))
    den = np.sqrt((r - g) ** 2 + (r - b) * (g - b))
    theta = np.arccos(np.clip(num / np.maximum(den, _EPS), -1.0, 1.0))
    h = np.where(b > g, 2.0 * np.pi - theta, theta) / (2.0 * np.pi)
    h = np.where(den > _EPS, h, 0.0) % 1.0
    return np.stack([h, np.clip(s, 0.0, 1.0), i], axis=-1).astype(np.float32)


def rgb_to_cmyk(image: np.ndarray) -> np.ndarray:
    """Convert RGB to CMYK (naive device-independent formula).

    Returns
    -------
    ndarray of float32, shape (H, W, 4)
        C, M, Y, K each in [0, 1]; ``K = 1 - max(R, G, B)`` and C, M, Y are 0 where
        the pixel is black.
    """
    rgb = as_float_rgb(image)
    k = 1.0 - rgb.max(axis=-1)
    denom = np.maximum(1.0 - k, _EPS)[..., None]
    cmy = np.where(denom > _EPS, (1.0 - rgb - k[..., None]) / denom, 0.0)
    return np.concatenate([np.clip(cmy, 0.0, 1.0), k[..., None]], axis=-1).astype(np.float32)


def rgb_to_lab(image: np.ndarray) -> np.ndarray:
    """Convert RGB (sRGB, D65) to CIE L*a*b*.

    Returns
    -------
    ndarray of float32, shape (H, W, 3)
        L* in [0, 100], a* and b* roughly in [-128, 127].
    """
    return cv2.cvtColor(as_float_rgb(image), cv2.COLOR_RGB2LAB)


def blue_green_chromaticity(image: np.ndarray) -> np.ndarray:
    """Normalised blue-minus-green ``(B - G) / (R + G + B)``, float32 (H, W) in [-1, 1]."""
    rgb = as_float_rgb(image)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return ((b - g) / np.maximum(r + g + b, 3 * _EPS)).astype(np.float32, copy=False)


def blue_minus_red(image: np.ndarray) -> np.ndarray:
    """Blue minus red ``B - R``, float32 (H, W) in [-1, 1]."""
    rgb = as_float_rgb(image)
    return (rgb[..., 2] - rgb[..., 0]).astype(np.float32)


def blue_ratio(image: np.ndarray) -> np.ndarray:
    """Blue over red ``B / (R + 1/255)``, float32 (H, W) in [0, 255]."""
    rgb = as_float_rgb(image)
    return (rgb[..., 2] / (rgb[..., 0] + np.float32(1.0 / 255.0))).astype(np.float32)


def hsi_saturation(image: np.ndarray) -> np.ndarray:
    """HSI saturation, float32 (H, W) in [0, 1] (see :func:`rgb_to_hsi`)."""
    rgb = as_float_rgb(image)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    i = (r + g + b) * np.float32(1.0 / 3.0)
    s = 1.0 - np.minimum(np.minimum(r, g), b) / np.maximum(i, np.float32(_EPS))
    return np.where(i > _EPS, np.clip(s, 0.0, 1.0), 0.0).astype(np.float32)


def lab_minus_b(image: np.ndarray) -> np.ndarray:
    """Negated CIE b* (blue is high), float32 (H, W) roughly in [-127, 128]."""
    return -rgb_to_lab(image)[..., 2]


def cmyk_cyan(image: np.ndarray) -> np.ndarray:
    """CMYK cyan, float32 (H, W) in [0, 1]."""
    return rgb_to_cmyk(image)[..., 0]


def cmyk_magenta(image: np.ndarray) -> np.ndarray:
    """CMYK magenta, float32 (H, W) in [0, 1]."""
    return rgb_to_cmyk(image)[..., 1]


#: Channels that can serve as the nucleus channel, by name; each is high on the nucleus.
NUCLEUS_CHANNELS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "bg_chromaticity": blue_green_chromaticity,
    "saturation": hsi_saturation,
    "blue_minus_red": blue_minus_red,
    "blue_ratio": blue_ratio,
    "lab_minus_b": lab_minus_b,
    "cyan": cmyk_cyan,
    "magenta": cmyk_magenta,
}


def channel(image: np.ndarray, name: str) -> np.ndarray:
    """Compute the named channel of :data:`NUCLEUS_CHANNELS`, float32 (H, W)."""
    try:
        fn = NUCLEUS_CHANNELS[name]
    except KeyError:
        raise ValueError(f"unknown channel {name!r}; choose from {sorted(NUCLEUS_CHANNELS)}") \
            from None
    return fn(image)


def background_light(image: np.ndarray, percentile: float = 90.0) -> np.ndarray:
    """Colour of the incident light: median of the brightest pixels of an RGB image.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8
    percentile : float
        Pixels whose grey level (R + G + B) is at or above this percentile count.

    Returns
    -------
    ndarray of float32, shape (3,)
        In [1/255, 1].
    """
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a uint8 RGB image (H, W, 3), got {image.dtype} "
                         f"{image.shape}")
    # every second row and column: the background is large and smooth, a quarter of the
    # pixels gives the same median at a quarter of the cost
    sub = image[::2, ::2].reshape(-1, 3)
    grey = sub.sum(axis=-1, dtype=np.uint16)
    # percentile and medians from integer histograms (exact for integer levels, no sort)
    counts = np.cumsum(np.bincount(grey, minlength=766))
    cut = int(np.searchsorted(counts, percentile / 100.0 * (counts[-1] - 1)))
    bright = sub[grey >= cut]
    light = np.empty(3, np.float32)
    for ch in range(3):
        cum = np.cumsum(np.bincount(bright[:, ch], minlength=256))
        light[ch] = np.searchsorted(cum, (cum[-1] + 1) // 2)
    light /= np.float32(255.0)
    return np.maximum(light, np.float32(1.0 / 255.0))


def pale_pixels(image: np.ndarray, max_od: float = 0.06,
                background: np.ndarray | None = None) -> np.ndarray:
    """Background-coloured pixels: total optical density below ``max_od``.

    The incident light ``I0`` is the image's own background (:func:`background_light`), so
    the test follows each image's illumination and white balance.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8
        RGB image (or a crop of it, with ``background`` measured on the whole image).
    max_od : float
        Largest ``-log10(I / I0)`` summed over R, G and B that still counts as background
        (0.06: about 5 % darker than the background in each channel).
    background : ndarray, shape (3,), optional
        ``I0`` in [0, 1]; :func:`background_light` of ``image`` when None.

    Returns
    -------
    ndarray of bool, shape (H, W)
    """
    i0 = background_light(image) if background is None else np.asarray(background, np.float32)
    # sum of -log10(I/I0) < t  <=>  product of I/I0 > 10**-t (no logarithm per pixel)
    ratio = np.maximum(image, 1).astype(np.float32) * (np.float32(1.0 / 255.0) / i0)
    return ratio.prod(axis=-1) > np.float32(10.0 ** (-max_od))
