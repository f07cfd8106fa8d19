"""The hostile inputs of the bad-input suites (issue 14), written once for every command.

``write_bad_files(folder)`` returns ``{kind: path}``; ``EXPECT[kind]`` says what a command
must make of it:

``"error"``    unreadable: one line naming the file and the problem, status ``error``;
``"no_cell"``  readable but without a leukocyte: status ``no_cell``, no class;
``"read"``     an odd but valid image that must be read (never "cannot read").
"""

from __future__ import annotations

import csv
import os
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

#: kind -> what every command must make of it
EXPECT: dict[str, str] = {
    "zero_byte": "error",
    "truncated": "error",
    "random_bytes": "error",
    "text_as_image": "error",
    "bomb": "error",
    "symlink_loop": "error",
    "missing": "error",
    "grey_tiff": "read",
    "rgba_tiff": "read",
    "uint16_tiff": "read",
    "float_tiff": "read",
    "unicode_space_name": "read",
    "tiny_8x8": "no_cell",
    "blank": "no_cell",
    "black": "no_cell",
    "no_leukocyte": "no_cell",
}

#: words one of which the message about each unreadable kind contains
REASONS: dict[str, tuple[str, ...]] = {
    "zero_byte": ("empty", "0 bytes"),
    "truncated": ("truncated", "corrupt"),
    "random_bytes": ("not a recognised", "corrupt"),
    "text_as_image": ("not a recognised", "corrupt"),
    "bomb": ("decompression bomb", "pixels"),
    "symlink_loop": ("symbolic links", "cannot access", "loop", "not found"),
    "missing": ("not found",),
}


def cell_image(seed: int = 0, size: int = 64, label: str = "lymphocyte") -> np.ndarray:
    """A synthetic single-leukocyte image, (size, size, 3) uint8."""
    from wbc_classic.data.synthetic import make_cell

    return make_cell(label, size=size, rng=seed).image


def no_leukocyte_image(size: int = 96, seed: int = 0) -> np.ndarray:
    """A crop of a synthetic smear with red cells only (the segmenter finds no leukocyte)."""
    from wbc_classic.data.synthetic import make_smear

    field = make_smear(shape=(480, 640), n_leukocytes=1, seed=seed, platelets=0)
    for r in range(0, 480 - size, 16):
        for c in range(0, 640 - size, 16):
            if not field.cell[r:r + size, c:c + size].any():
                return np.ascontiguousarray(field.image[r:r + size, c:c + size])
    raise RuntimeError("no leukocyte-free window")


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def bomb_png(width: int = 30_000, height: int = 30_000) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` 1-bit pixels (900 MP)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    idat = zlib.compress(row * 16, 9)  # far fewer rows than claimed: never decoded anyway
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat)
            + _png_chunk(b"IEND", b""))


def write_bad_files(folder: str | os.PathLike[str], seed: int = 0) -> dict[str, Path]:
    """Write one file of every kind of :data:`EXPECT` into ``folder`` (``missing`` is a path
    that does not exist)."""
    import tifffile

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cell = cell_image(seed)
    out: dict[str, Path] = {}

    def path(kind: str, name: str) -> Path:
        out[kind] = folder / name
        return out[kind]

    path("zero_byte", "zero.png").write_bytes(b"")
    good = folder / ".full.png"
    Image.fromarray(cell).save(good)
    data = good.read_bytes()
    good.unlink()
    path("truncated", "truncated.png").write_bytes(data[: len(data) // 2])
    path("random_bytes", "random.jpg").write_bytes(np.random.default_rng(seed).bytes(2048))
    path("text_as_image", "notes.png").write_text("this is a text file, not a picture\n")
    path("bomb", "bomb.png").write_bytes(bomb_png())
    loop = path("symlink_loop", "loop.png")
    os.symlink(loop.name, loop)  # points at itself
    out["missing"] = folder / "missing.png"
    Image.fromarray(cell).convert("L").save(path("grey_tiff", "grey.tif"))
    rgba = np.dstack([cell, np.full(cell.shape[:2], 255, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(path("rgba_tiff", "rgba.tif"))
    tifffile.imwrite(path("uint16_tiff", "sixteen.tif"), cell.astype(np.uint16) * 257,
                     photometric="rgb")
    tifffile.imwrite(path("float_tiff", "float.tif"), cell.astype(np.float32) / 255.0,
                     photometric="rgb")
    Image.fromarray(cell).save(path("unicode_space_name", "cellule é 日本 2.png"))
    Image.fromarray(cell[:8, :8]).save(path("tiny_8x8", "tiny.png"))
    Image.fromarray(np.full((64, 64, 3), 255, np.uint8)).save(path("blank", "blank.png"))
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(path("black", "black.png"))
    Image.fromarray(no_leukocyte_image(seed=seed)).save(path("no_leukocyte", "rbc_only.png"))
    return out


def read_rows(path: str | os.PathLike[str]) -> list[dict[str, str]]:
    """The rows of a CSV output as dicts."""
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def line_naming(err: str, name: str, words: tuple[str, ...] = ()) -> str:
    """The first stderr line that names ``name`` (and one of ``words``, lower case); fails the
    test when there is none or when ``err`` holds a traceback."""
    lines = [ln for ln in err.splitlines() if name in ln
             and (not words or any(w in ln.lower() for w in words))]
    assert lines, f"no line names {name} with one of {words}:\n{err}"
    assert "Traceback" not in err
    return lines[0]


def copy_bad_files_into(data: Path, bad: dict[str, Path], classes: tuple[str, ...]) -> None:
    """Put one file of every unreadable kind (but ``missing``) into the class folders."""
    import shutil

    for i, kind in enumerate(k for k, v in EXPECT.items() if v == "error" and k != "missing"):
        target = data / classes[i % len(classes)] / bad[kind].name
        if kind == "symlink_loop":
            os.symlink(target.name, target)
        else:
            shutil.copyfile(bad[kind], target)
