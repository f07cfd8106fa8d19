"""``wbc-classic eval-seg``: score the classical segmenter on a ground-truth set.

The layout is detected from the folder:

* ``images/`` + ``masks/`` (e.g. ``cellavision_seg``): per-image and mean Dice and IoU of
  the nucleus and the whole cell, found-rate and images per second;
* ``Annotations/`` (Pascal VOC, e.g. ``bccd``): leukocyte detection precision and recall
  against the ``WBC`` boxes at IoU >= ``--min-iou``, and mask Dice where ``Masks/`` exist.

``--json FILE`` also writes every number (atomically).  An image or mask that cannot be read
is reported and skipped.  Exit codes (:mod:`wbc_classic.io.options`): 0 every image was
scored; 1 some could not be read (listed); 2 a bad option, a folder that is not a
ground-truth set, no image in it, or a ``--json`` that cannot be written.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path

from wbc_classic.io.options import (
    EXIT_FAILED_INPUTS,
    EXIT_OK,
    EXIT_USAGE,
    float_range,
    int_range,
)

HELP = "evaluate segmentation (Dice/IoU) or leukocyte detection (precision/recall)"
EXAMPLE = ("wbc-classic eval-seg --data ../shared/data/cellavision_seg --out seg.json\n"
           "  wbc-classic eval-seg --data ../shared/data/bccd")


def _params(args: argparse.Namespace):
    """Segmenter parameters from the options (None: the defaults)."""
    if args.rim_max_od is None:
        return None
    from segmentation import SegmenterParams

    return SegmenterParams(rim_max_od=args.rim_max_od)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``eval-seg`` options to ``parser``."""
    parser.add_argument("--data", required=True, type=Path,
                        help="segmentation set (images/, masks/) or VOC smear set "
                             "(Annotations/, JPEGImages/, optional Masks/)")
    parser.add_argument("--out", type=Path, metavar="FILE",
                        help="write all results (per image and summary) here as JSON")
    parser.add_argument("--json", action="store_true",
                        help="print the machine-readable result (all results as JSON) to "
                             "stdout; the human-readable lines go to stderr")
    parser.add_argument("--limit", type=int_range(1), default=None,
                        help="only the first N images")
    parser.add_argument("--min-iou", type=float_range(0, 1, lo_open=True), default=0.5,
                        help="box IoU for a correct detection (VOC sets; default 0.5)")
    parser.add_argument("--quiet", action="store_true", help="print only the summary")
    parser.add_argument("--rim-max-od", type=float_range(0, 3), default=None, metavar="OD",
                        help="trim the pale rim off cell outlines (SegmenterParams.rim_max_od, "
                             "e.g. 0.06; default: the segmenter's default, off)")


def _fmt(v) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def run(args: argparse.Namespace) -> int:
    """Run ``wbc-classic eval-seg``; returns the exit code."""
    from wbc_classic.data.datasets import load_segmentation_set, load_voc_smears
    from wbc_classic.evaluation import seg_eval
    from wbc_classic.io.atomic import atomic_write_text, check_output_file

    if args.out:
        check_output_file(args.out, "--out")  # before the work; exit 2 (cli.main)
    if args.json:  # stdout holds the JSON only
        args.quiet = True
    say = functools.partial(print, file=sys.stderr if args.json else sys.stdout)
    try:
        layout = seg_eval.detect_layout(args.data)
        samples = load_segmentation_set(args.data) if layout == "seg" \
            else load_voc_smears(args.data)
    except (ValueError, OSError) as exc:
        say(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not samples:
        say(f"error: no images found in {args.data}", file=sys.stderr)
        return EXIT_USAGE
    report: seg_eval.SegReport | seg_eval.DetectionReport
    if layout == "seg":
        if not args.quiet:
            say(f"{'image':<40} {'label':<12} {'nuc_dice':>8} {'nuc_iou':>8} "
                  f"{'cell_dice':>9} {'cell_iou':>8} {'ms':>6}")

        def show(r):
            if not args.quiet:
                say(f"{Path(r.image).name:<40} {str(r.label or '-'):<12} "
                      f"{r.nucleus_dice:8.4f} {r.nucleus_iou:8.4f} {r.cell_dice:9.4f} "
                      f"{r.cell_iou:8.4f} {1000 * r.seconds:6.1f}"
                      + ("" if r.found else "  (not found)"))

        report = seg_eval.evaluate_segmentation_set(samples, _params(args), limit=args.limit,
                                                    callback=show)
        s = report.summary
        say(f"mean over {s['n_images']} images: nucleus Dice {s['nucleus_dice']:.4f} "
              f"IoU {s['nucleus_iou']:.4f} | cell Dice {s['cell_dice']:.4f} "
              f"IoU {s['cell_iou']:.4f} | found {100 * s['found_rate']:.1f}% | "
              f"{s['images_per_second']:.1f} images/s wall-clock "
              f"(median {1000 * s['median_seconds']:.1f} ms/image), "
              f"{s['images_per_second_cpu']:.1f} images/s of CPU time")
    else:
        anns = samples

        def show(row):
            if not args.quiet:
                extra = (f" nucleus Dice {row['nucleus_dice']:.3f} cell Dice "
                         f"{row['cell_dice']:.3f}" if "cell_dice" in row else "")
                say(f"{Path(row['image']).name:<28} truth {row['n_truth']} "
                      f"detected {row['n_pred']} correct {row['tp']}{extra}")

        report = seg_eval.evaluate_smears(anns, _params(args), min_iou=args.min_iou,
                                          limit=args.limit, callback=show)
        s = report.summary
        say(f"leukocyte detection over {s['n_images']} fields (IoU >= {s['min_iou']}): "
              f"precision {_fmt(s['precision'])} recall {_fmt(s['recall'])} "
              f"(tp {s['tp']} fp {s['fp']} fn {s['fn']}) | mask Dice nucleus "
              f"{_fmt(s['mask_nucleus_dice'])} cell {_fmt(s['mask_cell_dice'])} "
              f"over {s['n_masks']} masks | {s['images_per_second']:.2f} fields/s")
    if args.out:
        atomic_write_text(args.out, json.dumps(report.to_dict(), indent=1, default=float))
        say(f"wrote {args.out}")
    if args.json:
        print(json.dumps(report.to_dict(), default=float))
    for failure in report.failures[:20]:
        say(f"  failed: {failure}", file=sys.stderr)
    if len(report.failures) > 20:
        say(f"  ... and {len(report.failures) - 20} more (see --out)", file=sys.stderr)
    return EXIT_FAILED_INPUTS if report.failures else EXIT_OK
