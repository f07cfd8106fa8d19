"""Tests for wbc_classic.io.images: every format, every kind of bad file, bombs, batches."""

from __future__ import annotations

import io
import logging
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wbc_classic.io.images import (
    DEFAULT_MAX_PIXELS,
    ImageReadError,
    ReadFailure,
    image_sha256,
    image_size,
    is_image_file,
    read_grey,
    read_image,
    read_images,
)


def _rgb(h: int = 12, w: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def _check(a: np.ndarray, h: int, w: int) -> None:
    assert a.dtype == np.uint8
    assert a.shape == (h, w, 3)
    assert a.flags.c_contiguous


# ----------------------------------------------------------------------------- formats


@pytest.mark.parametrize("ext", ["png", "bmp", "tif", "tiff"])
def test_lossless_rgb_roundtrip(tmp_path: Path, ext: str) -> None:
    a = _rgb()
    p = tmp_path / f"x.{ext}"
    Image.fromarray(a).save(p)
    b = read_image(p)
    _check(b, 12, 16)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("ext", ["jpg", "jpeg", "JPG"])
def test_jpeg_rgb(tmp_path: Path, ext: str) -> None:
    a = np.full((16, 16, 3), (200, 100, 50), dtype=np.uint8)
    p = tmp_path / f"x.{ext}"
    Image.fromarray(a).save(p, format="JPEG", quality=95)
    b = read_image(p)
    _check(b, 16, 16)
    assert np.abs(b.astype(int) - a).max() <= 4


@pytest.mark.parametrize("ext", ["png", "jpg", "bmp", "tif"])
def test_grey_becomes_rgb(tmp_path: Path, ext: str) -> None:
    g = np.tile(np.arange(0, 256, 16, dtype=np.uint8), (8, 1))
    p = tmp_path / f"g.{ext}"
    Image.fromarray(g, mode="L").save(p)
    b = read_image(p)
    _check(b, 8, 16)
    assert np.array_equal(b[..., 0], b[..., 1]) and np.array_equal(b[..., 1], b[..., 2])
    if ext != "jpg":
        np.testing.assert_array_equal(b[..., 0], g)


def test_bilevel_image(tmp_path: Path) -> None:
    g = np.zeros((8, 8), dtype=bool)
    g[2:5, 2:5] = True
    p = tmp_path / "b.png"
    Image.fromarray(g).save(p)
    b = read_image(p)
    _check(b, 8, 8)
    assert set(np.unique(b)) == {0, 255}
    assert (b[3, 3] == 255).all() and (b[0, 0] == 0).all()


def test_rgba_composited_on_white(tmp_path: Path) -> None:
    a = np.zeros((4, 4, 4), dtype=np.uint8)
    a[..., 0] = 255  # red
    a[0, :, 3] = 255  # opaque row
    a[1, :, 3] = 0  # fully transparent row (black under it would be wrong)
    a[2, :, 3] = 128  # half transparent
    p = tmp_path / "rgba.png"
    Image.fromarray(a, mode="RGBA").save(p)
    b = read_image(p)
    _check(b, 4, 4)
    assert (b[0] == (255, 0, 0)).all()
    assert (b[1] == (255, 255, 255)).all()
    assert (b[2, :, 0] == 255).all() and np.all(np.abs(b[2, :, 1].astype(int) - 127) <= 1)


def test_la_and_palette_with_transparency(tmp_path: Path) -> None:
    la = np.zeros((4, 4, 2), dtype=np.uint8)
    la[..., 0] = 10
    la[:2, :, 1] = 255
    p = tmp_path / "la.png"
    Image.fromarray(la, mode="LA").save(p)
    b = read_image(p)
    assert (b[:2] == 10).all() and (b[2:] == 255).all()

    pal = Image.new("P", (4, 4), 0)
    pal.putpalette([0, 0, 255] + [0, 255, 0] + [0] * (254 * 3))
    pal.putpixel((0, 0), 1)
    pal.info["transparency"] = 0
    p2 = tmp_path / "pt.png"
    pal.save(p2, transparency=0)
    c = read_image(p2)
    _check(c, 4, 4)
    assert tuple(c[0, 0]) == (0, 255, 0)
    assert tuple(c[1, 1]) == (255, 255, 255)


@pytest.mark.parametrize("ext", ["png", "gif", "bmp"])
def test_palette(tmp_path: Path, ext: str) -> None:
    img = Image.new("P", (6, 5), 0)
    img.putpalette([10, 20, 30, 200, 100, 0] + [0] * (254 * 3))
    img.putpixel((1, 1), 1)
    p = tmp_path / f"p.{ext}"
    img.save(p)
    b = read_image(p)
    _check(b, 5, 6)
    assert tuple(b[0, 0]) == (10, 20, 30)
    assert tuple(b[1, 1]) == (200, 100, 0)


@pytest.mark.parametrize("ext", ["png", "tif"])
def test_16bit_grey_scaled_to_8bit(tmp_path: Path, ext: str) -> None:
    g = np.array([[0, 255, 256, 65535], [32768, 1000, 40000, 65280]], dtype=np.uint16)
    p = tmp_path / f"g16.{ext}"
    Image.fromarray(g).save(p)
    b = read_image(p)
    _check(b, 2, 4)
    np.testing.assert_array_equal(b[..., 0], (g >> 8).astype(np.uint8))


@pytest.mark.parametrize("ext", ["png", "tif"])
def test_16bit_rgb(tmp_path: Path, ext: str) -> None:
    cv2 = pytest.importorskip("cv2")
    rgb16 = np.zeros((3, 5, 3), dtype=np.uint16)
    rgb16[..., 0] = 65535
    rgb16[..., 1] = 32896  # 0x8080
    rgb16[..., 2] = 256
    p = tmp_path / f"rgb16.{ext}"
    assert cv2.imwrite(str(p), rgb16[..., ::-1])  # OpenCV writes BGR
    b = read_image(p)
    _check(b, 3, 5)
    assert tuple(b[0, 0]) == (255, 128, 1)


def test_float_and_int32_tiff(tmp_path: Path) -> None:
    f = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    p = tmp_path / "f.tif"
    Image.fromarray(f, mode="F").save(p)
    b = read_image(p)
    _check(b, 3, 4)
    assert b[0, 0, 0] == 0 and b[-1, -1, 0] == 255

    i32 = (np.arange(12, dtype=np.int32).reshape(3, 4) * 20)
    p2 = tmp_path / "i.tif"
    Image.fromarray(i32, mode="I").save(p2)
    c = read_image(p2)
    np.testing.assert_array_equal(c[..., 0], i32.astype(np.uint8))


def test_cmyk_jpeg(tmp_path: Path) -> None:
    img = Image.new("CMYK", (8, 8), (0, 255, 255, 0))  # pure red in CMYK
    p = tmp_path / "cmyk.jpg"
    img.save(p, quality=95)
    b = read_image(p)
    _check(b, 8, 8)
    r, g, bl = b[4, 4].astype(int)
    assert r > 200 and g < 60 and bl < 60


def test_cmyk_tiff(tmp_path: Path) -> None:
    img = Image.new("CMYK", (4, 4), (255, 0, 255, 0))  # green
    p = tmp_path / "cmyk.tif"
    img.save(p)
    b = read_image(p)
    assert tuple(b[0, 0]) == (0, 255, 0)


def test_exif_orientation_applied(tmp_path: Path) -> None:
    a = np.zeros((4, 8, 3), dtype=np.uint8)
    a[0, 0] = 255  # white marker at top-left of the stored pixels
    img = Image.fromarray(a)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display
    p = tmp_path / "o.png"
    img.save(p, exif=exif)
    b = read_image(p)
    _check(b, 8, 4)
    assert (b[0, -1] == 255).all()


def test_multiframe_tiff_first_frame(tmp_path: Path) -> None:
    f1 = Image.fromarray(np.full((4, 4, 3), 10, np.uint8))
    f2 = Image.fromarray(np.full((4, 4, 3), 200, np.uint8))
    p = tmp_path / "stack.tif"
    f1.save(p, save_all=True, append_images=[f2])
    assert (read_image(p) == 10).all()


def test_webp_if_supported(tmp_path: Path) -> None:
    from PIL import features

    if not features.check("webp"):
        pytest.skip("Pillow built without WebP")
    a = _rgb()
    p = tmp_path / "x.webp"
    Image.fromarray(a).save(p, lossless=True)
    np.testing.assert_array_equal(read_image(p), a)


def test_str_path_accepted(tmp_path: Path) -> None:
    p = tmp_path / "x.png"
    Image.fromarray(_rgb()).save(p)
    _check(read_image(str(p)), 12, 16)


# ----------------------------------------------------------------------------- bad files


def _assert_read_error(path: Path, *words: str) -> ImageReadError:
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    err = info.value
    assert isinstance(err, ValueError)
    assert str(path) in str(err)
    assert err.path == path
    for w in words:
        assert w in str(err).lower(), str(err)
    return err


def test_missing_file(tmp_path: Path) -> None:
    _assert_read_error(tmp_path / "nope.png", "not found")


def test_directory(tmp_path: Path) -> None:
    d = tmp_path / "dir.png"
    d.mkdir()
    _assert_read_error(d, "directory")


def test_zero_byte(tmp_path: Path) -> None:
    p = tmp_path / "empty.jpg"
    p.write_bytes(b"")
    _assert_read_error(p, "empty", "0 bytes")


def test_text_named_jpg(tmp_path: Path) -> None:
    p = tmp_path / "text.jpg"
    p.write_text("this is not an image\n" * 10)
    _assert_read_error(p, "not a recognised image")


def test_random_bytes(tmp_path: Path) -> None:
    p = tmp_path / "noise.png"
    p.write_bytes(np.random.default_rng(1).integers(0, 256, 500, dtype=np.uint8).tobytes())
    _assert_read_error(p)


def test_truncated_jpeg(tmp_path: Path) -> None:
    buf = io.BytesIO()
    Image.fromarray(_rgb(64, 64)).save(buf, format="JPEG", quality=90)
    data = buf.getvalue()
    p = tmp_path / "trunc.jpg"
    p.write_bytes(data[: len(data) // 2])
    _assert_read_error(p, "truncated or corrupt")


def test_truncated_png(tmp_path: Path) -> None:
    buf = io.BytesIO()
    Image.fromarray(_rgb(64, 64)).save(buf, format="PNG")
    data = buf.getvalue()
    p = tmp_path / "trunc.png"
    p.write_bytes(data[: len(data) // 2])
    _assert_read_error(p)


def test_header_only_png(tmp_path: Path) -> None:
    buf = io.BytesIO()
    Image.fromarray(_rgb(8, 8)).save(buf, format="PNG")
    p = tmp_path / "head.png"
    p.write_bytes(buf.getvalue()[:40])
    _assert_read_error(p)


def test_truncated_bmp_and_tiff(tmp_path: Path) -> None:
    for fmt, ext in (("BMP", "bmp"), ("TIFF", "tif")):
        buf = io.BytesIO()
        Image.fromarray(_rgb(32, 32)).save(buf, format=fmt)
        p = tmp_path / f"trunc.{ext}"
        p.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 3])
        _assert_read_error(p)


def test_corrupt_png_crc(tmp_path: Path) -> None:
    buf = io.BytesIO()
    Image.fromarray(_rgb(16, 16)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    i = data.index(b"IDAT") + 10
    data[i] ^= 0xFF  # flip a byte of compressed data
    p = tmp_path / "crc.png"
    p.write_bytes(bytes(data))
    _assert_read_error(p)


def test_error_pickles() -> None:
    import pickle

    e = ImageReadError("/x/y.png", "boom")
    e2 = pickle.loads(pickle.dumps(e))
    assert isinstance(e2, ImageReadError) and e2.path == Path("/x/y.png") and e2.reason == "boom"
    assert str(e2) == str(e)


# ----------------------------------------------------------------------------- bombs


def _png_with_claimed_size(width: int, height: int) -> bytes:
    """A tiny, structurally valid PNG whose IHDR claims ``width x height`` grey pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND",
                                                                                        b"")


def test_bomb_refused_with_low_limit(tmp_path: Path) -> None:
    p = tmp_path / "small.png"
    Image.fromarray(_rgb(20, 30)).save(p)
    with pytest.raises(ImageReadError, match="max_pixels") as info:
        read_image(p, max_pixels=100)
    assert "30x20" in str(info.value) and "decompression bomb" in str(info.value)
    _check(read_image(p, max_pixels=600), 20, 30)


def test_crafted_huge_header_refused_before_decoding(tmp_path: Path) -> None:
    p = tmp_path / "bomb.png"
    p.write_bytes(_png_with_claimed_size(50_000, 50_000))  # 2.5 gigapixels, 100-byte file
    assert p.stat().st_size < 200
    with pytest.raises(ImageReadError, match="decompression bomb"):
        read_image(p)
    # a limit above Pillow's own hard limit: still a clean ImageReadError
    with pytest.raises(ImageReadError, match="decompression bomb"):
        read_image(p, max_pixels=10**10)
    with pytest.raises(ImageReadError):
        read_image(p, max_pixels=None)


def test_default_limit_between_pillow_warning_and_error(tmp_path: Path) -> None:
    # 12,000 x 8,000 = 96 MP: below our 100 MP default but above Pillow's warning level.
    # The header check alone must pass without a DecompressionBombWarning escaping; the
    # pixel data is missing, so the read itself fails cleanly.
    p = tmp_path / "big.png"
    p.write_bytes(_png_with_claimed_size(12_000, 8_000))
    assert 12_000 * 8_000 < DEFAULT_MAX_PIXELS
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert image_size(p) == (8_000, 12_000)
        with pytest.raises(ImageReadError, match="truncated or corrupt"):
            read_image(p)


def test_invalid_max_pixels(tmp_path: Path) -> None:
    p = tmp_path / "x.png"
    Image.fromarray(_rgb()).save(p)
    with pytest.raises(ValueError, match="max_pixels"):
        read_image(p, max_pixels=0)


# ----------------------------------------------------------------------------- batches


def test_read_images_skips_and_reports(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    good1, good2 = tmp_path / "a.png", tmp_path / "c.bmp"
    Image.fromarray(_rgb(5, 6, 1)).save(good1)
    Image.fromarray(_rgb(7, 8, 2)).save(good2)
    bad = tmp_path / "b.jpg"
    bad.write_text("nope")
    missing = tmp_path / "gone.png"
    with caplog.at_level(logging.WARNING, logger="wbc_classic.io.images"):
        batch = read_images([good1, bad, good2, missing])
    assert batch.n_ok == 2 and batch.n_failed == 2 and len(batch) == 2
    assert [im.shape for im in batch.images] == [(5, 6, 3), (7, 8, 3)]
    assert batch.paths == [good1, good2]
    np.testing.assert_array_equal(batch.indices, [0, 2])
    assert batch.indices.dtype == np.int64
    assert [f.index for f in batch.failures] == [1, 3]
    assert isinstance(batch.failures[0], ReadFailure)
    assert batch.failures[0].path == bad and "not a recognised" in batch.failures[0].reason
    assert "not found" in batch.failures[1].reason
    assert "2 failed" in batch.summary() and "gone.png" in batch.summary()
    assert "b.jpg" in caplog.text and "gone.png" in caplog.text
    images, failures = batch  # unpacks
    assert len(images) == 2 and len(failures) == 2


def test_read_images_raise(tmp_path: Path) -> None:
    bad = tmp_path / "b.jpg"
    bad.write_bytes(b"")
    with pytest.raises(ImageReadError, match="empty"):
        read_images([bad], on_error="raise")
    with pytest.raises(ValueError, match="on_error"):
        read_images([bad], on_error="ignore")  # type: ignore[arg-type]


def test_read_images_empty_input() -> None:
    b = read_images([])
    assert b.n_ok == 0 and b.n_failed == 0 and b.indices.shape == (0,)


def test_summary_truncates(tmp_path: Path) -> None:
    paths = [tmp_path / f"m{i}.png" for i in range(15)]
    b = read_images(paths)
    s = b.summary(max_listed=3)
    assert "15 failed" in s and "and 12 more" in s


# ----------------------------------------------------------------------------- helpers


def test_image_sha256(tmp_path: Path) -> None:
    p, q, r = tmp_path / "a.png", tmp_path / "b.png", tmp_path / "c.png"
    Image.fromarray(_rgb(seed=1)).save(p)
    q.write_bytes(p.read_bytes())
    Image.fromarray(_rgb(seed=2)).save(r)
    import hashlib

    assert image_sha256(p) == hashlib.sha256(p.read_bytes()).hexdigest()
    assert image_sha256(p) == image_sha256(q) != image_sha256(r)
    assert image_sha256(p, chunk_size=7) == image_sha256(p)
    with pytest.raises(ImageReadError, match="not found"):
        image_sha256(tmp_path / "missing.png")
    with pytest.raises(ImageReadError, match="directory"):
        image_sha256(tmp_path)


def test_image_size_and_is_image_file(tmp_path: Path) -> None:
    p = tmp_path / "a.TIF"
    Image.fromarray(_rgb(7, 9)).save(p)
    assert image_size(p) == (7, 9)
    assert is_image_file(p) and is_image_file("x.JPEG") and is_image_file("x.bmp")
    assert not is_image_file("x.txt") and not is_image_file("._x.jpg")
    assert not is_image_file("manifest.csv")
    with pytest.raises(ImageReadError):
        image_size(tmp_path / "none.png")


def test_read_grey(tmp_path: Path) -> None:
    m = np.array([[0, 128, 255]], dtype=np.uint8)
    p = tmp_path / "m.png"
    Image.fromarray(m).save(p)
    np.testing.assert_array_equal(read_grey(p), m)
    p2 = tmp_path / "m_rgb.png"
    Image.fromarray(np.repeat(m[..., None], 3, axis=2)).save(p2)
    np.testing.assert_array_equal(read_grey(p2), m)
    p3 = tmp_path / "m16.png"
    Image.fromarray(m.astype(np.uint16) * 257).save(p3)
    np.testing.assert_array_equal(read_grey(p3), m)
    with pytest.raises(ImageReadError):
        read_grey(tmp_path / "missing.png")


@pytest.mark.realdata
def test_real_pbc_image(pbc_dir: Path) -> None:
    p = next(iter(sorted((pbc_dir / "basophil").glob("*.jpg"))))
    a = read_image(p)
    assert a.dtype == np.uint8 and a.ndim == 3 and a.shape[2] == 3
    assert 300 < a.shape[0] < 400 and a.flags.c_contiguous
