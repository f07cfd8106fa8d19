"""``wbc-classic segment``: segment one single-cell image and show the method step by step.

Writes (each optional, atomically):

``--steps steps.png``  one labelled panel figure with every intermediate stage (input,
                       HSI saturation, nucleus channel, Otsu, clean-up, distance transform,
                       markers, watershed, cell channel, edges, cell, overlay)
``--out mask.png``     the 3-level mask: 255 nucleus, 128 cytoplasm, 0 other
``--overlay o.png``    the image with the nucleus and cell outlines

and prints a one-line summary.  Exit codes (one rule for every command,
:mod:`wbc_classic.io.options`): 0 a leukocyte was found; 1 the image failed: it cannot be
read, or no leukocyte was found in it (the files are still written, showing why); 2 a bad
option or an output that cannot be written (checked before any work).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from wbc_classic.io.options import EXIT_FAILED_INPUTS, EXIT_OK, EXIT_USAGE, int_range

HELP = "segment a single-cell image (nucleus + cell) and draw the method's stages"
EXAMPLE = ("wbc-classic segment ../shared/data/cellavision_seg/images/001.png "
           "--steps steps.png --out mask.png")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``segment`` options to ``parser``."""
    parser.add_argument("image", type=Path, help="single-cell image (PNG, JPEG, BMP, ...)")
    parser.add_argument("--steps", type=Path, metavar="PNG",
                        help="write the labelled panel figure of all stages here")
    parser.add_argument("--out", type=Path, metavar="PNG",
                        help="write the 3-level mask (255 nucleus / 128 cytoplasm / 0) here")
    parser.add_argument("--overlay", type=Path, metavar="PNG",
                        help="write the image with the outlines drawn on it here")
    parser.add_argument("--channel", default=None,
                        help="nucleus channel (default bg_chromaticity; also saturation, "
                             "blue_minus_red, blue_ratio, lab_minus_b, cyan, magenta)")
    parser.add_argument("--dpi", type=int_range(20, 600), default=100,
                        help="resolution of --steps, 20-600 (100)")
    parser.add_argument("--json", action="store_true",
                        help="print the machine-readable result (the summary as JSON) to stdout")


def _write_png(path: Path, array) -> None:
    from PIL import Image

    from wbc_classic.io.atomic import atomic_path

    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG")


def run(args: argparse.Namespace) -> int:
    """Run ``wbc-classic segment``; returns the exit code."""
    from segmentation import SegmenterParams, mask_to_labels, plot_stages, segment
    from wbc_classic.io.atomic import atomic_path, check_output_file
    from wbc_classic.io.images import ImageReadError, read_image

    try:
        params = SegmenterParams(nucleus_channel=args.channel) if args.channel \
            else SegmenterParams()
    except ValueError as exc:
        print(f"error: --channel: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for flag, path in (("--out", args.out), ("--overlay", args.overlay),
                       ("--steps", args.steps)):
        if path is not None:
            check_output_file(path, flag)  # OutputError -> one line, exit 2 (cli.main)
    try:
        image = read_image(args.image)
    except ImageReadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED_INPUTS
    seg = segment(image, params)
    if args.out:
        _write_png(args.out, mask_to_labels(seg))
    if args.overlay:
        from segmentation import overlay

        _write_png(args.overlay, overlay(image, seg.nucleus, seg.cell))
    if args.steps:
        fig = plot_stages(image, seg, title=f"{args.image.name}: " + (
            f"nucleus {int(seg.nucleus.sum())} px, cell {int(seg.cell.sum())} px"
            if seg.found else seg.message))
        with atomic_path(args.steps) as tmp:
            fig.savefig(tmp, dpi=args.dpi, format="png")
    summary = {"image": str(args.image), "found": bool(seg.found),
               "nucleus_px": int(seg.nucleus.sum()), "cell_px": int(seg.cell.sum()),
               "cell_radius_px": None if not seg.found else round(seg.scale, 2),
               "bbox": seg.bbox, "message": seg.message, "stages": list(seg.stages)}
    if args.json:
        print(json.dumps(summary))
    elif seg.found:
        print(f"{args.image}: leukocyte found; nucleus {summary['nucleus_px']} px, "
              f"cell {summary['cell_px']} px, bbox (r0, c0, r1, c1) {seg.bbox}")
    else:
        print(f"{args.image}: {seg.message}")
    for flag, path in (("mask", args.out), ("overlay", args.overlay), ("steps", args.steps)):
        if path and not args.json:
            print(f"  wrote {flag}: {path}")
    if not seg.found:
        print(f"error: {args.image}: {seg.message}", file=sys.stderr)
    return EXIT_OK if seg.found else EXIT_FAILED_INPUTS
