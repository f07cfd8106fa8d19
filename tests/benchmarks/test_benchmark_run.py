"""benchmarks.run and benchmarks.config: end-to-end runs on tiny synthetic sets, config layering
and round trips, one set of test indices for both families, failures and leakage in the report.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from benchmarks import config as C
from benchmarks import run as R

HAS_TORCH = (importlib.util.find_spec("torch") is not None
             and importlib.util.find_spec("torchvision") is not None)


# --------------------------------------------------------------------------------------------
# config
# --------------------------------------------------------------------------------------------
def test_defaults_are_the_synthetic_preset():
    cfg = C.build_config()
    assert cfg.preset == "synthetic" and cfg.data is None
    classical, deep = C.resolve_models(cfg.models, cfg.deep_models)
    assert classical == list(C.CLASSICAL_MODELS)  # all classical classifiers
    assert len(deep) >= 2
    assert cfg.n_resamples == 1000 and cfg.split == "80/20"
    assert cfg.resolved_out() == Path("runs") / "benchmark-synthetic-0"


def test_resolve_models_groups_and_errors(monkeypatch):
    monkeypatch.setattr(C, "deep_model_names", lambda: C.DEEP_MODELS)  # no torch import
    assert C.resolve_models(["classical"]) == (list(C.CLASSICAL_MODELS), [])
    cl, dp = C.resolve_models(["svm,deep", "svm"], deep_group=("smallcnn",))
    assert cl == ["svm"] and dp == ["smallcnn"]
    assert C.resolve_models(["Linear_SVM", "resnet18"]) == (["linear-svm"], ["resnet18"])
    cl, dp = C.resolve_models(["all"], deep_group=("wbcnet",))
    assert len(cl) == len(C.CLASSICAL_MODELS) and dp == ["wbcnet"]
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        C.resolve_models(["nope"])


def test_presets_and_quick_layering(monkeypatch, tmp_path):
    monkeypatch.setenv("WBC_SHARED_DATA", str(tmp_path))
    cfg = C.build_config({"preset": "pbc5"})
    assert cfg.data == str(tmp_path / "pbc")
    assert tuple(cfg.classes) == ("basophil", "eosinophil", "lymphocyte", "monocyte",
                                  "neutrophil")
    q = C.build_config({"quick": True, "epochs": 3})
    assert q.epochs == 3  # an explicit flag beats quick
    assert q.n_per_class == C.QUICK["n_per_class"]
    assert C.build_config({"data": str(tmp_path)}).preset == "custom"
    with pytest.raises(ValueError, match="split"):
        C.build_config({"split": "70/20"})
    with pytest.raises(ValueError, match="unknown preset"):
        C.build_config({"preset": "nope"})


def test_config_file_equals_flags(tmp_path):
    flags = ["--preset", "synthetic", "--models", "svm,logreg,smallcnn", "--split", "kfold:5",
             "--img-size", "40", "--epochs", "3", "--n-jobs", "1", "--seed", "7",
             "--out", "runs/x", "--no-deep", "--n-per-class", "10", "--classes",
             "lymphocyte,neutrophil"]
    from_flags, _ = R.config_from_argv(flags)
    toml = tmp_path / "run.toml"
    toml.write_text('preset = "synthetic"\nmodels = ["svm", "logreg", "smallcnn"]\n'
                    'split = "kfold:5"\nimg-size = 40\nepochs = 3\nn_jobs = 1\nseed = 7\n'
                    'out = "runs/x"\nno_deep = true\nn_per_class = 10\n'
                    'classes = ["lymphocyte", "neutrophil"]\n')
    from_toml, _ = R.config_from_argv(["--config", str(toml)])
    assert from_toml == from_flags
    yml = tmp_path / "run.yaml"
    yml.write_text(yaml.safe_dump({"models": "svm,logreg,smallcnn", "split": "kfold:5",
                                   "img_size": 40, "epochs": 3, "n_jobs": 1, "seed": 7,
                                   "out": "runs/x", "no-deep": True, "n_per_class": 10,
                                   "classes": ["lymphocyte", "neutrophil"]}))
    from_yaml, _ = R.config_from_argv(["--config", str(yml)])
    assert from_yaml == from_flags
    # flags override the file
    over, _ = R.config_from_argv(["--config", str(toml), "--seed", "8"])
    assert over.seed == 8 and over.epochs == 3
    # the saved effective config reads back to the same settings
    saved = C.save_config(from_flags, tmp_path / "config.yaml")
    again, _ = R.config_from_argv(["--config", str(saved)])
    assert again == from_flags


def test_config_file_rejects_unknown_keys(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: 2\nepoch: 3\n")
    with pytest.raises(ValueError, match="unknown setting"):
        C.load_config_file(bad)
    assert R.main(["--config", str(bad)]) == 2


def test_print_config(capsys):
    assert R.main(["--quick", "--seed", "3", "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["seed"] == 3 and printed["quick"] is True


# --------------------------------------------------------------------------------------------
# end to end
# --------------------------------------------------------------------------------------------
MODELS = "logreg,knn" + (",smallcnn" if HAS_TORCH else "")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One --quick run: 2 classical models and, with torch, one tiny CNN for 1 epoch."""
    base = tmp_path_factory.mktemp("bench")
    cfg, _ = R.config_from_argv(["--quick", "--models", MODELS, "--out", str(base / "out"),
                                 "--cache-dir", str(base / "cache"), "--no-progress"])
    return R.run(cfg, command="python -m benchmarks.run --quick"), base


@pytest.mark.slow
def test_quick_run_writes_every_output(quick_run):
    res, _ = quick_run
    for name in ("results.csv", "results.json", "report.md", "report.html", "config.yaml",
                 "environment.json", "split.json"):
        assert (res.out / name).is_file(), name
    with open(res.out / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["model"] for r in rows] == MODELS.split(",")
    assert {r["family"] for r in rows} == ({"classical", "deep"} if HAS_TORCH else {"classical"})
    for r in rows:
        for col in ("accuracy", "accuracy_low", "accuracy_high", "balanced_accuracy",
                    "roc_auc_macro", "cohen_kappa", "train_seconds", "throughput_cells_per_s",
                    "model_bytes", "peak_memory_bytes"):
            assert r[col] not in ("", None), col
    doc = json.loads((res.out / "results.json").read_text())
    assert doc["synthetic_data"] is True
    assert doc["leakage"]["checked"] is True
    assert any(s["title"] == "Segmentation scores" for s in doc["sections"])
    md = (res.out / "report.md").read_text()
    assert "SYNTHETIC" in md
    assert all(m["n_resamples"] == 1000 for m in doc["models"])
    if not HAS_TORCH:
        assert any("deep models skipped" in n for n in doc["notes"])
    # the saved config reproduces the settings
    again, _ = R.config_from_argv(["--config", str(res.out / "config.yaml")])
    assert again.to_dict() == yaml.safe_load((res.out / "config.yaml").read_text())


@pytest.mark.slow
def test_both_families_share_the_test_indices(quick_run):
    res, _ = quick_run
    split = res.split[0]
    idx = list(res.test_indices.values())
    assert len(idx) == len(MODELS.split(","))
    for a in idx:
        np.testing.assert_array_equal(a, split.test)
    doc = json.loads((res.out / "results.json").read_text())
    y_true = np.asarray(doc["y_true"])
    np.testing.assert_array_equal(y_true, res.data.y[split.test])
    for m in doc["models"]:
        assert len(m["y_pred"]) == len(split.test)
    from wbc_classic.data.split import Split

    assert Split.load(res.out / "split.json") == split


@pytest.mark.slow
def test_second_run_reuses_the_caches(quick_run, tmp_path):
    res, base = quick_run
    cfg, _ = R.config_from_argv(["--quick", "--models", MODELS, "--out", str(tmp_path / "o2"),
                                 "--cache-dir", str(base / "cache"), "--no-progress"])
    log = R.StageLog(stream=open(tmp_path / "log.txt", "w"))  # noqa: SIM115
    R.run(cfg, log=log)
    log.stream.close()
    text = (tmp_path / "log.txt").read_text()
    assert "reusing the synthetic cells" in text
    n = len(res.data.paths)
    assert f"{n} images, {n} from the cache" in text
    if HAS_TORCH:
        assert "read from the cache" in text


def _folders(root: Path, n: int, seed: int) -> Path:
    from wbc_classic.data.synthetic_sets import write_class_folders

    return write_class_folders(root, n, classes=("lymphocyte", "neutrophil", "eosinophil"),
                               size=64, seed=seed)


@pytest.mark.slow
def test_domain_shift_failures_and_leakage(tmp_path):
    """--test-data: a broken test file is scored as an error, a copied image is flagged."""
    train = _folders(tmp_path / "train", 8, seed=0)
    test = _folders(tmp_path / "test", 3, seed=1)
    (test / "neutrophil" / "broken.png").write_bytes(b"not a png at all")
    shutil.copy(train / "lymphocyte" / "lymphocyte_0000.png",
                test / "lymphocyte" / "copied.png")
    out = tmp_path / "out"
    code = R.main(["--data", str(train), "--test-data", str(test), "--models", "logreg",
                   "--no-deep", "--out", str(out), "--cache-dir", str(tmp_path / "cache"),
                   "--no-progress", "--n-jobs", "1", "--n-resamples", "200"])
    assert code == 1  # the broken test image was reported (README "Exit codes")
    doc = json.loads((out / "results.json").read_text())
    assert doc["dataset"]["n_test"] == 3 * 3 + 2
    assert doc["leakage"]["exact"] >= 1 and doc["leakage"]["flagged"]
    assert "LEAKAGE" in (out / "report.md").read_text()
    failed = next(s for s in doc["sections"] if s["title"] == "Failed images")
    assert [r["file"] for r in failed["rows"]] == ["neutrophil/broken.png"]
    # the broken image is scored, and scored as an error
    m = doc["models"][0]
    assert len(m["y_pred"]) == doc["dataset"]["n_test"]
    assert m["confusion"] and sum(map(sum, m["confusion"])) == doc["dataset"]["n_test"]
    split = json.loads((out / "split.json").read_text())
    n_train = len(split["train"])
    test_paths = sorted((test / "neutrophil").iterdir())
    k = test_paths.index(test / "neutrophil" / "broken.png")
    # test items follow the class-folder order: eosinophil, lymphocyte, neutrophil (sorted)
    broken_pos = 3 + 4 + k
    assert split["test"][broken_pos] == n_train + broken_pos
    assert m["y_pred"][broken_pos] != doc["y_true"][broken_pos]


@pytest.mark.slow
def test_kfold_pools_out_of_fold_predictions(tmp_path, monkeypatch):
    """k-fold pooling; also: without torch the deep models are skipped with a note."""
    monkeypatch.setattr(R, "_torch_available", lambda: "ImportError: no torch (simulated)")
    data = _folders(tmp_path / "data", 6, seed=2)
    out = tmp_path / "out"
    cfg, _ = R.config_from_argv(["--data", str(data), "--split", "kfold:3", "--models",
                                 "naive-bayes,smallcnn", "--out", str(out), "--cache-dir",
                                 str(tmp_path / "cache"), "--no-progress", "--n-jobs", "1",
                                 "--n-resamples", "100"])
    res = R.run(cfg)
    assert [r.name for r in res.results] == ["naive-bayes"]
    md = (out / "report.md").read_text()
    assert "deep models skipped (smallcnn): ImportError: no torch (simulated)" in md
    n = len(res.data.paths)
    assert len(res.split) == 3
    np.testing.assert_array_equal(res.test_indices["naive-bayes"], np.arange(n))
    assert res.results[0].evaluation.n_samples == n
    doc = json.loads((out / "results.json").read_text())
    per_fold = next(s for s in doc["sections"] if s["title"].startswith("Per-fold"))
    assert {"fold 0", "fold 1", "fold 2", "mean +- sd"} <= set(per_fold["rows"][0])
    assert len(json.loads((out / "split.json").read_text())) == 3


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed (deep extra)")
def test_deep_cell_crop_run(tmp_path):
    """--deep-crop cell: the deep model is trained and scored on cell-centred crops."""
    out = tmp_path / "out"
    code = R.main(["--quick", "--models", "smallcnn", "--deep-crop", "cell", "--out", str(out),
                   "--cache-dir", str(tmp_path / "cache"), "--no-progress"])
    assert code == 0
    doc = json.loads((out / "results.json").read_text())
    (m,) = [m for m in doc["models"] if m["name"] == "smallcnn"]
    assert m["params"]["crop"] == "cell"
    assert doc["config"]["deep_crop"] == "cell"
    assert list((tmp_path / "cache" / "deep").glob("images_*px_*.npy"))
