"""Model zoo: every model does forward/backward at 64 px and a short training run."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

import numpy as np  # noqa: E402

from deep.models import get_model, list_models  # noqa: E402

pytestmark = pytest.mark.torch

# keep the suite fast: big models get batch 2, their training run uses 28/32 px inputs
BIG = {"vgg16", "vgg19", "resnet50", "resnet101", "resnet152", "densenet121", "densenet201",
       "inception_v3", "xception"}
# builder kwargs that shrink a model for the training-run test (architecture unchanged)
TINY = {"xception": {"width": 0.25, "middle_blocks": 2}, "unet": {"base": 8},
        "wbcnet": {"width": 0.5}, "smallcnn": {"width": 0.25}, "sevenblock": {"width": 0.5},
        "vit": {"hidden_dim": 48, "depth": 2, "num_heads": 2, "mlp_dim": 96},
        "mobilenet_v2": {"width_mult": 0.35}}


@pytest.fixture(autouse=True)
def _threads():
    old = torch.get_num_threads()
    torch.set_num_threads(min(2, old))
    torch.manual_seed(0)
    yield
    torch.set_num_threads(old)


@pytest.mark.parametrize("name", list_models())
def test_forward_backward_64(name):
    model = get_model(name, num_classes=8, img_size=64)
    model.train()
    x = torch.randn(2, 3, 64, 64)
    z = model(x)
    assert z.shape == (2, 8)
    z.logsumexp(1).mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert model.arch and model.img_size == 64
    model.get_submodule(model.head_name)  # the head exists (used by two-phase fine-tuning)


@pytest.mark.parametrize("name,size", [
    ("wbcnet", 28), ("wbcnet", 128), ("wbcnet", 224), ("smallcnn", 28), ("sevenblock", 28),
    ("sevenblock", 128), ("ndlm", 28), ("ndlm", 224), ("vit", 28), ("vit", 128),
    ("resnet18", 28), ("resnet18", 128), ("resnet18", 224), ("mobilenet_v2", 28),
    ("mobilenet_v2", 224), ("densenet121", 28), ("inception_v3", 28), ("inception_v3", 128),
    ("vgg16", 28), ("xception", 28), ("unet", 28), ("unet", 128),
])
def test_other_sizes(name, size):
    model = get_model(name, num_classes=5, img_size=size, **TINY.get(name, {}))
    model.eval()
    with torch.no_grad():
        z = model(torch.randn(1, 3, size, size))
    assert z.shape == (1, 5)


HEAVY_TRAIN = {"resnet101", "resnet152", "densenet201", "vgg16", "vgg19"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY_TRAIN
                                  else n for n in list_models()])
def test_short_training_run(name):
    from deep.data import ArrayDataset, build_augmentation
    from deep.train import TrainConfig, fit
    from wbc_classic.data.synthetic import make_cells

    size = 32 if name in BIG else 28
    imgs, y, classes = make_cells(1, size=size, seed=1)
    imgs = np.asarray(imgs, np.uint8)
    model = get_model(name, num_classes=len(classes), img_size=size, **TINY.get(name, {}))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = TrainConfig(epochs=1, batch_size=2, lr=1e-3,
                      warmup_epochs=0, progress=False, patience=0)
    meta = {"model": name, "classes": list(classes), "img_size": size,
            "mean": [0.5] * 3, "std": [0.25] * 3}
    ds = ArrayDataset(imgs, y, transform=build_augmentation(rotation=90))
    hist = fit(model, ds, ArrayDataset(imgs, y, np.arange(2)), cfg, meta=meta)
    row = hist["history"][0]
    assert np.isfinite(row["train_loss"]) and np.isfinite(row["val_loss"])
    after = model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before
               if before[k].dtype.is_floating_point)


def test_light_model_learns_synthetic_cells():
    """wbcnet fits a small synthetic 5-class set well above chance in a few epochs."""
    from deep.data import ArrayDataset
    from deep.train import TrainConfig, fit, predict_logits
    from wbc_classic.data.synthetic import make_cells

    imgs, y, classes = make_cells(8, size=32, seed=3)
    model = get_model("wbcnet", num_classes=len(classes), img_size=32, width=0.5)
    meta = {"model": "wbcnet", "classes": list(classes), "img_size": 32,
            "mean": [0.7] * 3, "std": [0.2] * 3}
    cfg = TrainConfig(epochs=6, batch_size=8, lr=3e-3, warmup_epochs=0.5, progress=False,
                      patience=0, label_smoothing=0.0)
    fit(model, ArrayDataset(imgs, y), None, cfg, meta=meta)
    acc = float(np.mean(predict_logits(model, imgs, meta["mean"], meta["std"]).argmax(1) == y))
    assert acc > 0.6


def test_unknown_model_lists_the_zoo():
    with pytest.raises(ValueError, match="unknown model 'resnet7'.*wbcnet"):
        get_model("resnet7")


@pytest.mark.parametrize("name", ["wbcnet", "resnet18", "vit", "ndlm"])
def test_wrong_channel_count_is_named(name):
    model = get_model(name, img_size=64).eval()
    with pytest.raises(ValueError, match="3 colour channels.*got 1 channels"):
        model(torch.randn(2, 1, 64, 64))
    with pytest.raises(ValueError, match="4-D batch"):
        model(torch.randn(3, 64, 64))


def test_tiny_images_are_refused_clearly():
    with pytest.raises(ValueError, match="too small"):
        get_model("wbcnet", img_size=64).eval()(torch.randn(1, 3, 4, 4))
    with pytest.raises(ValueError, match="img_size=4 is too small"):
        get_model("resnet18", img_size=4)
    with pytest.raises(ValueError, match="not a multiple of patch_size"):
        get_model("vit", img_size=60)


def test_imagenet_weights_missing_offline_message(tmp_path, monkeypatch):
    from deep.pretrained import PretrainedWeightsUnavailable

    monkeypatch.delenv("WBC_ALLOW_DOWNLOAD", raising=False)
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    try:
        with pytest.raises(PretrainedWeightsUnavailable) as err:
            get_model("resnet18", weights="imagenet")
        msg = str(err.value)
        assert "resnet18-f37072fd.pth" in msg and "not available offline" in msg
        assert str(tmp_path / "hub" / "checkpoints") in msg and "from scratch" in msg
        with pytest.raises(PretrainedWeightsUnavailable, match="no ImageNet weights exist"):
            get_model("wbcnet", weights="imagenet")
    finally:
        torch.hub.set_dir(old)


def test_imagenet_weights_from_local_hub_cache(tmp_path):
    """A file in the hub cache is found and copied in (stem stride adapted, head replaced)."""
    import torchvision

    ref = torchvision.models.resnet18(weights=None)
    ckdir = tmp_path / "hub" / "checkpoints"
    ckdir.mkdir(parents=True)
    torch.save(ref.state_dict(), ckdir / "resnet18-f37072fd.pth")
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    try:
        model = get_model("resnet18", num_classes=5, weights="imagenet", img_size=64)
    finally:
        torch.hub.set_dir(old)
    assert torch.equal(model.conv1.weight, ref.conv1.weight)
    assert torch.equal(model.layer4[1].conv2.weight, ref.layer4[1].conv2.weight)
    assert model.fc.out_features == 5


def test_ensemble_soft_and_stack():
    from deep.models.ensemble import ensemble

    members = [get_model("smallcnn", num_classes=4, width=0.25).eval(),
               get_model("ndlm", num_classes=4).eval()]
    x = torch.randn(3, 3, 64, 64)
    soft = ensemble(num_classes=4, members=members, mode="soft").eval()
    with torch.no_grad():
        p = torch.softmax(soft(x), 1)
        ref = (torch.softmax(members[0](x), 1) + torch.softmax(members[1](x), 1)) / 2
    assert torch.allclose(p, ref, atol=1e-5)
    stack = ensemble(num_classes=4, members=members, mode="stack")
    stack.train()
    stack(x).sum().backward()
    assert stack.stack.weight.grad is not None
    assert all(p.grad is None for p in stack.members.parameters())


def test_two_phase_fine_tuning_freezes_backbone():
    from deep.train import set_trainable

    model = get_model("resnet18", num_classes=3, img_size=64)
    n_head = set_trainable(model, "head")
    assert n_head == 2 and not model.conv1.weight.requires_grad and model.fc.weight.requires_grad
    n_last = set_trainable(model, "last", 3)
    assert n_last > n_head and model.layer4[1].bn2.weight.requires_grad
    assert not model.conv1.weight.requires_grad
    assert set_trainable(model, "last", 0) == len(list(model.parameters()))
