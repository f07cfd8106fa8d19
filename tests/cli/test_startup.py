"""Start-up of the command line: a command builds only its own options."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from wbc_classic.cli import build_parser

_PROBE = """
import json, sys
sys.path.insert(0, {root!r})
from wbc_classic.cli import build_parser
args = build_parser(["predict"]).parse_args(["predict", "--model", "m.skops", "a.png",
                                           "--out", "p.csv", "--n-jobs", "2"])
print(json.dumps({{"n_jobs": args.n_jobs,
                   "heavy": sorted(m for m in ("sklearn", "features", "segmentation", "scipy",
                                               "skimage", "joblib") if m in sys.modules)}}))
"""


def test_predict_parser_imports_nothing_heavy():
    root = str(Path(__file__).resolve().parents[2])
    out = subprocess.run([sys.executable, "-c", _PROBE.format(root=root)], check=True,
                         capture_output=True, text=True, timeout=120).stdout
    assert json.loads(out) == {"n_jobs": 2, "heavy": []}


def test_full_parser_still_has_every_commands_options():
    parser = build_parser()
    args = parser.parse_args(["train", "--data", "d", "--out", "m.skops"])
    assert args.command == "train"
    only_predict = build_parser(["predict"])
    assert only_predict.parse_args(["predict", "--model", "m", "x", "--out", "o.csv"]).n_jobs == 1


def test_version_and_help_build_no_options(capsys):
    from wbc_classic import __version__
    from wbc_classic.cli import main

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"wbc-classic {__version__}"
    assert main([]) == 2  # no command: the overview, listing every command
    assert "predict" in capsys.readouterr().out
