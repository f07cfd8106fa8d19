"""Layout properties of report.html that a reader notices (issue 14, item 11).

A headless-browser look is ``python -m benchmarks.screenshot_report`` (needs Chromium, so it
is not a CI test); these tests pin the HTML/CSS properties behind what it showed: distinct
model colours, gallery captions that wrap inside their cards, tables in scrolling
containers and key/value tables that wrap at the page width.
"""

from __future__ import annotations

import re
import shutil
from itertools import combinations

import numpy as np
import pytest

from benchmarks import report as R
from tests.benchmarks.test_report import CLASSES, _model

LONG = ("lymphocyte/patient_2026-11-22_slide-0042_field_lymphocyte_0000_very_long_descriptive"
        "_file_name_without_breaks.png")


def _rgb(colour: str) -> np.ndarray:
    return np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)], dtype=float)


def _named(name: str, family: str):
    class _R:
        pass

    r = _R()
    r.name, r.family = name, family
    return r


@pytest.mark.parametrize("n_classical,n_deep", [(8, 2), (10, 10), (14, 13), (3, 0)])
def test_every_model_gets_its_own_colour(n_classical, n_deep):
    # 8 classical models used to repeat the 5-colour palette: svm and xgboost shared a blue
    results = ([_named(f"c{i}", "classical") for i in range(n_classical)]
               + [_named(f"d{i}", "deep") for i in range(n_deep)]
               + [_named("x", "other")])
    colours = R._model_colours(results)
    assert len(colours) == len(results)
    assert len(set(colours.values())) == len(results), colours
    # and visibly different, not two shades one unit apart
    rgb = [_rgb(c) for c in colours.values()]
    assert min(np.linalg.norm(a - b) for a, b in combinations(rgb, 2)) > 12


def test_the_palettes_themselves_are_far_apart():
    for pal in R._FAMILY_COLOURS.values():
        rgb = [_rgb(c) for c in pal]
        assert min(np.linalg.norm(a - b) for a, b in combinations(rgb, 2)) > 45


def test_per_class_chart_bars_of_ten_models_have_ten_colours():
    rng = np.random.default_rng(0)
    yt = rng.integers(0, 3, 60)
    results = [_model(f"m{i}", "classical" if i < 8 else "deep", yt, rng, 0.8,
                      with_scores=False, n_mis=0) for i in range(10)]
    fig = R.plot_per_class(results, CLASSES)
    handles, labels = fig.axes[0].get_legend_handles_labels()
    faces = {tuple(np.round(h.patches[0].get_facecolor(), 4)) for h in handles}
    assert labels == [r.name for r in results] and len(faces) == 10


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    rng = np.random.default_rng(1)
    yt = rng.integers(0, 3, 40)
    r = _model("svm", "classical", yt, rng, 0.5)
    r.misclassified[:] = [R.Misclassified(m[0], m[1], m[2], 0.9, LONG) for m in r.misclassified]
    out = tmp_path_factory.mktemp("layout")
    env = {"command": "python -m benchmarks.run " + "--flag value " * 60}
    R.write_report(out, [r], class_names=CLASSES,
                   dataset=R.DatasetInfo("synthetic-3", True, "generated", n_test=40),
                   leakage=None, seed=0, environment=env, y_true=yt, save_figures=False,
                   command=env["command"])
    return (out / "report.html").read_text()


def _css_rule(page: str, selector: str) -> str:
    css = re.search(r"<style>(.*?)</style>", page, re.S).group(1)
    m = re.search(r"(?:^|[}\s,])" + re.escape(selector) + r"\s*(?:,[^{]*)?\{([^}]*)\}", css)
    assert m, f"no CSS rule for {selector}"
    return m.group(1)


def test_gallery_captions_wrap_inside_their_card(page):
    assert f'<span class="name" title="{LONG}">' in page
    cell = _css_rule(page, ".cell")
    assert "overflow:hidden" in cell and "overflow-wrap:anywhere" in cell
    assert re.search(r"width:\d+px", cell)
    name = _css_rule(page, ".cell .name")
    assert "overflow-wrap:anywhere" in name and "overflow:hidden" in name
    assert "line-clamp:3" in name


def test_every_table_sits_in_a_scrolling_container(page):
    tables = re.findall(r"(.{0,40})<table", page)
    assert tables and all(t.endswith('<div class="scroll">') for t in tables), tables
    assert "overflow-x:auto" in _css_rule(page, ".scroll")


def test_key_value_tables_wrap_long_values(page):
    # the setup and environment tables hold long commands; they wrap instead of running off
    assert page.count('<table class="kv">') == 2
    kv = _css_rule(page, "table.kv td")
    assert "white-space:normal" in kv and "overflow-wrap:anywhere" in kv
    assert "table-layout:fixed" in _css_rule(page, "table.kv")


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Chromium")
def test_screenshot_script_writes_a_png(page, tmp_path):
    from PIL import Image

    from benchmarks.screenshot_report import screenshot

    html = tmp_path / "report.html"
    html.write_text(page)
    png = screenshot(html, tmp_path / "shot.png", width=800, height=1200)
    with Image.open(png) as im:
        assert im.size == (800, 1200)
