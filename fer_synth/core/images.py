"""Image files: which suffixes count as images, and reading and writing them (PNG writes are atomic)."""

from __future__ import annotations

import codecs
import io
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from fer_synth.core.atomic import write_bytes
from fer_synth.core.errors import environment_reason

#: Suffixes every reader of image folders accepts (case-insensitive): readers, crop, predict.
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".pgm")


#: Pillow modes of gray images wider than 8 bits (16-bit PNG and TIFF, 32-bit integer or float).
_WIDE_GRAY_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}


def is_image_file(path: Path) -> bool:
    """A visible file with an image suffix."""
    return path.is_file() and not path.name.startswith(".") and path.suffix.lower() in IMAGE_SUFFIXES


UNREADABLE = "unreadable image"
TOO_LARGE = "too large to decode in memory"


def load_image(path: str | Path, gray: bool = False) -> tuple[np.ndarray | None, str]:
    """(pixels, "") for an image file: RGB uint8 [H, W, 3] upright per its EXIF orientation, or with ``gray``
    grayscale uint8 [H, W]; else (None, why not). The file is read as bytes and decoded in memory: a file name
    is never handed to OpenCV, which crashes on names that are not valid UTF-8. An image too large for the
    memory left is one unreadable file, not the end of the run."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except MemoryError:
        return None, TOO_LARGE
    except OSError as e:
        return None, f"cannot read the file ({environment_reason(e) or e.strerror or e})"
    try:
        image = _decode_gray(data) if gray else _decode_rgb(data)
    except MemoryError:
        return None, TOO_LARGE
    except Image.DecompressionBombError:
        return None, "too large (a decompression bomb to Pillow)"
    return (image, "") if image is not None else (None, UNREADABLE)


def _decode_gray(data: np.ndarray) -> np.ndarray | None:
    """OpenCV first (fast), Pillow for the formats OpenCV lacks (GIF)."""
    try:
        image = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE) if data.size else None
    except cv2.error:  # OpenCV's own size limit or allocation failure
        image = None
    if image is not None:
        return image
    try:
        with Image.open(io.BytesIO(data.tobytes())) as pil:
            return np.asarray(pil.convert("L"))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return None


def _decode_rgb(data: np.ndarray) -> np.ndarray | None:
    try:
        with Image.open(io.BytesIO(data.tobytes())) as image:
            image = ImageOps.exif_transpose(image)
            if image.mode in _WIDE_GRAY_MODES:  # Pillow's RGB conversion clips 16-bit gray to white
                gray = np.asarray(image, dtype=np.float64)
                peak = 65535.0 if image.mode.startswith("I;16") or gray.max() > 255 else 255.0
                if image.mode == "F":
                    peak = max(float(gray.max()), 1.0)
                gray = np.clip(np.rint(gray * (255.0 / peak)), 0, 255).astype(np.uint8)
                return np.repeat(gray[..., None], 3, axis=2)
            return np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return None


def read_rgb(path: str | Path) -> np.ndarray | None:
    """The image as RGB uint8 [H, W, 3], upright per its EXIF orientation, or None (:func:`load_image`)."""
    return load_image(path)[0]


def read_gray(path: str | Path) -> np.ndarray | None:
    """The image as grayscale uint8 [H, W], or None when it cannot be decoded (:func:`load_image`)."""
    return load_image(path, gray=True)[0]


def _escape_bytes(error: UnicodeEncodeError) -> tuple[str, int]:
    """The codec error handler ``fer-escape``: the undecodable bytes of a file name (which Python holds as lone
    surrogates U+DC80..U+DCFF) as ``\\xNN``, any other unencodable character as ``\\uNNNN``."""
    text = error.object[error.start : error.end]
    return "".join(
        f"\\x{ord(c) - 0xDC00:02x}" if 0xDC80 <= ord(c) <= 0xDCFF else c.encode("ascii", "backslashreplace").decode()
        for c in text
    ), error.end


codecs.register_error("fer-escape", _escape_bytes)


def printable(text: str) -> str:
    """``text`` with the bytes of a file name that is not valid UTF-8 shown as ``\\xNN`` escapes: what can be
    printed, and written to UTF-8 files (CSV, HTML, HDF5), for a name Python holds as surrogates."""
    return text.encode("utf-8", "fer-escape").decode("utf-8")


def png_bytes(image: Image.Image | np.ndarray) -> bytes:
    """An image (PIL, or a uint8 array: [H, W] gray or [H, W, 3] RGB) encoded as PNG. zlib level 1: ~2.5x faster
    to encode than the default for ~10% more bytes."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(np.asarray(image, dtype=np.uint8))
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def save_png(image: Image.Image | np.ndarray, path: str | Path) -> None:
    """Save an image as PNG (:func:`png_bytes`), atomically (complete under its name, or absent)."""
    write_bytes(path, png_bytes(image))
