"""The judgement of a pool: what an independent classifier says each generated face shows, as plain data.

``fer-models judge POOL`` writes ``POOL/judgement.jsonl``, one record per face file (keyed like the manifest's
``files``, relative to the pool)::

    {"file": "fear/fear_s0_000012_f0.png", "class": "fear", "judged": "surprise", "p_intended": 0.21,
     "probs": [...], "classes": [...], "judge": {"model": "...", "fingerprint": "..."}}

``fer-synth balance --judged`` reads it here, without importing ``fer_models``. A selection policy decides which
faces are trusted; when a class has more trusted faces than it needs, the best-judged come first.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from fer_synth.core.errors import FerError, InvalidOptionError
from fer_synth.core.manifest import read_shard

JUDGEMENT_FILE = "judgement.jsonl"
POLICIES: tuple[str, ...] = ("min-prob", "top-k", "agree")


class JudgementError(FerError):
    """A pool without a (complete) judgement, or one judged by several judges."""


def read_judgement(pool: str | os.PathLike) -> dict[str, dict]:
    """Every complete record of ``pool``'s judgement, by file; an empty dict when the pool was never judged."""
    path = Path(pool) / JUDGEMENT_FILE
    if not path.exists():
        return {}
    return {record["file"]: record for record in read_shard(path)}


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
