"""``wbc-classic export-onnx``: a saved classical model's classifier stage as ONNX.

A sub-command of its own (like ``python -m deep.export`` for the deep family) rather than a
``train --onnx`` flag: any existing ``.skops`` file can be exported without training again.
The ONNX graph takes the float32 feature vectors (``wbc-classic features`` computes them, the
column order is in the graph's ``feature_names`` metadata) and returns ``label`` and
``probabilities``; the image front end stays Python (:mod:`wbc_classic.classical.onnx`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from wbc_classic.io.options import EXIT_OK, EXIT_USAGE

HELP = "export a classical model's classifier stage (scaler + classifier) to ONNX"
EXAMPLE = "wbc-classic export-onnx model.skops --out model.onnx --check"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``export-onnx`` options to ``parser``."""
    parser.add_argument("model", type=Path, metavar="MODEL",
                        help="model file written by `wbc-classic train` (.skops)")
    parser.add_argument("--out", required=True, type=Path,
                        help="ONNX file to write (written atomically)")
    parser.add_argument("--check", action="store_true",
                        help="run the export with ONNX Runtime on batches of 1 and 7 "
                             "feature vectors and compare with scikit-learn (max |dp| <= 1e-5, "
                             "same argmax); exit 2 when they differ")
    parser.add_argument("--json", action="store_true",
                        help="print the machine-readable result (a JSON summary) to stdout")


def parity_vectors(model, n: int = 7, seed: int = 0) -> np.ndarray:
    """``n`` float32 feature vectors in the model's own ranges (its scaler's mean +- scale)."""
    from wbc_classic.classical.onnx import onnx_ready_pipeline

    pipe = onnx_ready_pipeline(model)
    scaler = pipe.steps[0][1]
    rng = np.random.default_rng(seed)
    width = int(model.estimator_.n_features_in_)
    mean = getattr(scaler, "mean_", np.zeros(width))
    scale = getattr(scaler, "scale_", np.ones(width))
    return (mean + scale * rng.standard_normal((n, width))).astype(np.float32)


def run(args: argparse.Namespace) -> int:
    """Run ``wbc-classic export-onnx``; returns the exit code (0 done, 2 usage/failure)."""
    from wbc_classic.classical.modelfile import ModelFileError, load
    from wbc_classic.classical.onnx import OnnxExportError, export_onnx, onnx_predict_proba
    from wbc_classic.io.atomic import check_output_file

    check_output_file(args.out, "--out")
    try:
        model = load(args.model)
    except (ModelFileError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        export_onnx(model, args.out)
    except OnnxExportError as exc:
        print(f"error: {args.model}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    summary: dict[str, Any] = {"model": str(args.model), "out": str(args.out),
               "classifier": str(getattr(model, "classifier", "")),
               "classes": [str(c) for c in model.classes_],
               "n_features": int(model.estimator_.n_features_in_)}
    if args.check:
        try:
            X = parity_vectors(model)
            diffs, same = [], True
            for batch in (X[:1], X):
                p_onnx = onnx_predict_proba(args.out, batch)
                p_skl = model.estimator_.predict_proba(batch)
                diffs.append(float(np.abs(p_onnx - p_skl).max()))
                same &= bool((p_onnx.argmax(1) == p_skl.argmax(1)).all())
        except ImportError:
            print("error: --check needs onnxruntime: pip install onnxruntime", file=sys.stderr)
            return EXIT_USAGE
        summary["max_abs_diff"] = max(diffs)
        summary["same_argmax"] = same
        if max(diffs) > 1e-5 or not same:
            print(f"error: {args.out}: ONNX Runtime differs from scikit-learn (max |dp| "
                  f"{max(diffs):.2e}, same argmax: {same})", file=sys.stderr)
            return EXIT_USAGE
    if args.json:
        print(json.dumps(summary))
    else:
        check = (f"; parity max |dp| {summary['max_abs_diff']:.1e}, same argmax"
                 if args.check else "")
        print(f"{args.model} -> {args.out} ({summary['classifier']}, "
              f"{summary['n_features']} features, {len(summary['classes'])} classes{check})")
    return EXIT_OK
