"""Unsupervised shift and adaptation of networks (deep/adapt.py): the energy score, AdaBN,
``python -m deep.adapt``, ``deep.predict --adapt`` and the shift columns of deep predictions.

Tiny random-weight networks (wbcnet at width 0.25, 32 px) and a dozen synthetic cells; nothing
is trained here.
"""

from __future__ import annotations

import csv
import logging
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

pytestmark = pytest.mark.torch
CLASSES = ["eosinophil", "lymphocyte", "neutrophil"]
MEAN, STD = [0.6, 0.5, 0.7], [0.2, 0.25, 0.15]


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _bns(model):
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def _wbcnet(seed=0):
    from deep.models import get_model

    torch.manual_seed(seed)
    return get_model("wbcnet", num_classes=len(CLASSES), width=0.25, img_size=32).eval()


def _save(path, model, name="wbcnet", kwargs=None, **meta):
    from deep.checkpoint import CheckpointMeta, save_checkpoint

    m = CheckpointMeta(model=name, classes=CLASSES, img_size=32, mean=MEAN, std=STD,
                       model_kwargs=kwargs or {"width": 0.25}, **meta)
    return save_checkpoint(path, model, m)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """A random-weight wbcnet checkpoint whose BN statistics are those of 'source' images."""
    from deep.adapt import adapt_norm_statistics

    source = np.random.default_rng(0).integers(100, 200, (16, 32, 32, 3), dtype=np.uint8)
    model = adapt_norm_statistics(_wbcnet(), source, MEAN, STD)  # non-trivial running stats
    return _save(tmp_path_factory.mktemp("ck") / "best.pt", model, shift_threshold=-1.0)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """24 synthetic single-cell images of another 'laboratory' (shifted stain): enough for
    the ``features`` adaptation (at least 20)."""
    from wbc_classic.data.synthetic_sets import write_class_folders

    return write_class_folders(tmp_path_factory.mktemp("lab") / "lab", 8, classes=CLASSES,
                               size=48, seed=3, stain_shift=1.0)


def _few(tmp_path, lab, n):
    folder = tmp_path / f"few{n}"
    folder.mkdir()
    for p in sorted(lab.rglob("*.png"))[:n]:
        shutil.copy(p, folder / p.name)
    return folder


# ------------------------------------------------------------------------------ energy

def test_energy_score_is_minus_logsumexp():
    from deep.adapt import energy_score

    z = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [2.0, -1.0, 0.5]], np.float32)
    hand = [-np.log(np.exp(1) + np.exp(2) + np.exp(3)), -np.log(3.0),
            -np.log(np.exp(2) + np.exp(-1) + np.exp(0.5))]
    e = energy_score(z)
    assert e.dtype == np.float64 and e.shape == (3,)
    np.testing.assert_allclose(e, hand, rtol=1e-12)
    # temperature: -T logsumexp(z / T)
    np.testing.assert_allclose(energy_score(z, temperature=2.0),
                               [-2 * np.log(np.sum(np.exp(r.astype(float) / 2))) for r in z],
                               rtol=1e-12)
    # a tensor gives the same; huge logits do not overflow
    np.testing.assert_allclose(energy_score(torch.from_numpy(z)), hand, rtol=1e-6)
    np.testing.assert_allclose(energy_score(np.array([[1e4, 0.0], [-1e4, -1e4]])),
                               [-1e4, 1e4 - np.log(2)], rtol=1e-12)
    with pytest.raises(ValueError, match="temperature"):
        energy_score(z, temperature=0)
    with pytest.raises(ValueError, match="shape"):
        energy_score(np.zeros(3))


def test_energy_falls_as_the_network_grows_confident():
    """Scaling one logit up (a more confident network) lowers the energy: higher energy is
    the less familiar image."""
    from deep.adapt import energy_score

    scales = np.linspace(0, 10, 11)
    z = np.stack([[s, 0.0, 0.0, 0.0] for s in scales])
    e = energy_score(z)
    assert np.all(np.diff(e) < 0)
    # unlike the softmax, the energy sees the level of the logits: raising them all by c
    # (same probabilities) lowers it by exactly c
    z = np.array([[1.0, -2.0, 0.5]])
    np.testing.assert_allclose(energy_score(z + 3.0), energy_score(z) - 3.0, rtol=1e-12)


# ------------------------------------------------------------------------------ AdaBN

class _InputBN(nn.Module):
    """BN on the input, then a dropout before a second BN (catches dropout in train mode)."""

    def __init__(self):
        super().__init__()
        self.bn_in = nn.BatchNorm2d(3)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.drop = nn.Dropout(0.5)
        self.bn = nn.BatchNorm2d(4)
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        x = self.bn(self.drop(self.conv(self.bn_in(x))))
        return self.head(x.mean((2, 3)))


def test_adapt_estimates_the_target_statistics_and_leaves_the_model_alone():
    from deep.adapt import adapt_norm_statistics

    torch.manual_seed(0)
    model = _InputBN().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = np.random.default_rng(1)
    target = rng.integers(180, 256, (21, 8, 8, 3), dtype=np.uint8)  # a bright lab
    new = adapt_norm_statistics(model, target, MEAN, STD, batch_size=7)
    x = (target / 255.0 - np.array(MEAN)) / np.array(STD)
    # the input BN's running mean/var are the target's per-channel statistics (three equal
    # batches: the mean of batch means is the mean; the variance is the mean of unbiased
    # batch variances)
    np.testing.assert_allclose(new.bn_in.running_mean.numpy(), x.mean((0, 1, 2)), atol=1e-5)
    batch_var = [b.reshape(-1, 3).var(0, ddof=1) for b in np.split(x, 3)]
    np.testing.assert_allclose(new.bn_in.running_var.numpy(), np.mean(batch_var, 0),
                               rtol=1e-4)
    assert not new.training and not any(m.training for m in new.modules())
    assert new.bn_in.momentum == model.bn_in.momentum == 0.1  # restored after the passes
    # the original is untouched; the copy's weights are the original's
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    for k in ("conv.weight", "head.weight", "bn.weight", "bn_in.bias"):
        assert torch.equal(new.state_dict()[k], before[k])
    assert new is not model and new.conv.weight is not model.conv.weight


def test_adapt_keeps_dropout_in_eval_mode_and_takes_tensors():
    from deep.adapt import adapt_norm_statistics

    torch.manual_seed(0)
    model = _InputBN().eval()
    target = np.random.default_rng(2).integers(0, 256, (12, 8, 8, 3), dtype=np.uint8)
    a = adapt_norm_statistics(model, target, MEAN, STD, batch_size=5)
    b = adapt_norm_statistics(model, target, MEAN, STD, batch_size=5)
    # a dropout in training mode before model.bn would make its statistics random
    assert torch.equal(a.bn.running_mean, b.bn.running_mean)
    assert torch.equal(a.bn.running_var, b.bn.running_var)
    t = adapt_norm_statistics(model, torch.from_numpy(target).permute(0, 3, 1, 2), MEAN, STD,
                              batch_size=5)
    for k, v in a.state_dict().items():
        torch.testing.assert_close(t.state_dict()[k], v)
    x = torch.randn(3, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(a(x), a(x))  # eval mode: deterministic


def test_adapt_moves_the_first_bn_with_the_target_brightness():
    """wbcnet: its first BN follows a convolution, so a brighter target moves its running mean
    by (brightness step) x (sum of each filter's weights)."""
    from deep.adapt import adapt_norm_statistics

    model = _wbcnet()
    rng = np.random.default_rng(0)
    base = rng.integers(60, 140, (16, 32, 32, 3), dtype=np.uint8)
    dark = adapt_norm_statistics(model, base, MEAN, STD)
    bright = adapt_norm_statistics(model, base + np.uint8(80), MEAN, STD)
    conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    shift = (_bns(bright)[0].running_mean - _bns(dark)[0].running_mean).numpy()
    expect = (conv.weight.detach() / torch.tensor(STD).view(1, 3, 1, 1)).sum((1, 2, 3)).numpy()
    assert np.corrcoef(shift, expect)[0, 1] > 0.95
    # and the untouched model's first BN still has its default statistics
    zero = torch.zeros(len(shift))
    assert torch.equal(_bns(model)[0].running_mean, zero)
    assert not torch.equal(_bns(dark)[0].running_mean, zero)


def test_adapt_refuses_too_few_images_and_copies_a_model_without_bn(caplog):
    from deep.adapt import MIN_ADAPT_IMAGES, adapt_norm_statistics
    from deep.models import get_model

    imgs = np.zeros((3, 32, 32, 3), np.uint8)
    with pytest.raises(ValueError, match=f"3 images is too few.*at least {MIN_ADAPT_IMAGES}"):
        adapt_norm_statistics(_wbcnet(), imgs, MEAN, STD)
    with pytest.raises(ValueError, match="batch_size"):
        adapt_norm_statistics(_wbcnet(), np.zeros((8, 32, 32, 3), np.uint8), MEAN, STD,
                              batch_size=1)
    torch.manual_seed(0)
    plain = get_model("smallcnn", num_classes=3, width=0.25, img_size=32).eval()
    assert not _bns(plain)
    with caplog.at_level(logging.WARNING, logger="deep.adapt"):
        same = adapt_norm_statistics(plain, np.zeros((8, 32, 32, 3), np.uint8), MEAN, STD)
    assert "no BatchNorm layer" in caplog.text
    assert same is not plain and not same.training
    for k, v in plain.state_dict().items():
        assert torch.equal(same.state_dict()[k], v)


# ------------------------------------------------------------------------------ metadata

def test_checkpoint_meta_carries_shift_and_adaptation(tmp_path):
    from deep.checkpoint import CheckpointMeta, load_checkpoint, load_model, update_meta

    m = CheckpointMeta(model="wbcnet", classes=CLASSES, img_size=32, mean=MEAN, std=STD,
                       model_kwargs={"width": 0.25}, shift_threshold=-2.5,
                       shift_val_scores=list(np.linspace(-4, -2, 101)),
                       adaptation={"method": "bn-statistics", "n_images": 9, "source": "x/"})
    assert CheckpointMeta.from_dict(m.to_dict()) == m
    path = _save(tmp_path / "a.pt", _wbcnet(), shift_threshold=-2.5,
                 adaptation={"method": "bn-statistics", "n_images": 9, "source": "x/"})
    _, meta = load_model(path)
    assert meta["shift_threshold"] == -2.5 and meta["adaptation"]["n_images"] == 9
    # an old checkpoint, whose metadata has none of the new keys, loads; the fields are None
    old = {k: v for k, v in m.to_dict().items()
           if k not in ("shift_threshold", "shift_val_scores", "adaptation")}
    back = CheckpointMeta.from_dict(old)
    assert back.shift_threshold is None and back.adaptation is None
    assert back.shift_val_scores is None
    from deep.checkpoint import save_checkpoint

    save_checkpoint(tmp_path / "old.pt", _wbcnet(), old)
    _, meta = load_model(tmp_path / "old.pt")
    assert "shift_threshold" not in meta and CheckpointMeta.from_dict(meta).shift_threshold \
        is None
    # update_meta changes the metadata only
    before = load_checkpoint(path)["state_dict"]
    update_meta(path, shift_threshold=1.5)
    after = load_checkpoint(path)
    assert after["meta"]["shift_threshold"] == 1.5 and after["meta"]["adaptation"]
    for k, v in before.items():
        assert torch.equal(after["state_dict"][k], v)


# ------------------------------------------------------------------------------ CLIs

def test_deep_adapt_writes_an_adapted_checkpoint(ckpt, lab, tmp_path, capsys):
    from deep.adapt import adapt_norm_statistics, main
    from deep.checkpoint import load_model
    from deep.inputs import read_inputs
    from wbc_classic.io.predictions import expand_inputs

    out = tmp_path / "adapted.pt"
    assert main(["--checkpoint", str(ckpt), "--images", str(lab), "--out", str(out)]) == 0
    assert "to 24 of 24 images" in capsys.readouterr().out
    new, meta = load_model(out)
    assert meta["adaptation"]["method"] == "bn-statistics"
    assert meta["adaptation"]["n_images"] == 24 and meta["adaptation"]["source"] == str(lab)
    assert meta["classes"] == CLASSES and meta["mean"] == MEAN  # the metadata is kept,
    # but not the flag threshold: the scorer saw the network's features before adaptation
    assert meta["shift_threshold"] is None
    assert "card" not in meta  # this checkpoint had none; one that has gets a note
    from deep.checkpoint import update_meta

    carded = tmp_path / "carded.pt"
    shutil.copy(ckpt, carded)
    update_meta(carded, card={"model": {"file": "best.pt"}, "note": ""})
    assert main(["--checkpoint", str(carded), "--images", str(lab), "--out",
                 str(tmp_path / "c2.pt"), "--cell-check", "contrast"]) == 0
    card = load_model(tmp_path / "c2.pt")[1]["card"]
    assert card["model"]["file"] == "c2.pt" and "AdaBN" in card["note"]
    old, old_meta = load_model(ckpt)
    assert old_meta.get("adaptation") is None
    # exactly AdaBN of the original on the lab's images as deep.predict reads them
    _, images = read_inputs(expand_inputs([lab]), old_meta)
    ref = adapt_norm_statistics(old, images, MEAN, STD)
    for k, v in ref.state_dict().items():
        torch.testing.assert_close(new.state_dict()[k], v)
    assert not torch.equal(_bns(new)[0].running_mean, _bns(old)[0].running_mean)


def test_deep_adapt_bad_input(ckpt, lab, tmp_path, capsys):
    from deep.adapt import main
    from deep.models import get_model

    out = tmp_path / "x.pt"
    few = _few(tmp_path, lab, 3)
    assert main(["--checkpoint", str(ckpt), "--images", str(few), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "a target batch of 3 images is too few" in err and "at least 8" in err
    assert str(few) in err and "Traceback" not in err and not out.exists()
    # an unreadable file is skipped and named; the checkpoint is written (exit 1)
    mixed = tmp_path / "mixed"
    shutil.copytree(lab, mixed)
    (mixed / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    assert main(["--checkpoint", str(ckpt), "--images", str(mixed), "--out", str(out),
                 "--cell-check", "contrast"]) == 1
    cap = capsys.readouterr()
    assert "1 of 25 images skipped" in cap.err and "broken.png" in cap.err
    assert out.is_file()
    # an output folder, a missing checkpoint, a network without BatchNorm: exit 2, no work
    assert main(["--checkpoint", str(ckpt), "--images", str(lab), "--out", str(tmp_path)]) == 2
    assert "existing folder" in capsys.readouterr().err
    assert main(["--checkpoint", str(tmp_path / "none.pt"), "--images", str(lab),
                 "--out", str(tmp_path / "y.pt")]) == 2
    assert "none.pt" in capsys.readouterr().err
    torch.manual_seed(0)
    plain = _save(tmp_path / "plain.pt", get_model("smallcnn", num_classes=3, width=0.25,
                                                  img_size=32), name="smallcnn")
    assert main(["--checkpoint", str(plain), "--images", str(lab), "--out",
                 str(tmp_path / "y.pt")]) == 2
    assert "no BatchNorm layer" in capsys.readouterr().err
    assert not (tmp_path / "y.pt").exists()
    with pytest.raises(SystemExit):
        main(["--checkpoint", str(ckpt), "--images", str(lab), "--out", str(out),
              "--batch-size", "1"])


def test_predict_writes_shift_columns_and_adapts_on_request(ckpt, lab, tmp_path, capsys):
    from deep.adapt import energy_score
    from deep.adapt import main as adapt
    from deep.checkpoint import load_model, update_meta
    from deep.inputs import read_inputs
    from deep.predict import main, predict_logits
    from wbc_classic.io.predictions import expand_inputs

    plain, adapted = tmp_path / "plain.csv", tmp_path / "adapted.csv"
    assert main(["--checkpoint", str(ckpt), str(lab), "--out", str(plain)]) == 0
    out = capsys.readouterr().out
    rows = _rows(plain)
    assert list(rows[0])[-2:] == ["shift_score", "shift_flag"]
    assert "images" in out and "unlike the training data" in out
    model, meta = load_model(ckpt)
    _, images = read_inputs(expand_inputs([lab]), meta)
    e = energy_score(predict_logits(model, images, MEAN, STD))
    np.testing.assert_allclose([float(r["shift_score"]) for r in rows], e, atol=1e-4)
    assert [r["shift_flag"] for r in rows] == [str(int(v > -1.0)) for v in e]
    # --adapt classifies with the batch's own statistics: what deep.adapt's checkpoint predicts
    assert main(["--checkpoint", str(ckpt), str(lab), "--out", str(adapted), "--adapt"]) == 0
    saved = tmp_path / "saved.pt"
    assert adapt(["--checkpoint", str(ckpt), "--images", str(lab), "--out", str(saved)]) == 0
    via_ckpt = tmp_path / "via.csv"
    assert main(["--checkpoint", str(saved), str(lab), "--out", str(via_ckpt)]) == 0
    capsys.readouterr()
    p = lambda rows: np.array([[float(r[f"p_{c}"]) for c in CLASSES] for r in rows])  # noqa: E731
    assert not np.allclose(p(_rows(adapted)), p(rows), atol=1e-4)
    np.testing.assert_allclose(p(_rows(adapted)), p(_rows(via_ckpt)), atol=1e-5)
    # too few images for --adapt: exit 2, one clear line, no CSV
    few = _few(tmp_path, lab, 3)
    bad = tmp_path / "few.csv"
    assert main(["--checkpoint", str(ckpt), str(few), "--out", str(bad), "--adapt"]) == 2
    err = capsys.readouterr().err
    assert "--adapt" in err and "too few" in err and not bad.exists()
    # a checkpoint without a threshold: scores, no flags
    none = tmp_path / "none.pt"
    shutil.copy(ckpt, none)
    update_meta(none, shift_threshold=None)
    assert main(["--checkpoint", str(none), str(lab), "--out", str(plain)]) == 0
    assert "no shift threshold" in capsys.readouterr().out
    rows = _rows(plain)
    assert all(r["shift_flag"] == "" and r["shift_score"] != "" for r in rows)


def test_classical_commands_point_a_deep_checkpoint_to_deep(ckpt, lab, tmp_path, capsys):
    """``wbc-classic adapt|predict --model best.pt``: one line naming the deep command (the
    classical side never imports torch to find out)."""
    from wbc_classic.cli import main

    renamed = tmp_path / "model.bin"  # recognised by its content too
    shutil.copy(ckpt, renamed)
    for model in (ckpt, renamed):
        code = main(["adapt", "--model", str(model), "--images", str(lab), "--out",
                     str(tmp_path / "x.skops")])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
        assert "deep-network checkpoint" in err and "python -m deep.adapt" in err
        assert str(model) in err
    code = main(["predict", "--model", str(ckpt), str(lab), "--out", str(tmp_path / "p.csv")])
    err = capsys.readouterr().err
    assert code == 2 and "python -m deep.predict" in err
    assert not (tmp_path / "x.skops").exists()


def test_ensemble_shift_is_the_mean_member_energy(ckpt, tmp_path):
    from deep.adapt import energy_score
    from deep.checkpoint import load_model
    from deep.models.ensemble import ensemble_from_checkpoints
    from deep.predict import predict_logits, predict_proba

    other = _save(tmp_path / "b.pt", _wbcnet(seed=1), shift_threshold=2.0)
    ens, meta = ensemble_from_checkpoints([ckpt, other], vote_weights=[3, 1])
    assert meta["shift_threshold"] == 2.0 and meta["shift_val_scores"] is None
    imgs = np.random.default_rng(0).integers(0, 255, (5, 32, 32, 3), dtype=np.uint8)
    proba, shift = predict_proba(ens.eval(), imgs, meta, return_shift=True)
    members = [load_model(p)[0] for p in (ckpt, other)]
    zs = [predict_logits(m, imgs, MEAN, STD) for m in members]
    np.testing.assert_allclose(shift, 0.75 * energy_score(zs[0]) + 0.25 * energy_score(zs[1]),
                               rtol=1e-6)
    # the probabilities are still the ensemble's own output
    with torch.no_grad():
        from deep.data import normalize_batch

        ref = torch.softmax(ens(normalize_batch(torch.from_numpy(imgs), MEAN, STD)), 1)
    np.testing.assert_allclose(proba, ref.numpy(), atol=1e-5)
    assert np.allclose(predict_proba(ens, imgs, meta), proba)
    no_thr = _save(tmp_path / "c.pt", _wbcnet(seed=2))
    assert ensemble_from_checkpoints([ckpt, no_thr])[1]["shift_threshold"] is None


def test_penultimate_features_are_what_the_head_receives():
    from deep.adapt import penultimate_features
    from deep.data import normalize_batch

    model = _wbcnet()
    model.train()  # the function evaluates in eval mode and restores the mode
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    feats = penultimate_features(model, images, MEAN, STD, batch_size=2)
    assert model.training
    assert feats.shape == (5, model.head[-1].in_features) and feats.dtype == np.float64
    model.eval()
    with torch.no_grad():
        logits = model(normalize_batch(torch.from_numpy(images), MEAN, STD))
        # the head (flatten, dropout in eval, linear) applied to the features gives the logits
        again = model.head[-1](torch.from_numpy(feats).float())
    np.testing.assert_allclose(again.numpy(), logits.numpy(), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="head_name"):
        penultimate_features(nn.Sequential(nn.Flatten(), nn.Linear(3072, 2)), images, MEAN,
                             STD)


# ------------------------------------------------------------------ feature-space shift score

def _with_feature_shift(model, source):
    """``model`` carrying a FeatureShift fitted on ``source`` images' penultimate features."""
    from deep.adapt import FeatureShift, penultimate_features
    from deep.models._common import set_plain_attrs

    set_plain_attrs(model, feature_shift=FeatureShift.fit(
        penultimate_features(model, source, MEAN, STD)))
    return model


def _source(n=40, seed=0):
    return np.random.default_rng(seed).integers(100, 200, (n, 32, 32, 3), dtype=np.uint8)


def test_feature_shift_scores_other_images_higher_than_its_own():
    """Fitted on one kind of image, the Mahalanobis score of held-out images of that kind is
    about 1, and images of another kind (darker, another 'stain') score far higher."""
    from deep.adapt import penultimate_features

    model = _with_feature_shift(_wbcnet(), _source(200))
    same = model.feature_shift.score(penultimate_features(model, _source(40, seed=1), MEAN, STD))
    other = np.random.default_rng(2).integers(0, 90, (40, 32, 32, 3), dtype=np.uint8)
    far = model.feature_shift.score(penultimate_features(model, other, MEAN, STD))
    assert 0.5 < np.median(same) < 2.0
    assert far.min() > same.max()


def test_feature_shift_travels_in_the_checkpoint_and_drives_deep_predict(lab, tmp_path,
                                                                          capsys):
    from deep.adapt import penultimate_features
    from deep.checkpoint import load_checkpoint, load_model
    from deep.inputs import read_inputs
    from deep.predict import main
    from wbc_classic.io.predictions import expand_inputs

    model = _with_feature_shift(_wbcnet(), _source())
    path = _save(tmp_path / "m.pt", model, shift_method="mahalanobis", shift_threshold=1.5)
    state = load_checkpoint(path)["feature_shift"][""]
    assert set(state) == {"center", "scale", "precision"}  # plain tensors: weights_only reads it
    back, meta = load_model(path)
    for name in ("center", "scale", "precision"):
        np.testing.assert_array_equal(getattr(back.feature_shift, name),
                                      getattr(model.feature_shift, name))
    out = tmp_path / "p.csv"
    assert main(["--checkpoint", str(path), str(lab), "--out", str(out)]) == 0
    rows = _rows(out)
    _, images = read_inputs(expand_inputs([lab]), meta)
    want = model.feature_shift.score(penultimate_features(model, images, MEAN, STD))
    np.testing.assert_allclose([float(r["shift_score"]) for r in rows], want, atol=1e-4)
    assert [r["shift_flag"] for r in rows] == [str(int(v > 1.5)) for v in want]
    # --tta averages the flips' logits; the score stays that of the image as it is
    tta = tmp_path / "tta.csv"
    assert main(["--checkpoint", str(path), str(lab), "--out", str(tta), "--tta"]) == 0
    np.testing.assert_allclose([float(r["shift_score"]) for r in _rows(tta)], want, atol=1e-4)
    # --adapt classifies with the batch's statistics, but the warning is the trained
    # network's: the scorer was fitted on its features
    ad = tmp_path / "ad.csv"
    assert main(["--checkpoint", str(path), str(lab), "--out", str(ad), "--adapt"]) == 0
    np.testing.assert_allclose([float(r["shift_score"]) for r in _rows(ad)], want, atol=1e-4)
    # an adapted copy (python -m deep.adapt) keeps the scorer and the method
    from deep.adapt import main as adapt

    for method in ("bn", "auto"):
        adapted = tmp_path / f"adapted-{method}.pt"
        assert adapt(["--checkpoint", str(path), "--images", str(lab), "--out", str(adapted),
                      "--method", method]) == 0
        again, meta2 = load_model(adapted)
        assert meta2["shift_method"] == "mahalanobis"
        np.testing.assert_array_equal(again.feature_shift.precision,
                                      model.feature_shift.precision)
        via = tmp_path / f"via-{method}.csv"
        assert main(["--checkpoint", str(adapted), str(lab), "--out", str(via)]) == 0
        out = capsys.readouterr().out
        if method == "bn":  # AdaBN moved the features: it flags nothing, saying why
            assert meta2["adaptation"]["method"] == "bn-statistics"
            assert "this checkpoint was adapted" in out
            assert all(r["shift_flag"] == r["shift_score"] == "" for r in _rows(via))
        else:  # auto = features: the backbone is as trained, and so is the warning
            assert meta2["adaptation"]["method"] == "head-inputs"
            assert meta2["shift_threshold"] == 1.5
            np.testing.assert_allclose([float(r["shift_score"]) for r in _rows(via)], want,
                                       atol=1e-4)
            assert [r["shift_flag"] for r in _rows(via)] == [str(int(v > 1.5)) for v in want]


def test_a_mahalanobis_checkpoint_without_its_scorer_is_refused(ckpt, tmp_path):
    from deep.checkpoint import CheckpointError, load_model, update_meta

    with pytest.raises(ValueError, match="no feature_shift"):
        _save(tmp_path / "x.pt", _wbcnet(), shift_method="mahalanobis")
    broken = tmp_path / "broken.pt"
    shutil.copy(ckpt, broken)
    update_meta(broken, shift_method="mahalanobis")
    with pytest.raises(CheckpointError, match="no feature_shift"):
        load_model(broken)
    update_meta(broken, shift_method="knn")
    with pytest.raises(CheckpointError, match="unknown shift_method"):
        load_model(broken)
    # damaged scorer tensors: a clear error naming the file
    good = _save(tmp_path / "g.pt", _with_feature_shift(_wbcnet(), _source()),
                 shift_method="mahalanobis")
    obj = torch.load(good, weights_only=True)
    obj["feature_shift"][""]["precision"] = torch.zeros(3, 3)
    torch.save(obj, good)
    with pytest.raises(CheckpointError, match=r"g\.pt.*damaged feature_shift.*shapes"):
        load_model(good)


def test_ensemble_of_feature_shift_members(ckpt, tmp_path):
    from deep.adapt import penultimate_features
    from deep.checkpoint import load_model
    from deep.models.ensemble import ensemble_from_checkpoints
    from deep.predict import predict_proba

    a = _save(tmp_path / "a.pt", _with_feature_shift(_wbcnet(seed=1), _source()),
              shift_method="mahalanobis", shift_threshold=1.2)
    b = _save(tmp_path / "b.pt", _with_feature_shift(_wbcnet(seed=2), _source(seed=5)),
              shift_method="mahalanobis", shift_threshold=1.7)
    ens, meta = ensemble_from_checkpoints([a, b], vote_weights=[1, 3])
    assert meta["shift_method"] == "mahalanobis" and meta["shift_threshold"] == 1.7
    imgs = _source(6, seed=9)
    _, shift = predict_proba(ens.eval(), imgs, meta, return_shift=True)
    members = [load_model(p)[0] for p in (a, b)]
    per = [m.feature_shift.score(penultimate_features(m, imgs, MEAN, STD)) for m in members]
    np.testing.assert_allclose(shift, 0.25 * per[0] + 0.75 * per[1], rtol=1e-6)
    # a stacked ensemble is one network: its members' scorers do not apply, the energy does
    stack, stack_meta = ensemble_from_checkpoints([a, b], mode="stack")
    assert stack_meta["shift_method"] == "energy" and stack_meta["shift_threshold"] is None
    assert np.isfinite(predict_proba(stack.eval(), imgs, stack_meta, return_shift=True)[1]).all()
    # members scoring in different units: no threshold, and the energy every member can give
    mixed, mixed_meta = ensemble_from_checkpoints([a, ckpt])
    assert mixed_meta["shift_method"] == "energy" and mixed_meta["shift_threshold"] is None
    assert np.isfinite(predict_proba(mixed.eval(), imgs, mixed_meta, return_shift=True)[1]).all()


# ------------------------------------------------------------- head input standardisation

def _target(n=30, seed=3):
    """Darker images than _source's: another 'stain'."""
    return np.random.default_rng(seed).integers(40, 160, (n, 32, 32, 3), dtype=np.uint8)


def test_standardize_head_inputs_moves_the_target_features_onto_the_training_ones():
    from deep.adapt import head_input_map, penultimate_features, standardize_head_inputs
    from deep.predict import predict_logits

    model = _with_feature_shift(_wbcnet(), _source(60))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    target = _target()
    new = standardize_head_inputs(model, target, MEAN, STD)
    # the original is untouched and has no map; the copy's backbone weights are the same
    assert head_input_map(model) is None and head_input_map(new) is not None
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k])
        torch.testing.assert_close(new.state_dict()[k], v)
    raw = penultimate_features(new, target, MEAN, STD)  # the backbone's, before the map
    np.testing.assert_allclose(raw, penultimate_features(model, target, MEAN, STD), atol=1e-5)
    fs, m = model.feature_shift, head_input_map(new)
    mapped = raw * m.slope + m.offset
    live = (raw.std(0) > 1e-3) & (m.slope > 0.1) & (m.slope < 10)  # the slope not at a bound
    assert live.sum() > 10
    np.testing.assert_allclose(mapped.mean(0)[live], fs.center[live], atol=1e-3)
    np.testing.assert_allclose(mapped.std(0)[live], fs.scale[live], rtol=1e-3)
    # the head sees the mapped features: the logits are the head's output of them
    head = new.get_submodule(new.head_name)
    with torch.no_grad():  # forward() itself: not through the hook that maps
        want = head.forward(torch.as_tensor(mapped, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(predict_logits(new, target, MEAN, STD), want, atol=1e-4)
    assert not np.allclose(predict_logits(model, target, MEAN, STD), want, atol=1e-3)
    # adapting again replaces the map instead of stacking a second one on it
    again = standardize_head_inputs(new, target, MEAN, STD)
    np.testing.assert_allclose(head_input_map(again).slope, m.slope, rtol=1e-5)
    np.testing.assert_allclose(predict_logits(again, target, MEAN, STD), want, atol=1e-4)


def test_standardize_head_inputs_refuses_what_it_cannot_do():
    from deep.adapt import standardize_head_inputs

    model = _with_feature_shift(_wbcnet(), _source())
    with pytest.raises(ValueError, match="batch of 3 images is too few"):
        standardize_head_inputs(model, _target(3), MEAN, STD)
    with pytest.raises(ValueError, match="method 'bn'"):
        standardize_head_inputs(_wbcnet(), _target(), MEAN, STD)  # no feature statistics


def test_head_input_map_travels_in_the_checkpoint(tmp_path):
    from deep.adapt import HeadInputMap, head_input_map, standardize_head_inputs
    from deep.checkpoint import CheckpointError, load_checkpoint, load_model
    from deep.predict import predict_logits

    new = standardize_head_inputs(_with_feature_shift(_wbcnet(), _source()), _target(), MEAN,
                                  STD)
    path = _save(tmp_path / "m.pt", new, shift_method="mahalanobis")
    state = load_checkpoint(path)["head_input_map"]
    assert set(state) == {""} and set(state[""]) == {"slope", "offset"}
    back, _ = load_model(path)
    np.testing.assert_array_equal(head_input_map(back).slope, head_input_map(new).slope)
    imgs = _source(5, seed=4)
    np.testing.assert_allclose(predict_logits(back, imgs, MEAN, STD),
                               predict_logits(new, imgs, MEAN, STD), atol=1e-6)
    # a damaged map: one clear error naming the file
    obj = torch.load(path, weights_only=True)
    obj["head_input_map"][""]["offset"] = torch.zeros(3)
    torch.save(obj, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="bad.pt has a damaged head_input_map"):
        load_model(tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="NaN or inf"):
        HeadInputMap.from_state({"slope": torch.tensor([1.0, float("nan")]),
                                 "offset": torch.zeros(2)})


def test_deep_adapt_features_on_a_groupnorm_network(lab, tmp_path, capsys):
    """A GroupNorm network has no BatchNorm statistics, but its head input can be moved;
    ``auto`` does it only when the shift warning flags at least half the images, and
    otherwise writes the checkpoint as it is, saying so; ``--method bn`` says there is
    nothing to adapt; ``--method features`` on a checkpoint without feature statistics says
    what to do instead; an adapted checkpoint is not adapted again."""
    from deep.adapt import head_input_map
    from deep.adapt import main as adapt
    from deep.checkpoint import load_model
    from deep.models import get_model

    torch.manual_seed(0)
    gn = _with_feature_shift(get_model("wbcnet", num_classes=len(CLASSES), width=0.25,
                                       img_size=32, norm="group").eval(), _source())
    common = {"kwargs": {"width": 0.25, "norm": "group"}, "shift_method": "mahalanobis"}
    flags_all = _save(tmp_path / "gn.pt", gn, shift_threshold=0.0, **common)
    flags_none = _save(tmp_path / "gn-high.pt", gn, shift_threshold=1e9, **common)
    out = tmp_path / "gn-lab.pt"
    assert adapt(["--checkpoint", str(flags_all), "--images", str(lab), "--out", str(out),
                  "--cell-check", "contrast"]) == 0
    said = capsys.readouterr().out
    assert "the head's input features (features) to 24 of 24 images; 100 % of them flagged" \
        in said
    adapted, meta = load_model(out)
    assert head_input_map(adapted) is not None and meta["adaptation"]["flagged"] == 1.0
    # auto on images the warning does not flag: the network as trained, the check recorded
    same = tmp_path / "gn-same.pt"
    assert adapt(["--checkpoint", str(flags_none), "--images", str(lab), "--out",
                  str(same)]) == 0
    assert "not adapted: only 0 % of the images look unlike" in capsys.readouterr().out
    kept, kept_meta = load_model(same)
    assert head_input_map(kept) is None and kept_meta["adaptation"]["method"] == "none"
    # ... and such a checkpoint may still be adapted; an adapted one may not
    assert adapt(["--checkpoint", str(same), "--images", str(lab), "--out",
                  str(tmp_path / "again.pt"), "--method", "features"]) == 0
    assert adapt(["--checkpoint", str(out), "--images", str(lab), "--out",
                  str(tmp_path / "twice.pt")]) == 2
    err = capsys.readouterr().err
    assert "is adapted already (head-inputs on" in err and not (tmp_path / "twice.pt").exists()
    assert adapt(["--checkpoint", str(flags_all), "--images", str(lab), "--out",
                  str(tmp_path / "x.pt"), "--method", "bn"]) == 2
    assert "no BatchNorm layer" in capsys.readouterr().err
    old = _save(tmp_path / "old.pt", _wbcnet())  # no feature statistics
    assert adapt(["--checkpoint", str(old), "--images", str(lab), "--out",
                  str(tmp_path / "y.pt"), "--method", "features"]) == 2
    err = capsys.readouterr().err
    assert "no statistics of its training images' features" in err and "--method bn" in err
    assert not (tmp_path / "x.pt").exists() and not (tmp_path / "y.pt").exists()
    # features needs 20 images of the lab's mix, and says so
    few = _few(tmp_path, lab, 12)
    assert adapt(["--checkpoint", str(flags_all), "--images", str(few), "--out",
                  str(tmp_path / "z.pt"), "--method", "features"]) == 2
    err = capsys.readouterr().err
    assert "12 images is too few" in err and "at least 20, of the lab's usual mix" in err


def test_predict_adapt_method_and_an_adapted_checkpoint(lab, tmp_path, capsys):
    """``deep.predict --adapt --method M``; ``--adapt`` followed by the inputs still reads
    them as inputs; an adapted checkpoint is refused by ``--adapt`` in one line."""
    from deep.adapt import main as adapt
    from deep.predict import main

    path = _save(tmp_path / "m.pt", _with_feature_shift(_wbcnet(), _source()),
                 shift_method="mahalanobis", shift_threshold=0.0)
    out = tmp_path / "p.csv"
    assert main(["--checkpoint", str(path), "--adapt", str(lab), "--out", str(out)]) == 0
    assert "adapt: features" in capsys.readouterr().out
    assert main(["--checkpoint", str(path), str(lab), "--out", str(out), "--adapt",
                 "--method", "bn"]) == 0
    assert "adapt: bn" in capsys.readouterr().out
    saved = tmp_path / "a.pt"
    assert adapt(["--checkpoint", str(path), "--images", str(lab), "--out", str(saved)]) == 0
    capsys.readouterr()
    assert main(["--checkpoint", str(saved), str(lab), "--out", str(out), "--adapt"]) == 2
    err = capsys.readouterr().err
    assert "--adapt:" in err and "is adapted already" in err and "Traceback" not in err


def test_adabn_after_a_head_input_map_drops_the_map(tmp_path):
    """AdaBN moves the features a map was fitted to, so it takes the map away; a checkpoint
    whose map does not fit its network is refused when loaded."""
    from deep.adapt import (
        HeadInputMap,
        adapt_norm_statistics,
        head_input_map,
        set_head_input_map,
        standardize_head_inputs,
    )
    from deep.checkpoint import CheckpointError, load_model

    mapped = standardize_head_inputs(_with_feature_shift(_wbcnet(), _source()), _target(),
                                     MEAN, STD)
    assert head_input_map(adapt_norm_statistics(mapped, _target(), MEAN, STD)) is None
    assert head_input_map(mapped) is not None  # the original keeps its map
    set_head_input_map(mapped, HeadInputMap(np.ones(3, np.float32), np.zeros(3, np.float32)))
    path = _save(tmp_path / "narrow.pt", mapped, shift_method="mahalanobis")
    with pytest.raises(CheckpointError, match="is for 3 features, the network's head receives"):
        load_model(path)


def test_predict_adapt_features_for_a_soft_ensemble(tmp_path):
    from deep.adapt import adapt_network, head_input_map
    from deep.models.ensemble import ensemble_from_checkpoints

    a = _save(tmp_path / "a.pt", _with_feature_shift(_wbcnet(seed=1), _source()),
              shift_method="mahalanobis", shift_threshold=1.2)
    b = _save(tmp_path / "b.pt", _with_feature_shift(_wbcnet(seed=2), _source(seed=5)),
              shift_method="mahalanobis", shift_threshold=1.7)
    ens, meta = ensemble_from_checkpoints([a, b])
    new, info = adapt_network(ens, _target(), meta, method="features")
    assert info == {"method": "features"}
    assert all(head_input_map(m) is not None for m in new.members)
    assert all(head_input_map(m) is None for m in ens.members)
