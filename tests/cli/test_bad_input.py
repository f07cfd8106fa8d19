"""Bad input for every ``wbc-classic`` command and ``python -m benchmarks.run`` (issue 14).

Each command meets zero-byte, truncated, random-bytes and text-named-as-image files; grey,
RGBA, 16-bit and float TIFFs; 8x8, decompression-bomb, blank and no-leukocyte images; a
missing path, an empty folder, an empty class folder; unicode and space names and a
symlink loop; a read-only or existing-folder output; and bad flag values.  Every test asserts
one clear line naming the file and the problem, the documented exit code (README "Exit
codes": 0 done, 1 some inputs failed and were reported, 2 usage or configuration error)
and that no output is lost (the other rows are still written).

Commands run in-process through ``main(argv)``; one tiny model is trained per module.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.io.bad_files import (
    EXPECT,
    REASONS,
    cell_image,
    copy_bad_files_into,
    line_naming,
    read_rows,
    write_bad_files,
)
from wbc_classic.cli import main

CLASSES = ("eosinophil", "lymphocyte", "neutrophil")
UNREADABLE = [k for k, v in EXPECT.items() if v == "error"]
NO_CELL = [k for k, v in EXPECT.items() if v == "no_cell"]
ODD_BUT_VALID = [k for k, v in EXPECT.items() if v == "read"]
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def _rows(path: Path) -> list[dict[str, str]]:
    return read_rows(path)


def _line_naming(err: str, path: Path, words: tuple[str, ...] = ()) -> str:
    """The one stderr line that names ``path`` (and one of ``words``)."""
    return line_naming(err, path.name, words)


@pytest.fixture(scope="module")
def bad(tmp_path_factory) -> dict[str, Path]:
    return write_bad_files(tmp_path_factory.mktemp("bad"))


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("good")
    paths = []
    for i, label in enumerate(CLASSES):
        p = folder / f"{label}_{i}.png"
        Image.fromarray(cell_image(i, label=label)).save(p)
        paths.append(p)
    return paths


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """A logreg model trained by the CLI on 3 synthetic classes x 6 images."""
    from wbc_classic.data.synthetic_sets import write_class_folders

    root = tmp_path_factory.mktemp("model")
    data = write_class_folders(root / "data", 6, classes=CLASSES, size=64, seed=0)
    out = root / "m.skops"
    assert main(["train", "--data", str(data), "--classifier", "logreg", "--out", str(out),
                 "--cache-dir", str(root / "cache"), "--cv", "0"]) == 0
    return out


@pytest.fixture(scope="module")
def data_with_bad(tmp_path_factory, bad) -> Path:
    """Class folders (4 images each, < 50 in all) with one bad file of every unreadable kind."""
    from wbc_classic.data.synthetic_sets import write_class_folders

    root = tmp_path_factory.mktemp("train")
    data = write_class_folders(root / "data", 4, classes=CLASSES, size=64, seed=1)
    copy_bad_files_into(data, bad, CLASSES)
    return data


# ------------------------------------------------------------------------------- predict

def test_predict_batch_of_every_bad_kind(model, bad, good, tmp_path, capsys):
    out = tmp_path / "p.csv"
    inputs = [*map(str, good), *(str(bad[k]) for k in EXPECT)]
    assert main(["predict", "--model", str(model), *inputs, "--out", str(out)]) == 1
    err = capsys.readouterr().err
    rows = {Path(r["path"]).name: r for r in _rows(out)}
    assert len(rows) == len(inputs)  # no lost row
    for p in good:
        assert rows[p.name]["status"] == "ok" and rows[p.name]["predicted_class"] in CLASSES
    for kind in UNREADABLE:
        r = rows[bad[kind].name]
        assert r["status"] == "error" and bad[kind].name in r["error"], kind
        assert r["predicted_class"] == "" and r[f"p_{CLASSES[0]}"] == ""
        _line_naming(err, bad[kind], REASONS[kind])
    for kind in NO_CELL:
        r = rows[bad[kind].name]
        assert r["status"] == "no_cell", (kind, r)
        assert r["predicted_class"] == "" and all(r[f"p_{c}"] == "" for c in CLASSES)
        assert "no leukocyte" in r["error"]
        _line_naming(err, bad[kind], ("no leukocyte",))
    for kind in ODD_BUT_VALID:
        r = rows[bad[kind].name]
        assert r["status"] in ("ok", "no_cell") and "cannot read" not in r["error"], (kind, r)


def test_predict_all_good_is_exit_0_and_has_progress(model, good, tmp_path, capsys):
    assert main(["predict", "--model", str(model), *map(str, good),
                 "--out", str(tmp_path / "p.csv")]) == 0
    assert "predict: 3/3 img" in capsys.readouterr().err  # a log line, not a tty bar


@pytest.mark.parametrize("argv_tail, needle", [
    (["--n-jobs", "0"], "--n-jobs"),
    (["--n-jobs", "many"], "--n-jobs"),
    (["--um-per-pixel", "0"], "--um-per-pixel"),
    (["--um-per-pixel", "nan"], "--um-per-pixel"),
])
def test_predict_bad_flag_values(model, good, tmp_path, capsys, argv_tail, needle):
    out = tmp_path / "p.csv"
    assert main(["predict", "--model", str(model), str(good[0]), "--out", str(out),
                 *argv_tail]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err and not out.exists()


def test_predict_output_checked_before_work(model, good, tmp_path, capsys):
    folder = tmp_path / "existing"
    folder.mkdir()
    assert main(["predict", "--model", str(model), str(good[0]), "--out", str(folder)]) == 2
    line = _line_naming(capsys.readouterr().err, folder, ("existing folder",))
    assert line.startswith("error:")
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    assert main(["predict", "--model", str(model), str(good[0]),
                 "--out", str(blocker / "p.csv")]) == 2
    _line_naming(capsys.readouterr().err, blocker, ("not a folder",))


@pytest.mark.skipif(IS_ROOT, reason="root writes into read-only folders")
def test_predict_read_only_output_folder(model, good, tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        assert main(["predict", "--model", str(model), str(good[0]),
                     "--out", str(ro / "p.csv")]) == 2
        _line_naming(capsys.readouterr().err, ro, ("not writable",))
    finally:
        ro.chmod(0o755)


def test_predict_missing_model_empty_folder_missing_path(model, bad, tmp_path, capsys):
    out = tmp_path / "p.csv"
    assert main(["predict", "--model", str(tmp_path / "nope.skops"), str(bad["blank"]),
                 "--out", str(out)]) == 2
    _line_naming(capsys.readouterr().err, tmp_path / "nope.skops")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["predict", "--model", str(model), str(empty), "--out", str(out)]) == 2
    _line_naming(capsys.readouterr().err, empty, ("no image",))
    assert main(["predict", "--model", str(model), str(bad["missing"]), "--out", str(out)]) == 1
    assert _rows(out)[0]["status"] == "error"
    _line_naming(capsys.readouterr().err, bad["missing"], ("not found",))


def test_predict_folder_with_a_symlink_loop_lists_it(model, bad, tmp_path, capsys):
    folder = tmp_path / "cells"
    folder.mkdir()
    shutil.copyfile(bad["unicode_space_name"], folder / bad["unicode_space_name"].name)
    os.symlink("loop.png", folder / "loop.png")
    out = tmp_path / "p.csv"
    assert main(["predict", "--model", str(model), str(folder), "--out", str(out)]) == 1
    rows = {Path(r["path"]).name: r["status"] for r in _rows(out)}
    assert rows == {bad["unicode_space_name"].name: "ok", "loop.png": "error"}


# ------------------------------------------------------------------------------- segment

@pytest.mark.parametrize("kind", list(EXPECT))
def test_segment_every_kind(kind, bad, tmp_path, capsys):
    mask = tmp_path / "mask.png"
    rc = main(["segment", str(bad[kind]), "--out", str(mask)])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if EXPECT[kind] == "error":
        assert rc == 1 and not mask.exists()
        line = _line_naming(err, bad[kind], REASONS[kind])
        assert line.startswith("error:") and len(err.strip().splitlines()) == 1
    elif EXPECT[kind] == "no_cell":
        assert rc == 1 and mask.exists()  # the files are still written, showing why
        _line_naming(err, bad[kind], ("no leukocyte",))
    else:
        assert rc in (0, 1) and mask.exists() and "cannot read" not in err


@pytest.mark.parametrize("flag", [["--dpi", "0"], ["--dpi", "5000"], ["--dpi", "x"],
                                  ["--channel", "nope"]])
def test_segment_bad_flag_values(flag, good, tmp_path, capsys):
    assert main(["segment", str(good[0]), "--steps", str(tmp_path / "s.png"), *flag]) == 2
    err = capsys.readouterr().err
    assert flag[0] in err and "Traceback" not in err
    assert not (tmp_path / "s.png").exists()


def test_segment_output_is_an_existing_folder(good, tmp_path, capsys):
    assert main(["segment", str(good[0]), "--out", str(tmp_path)]) == 2
    _line_naming(capsys.readouterr().err, tmp_path, ("existing folder",))


# ------------------------------------------------------------------------------- eval-seg

@pytest.fixture(scope="module")
def seg_set(tmp_path_factory, bad) -> Path:
    from wbc_classic.data.synthetic_sets import write_segmentation_set

    root = write_segmentation_set(tmp_path_factory.mktemp("seg") / "set", 4, seed=0, size=96)
    images = sorted((root / "images").iterdir())
    shutil.copyfile(bad["truncated"], images[0])
    images[1].write_bytes(b"")
    return root


def test_eval_seg_skips_and_lists_bad_images(seg_set, tmp_path, capsys):
    js = tmp_path / "seg.json"
    assert main(["eval-seg", "--data", str(seg_set), "--json", str(js), "--quiet"]) == 1
    err = capsys.readouterr().err
    images = sorted((seg_set / "images").iterdir())
    _line_naming(err, images[0], ("truncated", "corrupt"))
    _line_naming(err, images[1], ("empty",))
    doc = json.loads(js.read_text())
    assert doc["summary"]["n_images"] == 2 and len(doc["failures"]) == 2


@pytest.mark.parametrize("args, needle", [
    (["--min-iou", "0"], "--min-iou"), (["--min-iou", "2"], "--min-iou"),
    (["--limit", "0"], "--limit"), (["--rim-max-od", "-1"], "--rim-max-od")])
def test_eval_seg_bad_flag_values(seg_set, capsys, args, needle):
    assert main(["eval-seg", "--data", str(seg_set), *args]) == 2
    assert needle in capsys.readouterr().err


def test_eval_seg_missing_empty_folder_and_bad_json(seg_set, tmp_path, capsys):
    assert main(["eval-seg", "--data", str(tmp_path / "nope")]) == 2
    assert "nope" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["eval-seg", "--data", str(empty)]) == 2
    assert "empty" in capsys.readouterr().err
    assert main(["eval-seg", "--data", str(seg_set), "--json", str(tmp_path)]) == 2
    _line_naming(capsys.readouterr().err, tmp_path, ("existing folder",))


# ------------------------------------------------------------------------------- train

def test_train_skips_reports_and_counts_bad_images(data_with_bad, bad, tmp_path, capsys):
    # fewer than 50 images with bad ones: the seeded stain and scale samples meet them too
    out = tmp_path / "m.skops"
    rc = main(["train", "--data", str(data_with_bad), "--classifier", "logreg", "--cv", "0",
               "--stain", "reinhard", "--out", str(out), "--cache-dir", str(tmp_path / "c")])
    err = capsys.readouterr().err
    assert rc == 1 and out.is_file(), err
    for kind in UNREADABLE:
        if kind != "missing":
            _line_naming(err, bad[kind], REASONS[kind])
    from wbc_classic.classical.modelfile import load

    assert load(out).metadata_["data"]["n_skipped"] == len(UNREADABLE) - 1


@pytest.mark.parametrize("args, needle", [
    (["--test-split", "50/50/50"], "--test-split"),
    (["--cv", "1"], "--cv"), (["--n-jobs", "0"], "--n-jobs"), (["--k", "0"], "--k"),
    (["--augment-copies", "-1"], "--augment-copies"),
    (["--augment-strength", "0"], "--augment-strength"), (["--seed", "-3"], "--seed")])
def test_train_bad_flag_values(args, needle, good, tmp_path, capsys):
    out = tmp_path / "m.skops"
    assert main(["train", "--data", str(good[0].parent), "--out", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err and not out.exists()


def test_train_one_image_class_cannot_be_split(tmp_path, capsys):
    from wbc_classic.data.synthetic_sets import write_class_folders

    data = write_class_folders(tmp_path / "d", 4, classes=CLASSES, size=64, seed=2)
    for p in sorted((data / CLASSES[0]).iterdir())[1:]:
        p.unlink()
    assert main(["train", "--data", str(data), "--test-split", "80/20", "--cv", "0",
                 "--out", str(tmp_path / "m.skops"), "--cache-dir", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert "--test-split" in err and "only 1 member" in err and "Traceback" not in err


def test_train_missing_data_empty_class_folder_and_bad_out(tmp_path, capsys):
    out = tmp_path / "m.skops"
    assert main(["train", "--data", str(tmp_path / "nope"), "--out", str(out)]) == 2
    assert "nope" in capsys.readouterr().err
    data = tmp_path / "d"
    (data / "a").mkdir(parents=True)
    (data / "b").mkdir()
    Image.fromarray(cell_image()).save(data / "a" / "x.png")
    assert main(["train", "--data", str(data), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "'b'" in err and "no image" in err
    assert main(["train", "--data", str(data), "--out", str(tmp_path)]) == 2
    _line_naming(capsys.readouterr().err, tmp_path, ("existing folder",))


def test_train_unwritable_cache_dir_falls_back_with_a_warning(tmp_path, capsys):
    blocker = tmp_path / "cachefile"
    blocker.write_text("not a folder")
    out = tmp_path / "m.skops"
    rc = main(["train", "--data", str(_three_class_set(tmp_path)), "--classifier", "logreg",
               "--cv", "0", "--out", str(out), "--cache-dir", str(blocker)])
    err = capsys.readouterr().err
    assert rc == 0 and out.is_file()
    line = _line_naming(err, blocker, ("cannot be used",))
    assert "temporary cache" in line


def _three_class_set(tmp_path: Path) -> Path:
    from wbc_classic.data.synthetic_sets import write_class_folders

    return write_class_folders(tmp_path / "three", 4, classes=CLASSES, size=64, seed=3)


def test_cache_location_rule(tmp_path, monkeypatch):
    from wbc_classic.io.cachedir import default_cache_root, resolve_cache_dir

    monkeypatch.setenv("WBC_CACHE_DIR", str(tmp_path / "env"))
    assert resolve_cache_dir(None) == tmp_path / "env"
    assert resolve_cache_dir(tmp_path / "flag") == tmp_path / "flag"
    monkeypatch.delenv("WBC_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_root() == tmp_path / "xdg" / "wbc_classic"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_root() == Path.home() / ".cache" / "wbc_classic"
    assert Path.cwd() not in default_cache_root().parents  # never the current folder


def test_train_default_cache_is_not_the_current_folder(tmp_path, monkeypatch, capsys):
    data = _three_class_set(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WBC_CACHE_DIR", str(tmp_path / "shared-cache"))
    assert main(["train", "--data", str(data), "--classifier", "logreg", "--cv", "0",
                 "--out", str(tmp_path / "m.skops")]) == 0
    assert not (tmp_path / ".wbc_cache").exists()
    assert any((tmp_path / "shared-cache").rglob("*.npz"))


# ------------------------------------------------------------------------------- count

@pytest.fixture(scope="module")
def fields(tmp_path_factory) -> list[Path]:
    from wbc_classic.data.synthetic import make_smear

    folder = tmp_path_factory.mktemp("fields")
    paths = []
    for i in range(2):
        p = folder / f"field {i}.png"
        Image.fromarray(make_smear(shape=(160, 200), n_leukocytes=1, seed=i).image).save(p)
        paths.append(p)
    return paths


def test_count_every_bad_kind(model, fields, bad, tmp_path, capsys):
    out = tmp_path / "counts"
    kinds = [*UNREADABLE, "blank", "black", "tiny_8x8"]
    rc = main(["count", "--model", str(model), *map(str, fields),
               *(str(bad[k]) for k in kinds), "--out", str(out), "--no-images"])
    err = capsys.readouterr().err
    assert rc == 1
    rows = {Path(r["image"]).name: r for r in _rows(out / "counts.csv")}
    assert len(rows) == len(fields) + len(kinds) + 1  # + the ALL row
    for f in fields:
        assert rows[f.name]["status"] in ("ok", "no_cell")
    for kind in UNREADABLE:
        assert rows[bad[kind].name]["status"] == "error"
        _line_naming(err, bad[kind], REASONS[kind])
    for kind in ("blank", "black", "tiny_8x8"):
        assert rows[bad[kind].name]["status"] == "no_cell"
        assert rows[bad[kind].name]["n_cells"] == "0"
        _line_naming(err, bad[kind], ("no leukocyte",))


def test_count_rescale_obeys_the_pixel_limit(model, fields, tmp_path, capsys):
    # --rescale 5 of a 200x160 field is 0.8 MP: fine; of a 3000x2000 one 150 MP: refused
    # before the resize allocates it (--rescale 40 once grew to 23.7 GB and was killed)
    big = tmp_path / "big.png"
    Image.new("RGB", (3000, 2000), (230, 220, 225)).save(big)
    out = tmp_path / "c"
    rc = main(["count", "--model", str(model), str(big), str(fields[0]), "--out", str(out),
               "--rescale", "5", "--no-images"])
    err = capsys.readouterr().err
    assert rc == 1
    line = _line_naming(err, big, ("decompression-bomb", "limit"))
    assert "15000x10000" in line
    rows = {Path(r["image"]).name: r["status"] for r in _rows(out / "counts.csv")}
    assert rows["big.png"] == "error" and rows[fields[0].name] in ("ok", "no_cell")


@pytest.mark.parametrize("value", ["40", "0", "-1", "inf", "nan"])
def test_count_rescale_range(model, fields, tmp_path, capsys, value):
    assert main(["count", "--model", str(model), str(fields[0]), "--out", str(tmp_path / "c"),
                 "--rescale", value]) == 2
    err = capsys.readouterr().err
    assert "--rescale" in err and "Traceback" not in err
    assert not (tmp_path / "c").exists()


def test_count_output_is_a_file(model, fields, tmp_path, capsys):
    f = tmp_path / "counts.txt"
    f.write_text("x")
    assert main(["count", "--model", str(model), str(fields[0]), "--out", str(f)]) == 2
    _line_naming(capsys.readouterr().err, f, ("existing file",))


# ------------------------------------------------------------------------------- benchmarks

@pytest.mark.parametrize("args, needle", [
    (["--lr", "0"], "lr"), (["--epochs", "0"], "epochs"), (["--n-jobs", "0"], "n_jobs"),
    (["--threads", "0"], "threads"), (["--img-size", "100000"], "img_size"),
    (["--deep-max-minutes", "-1"], "deep_max_minutes"), (["--split", "50/50/50"], "50/50/50"),
    (["--epochs", "x"], "--epochs")])
def test_benchmark_bad_settings(args, needle, tmp_path, capsys):
    from benchmarks.run import main as bench

    try:
        rc = bench([*args, "--out", str(tmp_path / "o"), "--no-deep"])
    except SystemExit as exc:  # argparse's own type errors
        rc = exc.code
    assert rc == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err and not (tmp_path / "o").exists()


def test_benchmark_output_is_a_file(tmp_path, capsys):
    from benchmarks.run import main as bench

    f = tmp_path / "out.txt"
    f.write_text("x")
    assert bench(["--quick", "--no-deep", "--out", str(f)]) == 2
    _line_naming(capsys.readouterr().err, f, ("existing file",))


# ------------------------------------------------------------------------------- io pieces

def test_read_sample_skips_a_bad_file_in_a_small_set(bad, good):
    from wbc_classic.io.images import ReadFailure, read_sample

    items = [*good, bad["truncated"], bad["zero_byte"]]
    failures: list[ReadFailure] = []
    got = read_sample(items, 50, seed=0, failures=failures)
    assert len(got) == len(good) and {f.path.name for f in failures} == {"truncated.png",
                                                                           "zero.png"}
    # a bad pick is replaced by another item when there is one
    many = [*good * 4, bad["truncated"]]
    picks = read_sample(many, 5, seed=0)
    assert len(picks) == 5


def test_read_sample_unchanged_without_bad_files(good):
    from wbc_classic.io.images import read_image, read_sample

    items = [*good * 5]
    pick = np.sort(np.random.default_rng(3).choice(len(items), 4, replace=False))
    expect = [read_image(items[i]) for i in pick]
    got = read_sample(items, 4, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(got, expect, strict=True))


def test_float_rgb_tiff_is_read_with_the_documented_mapping(tmp_path):
    import tifffile

    from wbc_classic.io.images import read_image

    a = np.linspace(0, 1, 4 * 5 * 3, dtype=np.float32).reshape(4, 5, 3)
    tifffile.imwrite(tmp_path / "unit.tif", a, photometric="rgb")
    np.testing.assert_array_equal(read_image(tmp_path / "unit.tif"),
                                  np.rint(a * 255).astype(np.uint8))
    # > 255: scaled by its maximum
    tifffile.imwrite(tmp_path / "big.tif", a * 4000, photometric="rgb")
    np.testing.assert_array_equal(read_image(tmp_path / "big.tif"),
                                  np.rint(a * 255).astype(np.uint8))
    b = a * 200
    b[0, 0] = [np.nan, -5, np.inf]  # NaN, negative, infinite -> 0
    tifffile.imwrite(tmp_path / "odd.tif", b, photometric="rgb")
    got = read_image(tmp_path / "odd.tif")
    assert list(got[0, 0]) == [0, 0, 0] and got[1, 1, 0] == round(float(b[1, 1, 0]))


def test_stale_temporaries_of_dead_writers_are_removed(tmp_path):
    import subprocess
    import sys
    import time

    from wbc_classic.io.atomic import _HOST, atomic_path, clean_stale_temporaries

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    dead = tmp_path / f".images_64px_k.{_HOST}-{proc.pid}.abcd1234.tmp.npy"
    alive = tmp_path / f".images_64px_k.{_HOST}-{os.getpid()}.efgh5678.tmp.npy"
    legacy = tmp_path / ".images_64px_k.ijkl9012.tmp.npy"
    keep = tmp_path / "images_64px_k.npy"
    for p in (dead, alive, legacy, keep):
        p.write_bytes(b"x" * 10)
    old = time.time() - 7200
    os.utime(legacy, (old, old))
    removed = clean_stale_temporaries(tmp_path)
    assert set(removed) == {dead, legacy}
    assert alive.exists() and keep.exists()
    with atomic_path(tmp_path / "x.npy") as tmp:  # its own temporaries carry host and pid
        assert f"{_HOST}-{os.getpid()}" in tmp.name
        assert clean_stale_temporaries(tmp_path) == [] and tmp.exists()


def test_progress_prints_lines_in_a_log(capsys):
    import io

    from wbc_classic.io.progress import Progress, progress

    buf = io.StringIO()
    with Progress(total=10, desc="work", unit="img", file=buf, interval=0.0) as bar:
        for _ in range(10):
            bar.update()
    lines = buf.getvalue().splitlines()
    assert len(lines) >= 2 and "\r" not in buf.getvalue()
    assert lines[-1].startswith("work: 10/10 img (100%)") and lines[-1].endswith("done")
    buf = io.StringIO()
    assert list(progress(range(3), desc="it", file=buf, disable=True)) == [0, 1, 2]
    assert buf.getvalue() == ""


def test_heartbeat_reports_while_nothing_is_counted():
    import io
    import time

    from wbc_classic.io.progress import Progress

    buf = io.StringIO()
    bar = Progress(desc="features", file=buf, interval=0.05, heartbeat=True)
    time.sleep(0.3)
    bar.close()
    text = buf.getvalue()
    assert text.count("features: working") >= 2 and "done after" in text
