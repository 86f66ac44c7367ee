"""The generation run: prompts -> diffusion pipeline -> (face stage) -> images + manifest.

Image ``i`` of a class is a pure function of (seed, class, i) (see :mod:`fer_synth.generation.prompts`), so the
run can be split and restarted freely:

- **Sharding.** With ``RANK``/``WORLD_SIZE`` set (``torchrun``, ``accelerate launch``), rank r takes the
  indices ``i % WORLD_SIZE == r`` and writes its own manifest shard; ranks share nothing, so the union
  equals a one-process run.
- **Resume.** Indices with a manifest record are done; the same command again does only the rest.
- **Face stage** (``face_stage``, see docs/generation.md): every attempt gets a record, kept
  48x48 crops are the output, ``n`` counts kept faces, and new indices are drawn until ``n`` pass or
  ``max_attempts * n`` attempts are spent. Without it, each of the ``n`` indices is one raw image. Either
  way a worker thread beside the pipeline runs the face stage and writes the PNGs, so the accelerator does
  not wait for the CPU work.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from PIL import Image

from fer_synth.core.errors import InvalidOptionError
from fer_synth.core.images import printable, save_png
from fer_synth.core.manifest import ManifestWriter, check_settings, read_records, shard_name
from fer_synth.core.outputs import check_output_folder, has_settings_of, output_folder
from fer_synth.generation.config import GenerateConfig
from fer_synth.generation.pipeline import build_pipeline
from fer_synth.generation.prompts import Prompt, PromptSet, load_prompts
from fer_synth.ui.console import progress_bar

logger = logging.getLogger(__name__)

#: What the run records in its run.json, so that a later run recognises the folder as its own.
COMMAND = "generate"


class FaceResultLike(Protocol):
    kept: bool
    reason: str | None
    faces: list[np.ndarray]

    def to_record(self) -> dict: ...


class FaceStageLike(Protocol):
    """What the run needs of a face stage (:class:`fer_synth.faces.stage.FaceStage` satisfies it)."""

    settings: dict
    files: tuple[Path, ...]  # the model files it read: inputs, which the output may not overwrite

    def __call__(self, image: Image.Image, nsfw_flag: bool = False) -> FaceResultLike: ...


@dataclass
class ClassSummary:
    done_before: int = 0  # records found at start (resume)
    attempted: int = 0  # pipeline images made by this run
    kept: int = 0  # faces (or raw images) in the output after this run, for this rank
    target: int = 0
    attempts_total: int = 0
    reasons: Counter = field(default_factory=Counter)
    nsfw: int = 0

    @property
    def shortfall(self) -> int:
        return max(0, self.target - self.kept)

    def add(self, kept: int, reason: str | None, nsfw: bool = False, new: bool = True) -> None:
        """Count one attempt: ``kept`` outputs, or none for ``reason``."""
        self.attempts_total += 1
        self.attempted += new
        self.done_before += not new
        self.kept += kept
        self.nsfw += bool(nsfw) and new
        if not kept:
            self.reasons[reason or "rejected"] += 1


@dataclass
class RunSummary:
    out: Path
    rank: int
    world_size: int
    seconds: float
    per_class: dict[str, ClassSummary]
    max_attempts: int | None

    @property
    def images_made(self) -> int:
        return sum(c.attempted for c in self.per_class.values())

    def shortfall_report(self) -> str | None:
        """One line per class that ended short of its target (face stage only), else None."""
        lines = []
        for name, c in self.per_class.items():
            if c.shortfall:
                reasons = ", ".join(f"{r} {k}" for r, k in c.reasons.most_common()) or "none recorded"
                lines.append(
                    f"{name}: {c.kept} of {c.target} faces after {c.attempts_total} attempts "
                    f"(--max-attempts {self.max_attempts}); rejected: {reasons}"
                )
        if not lines:
            return None
        return "\n".join(lines) + "\nraise --max-attempts, or loosen the face filters, then run the same command again"


def shard_from_env() -> tuple[int, int]:
    """(rank, world size) from the variables torchrun and accelerate launch set; (0, 1) without them."""
    try:
        rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    except ValueError:
        raise InvalidOptionError("RANK and WORLD_SIZE must be integers") from None
    if world < 1 or not 0 <= rank < world:
        raise InvalidOptionError(f"RANK={rank} WORLD_SIZE={world}: need 0 <= RANK < WORLD_SIZE")
    return rank, world


def image_name(emotion: str, seed: int, index: int) -> str:
    return f"{emotion}_s{seed}_{index:06d}"


def run_settings(config: GenerateConfig, prompt_set: PromptSet, face_stage: FaceStageLike | None) -> dict:
    """What decides the pixels of image i: a different value in the same --out folder is an error."""
    return {
        "command": COMMAND,
        "seed": config.seed,
        "steps": config.steps,
        "guidance": config.guidance,
        "height": config.height,
        "width": config.width,
        "prompts": prompt_set.digest,
        **config.pipeline.settings(),
        "faces": dict(face_stage.settings) if face_stage is not None else None,
    }


# --- what an attempt produces: raw images, or face crops ----------------------------------------------


def recorded_files(record: dict) -> list[str]:
    """The files (relative to the run folder) a manifest record says its attempt wrote: the image, or its faces
    and the kept full-size image."""
    return [record[k] for k in ("file", "raw_file") if record.get(k)] + list(record.get("files", []))


class RawImages:
    """Without a face stage: index i is one full-size image, ``OUT/<class>/<name>.png``; n indices in all."""

    max_attempts = 1

    def __init__(self, config: GenerateConfig):
        self.out = config.out

    def outputs_of(self, record: dict) -> int:
        return 1

    def rejection_of(self, record: dict) -> str | None:
        return None

    def process(self, prompt: Prompt, name: str, image: Image.Image, nsfw: bool) -> tuple[dict, list]:
        file = f"{prompt.emotion}/{name}.png"
        return {"file": file}, [(image, self.out / file)]


class FaceCrops:
    """With a face stage: an attempt keeps its 48x48 crops, ``OUT/<class>/<name>_f<k>.png`` (the full image too,
    under ``OUT/raw/``, with ``keep_raw``); attempts go on until n faces pass or ``max_attempts * n`` are spent."""

    def __init__(self, config: GenerateConfig, face_stage: FaceStageLike):
        self.out, self.keep_raw, self.stage = config.out, config.keep_raw, face_stage
        self.max_attempts = config.max_attempts

    def outputs_of(self, record: dict) -> int:
        return len(record.get("files", []))

    def rejection_of(self, record: dict) -> str | None:
        return (record.get("face") or {}).get("reason")

    def process(self, prompt: Prompt, name: str, image: Image.Image, nsfw: bool) -> tuple[dict, list]:
        fields, writes = {}, []
        if self.keep_raw:
            fields["raw_file"] = f"raw/{prompt.emotion}/{name}.png"
            writes.append((image, self.out / fields["raw_file"]))
        result = self.stage(image, nsfw)
        files = []
        for k, crop in enumerate(result.faces if result.kept else []):
            files.append(f"{prompt.emotion}/{name}_f{k}.png")
            writes.append((crop, self.out / files[-1]))
        fields.update(face=result.to_record(), files=files)
        return fields, writes


Output = RawImages | FaceCrops


# --- the worker thread ----------------------------------------------------------------------------------


@dataclass
class _Batch:
    prompts: list[Prompt]
    images: list[Image.Image]
    nsfw: list[bool | None]
    seconds: float


class _Writer:
    """The worker thread: per image the output's processing (the face stage), then the batch's PNGs (a few
    encoder threads: PNG encoding releases the GIL), then its manifest records, after their files.

    A context manager: leaving it normally waits for every queued batch and re-raises a worker error;
    leaving it by an exception stops the worker without waiting for the rest."""

    def __init__(
        self,
        config: GenerateConfig,
        output: Output,
        manifest: ManifestWriter,
        base_record: dict,
        summary: dict[str, ClassSummary],
        on_done: Callable[[str, int], None],
    ):
        self.config, self.output, self.manifest = config, output, manifest
        self.base_record, self.summary, self.on_done = base_record, summary, on_done
        self._queue: queue.Queue[_Batch | None] = queue.Queue(maxsize=2)
        self._error: BaseException | None = None
        self._lock = threading.Lock()
        self._encoders = ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1), thread_name_prefix="fer-synth-png")
        self._thread = threading.Thread(target=self._run, name="fer-synth-writer", daemon=True)

    def __enter__(self) -> _Writer:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type | None, *exc: object) -> None:
        self._queue.put(None)
        self._thread.join()
        self._encoders.shutdown()
        if exc_type is None:
            self._raise_error()

    def kept(self, emotion: str) -> int:
        with self._lock:
            return self.summary[emotion].kept

    def put(self, batch: _Batch) -> None:
        while True:
            self._raise_error()
            try:
                self._queue.put(batch, timeout=0.5)
                return
            except queue.Full:
                continue

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        try:
            while (batch := self._queue.get()) is not None:
                self._write(batch)
        except BaseException as e:  # handed to the main thread, which re-raises it
            self._error = e
            while self._queue.get() is not None:  # unblock the producer until it notices
                pass

    def _write(self, batch: _Batch) -> None:
        records, writes, done = [], [], []
        for prompt, image, nsfw in zip(batch.prompts, batch.images, batch.nsfw):
            c = self.summary[prompt.emotion]
            if c.kept >= c.target:
                continue  # a speculative attempt past the target: leave the index undone
            name = image_name(prompt.emotion, self.config.seed, prompt.index)
            fields, files = self.output.process(prompt, name, image, bool(nsfw))
            record = {
                "class": prompt.emotion,
                "index": prompt.index,
                "seed": prompt.seed,
                "prompt": prompt.text,
                "negative_prompt": prompt.negative,
                **self.base_record,
                "nsfw": nsfw,
                "time_s": round(batch.seconds / len(batch.images), 4),
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                **fields,
            }
            kept = self.output.outputs_of(record)
            records.append(record)
            writes += files
            with self._lock:
                c.add(kept, self.output.rejection_of(record), bool(nsfw))
            done.append((prompt.emotion, kept))
        list(self._encoders.map(lambda write: save_png(*write), writes))
        self.manifest.append(records)
        for emotion, kept in done:
            self.on_done(emotion, kept)


# --- the run --------------------------------------------------------------------------------------------


def generate(
    config: GenerateConfig,
    *,
    pipe: Any = None,
    face_stage: FaceStageLike | None = None,
    rank: int | None = None,
    world_size: int | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> RunSummary:
    """Run (or resume) generation; returns what this rank did. ``pipe`` skips building one.

    ``config.out`` must be new, empty or an earlier generation run's folder; ``overwrite`` replaces it (the new run
    is built beside it and swapped in at the end).
    """
    # 1. Check everything that can fail before a model loads.
    config = config.resolved()
    if rank is None or world_size is None:
        rank, world_size = shard_from_env()
    if overwrite and world_size > 1:
        raise InvalidOptionError(
            "--overwrite empties the output folder, which ranks of one run share; empty it "
            "before starting a sharded run"
        )
    model_files = face_stage.files if face_stage is not None else ()
    resumes = check_output(config, overwrite, model_files) and not overwrite
    prompt_set = load_prompts(config.prompts)
    for emotion in config.emotions:
        prompt_set.lists_for(emotion)
    settings = run_settings(config, prompt_set, face_stage)
    shard = shard_name(rank, world_size)
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    if pipe is None and not resumes:
        # A new, empty or replaced output has all its work left: the model loads before the folder is claimed, so
        # a model that cannot be loaded (a LoRA of another architecture, a folder that is no pipeline) is one line
        # that leaves no folder behind. A run that resumes loads it below, only when work is left.
        pipe = build_pipeline(config.pipeline, local_rank=local_rank)

    # 2. The output folder: resumed in place, or with --overwrite built beside the old one and swapped in at the end
    #    (a failed or killed run leaves the old one whole). One process per shard: its lock is held until the run
    #    ends (a dead holder's lock is free at once).
    with output_folder(
        config.out,
        command=COMMAND,
        is_own=has_settings_of(COMMAND),
        overwrite=overwrite,
        inputs=_inputs(config, model_files),
        lock=f".{shard}.lock",
    ) as work:
        check_settings(work, settings, create=False)
        placed = dataclasses.replace(config, out=work)  # where the files go now: --out, or the replacement's folder
        output: Output = RawImages(placed) if face_stage is None else FaceCrops(placed, face_stage)
        # 3. What earlier runs did (resume), and this rank's share.
        quota = config.n // world_size + (rank < config.n % world_size)
        done: dict[str, set[int]] = {e: set() for e in config.emotions}
        summary = {e: ClassSummary(target=quota) for e in config.emotions}
        missing = []
        for r in read_records(work):
            if r.get("class") in done and r.get("index", -1) % world_size == rank:
                done[r["class"]].add(r["index"])
                summary[r["class"]].add(output.outputs_of(r), output.rejection_of(r), new=False)
                missing += [f for f in recorded_files(r) if not (work / f).is_file()]
        if missing:
            # Records are the commit point, so a deleted image stays done (a user curating a pool by deleting faces
            # is not undone); said, so that a shortfall on disk is never a surprise.
            logger.warning(
                f"{len(missing)} image(s) the manifest records are no longer in {printable(str(config.out))} "
                f"(e.g. {', '.join(map(printable, missing[:3]))}): they still count as made; generate into a new "
                "--out, or pass --overwrite, to make them again"
            )
        max_total = output.max_attempts * quota

        # 4. The pipeline, only if there is work left.
        if pipe is None and any(s.kept < quota and s.attempts_total < max_total for s in summary.values()):
            pipe = build_pipeline(config.pipeline, local_rank=local_rank)
        check_settings(work, settings)
        base_record = {
            k: v for k, v in run_settings(config, prompt_set, None).items() if k not in ("faces", "prompts", "command")
        }
        base_record.update(run_seed=base_record.pop("seed"), prompts_digest=prompt_set.digest, rank=rank)

        # 5. Batches through the pipeline; the writer keeps or rejects each image and records it.
        started = time.perf_counter()
        with _progress(progress) as bar, ManifestWriter(work / shard) as manifest:
            tasks = {e: bar.add_task(e, total=quota, completed=min(quota, summary[e].kept)) for e in config.emotions}
            with _Writer(
                config, output, manifest, base_record, summary, on_done=lambda e, k: bar.advance(tasks[e], k)
            ) as writer:
                for emotion in config.emotions:
                    indices = _undone(done[emotion], rank, world_size, limit=config.n if face_stage is None else None)
                    scheduled = summary[emotion].attempts_total
                    while writer.kept(emotion) < quota and scheduled < max_total:
                        batch = [
                            prompt_set.prompt(config.seed, emotion, i)
                            for i in _take(indices, min(config.batch_size, max_total - scheduled))
                        ]
                        if not batch:
                            break
                        scheduled += len(batch)
                        writer.put(_call(pipe, batch, config))

    # 6. What this rank did.
    return RunSummary(
        out=config.out,
        rank=rank,
        world_size=world_size,
        seconds=time.perf_counter() - started,
        per_class=summary,
        max_attempts=config.max_attempts if face_stage is not None else None,
    )


def check_output(
    config: GenerateConfig, overwrite: bool = False, model_files: Iterable[str | os.PathLike] = ()
) -> bool:
    """Before anything loads: ``config.out`` new, empty, an earlier generation run's or ``overwrite``; never over
    what the run reads (local model files, the prompt file, the face stage's ``model_files``). True when it holds
    content (an earlier run, which the same command resumes)."""
    return check_output_folder(
        config.out,
        command=COMMAND,
        is_own=has_settings_of(COMMAND),
        overwrite=overwrite,
        inputs=_inputs(config, model_files),
    )


def _inputs(config: GenerateConfig, model_files: Iterable[str | os.PathLike]) -> list:
    return [*config.pipeline.local_files(), config.prompts, *model_files]


def _undone(done: set[int], rank: int, world: int, limit: int | None) -> Iterator[int]:
    """This rank's indices not done yet, in order; below ``limit`` if given (attempts past n otherwise)."""
    i = rank
    while limit is None or i < limit:
        if i not in done:
            yield i
        i += world


def _take(it: Iterator[int], k: int) -> list[int]:
    out = []
    for i in it:
        out.append(i)
        if len(out) == k:
            break
    return out


def _call(pipe: Any, batch: list[Prompt], config: GenerateConfig) -> _Batch:
    # CPU generators: the initial noise of image i is the same on every device.
    generators = [torch.Generator("cpu").manual_seed(p.seed) for p in batch]
    start = time.perf_counter()
    result = pipe(
        prompt=[p.text for p in batch],
        negative_prompt=[p.negative for p in batch],
        num_inference_steps=config.steps,
        guidance_scale=config.guidance,
        height=config.height,
        width=config.width,
        generator=generators,
    )
    flags = getattr(result, "nsfw_content_detected", None)
    nsfw = [bool(f) for f in flags] if flags is not None else [None] * len(batch)
    return _Batch(batch, list(result.images), nsfw, time.perf_counter() - start)


def _progress(enabled: bool):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class Rate(ProgressColumn):
        def render(self, task) -> Text:
            speed = task.finished_speed or task.speed
            return Text(f"{speed:.2f} img/s" if speed else "-- img/s")

    return progress_bar(
        enabled,
        TextColumn("{task.description:>8}"),
        BarColumn(),
        MofNCompleteColumn(),
        Rate(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
