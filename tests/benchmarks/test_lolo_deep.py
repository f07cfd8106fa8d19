"""The networks' leave-one-lab-out benchmark on tiny synthetic labs (tiny network, seconds)."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import pytest

pytest.importorskip("torch")

from benchmarks import lolo_deep  # noqa: E402
from wbc_classic.data.synthetic_sets import (  # noqa: E402
    write_class_folders,
    write_segmentation_set,
)

TINY = ["--model", "wbcnet", "--width", "0.25", "--img-size", "32", "--crop", "center",
        "--recipe", "default", "--epochs", "2", "--max-minutes", "1", "--n-resamples", "50"]


@pytest.fixture(scope="module")
def labs_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("labs")
    write_class_folders(root / "pbc", 10, size=64, seed=1)
    write_segmentation_set(root / "cellavision_seg", 25, seed=2, size=64, stain_shift=0.5)
    write_segmentation_set(root / "jtsc_seg", 25, seed=3, size=64, stain_shift=-0.7,
                           scale=0.8)
    return root


@pytest.fixture(scope="module")
def run(labs_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("lolo-deep")
    code = lolo_deep.main(["--data", str(labs_root), "--norms", "batch,group", *TINY,
                           "--fewshot", "2", "--fewshot-seeds", "0", "--fewshot-epochs", "1",
                           "--cache-dir", str(out / "cache"), "--out", str(out)])
    assert code == 0
    return out, json.loads((out / "results.json").read_text())


def test_every_norm_is_scored_on_every_lab_and_bn_adaptation_only_with_batchnorm(run):
    _, res = run
    got = {(r["norm"], r["adaptation"], r["test"]) for r in res["rows"]}
    labs = {"pbc", "cellavision_seg", "jtsc_seg"}
    # the head-input rows need 20 images: the tiny PBC test part (10) has none
    big = labs - {"pbc"}
    assert {(n, a, t) for n, a, t in got if n == "batch"} == {
        ("batch", a, t) for a in ("none", "bn") for t in labs} | {
        ("batch", a, t) for a in ("features", "auto") for t in big}
    # a GroupNorm network has no BatchNorm statistics to adapt, but a head input to standardise
    assert {(n, a, t) for n, a, t in got if n == "group"} == {
        ("group", "none", t) for t in labs} | {
        ("group", a, t) for a in ("features", "auto") for t in big}
    for r in res["rows"]:
        assert sum(map(sum, r["confusion"])) == r["n"]
        assert 0 <= r["accuracy"]["value"] <= 1


def test_shift_auroc_is_reported_for_the_other_labs_without_adaptation(run):
    _, res = run
    for r in res["rows"]:
        has = "shift_auroc" in r
        assert has == (r["test"] != "pbc" and r["adaptation"] == "none"), r["model"]
        assert ("energy_auroc" in r) == has
        # the score deep.predict writes: the penultimate features' Mahalanobis distance
        assert r["shift_method"] == "mahalanobis"
        if has:
            assert 0.0 <= r["shift_auroc"] <= 1.0
            assert 0.0 <= r["energy_auroc"] <= 1.0
        assert 0.0 <= r["flagged"] <= 1.0


def test_fewshot_rows_per_target_and_k(run):
    out, res = run
    assert {(r["target"], r["k"]) for r in res["fewshot"]} == {
        (t, 2) for t in ("cellavision_seg", "jtsc_seg")}
    assert {r["replay"] for r in res["fewshot"]} == {1}
    assert "Few-shot" in (out / "report.md").read_text()


def test_a_rerun_reads_the_networks_back(run, labs_root):
    out, res = run
    done = sorted(out.glob("nets/*/done.json"))
    # 2 norms trained on pbc, each fine-tuned once per (target, k, seed): 2 x (1 + 2)
    assert len(done) == 6
    stamps = [p.stat().st_mtime_ns for p in done]
    assert lolo_deep.main(["--data", str(labs_root), "--norms", "batch,group", *TINY,
                           "--fewshot", "2", "--fewshot-seeds", "0", "--fewshot-epochs", "1",
                           "--cache-dir", str(out / "cache"), "--out", str(out)]) == 0
    assert [p.stat().st_mtime_ns for p in sorted(out.glob("nets/*/done.json"))] == stamps
    again = json.loads((out / "results.json").read_text())
    assert [r["accuracy"] for r in again["rows"]] == [r["accuracy"] for r in res["rows"]]


def test_bad_arguments_fail_before_any_training(labs_root, tmp_path, capsys):
    assert lolo_deep.main(["--data", str(labs_root), "--norms", "instance",
                           "--out", str(tmp_path)]) == 2
    assert "instance" in capsys.readouterr().err
    assert lolo_deep.main(["--data", str(labs_root), "--train", "bccd",
                           "--out", str(tmp_path)]) == 2
    assert "bccd" in capsys.readouterr().err
    assert lolo_deep.main(["--data", str(labs_root), "--train", "jtsc_seg", "--fewshot", "5",
                           "--out", str(tmp_path)]) == 2
    assert "pbc" in capsys.readouterr().err
    assert lolo_deep.main(["--data", str(labs_root), "--fewshot", "5", "--fewshot-replay", "0",
                           "--out", str(tmp_path)]) == 2
    assert "--fewshot-replay" in capsys.readouterr().err
    assert not list(tmp_path.glob("nets/*"))


def test_a_stain_normaliser_is_fitted_once_and_kept_by_the_fine_tuning(labs_root, tmp_path):
    spec = lolo_deep.NetSpec(model="wbcnet", width=0.25, img_size=32, crop="center",
                             recipe="default", epochs=1, max_minutes=1, stain="reinhard")
    assert spec.name.endswith("-reinhard")
    # a spec without a normaliser (or alignment) keeps the key of the networks trained
    # before those options
    plain = lolo_deep.NetSpec()
    fields = {k: v for k, v in dataclasses.asdict(plain).items()
              if k not in ("stain", "align_weight")}
    before = hashlib.sha256(json.dumps(fields, sort_keys=True).encode())
    before.update(b"a.png")
    before.update(np.asarray([0], np.int64).tobytes())
    assert lolo_deep._key(plain, ["a.png"], [0]) == before.hexdigest()[:12]
    assert lolo_deep._key(spec, ["a.png"], [0]) != lolo_deep._key(
        lolo_deep.NetSpec(model="wbcnet", width=0.25, img_size=32, crop="center",
                          recipe="default", epochs=1, max_minutes=1), ["a.png"], [0])
    labs = lolo_deep.load_labs(labs_root, ["pbc", "jtsc_seg"], seed=0)
    pair = next(p for p in lolo_deep.lolo_pairs(labs) if p.train_name == "pbc")
    _, meta, run = lolo_deep.train_network(spec, pair.train_paths, pair.train_y,
                                           out=tmp_path, cache_dir=str(tmp_path / "c"))
    assert meta["stain"]["name"] == "reinhard"
    jtsc = labs["jtsc_seg"]
    _, tuned, _ = lolo_deep.train_network(spec, list(jtsc.train_paths), jtsc.train_y,
                                          out=tmp_path,
                                          cache_dir=str(tmp_path / "c"),
                                          pretrained=str(run / "best.pt"),
                                          overrides={"epochs": 1, "max_minutes": None})
    # not refitted on the fine-tuning images (another lab's): the base network's reference
    assert tuned["stain"] == meta["stain"]
    assert lolo_deep.main(["--data", str(labs_root), "--stain", "purple",
                           "--out", str(tmp_path / "x")]) == 2


def test_align_weight_trains_one_network_per_held_out_lab_aligned_to_it(labs_root, tmp_path,
                                                                        monkeypatch):
    calls = []
    real = lolo_deep.train_network

    def spy(spec, paths, y, **kw):
        calls.append((spec, list(paths), kw.get("align_paths")))
        return real(spec, paths, y, **kw)

    monkeypatch.setattr(lolo_deep, "train_network", spy)
    out = tmp_path / "aligned"
    assert lolo_deep.main(["--data", str(labs_root), "--labs", "pbc,jtsc_seg,cellavision_seg",
                           *TINY, "--align-weight", "0.5", "--adapt", "none",
                           "--cache-dir", str(tmp_path / "c"), "--out", str(out)]) == 0
    labs = lolo_deep.load_labs(labs_root, ["pbc", "jtsc_seg", "cellavision_seg"], seed=0)
    assert len(calls) == 2                                   # one per held-out lab
    for spec, paths, _ in calls:
        assert spec.align_weight == 0.5 and spec.name.endswith("-coral0.5")
        assert paths == list(labs["pbc"].train_paths)
    assert sorted(tuple(a) for _, _, a in calls) == sorted(
        tuple(labs[t].test_paths) for t in ("jtsc_seg", "cellavision_seg"))
    rows = json.loads((out / "results.json").read_text())["rows"]
    # each network on its own lab and on PBC's test part, nothing else
    assert sorted(r["test"] for r in rows) == ["cellavision_seg", "jtsc_seg", "pbc", "pbc"]
    assert lolo_deep.main(["--data", str(labs_root), "--align-weight", "-1",
                           "--out", str(tmp_path)]) == 2
