"""`fer-synth report`: the page parses, every image decodes, and its numbers are the stats, manifest and judge's."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from fer_synth.cli import main
from fer_synth.core.classes import CLASSES
from fer_synth.core.errors import FerError
from fer_synth.data.balance import BalanceConfig, balance
from fer_synth.report import dataset_report
from tests.fer_synth.data_helpers import DEFAULT_COUNTS, fer_rows, write_csv
from tests.report_checks import check_page

REJECTIONS = {"angry": ["no_face", "no_face"], "disgust": ["blurry", "nsfw_blank"], "sad": ["low_confidence"]}
MISJUDGED = "happy"  # each class's first face is judged as this (and happy's as neutral)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict:
    """A FER2013 CSV with a leaked, relabelled duplicate; a generation pool (face stage, one raw image kept, one
    face identical to a test face) with its manifest, run.json and judgement.jsonl; the balanced HDF5 file."""
    root = tmp_path_factory.mktemp("report")
    rows = fer_rows(DEFAULT_COUNTS, seed=3)
    test_row = next(i for i, r in enumerate(rows) if r[2] == "PrivateTest")
    rows[0] = (rows[0][0], rows[test_row][1].copy(), "Training")  # a train face identical to a test face...
    rows[test_row] = ((rows[0][0] + 1) % 7, rows[test_row][1], "PrivateTest")  # ... with another label
    csv = write_csv(root / "fer.csv", rows)
    pool = root / "pool"
    deficits = [max(DEFAULT_COUNTS["Training"]) - n for n in DEFAULT_COUNTS["Training"]]
    rng = np.random.default_rng(7)
    records, judgement, index = [], [], 0
    for label, name in enumerate(CLASSES):
        (pool / name).mkdir(parents=True)
        for k in range(deficits[label] + 1):
            face = rows[test_row][1] if (label, k) == (2, 0) else rng.integers(0, 256, (48, 48), dtype=np.uint8)
            file = f"{name}/{name}_s0_{index:06d}_f0.png"
            cv2.imwrite(str(pool / file), face)
            records.append(_record(name, index, [file], None))
            judged = (MISJUDGED if name != MISJUDGED else "neutral") if k == 0 else name
            judgement.append(
                {
                    "file": file,
                    "class": name,
                    "judged": judged,
                    "p_intended": 0.1 if k == 0 else 0.8,
                    "probs": [0.1] * 7,
                    "classes": list(CLASSES),
                    "judge": {"model": "mini-xception", "fingerprint": "abc123"},
                }
            )
            index += 1
        for reason in REJECTIONS.get(name, []):
            records.append(_record(name, index, [], reason))
            index += 1
    raw = pool / "raw" / "angry" / "rejected.png"
    raw.parent.mkdir(parents=True)
    cv2.imwrite(str(raw), rng.integers(0, 256, (128, 128, 3), dtype=np.uint8))
    next(r for r in records if r["face"]["reason"] == "no_face")["raw_file"] = "raw/angry/rejected.png"
    (pool / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (pool / "run.json").write_text(json.dumps({"seed": 0, "model": "tiny-random", "steps": 4, "prompts": "d1"}))
    (pool / "judgement.jsonl").write_text("".join(json.dumps(r) + "\n" for r in judgement))
    h5 = balance(BalanceConfig(csv, root / "balanced.h5", pool=pool, seed=0)).out
    return {"root": root, "csv": csv, "pool": pool, "h5": h5, "records": records, "judgement": judgement}


def _record(name: str, index: int, files: list[str], reason: str | None) -> dict:
    """A manifest record as `generate` writes it with the face stage."""
    return {
        "class": name,
        "index": index,
        "seed": 1000 + index,
        "prompt": f"a photo of a {name} face",
        "negative_prompt": "blurry",
        "model": "tiny-random",
        "run_seed": 0,
        "prompts_digest": "d1",
        "nsfw": reason == "nsfw_blank",
        "time_s": 0.5,
        "files": files,
        "face": {"kept": bool(files), "reason": reason, "boxes": [], "scores": [], "backend": "mediapipe"},
    }


def test_balanced_file_with_pool(inputs, tmp_path):
    out = tmp_path / "report"
    page = dataset_report(inputs["h5"], inputs["pool"], out, seed=0)
    parser, facts = check_page(page)
    text = page.read_text()
    # The counts are `fer-synth stats --json`'s, to the digit.
    stats = json.loads(CliRunner().invoke(main, ["stats", str(inputs["h5"]), "--json"]).output)
    stats.pop("skipped")
    assert facts["stats"] == stats
    assert facts["stats"]["splits"]["train"]["deficits"] == dict.fromkeys(CLASSES, 0)
    assert facts["real_only"]["train"]["counts"] == dict(zip(CLASSES, DEFAULT_COUNTS["Training"]))
    keys = {cell["key"] for cell in parser.cells}
    assert {
        "stats.splits.train.counts.angry",
        "real_only.train.deficits.disgust",
        "stats.duplicates.cross_split_groups",
        "run.per_class.angry.rejected.no_face",
        "judge.agreement.fear.rate",
        "plan.take.train.1",
    } <= keys
    # The leaked, relabelled face is one cross-split group with conflicting labels, shown as a thumbnail.
    assert facts["stats"]["duplicates"]["cross_split_groups"] == 1
    assert facts["stats"]["duplicates"]["conflicting_label_groups"] == 1
    assert "Across splits (a train face also in val or test): 1 group<" in text
    # The pool's face copied from the test split is found.
    assert facts["pool_duplicates"]["pool_vs_eval_groups"] == 1
    # Attempts and every rejection per class are the manifest's.
    for name in CLASSES:
        mine = [r for r in inputs["records"] if r["class"] == name]
        got = facts["run"]["per_class"][name]
        assert got["attempts"] == len(mine) and got["faces"] == sum(len(r["files"]) for r in mine)
        assert got["rejected"] == {
            reason: REJECTIONS.get(name, []).count(reason) for reason in REJECTIONS.get(name, [])
        }
    assert facts["run"]["per_class"]["disgust"]["nsfw_flagged"] == 1
    assert "img/rejected-no-face-" in text and "img/rejected-blurry" not in text  # only images on disk are shown
    # The judge: each class's first face was judged wrong, with the lowest score.
    for name in CLASSES:
        n = sum(r["class"] == name for r in inputs["judgement"])
        assert facts["judge"]["agreement"][name] == {
            "n": n,
            "agree": n - 1,
            "rate": (n - 1) / n,
            "mean_p_intended": pytest.approx((0.1 + 0.8 * (n - 1)) / n),
        }
    assert facts["judge"]["confusion"][CLASSES.index("fear")][CLASSES.index(MISJUDGED)] == 1
    assert "judged-0-0.png" in text and ">happy 0.10<" in text
    # Contact sheets: real and synthetic faces of every class; provenance names the generator.
    topped_up = [k for k, n in enumerate(DEFAULT_COUNTS["Training"]) if n < max(DEFAULT_COUNTS["Training"])]
    assert all(f"img/sheet-{k}-real.png" in text for k in range(7))
    assert [k for k in range(7) if f"img/sheet-{k}-synthetic.png" in text] == topped_up
    assert "tiny-random" in text and "a photo of a fear face" in text


def test_dataset_alone_and_projected_topup(inputs, tmp_path):
    page = dataset_report(inputs["csv"], None, tmp_path / "plain")
    _, facts = check_page(page)
    assert set(facts["stats"]["splits"]) == {"Training", "PublicTest", "PrivateTest"}
    assert "run" not in facts and "judge" not in facts and "plan" not in facts
    with_pool = dataset_report(inputs["csv"], inputs["pool"], tmp_path / "projected")
    _, facts = check_page(with_pool)
    deficits = [max(DEFAULT_COUNTS["Training"]) - n for n in DEFAULT_COUNTS["Training"]]
    assert facts["projected_plan"]["take"]["Training"] == deficits


def test_out_folder_rules(inputs, tmp_path):
    """A report folder is replaced whole (no stale image survives); a folder of the user's is refused."""
    out = tmp_path / "report"
    dataset_report(inputs["h5"], inputs["pool"], out)
    (out / "img" / "stale.png").write_bytes(b"x")
    dataset_report(inputs["csv"], None, out)
    assert not (out / "img" / "stale.png").exists() and not (out / "img" / "judge-confusion.png").exists()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(FerError, match="not an earlier `report` output"):
        dataset_report(inputs["csv"], None, mine)
    result = CliRunner().invoke(main, ["report", str(inputs["csv"]), "--out", str(mine)])
    assert result.exit_code == 2 and "not an earlier" in result.output and len(result.output.strip().splitlines()) == 1
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
    with pytest.raises(FerError, match="overlaps the input"):  # a report inside the pool would become a class folder
        dataset_report(inputs["csv"], inputs["pool"], inputs["pool"] / "report")
    assert CliRunner().invoke(main, ["report", str(inputs["csv"]), "--out", str(mine), "--overwrite"]).exit_code == 0
    assert not (mine / "notes.txt").exists() and (mine / "index.html").exists()


def test_judgement_with_a_bad_record_is_one_line_error(inputs, tmp_path):
    pool = tmp_path / "pool"
    shutil.copytree(inputs["pool"], pool)
    with open(pool / "judgement.jsonl", "a") as f:
        f.write(json.dumps({"file": "x.png", "class": "sad"}) + "\n")
    result = CliRunner().invoke(main, ["report", str(inputs["csv"]), "--pool", str(pool), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "lacks judged, p_intended" in result.output
    assert not Path(tmp_path / "r" / "index.html").exists()


def test_the_page_check_catches_a_wrong_number_and_a_missing_image(inputs, tmp_path):
    page = dataset_report(inputs["csv"], None, tmp_path / "report")
    text = page.read_text()
    wrong = text.replace(
        'data-key="stats.splits.Training.counts.angry">6<', 'data-key="stats.splits.Training.counts.angry">7<'
    )
    assert wrong != text
    page.write_text(wrong)
    with pytest.raises(AssertionError):
        check_page(page)
    page.write_text(text)
    check_page(page)
    (page.parent / "img" / "distribution.png").unlink()
    with pytest.raises(FileNotFoundError):
        check_page(page)
