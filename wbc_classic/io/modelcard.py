"""Model cards: what a saved model was trained on, how well it did, and what it is for.

One card format for both families. A card is a plain JSON-able dict (so it travels inside a
``.skops`` file's metadata and inside a deep checkpoint's JSON ``meta``, readable with
``torch.load(weights_only=True)``), and is also written beside the model file as Markdown
(``model.skops`` -> ``model.card.md``, ``best.pt`` -> ``best.card.md``).

Fields (:data:`CARD_FIELDS`):

``model``          file name, family (``classical`` or ``deep``), architecture / classifier
``classes``        class names in the model's output order
``training_data``  ``sources`` (folders), ``counts`` (images per class used for training)
``split``          scheme (``80/20`` ...), seed, number of train / validation / test images
``scores``         ``in_lab`` (held-out test part of the training data) and ``other_lab``
                   (another laboratory's cells) -- each ``{"data", "n", "accuracy", ...}`` or
                   None when not measured
``versions``       package versions at training time
``intended_use``   and ``limits``: short text
``created``        UTC date

This module lives in ``io`` and imports no other project module, so the classical model file,
the deep trainer and ``wbc-classic info`` all use it.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["CARD_FIELDS", "DEFAULT_INTENDED_USE", "DEFAULT_LIMITS", "card_markdown",
           "classical_card",
           "card_path", "make_card", "missing_fields", "write_card"]

CARD_FIELDS = ("model", "classes", "training_data", "split", "scores", "versions",
               "intended_use", "limits", "created")

DEFAULT_INTENDED_USE = (
    "Research and teaching: classifying single-leukocyte crops of May-Grunwald-Giemsa "
    "stained peripheral blood smears into the listed classes, and comparing methods. "
    "Not a medical device; not for diagnosis or treatment decisions.")

DEFAULT_LIMITS = (
    "Scores hold for images like the training data (same laboratory, stain, microscope, "
    "pixel scale and crop). Another laboratory's cells can score much lower: check the "
    "other-lab score, and re-measure on your own labelled cells before relying on it. "
    "Classes not in the list are forced into one of them. One cell per image is assumed.")


def make_card(*, family: str, architecture: str, classes: Sequence[str],
              file: str | os.PathLike[str] | None = None,
              sources: Sequence[str] = (), counts: Mapping[str, int] | None = None,
              split: Mapping[str, Any] | None = None,
              in_lab: Mapping[str, Any] | None = None,
              other_lab: Mapping[str, Any] | None = None,
              versions: Mapping[str, str] | None = None,
              intended_use: str = DEFAULT_INTENDED_USE, limits: str = DEFAULT_LIMITS,
              created: str | None = None) -> dict[str, Any]:
    """Build a model card (a JSON-able dict with every field of :data:`CARD_FIELDS`).

    Parameters
    ----------
    family : {"classical", "deep"}
    architecture : str
        Classifier name (``"logreg"``) or network (``"wbcnet"``), with details if useful.
    classes : sequence of str
        In the model's output order.
    file : path, optional
        The model file (its name is recorded).
    sources : sequence of str
        Training data folders.
    counts : mapping of str to int, optional
        Training images per class.
    split : mapping, optional
        ``scheme``, ``seed``, ``n_train``, ``n_val``, ``n_test`` (whatever is known).
    in_lab, other_lab : mapping, optional
        Scores: ``data`` (where), ``n``, ``accuracy`` and any other metric
        (``balanced_accuracy``, ``macro_f1``, per-class ``sensitivity``). None: not measured.
    versions : mapping of str to str, optional
    intended_use, limits : str
    created : str, optional
        ISO date (default: now, UTC).

    Returns
    -------
    dict
    """
    if family not in ("classical", "deep"):
        raise ValueError(f"family must be 'classical' or 'deep', got {family!r}")
    return _plain({
        "model": {"file": None if file is None else Path(file).name, "family": family,
                  "architecture": str(architecture)},
        "classes": [str(c) for c in classes],
        "training_data": {"sources": [str(s) for s in sources],
                          "counts": {str(k): int(v) for k, v in (counts or {}).items()}},
        "split": dict(split or {}),
        "scores": {"in_lab": None if in_lab is None else dict(in_lab),
                   "other_lab": None if other_lab is None else dict(other_lab)},
        "versions": {str(k): str(v) for k, v in (versions or {}).items()},
        "intended_use": intended_use,
        "limits": limits,
        "created": created or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    })


def classical_card(metadata: Mapping[str, Any], classes: Sequence[str],
                   versions: Mapping[str, str] | None = None,
                   file: str | os.PathLike[str] | None = None,
                   other_lab: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The card of a classical model from its ``metadata_`` (as ``wbc-classic train`` fills it).

    Parameters
    ----------
    metadata : mapping
        ``WBCModel.metadata_``: ``classifier``, ``data`` (``root``, ``counts``,
        ``split_scheme``, ``split_seed``, ``n_train``, ``n_test``), ``holdout`` (accuracy,
        sensitivity, ...), ``cv_accuracy``, ``augmentation``.
    classes, versions, file, other_lab
        As in :func:`make_card`.
    """
    data = metadata.get("data", {})
    split = {k: data[s] for k, s in (("scheme", "split_scheme"), ("seed", "split_seed"),
                                     ("n_train", "n_train"), ("n_test", "n_test")) if s in data}
    hold = metadata.get("holdout")
    in_lab = None
    if hold:
        in_lab = {"data": f"held-out {hold.get('scheme', '')} test part of "
                          f"{data.get('root', 'the training data')}".replace("  ", " "),
                  "n": hold.get("n"), "accuracy": hold.get("accuracy"),
                  "sensitivity": hold.get("sensitivity", {})}
    arch = str(metadata.get("classifier", "?"))
    if "cv_accuracy" in metadata:
        arch += f" (cross-validated accuracy {float(metadata['cv_accuracy']):.4f})"
    counts = dict(data.get("counts", {}))
    aug = metadata.get("augmentation")
    card = make_card(family="classical", architecture=arch, classes=classes, file=file,
                     sources=[data["root"]] if data.get("root") else [], counts=counts,
                     split=split, in_lab=in_lab, other_lab=other_lab, versions=versions)
    if aug:
        card["training_data"]["augmented_copies"] = aug.get("used")
        card["training_data"]["note"] = "counts include the augmented copies"
    return card


def _plain(obj: Any) -> Any:
    """JSON round trip: numpy scalars, tuples and paths become plain values."""
    return json.loads(json.dumps(obj, default=lambda o: o.item() if hasattr(o, "item")
                                 else str(o)))


def missing_fields(card: Mapping[str, Any]) -> list[str]:
    """The :data:`CARD_FIELDS` a card lacks (empty list: complete)."""
    return [f for f in CARD_FIELDS if f not in card]


def card_path(model_path: str | os.PathLike[str]) -> Path:
    """Where a model's card is written: ``model.skops`` -> ``model.card.md`` beside it."""
    p = Path(model_path)
    return p.with_name(f"{p.stem}.card.md")


def _score_line(score: Mapping[str, Any] | None) -> str:
    if not score:
        return "not measured"
    parts = [f"{k} {v:.4f}" for k, v in score.items()
             if isinstance(v, float) and k not in ("seed",)]
    where = score.get("data", "")
    n = score.get("n")
    head = f"{where}" + (f", {n} images" if n is not None else "")
    return f"{head}: {', '.join(parts)}" if parts else head


def card_markdown(card: Mapping[str, Any]) -> str:
    """The card as Markdown (the ``.card.md`` file and what ``wbc-classic info`` prints)."""
    model = card.get("model", {})
    data = card.get("training_data", {})
    split = card.get("split", {})
    scores = card.get("scores", {})
    lines = [f"# Model card: {model.get('file') or model.get('architecture', 'model')}", "",
             f"- **Family:** {model.get('family', '?')}",
             f"- **Architecture:** {model.get('architecture', '?')}",
             f"- **Classes ({len(card.get('classes', []))}):** "
             f"{', '.join(card.get('classes', []))}",
             f"- **Created:** {card.get('created', '?')}",
             *([f"- **Note:** {card['note']}"] if card.get("note") else []), "",
             "## Training data", ""]
    lines += [f"- Source: `{s}`" for s in data.get("sources", [])] or ["- Source: unknown"]
    counts = data.get("counts", {})
    if counts:
        lines += ["", "| class | training images |", "|---|---:|"]
        lines += [f"| {c} | {n} |" for c, n in counts.items()]
        lines.append(f"| **total** | {sum(counts.values())} |")
    if data.get("note"):
        lines += ["", f"({data['note']})"]
    lines += ["", "## Split", ""]
    lines.append("- " + (", ".join(f"{k} {v}" for k, v in split.items()) if split
                         else "none (trained on everything; no held-out score)"))
    lines += ["", "## Scores", "",
              f"- **In-lab** (held-out part of the training data): "
              f"{_score_line(scores.get('in_lab'))}",
              f"- **Other lab:** {_score_line(scores.get('other_lab'))}"]
    per_class = (scores.get("in_lab") or {}).get("sensitivity")
    if isinstance(per_class, Mapping) and per_class:
        lines += ["", "| class | in-lab sensitivity |", "|---|---:|"]
        lines += [f"| {c} | {float(v):.4f} |" for c, v in per_class.items()]
    versions = card.get("versions", {})
    lines += ["", "## Versions", ""]
    lines += [f"- {k} {v}" for k, v in versions.items()] or ["- unknown"]
    lines += ["", "## Intended use", "", str(card.get("intended_use", "")), "",
              "## Limits", "", str(card.get("limits", "")), ""]
    return "\n".join(lines)


def write_card(card: Mapping[str, Any], model_path: str | os.PathLike[str]) -> Path:
    """Write ``card_markdown(card)`` beside the model file, atomically; returns its path."""
    from wbc_classic.io.atomic import atomic_write_text

    path = card_path(model_path)
    atomic_write_text(path, card_markdown(card))
    return path
