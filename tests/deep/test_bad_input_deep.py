"""Bad input for ``python -m deep.predict|train|export`` (issue 14).

The same hostile files as ``tests/cli/test_bad_input.py`` (``tests/io/bad_files.py``), bad
flag values, a device this machine lacks, damaged checkpoints, unwritable outputs and the
stale temporary file of a killed cache build.  Exit codes as in the README: 0 done, 1 some
inputs failed and were reported, 2 usage or configuration error.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from tests.io.bad_files import (  # noqa: E402
    EXPECT,
    REASONS,
    copy_bad_files_into,
    line_naming,
    read_rows,
    write_bad_files,
)

pytestmark = pytest.mark.torch
CLASSES = ("eosinophil", "lymphocyte", "neutrophil")
UNREADABLE = [k for k, v in EXPECT.items() if v == "error"]


_rows = read_rows
_line_naming = line_naming


def _call(main, argv):
    try:
        return main(argv)
    except SystemExit as exc:  # argparse's usage errors
        return exc.code


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    return write_bad_files(tmp_path_factory.mktemp("bad"))


@pytest.fixture(scope="module")
def data_with_bad(tmp_path_factory, bad):
    """3 classes x 5 synthetic cells (< 50 images) plus one bad file of every unreadable kind."""
    from wbc_classic.data.synthetic_sets import write_class_folders

    data = write_class_folders(tmp_path_factory.mktemp("d") / "data", 5, classes=CLASSES,
                               size=40, seed=0)
    copy_bad_files_into(data, bad, CLASSES)
    return data


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_with_bad):
    """``python -m deep.train`` on the set with bad files: a tiny checkpoint, 1 epoch."""
    from deep.train import main

    root = tmp_path_factory.mktemp("run")
    out = root / "run"
    rc = main(["--data", str(data_with_bad), "--out", str(out), "--model", "smallcnn",
               "--model-kwargs", '{"width": 0.25}', "--img-size", "32", "--epochs", "1",
               "--batch-size", "8", "--cache-dir", str(root / "cache"), "--threads", "1",
               "--stain", "reinhard", "--no-progress", "--no-tta"])
    return rc, out, root


def test_train_skips_reports_and_counts_unreadable_images(trained):
    rc, out, _ = trained
    assert rc == 1  # done, some inputs failed and were reported
    result = json.loads((out / "result.json").read_text())
    assert result["n_skipped"] == len(UNREADABLE) - 1
    assert set(map(lambda p: Path(p).name, result["skipped"])) == {
        f"{n}" for n in ("zero.png", "truncated.png", "random.jpg", "notes.png", "bomb.png",
                         "loop.png")}
    assert (out / "best.pt").is_file()


def test_train_prints_one_line_per_skipped_image(data_with_bad, tmp_path, capsys, bad):
    from deep.train import main

    rc = main(["--data", str(data_with_bad), "--out", str(tmp_path / "r"), "--model",
               "smallcnn", "--model-kwargs", '{"width": 0.25}', "--img-size", "32",
               "--epochs", "1", "--cache-dir", str(tmp_path / "c"), "--threads", "1",
               "--no-progress", "--no-tta"])
    err = capsys.readouterr().err
    assert rc == 1
    for kind in UNREADABLE:
        if kind != "missing":
            _line_naming(err, bad[kind].name, REASONS[kind])


@pytest.mark.parametrize("args, needle", [
    (["--epochs", "0"], "--epochs"), (["--batch-size", "0"], "--batch-size"),
    (["--img-size", "4"], "--img-size"), (["--lr", "0"], "--lr"),
    (["--label-smoothing", "1"], "--label-smoothing"), (["--val-fraction", "2"], "--val-fraction"),
    (["--model-kwargs", "{width: 1}"], "--model-kwargs"), (["--augment", "[1]"], "--augment"),
    (["--split", "50/50/50"], "--split"), (["--threads", "0"], "--threads"),
    (["--max-minutes", "0"], "--max-minutes"), (["--device", "banana"], "--device")])
def test_train_bad_flag_values(args, needle, data_with_bad, tmp_path, capsys):
    from deep.train import main

    rc = _call(main, ["--data", str(data_with_bad), "--out", str(tmp_path / "r"), *args])
    err = capsys.readouterr().err
    assert rc == 2 and needle in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_one_line(data_with_bad, trained, bad, tmp_path, capsys):
    from deep.predict import main as predict
    from deep.train import main as train

    assert train(["--data", str(data_with_bad), "--out", str(tmp_path / "r"),
                  "--device", "cuda"]) == 2
    line = capsys.readouterr().err.strip()
    assert line.startswith("error: --device cuda: no CUDA GPU") and "\n" not in line
    assert predict(["--checkpoint", str(trained[1] / "best.pt"), str(bad["blank"]),
                    "--out", str(tmp_path / "p.csv"), "--device", "cuda"]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err


def test_train_output_is_a_file(data_with_bad, tmp_path, capsys):
    from deep.train import main

    f = tmp_path / "out.txt"
    f.write_text("x")
    assert main(["--data", str(data_with_bad), "--out", str(f)]) == 2
    _line_naming(capsys.readouterr().err, f.name, ("existing file",))


def test_predict_every_bad_kind(trained, bad, tmp_path, capsys):
    from deep.predict import main

    ckpt = trained[1] / "best.pt"
    out = tmp_path / "p.csv"
    rc = main(["--checkpoint", str(ckpt), *(str(bad[k]) for k in EXPECT), "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 1
    rows = {Path(r["path"]).name: r for r in _rows(out)}
    assert len(rows) == len(EXPECT)
    for kind, expect in EXPECT.items():
        r = rows[bad[kind].name]
        if expect == "error":
            assert r["status"] == "error" and bad[kind].name in r["error"], (kind, r)
            _line_naming(err, bad[kind].name, REASONS[kind])
        elif expect == "no_cell":
            assert r["status"] == "no_cell" and r["predicted_class"] == "", (kind, r)
            assert all(r[f"p_{c}"] == "" for c in CLASSES)
            _line_naming(err, bad[kind].name, ("no leukocyte",))
        else:
            assert r["status"] in ("ok", "no_cell") and "cannot read" not in r["error"]
    ok = [r for r in rows.values() if r["status"] == "ok"]
    assert ok and all(r["predicted_class"] in CLASSES for r in ok)


def test_predict_contrast_check_is_cheap_and_blank_only(trained, bad, tmp_path):
    from deep.predict import main

    out = tmp_path / "p.csv"
    kinds = ["blank", "black", "no_leukocyte", "unicode_space_name"]
    assert main(["--checkpoint", str(trained[1] / "best.pt"), *(str(bad[k]) for k in kinds),
                 "--out", str(out), "--cell-check", "contrast"]) == 1
    status = {Path(r["path"]).name: r["status"] for r in _rows(out)}
    assert status == {"blank.png": "no_cell", "black.png": "no_cell", "rbc_only.png": "ok",
                      bad["unicode_space_name"].name: "ok"}


@pytest.mark.parametrize("args, needle", [
    (["--batch-size", "0"], "--batch-size"), (["--batch-size", "x"], "--batch-size"),
    (["--cell-check", "maybe"], "--cell-check"), (["--device", "banana"], "--device")])
def test_predict_bad_flag_values(trained, bad, tmp_path, capsys, args, needle):
    from deep.predict import main

    out = tmp_path / "p.csv"
    rc = _call(main, ["--checkpoint", str(trained[1] / "best.pt"), str(bad["blank"]),
                      "--out", str(out), *args])
    err = capsys.readouterr().err
    assert rc == 2 and needle in err and "Traceback" not in err and not out.exists()


def test_predict_output_and_inputs(trained, bad, tmp_path, capsys):
    from deep.predict import main

    ckpt = str(trained[1] / "best.pt")
    assert main(["--checkpoint", ckpt, str(bad["blank"]), "--out", str(tmp_path)]) == 2
    _line_naming(capsys.readouterr().err, tmp_path.name, ("existing folder",))
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["--checkpoint", ckpt, str(empty), "--out", str(tmp_path / "p.csv")]) == 2
    _line_naming(capsys.readouterr().err, "empty", ("no image",))


def _damaged(src: Path, dst: Path, **changes) -> Path:
    from deep.checkpoint import load_checkpoint

    ck = load_checkpoint(src)
    meta = dict(ck["meta"])
    for k, v in changes.items():
        if v is None:
            meta.pop(k, None)
        else:
            meta[k] = v
    torch.save({"format": "wbc-deep-checkpoint", "version": 1, "meta": json.dumps(meta),
                "state_dict": ck["state_dict"], "optimizer": None, "extra": "{}"}, dst)
    return dst


@pytest.mark.parametrize("changes, words", [
    ({"classes": None}, ("lacks", "'classes'")),
    ({"classes": "lymphocyte"}, ("invalid 'classes'",)),
    ({"model_kwargs": {"no_such_option": 3}}, ("model_kwargs",)),
    ({"model_kwargs": [1, 2]}, ("model_kwargs",)),
    ({"img_size": "big"}, ("img_size",))])
def test_damaged_checkpoint_is_one_line_naming_the_file(trained, bad, tmp_path, capsys,
                                                        changes, words):
    from deep.export import main as export
    from deep.predict import main as predict

    ck = _damaged(trained[1] / "best.pt", tmp_path / "damaged.pt", **changes)
    assert predict(["--checkpoint", str(ck), str(bad["blank"]),
                    "--out", str(tmp_path / "p.csv")]) == 2
    err = capsys.readouterr().err
    line = _line_naming(err, "damaged.pt", tuple(w.lower() for w in words))
    assert line.startswith("error:") and len(err.strip().splitlines()) == 1
    assert export(["--checkpoint", str(ck), "--out", str(tmp_path / "m.onnx")]) == 2
    _line_naming(capsys.readouterr().err, "damaged.pt")


@pytest.mark.parametrize("args, needle", [(["--opset", "5"], "--opset"),
                                          (["--opset", "x"], "--opset")])
def test_export_bad_flag_values(trained, tmp_path, capsys, args, needle):
    from deep.export import main

    rc = _call(main, ["--checkpoint", str(trained[1] / "best.pt"),
                      "--out", str(tmp_path / "m.onnx"), *args])
    assert rc == 2 and needle in capsys.readouterr().err


def test_export_output_and_missing_checkpoint(trained, tmp_path, capsys):
    from deep.export import main

    assert main(["--checkpoint", str(trained[1] / "best.pt"), "--out", str(tmp_path)]) == 2
    _line_naming(capsys.readouterr().err, tmp_path.name, ("existing folder",))
    assert main(["--checkpoint", str(tmp_path / "none.pt"), "--out",
                 str(tmp_path / "m.onnx")]) == 2
    _line_naming(capsys.readouterr().err, "none.pt", ("not found",))


def test_killed_cache_build_leaves_no_temporary_behind(tmp_path, bad):
    import subprocess
    import sys

    from deep.cache import build_cache
    from wbc_classic.io.atomic import _HOST

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # a pid that no longer runs: the writer was killed
    stale = tmp_path / f".images_32px_0123.{_HOST}-{proc.pid}.k1ll3d00.tmp.npy"
    stale.write_bytes(b"\0" * 4096)
    build_cache([bad["unicode_space_name"]], 32, cache_dir=tmp_path)
    assert not stale.exists()
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]
