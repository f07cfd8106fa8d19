"""Torch datasets over cached uint8 image arrays, with ``transforms.v2`` augmentation."""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision.transforms import v2

# the preset lives in the torch-free deep.recipes (the benchmark config reads recipes without
# torch); it is re-exported here, beside the function it configures
from .recipes import LAB_AUGMENT

__all__ = [
    "LAB_AUGMENT",
    "ArrayDataset",
    "RandomTint",
    "TensorHEDJitter",
    "build_augmentation",
    "channel_stats",
    "class_weights",
    "normalize_batch",
    "stratified_holdout",
    "to_float_batch",
]


def build_augmentation(
    *,
    rotation: float = 180.0,
    shift: float = 0.05,
    shear: float = 5.0,
    zoom: float = 0.1,
    hflip: bool = True,
    vflip: bool = True,
    brightness: float = 0.1,
    contrast: float = 0.1,
    saturation: float = 0.0,
    hue: float = 0.0,
    hed_sigma: float = 0.0,
    hed_bias: float = 0.0,
    grayscale: float = 0.0,
    blur: float = 0.0,
    sharpen: float = 0.0,
    jpeg: int = 0,
    tint: float = 0.0,
) -> v2.Compose:
    """A composable ``v2`` augmentation for uint8 CHW cell crops.

    Each argument switches one transform off when 0/False, so the pipeline is easy to ablate.

    Parameters
    ----------
    rotation : float
        Maximum absolute rotation in degrees (cells have no preferred orientation).
    shift : float
        Maximum translation as a fraction of the side.
    shear : float
        Maximum shear in degrees.
    zoom : float
        Scale range ``[1 - zoom, 1 + zoom]``.
    hflip, vflip : bool
        Random horizontal / vertical flips.
    brightness, contrast, saturation, hue : float
        ``v2.ColorJitter`` strengths.
    hed_sigma, hed_bias : float
        Stain jitter in haematoxylin-eosin space (:class:`TensorHEDJitter`); simulates another
        laboratory's stain strength and hue.
    grayscale : float
        Probability of turning an image grey (all three channels equal).
    blur : float
        Largest Gaussian blur sigma in pixels of the network's input, applied to half the
        images with ``sigma ~ U(0.1, blur)``; with ``sharpen`` it teaches the network that
        sharpness is not a class cue (another lab's optics, focus and compression differ:
        CellaVision-blog cells are sharper than PBC's JPEGs).
    sharpen : float
        Sharpening of the other half: ``v2.RandomAdjustSharpness(1 + sharpen, p=0.5)``.
    jpeg : int
        Lowest JPEG quality (1..100; 0 = off): half the images are re-encoded as JPEG
        (``v2.JPEG``) with a quality drawn uniformly from ``jpeg .. max(jpeg, 95)``, the last
        step, as when another lab saves its images; its block artefacts and lost fine colour
        are then no class cue.
    tint : float
        Per-channel gain in ``[1 - tint, 1 + tint]`` on the whole image (:class:`RandomTint`,
        0 <= tint < 1; 0 = off): another lab's illuminant, white balance and background
        colour.

    Returns
    -------
    v2.Compose
        Takes and returns a uint8 tensor of shape (3, H, W) (or a batch (N, 3, H, W), in which
        case all images of the batch share the random parameters).
    """
    jpeg = _check_jpeg(jpeg)
    ts: list[torch.nn.Module] = []
    if hflip:
        ts.append(v2.RandomHorizontalFlip())
    if vflip:
        ts.append(v2.RandomVerticalFlip())
    if rotation or shift or shear or zoom:
        ts.append(v2.RandomAffine(
            degrees=rotation,
            translate=(shift, shift) if shift else None,
            scale=(1 - zoom, 1 + zoom) if zoom else None,
            shear=shear if shear else None,
            interpolation=v2.InterpolationMode.BILINEAR,
            fill=_FILL,
        ))
    if hed_sigma or hed_bias:
        ts.append(TensorHEDJitter(sigma=hed_sigma, bias=hed_bias))
    if tint:
        ts.append(RandomTint(tint))
    if brightness or contrast or saturation or hue:
        ts.append(v2.ColorJitter(brightness=brightness, contrast=contrast,
                                 saturation=saturation, hue=hue))
    if grayscale:
        ts.append(v2.RandomGrayscale(p=grayscale))
    if blur:
        k = 2 * int(np.ceil(3.0 * blur)) + 1
        ts.append(v2.RandomApply([v2.GaussianBlur(k, sigma=(0.1, float(blur)))], p=0.5))
    if sharpen:
        ts.append(v2.RandomAdjustSharpness(1.0 + float(sharpen), p=0.5))
    if jpeg:
        ts.append(v2.RandomApply([v2.JPEG((jpeg, max(jpeg, 95)))], p=0.5))
    return v2.Compose(ts or [v2.Identity()])  # every switch off: a valid no-op


def _check_jpeg(jpeg: int) -> int:
    """``jpeg`` of :func:`build_augmentation` as int: 0 (off) or a quality 1..100."""
    if isinstance(jpeg, bool) or not isinstance(jpeg, numbers.Real) \
            or jpeg != int(jpeg) or not 0 <= jpeg <= 100:
        raise ValueError(f"augmentation jpeg must be a JPEG quality 1..100 (0 = off), "
                         f"got {jpeg!r}")
    return int(jpeg)


class RandomTint(torch.nn.Module):
    """A random gain per colour channel on a uint8 image: another lab's illuminant, white
    balance or background colour.

    Each call draws three gains uniformly from ``[1 - tint, 1 + tint]`` with torch's generator
    (``torch.manual_seed`` makes it reproducible) and multiplies the red, green and blue
    channels by them, rounding and clamping to 0..255.

    Parameters
    ----------
    tint : float
        Largest relative change of a channel, ``0 <= tint < 1``.

    Notes
    -----
    Takes a uint8 tensor (3, H, W) or a batch (N, 3, H, W) and returns one of the same shape
    and dtype; the images of a batch share the gains, as in the ``v2`` transforms.
    """

    def __init__(self, tint: float = 0.1) -> None:
        super().__init__()
        tint = float(tint)
        if not 0.0 <= tint < 1.0:  # a gain <= 0 would wipe out or invert a channel
            raise ValueError(f"tint must be in [0, 1), got {tint}")
        self.tint = tint

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype != torch.uint8 or x.ndim not in (3, 4) or x.shape[-3] != 3:
            raise ValueError(f"RandomTint expects a uint8 (3, H, W) or (N, 3, H, W) tensor, "
                             f"got {x.dtype} {tuple(x.shape)}")
        gain = 1.0 + self.tint * (2.0 * torch.rand(3) - 1.0)
        out = x.float() * gain.view(3, 1, 1)
        return out.round_().clamp_(0, 255).to(torch.uint8)

    def __repr__(self) -> str:
        return f"RandomTint(tint={self.tint})"


class TensorHEDJitter(torch.nn.Module):
    """Random stain jitter in HED space on a uint8 (3, H, W) tensor.

    A torch-transform wrapper of :func:`wbc_classic.preprocess.augment.hed_jitter`; its random
    numbers
    come from torch's generator, so ``torch.manual_seed`` makes it reproducible.

    Parameters
    ----------
    sigma : float
        Relative amplitude of the per-stain scale.
    bias : float
        Amplitude of the per-stain shift.
    """

    def __init__(self, sigma: float = 0.05, bias: float = 0.02) -> None:
        super().__init__()
        self.sigma = float(sigma)
        self.bias = float(bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from wbc_classic.preprocess.augment import hed_jitter

        if x.dtype != torch.uint8 or x.ndim != 3 or x.shape[0] != 3:
            raise ValueError(f"TensorHEDJitter expects a uint8 (3, H, W) tensor, got {x.dtype} "
                             f"{tuple(x.shape)}")
        seed = int(torch.randint(0, 2**31 - 1, (1,)).item())
        out = hed_jitter(x.permute(1, 2, 0).numpy(), seed, sigma=self.sigma, bias=self.bias)
        return torch.from_numpy(out).permute(2, 0, 1).contiguous()

    def __repr__(self) -> str:
        return f"TensorHEDJitter(sigma={self.sigma}, bias={self.bias})"


# PBC/CellaVision backgrounds are light; a near-background fill avoids black corners after rotation
_FILL = [220, 210, 200]


def channel_stats(images: np.ndarray, max_images: int = 2000, seed: int = 0
                  ) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Per-channel mean and std in [0, 1] units of a uint8 (N, H, W, 3) array (subsampled)."""
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected (N, H, W, 3) uint8 images, got shape {images.shape}")
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(images), min(len(images), max_images), replace=False))
    x = np.asarray(images[idx], dtype=np.float64) / 255.0
    mean = x.mean(axis=(0, 1, 2))
    std = x.std(axis=(0, 1, 2)) + 1e-6
    return ((float(mean[0]), float(mean[1]), float(mean[2])),
            (float(std[0]), float(std[1]), float(std[2])))


def class_weights(y: np.ndarray, n_classes: int) -> np.ndarray:
    """Balanced class weights ``n / (k * count)`` as float32, shape (n_classes,)."""
    counts = np.bincount(np.asarray(y, np.int64), minlength=n_classes).astype(np.float64)
    w = np.where(counts > 0, counts.sum() / (n_classes * np.maximum(counts, 1)), 0.0)
    return w.astype(np.float32)


def stratified_holdout(y: np.ndarray, fraction: float = 0.1, seed: int = 0
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Split positions ``0..len(y)-1`` into (keep, holdout), stratified by class.

    Used to carve a validation part out of a 2-way Split's train indices for early stopping.
    Every class with >= 2 members contributes at least one hold-out sample.
    """
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    hold: list[np.ndarray] = []
    for c in np.unique(y):
        pos = np.flatnonzero(y == c)
        rng.shuffle(pos)
        n = int(round(fraction * len(pos)))
        if len(pos) >= 2:
            n = min(max(n, 1), len(pos) - 1)
        else:
            n = 0
        hold.append(pos[:n])
    h = np.sort(np.concatenate(hold)) if hold else np.empty(0, np.int64)
    keep = np.setdiff1d(np.arange(len(y)), h)
    return keep.astype(np.int64), h.astype(np.int64)


def to_float_batch(x: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 3, H, W) or (N, H, W, 3) -> float32 (N, 3, H, W) in [0, 1]."""
    if x.ndim != 4:
        raise ValueError(f"expected a 4-D image batch, got shape {tuple(x.shape)}")
    if x.shape[1] != 3 and x.shape[-1] == 3:
        x = x.permute(0, 3, 1, 2)
    if x.shape[1] != 3:
        raise ValueError(f"expected 3 colour channels, got a batch of shape {tuple(x.shape)}")
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()


def normalize_batch(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8/float image batch -> normalised float32 (N, 3, H, W)."""
    x = to_float_batch(x)
    m = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    s = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - m) / s


class ArrayDataset(Dataset):
    """Samples of a uint8 (N, H, W, 3) array (e.g. a :class:`deep.cache.CachedImages` memmap).

    Parameters
    ----------
    images : ndarray, shape (N, H, W, 3), uint8
    y : ndarray, shape (N,), int
    indices : ndarray of int, optional
        Rows to expose (e.g. ``split.train``); all rows when None.
    transform : callable, optional
        Applied to the uint8 tensor (3, H, W) on the fly (augmentation).

    Returns, per item, ``(uint8 tensor (3, H, W), int64 label)``; normalisation happens on the
    batch in the training loop (cheaper than per sample and identical at inference).
    """

    def __init__(self, images: np.ndarray, y: np.ndarray, indices: np.ndarray | None = None,
                 transform=None) -> None:
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"expected (N, H, W, 3) images, got shape {images.shape}")
        if len(images) != len(y):
            raise ValueError(f"{len(images)} images but {len(y)} labels")
        self.images = images
        self.y = np.asarray(y, np.int64)
        self.indices = (np.arange(len(y)) if indices is None
                        else np.asarray(indices, np.int64))
        self.transform = transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        j = int(self.indices[i])
        x = torch.from_numpy(np.array(self.images[j], copy=True)).permute(2, 0, 1).contiguous()
        if self.transform is not None:
            x = self.transform(x)
        return x, int(self.y[j])

    @property
    def labels(self) -> np.ndarray:
        """Labels of the exposed rows, shape (len(self),)."""
        return self.y[self.indices]
