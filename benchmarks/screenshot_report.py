"""Screenshot a benchmark ``report.html`` with a headless browser, to check it as a reader would.

::

    python -m benchmarks.screenshot_report runs/benchmark-synthetic-0/report.html \\
        --out runs/benchmark-synthetic-0/report.png --width 1280

Needs Chromium (Debian: ``apt-get install chromium``; also ``chromium-browser``,
``google-chrome``); not a CI test, because CI machines may lack it.  The page is loaded
from the file itself (the report is self-contained: images are inlined), with the network,
GPU, sync and component updates switched off.  Look at the PNG for captions that overflow
their cards, tables cut off at the page edge and models that share a colour.  The
properties that can fail are unit-tested in ``tests/benchmarks/test_report_layout.py``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["find_browser", "main", "screenshot"]

_BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_browser() -> str | None:
    """Path of the first Chromium-like browser on PATH, or None."""
    for name in _BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def screenshot(html: str | Path, out: str | Path, *, width: int = 1280, height: int = 8000,
               browser: str | None = None, timeout: float = 120.0) -> Path:
    """Render ``html`` headless and write a PNG of ``width`` x ``height`` CSS pixels to ``out``.

    Raises
    ------
    FileNotFoundError
        No browser, or no such HTML file.
    RuntimeError
        The browser failed or wrote no file.
    """
    html = Path(html).resolve()
    if not html.is_file():
        raise FileNotFoundError(f"no such report: {html}")
    browser = browser or find_browser()
    if browser is None:
        raise FileNotFoundError("no Chromium found on PATH (apt-get install chromium)")
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--no-first-run", f"--window-size={width},{height}",
           f"--screenshot={out}", html.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0 or not out.is_file():
        raise RuntimeError(f"{Path(browser).name} failed (exit {proc.returncode}): "
                           f"{proc.stderr.strip().splitlines()[-1] if proc.stderr else ''}")
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.screenshot_report REPORT.html --out PNG``."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.screenshot_report",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("html", type=Path, help="report.html of a benchmark run")
    p.add_argument("--out", type=Path, default=None, help="PNG (default: beside the report)")
    p.add_argument("--width", type=int, default=1280, help="window width in CSS px (1280)")
    p.add_argument("--height", type=int, default=8000, help="window height in CSS px (8000)")
    a = p.parse_args(argv)
    try:
        path = screenshot(a.html, a.out or a.html.with_suffix(".png"), width=a.width,
                          height=a.height)
    except (FileNotFoundError, RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
