"""Render a report page with headless Chromium to PNG screenshots, to check how it looks without a browser.

    python examples/screenshot_report.py report/index.html [--out report-shot.png] [--width 1366] [--parts 900]

Needs Debian's ``chromium`` package (``apt-get install -y chromium``). The page is rendered in a window as wide as
a laptop screen (1366 px) and tall enough for the whole page; the blank rows under the page are cut off. With
``--parts H`` the screenshot is also cut into screen-sized pieces (``-1.png``, ``-2.png``, ...), easier to look at.
Chromium starts with a fresh profile, no network services and no sandbox (it runs as root in containers).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
)


def find_chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    sys.exit("no chromium on PATH: install it with `apt-get install -y chromium`")


def screenshot(page: Path, out: Path, width: int, height: int) -> Path:
    """The page rendered in a ``width`` x ``height`` window, the blank rows under it cut off."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        subprocess.run(
            [
                find_chromium(),
                *FLAGS,
                f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
                f"--screenshot={out}",
                page.resolve().as_uri(),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=120,
        )
    image = np.asarray(Image.open(out).convert("RGB"))
    rows = np.flatnonzero((image != image[-1:, :, :]).any(axis=(1, 2)))  # rows that differ from the bottom row
    if len(rows):
        Image.fromarray(image[: rows[-1] + 24]).save(out)
    return out


def cut(shot: Path, part_height: int) -> list[Path]:
    image = Image.open(shot)
    parts = []
    for k, top in enumerate(range(0, image.height, part_height), start=1):
        path = shot.with_name(f"{shot.stem}-{k}.png")
        image.crop((0, top, image.width, min(image.height, top + part_height))).save(path)
        parts.append(path)
    return parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("page", type=Path, help="the report's index.html")
    parser.add_argument("--out", type=Path, help="the PNG to write [default: <report folder>-screenshot.png]")
    parser.add_argument("--width", type=int, default=1366, help="window width in px (a laptop screen)")
    parser.add_argument("--height", type=int, default=16000, help="window height: at least the page's")
    parser.add_argument("--parts", type=int, default=0, help="also cut the shot into pieces this tall (px)")
    args = parser.parse_args()
    if not args.page.is_file():
        sys.exit(f"{args.page}: no such page")
    out = args.out or args.page.parent.with_name(f"{args.page.parent.name}-screenshot.png")
    shot = screenshot(args.page, out, args.width, args.height)
    print(shot)
    for part in cut(shot, args.parts) if args.parts else []:
        print(part)


if __name__ == "__main__":
    main()
