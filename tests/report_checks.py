"""Checks every report page passes: well-formed HTML, offline, every image on disk and decodable, and every number
in a table equal to the one in the report's JSON at its ``data-key``."""

from __future__ import annotations

import json
import math
import re
from html.parser import HTMLParser
from pathlib import Path

from PIL import Image

VOID = {"meta", "img", "br", "hr", "link", "input", "source", "wbr"}


class _PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.images: list[str] = []
        self.tags: set[str] = set()
        self.cells: list[dict] = []  # {"key", "value", "text"}
        self._cell: dict | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attrs = dict(attrs)
        self.tags.add(tag)
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        if tag in ("td", "th") and "data-key" in attrs:
            self._cell = {"key": attrs["data-key"], "value": attrs["data-value"], "text": ""}
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
            return
        self.stack.pop()
        if tag in ("td", "th") and self._cell is not None:
            self.cells.append(self._cell)
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell["text"] += data


def lookup(facts: dict | list, key: str):
    node = facts
    for part in key.split("."):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def check_page(page: Path) -> tuple[_PageParser, dict]:
    """Assert the page is sound; return its parse and the report.json beside it."""
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>")
    parser = _PageParser()
    parser.feed(text)
    parser.close()
    assert not parser.errors and not parser.stack, (parser.errors, parser.stack)
    assert "script" not in parser.tags and "http://" not in text and "https://" not in text  # offline, no JS
    assert parser.images, "a report without a single picture"
    for src in parser.images:
        assert not src.startswith(("/", "data:")) and ".." not in src, src
        with Image.open(page.parent / src) as image:
            image.load()  # decodes every pixel
            assert image.width > 0 and image.height > 0
    facts = json.loads((page.parent / "report.json").read_text())
    assert parser.cells, "no table cell carries its value"
    for cell in parser.cells:
        expected = lookup(facts, cell["key"])
        assert float(cell["value"]) == float(expected), cell
        digits = re.sub(r"[^0-9.\-]", "", cell["text"])
        shown = float(digits)
        tolerance = 0.5 * 10 ** -len(digits.partition(".")[2]) + 1e-9  # what rounding to the shown decimals allows
        assert math.isclose(shown, expected, abs_tol=tolerance) or math.isclose(
            shown, 100 * expected, abs_tol=tolerance
        ), cell
    return parser, facts
