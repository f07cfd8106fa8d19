"""Deep pipeline: cache, train(), checkpoints, predict CLI, ONNX, DDP, bad inputs."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

pytestmark = pytest.mark.torch
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cell_folders(tmp_path_factory):
    from wbc_classic.data.synthetic_sets import write_class_folders

    root = tmp_path_factory.mktemp("cells")
    return write_class_folders(root, 8, size=48, seed=0,
                               classes=("lymphocyte", "neutrophil", "eosinophil"))


def _cfg(tmp_path, data, **kw):
    from deep.train import TrainConfig

    base = dict(data=str(data), out=str(tmp_path / "run"), model="smallcnn",
                model_kwargs={"width": 0.25}, img_size=32, epochs=2, batch_size=8,
                cache_dir=str(tmp_path / "cache"), progress=False, threads=1)
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, cell_folders):
    from deep.train import train

    tmp = tmp_path_factory.mktemp("trained")
    cfg = _cfg(tmp, cell_folders)
    result = train(cfg)
    return tmp / "run", result, cfg


# ------------------------------------------------------------------------------- cache

def test_cache_is_built_once_and_keyed_by_content(tmp_path, cell_folders):
    from deep.cache import build_cache

    paths = sorted(cell_folders.rglob("*.png"))[:6]
    c1 = build_cache(paths, 24, cache_dir=tmp_path)
    assert c1.images.shape == (6, 24, 24, 3) and c1.images.dtype == np.uint8
    assert isinstance(c1.images, np.memmap) and c1.ok.all()
    mtime = c1.path.stat().st_mtime_ns
    c2 = build_cache(paths, 24, cache_dir=tmp_path)
    assert c2.path == c1.path and c2.path.stat().st_mtime_ns == mtime
    np.testing.assert_array_equal(c1.images, c2.images)
    # a copied (renamed) file with the same bytes hits the same cache entry
    copy = tmp_path / "renamed.png"
    copy.write_bytes(paths[0].read_bytes())
    assert build_cache([copy, *paths[1:]], 24, cache_dir=tmp_path).path == c1.path
    # changed content -> another entry; another size -> another entry
    assert build_cache(paths[::-1], 24, cache_dir=tmp_path).path != c1.path
    assert build_cache(paths, 16, cache_dir=tmp_path).path != c1.path
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary files left behind


def test_cache_corrupt_image(tmp_path, cell_folders):
    from deep.cache import build_cache

    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    good = sorted(cell_folders.rglob("*.png"))[:2]
    with pytest.raises(ValueError, match="bad.png"):
        build_cache([*good, bad], 24, cache_dir=tmp_path)
    c = build_cache([*good, bad], 24, cache_dir=tmp_path, on_error="skip")
    assert c.ok.tolist() == [True, True, False] and 2 in c.errors
    with pytest.raises(FileNotFoundError, match="missing.png"):
        build_cache([tmp_path / "missing.png"], 24, cache_dir=tmp_path)


def test_resize_square_checks_input():
    from deep.cache import resize_square

    out = resize_square(np.zeros((30, 40, 3), np.uint8), 16)
    assert out.shape == (16, 16, 3)
    with pytest.raises(ValueError, match=r"shape \(H, W, 3\)"):
        resize_square(np.zeros((30, 40), np.uint8), 16)
    with pytest.raises(ValueError, match=r"shape \(H, W, 3\).*\(30, 40, 4\)"):
        resize_square(np.zeros((30, 40, 4), np.uint8), 16)


# ------------------------------------------------------------------------------- training

def test_train_pipeline_outputs(trained):
    out, result, cfg = trained
    for f in ("best.pt", "last.pt", "metrics.jsonl", "result.json", "split.json",
              "config.json"):
        assert (out / f).is_file(), f
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert {"train_loss", "val_loss", "val_acc", "lr", "epoch_seconds"} <= set(rows[0])
    assert result["n_test"] > 0 and 0 <= result["test"]["accuracy"] <= 1
    assert result["n_train"] + result["n_val"] + result["n_test"] == 24
    # the test images are exactly the shared Split's test part
    from wbc_classic.data.datasets import load_class_folders
    from wbc_classic.data.split import Split, make_split

    y = load_class_folders(cfg.data).y
    np.testing.assert_array_equal(Split.load(out / "split.json").test,
                                  make_split(y, "80/20", seed=0).test)


def test_checkpoint_round_trip_and_resume(trained, tmp_path):
    import shutil

    from deep.checkpoint import load_checkpoint, load_model
    from deep.train import train

    out, _, cfg = trained
    model, meta = load_model(out / "best.pt")
    assert meta["classes"] == ["eosinophil", "lymphocyte", "neutrophil"]
    assert meta["img_size"] == 32 and len(meta["mean"]) == 3 and meta["model"] == "smallcnn"
    ck = load_checkpoint(out / "last.pt")
    assert ck["extra"]["epoch"] == 2 and ck["optimizer"] is not None
    # resume: copy the run, ask for 3 epochs, only the third runs
    run2 = tmp_path / "run2"
    shutil.copytree(out, run2)
    r = train(_cfg(tmp_path, cfg.data, out=str(run2), epochs=3, resume=True,
                   cache_dir=cfg.cache_dir))
    rows = [json.loads(line) for line in (run2 / "metrics.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in rows] == [1, 2, 3] and r["epochs_run"] == 3


def test_soft_voting_ensemble_checkpoint_round_trip(trained, tmp_path):
    from deep.checkpoint import load_model, save_checkpoint
    from deep.models.ensemble import ensemble_from_checkpoints
    from deep.predict import predict_proba

    best = trained[0] / "best.pt"
    ens, meta = ensemble_from_checkpoints([best, best], mode="soft")
    single, _ = load_model(best)
    x = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    np.testing.assert_allclose(predict_proba(ens, x, meta), predict_proba(single, x, meta),
                               atol=1e-5)
    save_checkpoint(tmp_path / "ens.pt", ens, meta)
    again, meta2 = load_model(tmp_path / "ens.pt")
    assert meta2["model"] == "ensemble"
    np.testing.assert_allclose(predict_proba(again, x, meta2), predict_proba(ens, x, meta),
                               atol=1e-5)


def test_missing_and_corrupt_checkpoint(tmp_path):
    from deep.checkpoint import CheckpointError, load_model

    with pytest.raises(FileNotFoundError, match="checkpoint not found.*nope.pt"):
        load_model(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage" * 10)
    with pytest.raises(CheckpointError, match="bad.pt.*corrupt"):
        load_model(bad)
    other = tmp_path / "other.pt"
    torch.save({"a": torch.zeros(2)}, other)
    with pytest.raises(CheckpointError, match="not a wbc-classic deep checkpoint"):
        load_model(other)


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch " + str(_Evil.flag),))


def test_untrusted_checkpoint_does_not_run_code(tmp_path):
    from deep.checkpoint import CheckpointError, load_checkpoint
    from deep.pretrained import load_state_dict_file

    _Evil.flag = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"format": "wbc-deep-checkpoint", "payload": _Evil()}, evil)
    with pytest.raises(CheckpointError, match="refused for safety"):
        load_checkpoint(evil)
    with pytest.raises(ValueError, match="evil.pt"):
        load_state_dict_file(evil)
    assert not _Evil.flag.exists()


def test_truncated_checkpoint(trained, tmp_path):
    from deep.checkpoint import CheckpointError, load_model

    out, _, _ = trained
    data = (out / "best.pt").read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cut.pt"):
        load_model(cut)


def test_empty_class_folder_is_named(tmp_path, cell_folders):
    import shutil

    from deep.train import train

    data = tmp_path / "data"
    shutil.copytree(cell_folders, data)
    for f in (data / "neutrophil").iterdir():
        f.unlink()
    with pytest.raises(ValueError, match="neutrophil"):
        train(_cfg(tmp_path, data, classes=["lymphocyte", "neutrophil", "eosinophil"]))


def test_missing_data_dir(tmp_path):
    from deep.train import main

    assert main(["--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) == 2


# ------------------------------------------------------------------------------- CLIs

def test_help_has_examples():
    from deep.predict import build_parser as pp
    from deep.train import build_parser as tp

    assert "python -m deep.train --data" in tp().format_help()
    assert "python -m deep.predict --checkpoint" in pp().format_help()


def test_predict_cli_writes_csv_and_reports_bad_images(trained, cell_folders, tmp_path):
    from deep.predict import main

    out, _, _ = trained
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    csv_path = tmp_path / "preds.csv"
    code = main(["--checkpoint", str(out / "best.pt"), str(cell_folders / "lymphocyte"),
                 str(bad), str(tmp_path / "missing.png"), "--out", str(csv_path)])
    assert code == 1
    with open(csv_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["path", "status", "predicted_class", "p_eosinophil",
                             "p_lymphocyte", "p_neutrophil", "error", "note"]
    ok = [r for r in rows if r["status"] == "ok"]
    err = [r for r in rows if r["status"] == "error"]
    assert len(ok) == 8 and len(err) == 2
    assert all(abs(sum(float(r[f"p_{c}"]) for c in ("eosinophil", "lymphocyte",
                                                      "neutrophil")) - 1) < 1e-4 for r in ok)
    assert any("broken.jpg" in r["error"] for r in err)
    assert any("missing.png" in r["error"] for r in err)
    # an unusable checkpoint: exit code 2, no CSV
    assert main(["--checkpoint", str(tmp_path / "none.pt"), str(bad), "--out",
                 str(tmp_path / "x.csv")]) == 2


def test_predict_proba_rejects_wrong_size(trained):
    from deep.checkpoint import load_model
    from deep.predict import predict_proba

    model, meta = load_model(trained[0] / "best.pt")
    with pytest.raises(ValueError, match="expects 32x32"):
        predict_proba(model, np.zeros((2, 40, 40, 3), np.uint8), meta)
    with pytest.raises(ValueError, match="shape"):
        predict_proba(model, np.zeros((2, 32, 32), np.uint8), meta)


@pytest.mark.slow
def test_onnx_export(trained, tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    import onnx

    from deep.export import export_onnx

    path = export_onnx(trained[0] / "best.pt", tmp_path / "m.onnx")
    proto = onnx.load(str(path))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["classes"]) == ["eosinophil", "lymphocyte", "neutrophil"]
    assert proto.graph.input[0].name == "input"


def test_onnx_missing_dependency_message(monkeypatch):
    import builtins

    from deep import export

    real_import = builtins.__import__

    def fake(name, *a, **k):
        if name == "onnxscript":
            raise ImportError("no onnxscript")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(ImportError, match="needs the 'onnxscript' package"):
        export._onnx_requirements()


@pytest.mark.slow
def test_ddp_two_cpu_processes(cell_folders, tmp_path):
    """torchrun with 2 processes and the gloo backend trains and writes one checkpoint."""
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--standalone", "-m", "deep.train", "--data", str(cell_folders),
           "--out", str(out), "--model", "smallcnn", "--model-kwargs", '{"width": 0.25}',
           "--img-size", "32", "--epochs", "2", "--batch-size", "4", "--no-progress",
           "--cache-dir", str(tmp_path / "cache"), "--device", "cpu", "--threads", "1"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "best.pt").is_file() and (out / "result.json").is_file()
    rows = (out / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 2  # rank 0 only writes


def test_cell_crop_and_stain_travel_in_the_checkpoint(cell_folders, tmp_path):
    """``crop="cell"`` + a stain normaliser: stored in the checkpoint, and deep.predict's view
    of a file is exactly the training cache's row."""
    from deep.cache import build_cache, prepare_image
    from deep.checkpoint import load_checkpoint
    from deep.predict import predict_paths
    from deep.train import train
    from wbc_classic.io.images import read_image
    from wbc_classic.preprocess.stain import normalizer_from_dict

    cfg = _cfg(tmp_path, cell_folders, epochs=1, crop="cell",
               crop_options={"side_um": 6.0, "um_per_pixel": 0.1}, stain="reinhard",
               augment={"hed_sigma": 0.1, "hed_bias": 0.02, "grayscale": 0.1})
    train(cfg)
    ck = load_checkpoint(tmp_path / "run" / "best.pt")
    meta = ck["meta"]
    assert meta["crop"] == "cell" and meta["crop_options"]["side_um"] == 6.0
    assert meta["stain"]["name"] == "reinhard" and meta["stain"]["state"]
    files = sorted((cell_folders / "lymphocyte").glob("*.png"))[:2]
    stain = normalizer_from_dict(meta["stain"])
    cache = build_cache(files, 32, cache_dir=tmp_path / "cache", crop="cell",
                        crop_options=meta["crop_options"], stain=stain)
    view = prepare_image(read_image(files[0]), 32, crop="cell",
                         crop_options=meta["crop_options"], stain=stain)
    np.testing.assert_array_equal(cache.images[0], view)
    from deep.models import get_model

    model = get_model(meta["model"], num_classes=len(meta["classes"]),
                      img_size=meta["img_size"], **meta["model_kwargs"])
    model.load_state_dict(ck["state_dict"])
    rows = predict_paths(model, meta, files)
    assert [r["status"] for r in rows] == ["ok", "ok"]


def test_blur_and_sharpen_augmentation_change_high_frequencies_only():
    from deep.data import build_augmentation

    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.integers(0, 256, (3, 32, 32), dtype=np.uint8))
    off = dict(rotation=0, shift=0, shear=0, zoom=0, hflip=False, vflip=False, brightness=0,
               contrast=0)
    blur = build_augmentation(**off, blur=2.0)
    sharp = build_augmentation(**off, sharpen=1.0)
    names = " ".join(type(t).__name__ for t in blur.transforms + sharp.transforms)
    assert "RandomApply" in names and "RandomAdjustSharpness" in names
    assert torch.equal(build_augmentation(**off)(x), x)

    def roughness(t):
        return float(t.float().diff(dim=2).abs().mean())

    torch.manual_seed(0)
    outs = [blur(x) for _ in range(20)]
    assert all(o.dtype == torch.uint8 and o.shape == x.shape for o in outs)
    assert any(roughness(o) < 0.5 * roughness(x) for o in outs)        # some blurred
    assert any(torch.equal(o, x) for o in outs)                          # some untouched
    for o in outs:  # blurring keeps the mean brightness
        assert abs(o.float().mean() - x.float().mean()) < 2.0
    smooth = blur.transforms[0].transforms[0](x)
    torch.manual_seed(1)
    assert any(roughness(sharp(smooth)) > 1.2 * roughness(smooth) for _ in range(10))
