"""The judgement of a pool: what an independent classifier says each generated face shows, as plain data.

``fer-models judge POOL`` writes ``POOL/judgement.jsonl``, one record per face file (keyed like the manifest's
``files``, relative to the pool) and bound to the file's content by its hash::

    {"file": "fear/fear_s0_000012_f0.png", "sha256": "…", "class": "fear", "judged": "surprise", "p_intended": 0.21,
     "probs": [...], "classes": [...], "judge": {"model": "...", "fingerprint": "..."}}

A record counts only while its file holds the bytes it was made for (:func:`current_judgement`): a face replaced
after judging is judged again, a deleted face leaves the reports, and ``fer-synth balance --judged`` (which reads
it here, without importing ``fer_models``) never selects by a stale score. A selection policy decides which faces
are trusted; when a class has more trusted faces than it needs, the best-judged come first.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from fer_synth.core.errors import FerError, InvalidOptionError
from fer_synth.core.images import printable
from fer_synth.core.manifest import ManifestError, read_numbered

JUDGEMENT_FILE = "judgement.jsonl"
POLICIES: tuple[str, ...] = ("min-prob", "top-k", "agree")


class JudgementError(FerError):
    """A pool without a (complete, current) judgement, one judged by several judges, or a damaged judgement file."""


def file_digest(path: str | os.PathLike) -> str:
    """The content hash a record is bound to: SHA-256 of the file's bytes (hex, first 32 digits)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:32]


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _problem(record: object) -> str | None:
    """What is wrong with one record, or None."""
    if not isinstance(record, dict):
        return f"a JSON {type(record).__name__}, not a record"
    checks = (
        ("file", lambda v: isinstance(v, str) and v),
        ("class", lambda v: isinstance(v, str)),
        ("judged", lambda v: isinstance(v, str)),
        ("p_intended", lambda v: _is_number(v) and 0 <= v <= 1),
        ("probs", lambda v: isinstance(v, list) and all(map(_is_number, v))),
        ("classes", lambda v: isinstance(v, list) and all(isinstance(c, str) for c in v)),
        (
            "judge",
            lambda v: isinstance(v, dict) and isinstance(v.get("model"), str) and isinstance(v.get("fingerprint"), str),
        ),
        ("sha256", lambda v: v is None or isinstance(v, str)),
    )
    for key, valid in checks:
        if key not in record and key != "sha256":
            return f"no {key!r}"
        if not valid(record.get(key)):
            return f"{key!r} is {record.get(key)!r}"
    if len(record["probs"]) != len(record["classes"]):
        return f"{len(record['probs'])} probabilities for {len(record['classes'])} classes"
    for key in ("class", "judged"):
        if record[key] not in record["classes"]:
            return f"{key!r} {record[key]!r} is none of its classes"
    return None


def read_judgement(pool: str | os.PathLike) -> dict[str, dict]:
    """Every record of ``pool``'s judgement, the latest per file; an empty dict when the pool was never judged.
    A line that is not a judgement record (valid JSON of the wrong shape or types) is a one-line error naming it."""
    path = Path(pool) / JUDGEMENT_FILE
    if not path.exists():
        return {}
    try:
        numbered = read_numbered(path)
    except ManifestError as e:
        raise JudgementError(
            f"{e}; or judge the pool again: `fer-models judge {printable(str(pool))} --overwrite`"
        ) from None
    records = {}
    for number, record in numbered:
        if (problem := _problem(record)) is not None:
            raise JudgementError(
                f"{printable(str(path))}:{number}: not a judgement record ({problem}); judge the pool "
                f"again: `fer-models judge {printable(str(pool))} --overwrite`"
            )
        records[record["file"]] = record
    return records


def pool_digests(pool: str | os.PathLike, files: Iterable[str]) -> dict[str, str | None]:
    """:func:`file_digest` of each file of ``pool`` (None for one that cannot be read)."""
    digests: dict[str, str | None] = {}
    for file in files:
        try:
            digests[file] = file_digest(Path(pool) / file)
        except OSError:
            digests[file] = None
    return digests


def current_judgement(
    pool: str | os.PathLike,
    files: Iterable[str],
    records: Mapping[str, dict] | None = None,
    digests: Mapping[str, str | None] | None = None,
) -> tuple[dict[str, dict], list[str]]:
    """(the records of ``files`` that hold for the bytes the files hold now, the files judged when they held other
    bytes). Records of files not among ``files`` (deleted faces) are left out; a record without a hash (an older
    judgement) counts as stale. ``records`` and ``digests`` (:func:`pool_digests`) when the caller has them."""
    files = list(files)
    records = read_judgement(pool) if records is None else records
    digests = pool_digests(pool, [f for f in files if f in records]) if digests is None else digests
    current, stale = {}, []
    for file in files:
        record = records.get(file)
        if record is None:
            continue
        if digests.get(file) is not None and record.get("sha256") == digests.get(file):
            current[file] = record
        else:
            stale.append(file)
    return current, stale


def judge_of(records: Mapping[str, dict]) -> dict:
    """The one judge that made ``records``; a pool judged by several is an error (their scores do not compare)."""
    judges = {(r["judge"]["model"], r["judge"]["fingerprint"]) for r in records.values()}
    if len(judges) > 1:
        raise JudgementError(
            f"the judgement mixes {len(judges)} judges; judge the pool again with one "
            "(`fer-models judge POOL --overwrite`)"
        )
    model, fingerprint = judges.pop() if judges else (None, None)
    return {"model": model, "fingerprint": fingerprint}


def judged_over_other_classes(records: Mapping[str, dict], classes: Iterable[str]) -> list[str]:
    """The files whose record scored them over another class list than ``classes`` (the judge renormalises its
    probabilities over the pool's classes, so such a score and its judged class do not compare with the others)."""
    classes = list(classes)
    return [file for file, record in records.items() if list(record["classes"]) != classes]


def check_one_class_list(records: Mapping[str, dict], pool: str | os.PathLike) -> None:
    """Refuse records scored over several class lists (a pool judged, then given a class such as contempt and judged
    again for its new faces by an older judge): their scores do not compare."""
    lists = sorted({tuple(r["classes"]) for r in records.values()}, key=len)
    if len(lists) > 1:
        latest = list(lists[-1])
        other = judged_over_other_classes(records, latest)
        raise JudgementError(
            f"{len(other)} faces of {printable(str(pool))} were judged over other classes than the rest "
            f"({' / '.join(str(len(c)) + ' classes' for c in lists)}; e.g. {', '.join(map(printable, other[:3]))}), "
            f"so their scores do not compare; run `fer-models judge {printable(str(pool))}` again: it judges "
            "them again over the pool's classes"
        )


@dataclass(frozen=True)
class SelectionPolicy:
    """Which judged faces are trusted.

    ``min-prob``: the judge gives the intended class at least ``value``; ``agree``: the judge's top class is the
    intended one; ``top-k``: the ``value`` best-scored faces of each class (SyntFER's way), whatever their score.
    """

    kind: str
    value: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in POLICIES:
            raise InvalidOptionError(f"unknown selection policy {self.kind!r}; choose one of {', '.join(POLICIES)}")
        if self.kind == "min-prob" and not (self.value is not None and 0 <= self.value <= 1):
            raise InvalidOptionError(f"--min-prob must be a probability in 0..1 (got {self.value})")
        if self.kind == "top-k" and not (self.value is not None and int(self.value) == self.value and self.value >= 1):
            raise InvalidOptionError(f"--top-k must be a whole number of faces per class >= 1 (got {self.value})")

    def __str__(self) -> str:
        return self.kind if self.value is None else f"{self.kind} {self.value:g}"

    def select(self, records: Iterable[dict]) -> dict[str, list[dict]]:
        """The trusted records per intended class, best first (score descending, then file name)."""
        by_class: dict[str, list[dict]] = {}
        for record in sorted(records, key=lambda r: (-r["p_intended"], r["file"])):
            by_class.setdefault(record["class"], []).append(record)
        if self.kind == "top-k":
            return {c: rs[: int(self.value)] for c, rs in by_class.items()}
        keep = (
            (lambda r: r["judged"] == r["class"]) if self.kind == "agree" else (lambda r: r["p_intended"] >= self.value)
        )
        return {c: [r for r in rs if keep(r)] for c, rs in by_class.items()}


#: The policy ``balance --judged`` uses unless told otherwise (chosen by measurement: docs/judging.md).
DEFAULT_POLICY = SelectionPolicy("agree")
