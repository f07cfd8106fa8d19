"""Stain and colour normalisation, and colour-robust helpers.

Every lab stains, illuminates and photographs smears differently. The normalisers here map an
image's colours onto those of a reference (usually the training set) so that colour features and
models transfer. They are selectable by name::

    norm = make_normalizer("macenko")
    norm.fit(reference_images)        # list of (H, W, 3) uint8 RGB arrays, or one array
    out = norm.transform(image)       # (H, W, 3) uint8
    state = norm.to_dict()            # plain floats / lists / str: JSON- and skops-safe
    same = normalizer_from_dict(state)

Registered names (:data:`NORMALIZERS`):

``"none"``
    No normaliser: :func:`make_normalizer`, :func:`fit_normalizer` and
    :func:`normalizer_from_dict` give ``None`` for it, and every caller takes ``None`` as "leave
    the pixels as they are" (one object for "no normaliser", the one the model file and the
    deep checkpoint already store).
``"reinhard"``
    Reinhard et al. (2001): match the per-channel mean and standard deviation in CIE Lab.
``"macenko"``
    Macenko et al. (2009): two stain vectors in optical-density (OD) space from the robust
    (1st / 99th percentile) angles of the OD pixels projected on their principal plane; the
    image is re-rendered with the reference's stain vectors, concentration scale and background.
    For May-Grunwald-Giemsa / Wright stains the first vector is the nuclear (azure/methylene
    blue, purple) stain and the second the eosin (pink) stain; they are told apart by their
    blue absorption (eosin hardly absorbs blue).
``"histogram"``
    Per-channel histogram matching (CDF matching) to a stored reference quantile function.
``"white-balance"``
    Scale each channel so that the image's background (its brightest pixels) becomes the
    reference background colour (pure white when fitted with no reference).

The normalisers are scikit-learn estimators (``get_params``, ``set_params``, ``clone``; fitted
state in attributes with a trailing underscore).

Helpers: :func:`od_to_rgb`, :func:`relative_to_background`, :func:`red_cell_colour`,
:func:`relative_to_red_cells`. The background light and the optical density come from their one
home, :func:`segmentation.color.background_light` and :func:`segmentation.color.optical_density`
(here on the 0-255 scale, in float64, with the exact median).

Images are RGB ``uint8`` of shape (H, W, 3) unless stated otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from skimage.color import lab2rgb, rgb2lab
from sklearn.base import BaseEstimator

from segmentation import color

__all__ = [
    "NORMALIZERS",
    "StainNormalizer",
    "ReinhardNormalizer",
    "MacenkoNormalizer",
    "HistogramNormalizer",
    "WhiteBalanceNormalizer",
    "make_normalizer",
    "fit_normalizer",
    "normalizer_from_dict",
    "available_normalizers",
    "od_to_rgb",
    "relative_to_background",
    "red_cell_colour",
    "relative_to_red_cells",
    "macenko_stain_vectors",
]


# --------------------------------------------------------------------------------------------
# colour-robust helpers


def _check_rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB image of shape (H, W, 3), got shape {image.shape}")
    return image


def _to_float255(image: np.ndarray) -> np.ndarray:
    """uint8 -> float64 in [0, 255]; float in [0, 1] -> float64 in [0, 255]."""
    image = _check_rgb(image)
    if image.dtype == np.uint8:
        return image.astype(np.float64)
    if np.issubdtype(image.dtype, np.floating):
        return np.clip(image.astype(np.float64), 0.0, 1.0) * 255.0
    return np.clip(image, 0, 255).astype(np.float64)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def _background(image: np.ndarray, percentile: float = 90.0) -> np.ndarray:
    """Background light on the 0-255 scale, float64 (3,) in [1, 255] (the exact estimate)."""
    return color.background_light(image, percentile, exact=True, white=255.0)


def _od(image: np.ndarray, background: np.ndarray | float) -> np.ndarray:
    """Optical density (..., 3) float64 against ``background`` on the 0-255 scale."""
    return color.optical_density(image, background, white=255.0, offset=0.0, dtype=np.float64)


def od_to_rgb(od: np.ndarray, background: np.ndarray | float = 255.0) -> np.ndarray:
    """Inverse of :func:`segmentation.color.optical_density`: ``I0 * 10**-OD`` as uint8.

    Parameters
    ----------
    od : ndarray, shape (..., 3), float
    background : array_like of shape (3,) or float
        Incident light on the 0-255 scale.

    Returns
    -------
    ndarray of uint8, shape (..., 3)
    """
    i0 = np.asarray(background, dtype=np.float64)
    return _to_uint8(i0 * np.power(10.0, -np.asarray(od, dtype=np.float64)))


def relative_to_background(image: np.ndarray, background: np.ndarray | None = None
                           ) -> np.ndarray:
    """Transmittance: the image divided channel-wise by its background colour.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8 (or float in [0, 1])
    background : array_like of shape (3,), optional
        Background RGB on the 0-255 scale; default
        :func:`segmentation.color.background_light` (exact, 0-255 scale).

    Returns
    -------
    ndarray of float64, shape (H, W, 3)
        Values in [0, ~1] (1 = as bright as the background), independent of the illumination
        colour and intensity.
    """
    rgb = _to_float255(image)
    bg = _background(image) if background is None else np.asarray(background, float)
    return rgb / np.clip(bg, 1.0, None)


def red_cell_colour(image: np.ndarray, *, exclude: np.ndarray | None = None
                    ) -> np.ndarray | None:
    """Median RGB of the red cells in the field (a stained reference present in every smear).

    Uses the red cells found by :func:`wbc_classic.preprocess.scale.detect_red_cells` (the pixels
    within
    0.8 of their inscribed radius, i.e. without the rim but with the central pallor).

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8 (or float in [0, 1])
    exclude : ndarray of bool, shape (H, W), optional
        Leukocyte pixels (e.g. ``Segmentation.cell``).

    Returns
    -------
    ndarray of float64, shape (3,) on the 0-255 scale, or None when no red cell is found.
    """
    from wbc_classic.preprocess.scale import detect_red_cells

    cells = detect_red_cells(image, exclude=exclude)
    if not cells:
        return None
    rgb = _to_float255(image)
    h, w = rgb.shape[:2]
    yy, xx = np.mgrid[:h, :w]
    sel = np.zeros((h, w), dtype=bool)
    for c in cells:
        r0, c0 = c["centroid"]
        rad = 0.4 * c["inscribed_diameter_px"]
        sel |= (yy - r0) ** 2 + (xx - c0) ** 2 <= rad ** 2
    return np.median(rgb[sel], axis=0)


def relative_to_red_cells(image: np.ndarray, *, exclude: np.ndarray | None = None,
                          background: np.ndarray | None = None) -> np.ndarray | None:
    """Optical density divided channel-wise by the red cells' optical density.

    A leukocyte's colour expressed in units of the red cells of the same smear: a stain that
    is globally stronger or weaker scales both and cancels.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8 (or float in [0, 1])
    exclude : ndarray of bool, shape (H, W), optional
        Leukocyte pixels, excluded from the red-cell search.
    background : array_like of shape (3,), optional
        Background for the OD on the 0-255 scale; default
        :func:`segmentation.color.background_light` (exact, 0-255 scale).

    Returns
    -------
    ndarray of float64, shape (H, W, 3), or None when no red cell is found.
    """
    ref = red_cell_colour(image, exclude=exclude)
    if ref is None:
        return None
    bg = _background(image) if background is None else np.asarray(background, float)
    od = _od(image, bg)
    ref_od = np.maximum(-np.log10(np.clip(ref, 1.0, 255.0) / bg), 1e-3)
    return od / ref_od


# --------------------------------------------------------------------------------------------
# base class and registry


def _iter_images(reference_images: Any) -> list[np.ndarray]:
    """A single (H, W, 3) image, an (N, H, W, 3) stack, or an iterable of images -> list."""
    if reference_images is None:
        return []
    if isinstance(reference_images, np.ndarray):
        if reference_images.ndim == 3:
            return [_check_rgb(reference_images)]
        if reference_images.ndim == 4:
            return [_check_rgb(im) for im in reference_images]
        raise ValueError(f"expected (H, W, 3) or (N, H, W, 3), got {reference_images.shape}")
    return [_check_rgb(im) for im in reference_images]


def _as_float_list(x: Any) -> Any:
    """numpy arrays / scalars -> nested lists of python floats."""
    return np.asarray(x, dtype=np.float64).tolist()


class StainNormalizer(BaseEstimator):
    """Base class: ``fit(reference_images)``, ``transform(image)``, ``to_dict()``.

    A scikit-learn estimator: parameters are the ``__init__`` keyword arguments, stored
    unchanged (``get_params``, ``set_params`` and :func:`sklearn.base.clone` work); fitted
    state lives in attributes ending in ``_`` (``mean_``, ``stains_``, ...), set only by
    :meth:`fit` or when loaded. Subclasses set ``name`` and ``_state_keys`` (the fitted
    attributes without their underscore, stored as plain floats/lists by :meth:`to_dict`).
    """

    name: ClassVar[str] = ""
    _state_keys: ClassVar[tuple[str, ...]] = ()
    _needs_fit: ClassVar[bool] = True

    def __repr__(self, N_CHAR_MAX: int = 700) -> str:
        # every parameter, defaults included: the repr names the normaliser in run logs
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"

    def __sklearn_is_fitted__(self) -> bool:
        return self.is_fitted

    # --- fitting ---
    @property
    def is_fitted(self) -> bool:
        """True once :meth:`fit` ran (or state was loaded)."""
        return all(hasattr(self, k + "_") for k in self._state_keys)

    def _check_fitted(self) -> None:
        if self._needs_fit and not self.is_fitted:
            raise RuntimeError(f"{type(self).__name__} ({self.name!r}) is not fitted: call "
                               "fit(reference_images) first")

    def fit(self, reference_images: Any) -> StainNormalizer:
        """Learn the target colour statistics from reference images.

        Parameters
        ----------
        reference_images : ndarray (H, W, 3) or (N, H, W, 3) uint8, or iterable of (H, W, 3)
            Images whose colours the output should have (typically training images).

        Returns
        -------
        self
        """
        images = _iter_images(reference_images)
        if self._needs_fit and not images:
            raise ValueError(f"{self.name!r} normaliser needs at least one reference image")
        self._fit(images)
        return self

    def _fit(self, images: list[np.ndarray]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def transform(self, image: np.ndarray) -> np.ndarray:
        """Normalise one image.

        Parameters
        ----------
        image : ndarray, shape (H, W, 3), uint8 (or float in [0, 1])

        Returns
        -------
        ndarray of uint8, shape (H, W, 3)
        """
        self._check_fitted()
        return self._transform(_check_rgb(image))

    def _transform(self, image: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return self.transform(image)

    # --- state ---
    def to_dict(self) -> dict[str, Any]:
        """Parameters and fitted state as plain python values (str, float, list, dict, None).

        Returns
        -------
        dict
            ``{"name": str, "params": {...}, "state": {...} or None}``; feed to
            :func:`normalizer_from_dict` to rebuild an identical normaliser.
        """
        state = None
        if self._state_keys and self.is_fitted:
            state = {k: _as_float_list(getattr(self, k + "_")) for k in self._state_keys}
        params = {k: (list(v) if isinstance(v, tuple) else v)
                  for k, v in self.get_params().items()}
        return {"name": self.name, "params": params, "state": state}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StainNormalizer | None:
        """Rebuild a normaliser from :meth:`to_dict` output (any registered name)."""
        return normalizer_from_dict(data)

    def _set_state(self, state: dict[str, Any] | None) -> None:
        if not state:
            return
        missing = [k for k in self._state_keys if k not in state]
        if missing:
            raise ValueError(f"state for {self.name!r} lacks {missing}")
        for k in self._state_keys:
            setattr(self, k + "_", np.asarray(state[k], dtype=np.float64))


# --------------------------------------------------------------------------------------------
# normalisers


def _lab(image: np.ndarray) -> np.ndarray:
    return rgb2lab(_to_float255(image) / 255.0)


def _sample_pixels(images: Sequence[np.ndarray], n: int, seed: int = 0) -> np.ndarray:
    """Up to ``n`` pixels (rows of 3) drawn evenly from the images, deterministic."""
    rng = np.random.default_rng(seed)
    per = max(1, n // max(1, len(images)))
    out = []
    for im in images:
        flat = im.reshape(-1, 3)
        if flat.shape[0] > per:
            flat = flat[rng.choice(flat.shape[0], per, replace=False)]
        out.append(flat)
    return np.concatenate(out, axis=0)


class ReinhardNormalizer(StainNormalizer):
    """Reinhard colour transfer: match per-channel mean and std in CIE Lab.

    Parameters
    ----------
    max_pixels : int
        Pixels sampled from the references to compute the target statistics.
    """

    name = "reinhard"
    _state_keys = ("mean", "std")

    def __init__(self, max_pixels: int = 500_000) -> None:
        self.max_pixels = max_pixels

    def _fit(self, images: list[np.ndarray]) -> None:
        pix = _sample_pixels(images, self.max_pixels)
        lab = _lab(pix[None])[0]
        self.mean_ = lab.mean(axis=0)
        self.std_ = lab.std(axis=0)

    def _transform(self, image: np.ndarray) -> np.ndarray:
        lab = _lab(image)
        mu = lab.reshape(-1, 3).mean(axis=0)
        sd = np.maximum(lab.reshape(-1, 3).std(axis=0), 1e-6)
        out = (lab - mu) / sd * self.std_ + self.mean_
        out[..., 0] = np.clip(out[..., 0], 0.0, 100.0)
        return _to_uint8(lab2rgb(out) * 255.0)


def macenko_stain_vectors(od: np.ndarray, *, beta: float = 0.1, alpha: float = 1.0
                          ) -> np.ndarray:
    """Two stain vectors from optical-density pixels (Macenko et al., 2009).

    Parameters
    ----------
    od : ndarray, shape (N, 3), float
        Optical densities of the pixels.
    beta : float
        Pixels with a mean OD below ``beta`` (background) are ignored.
    alpha : float
        Percentile (and ``100 - alpha``) of the angles taken as the extreme stain directions.

    Returns
    -------
    ndarray of float64, shape (2, 3)
        Unit stain vectors, rows ordered so that the first absorbs blue light more (the purple
        nuclear / haematoxylin-like stain) and the second less (eosin, pink: it absorbs green
        and transmits red and blue).

    Raises
    ------
    ValueError
        When fewer than 10 stained pixels remain.
    """
    od = np.asarray(od, dtype=np.float64).reshape(-1, 3)
    # mean-OD criterion: the original "every channel above beta" rule would drop the pale
    # pink red cells and cytoplasm of blood smears (they hardly absorb red light)
    tissue = od[od.mean(axis=1) > beta]
    if tissue.shape[0] < 10:
        raise ValueError("too few stained pixels to estimate stain vectors "
                         f"({tissue.shape[0]} with mean OD > {beta})")
    # principal plane of the OD cloud (uncentred, as in the original method)
    _, _, vt = np.linalg.svd(tissue, full_matrices=False)
    plane = vt[:2]  # (2, 3)
    if plane[0].sum() < 0:
        plane[0] = -plane[0]
    if plane[1].sum() < 0:
        plane[1] = -plane[1]
    proj = tissue @ plane.T  # (N, 2)
    phi = np.arctan2(proj[:, 1], proj[:, 0])
    lo, hi = np.percentile(phi, [alpha, 100.0 - alpha])
    v1 = np.array([np.cos(lo), np.sin(lo)]) @ plane
    v2 = np.array([np.cos(hi), np.sin(hi)]) @ plane
    vecs = np.stack([v1, v2])
    vecs = np.where(np.abs(vecs) < 1e-12, 0.0, vecs)
    vecs = vecs * np.sign(vecs.sum(axis=1, keepdims=True) + 1e-12)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    if vecs[0, 2] < vecs[1, 2]:
        vecs = vecs[::-1]
    return vecs.copy()


def _concentrations(od: np.ndarray, stains: np.ndarray) -> np.ndarray:
    """Least-squares stain concentrations, (N, 3) OD x (2, 3) stains -> (N, 2)."""
    conc, *_ = np.linalg.lstsq(stains.T, od.T, rcond=None)
    return conc.T


class MacenkoNormalizer(StainNormalizer):
    """Macenko stain normalisation in optical-density space.

    Parameters
    ----------
    beta : float
        OD threshold below which pixels are treated as background when estimating stains.
    alpha : float
        Robust angle percentile (1 = 1st and 99th percentiles).
    max_conc_percentile : float
        Percentile of each stain's concentration used as its "maximum" for scaling.
    background : {"estimate", "white"}
        Incident light for the OD: the image's own background (``"estimate"``, removes
        illumination differences) or pure white 255.
    max_pixels : int
        Pixels sampled from the references.
    """

    name = "macenko"
    _state_keys = ("stains", "max_conc", "background")

    def __init__(self, beta: float = 0.1, alpha: float = 1.0, max_conc_percentile: float = 99.0,
                 background: str = "estimate", max_pixels: int = 500_000) -> None:
        self.beta = beta
        self.alpha = alpha
        self.max_conc_percentile = max_conc_percentile
        self.background = background
        self.max_pixels = max_pixels

    def _i0(self, image: np.ndarray) -> np.ndarray:
        if self.background == "estimate":
            return _background(image)
        if self.background == "white":
            return np.full(3, 255.0)
        raise ValueError(f"background must be 'estimate' or 'white', got {self.background!r}")

    def _stains_and_conc(self, od: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        stains = macenko_stain_vectors(od, beta=self.beta, alpha=self.alpha)
        conc = _concentrations(od, stains)
        return stains, conc

    def _fit(self, images: list[np.ndarray]) -> None:
        ods, bgs = [], []
        for im in images:
            i0 = self._i0(im)
            bgs.append(i0)
            ods.append(_od(im, i0).reshape(-1, 3))
        od = _sample_pixels([o.reshape(1, -1, 3) for o in ods], self.max_pixels)
        stains, conc = self._stains_and_conc(od)
        self.stains_ = stains
        self.max_conc_ = np.percentile(conc, self.max_conc_percentile, axis=0)
        self.background_ = np.median(np.stack(bgs), axis=0)

    def _transform(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        od = _od(image, self._i0(image)).reshape(-1, 3)
        try:
            stains, conc = self._stains_and_conc(od)
        except ValueError:
            # (almost) no stained pixel: only the background is re-coloured
            return od_to_rgb(od.reshape(h, w, 3), self.background_)
        max_c = np.maximum(np.percentile(conc, self.max_conc_percentile, axis=0), 1e-6)
        conc = conc * (self.max_conc_ / max_c)
        od_new = conc @ self.stains_
        return od_to_rgb(od_new.reshape(h, w, 3), self.background_)


class HistogramNormalizer(StainNormalizer):
    """Per-channel histogram (CDF) matching to a stored reference quantile function.

    The reference is summarised by ``n_quantiles`` quantiles per channel, pooled over all
    reference images; an image's channel value ``v`` with empirical CDF ``F(v)`` is mapped to
    the reference quantile at ``F(v)`` (what ``skimage.exposure.match_histograms`` does, but with
    a compact stored reference).

    Parameters
    ----------
    n_quantiles : int
        Number of stored reference quantiles per channel.
    max_pixels : int
        Pixels sampled from the references.
    """

    name = "histogram"
    _state_keys = ("quantiles",)

    def __init__(self, n_quantiles: int = 256, max_pixels: int = 500_000) -> None:
        self.n_quantiles = n_quantiles
        self.max_pixels = max_pixels

    def _levels(self) -> np.ndarray:
        return np.linspace(0.0, 1.0, int(self.n_quantiles))

    def _fit(self, images: list[np.ndarray]) -> None:
        pix = _to_float255(_sample_pixels(images, self.max_pixels)[None])[0]
        self.quantiles_ = np.quantile(pix, self._levels(), axis=0).T  # (3, n_quantiles)

    def _transform(self, image: np.ndarray) -> np.ndarray:
        rgb = _to_uint8(_to_float255(image)) if image.dtype != np.uint8 else image
        levels = self._levels()
        out = np.empty(rgb.shape, dtype=np.float64)
        n = rgb.shape[0] * rgb.shape[1]
        for ch in range(3):
            counts = np.bincount(rgb[..., ch].ravel(), minlength=256)
            # mid-point CDF of each grey value (ties share the centre of their range)
            cdf = (np.cumsum(counts) - 0.5 * counts) / n
            lut = np.interp(cdf, levels, self.quantiles_[ch])
            out[..., ch] = lut[rgb[..., ch]]
        return _to_uint8(out)


class WhiteBalanceNormalizer(StainNormalizer):
    """White balance from the background: scale channels so the background hits a target.

    ``fit`` with reference images sets the target to their median background colour; fitted
    with ``None`` (or never fitted) the target is pure white (255, 255, 255).

    Parameters
    ----------
    percentile : float
        Grey-level percentile above which pixels count as background
        (:func:`segmentation.color.background_light`).
    """

    name = "white-balance"
    _state_keys = ("target",)
    _needs_fit = False

    def __init__(self, percentile: float = 90.0) -> None:
        self.percentile = percentile

    def _fit(self, images: list[np.ndarray]) -> None:
        if not images:
            self.target_ = np.full(3, 255.0)
            return
        bgs = np.stack([_background(im, self.percentile) for im in images])
        self.target_ = np.median(bgs, axis=0)

    def _transform(self, image: np.ndarray) -> np.ndarray:
        target = getattr(self, "target_", np.full(3, 255.0))
        bg = _background(image, self.percentile)
        return _to_uint8(_to_float255(image) * (target / bg))


#: Registered normalisers by name.
NORMALIZERS: dict[str, type[StainNormalizer]] = {
    cls.name: cls
    for cls in (ReinhardNormalizer, MacenkoNormalizer, HistogramNormalizer,
                WhiteBalanceNormalizer)
}
#: The name of "no normaliser" (given as ``None`` by :func:`make_normalizer`).
NO_NORMALIZER = "none"


def available_normalizers() -> tuple[str, ...]:
    """Names accepted by :func:`make_normalizer`: ``"none"`` first, then :data:`NORMALIZERS`."""
    return (NO_NORMALIZER, *NORMALIZERS)


def _canonical(name: str) -> str:
    if not isinstance(name, str):
        raise TypeError(f"normaliser name must be a str, got {type(name).__name__}")
    key = name.strip().lower().replace("_", "-")
    aliases = {"whitebalance": "white-balance", "white": "white-balance",
               "histogram-matching": "histogram", "identity": "none"}
    key = aliases.get(key, key)
    if key != NO_NORMALIZER and key not in NORMALIZERS:
        raise ValueError(f"unknown stain normaliser {name!r}; valid names: "
                         f"{', '.join(available_normalizers())}")
    return key


def make_normalizer(name: str, **params: Any) -> StainNormalizer | None:
    """Build a (not yet fitted) normaliser by name; ``None`` for ``"none"``.

    Parameters
    ----------
    name : str
        One of :func:`available_normalizers` (``"none"``, ``"reinhard"``, ``"macenko"``,
        ``"histogram"``, ``"white-balance"``); case and ``_``/``-`` are ignored.
    **params
        Keyword arguments of the normaliser's class.

    Returns
    -------
    StainNormalizer or None
        None for ``"none"``: no normaliser, the pixels stay as they are.

    Raises
    ------
    ValueError
        For an unknown name (the message lists the valid ones).
    TypeError
        For a parameter the normaliser does not take (``"none"`` takes none).
    """
    key = _canonical(name)
    if key == NO_NORMALIZER:
        if params:
            raise TypeError(f"stain normaliser {name!r} takes no parameters, got "
                            f"{sorted(params)}")
        return None
    cls = NORMALIZERS[key]
    try:
        return cls(**params)
    except TypeError as exc:
        raise TypeError(f"bad parameters for stain normaliser {name!r}: {exc}") from None


def fit_normalizer(name: str, images: Sequence[Any], *, n_ref: int = 50, seed: int = 0,
                   read: Any = None) -> StainNormalizer | None:
    """A normaliser fitted on up to ``n_ref`` of ``images`` (a seeded pick), or None for
    ``"none"``.

    This is how both model families learn their target colours from the training images.

    Parameters
    ----------
    name : str
        See :func:`make_normalizer`.
    images : sequence of paths or (H, W, 3) uint8 arrays
        Candidate reference images (e.g. the training part); only the picked ones are read.
    n_ref : int
        At most this many images are used.
    seed : int
        Seed of the pick (``numpy.random.default_rng(seed).choice``, sorted).
    read : callable, optional
        ``item -> (H, W, 3) uint8``; default :func:`wbc_classic.io.images.read_image` for paths
        and the array itself otherwise.

    Returns
    -------
    StainNormalizer or None

    Raises
    ------
    ValueError
        For an unknown name, or a normaliser other than ``"none"`` with no images.
    """
    norm = make_normalizer(name)
    if norm is None:
        return None
    from wbc_classic.io.images import read_sample

    items = list(images)
    if not items:
        raise ValueError(f"stain normaliser {name!r} needs reference images to fit on")
    return norm.fit(read_sample(items, n_ref, seed=seed, read=read))


def normalizer_from_dict(data: dict[str, Any]) -> StainNormalizer | None:
    """Rebuild a normaliser (parameters and fitted state) from :meth:`StainNormalizer.to_dict`.

    Parameters
    ----------
    data : dict
        ``{"name": str, "params": dict, "state": dict or None}``.

    Returns
    -------
    StainNormalizer or None
        None for the name ``"none"``.
    """
    if not isinstance(data, dict) or "name" not in data:
        raise ValueError("expected a dict with a 'name' key (from StainNormalizer.to_dict())")
    norm = make_normalizer(data["name"], **dict(data.get("params") or {}))
    if norm is not None:
        norm._set_state(data.get("state"))
    return norm
