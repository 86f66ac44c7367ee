"""Finding the MediaPipe BlazeFace model file: a given path, an environment variable, the cache, or one download.

MediaPipe >= 0.10.30 ships no model files, so the face detector needs the short-range BlazeFace ``.tflite``
(229,714 bytes). The official copy lives in MediaPipe's asset bucket; its SHA-256 below is the one MediaPipe
pins for that URL in its own build (``third_party/external_files.bzl``) and equals the file inside the
``mediapipe==0.10.21`` wheel. A downloaded file is checked against it before it is moved into the cache.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from pathlib import Path

from fer_synth.core.env import offline
from fer_synth.core.errors import FerError

FACE_MODEL_NAME = "face_detection_short_range.tflite"
FACE_MODEL_URL = "https://storage.googleapis.com/mediapipe-assets/face_detection_short_range.tflite"
FACE_MODEL_SHA256 = "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8"

#: A path to the model file; takes the place of ``--face-model``.
ENV_FACE_MODEL = "FER_SYNTH_FACE_MODEL"
#: The cache folder (default ``$XDG_CACHE_HOME/fer-synth`` or ``~/.cache/fer-synth``).
ENV_CACHE = "FER_SYNTH_CACHE"
#: Set to 1 to forbid downloads (tests and air-gapped machines).


class FaceModelError(FerError):
    """The MediaPipe face model could not be found, downloaded or verified."""


def cache_dir() -> Path:
    """The folder where downloaded models are kept."""
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "fer-synth"


def cached_model_path() -> Path:
    """Where the face model sits in the cache (``<cache>/models/face_detection_short_range.tflite``)."""
    return cache_dir() / "models" / FACE_MODEL_NAME


def sha256_of(path: Path) -> str:
    """The hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download_face_model(dest: Path, url: str | None = None, sha256: str = FACE_MODEL_SHA256) -> Path:
    """Download the model (default: the official URL) to ``dest`` through a temporary file, verify its SHA-256,
    then rename it into place."""
    url = url or FACE_MODEL_URL
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=".download-", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            while block := response.read(1 << 16):
                out.write(block)
        got = sha256_of(tmp)
        if got != sha256:
            raise FaceModelError(
                f"the face model downloaded from {url} has SHA-256 {got}, expected {sha256}; "
                f"nothing was saved. Download it by hand and pass --face-model PATH"
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def resolve_face_model(path: str | os.PathLike | None = None, allow_download: bool = True) -> Path:
    """The MediaPipe face model file: ``path``, else ``$FER_SYNTH_FACE_MODEL``, else the cache, else a download.

    A given path is used as it is (another BlazeFace variant is the user's choice); a cached file must
    match the pinned checksum. Raises :class:`FaceModelError` naming ``--face-model`` when none is found.
    """
    given = path or os.environ.get(ENV_FACE_MODEL)
    if given:
        found = Path(given).expanduser()
        if not found.is_file():
            source = "--face-model" if path else ENV_FACE_MODEL
            raise FaceModelError(
                f"face model {found} ({source}) does not exist; pass --face-model PATH to the {FACE_MODEL_NAME} file"
            )
        return found
    cached = cached_model_path()
    if cached.is_file():
        if sha256_of(cached) != FACE_MODEL_SHA256:
            raise FaceModelError(
                f"the cached face model {cached} fails its SHA-256 check; delete it to "
                f"download it again, or pass --face-model PATH"
            )
        return cached
    hint = (
        f"pass --face-model PATH (the MediaPipe {FACE_MODEL_NAME}), set {ENV_FACE_MODEL}, "
        f"or put the file at {cached}; or use --backend haar, which needs no model file"
    )
    if not allow_download or offline():
        raise FaceModelError(f"no MediaPipe face model and downloads are off: {hint}")
    try:
        return download_face_model(cached)
    except OSError as e:  # no network, DNS, HTTP errors (URLError is an OSError)
        raise FaceModelError(f"could not download the face model ({e}): {hint}") from None
