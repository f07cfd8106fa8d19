"""benchmarks.report and benchmarks.environment: files, HTML with embedded plots, banners."""

from __future__ import annotations

import base64
import csv
import html.parser
import io
import json
import math
import re

import numpy as np
import pytest

from benchmarks import report as R
from benchmarks.environment import capture_environment, command_line, format_environment
from wbc_classic.evaluation.metrics import METRIC_NAMES, evaluate

CLASSES = ("lymphocyte", "monocyte", "neutrophil")


@pytest.fixture(scope="module")
def env():
    return capture_environment(seed=0, command="python -m benchmarks.run --seed 0",
                               probe_gpu=False)


def _model(name, family, yt, rng, acc, with_scores=True, n_mis=3):
    n, k = yt.size, len(CLASSES)
    yp = np.where(rng.random(n) < acc, yt, rng.integers(0, k, n))
    score = None
    if with_scores:
        score = rng.random((n, k))
        score[np.arange(n), yp] += 1.0
        score /= score.sum(axis=1, keepdims=True)
    ev = evaluate(yt, yp, score, class_names=CLASSES, n_resamples=100, seed=0)
    wrong = np.flatnonzero(yp != yt)[:n_mis]
    images = rng.integers(0, 255, (len(wrong), 40, 40, 3), dtype=np.uint8)
    mis = [(images[i], int(yt[j]), int(yp[j])) for i, j in enumerate(wrong)]
    return R.ModelResult(name, family, ev, y_pred=yp, y_score=score, train_seconds=1.5,
                         throughput=250.0, model_bytes=12345, peak_memory_bytes=2**27,
                         misclassified=mis, params={"C": 1.0})


@pytest.fixture(scope="module")
def results():
    rng = np.random.default_rng(0)
    yt = rng.integers(0, 3, 90)
    return yt, [_model("svm", "classical", yt, rng, 0.7),
                _model("rf", "classical", yt, rng, 0.2, with_scores=False),
                _model("tiny_cnn", "deep", yt, rng, 0.9)]


def _write(tmp_path, results, env, leakage, synthetic=True, **kw):
    yt, res = results
    return R.write_report(
        tmp_path, res, class_names=CLASSES,
        dataset=R.DatasetInfo("synthetic-3", synthetic, "generated cells", n_train=270,
                              n_test=90),
        leakage=leakage, split={"scheme": "80/20", "seed": 0}, seed=0, environment=env,
        y_true=yt, sections=[R.Section("Segmentation", [{"method": "otsu", "dice": 0.9}])],
        notes=["a run note"], save_figures=False, **kw)


class _Parser(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.stack, self.imgs, self.errors = [], [], []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.imgs.append(dict(attrs))
        elif tag not in ("meta", "br", "link"):
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unbalanced </{tag}> (open: {self.stack[-3:]})")
        else:
            self.stack.pop()


@pytest.fixture(scope="module")
def clean_report(tmp_path_factory, results, env):
    return _write(tmp_path_factory.mktemp("clean"), results, env, {"exact": 0, "near": 0})


def test_write_report_all_files(clean_report):
    paths = clean_report
    for key in ("csv", "json", "markdown", "html"):
        assert paths[key].is_file() and paths[key].stat().st_size > 0
    # csv: one row per model with value + CI columns
    rows = list(csv.DictReader(paths["csv"].open()))
    assert [r["model"] for r in rows] == ["svm", "rf", "tiny_cnn"]
    for name in METRIC_NAMES:
        assert {name, f"{name}_low", f"{name}_high"} <= set(rows[0])
    assert rows[1]["roc_auc_macro"] == ""  # no scores -> empty, not "nan"
    assert float(rows[0]["accuracy_low"]) <= float(rows[0]["accuracy"])
    assert rows[0]["leakage_exact"] == "0" and rows[0]["synthetic_data"] == "True"
    # json: strict (no NaN), complete
    doc = json.loads(paths["json"].read_text(), parse_constant=pytest.fail)
    assert doc["synthetic_data"] is True and doc["leakage"]["flagged"] is False
    assert len(doc["models"]) == 3 and doc["models"][0]["metrics"]["accuracy"]["low"] > 0
    assert doc["comparison"]["model_a"] == "svm" and doc["comparison"]["model_b"] == "tiny_cnn"
    assert len(doc["y_true"]) == 90 and len(doc["models"][2]["y_score"]) == 90
    assert doc["environment"]["seed"] == 0
    # markdown
    md = paths["markdown"].read_text()
    assert "SYNTHETIC DATA" in md and "LEAKAGE FLAGGED" not in md
    assert "McNemar" in md and "## Environment" in md and "lymphocyte" in md
    assert "0 exact and 0 near-duplicate" in md
    assert md.count("| Class | Precision |") == 3


def test_html_valid_with_embedded_images(clean_report):
    paths = clean_report
    text = paths["html"].read_text()
    assert text.startswith("<!DOCTYPE html>")
    p = _Parser()
    p.feed(text)
    p.close()
    assert not p.errors, p.errors[:3]
    assert p.stack == [], p.stack
    srcs = [img["src"] for img in p.imgs]
    assert all(s.startswith("data:image/") for s in srcs)  # self-contained
    # 2 summary plots + 3 confusion + 2 ROC (rf has no scores) + gallery thumbnails
    pngs = [s for s in srcs if s.startswith("data:image/png;base64,")]
    assert len(pngs) == 2 + 3 + 2
    for s in pngs:
        data = base64.b64decode(s.split(",", 1)[1])
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len([s for s in srcs if s.startswith("data:image/jpeg")]) == 9
    assert "No class scores for: rf" in text
    assert not re.search(r"\bsrc=\"(?!data:)", text)


def test_leakage_flag(tmp_path, results, env):
    paths = _write(tmp_path, results, env, {"exact": 2, "near": 5})
    md = paths["markdown"].read_text()
    page = paths["html"].read_text()
    assert "LEAKAGE FLAGGED: 2 exact and 5 near-duplicate" in md
    assert md.index("LEAKAGE FLAGGED") < md.index("## Results")  # at the top
    assert 'class="banner leak"' in page
    doc = json.loads(paths["json"].read_text())
    assert doc["leakage"]["flagged"] is True
    assert next(csv.DictReader(paths["csv"].open()))["leakage_near"] == "5"


def test_leakage_not_run_real_data_one_family(tmp_path, results, env):
    yt, res = results
    paths = _write(tmp_path, (yt, res[:2]), env, None, synthetic=False)
    md = paths["markdown"].read_text()
    assert "LEAKAGE CHECK NOT RUN" in md and "SYNTHETIC" not in md
    assert "No paired test" in md
    assert json.loads(paths["json"].read_text())["comparison"] is None


def test_leakage_from_wbc_classic_leakage():
    from wbc_classic.evaluation.leakage import find_leakage

    rng = np.random.default_rng(0)
    train = rng.integers(0, 255, (5, 32, 32, 3), dtype=np.uint8)
    test = rng.integers(0, 255, (4, 32, 32, 3), dtype=np.uint8)
    test[1] = train[2]
    for obj in (find_leakage(train, test), find_leakage(train, test).to_dict()):
        s = R.LeakageSummary.from_any(obj)
        assert (s.exact, s.leaked_test, s.flagged) == (1, 1, True)
        assert "LEAKAGE" in s.headline()


def test_split_object_is_described():
    from wbc_classic.data.split import make_split

    split = make_split(np.repeat([0, 1, 2], 10), scheme="80/20", seed=3)
    d = R._split_dict(split)
    assert d["scheme"] == "80/20" and d["seed"] == 3 and d["n_train"] + d["n_test"] == 30


def test_leakage_from_leakage_report_like():
    class FakeReport:  # the attributes of wbc_classic.evaluation.leakage.LeakageReport
        n_exact, n_near, n_leaked_test = 1, 2, 2
        hash_name, max_distance = "phash", 4
        exact_pairs = np.array([[3, 7]])
        near_pairs = np.array([[1, 2, 3], [4, 2, 4]])
        train_names = [f"tr{i}.png" for i in range(5)]
        test_names = [f"te{i}.png" for i in range(8)]

    s = R.LeakageSummary.from_any(FakeReport())
    assert (s.exact, s.near, s.leaked_test, s.flagged) == (1, 2, 2, True)
    assert "phash" in s.method and s.examples[0] == ("tr3.png", "te7.png")
    d = R.LeakageSummary.from_any({"n_exact": 0, "n_near": 0, "hash": "dhash",
                                   "max_distance": 3})
    assert not d.flagged and "dhash" in d.method


def test_compare_best_picks_by_metric(results):
    yt, res = results
    comp = R.compare_best(res, yt, metric="accuracy")
    assert comp is not None and comp.model_a == "svm" and comp.model_b == "tiny_cnn"
    assert comp.result.b + comp.result.c > 0 and 0 <= comp.result.pvalue <= 1


def test_mismatched_classes_rejected(tmp_path, results, env):
    yt, res = results
    with pytest.raises(ValueError, match="classes"):
        R.write_report(tmp_path, res, class_names=("a", "b", "c"),
                       dataset=R.DatasetInfo("x", True), leakage=None, environment=env)


def test_figures_written(tmp_path, results, env):
    yt, res = results
    paths = R.write_report(tmp_path, res[:1], class_names=CLASSES,
                           dataset=R.DatasetInfo("x", True), leakage={"exact": 0},
                           environment=env, y_true=yt, save_figures=True)
    names = sorted(p.name for p in paths["figures"].iterdir())
    assert names == ["confusion_svm.png", "intervals.png", "per_class.png", "roc_svm.png"]


def test_gallery_reads_paths_and_survives_bad_files(tmp_path, results):
    from PIL import Image

    yt, res = results
    good = tmp_path / "cell.png"
    Image.fromarray(np.full((30, 30, 3), 200, np.uint8)).save(good)
    r = R.ModelResult("m", "deep", res[0].evaluation,
                      misclassified=[R.Misclassified(good, 0, 1, 0.8, "cell.png"),
                                     (tmp_path / "missing.png", "monocyte", 2)])
    text = R._gallery_html(r, CLASSES, limit=10)
    assert text.count("data:image/jpeg") == 1 and "cannot show" in text
    assert "lymphocyte" in text and "(0.80)" in text and "neutrophil" in text


def test_format_helpers():
    assert R.format_bytes(None) == "" and R.format_bytes(512) == "512 B"
    assert R.format_bytes(1536) == "1.5 KiB" and R.format_bytes(3 * 2**30) == "3.0 GiB"
    assert R._jsonable({"a": np.float32(np.nan), "b": [np.int64(2)]}) == {"a": None, "b": [2]}
    assert math.isnan(float("nan"))


def test_environment_capture(env):
    assert env["seed"] == 0 and env["command"].startswith("python -m benchmarks.run")
    assert env["packages"]["numpy"] == np.__version__
    assert env["cpu_count"] >= 1 and env["python"].count(".") == 2
    rows = dict(format_environment(env))
    assert "CPU" in rows and "numpy" in rows["Packages"]
    assert command_line(["python", "-m", "benchmarks.run", "--out", "a b"]) == \
        "python -m benchmarks.run --out 'a b'"
    json.dumps(env)  # JSON-ready


def test_figure_functions_return_drawable_figures(results):
    yt, res = results
    fig = R.plot_confusion(res[0].evaluation.confusion, CLASSES, "t")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    assert buf.getvalue()[:4] == b"\x89PNG"


def test_deep_training_table_curves_and_paper_metrics(tmp_path, results, env):
    """A deep row with its history: the 'Deep training' table (epochs, minutes, parameters,
    FLOPs, converged), training curves, and the weighted/MCC table for every model."""
    import dataclasses

    yt, res = results
    hist = [{"epoch": 1, "train_loss": 1.2, "val_loss": 1.1, "train_acc": 0.5, "val_acc": 0.6},
            {"epoch": 2, "train_loss": 0.9, "val_loss": 0.8, "train_acc": 0.7, "val_acc": 0.75,
             "fraction": 0.4}]
    deep = dataclasses.replace(res[2], history=hist, params={
        "img_size": 64, "n_parameters": 1234567, "gflops": 0.183, "train_minutes": 3.5,
        "epochs_run": 1.4, "best_epoch": 2, "stop_reason": "time_budget", "converged": False,
        "max_minutes": 3.5, "recipe": "default"})
    R.write_report(tmp_path, [res[0], deep], class_names=CLASSES,
                   dataset=R.DatasetInfo("synthetic-3", True, "generated cells"),
                   leakage=None, seed=0, environment=env, y_true=yt)
    md = (tmp_path / "report.md").read_text()
    assert "## Deep training" in md and "1,234,567" in md and "| NO |" in md
    assert "## Weighted averages and Matthews correlation" in md and "MCC" in md
    assert "figures/training_curves.png" in md
    assert (tmp_path / "figures" / "training_curves.png").is_file()
    doc = json.loads((tmp_path / "results.json").read_text())
    (d,) = [m for m in doc["models"] if m["name"] == "tiny_cnn"]
    assert d["history"][1]["fraction"] == 0.4 and "mcc" in d["metrics"]
    assert "Training curves" in (tmp_path / "report.html").read_text()
    with open(tmp_path / "results.csv", newline="") as fh:
        rows = {r["model"]: r for r in csv.DictReader(fh)}
    assert rows["tiny_cnn"]["epochs_run"] == "1.4" and rows["tiny_cnn"]["converged"] == "False"
    assert rows["svm"]["n_parameters"] == ""
