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
  the literature and can be chosen in :class:`segmentation.params.SegmenterParams`.
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
    "background_light",
    "background_lab",
    "optical_density",
    "pale_pixels",
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


def rgb_to_hsi(image: np.ndarray, *, hue_origin: float = 0.0) -> np.ndarray:
    """Convert RGB to HSI (hue, saturation, intensity), as in Gonzalez & Woods.

    The one HSI conversion of the project: the segmenter's saturation channel
    (:func:`hsi_saturation`, the same formula for one channel) and the colour features
    (``hue_origin=1/3``, hue measured from green) use it.

    Parameters
    ----------
    image : ndarray, shape (..., 3)
        RGB, ``uint8`` or float in [0, 1] (float32 input is used as it is).
    hue_origin : float
        Hue that maps to 0, as a fraction of a turn (0 = red, 1/3 = green, 2/3 = blue).

    Returns
    -------
    ndarray of float32, shape (..., 3)
        Channel 0: hue as a fraction of a turn in [0, 1), counted from ``hue_origin``; grey
        pixels (hue undefined) get the hue of pure red, like scikit-image.  Channel 1:
        saturation ``1 - min(R, G, B) / I`` in [0, 1] (0 for black).  Channel 2: intensity
        ``(R + G + B) / 3`` in [0, 1].
    """
    rgb = np.asarray(image)
    if rgb.shape[-1:] != (3,):
        raise ValueError(f"expected RGB values in the last axis, got shape {rgb.shape}")
    if rgb.dtype == np.uint8:
        rgb = rgb.astype(np.float32) * np.float32(1.0 / 255.0)
    elif rgb.dtype != np.float32:
        rgb = np.clip(rgb, 0.0, 1.0).astype(np.float32)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    i = (r + g + b) / 3.0
    mn = np.minimum(np.minimum(r, g), b)
    s = np.where(i > _EPS, 1.0 - mn / np.maximum(i, _EPS), 0.0)
    num = 0.5 * ((r - g) + (r - b))
    den = np.sqrt((r - g) ** 2 + (r - b) * (g - b))
    theta = np.arccos(np.clip(num / np.maximum(den, 1e-9), -1.0, 1.0)) / (2 * np.pi)
    h = np.where(b > g, 1.0 - theta, theta)
    h = np.where(den > 1e-9, h, 0.0)
    h = np.mod(h - hue_origin, 1.0)
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


def _levels(image: np.ndarray, dtype: type = np.float64) -> np.ndarray:
    """RGB values on the 0-255 scale in ``dtype``: uint8 as is, float in [0, 1] scaled by 255
    (clipped), other integers clipped to [0, 255]. Shape (..., 3)."""
    image = np.asarray(image)
    if image.shape[-1:] != (3,):
        raise ValueError(f"expected RGB values in the last axis, got shape {image.shape}")
    if image.dtype == np.uint8:
        return image.astype(dtype)
    if np.issubdtype(image.dtype, np.floating):
        return np.clip(image.astype(dtype), 0.0, 1.0) * dtype(255.0)
    return np.clip(image, 0, 255).astype(dtype)


def background_light(image: np.ndarray, percentile: float = 90.0, *,
                     exact: bool = False, white: float = 1.0) -> np.ndarray:
    """Colour of the incident light ``I0``: median colour of the brightest pixels.

    The background of a smear is its brightest large area; its colour is the light that
    reached the camera through no stain, the reference of every optical density.  The one
    home of this estimate: the segmenter, the density features, the stain normalisers, the
    pixel-scale estimate and the cell crop all call it.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3)
        RGB; ``uint8`` (or, with ``exact=True``, float in [0, 1] or another integer type).
        (A Lab image has its own estimate, :func:`background_lab`.)
    percentile : float
        Pixels whose grey level (R + G + B) is at or above this percentile count.
    exact : bool
        False (the segmenter's and the density features' estimate): every second row and
        column, percentile and medians from integer histograms (the lower median), uint8
        input only; the background is large and smooth, so a quarter of the pixels gives the
        same colour at a fraction of the cost.  True (the stain normalisers', the scale
        estimate's and the cell crop's estimate): all pixels, :func:`numpy.percentile` of the
        mean grey level and :func:`numpy.median` of each channel, in float64.  The two
        differ by a level or so; each caller keeps the one its figures were measured with.
    white : float
        Scale of the result: 1.0 gives values in [1/255, 1], 255.0 values in [1, 255]
        (the 0-255 scale of the stain module).

    Returns
    -------
    ndarray, shape (3,)
        float32 (``exact=False``) or float64 (``exact=True``), in ``[white / 255, white]``.
    """
    if exact:
        rgb = _levels(_check_image(image), np.float64)
        grey = rgb.mean(axis=-1)
        light = np.clip(np.median(rgb[_bright(grey, percentile, None)], axis=0), 1.0, 255.0)
        return light if white == 255.0 else light / (255.0 / white)
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a uint8 RGB image (H, W, 3), got {image.dtype} "
                         f"{image.shape}")
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
    light /= np.float32(255.0 / white)
    return np.maximum(light, np.float32(white / 255.0))


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an image of shape (H, W, 3), got shape {image.shape}")
    return image


def _bright(grey: np.ndarray, percentile: float, exclude: np.ndarray | None) -> np.ndarray:
    """Pixels (H, W) bool whose ``grey`` is at or above its ``percentile`` among the pixels
    not in ``exclude`` (all pixels when fewer than 10 would remain)."""
    if exclude is None:
        return grey >= np.percentile(grey, percentile)
    sel = ~np.asarray(exclude, dtype=bool)
    if sel.sum() < 10:
        sel = np.ones_like(sel)
    return sel & (grey >= np.percentile(grey[sel], percentile))


def background_lab(lab: np.ndarray, percentile: float, *,
                   exclude: np.ndarray | None = None) -> np.ndarray:
    """Background colour of a CIE Lab image: median Lab of the lightest pixels.

    The segmenter's variant of :func:`background_light`: it works on the smoothed Lab image
    it already has (the watershed and the red-cell radius measure colour distances to it),
    ranks pixels by L* and takes the exact median.

    Parameters
    ----------
    lab : ndarray of float32, shape (H, W, 3)
        L*, a*, b* (:func:`rgb_to_lab`).
    percentile : float
        Pixels whose L* is at or above this percentile (among the pixels not excluded) count
        (the leukocyte watershed uses 75, the red-cell radius 80).
    exclude : ndarray of bool, shape (H, W), optional
        Pixels that are never background (the dilated nucleus); ignored when fewer than 10
        pixels would remain.

    Returns
    -------
    ndarray of float32, shape (3,)
    """
    return np.median(lab[_bright(lab[..., 0], percentile, exclude)], axis=0)


def optical_density(image: np.ndarray, background: np.ndarray | float, *,
                    white: float = 1.0, offset: float = 0.5,
                    dtype: type = np.float32) -> np.ndarray:
    """Optical density ``-log10(I / I0)`` per RGB channel, clipped below at 0.

    Parameters
    ----------
    image : ndarray, shape (..., 3)
        RGB, ``uint8`` (or float in [0, 1], or another integer type).
    background : array_like of shape (3,), or float
        Incident light ``I0`` (:func:`background_light`) on the scale given by ``white``.
    white : float
        The scale of ``background``: 1.0 (values in [1/255, 1], the segmentation and feature
        convention) or 255.0 (the 0-255 scale of the stain module).
    offset : float
        Added to each 0-255 level before dividing (0.5: the level's centre, so a black
        pixel has a finite OD; the density features).  0 clips levels below 1 to 1 instead
        (the stain normalisers and the scale estimate).
    dtype : numpy float type
        float32 (features) or float64 (stain and scale: the normalisers re-render pixels
        from the OD, so they keep double precision).

    Returns
    -------
    ndarray of ``dtype``, shape (..., 3)
        Zero for pixels as bright as ``I0`` or brighter.
    """
    levels = _levels(image, dtype)
    if offset:
        levels += dtype(offset)
    else:
        levels = np.clip(levels, dtype(1.0), dtype(255.0))
    if white != 255.0:
        levels /= dtype(255.0 / white)
    od = -np.log10(levels / np.asarray(background, dtype=dtype))
    return np.maximum(od, dtype(0.0), out=od)


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
