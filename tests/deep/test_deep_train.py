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
                             "p_lymphocyte", "p_neutrophil", "error", "note", "shift_score",
                             "shift_flag"]
    ok = [r for r in rows if r["status"] == "ok"]
    err = [r for r in rows if r["status"] == "error"]
    assert len(ok) == 8 and len(err) == 2
    # every classified image has a shift score and a flag against the checkpoint's threshold
    from deep.checkpoint import load_checkpoint

    threshold = load_checkpoint(out / "best.pt")["meta"]["shift_threshold"]
    assert threshold is not None and np.isfinite(threshold)
    for r in ok:
        assert r["shift_flag"] == str(int(float(r["shift_score"]) > threshold))
    assert all(r["shift_score"] == r["shift_flag"] == "" for r in err)
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
    from deep.checkpoint import load_model

    model, _ = load_model(tmp_path / "run" / "best.pt")
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


_OFF = dict(rotation=0, shift=0, shear=0, zoom=0, hflip=False, vflip=False, brightness=0,
            contrast=0)


def test_jpeg_and_tint_are_off_by_default_and_validated():
    from deep.data import RandomTint, build_augmentation

    def names(aug):
        return [type(t).__name__ for t in aug.transforms] + [
            type(u).__name__ for t in aug.transforms for u in getattr(t, "transforms", [])]

    default = names(build_augmentation())
    assert "RandomTint" not in default and "JPEG" not in default
    assert names(build_augmentation(**_OFF, jpeg=0, tint=0.0)) == ["Identity"]
    assert names(build_augmentation(**_OFF, tint=0.1)) == ["RandomTint"]
    assert names(build_augmentation(**_OFF, jpeg=40)) == ["RandomApply", "JPEG"]
    jpeg = build_augmentation(**_OFF, jpeg=40).transforms[0].transforms[0]
    assert list(jpeg.quality) == [40, 95]
    assert list(build_augmentation(jpeg=98).transforms[-1].transforms[0].quality) == [98, 98]
    for bad in (-1, 101, 2.5, True, "40"):
        with pytest.raises(ValueError, match="jpeg must be a JPEG quality 1..100"):
            build_augmentation(jpeg=bad)
    for bad in (-0.1, 1.0, 2.0):
        with pytest.raises(ValueError, match=r"tint must be in \[0, 1\)"):
            build_augmentation(tint=bad)
    with pytest.raises(ValueError, match="uint8 .3, H, W. or .N, 3, H, W."):
        RandomTint(0.1)(torch.zeros(3, 8, 8))


def test_tint_scales_each_channel_within_its_bounds():
    from deep.data import RandomTint

    x = torch.full((3, 16, 16), 120, dtype=torch.uint8)
    x[:, :4] = 60  # not flat: the gain multiplies every pixel
    tint = RandomTint(0.1)
    torch.manual_seed(0)
    outs = [tint(x) for _ in range(30)]
    torch.manual_seed(0)
    assert all(torch.equal(o, tint(x)) for o in outs)  # reproducible under manual_seed
    ratios = torch.stack([o.float().mean((1, 2)) / x.float().mean((1, 2)) for o in outs])
    assert all(o.dtype == torch.uint8 and o.shape == x.shape for o in outs)
    assert ratios.min() >= 0.9 - 0.01 and ratios.max() <= 1.1 + 0.01  # rounding
    assert ratios.max() > 1.05 and ratios.min() < 0.95  # it does change the colour
    assert (ratios.max(1).values - ratios.min(1).values).max() > 0.05  # per channel
    for o in outs:  # a gain: the dark band stays half of the bright part, per channel
        assert torch.allclose(o[:, :4].float().mean((1, 2)) * 2, o[:, 4:].float().mean((1, 2)),
                              atol=1.0)
    batch = torch.stack([x, x // 2])
    out = tint(batch)
    assert out.shape == batch.shape and out.dtype == torch.uint8
    assert torch.allclose(out[0].float() / 2, out[1].float(), atol=1.0)  # shared gains
    assert int(RandomTint(0.5)(torch.full((3, 4, 4), 250, dtype=torch.uint8)).max()) <= 255


def test_jpeg_reencodes_half_the_images_reproducibly():
    from deep.data import build_augmentation

    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.integers(0, 256, (3, 32, 32), dtype=np.uint8))
    aug = build_augmentation(**_OFF, jpeg=20)
    torch.manual_seed(0)
    outs = [aug(x) for _ in range(16)]
    torch.manual_seed(0)
    assert all(torch.equal(o, aug(x)) for o in outs)
    assert all(o.dtype == torch.uint8 and o.shape == x.shape for o in outs)
    changed = [not torch.equal(o, x) for o in outs]
    assert 2 <= sum(changed) <= 14  # p = 0.5
    # noise does not survive JPEG: the re-encoded images are much smoother
    rough = [float(o.float().diff(dim=2).abs().mean())
             for o, c in zip(outs, changed, strict=True) if c]
    assert max(rough) < 0.8 * float(x.float().diff(dim=2).abs().mean())
    batch = aug(torch.stack([x, x]))
    assert batch.shape == (2, 3, 32, 32) and batch.dtype == torch.uint8


def test_lab_recipe_sets_the_lab_augmentation_and_flags_win():
    import deep.data
    import deep.recipes
    from deep.data import LAB_AUGMENT, build_augmentation
    from deep.recipes import get_recipe, recipe_names
    from deep.train import config_from_args

    assert "lab" in recipe_names() and deep.data.LAB_AUGMENT is deep.recipes.LAB_AUGMENT
    r = get_recipe("lab")
    assert r.from_paper == () and "issue 12" in r.source and r.settings["augment"] == LAB_AUGMENT
    assert LAB_AUGMENT["jpeg"] == 40 and LAB_AUGMENT["tint"] == 0.1
    cfg = config_from_args(["--data", "d", "--recipe", "lab"])
    assert cfg.recipe == "lab" and cfg.augment == LAB_AUGMENT
    cfg.augment["jpeg"] = 90  # the config holds a copy: the preset stays as it is
    assert LAB_AUGMENT["jpeg"] == 40
    kinds = [type(t).__name__ for t in build_augmentation(**LAB_AUGMENT).transforms]
    assert {"TensorHEDJitter", "RandomTint", "ColorJitter", "RandomAdjustSharpness"} <= set(kinds)
    cfg = config_from_args(["--data", "d", "--recipe", "lab", "--augment",
                            '{"jpeg": 60, "tint": 0.05}'])
    assert cfg.augment == {"jpeg": 60, "tint": 0.05}  # an explicit --augment replaces it
    aug = build_augmentation(**cfg.augment)
    assert list(aug.transforms[-1].transforms[0].quality) == [60, 95]


def test_training_with_the_lab_recipe(tmp_path, cell_folders):
    """The whole lab augmentation runs in the training loop (one tiny epoch); a bad
    ``augment`` key stops before any image is decoded."""
    from deep.train import config_with_recipe, train

    base = dict(_cfg(tmp_path, cell_folders, epochs=1, tta=False).to_json())
    base.pop("recipe")
    base.pop("augment")
    res = train(config_with_recipe("lab", **base))
    assert res["epochs_run"] == 1 and "test" in res
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["recipe"] == "lab" and cfg["augment"]["jpeg"] == 40
    bad = config_with_recipe("lab", **{**base, "augment": {"jpg": 40},
                                      "cache_dir": str(tmp_path / "c2")})
    with pytest.raises(ValueError, match="unexpected keyword argument 'jpg'"):
        train(bad)
    assert not (tmp_path / "c2").exists()


# ------------------------------------------------------------------------------- the one entry

def _tiny_arrays(n_per_class=6, size=28, seed=1):
    from wbc_classic.data.synthetic import make_cells

    imgs, y, classes = make_cells(n_per_class, size=size, seed=seed)
    return np.asarray(imgs, np.uint8), np.asarray(y, np.int64), list(classes)


def _tiny_cfg(**kw):
    from deep.train import TrainConfig

    base = dict(model="smallcnn", model_kwargs={"width": 0.25}, img_size=28, epochs=2,
                batch_size=8, progress=False, threads=1, warmup_epochs=0.5)
    base.update(kw)
    return TrainConfig(**base)


def test_train_on_split_returns_model_meta_and_history(tmp_path):
    from deep.checkpoint import CheckpointMeta, load_checkpoint
    from deep.train import train_on_split
    from wbc_classic.data.split import make_split

    imgs, y, classes = _tiny_arrays()
    split = make_split(y, "80/20", seed=0)
    res = train_on_split(_tiny_cfg(), imgs, y, split, classes=classes, out=tmp_path / "run")
    assert isinstance(res.meta, CheckpointMeta)
    assert res.meta.classes == classes and res.meta.img_size == 28 and len(res.meta.mean) == 3
    assert res.meta.epochs_run == 2 and res.meta.stop_reason == "epochs"
    assert res.meta.n_parameters == sum(p.numel() for p in res.model.parameters())
    assert [r["epoch"] for r in res.history] == [1, 2]
    assert {"train_loss", "train_acc", "val_loss", "val_acc"} <= set(res.history[0])
    # training and early stopping never touch the test part
    assert not set(res.train_idx) & set(split.test) and not set(res.val_idx) & set(split.test)
    # the returned weights are best.pt's, and the checkpoint's meta reads back as the dataclass
    ck = load_checkpoint(tmp_path / "run" / "best.pt")
    for k, v in ck["state_dict"].items():
        assert torch.equal(v, res.model.state_dict()[k])
    assert CheckpointMeta.from_dict(ck["meta"]).model == "smallcnn"
    # the shift score: a Mahalanobis scorer of the penultimate features fitted on the training
    # images, its threshold the 0.99 quantile of the validation images' scores, in best.pt
    from deep.adapt import penultimate_features
    from deep.checkpoint import load_model

    assert res.meta.shift_method == "mahalanobis" and ck["meta"]["shift_method"] == "mahalanobis"
    scorer = res.model.feature_shift
    val = res.images[np.sort(res.val_idx)]
    e = scorer.score(penultimate_features(res.model, val, res.meta.mean, res.meta.std))
    assert res.meta.shift_threshold == pytest.approx(np.quantile(e, 0.99), rel=1e-9)
    assert ck["meta"]["shift_threshold"] == res.meta.shift_threshold
    assert len(res.meta.shift_val_scores) == 101
    assert res.meta.shift_val_scores[0] == pytest.approx(e.min())
    # fitted on the training images (they score lower than the held-out validation images),
    # and best.pt gives the same scorer back
    train = res.images[np.sort(res.train_idx)]
    t = scorer.score(penultimate_features(res.model, train, res.meta.mean, res.meta.std))
    assert np.median(t) < np.median(e)
    back = load_model(tmp_path / "run" / "best.pt")[0].feature_shift
    for name in ("center", "scale", "precision"):
        np.testing.assert_array_equal(getattr(back, name), getattr(scorer, name))
    # without an output folder nothing is left behind; without a validation part, no threshold
    res2 = train_on_split(_tiny_cfg(epochs=1, val_fraction=0.0), imgs, y, split,
                          classes=classes)
    assert res2.out is None and len(res2.history) == 1
    assert len(res2.val_idx) == 0 and res2.meta.shift_threshold is None


def test_train_on_split_is_what_deep_train_runs(tmp_path, trained):
    """Same config, same data, same Split: deep.train's epochs equal train_on_split's."""
    from deep.train import train_on_split
    from wbc_classic.data.datasets import load_class_folders
    from wbc_classic.data.split import make_split

    out, _, cfg = trained
    iset = load_class_folders(cfg.data)
    res = train_on_split(cfg, iset.paths, iset.y, make_split(iset.y, "80/20", seed=0),
                         classes=list(iset.classes), out=tmp_path / "again")
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["train_loss"] == res.history[0]["train_loss"]  # bit-identical epoch 1
    assert rows[0]["val_loss"] == res.history[0]["val_loss"]


def test_checkpoint_meta_round_trip_and_errors():
    from deep.checkpoint import CheckpointError, CheckpointMeta

    m = CheckpointMeta(model="wbcnet", classes=["a", "b"], img_size=32, mean=[0.5] * 3,
                       std=[0.2] * 3, recipe="default", epochs_run=1.5)
    d = m.to_dict()
    assert CheckpointMeta.from_dict({**d, "future_key": 1}) == m
    assert m["classes"] == ["a", "b"] and m.get("crop") == "center" and m.get("nope") is None
    with pytest.raises(CheckpointError, match="classes"):
        CheckpointMeta.from_dict({"model": "x", "img_size": 8, "mean": [0] * 3,
                                  "std": [1] * 3})


def test_one_prediction_loop():
    """predict_proba is the softmax of predict_logits; evaluate's loss is computed on them."""
    from deep.data import ArrayDataset
    from deep.models import get_model
    from deep.predict import predict_logits, predict_proba
    from deep.train import evaluate

    imgs, y, classes = _tiny_arrays(2)
    torch.manual_seed(0)
    model = get_model("smallcnn", num_classes=len(classes), img_size=28, width=0.25).eval()
    meta = {"classes": classes, "img_size": 28, "mean": [0.5] * 3, "std": [0.25] * 3}
    z = predict_logits(model, imgs, meta["mean"], meta["std"], batch_size=3)
    p = predict_proba(model, imgs, meta, batch_size=7)
    np.testing.assert_allclose(p, torch.softmax(torch.from_numpy(z), 1).numpy(), atol=1e-6)
    v = evaluate(model, ArrayDataset(imgs, y), meta["mean"], meta["std"],
                 torch.nn.CrossEntropyLoss(), "cpu")
    ref = float(torch.nn.functional.cross_entropy(torch.from_numpy(z), torch.from_numpy(y)))
    assert v["loss"] == pytest.approx(ref, rel=1e-5)
    assert v["acc"] == pytest.approx(float(np.mean(z.argmax(1) == y)))
    with pytest.raises(ValueError, match="batch_size"):
        predict_logits(model, imgs, meta["mean"], meta["std"], batch_size=0)


def test_resume_keeps_the_learning_rate_schedule(tmp_path, monkeypatch):
    """Issue 14 item 2: a run killed after epoch 2 of 4 and resumed has the same rates as an
    uninterrupted one (the base rate was read from the resumed optimiser: x0.762)."""
    import deep.train as T
    from deep.data import ArrayDataset
    from deep.models import get_model

    imgs, y, classes = _tiny_arrays(4)
    meta = {"model": "smallcnn", "classes": classes, "img_size": 28, "mean": [0.5] * 3,
            "std": [0.25] * 3}
    cfg = _tiny_cfg(epochs=4, patience=0, warmup_epochs=0.0, out=None)

    def run(out, resume=False):
        torch.manual_seed(0)
        model = get_model("smallcnn", num_classes=len(classes), img_size=28, width=0.25)
        cfg.resume = resume
        return T.fit(model, ArrayDataset(imgs, y), ArrayDataset(imgs, y, np.arange(4)), cfg,
                     meta=meta, out=out)

    full = [r["lr"] for r in run(tmp_path / "full")["history"]]
    real_evaluate = T.evaluate
    calls = {"n": 0}

    def killed_in_epoch_3(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # a kill after epoch 2's checkpoint
        return real_evaluate(*a, **k)

    monkeypatch.setattr(T, "evaluate", killed_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "cut")
    monkeypatch.setattr(T, "evaluate", real_evaluate)
    hist = run(tmp_path / "cut", resume=True)["history"]
    assert [r["epoch"] for r in hist] == [1, 2, 3, 4]
    assert [r["lr"] for r in hist] == pytest.approx(full, rel=1e-12)


def test_resume_without_last_checkpoint_says_so(tmp_path, caplog):
    from deep.data import ArrayDataset
    from deep.models import get_model
    from deep.train import fit

    imgs, y, classes = _tiny_arrays(2)
    meta = {"model": "smallcnn", "classes": classes, "img_size": 28, "mean": [0.5] * 3,
            "std": [0.25] * 3}
    model = get_model("smallcnn", num_classes=len(classes), img_size=28, width=0.25)
    with caplog.at_level("WARNING", logger="deep.train"):
        fit(model, ArrayDataset(imgs, y), None, _tiny_cfg(epochs=1, resume=True), meta=meta,
            out=tmp_path / "fresh")
    err = caplog.text  # library code logs; the CLI sends it to stderr (log_to_stderr)
    assert "no " in err and "last.pt" in err and "starting from scratch" in err


def test_time_budget_stops_inside_an_epoch(tmp_path, monkeypatch):
    """A network slower than its budget stops at it (fraction of an epoch), and the warm-up
    ends by TIME_WARMUP of the budget however few steps were taken."""
    import deep.train as T
    from deep.data import ArrayDataset
    from deep.models import get_model

    imgs, y, classes = _tiny_arrays(6)
    clock = {"t": 0.0}

    def fake_clock():
        clock["t"] += 6.0  # every call: 6 s later
        return clock["t"]

    monkeypatch.setattr(T.time, "perf_counter", fake_clock)
    meta = {"model": "smallcnn", "classes": classes, "img_size": 28, "mean": [0.5] * 3,
            "std": [0.25] * 3}
    model = get_model("smallcnn", num_classes=len(classes), img_size=28, width=0.25)
    cfg = _tiny_cfg(epochs=5, batch_size=2, max_minutes=1.0, warmup_epochs=1.0)
    h = T.fit(model, ArrayDataset(imgs, y), None, cfg, meta=meta)
    assert h["stop_reason"] == "time_budget"
    assert len(h["history"]) == 1 and 0 < h["history"][0]["fraction"] < 1
    assert 0 < h["epochs_run"] < 1
    assert T.lr_factor(0, 100, 50, progress=T.TIME_WARMUP / 2) == pytest.approx(0.5)
    assert T.lr_factor(0, 100, 50, progress=None) == pytest.approx(1 / 50)
    assert T.lr_factor(1, 100, 50, progress=T.TIME_WARMUP) > 0.99


def test_still_improving():
    from deep.train import still_improving

    falling = [{"val_loss": v} for v in (1.0, 0.8, 0.6, 0.5)]
    flat = [{"val_loss": v} for v in (1.0, 0.5, 0.6, 0.61, 0.6)]
    assert still_improving(falling) and not still_improving(flat)


def test_accel_settings_follow_the_device():
    from deep.train import accel_settings

    assert accel_settings("cpu") == (False, False)
    assert accel_settings(torch.device("cuda", 0)) == (True, True)
    assert accel_settings("cuda", amp=False) == (False, True)


def test_cli_is_built_from_the_config_fields():
    import dataclasses

    from deep.train import TrainConfig, build_parser, config_from_args

    p = build_parser()
    dests = {a.dest: a for a in p._actions if a.dest != "help"}
    assert set(dests) == {f.name for f in dataclasses.fields(TrainConfig)}
    assert all(a.help for a in dests.values())
    cfg = config_from_args(["--data", "d", "--model-kwargs", '{"width": 0.5}', "--classes",
                            "a", "b", "--no-tta", "--class-weights", "--max-minutes", "3",
                            "--lr", "0.01"])
    assert cfg == TrainConfig(data="d", model_kwargs={"width": 0.5}, classes=["a", "b"],
                              tta=False, use_class_weights=True, max_minutes=3.0, lr=0.01)
    with pytest.raises(SystemExit):
        config_from_args(["--data", "d", "--model-kwargs", "[1, 2]"])


def test_soft_vote_is_the_ensemble_rule_and_predict_takes_an_ensemble(trained, cell_folders,
                                                                      tmp_path):
    from deep.checkpoint import load_model
    from deep.models.ensemble import ensemble_from_checkpoints
    from deep.predict import main, predict_proba, soft_vote

    out, _, _ = trained
    imgs = np.random.default_rng(0).integers(0, 255, (5, 32, 32, 3), dtype=np.uint8)
    (m1, meta), (m2, _) = load_model(out / "best.pt"), load_model(out / "last.pt")
    p1, p2 = predict_proba(m1, imgs, meta), predict_proba(m2, imgs, meta)
    ens, ens_meta = ensemble_from_checkpoints([out / "best.pt", out / "last.pt"])
    np.testing.assert_allclose(soft_vote([p1, p2]), predict_proba(ens.eval(), imgs, ens_meta),
                               atol=1e-5)
    np.testing.assert_allclose(soft_vote([p1, p2], [3, 1]), 0.75 * p1 + 0.25 * p2, atol=1e-12)
    with pytest.raises(ValueError, match="weights"):
        soft_vote([p1, p2], [1])
    csv_path = tmp_path / "ens.csv"
    assert main(["--checkpoint", str(out / "best.pt"), "--checkpoint", str(out / "last.pt"),
                 str(cell_folders / "lymphocyte"), "--out", str(csv_path)]) == 0
    with open(csv_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 8 and all(r["status"] == "ok" for r in rows)
    # last.pt has no threshold (it was calibrated for best.pt's weights): no ensemble flag
    assert all(r["shift_score"] != "" and r["shift_flag"] == "" for r in rows)
    assert main(["--checkpoint", str(out / "best.pt"), "--checkpoint", str(out / "last.pt"),
                 str(cell_folders), "--out", str(csv_path), "--vote-weights", "1"]) == 2


def write_bloodmnist(path, n=(24, 8, 8), size=28, seed=0):
    """A small file in the real MedMNIST layout: ``{split}_images`` (N, H, W, 3) uint8 and
    ``{split}_labels`` (N, 1) uint8, 8 BloodMNIST classes (a colour per class plus noise)."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, m in zip(("train", "val", "test"), n, strict=True):
        labels = np.arange(m) % 8
        base = np.stack([np.full((size, size, 3), (30 * c + 20, 200 - 20 * c, 120), np.uint8)
                         for c in labels])
        noise = rng.integers(0, 40, base.shape, dtype=np.uint8)
        arrays[f"{split}_images"] = (base + noise).astype(np.uint8)
        arrays[f"{split}_labels"] = labels.astype(np.uint8)[:, None]
    np.savez_compressed(path, **arrays)
    return path


def test_deep_train_takes_a_bloodmnist_npz_with_its_official_split(tmp_path):
    from deep.train import train
    from wbc_classic.data.datasets import BLOODMNIST_CLASSES
    from wbc_classic.data.split import Split

    npz = write_bloodmnist(tmp_path / "bloodmnist.npz")
    res = train(_cfg(tmp_path, npz, img_size=32, epochs=1))
    assert res["classes"] == list(BLOODMNIST_CLASSES)
    assert (res["n_train"], res["n_val"], res["n_test"]) == (24, 8, 8)
    split = Split.load(tmp_path / "run" / "split.json")
    assert split.scheme == "official" and split.test.tolist() == list(range(32, 40))
    assert sum(map(sum, res["test"]["confusion"])) == 8


def test_recipes_fill_the_config_and_flags_win():
    from deep.recipes import get_recipe
    from deep.train import config_from_args, lr_factor

    cfg = config_from_args(["--data", "d", "--recipe", "medmnist-v2", "--lr", "0.01"])
    assert (cfg.recipe, cfg.optimizer, cfg.batch_size, cfg.epochs) == ("medmnist-v2", "adam",
                                                                      128, 100)
    assert cfg.lr == 0.01 and cfg.scheduler == "step" and cfg.no_augment
    assert config_from_args(["--data", "d"]).recipe == "default"
    # the step schedule: x0.1 after half and three quarters of the training
    f = [lr_factor(s, 100, 0, milestones=[0.5, 0.75], gamma=0.1) for s in (0, 49, 50, 74, 75)]
    assert f == pytest.approx([1, 1, 0.1, 0.1, 0.01])
    r = get_recipe("medmnist-v2")
    assert set(r.from_paper) <= set(r.settings)
    # every recipe states only settings it sets, and each names at least one of a paper's
    # or is the project's own
    from deep.recipes import RECIPES

    for rec in RECIPES.values():
        assert set(rec.from_paper) <= set(rec.settings), rec.name
        assert rec.from_paper or rec.source.startswith("this project"), rec.name
    hk = config_from_args(["--data", "d", "--recipe", "hussien-kareem"])
    assert (hk.img_size, hk.split) == (64, "80/20")
    assert config_from_args(["--data", "d", "--recipe", "asghar"]).pretrained == "imagenet"
    with pytest.raises(ValueError, match="unknown recipe 'nope'.*medmnist-v2"):
        get_recipe("nope")
    with pytest.raises(SystemExit):
        config_from_args(["--data", "d", "--recipe", "nope"])


def test_coral_loss_is_zero_for_equal_statistics_and_grows_with_the_shift():
    from deep.train import coral_loss

    g = torch.Generator().manual_seed(0)
    a = torch.randn(200, 6, generator=g)
    assert float(coral_loss(a, a)) == pytest.approx(0.0, abs=1e-7)
    shifted = [float(coral_loss(a, a * s + m)) for s, m in ((1, 0.5), (1, 1.0), (2, 1.0))]
    assert 0 < shifted[0] < shifted[1] < shifted[2]
    x = a.clone().requires_grad_(True)
    coral_loss(x, a * 2).backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0


def test_feature_alignment_pulls_the_target_features_towards_the_training_ones(tmp_path):
    """A shifted copy of the training images as the 'other lab': with the alignment loss
    the network's features of the two are closer than without it."""
    from deep.adapt import penultimate_features
    from deep.train import coral_loss, train_on_split
    from wbc_classic.data.split import make_split

    imgs, y, classes = _tiny_arrays(n_per_class=8)
    other = np.clip(imgs.astype(np.int16) * [1.0, 0.6, 0.6] + [0, 40, 60], 0, 255
                    ).astype(np.uint8)
    split = make_split(y, "80/20", seed=0)
    gaps = {}
    for w in (0.0, 20.0):
        res = train_on_split(_tiny_cfg(epochs=4, align_weight=w, no_augment=True), imgs, y,
                             split, classes=classes, align_images=other)
        f = [torch.as_tensor(penultimate_features(res.model, im, res.meta.mean, res.meta.std))
             for im in (imgs, other)]
        gaps[w] = float(coral_loss(*f))
    assert gaps[20.0] < gaps[0.0]
    with pytest.raises(ValueError, match="align_images"):
        train_on_split(_tiny_cfg(epochs=1, align_weight=1.0), imgs, y, split, classes=classes)


def test_the_command_aligns_to_a_folder_of_unlabelled_images(tmp_path, cell_folders, capsys):
    from deep.train import main, train

    assert main(["--data", str(cell_folders), "--out", str(tmp_path / "o"),
                 "--align-weight", "1"]) == 2
    assert "--align-data" in capsys.readouterr().err
    other = cell_folders / "neutrophil"          # any folder of images stands for the lab
    cfg = _cfg(tmp_path, cell_folders, epochs=1, align_weight=1.0, align_data=str(other))
    train(cfg)
    saved = json.loads((Path(cfg.out) / "config.json").read_text())
    assert saved["align_weight"] == 1.0 and saved["align_data"] == str(other)
