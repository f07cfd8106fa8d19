"""Start-up of the command line: a command builds only its own options."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

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


def _module_command(*args: str, **kwargs) -> subprocess.CompletedProcess:
    root = str(Path(__file__).resolve().parents[2])
    return subprocess.run([sys.executable, "-m", "wbc_classic", *args], cwd=root,
                          capture_output=True, text=True, timeout=300, **kwargs)


def test_module_entry_point_flushes_its_output_and_keeps_the_exit_code(tmp_path):
    from wbc_classic import __version__

    out = _module_command("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"wbc-classic {__version__}"
    bad = _module_command("predict", "--model", str(tmp_path / "missing.skops"), "x.png",
                          "--out", str(tmp_path / "p.csv"))
    assert bad.returncode == 2 and "missing.skops" in bad.stderr


@pytest.mark.slow  # starts a worker process
def test_predict_through_the_module_entry_point_writes_everything(tmp_path):
    """console_main ends the process without the interpreter's teardown: the CSV, the
    summary and the exit code must all be there, and no worker left behind."""
    import cv2

    from wbc_classic.data.synthetic import make_cells

    images, _, _ = make_cells(6, classes=("lymphocyte", "neutrophil"), size=96, seed=3)
    paths = []
    for i, image in enumerate(images):
        paths.append(tmp_path / f"cell{i}.png")
        cv2.imwrite(str(paths[-1]), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    csv = tmp_path / "preds.csv"
    out = _module_command("predict", "--model", "default", "--n-jobs", "2", "--no-cache",
                          "--out", str(csv), *map(str, paths))
    assert out.returncode in (0, 1), out.stderr
    assert f"{len(paths)} images" in out.stdout
    assert len(csv.read_text().strip().splitlines()) == 1 + len(paths)
