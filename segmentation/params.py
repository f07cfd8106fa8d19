"""Parameters of the leukocyte segmenter (:func:`segmentation.pipeline.segment`) and of the
field segmenter (:func:`segmentation.field.segment_field`).

A module of its own so that both segmenters import it and neither imports the other's
caller: ``field`` uses ``pipeline``, never the other way round.
"""

from __future__ import annotations

from dataclasses import dataclass

from segmentation import color

__all__ = ["SegmenterParams"]


@dataclass(frozen=True)
class SegmenterParams:
    """Parameters of :func:`segment` and :func:`segment_field`.

    Lengths are relative to the nuclear radius ``r_n`` (estimated from each image), so the
    defaults carry over between magnifications; thresholds are computed from each image.

    Attributes
    ----------
    nucleus_channel : str
        Name in :data:`segmentation.color.NUCLEUS_CHANNELS`.
    nucleus_sigma : float
        Gaussian smoothing of the nucleus channel, pixels (noise level, not a scale).
    min_contrast : float
        Smallest difference of the nucleus channel between the nucleus and its
        surroundings (channel units) for a nucleus to count; guards against images with
        no leukocyte, where Otsu still splits something.
    min_nucleus_fraction : float
        Smallest nucleus area as a fraction of the image area.
    lobe_join : float
        Nuclear fragments within ``lobe_join * r_n`` of the main one are lobes of it.
    min_lobe_fraction : float
        Lobes smaller than this fraction of the main fragment are ignored.
    centre_prior : float
        Length scale, as a fraction of the image's shorter side, of the preference for
        the nucleus nearest the centre (single-cell crops are centred).
    edge_sigma : float or None
        Smoothing of the cell channel before edge detection; None = ``clip(r_n/12, 1, 3)``.
    n_angles : int
        Angles of the polar outline search.
    max_radius : float
        The cell outline lies within ``max_radius * r_n`` of the nucleus centre (and never
        closer than the nucleus edge).
    max_slope : float
        Largest radius change per unit arc length of the outline (smoothness).
    blue_weight, light_weight : float
        Weights of the two edge cues: drop of ``B - R`` and rise of luma (lightness).
    separate_ratio : float
        Nuclear fragments whose watershed basin (on the distance transform of all cells)
        joins the main fragment's only through a neck narrower than ``separate_ratio`` times
        the lower basin peak belong to a touching neighbour cell and are dropped; 0 = off.
    region_weight : float
        Weight of the region term of the outline cost: enclosing pixels whose cell channel
        is below its Otsu threshold (red cells, background) costs, enclosing cytoplasm-like
        pixels gains (per nuclear radius of ray length).  0 = edges only.
    bound_by_watershed : bool
        Limit the outline to the watershed region of the leukocyte (plus a margin).
    watershed_margin : float
        That margin, in units of ``r_n``.
    work_radius : float
        The outline is searched on a copy resized so the nucleus radius is about this many
        pixels (only ever shrunk; 0 = full size).  Speed only; masks are full size.
    min_size : int
        Images with a side shorter than this give an empty result.
    rim_max_od : float
        Background-coloured pixels (summed optical density below this, see
        :func:`segmentation.color.pale_pixels`) between the outline and the background are
        trimmed off the cell (:func:`segmentation.morphology.trim_pale_rim`); 0 = off (the
        default). 0.06 tightens outlines of thin-rimmed cells (cell Dice 0.936 -> 0.941 on
        cellavision_seg, 0.921 -> 0.930 on BCCD) but did not help classification: the PBC
        8-class accuracy fell from 0.979 to 0.977 and the cross-lab score moved by -0.04 to
        +0.01 (README, "Cross-lab").
    """

    nucleus_channel: str = "bg_chromaticity"
    nucleus_sigma: float = 1.0
    min_contrast: float = 0.08
    min_nucleus_fraction: float = 0.002
    lobe_join: float = 1.0
    min_lobe_fraction: float = 0.05
    centre_prior: float = 0.25
    edge_sigma: float | None = None
    n_angles: int = 180
    max_radius: float = 3.0
    max_slope: float = 1.0
    blue_weight: float = 1.0
    light_weight: float = 1.0
    region_weight: float = 0.5
    separate_ratio: float = 0.75
    bound_by_watershed: bool = True
    watershed_margin: float = 0.3
    work_radius: float = 20.0
    min_size: int = 16
    rim_max_od: float = 0.0

    def __post_init__(self) -> None:
        if self.nucleus_channel not in color.NUCLEUS_CHANNELS:
            raise ValueError(f"unknown nucleus_channel {self.nucleus_channel!r}; choose from "
                             f"{sorted(color.NUCLEUS_CHANNELS)}")
        if self.n_angles < 8:
            raise ValueError("n_angles must be >= 8")
        if self.max_radius <= 1.0:
            raise ValueError("max_radius must be > 1 (it is relative to the nuclear radius)")
