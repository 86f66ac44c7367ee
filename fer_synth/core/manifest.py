"""Append-only, crash-safe JSONL records of a generation run, and the run-settings check.

Each rank appends to its own shard (``manifest.jsonl``, or ``manifest-RRRRR-of-WWWWW.jsonl`` when
sharded); a record is one line, written with flush and fsync, so after a crash (Ctrl-C, kill -9,
power loss) a shard ends in complete records plus at most one torn line, which readers ignore and
the next writer cuts off. Files (images, ``run.json``) become visible only complete: temp + rename.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from pathlib import Path

from fer_synth.core.errors import FerError

SETTINGS_FILE = "run.json"
#: The manifest of a one-process run; ranks of a sharded run write manifest-RRRRR-of-WWWWW.jsonl.
MANIFEST = "manifest.jsonl"
SHARD_GLOB = "manifest*.jsonl"


class ManifestError(FerError):
    """A manifest line that is not a torn tail and still does not parse."""


class SettingsMismatchError(FerError):
    """The output folder holds a run made with different generation settings."""


def shard_name(rank: int, world_size: int) -> str:
    """The manifest shard of one rank."""
    return MANIFEST if world_size == 1 else f"manifest-{rank:05d}-of-{world_size:05d}.jsonl"


def remove_stale_temp_files(folder: Path, older_than_s: float = 300.0) -> int:
    """Delete temp files that a killed run left behind; returns how many.

    A live writer holds its temp file for milliseconds, so one older than ``older_than_s`` is stale even
    when other ranks (on any host sharing the folder) are writing at the same time.
    """
    cutoff = time.time() - older_than_s
    removed = 0
    for path in Path(folder).rglob(".*.tmp"):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except FileNotFoundError:  # another rank removed it first
            pass
    return removed


class ManifestWriter:
    """The one writer of a shard: cuts a torn tail once, then appends whole lines durably."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            data = self.path.read_bytes()
            if data and not data.endswith(b"\n"):
                with open(self.path, "r+b") as f:
                    f.truncate(data.rfind(b"\n") + 1)
        self._file = open(self.path, "ab")  # noqa: SIM115 (the writer holds it open until close())

    def append(self, records: Iterable[dict]) -> None:
        lines = b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in records)
        if lines:
            self._file.write(lines)
            self._file.flush()
            os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> ManifestWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_shard(path: Path) -> list[dict]:
    """The complete records of one shard; a torn last line (no newline) is ignored."""
    data = Path(path).read_bytes()
    lines = data.split(b"\n")
    complete = lines[:-1]  # the piece after the last newline is empty or torn
    records = []
    for number, line in enumerate(complete, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise ManifestError(
                f"{path}:{number}: not a JSON record ({e.msg}); the manifest was edited or damaged: "
                f"remove that line to regenerate its image"
            ) from None
    return records


def read_records(folder: Path) -> list[dict]:
    """Every complete record of every shard in ``folder`` (any world size)."""
    records: list[dict] = []
    for path in sorted(Path(folder).glob(SHARD_GLOB)):
        records.extend(read_shard(path))
    return records


def check_settings(folder: Path, settings: dict, create: bool = True) -> None:
    """Check the run's settings equal those in ``folder/run.json``; record them there if it is absent
    and ``create`` (a run checks first, and creates once its model has loaded, so a failed start does
    not claim the folder).

    Creation is atomic and exclusive (hard link of a complete temp file), so ranks starting at the
    same moment agree on one file.
    """
    folder = Path(folder)
    path = folder / SETTINGS_FILE
    wanted = json.loads(json.dumps(settings))  # normalise tuples etc. to JSON types
    if not path.exists() and not create:
        return
    folder.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        tmp = folder / f".{SETTINGS_FILE}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(wanted, indent=2, sort_keys=True) + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    try:
        recorded = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise SettingsMismatchError(f"{path} is damaged ({e.msg}); use another --out folder") from None
    differing = [
        f"{key} {recorded.get(key)!r} (this run: {wanted.get(key)!r})"
        for key in sorted(set(recorded) | set(wanted))
        if recorded.get(key) != wanted.get(key)
    ]
    if differing:
        raise SettingsMismatchError(
            f"{folder} holds a run made with different settings: {'; '.join(differing)}. Use another "
            f"--out folder, or the same settings to resume or extend that run"
        )


def outcome(record: dict) -> tuple[list[str], str | None]:
    """What one attempt left: its output files (relative to the run folder) and, when it kept none, why.

    Covers every record kind: ``generate`` with the face stage (``files`` + ``face.reason``), ``generate
    --no-faces`` (one ``file``), ``crop`` (``files`` + ``reason``) and folder exports (one ``path``).
    """
    if "files" in record:
        files = list(record["files"])
        reason = (record.get("face") or {}).get("reason") if "face" in record else record.get("reason")
        return files, None if files else (reason or "rejected")
    single = record.get("file") or record.get("path")
    return ([single], None) if single else ([], record.get("reason") or "rejected")
