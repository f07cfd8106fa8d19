"""Model zoo: every model does forward/backward at 64 px and a short training run."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

import numpy as np  # noqa: E402

from deep.models import get_model, list_models  # noqa: E402

pytestmark = pytest.mark.torch

# keep the suite fast: big models get batch 2, their training run uses 28/32 px inputs
BIG = {"vgg16", "vgg19", "vgg16_gap", "vgg19_gap", "resnet50", "resnet101", "resnet152",
       "densenet121", "densenet201", "inception_v3", "xception"}
# builder kwargs that shrink a model for the training-run test (architecture unchanged)
TINY = {"xception": {"width": 0.25, "middle_blocks": 2}, "unet": {"base": 8},
        "wbcnet": {"width": 0.5}, "smallcnn": {"width": 0.25}, "sevenblock": {"width": 0.5},
        "sevenblock_gap": {"width": 0.5}, "risodkar_cnn": {"width": 0.25},
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
    ("sevenblock", 128), ("sevenblock_gap", 28), ("ndlm", 28), ("ndlm", 224), ("ndlm_bn", 28),
    ("risodkar_cnn", 28), ("risodkar_cnn", 128), ("vit", 28), ("vit", 128), ("vgg16_gap", 28),
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


HEAVY_TRAIN = {"resnet101", "resnet152", "densenet201", "vgg16", "vgg19", "vgg16_gap",
               "vgg19_gap"}


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


@pytest.fixture
def local_hub(tmp_path):
    """``put(arch, file_name)``: a random torchvision ``arch`` saved as ``file_name`` in a
    temporary torch hub cache, which is the hub directory for the test; returns the model."""
    import torchvision

    old = torch.hub.get_dir()
    ckdir = tmp_path / "hub" / "checkpoints"
    ckdir.mkdir(parents=True)
    torch.hub.set_dir(str(tmp_path / "hub"))

    def put(arch, fname):
        ref = getattr(torchvision.models, arch)(weights=None)
        torch.save(ref.state_dict(), ckdir / fname)
        return ref

    yield put
    torch.hub.set_dir(old)


def test_imagenet_weights_from_local_hub_cache(local_hub):
    """A file in the hub cache is found and copied in (stem stride adapted, head replaced)."""
    ref = local_hub("resnet18", "resnet18-f37072fd.pth")
    model = get_model("resnet18", num_classes=5, weights="imagenet", img_size=64)
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


# ------------------------------------------------------------------ published forms vs variants

def _types(seq):
    return [type(m).__name__ for m in seq]


def test_list_models_says_which_is_published_and_which_a_variant():
    from deep.models import model_info

    info = {e.name: e for e in list_models(True, detail=True)}
    assert list(info) == list_models(True)
    for e in info.values():
        assert e.form in ("published", "adapted", "variant", "project") and e.description
        if e.form == "variant" and e.variant_of is not None:
            assert info[e.variant_of].form in ("published", "adapted"), e.name
    pairs = {("vgg16_gap", "vgg16"), ("vgg19_gap", "vgg19"), ("ndlm_bn", "ndlm"),
             ("sevenblock_gap", "sevenblock"), ("smallcnn", "risodkar_cnn")}
    assert {(e.name, e.variant_of) for e in info.values() if e.variant_of} == pairs
    assert {"vgg16", "vgg19", "ndlm", "sevenblock", "risodkar_cnn"} <= set(
        list_models(form="published"))
    assert model_info("threeconv").name == "risodkar_cnn"
    with pytest.raises(ValueError, match="form must be"):
        list_models(form="paper")


def test_ndlm_published_layer_order_and_variant():
    pub = get_model("ndlm", num_classes=5, img_size=64)
    assert _types(pub.features) == ["BatchNorm2d", "Conv2d", "MaxPool2d", "LocalResponseNorm"]
    conv, pool = pub.features[1], pub.features[2]
    assert (conv.in_channels, conv.out_channels, conv.kernel_size, conv.padding) == \
        (3, 10, (5, 5), (0, 0))
    assert (pool.kernel_size, pool.stride) == (5, 5)
    assert _types(pub.head) == ["Flatten", "Dropout", "Linear"]
    assert pub.head[-1].in_features == 10 * 12 * 12  # 64 -> 60 (5x5 conv) -> 12 (pool /5)
    var = get_model("ndlm_bn", num_classes=5, img_size=64)
    assert _types(var.features) == ["BatchNorm2d", "Conv2d", "ReLU", "BatchNorm2d", "MaxPool2d",
                                    "LocalResponseNorm"]
    assert _types(var.head) == ["Flatten", "BatchNorm1d", "Dropout", "Linear"]


def test_sevenblock_published_pools_and_drops_out_in_every_block():
    pub = get_model("sevenblock", num_classes=4, img_size=64, width=0.25)
    t = _types(pub.features)
    assert t.count("Conv2d") == 7 and t.count("MaxPool2d") == 7 and t.count("Dropout") == 7
    assert all(m.stride == 2 for m in pub.features if isinstance(m, torch.nn.MaxPool2d))
    assert isinstance(pub.pool, torch.nn.Identity) and pub.head[1].out_features == 128
    var = get_model("sevenblock_gap", num_classes=4, img_size=64, width=0.25)
    t = _types(var.features)
    assert t.count("MaxPool2d") == 6 and "Dropout" not in t
    assert isinstance(var.pool, torch.nn.AdaptiveAvgPool2d)
    with torch.no_grad():  # 128 px: the flattened map is still 1x1 after seven stride-2 pools
        assert get_model("sevenblock", img_size=128, width=0.25).eval()(
            torch.randn(1, 3, 128, 128)).shape == (1, 8)


def test_risodkar_published_filters_dense_and_unpadded_convs():
    pub = get_model("risodkar_cnn", num_classes=4, img_size=64)
    convs = [m for m in pub.features if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 256, 128]
    assert all(c.padding == (0, 0) and c.stride == (1, 1) for c in convs)
    assert pub.head[1].in_features == 128 * 6 * 6 and pub.head[1].out_features == 256
    wide = get_model("risodkar_cnn", num_classes=4, img_size=64, kernel_sizes=(5, 3, 3))
    assert wide.features[0].kernel_size == (5, 5)
    with pytest.raises(ValueError, match="too small"):
        get_model("risodkar_cnn", img_size=16)


def test_vgg_published_head_vs_gap_variant():
    pub = get_model("vgg16", num_classes=5, img_size=64)
    lin = [m for m in pub.classifier if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in lin] == \
        [(512 * 2 * 2, 4096), (4096, 4096), (4096, 5)]
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in pub.features)
    assert sum(isinstance(m, torch.nn.Conv2d) for m in pub.features) == 13
    vgg19 = get_model("vgg19", img_size=32)
    assert sum(isinstance(m, torch.nn.Conv2d) for m in vgg19.features) == 16
    var = get_model("vgg16_gap", num_classes=5, img_size=64)
    assert isinstance(var.avgpool, torch.nn.AdaptiveAvgPool2d)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in var.features)
    assert var.classifier[-1].in_features == 512


def test_vgg_published_keeps_imagenet_head_layers(local_hub):
    """ImageNet weights fill the published head except the class layer (and FC-1 below 224)."""
    ref = local_hub("vgg16", "vgg16-397923af.pth")
    model = get_model("vgg16", num_classes=5, weights="imagenet", img_size=64)
    assert torch.equal(model.classifier[3].weight, ref.classifier[3].weight)
    assert torch.equal(model.features[0].weight, ref.features[0].weight)
    assert model.classifier[0].in_features == 2048 and model.classifier[6].out_features == 5
    assert model.transforms().mean == (0.485, 0.456, 0.406)


# ------------------------------------------------------------------ torchvision/timm manners

@pytest.mark.parametrize("name", list_models())
def test_builders_are_keyword_only_and_take_in_chans(name):
    from deep.models import get_builder

    with pytest.raises(TypeError):
        get_builder(name)(5)  # num_classes is keyword-only, as in torchvision
    size = 32 if name in BIG else 28
    model = get_model(name, num_classes=5, img_size=size, in_chans=1,
                      **TINY.get(name, {})).eval()
    assert model.in_chans == 1
    with torch.no_grad():
        assert model(torch.randn(2, 1, size, size)).shape == (2, 5)
    with pytest.raises(ValueError, match="expected 1 channels"):
        model(torch.randn(2, 3, size, size))


def test_in_chans_carries_imagenet_stem_weights(local_hub):
    ref = local_hub("resnet18", "resnet18-f37072fd.pth")
    grey = get_model("resnet18", weights="imagenet", in_chans=1)
    five = get_model("resnet18", weights="imagenet", in_chans=5)
    assert torch.allclose(grey.conv1.weight, ref.conv1.weight.sum(1, keepdim=True))
    assert torch.allclose(five.conv1.weight[:, 3:5], ref.conv1.weight[:, :2] * 3 / 5)
    assert len(grey.transforms().mean) == 1


def test_transforms_of_a_random_model_ask_for_the_normalisation():
    model = get_model("wbcnet", img_size=32)
    with pytest.raises(ValueError, match="no normalisation of its own"):
        model.transforms()
    pre = model.transforms(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    assert pre.img_size == 32


def test_ensemble_members_follow_in_chans():
    from deep.models.ensemble import ensemble

    ens = ensemble(num_classes=3, img_size=32, in_chans=1, members=("smallcnn", "wbcnet"),
                   member_kwargs=[{"width": 0.25}, {"width": 0.25}]).eval()
    with torch.no_grad():
        assert ens(torch.randn(2, 1, 32, 32)).shape == (2, 3)
    with pytest.raises(ValueError, match="input channels"):
        ensemble(num_classes=3, img_size=32, in_chans=1,
                 members=[get_model("smallcnn", num_classes=3, img_size=32)])


def test_ensemble_of_one_channel_checkpoints_round_trips(tmp_path):
    from deep.checkpoint import load_model, save_checkpoint
    from deep.models.ensemble import ensemble_from_checkpoints

    paths = []
    for i, name in enumerate(("smallcnn", "wbcnet")):
        m = get_model(name, num_classes=3, img_size=32, in_chans=1, width=0.25)
        meta = {"model": name, "model_kwargs": {"width": 0.25, "in_chans": 1},
                "classes": ["a", "b", "c"], "img_size": 32, "mean": [0.5], "std": [0.2]}
        paths.append(save_checkpoint(tmp_path / f"{i}.pt", m, meta))
    ens, meta = ensemble_from_checkpoints(paths)
    saved = save_checkpoint(tmp_path / "ens.pt", ens, meta)
    again, _ = load_model(saved)
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(again(x), ens.eval()(x))


# ------------------------------------------------------------------ norm="batch"|"group"|"layer"

NORM_CASES = {"wbcnet": {"width": 0.25, "dropout": 0.0}, "resnet18": {}}


@pytest.mark.parametrize("name", list(NORM_CASES))
@pytest.mark.parametrize("norm", ["batch", "group", "layer"])
def test_norm_choice_builds_the_asked_layers(name, norm):
    from torch import nn

    model = get_model(name, num_classes=4, img_size=32, norm=norm, **NORM_CASES[name])
    kinds = {type(m) for m in model.modules()
             if isinstance(m, nn.BatchNorm2d | nn.GroupNorm | nn.LayerNorm)}
    assert kinds == ({nn.BatchNorm2d} if norm == "batch" else {nn.GroupNorm})
    groups = {m.num_groups for m in model.modules() if isinstance(m, nn.GroupNorm)}
    if norm == "layer":
        assert groups == {1}  # LayerNorm over (C, H, W)
    if norm == "group":
        assert max(groups) == 32 and all(
            m.num_channels % m.num_groups == 0 and m.num_channels // m.num_groups >= 2
            for m in model.modules() if isinstance(m, nn.GroupNorm))
    model.train()
    z = model(torch.randn(3, 3, 32, 32))
    assert z.shape == (3, 4) and torch.isfinite(z).all()
    z.logsumexp(1).mean().backward()


def test_group_count_rule():
    from deep.models._common import group_count, norm_layer

    assert [group_count(c) for c in (1, 2, 3, 8, 12, 24, 64, 256, 2048)] == \
        [1, 1, 1, 4, 6, 12, 32, 32, 32]
    assert norm_layer("group", 48).num_groups == 24 and norm_layer("layer", 48).num_groups == 1


@pytest.mark.parametrize("name", list(NORM_CASES))
@pytest.mark.parametrize("norm", ["batch", "group", "layer"])
def test_group_and_layer_norm_never_mix_the_samples_of_a_batch(name, norm):
    """A sample's logits do not depend on the other samples of its batch with group/layer
    norm, in training mode too; with BatchNorm in training mode they do (the test can fail)."""
    model = get_model(name, num_classes=4, img_size=32, norm=norm, **NORM_CASES[name])
    with torch.no_grad():
        for p in model.parameters():  # the zero-initialised residual gains would hide a branch
            if not p.abs().max():
                p.normal_(0.0, 0.1)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 32, 32, generator=g)
    others = torch.rand(4, 3, 32, 32, generator=g) * 3.0
    for train_mode in (False, True):
        model.train(train_mode)
        with torch.no_grad():
            a = model(x)
            b = model(torch.cat([x[:2], others[2:]]))
        same = torch.allclose(a[:2], b[:2], atol=1e-5)
        assert same == (norm != "batch" or not train_mode), (norm, train_mode)


def test_unknown_norm_and_imagenet_weights_with_group_norm_are_refused():
    from deep.pretrained import PretrainedWeightsUnavailable

    for name in ("wbcnet", "resnet18", "resnet50"):
        with pytest.raises(ValueError, match=r"unknown norm 'instance'.*batch, group, layer"):
            get_model(name, norm="instance")
    with pytest.raises(ValueError, match="ImageNet weights were trained with BatchNorm"):
        get_model("resnet18", weights="imagenet", norm="group")
    with pytest.raises(PretrainedWeightsUnavailable, match="no ImageNet weights exist"):
        get_model("wbcnet", weights="imagenet", norm="layer")


def test_norm_in_model_kwargs_round_trips_through_a_checkpoint(tmp_path):
    from torch import nn

    from deep.checkpoint import load_model, save_checkpoint
    from deep.train import model_cost

    kwargs = {"width": 0.25, "norm": "group"}
    model = get_model("wbcnet", num_classes=3, img_size=32, **kwargs).eval()
    meta = {"model": "wbcnet", "model_kwargs": kwargs, "classes": ["a", "b", "c"],
            "img_size": 32, "mean": [0.5] * 3, "std": [0.2] * 3}
    again, meta2 = load_model(save_checkpoint(tmp_path / "g.pt", model, meta))
    assert meta2["model_kwargs"]["norm"] == "group"
    assert any(isinstance(m, nn.GroupNorm) for m in again.modules())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in again.modules())
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), again(x))
    # the FLOPs counter handles GroupNorm; the convolutions dominate either way
    cost = {n: model_cost("wbcnet", num_classes=3, img_size=32, width=0.25, norm=n)
            for n in ("batch", "group")}
    assert cost["group"]["n_parameters"] == cost["batch"]["n_parameters"]
    assert cost["group"]["flops"] > 0 and cost["group"]["flops"] == pytest.approx(
        cost["batch"]["flops"], rel=0.05)
