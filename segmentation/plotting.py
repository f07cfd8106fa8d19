"""Figures of the segmentation stages, for teaching and debugging (matplotlib, no pyplot state)."""

from __future__ import annotations

import numpy as np

from segmentation.result import Segmentation

__all__ = ["STAGE_TITLES", "plot_stages"]

#: Human-readable panel titles of the stage names produced by :func:`segmentation.segment`.
STAGE_TITLES: dict[str, str] = {
    "input": "1. input (RGB)",
    "hsi_saturation": "2. HSI saturation",
    "nucleus_channel": "3. nucleus channel (B-G)/(R+G+B)",
    "otsu_nucleus": "4. Otsu threshold",
    "nucleus_clean": "5. opening + small objects removed",
    "nucleus": "6. nucleus (central + lobes)",
    "otsu_cell": "7. all cells: Otsu on colour distance",
    "distance": "8. distance transform",
    "markers": "9. markers (nucleus, red cells, bg)",
    "watershed": "10. marker-controlled watershed",
    "cell_channel": "11. cell channel B-R (nucleus painted)",
    "edges": "12. outward edges (polar search)",
    "cell_outline": "13. outline polygon",
    "cell": "14. cell mask (pale rim trimmed if rim_max_od > 0)",
    "overlay": "15. result",
}


def _show(ax, name: str, arr: np.ndarray) -> None:
    arr = np.asarray(arr)
    if arr.ndim == 3:
        ax.imshow(arr)
    elif arr.dtype == bool:
        ax.imshow(arr, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    elif name in ("markers", "watershed") or np.issubdtype(arr.dtype, np.integer):
        ax.imshow(arr, cmap="nipy_spectral", interpolation="nearest",
                  vmin=0, vmax=max(1, int(arr.max())))
    else:
        finite = arr[np.isfinite(arr)]
        lo, hi = (np.percentile(finite, [1, 99]) if finite.size else (0.0, 1.0))
        ax.imshow(arr, cmap="magma" if name in ("distance", "edges") else "gray",
                  vmin=lo, vmax=hi if hi > lo else lo + 1e-6)


def plot_stages(image: np.ndarray, seg: Segmentation, *, stages: list[str] | None = None,
                ncols: int = 5, panel_size: float = 2.6, title: str | None = None):
    """Draw every stage of a segmentation as one labelled panel figure.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3) uint8
        The segmented image (shown when ``seg.stages`` has no ``"input"``).
    seg : Segmentation
        Result of :func:`segmentation.segment`.
    stages : list of str, optional
        Stage names to draw, in order; default: all of ``seg.stages`` in insertion order.
    ncols : int
        Panels per row.
    panel_size : float
        Panel width and height, inches.
    title : str, optional
        Figure title; default states whether a leukocyte was found (or why not).

    Returns
    -------
    matplotlib.figure.Figure
        A figure not registered with pyplot (save it with ``fig.savefig``).
    """
    from matplotlib.figure import Figure

    available = dict(seg.stages)
    if "input" not in available:
        available = {"input": np.asarray(image), **available}
    names = list(available) if stages is None else [s for s in stages if s in available]
    if not names:
        names = ["input"]
        available = {"input": np.asarray(image)}
    ncols = max(1, min(ncols, len(names)))
    nrows = int(np.ceil(len(names) / ncols))
    fig = Figure(figsize=(panel_size * ncols, panel_size * nrows + 0.5), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for ax, name in zip(axes, names, strict=False):
        _show(ax, name, available[name])
        ax.set_title(STAGE_TITLES.get(name, name), fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes[len(names):]:
        ax.axis("off")
    if title is None:
        if seg.found:
            title = (f"leukocyte found: nucleus {int(seg.nucleus.sum())} px, "
                     f"cell {int(seg.cell.sum())} px (radius {seg.scale:.1f} px)")
        else:
            title = seg.message or "no leukocyte found"
    fig.suptitle(title, fontsize=10)
    return fig
