"""The generation run on the tiny random pipeline: pixels, records, resume, sharding, face-stage hook."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from fer_synth.cli import main
from fer_synth.core.errors import FerError
from fer_synth.core.manifest import ManifestError, SettingsMismatchError, read_records
from fer_synth.generation.config import GenerateConfig
from fer_synth.generation.pipeline import PipelineOptions, build_pipeline
from fer_synth.generation.prompts import load_prompts
from fer_synth.generation.run import generate, image_name, shard_from_env
from fer_synth.generation.tiny import tiny_random_pipeline

ROOT = Path(__file__).resolve().parents[3]
SMALL = dict(steps=2, guidance=5.0, height=32, width=32)
CLI_SMALL = ["--model", "tiny-random", "--steps", "2", "--guidance", "5", "--size", "32", "--no-faces", "--no-progress"]


@pytest.fixture(scope="module")
def pipe():
    return build_pipeline(PipelineOptions(model="tiny-random"))


def config(out: Path, emotions=("fear",), n: int = 4, batch_size: int = 2, **kw) -> GenerateConfig:
    return GenerateConfig(
        emotions=list(emotions),
        n=n,
        seed=0,
        out=out,
        batch_size=batch_size,
        pipeline=PipelineOptions(model="tiny-random"),
        **{**SMALL, **kw},
    )


def pngs(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.png"))}


def run_cli(args: list[str], env: dict | None = None, **popen) -> subprocess.Popen:
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "fer_synth.cli", *args],
        env=full_env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **popen,
    )


def test_run_writes_images_and_complete_records_then_resumes_with_nothing_to_do(tmp_path, pipe):
    summary = generate(config(tmp_path, emotions=["fear", "sad"], n=3), pipe=pipe, progress=False)
    assert summary.images_made == 6
    files = pngs(tmp_path)
    assert sorted(files) == [f"{c}/{image_name(c, 0, i)}.png" for c in ("fear", "sad") for i in range(3)]
    records = read_records(tmp_path)
    assert len(records) == 6
    prompt = load_prompts().prompt(0, "sad", 2)
    rec = next(r for r in records if r["class"] == "sad" and r["index"] == 2)
    assert rec["prompt"] == prompt.text and rec["seed"] == prompt.seed and rec["negative_prompt"] == prompt.negative
    for key in ("model", "scheduler", "steps", "guidance", "height", "width", "time_s", "created", "file", "run_seed"):
        assert key in rec
    assert (rec["model"], rec["scheduler"], rec["steps"], rec["file"]) == (
        "tiny-random",
        "dpmpp",
        2,
        "sad/sad_s0_000002.png",
    )
    again = generate(config(tmp_path, emotions=["sad", "fear"], n=3), pipe=pipe, progress=False)
    assert again.images_made == 0 and pngs(tmp_path) == files and len(read_records(tmp_path)) == 6


def test_a_recorded_image_deleted_since_stays_done_and_is_named(tmp_path, pipe, caplog):
    generate(config(tmp_path, n=2), pipe=pipe, progress=False)
    gone = f"fear/{image_name('fear', 0, 1)}.png"
    (tmp_path / gone).unlink()  # a user curating the pool
    with caplog.at_level(logging.WARNING, logger="fer_synth"):
        again = generate(config(tmp_path, n=2), pipe=pipe, progress=False)
    assert again.images_made == 0 and not (tmp_path / gone).exists()
    assert any("1 image(s) the manifest records are no longer" in m and gone in m for m in caplog.messages)


def test_an_image_is_what_a_bare_pipeline_call_makes_and_indices_differ(tmp_path, pipe):
    generate(config(tmp_path, n=3), pipe=pipe, progress=False)
    p = load_prompts().prompt(0, "fear", 2)
    bare = pipe(
        prompt=[p.text],
        negative_prompt=[p.negative],
        num_inference_steps=2,
        guidance_scale=5.0,
        height=32,
        width=32,
        generator=[torch.Generator().manual_seed(p.seed)],
    ).images[0]
    ours = np.asarray(Image.open(tmp_path / "fear" / "fear_s0_000002.png"))
    np.testing.assert_array_equal(ours, np.asarray(bare))
    other = np.asarray(Image.open(tmp_path / "fear" / "fear_s0_000001.png"))
    assert np.abs(ours.astype(int) - other).mean() > 1


def test_batch_size_and_a_fresh_pipeline_do_not_change_pixels(tmp_path, pipe):
    generate(config(tmp_path / "b1", n=3, batch_size=1), pipe=pipe, progress=False)
    generate(config(tmp_path / "b3", n=3, batch_size=3), progress=False)  # builds its own tiny-random
    assert pngs(tmp_path / "b1") == pngs(tmp_path / "b3")


def test_same_folder_with_different_settings_is_an_error_naming_them(tmp_path, pipe):
    generate(config(tmp_path, n=2), pipe=pipe, progress=False)
    with pytest.raises(SettingsMismatchError, match=r"steps 2 \(this run: 3\)"):
        generate(config(tmp_path, n=2, steps=3), pipe=pipe, progress=False)
    with pytest.raises(SettingsMismatchError, match=r"guidance.*seed 0 \(this run: 1\)"):
        cfg = config(tmp_path, n=2, guidance=7.0)
        cfg.seed = 1
        generate(cfg, pipe=pipe, progress=False)
    # A start that fails before its model loads does not claim a new folder.
    with pytest.raises(FerError, match="no such file"):
        cfg = config(tmp_path / "new", n=1)
        cfg.pipeline = PipelineOptions(model=str(tmp_path / "missing.safetensors"))
        generate(cfg, progress=False)
    assert not (tmp_path / "new" / "run.json").exists()
    # More images or another class extend the same run.
    assert generate(config(tmp_path, emotions=["fear", "happy"], n=3), pipe=pipe, progress=False).images_made == 4


def test_a_users_prompt_file_is_used_and_part_of_the_settings(tmp_path, pipe):
    mine = tmp_path / "mine.yaml"
    mine.write_text(
        'template: "{context} of a {emotion} face"\npools:\n  context: [photo, headshot]\n'
        "classes:\n  fear:\n    emotion: frightened\n"
    )
    generate(config(tmp_path / "out", n=2, prompts=mine), pipe=pipe, progress=False)
    assert all(r["prompt"].endswith("of a frightened face") for r in read_records(tmp_path / "out"))
    with pytest.raises(SettingsMismatchError, match="prompts"):
        generate(config(tmp_path / "out", n=2), pipe=pipe, progress=False)
    with pytest.raises(FerError, match="no entry for class 'sad'"):
        generate(config(tmp_path / "out", emotions=["sad"], n=2, prompts=mine), pipe=pipe, progress=False)


def test_torn_last_record_is_ignored_and_cut_damaged_middle_line_is_named(tmp_path, pipe):
    generate(config(tmp_path, n=2), pipe=pipe, progress=False)
    manifest = tmp_path / "manifest.jsonl"
    with open(manifest, "ab") as f:
        f.write(b'{"class": "fear", "index": 2, "pro')  # a record cut by kill -9 or power loss
    assert [r["index"] for r in read_records(tmp_path)] == [0, 1]
    generate(config(tmp_path, n=3), pipe=pipe, progress=False)
    lines = manifest.read_text().splitlines()
    assert [json.loads(line)["index"] for line in lines] == [0, 1, 2]
    manifest.write_text(lines[0] + "\n{oops\n" + lines[2] + "\n")
    with pytest.raises(ManifestError, match=r"manifest.jsonl:2: not a JSON record"):
        read_records(tmp_path)


def test_temp_files_of_dead_writers_are_removed_live_ones_kept(tmp_path, pipe):
    generate(config(tmp_path, n=1), pipe=pipe, progress=False)
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as alive:
        dead = subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"], check=False, capture_output=True, text=True
        )
        host = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())
        folder = tmp_path / "fear"
        stale = folder / f".fear_s0_000001.png.{dead.stdout.strip()}@{host}.abc.tmp"  # its writer died
        live = folder / f".fear_s0_000002.png.{alive.pid}@{host}.abc.tmp"  # another rank, writing now
        other = folder / ".fear_s0_000003.png.1@elsewhere.abc.tmp"  # another host's, fresh: it may be writing
        old = folder / ".fear_s0_000004.png.1@elsewhere.abc.tmp"  # another host's, untouched for an hour
        for path in (stale, live, other, old):
            path.write_bytes(b"half a png")
        os.utime(old, (time.time() - 3600,) * 2)
        generate(config(tmp_path, n=2), pipe=pipe, progress=False)
        alive.kill()
    assert not stale.exists() and live.exists() and other.exists() and not old.exists()


@pytest.mark.slow
def test_resume_after_kill_9_ends_with_exactly_n_images(tmp_path, pipe):
    out, n = tmp_path / "out", 120
    args = ["generate", "-e", "fear", "--n", str(n), "--batch-size", "2", "--out", str(out), *CLI_SMALL]
    proc = run_cli(args)
    manifest = out / "manifest.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if manifest.exists() and manifest.read_bytes().count(b"\n") >= 6:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed: raise n"
    before = read_records(out)
    assert 6 <= len(before) < n

    summary = generate(config(out, n=n, batch_size=2), pipe=pipe, progress=False)
    assert summary.per_class["fear"].done_before == len(before)
    records = read_records(out)
    indices = [r["index"] for r in records]
    assert sorted(indices) == list(range(n))  # every index once: no duplicates, none missing
    files = sorted((out / "fear").glob("*.png"))
    assert len(files) == n
    for path in files:
        with Image.open(path) as im:
            im.load()  # a truncated PNG raises here
    # The images made before and after the kill are the ones a fresh run makes.
    fresh = tmp_path / "fresh"
    last_before = max(r["index"] for r in before)
    for index in (0, last_before, n - 1):
        p = load_prompts().prompt(0, "fear", index)
        bare = pipe(
            prompt=[p.text],
            negative_prompt=[p.negative],
            num_inference_steps=2,
            guidance_scale=5.0,
            height=32,
            width=32,
            generator=[torch.Generator().manual_seed(p.seed)],
        ).images[0]
        np.testing.assert_array_equal(
            np.asarray(Image.open(out / "fear" / f"fear_s0_{index:06d}.png")),
            np.asarray(bare),
            err_msg=f"index {index} ({fresh})",
        )


@pytest.mark.slow
def test_two_ranks_make_the_same_images_as_one_process(tmp_path, pipe):
    args = [
        "generate",
        "-e",
        "fear,sad",
        "--n",
        "5",
        "--batch-size",
        "2",
        "--out",
        str(tmp_path / "sharded"),
        *CLI_SMALL,
    ]
    procs = [run_cli(args, env={"RANK": str(r), "WORLD_SIZE": "2"}) for r in (0, 1)]
    for proc in procs:
        output = proc.communicate(timeout=180)[0]
        assert proc.returncode == 0, output
    generate(config(tmp_path / "single", emotions=["fear", "sad"], n=5), pipe=pipe, progress=False)
    sharded, single = pngs(tmp_path / "sharded"), pngs(tmp_path / "single")
    assert len(single) == 10 and sharded == single
    shards = sorted(p.name for p in (tmp_path / "sharded").glob("manifest*.jsonl"))
    assert shards == ["manifest-00000-of-00002.jsonl", "manifest-00001-of-00002.jsonl"]
    key = lambda r: (r["class"], r["index"], r["seed"], r["prompt"])  # noqa: E731
    assert sorted(map(key, read_records(tmp_path / "sharded"))) == sorted(map(key, read_records(tmp_path / "single")))
    # Each rank took every other index of each class.
    rank1 = read_records(tmp_path / "sharded")
    assert all(r["index"] % 2 == r["rank"] for r in rank1)


# --- the safety checker -------------------------------------------------------------------------


def _checker_pipe(threshold: float | None):
    """tiny-random with a real StableDiffusionSafetyChecker; ``threshold`` on concept 0 (None: never flag)."""
    checked = tiny_random_pipeline(safety_checker=True)
    checker = checked.safety_checker
    with torch.no_grad():
        checker.special_care_embeds_weights.fill_(10.0)  # cosines are <= 1: these never fire
        checker.concept_embeds_weights.fill_(10.0)
        if threshold is not None:
            checker.concept_embeds_weights[0] = threshold
    from fer_synth.generation.pipeline import SCHEDULERS

    checked.scheduler = SCHEDULERS["dpmpp"](checked.scheduler.config)
    checked.set_progress_bar_config(disable=True)
    return checked


def test_safety_checker_flags_are_recorded_and_flagged_images_are_black(tmp_path):
    from diffusers.pipelines.stable_diffusion.safety_checker import cosine_distance

    clean = _checker_pipe(None)
    generate(config(tmp_path / "clean", n=6, batch_size=3), pipe=clean, progress=False)
    assert all(r["nsfw"] is False for r in read_records(tmp_path / "clean"))
    # Put the threshold in the widest gap between the images' scores, so some are flagged and some not.
    images = [Image.open(tmp_path / "clean" / "fear" / f"fear_s0_{i:06d}.png").convert("RGB") for i in range(6)]
    with torch.no_grad():
        pixels = clean.feature_extractor(images, return_tensors="pt").pixel_values
        embeds = clean.safety_checker.visual_projection(clean.safety_checker.vision_model(pixels)[1])
        scores = cosine_distance(embeds, clean.safety_checker.concept_embeds)[:, 0].numpy()
    ordered = np.sort(scores)
    gap = int(np.argmax(np.diff(ordered)))
    assert ordered[gap + 1] - ordered[gap] > 0.002, "scores too close to split"
    expected = scores > (ordered[gap] + ordered[gap + 1]) / 2

    generate(
        config(tmp_path / "checked", n=6, batch_size=4),
        pipe=_checker_pipe(float((ordered[gap] + ordered[gap + 1]) / 2)),
        progress=False,
    )
    records = {r["index"]: r for r in read_records(tmp_path / "checked")}
    for i in range(6):
        pixels = np.asarray(Image.open(tmp_path / "checked" / "fear" / f"fear_s0_{i:06d}.png"))
        assert records[i]["nsfw"] is bool(expected[i])
        assert bool(pixels.max() == 0) is bool(expected[i])


# --- the face-stage hook (FACE_API.md), with an honest test double -------------------------------


@dataclass
class FakeResult:
    kept: bool
    reason: str | None
    faces: list
    boxes: list = field(default_factory=list)
    scores: list = field(default_factory=list)
    backend: str = "fake"

    def to_record(self) -> dict:
        return {
            "kept": self.kept,
            "reason": self.reason,
            "boxes": self.boxes,
            "scores": self.scores,
            "backend": self.backend,
        }


class FakeFaceStage:
    """A content-based stand-in for fer_synth.faces.stage.FaceStage: a flagged image is ``nsfw_blank``; else the
    image "has a face" when the sum of its grey levels is even (a deterministic coin flip on the pixels),
    and the face is the whole image, grey, resized to 48x48."""

    def __init__(self, keep: bool = True):
        self.keep = keep
        self.calls: list[tuple[str, bool]] = []

    files = ()  # no model file

    @property
    def settings(self) -> dict:
        return {"backend": "fake", "keep": self.keep}

    def __call__(self, image: Image.Image, nsfw_flag: bool = False) -> FakeResult:
        self.calls.append((threading.current_thread().name, nsfw_flag))
        grey = image.convert("L")
        if nsfw_flag:
            return FakeResult(False, "nsfw_blank", [])
        if not self.keep or int(np.asarray(grey, dtype=np.int64).sum()) % 2:
            return FakeResult(False, "no_face", [])
        return FakeResult(True, None, [np.asarray(grey.resize((48, 48)))], [(0, 0, *image.size)], [0.9])


def test_face_stage_keeps_n_faces_records_every_attempt_and_runs_in_a_worker_thread(tmp_path, pipe):
    stage = FakeFaceStage()
    summary = generate(
        config(tmp_path, emotions=["fear", "sad"], n=3, batch_size=2, keep_raw=True, max_attempts=10),
        pipe=pipe,
        face_stage=stage,
        progress=False,
    )
    assert {name for name, _ in stage.calls} == {"fer-synth-writer"}
    records = read_records(tmp_path)
    for emotion in ("fear", "sad"):
        mine = sorted((r for r in records if r["class"] == emotion), key=lambda r: r["index"])
        kept = [r for r in mine if r["files"]]
        assert len(kept) == 3 and summary.per_class[emotion].kept == 3
        assert [r["index"] for r in mine] == list(range(len(mine)))  # attempts in index order, each once
        assert all(r["face"]["reason"] == "no_face" for r in mine if not r["files"])
        assert mine[-1]["files"]  # the run stops at the attempt that made n
        crops = sorted((tmp_path / emotion).glob("*.png"))
        assert [f"{emotion}/{p.name}" for p in crops] == sorted(f for r in kept for f in r["files"])
        for path in crops:
            assert Image.open(path).size == (48, 48) and Image.open(path).mode == "L"
        assert len(list((tmp_path / "raw" / emotion).glob("*.png"))) == len(mine)
    # Resume: nothing left to do; and a different face-stage setting is a settings mismatch.
    assert (
        generate(
            config(tmp_path, emotions=["fear", "sad"], n=3, keep_raw=True, max_attempts=10),
            pipe=pipe,
            face_stage=FakeFaceStage(),
            progress=False,
        ).images_made
        == 0
    )
    with pytest.raises(SettingsMismatchError, match="faces"):
        generate(config(tmp_path, n=3, keep_raw=True), pipe=pipe, face_stage=FakeFaceStage(keep=False), progress=False)


def test_face_stage_shortfall_is_reported_after_max_attempts(tmp_path, pipe):
    summary = generate(
        config(tmp_path, n=2, max_attempts=3), pipe=pipe, face_stage=FakeFaceStage(keep=False), progress=False
    )
    assert len(read_records(tmp_path)) == 6  # 3 attempts per wanted face, then it stops
    report = summary.shortfall_report()
    assert report and "fear: 0 of 2 faces after 6 attempts (--max-attempts 3); rejected: no_face 6" in report


def test_safety_flag_reaches_the_face_stage(tmp_path):
    stage = FakeFaceStage()
    summary = generate(
        config(tmp_path, n=1, max_attempts=2), pipe=_checker_pipe(-10.0), face_stage=stage, progress=False
    )
    assert [flag for _, flag in stage.calls] == [True, True]
    assert all(r["nsfw"] and r["face"]["reason"] == "nsfw_blank" for r in read_records(tmp_path))
    assert summary.per_class["fear"].nsfw == 2


# --- arguments ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(n=0), "--n must be at least 1"),
        (dict(batch_size=0), "--batch-size must be at least 1"),
        (dict(height=30), "multiple of 8"),
        (dict(emotions=["grumpy"]), "unknown emotion 'grumpy'; valid: angry"),
        (dict(guidance=-1.0), "--guidance must be >= 0"),
    ],
)
def test_bad_arguments(tmp_path, change, match):
    cfg = config(tmp_path)
    for key, value in change.items():
        setattr(cfg, key, value)
    with pytest.raises(FerError, match=match):
        generate(cfg, progress=False)
    assert not list(tmp_path.rglob("*.png"))


def test_bad_shard_environment(monkeypatch):
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(FerError, match="RANK < WORLD_SIZE"):
        shard_from_env()
    monkeypatch.setenv("RANK", "x")
    with pytest.raises(FerError, match="integers"):
        shard_from_env()


def test_generate_command(tmp_path):
    runner = CliRunner()
    out = tmp_path / "gen"
    result = runner.invoke(main, ["generate", "-e", "afraid", "--n", "2", "--out", str(out), *CLI_SMALL])
    assert result.exit_code == 0, result.output
    assert "makes noise" in result.output and "generated 2 images" in result.output
    assert len(list((out / "fear").glob("*.png"))) == 2
    result = runner.invoke(main, ["generate", "-e", "fear", "--n", "2", "--out", str(out), *CLI_SMALL, "--steps", "3"])
    assert result.exit_code == 2 and "Error:" in result.output and "steps 2 (this run: 3)" in result.output
    result = runner.invoke(main, ["generate", "-e", "fear", "--n", "1", "--out", str(out), *CLI_SMALL, "--keep-raw"])
    assert result.exit_code == 2 and "--keep-raw needs the face stage" in result.output
    result = runner.invoke(
        main,
        [
            "generate",
            "-e",
            "fear",
            "--n",
            "1",
            "--out",
            str(tmp_path / "x"),
            "--model",
            str(tmp_path / "missing.safetensors"),
            "--no-faces",
        ],
    )
    assert result.exit_code == 2 and "no such file" in result.output


@pytest.mark.parametrize(
    "args,message",
    [
        (["--emotion", "joyful"], "unknown emotion 'joyful'; valid: angry"),
        (["--emotion", "fear", "--model", "/nonexistent/model"], "model '/nonexistent/model': no such file"),
        (["--emotion", "fear", "--lora", "missing.safetensors"], "LoRA 'missing.safetensors': no such file"),
    ],
)
def test_bad_arguments_fail_before_the_face_stage_is_set_up(tmp_path, monkeypatch, args, message):
    monkeypatch.setenv("FER_SYNTH_OFFLINE", "1")  # the face stage would fail on its model file instead
    monkeypatch.setenv("FER_SYNTH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("FER_SYNTH_FACE_MODEL", raising=False)
    result = CliRunner().invoke(main, ["generate", "--n", "1", "--out", str(tmp_path / "out"), *args])
    assert result.exit_code == 2 and message in result.output and "face model" not in result.output
    assert not (tmp_path / "out").exists()
