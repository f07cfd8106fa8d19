"""deep.transforms: the preprocessing object of a model/checkpoint, torchvision-style."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

pytestmark = pytest.mark.torch

CLASSES = ["lymphocyte", "neutrophil"]


def _image(h=50, w=40, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_preprocess_is_the_training_view_normalised():
    """Same pixels as the training cache (prepare_image), same normalisation as training."""
    from deep.cache import prepare_image
    from deep.data import normalize_batch
    from deep.transforms import Preprocess

    mean, std = (0.6, 0.5, 0.7), (0.2, 0.25, 0.15)
    pre = Preprocess(32, mean, std)
    img = _image()
    x = pre(img)
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    ref = normalize_batch(torch.from_numpy(prepare_image(img, 32)[None]), mean, std)[0]
    torch.testing.assert_close(x, ref, rtol=0, atol=1e-6)
    batch = pre(np.stack([img, _image(seed=1)]))
    assert batch.shape == (2, 3, 32, 32)
    torch.testing.assert_close(batch[0], x)
    assert pre([img, _image(seed=1)]).shape == (2, 3, 32, 32)
    assert "img_size=32" in repr(pre) and "mean=[0.6, 0.5, 0.7]" in pre.describe()


def test_preprocess_composes_and_accepts_pil():
    from PIL import Image
    from torchvision.transforms import v2

    from deep.transforms import Preprocess

    pre = Preprocess(16, (0.5,) * 3, (0.25,) * 3)
    img = _image()
    chain = v2.Compose([pre, v2.RandomHorizontalFlip(p=1.0)])
    torch.testing.assert_close(chain(img), pre(img).flip(-1))
    torch.testing.assert_close(pre(Image.fromarray(img)), pre(img))


def test_preprocess_greyscale_and_bad_input():
    from deep.transforms import Preprocess

    grey = Preprocess(16, (0.5,), (0.25,))
    assert grey(_image()).shape == (1, 16, 16)
    with pytest.raises(ValueError, match="uint8"):
        grey(_image().astype(np.float32))
    with pytest.raises(ValueError, match="shape"):
        grey(np.zeros((10, 10, 4), np.uint8))
    with pytest.raises(ValueError, match="1 or 3 values"):
        Preprocess(16, (0.5, 0.5), (0.2, 0.2))
    with pytest.raises(ValueError, match="positive"):
        Preprocess(16, (0.5,) * 3, (0.2, 0.0, 0.2))


def test_checkpoint_transforms_and_attach(tmp_path):
    from deep.checkpoint import load_model, save_checkpoint
    from deep.models import get_model
    from deep.transforms import attach_transforms, from_checkpoint

    model = get_model("smallcnn", num_classes=2, img_size=24, width=0.25)
    meta = {"model": "smallcnn", "model_kwargs": {"width": 0.25}, "classes": CLASSES,
            "img_size": 24, "mean": [0.7, 0.6, 0.8], "std": [0.2, 0.2, 0.1],
            "crop": "none"}
    path = save_checkpoint(tmp_path / "m.pt", model, meta)
    pre = from_checkpoint(path)
    assert (pre.img_size, pre.mean, pre.crop) == (24, (0.7, 0.6, 0.8), "none")
    loaded, meta2 = load_model(path)
    attach_transforms(loaded, meta2)
    again = loaded.transforms()
    img = _image(30, 60)
    torch.testing.assert_close(again(img), pre(img))
    with torch.no_grad():  # the object feeds the model directly
        assert loaded(again([img, img])).shape == (2, 2)
    with pytest.raises(ValueError, match="no 'std'"):
        attach_transforms(loaded, {"img_size": 24, "mean": [0.5] * 3})


def test_stain_normaliser_travels_in_the_transforms(tmp_path):
    from deep.cache import prepare_image
    from deep.transforms import from_meta
    from wbc_classic.preprocess.stain import make_normalizer

    imgs = [_image(seed=s) for s in range(3)]
    norm = make_normalizer("reinhard").fit(imgs)
    meta = {"img_size": 16, "mean": [0.5] * 3, "std": [0.25] * 3, "stain": norm.to_dict()}
    pre = from_meta(meta)
    want = prepare_image(imgs[0], 16, stain=norm).astype(np.float32) / 255.0
    got = (pre(imgs[0]).permute(1, 2, 0).numpy() * 0.25) + 0.5
    np.testing.assert_allclose(got, want, atol=1e-6)
