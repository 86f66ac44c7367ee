"""Static HTML report pages: escaped text, tables whose cells carry their exact values, figures, one stylesheet.

A page is plain HTML with its images in ``img/`` beside it: no JavaScript, no server, nothing fetched, so it
opens from disk offline. Each number shown in a table also sits unrounded in the cell's ``data-value``
attribute, so tests (and scripts) can check the page against the JSON reports it was made from.
"""

from __future__ import annotations

import html
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from fer_synth.core.atomic import atomic_dir, write_bytes
from fer_synth.core.images import png_bytes
from fer_synth.core.outputs import prepare_output_folder

#: Where the report commands write when not told.
DEFAULT_OUT = "report"
PAGE = "index.html"
IMAGES = "img"
GENERATOR = "fer-synth report"

_CSS = """
:root { --ink: #1d2330; --muted: #5b6475; --line: #d9dde5; --band: #f4f6f9; --accent: #2458a6; --warn: #a3261b; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: var(--ink); background: #fff; }
header { padding: 20px 32px 12px; border-bottom: 1px solid var(--line); background: var(--band); }
header h1 { margin: 0 0 4px; font-size: 24px; }
header p { margin: 2px 0; color: var(--muted); }
nav { padding: 8px 32px; border-bottom: 1px solid var(--line); font-size: 14px; }
nav a { margin-right: 16px; color: var(--accent); text-decoration: none; white-space: nowrap; }
main { padding: 0 32px 48px; max-width: 1400px; }
section { margin-top: 28px; }
h2 { font-size: 20px; margin: 0 0 8px; padding-bottom: 4px; border-bottom: 2px solid var(--line); }
h3 { font-size: 16px; margin: 18px 0 6px; }
p.note { color: var(--muted); margin: 4px 0 10px; max-width: 80em; }
p.warn { color: var(--warn); font-weight: 600; }
table { border-collapse: collapse; margin: 8px 0 14px; font-size: 14px; }
caption { text-align: left; font-weight: 600; padding: 2px 0 6px; }
th, td { padding: 4px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--band); text-align: left; font-weight: 600; }
th.span { text-align: center; border-bottom: 1px solid var(--line); }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.key { color: var(--muted); white-space: nowrap; }
td.wrap { max-width: 60em; overflow-wrap: anywhere; }
tr.total td { font-weight: 600; border-top: 2px solid var(--line); }
figure { margin: 8px 0 16px; }
figure img { max-width: 100%; height: auto; display: block; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 2px; }
.row { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
.faces img { image-rendering: pixelated; }
.swatch { display: inline-block; width: 11px; height: 11px; border-radius: 2px; margin-right: 6px;
          vertical-align: baseline; }
.thumbs { display: flex; flex-wrap: wrap; gap: 10px; margin: 6px 0 14px; }
.thumb { margin: 0; width: 112px; font-size: 11px; line-height: 1.3; }
.thumb img { width: 96px; height: 96px; image-rendering: pixelated; border: 1px solid var(--line); }
.thumb figcaption { font-size: 11px; overflow-wrap: anywhere; }
.blocks { display: flex; flex-wrap: wrap; column-gap: 40px; }
.blocks > div p { margin: 6px 0 0; }
.row td.wrap { max-width: 24em; }
.groups { display: flex; flex-wrap: wrap; gap: 10px; margin: 6px 0 14px; }
.group { display: flex; gap: 8px; align-items: flex-start; width: 300px; padding: 6px;
         border: 1px solid var(--line); border-radius: 4px; }
.group img { width: 72px; height: 72px; image-rendering: pixelated; border: 1px solid var(--line); }
.group ul { margin: 0; padding: 0; list-style: none; font-size: 12px; line-height: 1.35; color: var(--muted); }
.group li:first-child { color: var(--ink); font-weight: 600; }
code { font-size: 13px; background: var(--band); padding: 1px 4px; border-radius: 3px; overflow-wrap: anywhere; }
"""


@dataclass(frozen=True)
class Cell:
    """A table cell: the text shown and, for a number, its exact value (``data-value``)."""

    text: str
    value: float | int | str | None = None
    numeric: bool = False
    key: str | None = None  # what the value is (``data-key``), for readers of the page


def num(value: float | int, key: str | None = None, digits: int = 0) -> Cell:
    """A count (thousands separated) or a number with ``digits`` decimals."""
    text = f"{value:,.{digits}f}" if digits else f"{int(value):,}"
    return Cell(text, value, True, key)


def pct(value: float, key: str | None = None, digits: int = 2) -> Cell:
    """A fraction shown as a percentage (the exact fraction stays in ``data-value``)."""
    return Cell(f"{100 * value:.{digits}f}", value, True, key)


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _cell(item: object, tag: str) -> str:
    if not isinstance(item, Cell):
        item = Cell(str(item))
    attrs = ' class="num"' if item.numeric else ""
    if item.value is not None:
        attrs += f' data-value="{esc(item.value)}"'
    if item.key is not None:
        attrs += f' data-key="{esc(item.key)}"'
    return f"<{tag}{attrs}>{esc(item.text)}</{tag}>"


def table(
    header: Sequence[object],
    rows: Iterable[Sequence[object]],
    *,
    table_id: str | None = None,
    caption: str | None = None,
    total: Sequence[object] | None = None,
    groups: Sequence[tuple[str, int]] = (),
) -> str:
    """An HTML table; cells are strings or :class:`Cell` (numbers right-aligned, with their exact value).
    ``groups`` adds a header row above ``header``: (label, columns spanned) pairs."""
    head = "".join(_cell(h if isinstance(h, Cell) else Cell(str(h)), "th") for h in header)
    if groups:
        spans = "".join(f'<th colspan="{span}" class="span">{esc(label)}</th>' for label, span in groups)
        head = f"{spans}</tr><tr>{head}"
    body = "".join("<tr>" + "".join(_cell(c, "td") for c in row) + "</tr>" for row in rows)
    if total is not None:
        body += '<tr class="total">' + "".join(_cell(c, "td") for c in total) + "</tr>"
    ident = f' id="{esc(table_id)}"' if table_id else ""
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return f"<table{ident}>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def key_values(pairs: Iterable[tuple[str, object]], table_id: str | None = None) -> str:
    """A two-column table of settings; long values wrap."""
    rows = "".join(f'<tr><td class="key">{esc(k)}</td><td class="wrap">{esc(v)}</td></tr>' for k, v in pairs)
    ident = f' id="{esc(table_id)}"' if table_id else ""
    return f"<table{ident}><tbody>{rows}</tbody></table>"


def figure(src: str, alt: str, caption: str | None = None, width: int | None = None, faces: bool = False) -> str:
    """An image (``src`` relative to the page) with a caption; ``width`` in CSS pixels; ``faces`` keeps pixels crisp."""
    style = f' style="width:{width}px"' if width else ""
    cls = ' class="faces"' if faces else ""
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return f'<figure{cls}><img src="{esc(src)}" alt="{esc(alt)}"{style}>{cap}</figure>'


def thumbs(items: Iterable[tuple[str, str] | tuple[str, str, str]]) -> str:
    """A wrapping row of face thumbnails, each ``(src, caption)`` or ``(src, caption, tooltip)``."""
    cells = []
    for src, caption, *tooltip in items:
        tip = f' title="{esc(tooltip[0])}"' if tooltip else ""
        cells.append(
            f'<figure class="thumb"{tip}><img src="{esc(src)}" alt="{esc(caption)}">'
            f"<figcaption>{esc(caption)}</figcaption></figure>"
        )
    return f'<div class="thumbs">{"".join(cells)}</div>'


def row(*parts: str) -> str:
    """Blocks side by side, wrapping on a narrow screen."""
    return f'<div class="row">{"".join(parts)}</div>'


def labelled_thumbs(blocks: Iterable[tuple[str, list]]) -> str:
    """Rows of thumbnails, each under a label given as HTML (e.g. a class swatch and name), packed side by side."""
    return (
        '<div class="blocks">'
        + "".join(f"<div><p>{label}</p>{thumbs(items)}</div>" for label, items in blocks)
        + "</div>"
    )


def note(text: str, warn: bool = False) -> str:
    return f'<p class="{"note warn" if warn else "note"}">{esc(text)}</p>'


def swatch(colour: str) -> str:
    return f'<span class="swatch" style="background:{esc(colour)}"></span>'


@dataclass
class Page:
    """A report page: a title, a few lines under it, and sections listed in a navigation bar."""

    title: str
    subtitle: list[str] = field(default_factory=list)
    sections: list[tuple[str, str, str]] = field(default_factory=list)  # (anchor, title, body html)

    def add(self, anchor: str, title: str, *parts: str) -> None:
        self.sections.append((anchor, title, "".join(parts)))

    def render(self) -> str:
        nav = "".join(f'<a href="#{esc(a)}">{esc(t)}</a>' for a, t, _ in self.sections)
        body = "".join(f'<section id="{esc(a)}"><h2>{esc(t)}</h2>{b}</section>' for a, t, b in self.sections)
        sub = "".join(f"<p>{esc(line)}</p>" for line in self.subtitle)
        return (
            f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<meta name="generator" content="{GENERATOR}"><title>{esc(self.title)}</title>'
            f"<style>{_CSS}</style></head><body><header><h1>{esc(self.title)}</h1>{sub}</header>"
            f"<nav>{nav}</nav><main>{body}</main></body></html>\n"
        )


class Images:
    """The page's image folder while it is being written: ``save_*`` return the ``src`` to put in the page."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._names: set[str] = set()

    def path(self, name: str) -> Path:
        """A new file's path (names are unique within a page)."""
        if name in self._names:
            raise ValueError(f"image {name!r} written twice")
        self._names.add(name)
        return self.folder / name

    def src(self, name: str) -> str:
        return f"{IMAGES}/{name}"

    def figure(self, name: str, alt: str, caption: str | None = None, scale: float = 1.0) -> str:
        """An image already saved as ``img/<name>`` (a plot), shown at its own size times ``scale``: a figure
        saved at 100 dpi then reads at the size its fonts were set for."""
        with Image.open(self.folder / name) as image:
            width = image.width
        return figure(self.src(name), alt, caption, width=int(width * scale))

    def save_png(self, name: str, pixels: np.ndarray) -> str:
        """A uint8 gray or RGB array as ``img/<name>`` (the folder becomes visible whole, so no per-file rename)."""
        self.path(name).write_bytes(png_bytes(pixels))
        return self.src(name)


def is_report(folder: Path) -> bool:
    """Whether ``folder`` holds a page these reports wrote (so it may be replaced)."""
    page = folder / PAGE
    try:
        return page.is_file() and f'content="{GENERATOR}"' in page.read_text(errors="replace")[:2000]
    except OSError:
        return False


def prepare_report_folder(
    out: str | os.PathLike, inputs: Iterable[str | os.PathLike | None] = (), overwrite: bool = False
) -> Path:
    """Check ``out`` by the output-folder rule (new, empty, an earlier report, or ``overwrite``; never over an
    input) before any work, and create it."""
    return prepare_output_folder(out, command="report", is_own=is_report, overwrite=overwrite, inputs=inputs)


@contextmanager
def report_images(out: str | os.PathLike) -> Iterator[Images]:
    """Yield the image folder of the report in ``out``; on success it replaces ``out/img`` whole (no stale
    images of an earlier report survive). Write the page itself with :func:`write_page` after the block."""
    with atomic_dir(Path(out) / IMAGES) as tmp:
        yield Images(Path(tmp))


def write_page(out: str | os.PathLike, page: Page) -> Path:
    return write_bytes(Path(out) / PAGE, page.render().encode())
