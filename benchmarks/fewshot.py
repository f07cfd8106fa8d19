"""Few-shot learning curve: PBC plus k labelled cells per class of the target laboratory.

Protocol (issue 12 item 4): for each target lab (``jtsc_seg``, ``cellavision_seg``), each k in
``--ks`` (default 0, 5, 10, 25) and each seed in ``--seeds`` (default 0-4), take
``min(k, max(n_c - 1, 1))`` labelled target cells of every class ``c`` (a seeded pick;
jtsc_seg has one basophil, which is then always in the training part), fit a
:class:`wbc_classic.classical.model.WBCModel` on all PBC 5-class cells plus those target cells
(weight ``--target-weight`` each, PBC cells weight 1), and score it on the target's remaining
cells. ``--adapt standardize coral class-means auto`` adds rows where the target's cells
(all of them, *unlabelled*: the LOLO protocol with unlabelled target images allowed) are
first aligned to PBC's features by a PBC-only model (``wbc-classic adapt --method``:
:meth:`~wbc_classic.classical.model.WBCModel.adapt`'s alignment), and the k labelled cells
join the training set aligned; ``--adapt align`` adds rows where the k labelled cells
themselves align their lab, class by class (``wbc-classic train --align LAB``:
:meth:`~wbc_classic.classical.model.WBCModel.fit_features` with ``align_rows``, the map
kept only when a cross-validation on the k cells says it helps). Reported: mean accuracy
over seeds and a 95 % interval (t-interval over seeds; the per-seed numbers are in the
JSON), per k and target.

The features are extracted once per image through the model's feature engine (cached), and
every configuration fits with :meth:`~wbc_classic.classical.model.WBCModel.fit_features`
(``sample_weight`` = the source weights), as ``wbc-classic train --data pbc=...:1 --data
jtsc=...:W --per-class jtsc=K`` does from images.

    python -m benchmarks.fewshot --data ../shared/data --classifier svm \
        --out /work/runs/shift/fewshot.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from benchmarks.labcells import add_lab_arguments, load_labs


def pick_per_class(y: np.ndarray, k: int, n_classes: int, seed: int) -> np.ndarray:
    """Indices of ``min(k, max(n_c - 1, 1))`` rows of each class, a seeded pick (sorted)."""
    rng = np.random.default_rng(seed)
    out = []
    for c in range(n_classes):
        rows = np.flatnonzero(y == c)
        take = min(k, max(rows.size - 1, 1)) if rows.size else 0
        out.append(rng.permutation(rows)[:take])
    return np.sort(np.concatenate(out)).astype(np.int64) if out else np.zeros(0, np.int64)


def interval(values: list[float]) -> tuple[float, float, float]:
    """Mean and 95 % t-interval of per-seed values (accuracies: clipped to [0, 1])."""
    from scipy import stats

    v = np.asarray(values, dtype=float)
    m = float(v.mean())
    if v.size < 2:
        return m, m, m
    h = float(stats.t.ppf(0.975, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size))
    return m, max(m - h, 0.0), min(m + h, 1.0)


def curve_point(Xp: np.ndarray, yp: np.ndarray, Xt: np.ndarray, yt: np.ndarray, *, k: int,
                weight: float, seeds: list[int], classifier: str, n_jobs: int = 1,
                align: bool = False) -> dict:
    """Accuracy on the target's remaining cells of models fitted on PBC + k target cells per
    class (weight ``weight``), one per seed (one model for k = 0). ``align``: the target
    cells are the model's ``align_rows`` (``wbc-classic train --align``: the class-mean map,
    kept when its cross-validation on the k cells says so)."""
    from wbc_classic.classical.model import WBCModel
    from wbc_classic.data.labels import PBC5_CLASSES

    accs, n_test, applied = [], len(yt), []
    for seed in seeds:
        pick = pick_per_class(yt, k, len(PBC5_CLASSES), seed) if k else np.zeros(0, np.int64)
        rest = np.setdiff1d(np.arange(len(yt)), pick)
        model = WBCModel(classifier, classes=PBC5_CLASSES, cv=0, n_jobs=n_jobs,
                         seed=seed).fit_features(
            np.concatenate([Xp, Xt[pick]]), np.concatenate([yp, yt[pick]]),
            sample_weight=np.r_[np.ones(len(yp)), np.full(pick.size, weight)],
            align_rows=np.r_[np.zeros(len(yp), bool), np.ones(pick.size, bool)]
            if align else None)
        pred = model.predict_proba_features(Xt[rest]).argmax(axis=1)
        accs.append(float((pred == yt[rest]).mean()))
        if align:
            applied.append(bool(model.metadata_["adaptation"]["applied"]))
        n_test = int(rest.size)
        if k == 0:
            break  # no pick: every seed gives the same model
    m, lo, hi = interval(accs)
    return {"k": k, "target_weight": weight, "classifier": classifier,
            "seeds": seeds[:len(accs)], "accuracy": accs, "mean": m, "ci95": [lo, hi],
            "n_test": n_test, **({"map_applied": applied} if align else {})}


def main(argv: list[str] | None = None) -> int:
    from wbc_classic.classical.adapt import ADAPT_METHODS
    from wbc_classic.classical.model import WBCModel
    from wbc_classic.data.labels import PBC5_CLASSES
    from wbc_classic.io.atomic import atomic_write_text

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_lab_arguments(ap)
    ap.add_argument("--classifier", default="svm")
    ap.add_argument("--ks", type=int, nargs="+", default=[0, 5, 10, 25])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--target-weight", type=float, nargs="+", default=[1.0, 20.0])
    ap.add_argument("--adapt", nargs="+", default=["none", "standardize"],
                    choices=["none", *ADAPT_METHODS, "align"],
                    help="none; standardize / coral / class-means / auto: the target's "
                         "unlabelled cells aligned first (wbc-classic adapt --method); "
                         "align: the k labelled cells align the lab (train --align)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)

    (Xp, yp, _), labs = load_labs(ap, args)
    results: list[dict] = []
    for target in args.targets:
        raw, yt, _ = labs[target]
        for adapt in args.adapt:
            Xt, chosen = raw, None
            if adapt not in ("none", "align"):
                pbc_only = WBCModel(args.classifier, classes=PBC5_CLASSES, cv=0,
                                    n_jobs=args.n_jobs).fit_features(Xp, yp)
                adapted = pbc_only.adapt_features(raw, method=adapt)
                chosen = adapted.metadata_["adaptation"].get("chosen")
                Xt = adapted.aligned_features(raw)
            for wi, w in enumerate(args.target_weight):
                # k = 0 does not depend on the weight: once per target and adaptation
                # (align needs labelled target cells: no k = 0)
                for k in (args.ks if wi == 0 and adapt != "align"
                          else [k for k in args.ks if k]):
                    row = curve_point(Xp, yp, Xt, yt, k=k, weight=w, seeds=args.seeds,
                                      classifier=args.classifier, n_jobs=args.n_jobs,
                                      align=adapt == "align")
                    row.update(target=target, adapt=adapt,
                               **({"auto_chose": chosen} if chosen else {}))
                    results.append(row)
                    lo, hi = row["ci95"]
                    kept = row.get("map_applied")
                    print(f"{target:16s} adapt={adapt:11s} w={w:<5g} k={k:3d}  acc "
                          f"{row['mean']:.3f} [{lo:.3f}, {hi:.3f}] ({len(row['accuracy'])} "
                          f"seeds, ~{row['n_test']} test cells)"
                          + (f", map kept in {sum(kept)} of {len(kept)}" if kept else "")
                          + (f", auto chose {chosen}" if chosen else ""),
                          flush=True)
    if args.out:
        atomic_write_text(args.out, json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
