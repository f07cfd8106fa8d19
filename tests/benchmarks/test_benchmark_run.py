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
    assert cl == list(C.CLASSICAL_MODELS) and dp == list(C.SEED_MODELS)
    assert C.resolve_models(["seeds"]) == ([], list(C.SEED_MODELS))
    assert C.resolve_models(["deep"], deep_group=("wbcnet",)) == ([], ["wbcnet"])
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
    in_lab = split.test[split.test < res.data.n_data]  # the other lab's cells are scored apart
    idx = list(res.test_indices.values())
    assert len(idx) == len(MODELS.split(","))
    for a in idx:
        np.testing.assert_array_equal(a, in_lab)
    doc = json.loads((res.out / "results.json").read_text())
    y_true = np.asarray(doc["y_true"])
    np.testing.assert_array_equal(y_true, res.data.y[in_lab])
    for m in doc["models"]:
        assert len(m["y_pred"]) == len(in_lab)
    from wbc_classic.data.split import Split

    assert Split.load(res.out / "split.json") == split


@pytest.mark.slow
def test_default_run_scores_in_lab_and_cross_lab_side_by_side(quick_run):
    """The synthetic default adds a second laboratory: all of it is test data, scored apart."""
    res, _ = quick_run
    data, split = res.data, res.split[0]
    assert data.other_lab is not None
    other = np.arange(data.n_data, len(data.paths))
    assert len(other) == 5 * 4  # quick: 4 cells per class of the other lab
    assert set(other) <= set(split.test) and not set(other) & set(split.train)
    assert all(str(data.paths[i]).startswith(data.other_lab) for i in other)
    doc = json.loads((res.out / "results.json").read_text())
    section = next(s for s in doc["sections"] if s["title"] == "In-lab and cross-lab accuracy")
    assert [r["model"] for r in section["rows"]] == MODELS.split(",")
    for model, row in zip(res.results, section["rows"], strict=True):
        x = model.params["cross_lab_accuracy"]
        assert len(model.y_pred) == len(res.test_indices[model.name])  # in-lab only
        assert 0.0 <= x <= 1.0 and row["cross-lab accuracy"].startswith(f"{x:.3f}")
    table = R.summary_table(res.results)
    assert "x-lab" in table.splitlines()[0]


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


# --------------------------------------------------------------------------------------------
# deep: budgets and the resumable per-model cache
# --------------------------------------------------------------------------------------------
def test_share_budget_by_cost():
    costs = {"big": 4e9, "small": 1e8, "tiny": 1e2}
    shares = C.share_budget(30, costs, {"small": 2})
    assert sum(shares.values()) == pytest.approx(30, abs=0.02)
    assert shares["tiny"] == 1.0  # the floor
    assert shares["big"] / shares["small"] == pytest.approx((4e9 / 1e8) ** 0.5 / 2, rel=0.01)
    assert C.share_budget(30, costs, {"small": 2}) == shares  # no timing: same every run
    cfg = C.build_config({"deep_budget_boost": "wbcnet=3, resnet18=2"})
    assert cfg.deep_budget_boost == {"wbcnet": 3.0, "resnet18": 2.0}
    with pytest.raises(ValueError, match="deep_budget_minutes"):
        C.build_config({"deep_budget_minutes": 0})


def _quick_deep(tmp_path, **extra):
    args = ["--quick", "--models", "smallcnn", "--epochs", "2", "--out", str(tmp_path / "out"),
            "--cache-dir", str(tmp_path / "cache"), "--no-progress", "--seg-images", "0"]
    for k, v in extra.items():
        args += [f"--{k.replace('_', '-')}", str(v)]
    return R.main(args)


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed (deep extra)")
def test_deep_run_is_resumable(tmp_path, monkeypatch):
    """A run killed during a network's second epoch continues from its last.pt; a finished
    network is read back from <out>/deep/ and never retrained; other settings retrain."""
    import deep.train as T

    real_evaluate = T.evaluate
    calls = {"n": 0}

    def killed_in_epoch_2(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_evaluate(*a, **k)

    monkeypatch.setattr(T, "evaluate", killed_in_epoch_2)
    assert _quick_deep(tmp_path) == 130  # Ctrl-C: one line, the documented exit code
    (run_dir,) = (tmp_path / "out" / "deep").iterdir()
    assert run_dir.name.startswith("smallcnn-") and (run_dir / "last.pt").is_file()
    assert not (run_dir / "done.json").exists()
    monkeypatch.setattr(T, "evaluate", real_evaluate)
    assert _quick_deep(tmp_path) == 0
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]  # epoch 1 from the killed run
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    first = {m["name"]: m for m in doc["models"]}["smallcnn"]
    assert first["params"]["epochs_run"] == 2 and first["params"]["n_parameters"] > 0

    def no_training(*a, **k):
        raise AssertionError("a finished network was trained again")

    monkeypatch.setattr(T, "train_on_split", no_training)
    assert _quick_deep(tmp_path) == 0
    doc2 = json.loads((tmp_path / "out" / "results.json").read_text())
    again = {m["name"]: m for m in doc2["models"]}["smallcnn"]
    assert again["metrics"]["accuracy"] == first["metrics"]["accuracy"]
    assert any("read back" in n for n in again["notes"])
    # the shift warning a user of the network would get on the test images, in both runs
    for m in (first, again):
        assert m["params"]["shift_method"] == "mahalanobis"
        assert 0 <= m["params"]["shift_n_flagged"] <= m["params"]["shift_n_scored"] > 0
        assert any(n.startswith("shift") and "test images" in n for n in m["notes"])
    assert again["params"]["shift_n_flagged"] == first["params"]["shift_n_flagged"]
    # other settings: another key, so it trains (and here fails by the patch)
    monkeypatch.setattr(T, "train_on_split", no_training)
    with pytest.raises(AssertionError, match="trained again"):
        _quick_deep(tmp_path, lr=0.01)


def test_deep_cache_key_is_pinned():
    """The key of a finished network must not move with code edits (a later run would
    retrain it): a new TrainConfig field at its default leaves it unchanged."""
    pytest.importorskip("torch")
    from deep.train import TrainConfig
    from wbc_classic.data.split import make_split

    y = np.repeat(np.arange(3), 10)
    fold = make_split(y, "80/20", seed=0)
    t = TrainConfig(model="wbcnet", model_kwargs={"width": 0.75}, img_size=64, epochs=300,
                    max_minutes=7.98, patience=0, threads=2, device="cpu")
    key = R._deep_key("wbcnet", t, "images_64px_abc.npy", fold, np.ones(30, bool), "cpu")
    assert key == "f038aedec3448153"
    t.threads, t.progress, t.out = 1, False, "elsewhere"  # not results: same key
    assert R._deep_key("wbcnet", t, "images_64px_abc.npy", fold, np.ones(30, bool),
                       "cpu") == key
    t.lr = 0.01
    assert R._deep_key("wbcnet", t, "images_64px_abc.npy", fold, np.ones(30, bool),
                       "cpu") != key


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed (deep extra)")
def test_soft_voting_ensemble_row(tmp_path):
    out = tmp_path / "out"
    code = R.main(["--quick", "--models", "smallcnn,sevenblock", "--ensembles",
                   "smallcnn+sevenblock,smallcnn+missing", "--out", str(out), "--cache-dir",
                   str(tmp_path / "cache"), "--no-progress", "--seg-images", "0", "--epochs", "1"])
    assert code == 0
    doc = json.loads((out / "results.json").read_text())
    models = {m["name"]: m for m in doc["models"]}
    assert "ensemble(smallcnn+missing)" not in models  # a member did not run
    ens = models["ensemble(smallcnn+sevenblock)"]
    mean = (np.asarray(models["smallcnn"]["y_score"])
            + np.asarray(models["sevenblock"]["y_score"])) / 2
    np.testing.assert_allclose(ens["y_score"], mean, atol=2e-6)
    assert ens["params"]["members"] == ["smallcnn", "sevenblock"]
    assert ens["family"] == "deep"


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed (deep extra)")
def test_bloodmnist_npz_with_the_official_split(tmp_path):
    from tests.deep.test_deep_train import write_bloodmnist

    npz = write_bloodmnist(tmp_path / "bloodmnist_28.npz", n=(32, 8, 16))
    out = tmp_path / "out"
    code = R.main(["--data", str(npz), "--models", "logreg,smallcnn", "--epochs", "1",
                   "--img-size", "28", "--out", str(out), "--cache-dir", str(tmp_path / "c"),
                   "--no-progress", "--seg-images", "0", "--n-resamples", "50"])
    assert code == 0
    split = json.loads((out / "split.json").read_text())
    assert split["scheme"] == "official" and split["test"] == list(range(40, 56))
    assert len(split["train"]) == 32 and len(split["val"]) == 8
    doc = json.loads((out / "results.json").read_text())
    assert {m["name"] for m in doc["models"]} == {"logreg", "smallcnn"}
    assert all(m["n_samples"] == 16 for m in doc["models"])
    assert doc["class_names"][3] == "ig"
    assert R.main(["--data", str(npz), "--split", "kfold:3", "--models", "logreg",
                   "--out", str(out), "--cache-dir", str(tmp_path / "c"),
                   "--seg-images", "0"]) == 2


def test_recipe_sets_split_for_both_families_unless_given():
    assert C.build_config({"recipe": "aljader"}).split == "50/25/25"
    assert C.build_config({"recipe": "aljader", "split": "80/20"}).split == "80/20"
    assert C.build_config({"recipe": "medmnist-v2"}).batch_size == 128
    lab = C.build_config({"recipe": "lab"})  # augmentation only: the run settings stay
    assert lab.recipe == "lab" and lab.split == C.build_config({}).split
    with pytest.raises(ValueError, match="unknown recipe"):
        C.build_config({"recipe": "nope"})


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed (deep extra)")
def test_row_says_which_recipe_produced_it(tmp_path):
    out = tmp_path / "out"
    assert R.main(["--quick", "--models", "smallcnn", "--recipe", "medmnist-v2", "--epochs",
                   "1", "--batch-size", "8", "--out", str(out), "--cache-dir",
                   str(tmp_path / "cache"), "--no-progress", "--seg-images", "0"]) == 0
    doc = json.loads((out / "results.json").read_text())
    (m,) = doc["models"]
    assert m["params"]["recipe"] == "medmnist-v2"
    (run_dir,) = (out / "deep").iterdir()
    cfg = json.loads((run_dir / "config.json").read_text())
    assert cfg["optimizer"] == "adam" and cfg["scheduler"] == "step" and cfg["epochs"] == 1
    assert "| medmnist-v2 |" in (out / "report.md").read_text()


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed (deep extra)")
def test_lab_recipe_trains_with_the_lab_augmentation(tmp_path):
    from deep.recipes import LAB_AUGMENT

    out = tmp_path / "out"
    assert R.main(["--quick", "--models", "smallcnn", "--recipe", "lab", "--epochs", "1",
                   "--batch-size", "8", "--out", str(out), "--cache-dir",
                   str(tmp_path / "cache"), "--no-progress", "--seg-images", "0"]) == 0
    (run_dir,) = (out / "deep").iterdir()
    cfg = json.loads((run_dir / "config.json").read_text())
    assert cfg["recipe"] == "lab" and cfg["augment"] == LAB_AUGMENT


@pytest.mark.slow
def test_every_saved_model_has_a_card_with_both_scores(quick_run):
    from wbc_classic.classical.modelfile import load
    from wbc_classic.io.modelcard import missing_fields

    res, _ = quick_run
    saved = [Path(r.params["saved_model"]) for r in res.results if r.family == "classical"]
    assert saved
    for path in saved:
        card = load(path).metadata_["card"]
        assert missing_fields(card) == []
        assert card["scores"]["in_lab"]["accuracy"] == pytest.approx(
            next(r.evaluation.metrics["accuracy"].value for r in res.results
                 if r.params.get("saved_model") == str(path)), abs=1e-4)
        assert card["scores"]["other_lab"]["n"] == 20
        assert path.with_name(f"{path.stem}.card.md").is_file()
    if HAS_TORCH:
        from deep.checkpoint import load_checkpoint

        (best,) = (res.out / "deep").glob("smallcnn-*/best.pt")  # <model>-<key>/ per network
        ck = load_checkpoint(best)
        assert ck["meta"]["card"]["scores"]["other_lab"] is not None
