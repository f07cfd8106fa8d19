"""``wbc-classic info``: show a saved model's card (training data, split, scores, versions, use).

Reads a classical ``.skops`` file (through the trust-checked loader,
:func:`wbc_classic.classical.modelfile.load`) or a deep checkpoint ``.pt`` (with
``torch.load(weights_only=True)``, which never runs code from the file; needs torch). The card
is the one stored inside the file (``metadata["card"]`` / the checkpoint's ``meta["card"]``);
for a file written before cards existed, one is rebuilt from what the file records, and its
unknown fields say so. Exit codes: 0 shown; 2 the file cannot be read.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from wbc_classic.io.options import EXIT_OK, EXIT_USAGE

HELP = "show a saved model's card (classical .skops or deep .pt checkpoint)"
EXAMPLE = "wbc-classic info model.skops   # or: wbc-classic info runs/wbcnet64/best.pt --json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``info`` options to ``parser``."""
    parser.add_argument("model", type=Path, metavar="MODEL",
                        help="a classical model (.skops) or a deep checkpoint (.pt)")
    parser.add_argument("--json", action="store_true",
                        help="print the machine-readable result (the card as JSON) to stdout")


def classical_model_card(path: Path) -> dict[str, Any]:
    """The card of a ``.skops`` model file (stored, or rebuilt from its metadata)."""
    from wbc_classic.classical.modelfile import load
    from wbc_classic.io.modelcard import classical_card

    model = load(path)
    meta = dict(model.metadata_)
    card = meta.get("card")
    if not card:
        card = classical_card(meta, [str(c) for c in model.classes_],
                              getattr(model, "versions_", None), path)
        card["note"] = "rebuilt by wbc-classic info: the file predates model cards"
    return card


def deep_model_card(path: Path) -> dict[str, Any]:
    """The card of a deep checkpoint, read with ``torch.load(weights_only=True)``."""
    try:
        import torch
    except ImportError:
        raise ValueError(f"{path}: reading a deep checkpoint needs torch "
                         "(pip install -e '.[deep]')") from None
    from wbc_classic.io.modelcard import make_card

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
        meta = json.loads(obj["meta"])
    except Exception as exc:  # corrupt, truncated, refused (would run code) or not ours
        raise ValueError(f"{path}: not a readable wbc-classic deep checkpoint "
                         f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
                         ) from None
    card = meta.get("card")
    if not card:
        split = meta.get("split") or {}
        card = make_card(family="deep", architecture=str(meta.get("model", "?")),
                         classes=meta.get("classes", []), file=path,
                         sources=[meta["data"]] if meta.get("data") else [], split=split)
        card["note"] = "rebuilt by wbc-classic info: the checkpoint predates model cards"
    return card


def run(args: argparse.Namespace) -> int:
    """Run ``wbc-classic info``; returns the exit code (0 shown, 2 unreadable)."""
    from wbc_classic.classical.modelfile import ModelFileError
    from wbc_classic.io.modelcard import card_markdown

    path = args.model
    if not path.is_file():
        print(f"error: {path}: no such model file", file=sys.stderr)
        return EXIT_USAGE
    try:
        if path.suffix.lower() in (".pt", ".pth"):
            card = deep_model_card(path)
        else:
            card = classical_model_card(path)
    except (ModelFileError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(json.dumps(card, indent=1) if args.json else card_markdown(card))
    return EXIT_OK
