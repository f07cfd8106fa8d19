"""How much of a cross-lab score is the optimiser's noise? Scores under tiny perturbations.

A classifier trained on PBC and scored on another lab's cells extrapolates: the lab's
features lie far outside PBC's, where small differences between two fitted models decide
many predictions. This benchmark measures how far the scores move when nothing of
substance changes: every PBC training feature is multiplied by ``1 + noise * N(0, 1)``
(``--noise``, default 1e-5; the features computed under OpenCV 5.0.0 and 5.1.0 differ by
up to 1.9e-7, which already moves the logistic regression's scores), the model is
refitted and scored on each target lab's cells as they are (``none``) and after
``adapt --method class-means`` on them (unlabelled). Repeat 0 is the unperturbed fit. Per
classifier, target and adaptation it reports the unperturbed accuracy, the range over
the repeats, and, for an iterative solver, the iterations it ran (scikit-learn's
``n_iter_``). ``--params`` overrides one classifier's parameters (e.g. a logistic
regression fitted to its optimum). A spread larger than the differences a table
compares means those differences are not evidence.

    python -m benchmarks.stability --classifiers logreg svm --repeats 5 \\
        --out runs/stability.json
    python -m benchmarks.stability --classifiers logreg \\
        --params '{"tol": 1e-8, "max_iter": 50000, "C": 0.03}' --out runs/stability-c003.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.labcells import add_lab_arguments, load_labs

#: The adaptations scored: the lab's cells as they are, and the class-mean map.
ADAPTATIONS = ("none", "class-means")


def perturbed(X: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    """``X * (1 + noise * N(0, 1))``, element-wise, float32 as the feature cache."""
    return (X * (1.0 + noise * rng.standard_normal(X.shape))).astype(np.float32)


def solver_iterations(model: Any) -> int | None:
    """The iterations of the fitted classifier's solver (inside its calibration or
    balancing wrapper), when it reports them."""
    from wbc_classic.classical.classifiers import final_estimator

    n_iter = getattr(final_estimator(model.estimator_.pipeline_), "n_iter_", None)
    return None if n_iter is None else int(np.max(n_iter))


def scores(Xp: np.ndarray, yp: np.ndarray, labs: dict[str, tuple[np.ndarray, np.ndarray]],
           *, classifier: str, params: dict[str, Any] | None = None
           ) -> tuple[dict[str, dict[str, float]], int | None]:
    """Accuracy per target lab and adaptation of one model fitted on ``Xp``/``yp``
    (``params``: overrides of the classifier's parameters, as ``make_classifier``'s)."""
    from wbc_classic.classical.model import WBCModel
    from wbc_classic.data.labels import PBC5_CLASSES

    model = WBCModel(classifier, classes=PBC5_CLASSES, cv=0,
                     classifier_params={"params": params} if params else None
                     ).fit_features(Xp, yp)
    out: dict[str, dict[str, float]] = {}
    for target, (Xt, yt) in labs.items():
        adapted = model.adapt_features(Xt, method="class-means")
        out[target] = {
            "none": float(np.mean(model.predict_proba_features(Xt).argmax(axis=1) == yt)),
            "class-means": float(np.mean(
                adapted.predict_proba_features(Xt).argmax(axis=1) == yt))}
    return out, solver_iterations(model)


def summarise(runs: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Per target and adaptation: the unperturbed value (run 0), min, max and spread."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for target in runs[0]:
        out[target] = {}
        for adapt in ADAPTATIONS:
            v = np.array([r[target][adapt] for r in runs])
            out[target][adapt] = {"unperturbed": float(v[0]), "min": float(v.min()),
                                  "max": float(v.max()), "spread": float(v.max() - v.min()),
                                  "values": v.tolist()}
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print one line per classifier, target and adaptation."""
    from wbc_classic.io.atomic import atomic_write_text
    from wbc_classic.io.options import float_range, int_range, json_object

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_lab_arguments(ap, classifiers=True)
    ap.add_argument("--repeats", type=int_range(1), default=5,
                    help="perturbed refits besides the unperturbed one")
    ap.add_argument("--noise", type=float_range(0, lo_open=True), default=1e-5,
                    help="relative size of the perturbation of every training feature")
    ap.add_argument("--params", type=json_object, default=None,
                    help='JSON overrides of the parameters of the one classifier given, e.g. '
                         '\'{"tol": 1e-8, "max_iter": 50000, "C": 0.03}\' for logreg')
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="JSON report (atomic)")
    args = ap.parse_args(argv)
    if args.params:
        from wbc_classic.classical.classifiers import make_classifier

        if len(args.classifiers) != 1:
            ap.error("--params overrides one classifier's parameters: give one --classifiers")
        try:
            make_classifier(args.classifiers[0], params=args.params)
        except ValueError as exc:
            ap.error(f"--params: {exc}")
    (Xp, yp, _), cells = load_labs(ap, args)
    labs = {t: (c.X, c.y) for t, c in cells.items()}
    report: dict[str, Any] = {"noise": args.noise, "repeats": args.repeats, "seed": args.seed,
                              "params": args.params, "n_pbc": int(len(yp)), "classifiers": {}}
    for classifier in args.classifiers:
        rng = np.random.default_rng(args.seed)
        runs, iterations = [], []
        for r in range(args.repeats + 1):
            X = Xp if r == 0 else perturbed(Xp, args.noise, rng)
            acc, n_iter = scores(X, yp, labs, classifier=classifier, params=args.params)
            runs.append(acc)
            iterations.append(n_iter)
        summary = summarise(runs)
        report["classifiers"][classifier] = {"scores": summary, "iterations": iterations}
        counted = [i for i in iterations if i is not None]
        its = f"; solver iterations {min(counted)}-{max(counted)}" if counted else ""
        for target, by_adapt in summary.items():
            for adapt, s in by_adapt.items():
                print(f"{classifier:8s} {target:16s} {adapt:12s} {s['unperturbed']:.3f} "
                      f"(range {s['min']:.3f}-{s['max']:.3f}, spread {s['spread']:.3f} over "
                      f"{args.repeats + 1} fits{its})", flush=True)
    if args.out:
        atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
