"""Class-equilibrium top-up: how many synthetic faces each class of each split needs, and adding them.

:func:`plan_topup` is a pure function of counts; :func:`apply_topup` draws the pool images the plan asks for
(seeded, each pool image used at most once across all splits); :func:`balance` is the whole job behind
``fer-synth balance``: read, map to train/val/test, top up (with generated faces, or by one of the classic
methods of :mod:`fer_synth.data.oversample` on the train split), write; :func:`pack` the same without the top-up.
Each takes its settings as one dataclass (:class:`BalanceConfig`, :class:`PackConfig`), whose fields the command
lines' options are named after.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path

import numpy as np

from fer_synth.core import store
from fer_synth.core.classes import CLASSES
from fer_synth.core.dataset import SYNTHETIC, Split
from fer_synth.core.errors import FerError, InvalidOptionError
from fer_synth.core.folders import EXPORT_MARKER, describe_skipped, read_pool_faces
from fer_synth.core.images import printable
from fer_synth.core.judgement import (
    JudgementError,
    SelectionPolicy,
    check_one_class_list,
    current_judgement,
    judge_of,
    read_judgement,
)
from fer_synth.core.outputs import (
    OutputError,
    check_output_folder,
    has_file,
    make_dir,
    refuse_existing_file,
    refuse_inputs,
    remove_stale_temps,
)
from fer_synth.data.export import write_folders
from fer_synth.data.near_duplicates import DEFAULT_MAX_DISTANCE, near_mask, phash
from fer_synth.data.oversample import GENERATED, check_method, oversample
from fer_synth.data.readers import read_dataset
from fer_synth.data.splits import ProtocolSplits, drop_leaked, protocol_splits

EVAL_SPLITS = ("val", "test")
DEFAULT_POOL = "generated"  # what `fer-synth generate` writes


class ShortfallError(FerError):
    """The pool holds fewer images of some class than the plan needs."""


@dataclass
class TopUpPlan:
    """Per split and class (in ``classes`` order): real images, the target, and images taken from the pool."""

    counts: dict[str, list[int]]
    targets: dict[str, list[int]]
    take: dict[str, list[int]]
    shortfall: dict[str, list[int]]  # images the pool could not supply
    classes: tuple[str, ...] = CLASSES

    @property
    def total_take(self) -> int:
        return sum(map(sum, self.take.values()))

    @property
    def total_shortfall(self) -> int:
        return sum(map(sum, self.shortfall.values()))

    def shortfall_by_class(self) -> dict[str, int]:
        totals = np.sum([v for v in self.shortfall.values()], axis=0) if self.shortfall else np.zeros(len(self.classes))
        return {c: int(n) for c, n in zip(self.classes, totals) if n}


TARGETS = ("max", "median")
#: The largest number ``--target`` takes: a billion 48x48 faces per class is terabytes, so a larger number is a typo,
#: and the plan's int64 arithmetic must not overflow.
MAX_TARGET = 10**9


def check_target(target: str | int) -> None:
    """Raise a one-line error unless ``target`` is ``max``, ``median`` or a number of images in 1..MAX_TARGET."""
    # ASCII digits only: str.isdigit() also accepts '²' and other digits int() cannot read.
    if str(target) in TARGETS or (re.fullmatch(r"[0-9]+", str(target)) and 0 < int(target) <= MAX_TARGET):
        return
    raise InvalidOptionError(
        f"unknown target {target!r}; use max, median or a number of images per class (1 to {MAX_TARGET:,})"
    )


def resolve_target(target: str | int, counts: np.ndarray) -> int:
    """``max`` (the largest class), ``median`` or a number of images per class."""
    check_target(target)
    if target == "max":
        return int(counts.max())
    if target == "median":
        return int(np.median(counts))
    return int(target)


def plan_topup(
    counts: Mapping[str, np.ndarray],
    pool_counts: np.ndarray,
    target: str | int = "max",
    classes: Sequence[str] = CLASSES,
) -> TopUpPlan:
    """Plan to bring each class of each split in ``counts`` up to ``target`` from a pool with ``pool_counts``.

    Counts are per class of ``classes``. Classes already at or above the target are left as they are (nothing is
    removed). Splits draw from the pool in the order given, so an earlier split is served first when the pool is
    short.
    """
    available = np.asarray(pool_counts, dtype=np.int64).copy()
    plan = TopUpPlan({}, {}, {}, {}, tuple(classes))
    for name, split_counts in counts.items():
        split_counts = np.asarray(split_counts, dtype=np.int64)
        goal = resolve_target(target, split_counts)
        need = np.maximum(goal - split_counts, 0)
        take = np.minimum(need, available)
        available -= take
        plan.counts[name] = split_counts.tolist()
        plan.targets[name] = [max(goal, int(c)) for c in split_counts]
        plan.take[name] = take.tolist()
        plan.shortfall[name] = (need - take).tolist()
    return plan


def apply_topup(
    splits: Mapping[str, Split], pool: Split, plan: TopUpPlan, seed: int, best_first: bool = False
) -> dict[str, Split]:
    """Add the pool images ``plan`` asks for to each split; pool rows are drawn without replacement: a seeded
    random draw, or with ``best_first`` the highest ``judge_score`` first (ties by file name), deterministically."""
    queues = {}
    for label in range(len(pool.classes)):
        rows = np.flatnonzero(pool.labels == label)
        if best_first:
            rows = rows[np.lexsort((pool.origin[rows].astype(str), -pool.judge_score[rows]))]
        else:
            rows = np.random.default_rng([seed, label]).permutation(rows)
        queues[label] = list(rows)
    result = dict(splits)
    for name, take in plan.take.items():
        picked = []
        for label, k in enumerate(take):
            picked.extend(queues[label][:k])
            del queues[label][:k]
        if picked:
            extra = pool.take(np.array(sorted(picked)))
            extra.source[:] = SYNTHETIC
            result[name] = Split.concat([splits[name], extra])
    return result


@dataclass
class BalanceResult:
    splits: dict[str, Split]
    plan: TopUpPlan | None
    notes: list[str] = field(default_factory=list)
    out: Path | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (row or file, why) of source data left out


@dataclass
class PackConfig:
    """What ``pack`` is asked to do: read ``dataset`` (relabelled with FER+ votes from ``ferplus`` when given, as
    ``label_mode`` says), map it to train/val/test (``val_fraction`` of train held out when the source has no val
    split, drawn with ``seed``), optionally drop train images identical (``drop_duplicates``) or nearly identical
    (``drop_near_duplicates``, pHash distance at most ``near_distance``) to a val/test image, and write ``out``.

    ``out`` ending in ``.h5`` writes the HDF5 contract (``compression`` of its images: None, gzip or lzf); anything
    else writes Kaggle-style folders with a manifest. A folder ``out`` must be new, empty or an earlier export
    unless ``overwrite``. Source rows left out are reported (an error with ``strict``).
    """

    dataset: str | os.PathLike
    out: str | os.PathLike | None  # None: a dry run's balance writes nothing
    _: KW_ONLY
    val_fraction: float = 0.1
    seed: int = 0
    drop_duplicates: bool = False
    drop_near_duplicates: bool = False
    near_distance: int = DEFAULT_MAX_DISTANCE
    strict: bool = False
    ferplus: str | os.PathLike | None = None
    label_mode: str = "majority"
    compression: str | None = None
    overwrite: bool = False


@dataclass
class BalanceConfig(PackConfig):
    """What ``balance`` is asked to do: a :class:`PackConfig` whose ``splits`` are topped up to ``target`` (max,
    median or a number of images per class) with faces from ``pool``.

    Synthetic images go into val or test only with ``force_synthetic_eval``; a pool too small is an error unless
    ``allow_shortfall``; pool faces nearly identical to a val/test face are refused unless ``allow_pool_leakage``
    (:func:`usable_pool`). ``dry_run`` plans and writes nothing. With ``judged``, only the faces the pool's judgement
    (``fer-models judge``) accepts under that policy are used, best-judged first. ``method``: ``generated`` (the
    pool's faces) or a classic rebalancing of the train split from its own rows (:mod:`fer_synth.data.oversample`).
    """

    _: KW_ONLY
    pool: str | os.PathLike = DEFAULT_POOL
    target: str | int = "max"
    splits: Sequence[str] = ("train",)
    force_synthetic_eval: bool = False
    allow_shortfall: bool = False
    allow_pool_leakage: bool = False
    dry_run: bool = False
    judged: SelectionPolicy | None = None
    method: str = GENERATED


def check_output(out: str | os.PathLike, inputs: Sequence[str | os.PathLike | None], overwrite: bool) -> None:
    """Before any work: ``out`` must not overlap an input; a folder output must be new, empty, an earlier
    export, or ``overwrite``; a file output must not be a folder, and an existing one must be an HDF5 file of ours
    (an earlier output) or ``overwrite``. Leftovers of killed writers are removed."""
    out = Path(out)
    refuse_inputs(out, inputs)
    if is_hdf5_path(out):
        if out.is_dir():
            raise OutputError(f"{out} is a folder; give a file name ending in .h5 (or a folder name without it)")
        refuse_existing_file(out, overwrite, is_own=store.is_store_file)
        make_dir(out.parent)
    else:  # checked only: the folder is built beside it and swapped in whole at the end
        check_output_folder(out, command="fer-synth pack/balance", is_own=has_file(EXPORT_MARKER), overwrite=overwrite)
    remove_stale_temps(out)


def prepare(config: PackConfig) -> tuple[ProtocolSplits, list[tuple[str, str]]]:
    """Read ``config.dataset`` and map it to train/val/test, dropping leaked train images if asked.

    Returns the splits and every source row or file left out with its reason; with ``strict`` any such row
    is an error instead."""
    source = read_dataset(config.dataset, ferplus=config.ferplus, label_mode=config.label_mode)
    protocol = protocol_splits(source, val_fraction=config.val_fraction, seed=config.seed)
    if config.drop_duplicates or config.drop_near_duplicates:
        protocol, _ = drop_leaked(protocol, config.near_distance if config.drop_near_duplicates else None)
    skipped = [*source.attrs.get("skipped", []), *protocol.unused]
    if config.strict and skipped:
        raise FerError(f"{config.dataset}: {describe_skipped(skipped)} (--strict); fix the source or drop --strict")
    return protocol, skipped


def usable_pool(
    pool: Split, protocol: ProtocolSplits, near_distance: int = DEFAULT_MAX_DISTANCE, allow_leakage: bool = False
) -> tuple[Split, list[str]]:
    """The pool faces ``balance`` may use, and notes saying which it left out or let in.

    The pool's classes are mapped by name onto the dataset's; faces of a class the dataset lacks are left out.
    A pool face nearly identical to a val or test face (pHash distance at most ``near_distance``) would leak
    that face into training (a pool made by ``crop`` from real photos can hold test faces): such faces are
    refused unless ``allow_leakage``.
    """
    notes = []
    classes = protocol.train.classes
    foreign = sorted({pool.classes[label] for label in np.unique(pool.labels)} - set(classes))
    pool, in_classes = pool.with_classes(classes)
    if foreign:
        notes.append(
            f"left out {int((~in_classes).sum())} pool faces of {', '.join(foreign)}: not a class of the "
            f"dataset ({classes.name}: {', '.join(classes)})"
        )
    leaky = near_mask(phash(pool.images), protocol.held_out_phashes(), near_distance)
    if leaky.any():
        first = ", ".join(pool.origin[leaky][:3])
        if allow_leakage:
            notes.append(
                f"WARNING: used {int(leaky.sum())} pool faces nearly identical to a val/test face (pHash "
                f"distance <= {near_distance}; --allow-pool-leakage): {first}, ..."
            )
        else:
            notes.append(
                f"refused {int(leaky.sum())} pool faces nearly identical to a val/test face (pHash distance "
                f"<= {near_distance}), e.g. {first}; --allow-pool-leakage uses them"
            )
            pool = pool.take(~leaky)
    return pool, notes


def balance(config: BalanceConfig) -> BalanceResult:
    """Top up ``config.dataset``'s chosen splits to the target with faces from the pool and write ``config.out``
    (:class:`BalanceConfig`). Nothing is written on a dry run; neither input is ever modified, and ``out`` may not
    overlap them. ``config.method`` other than ``generated`` tops up the train split by that classic method instead
    (:func:`oversample_train`; the pool is not read)."""
    unknown = [s for s in config.splits if s not in store.SPLITS]
    if not config.splits:
        raise InvalidOptionError(f"--splits names no split; give one or more of {', '.join(store.SPLITS)}")
    if unknown:
        raise FerError(f"unknown split(s) {', '.join(unknown)}; choose from {', '.join(store.SPLITS)}")
    eval_topup = [s for s in config.splits if s in EVAL_SPLITS]
    if eval_topup and not config.force_synthetic_eval:
        raise FerError(
            f"topping up {', '.join(eval_topup)} puts synthetic images into evaluation splits; "
            "add --force-synthetic-eval if you really mean it"
        )
    check_target(config.target)
    check_method(config.method)
    if config.method != GENERATED and (list(config.splits) != ["train"] or config.judged is not None):
        raise InvalidOptionError(
            f"--method {config.method} rebalances the train split only, from its own rows: drop "
            "--splits and --judged (they choose generated faces)"
        )
    if not config.dry_run:
        pool = config.pool if config.method == GENERATED else None  # the classic methods do not read it
        check_output(config.out, [config.dataset, pool, config.ferplus], config.overwrite)
    protocol, skipped = prepare(config)
    if config.method != GENERATED:
        return oversample_train(config, protocol, skipped)
    pool_path = Path(config.pool)
    real = protocol.as_dict()
    pool_split, pool_notes = usable_pool(
        read_pool_faces(
            pool_path, "make one with `fer-synth generate --emotion all --n N` (it writes generated/) or pass --pool"
        ),
        protocol,
        config.near_distance,
        config.allow_pool_leakage,
    )
    judgement = None
    if config.judged is not None:
        pool_split, judgement = trusted_pool(pool_path, pool_split, config.judged)
    plan = plan_topup(
        {s: real[s].counts() for s in config.splits}, pool_split.counts(), config.target, pool_split.classes
    )
    if plan.total_shortfall and not config.allow_shortfall:
        short = ", ".join(f"{c} short by {n}" for c, n in plan.shortfall_by_class().items())
        raise ShortfallError(
            f"the pool {pool_path} is too small: {short}; generate more "
            "(`fer-synth generate --emotion CLASS --n N`) or pass --allow-shortfall"
        )
    notes = [*protocol.notes, *pool_notes]
    if eval_topup:
        notes.append(f"WARNING: synthetic images were forced into {', '.join(eval_topup)}")
    result = BalanceResult(real, plan, notes, skipped=skipped)
    if config.dry_run:
        return result
    result.splits = apply_topup(real, pool_split, plan, config.seed, best_first=config.judged is not None)
    attrs = {
        "source_dataset": str(config.dataset),
        "method": GENERATED,
        "pool": str(pool_path),
        "seed": config.seed,
        "target": str(config.target),
        "topped_up_splits": list(config.splits),
        "forced_synthetic_eval": bool(eval_topup),
        "plan": {"counts": plan.counts, "targets": plan.targets, "take": plan.take, "shortfall": plan.shortfall},
        "notes": notes,
        "skipped_source_files": len(skipped),
        **({"judgement": judgement} if judgement else {}),
    }
    if judgement:
        notes.append(
            f"pool judged by {judgement['judge']['model']}; policy {judgement['policy']}: "
            f"{sum(judgement['accepted'].values())} of {judgement['judged']} faces trusted"
        )
    result.out = write_output(config.out, result.splits, attrs, config.compression)
    return result


def oversample_train(config: BalanceConfig, protocol: ProtocolSplits, skipped: list[tuple[str, str]]) -> BalanceResult:
    """``balance --method ros|smote|...``: the train split of ``protocol`` brought to ``config.target`` by
    ``config.method``, after the split (val and test are written as they are); nothing is written on a dry run."""
    dataset, method, target, seed = config.dataset, config.method, config.target, config.seed
    out, compression = None if config.dry_run else config.out, config.compression
    real = protocol.as_dict()
    train = real["train"]
    counts = train.counts()
    goal = resolve_target(target, counts)
    wanted = np.where(counts > 0, np.maximum(goal - counts, 0), 0)
    empty = np.where(counts == 0, goal, 0)
    plan = TopUpPlan(
        {"train": counts.tolist()},
        {"train": np.maximum(goal, counts).tolist()},
        {"train": wanted.tolist()},
        {"train": empty.tolist()},
        tuple(train.classes),
    )
    notes = [*protocol.notes]
    if empty.any():
        notes.append(
            f"WARNING: {', '.join(c for c, n in zip(train.classes, counts) if not n)}: no train row to "
            f"oversample from; --method {method} leaves such a class empty"
        )
    result = BalanceResult(real, plan, notes, skipped=skipped)
    if out is None:
        return result
    resampled = oversample(train, method, goal, seed)
    plan.take["train"] = resampled.added.tolist()
    notes.extend(resampled.notes())
    result.splits = {**real, "train": resampled.split}
    attrs = {
        "source_dataset": str(dataset),
        "method": method,
        "sampler": resampled.sampler,
        "seed": seed,
        "target": str(target),
        "topped_up_splits": ["train"],
        "forced_synthetic_eval": False,
        "plan": {"counts": plan.counts, "targets": plan.targets, "take": plan.take, "shortfall": plan.shortfall},
        "removed": {
            "real": dict(zip(train.classes, resampled.removed_real.tolist())),
            "synthetic": dict(zip(train.classes, resampled.removed_synthetic.tolist())),
            "first_real": resampled.removed_examples,
        },
        "notes": notes,
        "skipped_source_files": len(skipped),
    }
    result.out = write_output(out, result.splits, attrs, compression)
    return result


def trusted_pool(pool: Path, faces: Split, policy: SelectionPolicy) -> tuple[Split, dict]:
    """The pool faces ``policy`` trusts (each with its judge score) and a summary for the output's provenance.

    Every face must have a judgement by one judge, made for its present content (its file's hash) and for the
    class of the folder it is in: a score of bytes that have changed since is never used."""
    everything = read_judgement(pool)
    if not everything:
        raise JudgementError(
            f"{pool} was never judged; run `fer-models judge {pool}` first, or balance without --judged"
        )
    records, stale = current_judgement(pool, faces.origin, everything)
    judge = judge_of(records)
    check_one_class_list(records, pool)
    missing = [o for o in faces.origin if o not in records]
    if missing:
        changed = f", {len(stale)} of them changed since they were judged" if stale else ""
        raise JudgementError(
            f"{len(missing)} faces of {pool} have no judgement of their present content{changed} "
            f"(e.g. {', '.join(map(printable, missing[:3]))}); run `fer-models judge {pool}` again: it "
            "judges only the new and changed faces"
        )
    moved = [o for o, label in zip(faces.origin, faces.labels) if records[o]["class"] != faces.classes[label]]
    if moved:
        raise JudgementError(
            f"{len(moved)} faces of {pool} were judged as another class than their folder's (e.g. "
            f"{', '.join(moved[:3])}); judge the pool again with --overwrite"
        )
    faces.judge_score[:] = [records[o]["p_intended"] for o in faces.origin]
    trusted = {r["file"] for rs in policy.select(records[o] for o in faces.origin).values() for r in rs}
    keep = np.array([o in trusted for o in faces.origin], dtype=bool)
    accepted = np.bincount(faces.labels[keep], minlength=len(faces.classes))
    summary = {
        "judge": judge,
        "policy": str(policy),
        "judged": len(faces),
        "accepted": {c: int(n) for c, n in zip(faces.classes, accepted)},
    }
    return faces.take(keep), summary


def pack(config: PackConfig) -> BalanceResult:
    """Write ``config.dataset`` as train/val/test with no top-up (``fer-synth pack``; :class:`PackConfig`)."""
    check_output(config.out, [config.dataset, config.ferplus], config.overwrite)
    protocol, skipped = prepare(config)
    attrs = {
        "source_dataset": str(config.dataset),
        "seed": config.seed,
        "notes": protocol.notes,
        "skipped_source_files": len(skipped),
    }
    splits = protocol.as_dict()
    return BalanceResult(
        splits, None, protocol.notes, write_output(config.out, splits, attrs, config.compression), skipped
    )


def write_output(
    out: str | os.PathLike, splits: Mapping[str, Split], attrs: Mapping, compression: str | None = None
) -> Path:
    """HDF5 when ``out`` ends in .h5/.hdf5, Kaggle-style folders otherwise."""
    out = Path(out)
    _check_space(out, splits)
    if is_hdf5_path(out):
        return store.write(out, splits, attrs, compression)
    return write_folders(out, splits, attrs)


def is_hdf5_path(path: Path) -> bool:
    return path.suffix.lower() in (".h5", ".hdf5")


def _check_space(out: Path, splits: Mapping[str, Split]) -> None:
    """Refuse before writing when the disk cannot hold the output (HDF5 fails badly on a full disk)."""
    pixels = sum(split.images.nbytes for split in splits.values())
    needed = int(pixels * 1.2) + (1 << 20) * (1 if is_hdf5_path(out) else 4)  # headers, provenance, PNG overhead
    free = shutil.disk_usage(out.parent if out.parent.exists() else Path.cwd()).free
    if free < needed:
        raise OutputError(
            f"{out}: about {needed / 1e6:.0f} MB are needed and {free / 1e6:.0f} MB are free on its disk; "
            "free space or choose another output path"
        )


def default_output(dataset: str | os.PathLike) -> Path:
    """``fer2013/`` or ``fer2013.csv.gz`` -> ``fer2013_balanced.h5`` in the current directory; named after what
    the user typed (a symbolic link's name, not its target's)."""
    name = Path(os.path.abspath(dataset)).name
    for suffix in (".gz", ".csv", ".h5", ".hdf5"):
        name = name.removesuffix(suffix)
    return Path(f"{name}_balanced.h5")
