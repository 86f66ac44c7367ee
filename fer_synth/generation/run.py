"""The generation run: prompts -> diffusion pipeline -> (face stage) -> images + manifest.

Image ``i`` of a class is a pure function of (seed, class, i) (see :mod:`fer_synth.generation.prompts`), so the
run can be split and restarted freely:

- **Sharding.** With ``RANK``/``WORLD_SIZE`` set (``torchrun``, ``accelerate launch``), rank r takes the
  indices ``i % WORLD_SIZE == r`` and writes its own manifest shard; ranks share nothing, so the union
  equals a one-process run.
- **Resume.** Indices with a manifest record are done; the same command again does only the rest.
- **Face stage** (``face_stage``, see docs/generation.md): every attempt gets a record, kept
  48x48 crops are the output, ``n`` counts kept faces, and new indices are drawn until ``n`` pass or
  ``max_attempts * n`` attempts are spent. It runs in a worker thread beside the pipeline, which also
  encodes and writes the PNGs, so the accelerator does not wait for the CPU work.
"""

from __future__ import annotations

import math
import os
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from PIL import Image

from fer_synth.core import classes
from fer_synth.core.errors import FerError
from fer_synth.core.manifest import (ManifestWriter, check_settings, read_records, remove_stale_temp_files, save_image,
                                shard_name)
from fer_synth.generation.pipeline import PipelineOptions, build_pipeline
from fer_synth.generation.prompts import Prompt, PromptSet, load_prompts

#: Defaults: DPM-Solver++ 2M at 25 steps reaches the quality of the seed's 40 steps at 5/8 of the cost;
#: guidance 5.5 is the seed's tested value for Realistic Vision. See docs/generation.md.
DEFAULT_STEPS = 25
DEFAULT_GUIDANCE = 5.5
DEFAULT_SIZE = 512
DEFAULT_BATCH = 4
DEFAULT_MAX_ATTEMPTS = 3


class FaceResultLike(Protocol):
    kept: bool
    reason: str | None
    faces: list[np.ndarray]

    def to_record(self) -> dict: ...


class FaceStageLike(Protocol):
    """What the run needs of a face stage (fer_synth.faces.stage.FaceStage satisfies it)."""

    settings: dict

    def __call__(self, image: Image.Image, nsfw_flag: bool = False) -> FaceResultLike: ...


@dataclass
class GenerateConfig:
    """One generation run (the CLI's options, as a notebook would pass them)."""

    emotions: Sequence[str]
    n: int
    seed: int = 0
    out: Path = Path("generated")
    steps: int = DEFAULT_STEPS
    guidance: float = DEFAULT_GUIDANCE
    height: int = DEFAULT_SIZE
    width: int = DEFAULT_SIZE
    batch_size: int = DEFAULT_BATCH
    prompts: str | Path | None = None  # a prompt file; None = the default one
    pipeline: PipelineOptions = field(default_factory=PipelineOptions)
    keep_raw: bool = False  # with a face stage: also keep the full-size images under OUT/raw/<class>/
    max_attempts: int = DEFAULT_MAX_ATTEMPTS  # with a face stage: attempts per wanted face

    def check(self) -> None:
        """Validate every option before a model or face detector loads."""
        self.emotions = classes.resolve_many(self.emotions)
        self.pipeline.check()
        for name, value, low in (("n", self.n, 1), ("steps", self.steps, 1), ("batch-size", self.batch_size, 1),
                                 ("max-attempts", self.max_attempts, 1), ("seed", self.seed, 0)):
            if value < low:
                raise FerError(f"--{name} must be at least {low} (got {value})")
        if self.guidance < 0:
            raise FerError(f"--guidance must be >= 0 (got {self.guidance})")
        if self.height % 8 or self.width % 8 or min(self.height, self.width) < 8:
            raise FerError(f"image size must be a positive multiple of 8 (got {self.width}x{self.height})")


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
        raise FerError("RANK and WORLD_SIZE must be integers") from None
    if world < 1 or not 0 <= rank < world:
        raise FerError(f"RANK={rank} WORLD_SIZE={world}: need 0 <= RANK < WORLD_SIZE")
    return rank, world


def image_name(emotion: str, seed: int, index: int) -> str:
    return f"{emotion}_s{seed}_{index:06d}"


def run_settings(config: GenerateConfig, prompt_set: PromptSet, face_stage: FaceStageLike | None) -> dict:
    """What decides the pixels of image i: a different value in the same --out folder is an error."""
    return {
        "seed": config.seed,
        "steps": config.steps,
        "guidance": config.guidance,
        "height": config.height,
        "width": config.width,
        "prompts": prompt_set.digest,
        **config.pipeline.settings(),
        "faces": dict(face_stage.settings) if face_stage is not None else None,
    }


@dataclass
class _Batch:
    prompts: list[Prompt]
    images: list[Image.Image]
    nsfw: list[bool | None]
    seconds: float


class _Writer:
    """The worker thread: face stage, PNG writes and manifest records, in index order."""

    def __init__(self, config: GenerateConfig, face_stage: FaceStageLike | None, manifest: ManifestWriter,
                 base_record: dict, summary: dict[str, ClassSummary], on_done: Callable[[str, int], None]):
        self.config, self.face_stage, self.manifest = config, face_stage, manifest
        self.base_record, self.summary, self.on_done = base_record, summary, on_done
        self.queue: queue.Queue[_Batch | None] = queue.Queue(maxsize=2)
        self.error: BaseException | None = None
        self.lock = threading.Lock()
        # PNG encoding releases the GIL: a few threads keep up with a fast GPU (one would not, at 512 px).
        self.encoders = ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1), thread_name_prefix="fer-synth-png")
        self.thread = threading.Thread(target=self._run, name="fer-synth-writer", daemon=True)
        self.thread.start()

    def kept(self, emotion: str) -> int:
        with self.lock:
            return self.summary[emotion].kept

    def put(self, batch: _Batch) -> None:
        while True:
            self.raise_error()
            try:
                self.queue.put(batch, timeout=0.5)
                return
            except queue.Full:
                continue

    def finish(self) -> None:
        self.queue.put(None)
        self.thread.join()
        self.encoders.shutdown()
        self.raise_error()

    def raise_error(self) -> None:
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        try:
            while (batch := self.queue.get()) is not None:
                self._write(batch)
        except BaseException as e:  # handed to the main thread, which re-raises it
            self.error = e
            while self.queue.get() is not None:  # unblock the producer until it notices
                pass

    def _write(self, batch: _Batch) -> None:
        """Face stage per image, then every file of the batch, then its records (after their files)."""
        out, records, writes, done = self.config.out, [], [], []
        for prompt, image, nsfw in zip(batch.prompts, batch.images, batch.nsfw):
            c = self.summary[prompt.emotion]
            if self.face_stage is not None and c.kept >= c.target:
                continue  # a speculative attempt past the target: leave the index undone
            name = image_name(prompt.emotion, self.config.seed, prompt.index)
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
            }
            kept = 1
            if self.face_stage is None:
                writes.append((image, out / prompt.emotion / f"{name}.png"))
                record["file"] = f"{prompt.emotion}/{name}.png"
            else:
                if self.config.keep_raw:
                    writes.append((image, out / "raw" / prompt.emotion / f"{name}.png"))
                    record["raw_file"] = f"raw/{prompt.emotion}/{name}.png"
                result = self.face_stage(image, bool(nsfw))
                files = []
                for k, crop in enumerate(result.faces if result.kept else []):
                    files.append(f"{prompt.emotion}/{name}_f{k}.png")
                    writes.append((Image.fromarray(np.asarray(crop, dtype=np.uint8)), out / files[-1]))
                record["face"] = result.to_record()
                record["files"] = files
                kept = len(files)
            records.append(record)
            with self.lock:
                c.attempted += 1
                c.attempts_total += 1
                c.kept += kept
                c.nsfw += bool(nsfw)
                if self.face_stage is not None and not kept:
                    c.reasons[record["face"].get("reason") or "rejected"] += 1
            done.append((prompt.emotion, kept))
        list(self.encoders.map(lambda write: save_image(*write), writes))
        self.manifest.append(records)
        for emotion, kept in done:
            self.on_done(emotion, kept)


def _rank_indices(rank: int, world: int) -> Iterator[int]:
    i = rank
    while True:
        yield i
        i += world


def generate(
    config: GenerateConfig,
    *,
    pipe: Any = None,
    face_stage: FaceStageLike | None = None,
    rank: int | None = None,
    world_size: int | None = None,
    progress: bool = True,
    log: Callable[[str], None] = lambda _: None,
) -> RunSummary:
    """Run (or resume) generation; returns what this rank did. ``pipe`` skips building one."""
    config.check()
    config.out = Path(config.out)
    if rank is None or world_size is None:
        rank, world_size = shard_from_env()
    prompt_set = load_prompts(config.prompts)
    for emotion in config.emotions:
        prompt_set.lists_for(emotion)  # a missing class fails before the model loads
    settings = run_settings(config, prompt_set, face_stage)
    check_settings(config.out, settings, create=False)  # a mismatch fails before the model loads

    done: dict[str, set[int]] = {e: set() for e in config.emotions}
    summary = {e: ClassSummary() for e in config.emotions}
    for r in read_records(config.out):
        if r.get("class") in done and r.get("index", -1) % world_size == rank:
            done[r["class"]].add(r["index"])
            s = summary[r["class"]]
            s.done_before += 1
            s.attempts_total += 1
            s.kept += len(r.get("files", [])) if face_stage is not None else 1
            if face_stage is not None and not r.get("files"):
                s.reasons[(r.get("face") or {}).get("reason") or "rejected"] += 1
    quota = config.n // world_size + (rank < config.n % world_size)
    for s in summary.values():
        s.target = quota

    def todo(emotion: str) -> Iterator[int]:
        """This rank's next undone indices; with a face stage, attempts continue past n."""
        limit = config.n if face_stage is None else math.inf
        for i in _rank_indices(rank, world_size):
            if i >= limit:
                return
            if i not in done[emotion]:
                yield i

    def has_work(s: ClassSummary) -> bool:
        if face_stage is None:
            return s.kept < quota
        return s.kept < quota and s.attempts_total < config.max_attempts * quota

    if pipe is None and any(has_work(s) for s in summary.values()):
        if config.pipeline.device in ("auto", "cuda") and world_size > 1 and torch.cuda.is_available():
            config.pipeline.device = f"cuda:{int(os.environ.get('LOCAL_RANK', rank)) % torch.cuda.device_count()}"
        pipe = build_pipeline(config.pipeline, log=log)
    check_settings(config.out, settings)
    remove_stale_temp_files(config.out)
    base_record = {k: v for k, v in run_settings(config, prompt_set, None).items() if k not in ("faces", "prompts")}
    base_record.update(run_seed=base_record.pop("seed"), prompts_digest=prompt_set.digest, rank=rank)

    started = time.perf_counter()
    with _progress(progress) as bar, ManifestWriter(config.out / shard_name(rank, world_size)) as manifest:
        tasks = {e: bar.add_task(e, total=quota, completed=min(quota, summary[e].kept)) for e in config.emotions}
        writer = _Writer(config, face_stage, manifest, base_record, summary,
                         on_done=lambda e, k: bar.advance(tasks[e], k))
        try:
            for emotion in config.emotions:
                s = summary[emotion]
                max_total = config.max_attempts * quota
                indices = todo(emotion)
                scheduled = s.attempts_total
                while True:
                    if face_stage is not None and (writer.kept(emotion) >= quota or scheduled >= max_total):
                        break
                    size = config.batch_size if face_stage is None else min(config.batch_size, max_total - scheduled)
                    batch = [prompt_set.prompt(config.seed, emotion, i) for i in _take(indices, size)]
                    if not batch:
                        break
                    scheduled += len(batch)
                    writer.put(_call(pipe, batch, config))
            writer.finish()
        finally:
            if writer.thread.is_alive():
                writer.queue.put(None)
                writer.thread.join()
            writer.encoders.shutdown()
    return RunSummary(out=config.out, rank=rank, world_size=world_size, seconds=time.perf_counter() - started,
                      per_class=summary, max_attempts=config.max_attempts if face_stage is not None else None)


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


class _NoProgress:
    def add_task(self, *args: Any, **kwargs: Any) -> int:
        return 0

    def advance(self, *args: Any) -> None:
        pass

    def __enter__(self) -> _NoProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def _progress(enabled: bool):
    if not enabled:
        return _NoProgress()
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)
    from rich.text import Text

    from fer_synth.core.console import err_console

    class Rate(ProgressColumn):
        def render(self, task) -> Text:
            speed = task.finished_speed or task.speed
            return Text(f"{speed:.2f} img/s" if speed else "-- img/s")

    return Progress(TextColumn("{task.description:>8}"), BarColumn(), MofNCompleteColumn(), Rate(),
                    TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=err_console)
