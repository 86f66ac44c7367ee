"""`fer-models report`: the page parses, every image decodes, and its numbers are the evaluation reports'."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from fer_models.cli import main
from fer_models.evaluation.ensemble import build_ensemble
from fer_models.evaluation.evaluate import evaluate, load_predictions
from fer_models.report.runs import runs_report
from fer_models.training.loop import train
from fer_synth.core.classes import CLASSES
from tests.fer_models.helpers import tiny_config
from tests.report_checks import check_page


@pytest.fixture(scope="module")
def runs(two_runs):
    """The two tiny runs, each evaluated on test (and the good one on val), and their evaluated ensemble."""
    data, root = two_runs
    for run in ("good", "weak"):
        evaluate(root / run, data, "test", tta="flip", out=root / run)
    evaluate(root / "good", data, "val", tta="none", out=root / "good")
    build_ensemble([root / "good", root / "weak"], data, out=root / "ens.json")
    evaluate(root / "ens.json", data, "test", out=root)
    return data, root


def test_page_numbers_are_the_evaluation_reports(runs, tmp_path):
    data, root = runs
    page = runs_report([root / "good", root / "weak", root / "ens.json"], tmp_path / "report")
    parser, facts = check_page(page)
    text = page.read_text()
    names = [e["name"] for e in facts["entries"]]
    assert names == ["good", "weak", "ens"]
    for entry, folder in zip(facts["entries"], (root / "good", root / "weak", root)):
        stem = "ens" if entry["name"] == "ens" else "best"
        on_disk = {
            json.loads(p.read_text())["split"]: json.loads(p.read_text())
            for p in folder.glob("*evaluation-*.json")
            if json.loads(p.read_text())["checkpoint"].endswith(f"{stem}.json")
        }
        assert entry["evaluations"] == on_disk  # every evaluation found, verbatim
    assert set(facts["entries"][0]["evaluations"]) == {"test", "val"}
    keys = {cell["key"] for cell in parser.cells}
    assert "entries.0.evaluations.test.results.flip.all.accuracy" in keys
    assert "entries.0.evaluations.test.results.flip.synthetic.macro_f1" in keys  # real vs synthetic rows
    assert "entries.0.evaluations.test.results.flip.all.per_class.disgust.recall" in keys
    assert "entries.2.members.weak.test.accuracy" in keys  # members beside the ensemble
    assert "entries.1.best_val.accuracy" in keys  # the selected epoch's val numbers from training
    assert "SYNTHETIC rows" in text  # the toy test split holds synthetic rows: said loudly
    assert all(f">{name}<" in text for name in json.loads((root / "good" / "best.json").read_text())["classes"])
    # Curves for the runs (none for the ensemble), confusion and per-class figures per evaluation.
    for name in (
        "curves-0.png",
        "curves-1.png",
        "confusion-0-test.png",
        "confusion-0-val.png",
        "per-class-2-test.png",
        "members-2-test.png",
    ):
        assert f"img/{name}" in parser.images
    assert "img/curves-2.png" not in parser.images
    # The worst-confused faces: one row per true class that has mistakes, from the saved probabilities.
    probs, labels, rows = load_predictions(root / "weak" / "evaluation-test.npz")
    wrong_classes = {int(c) for c in labels[probs.argmax(1) != labels]}
    shown = {int(src.split("-")[3]) for src in parser.images if src.startswith("img/worst-1-test-")}
    assert wrong_classes and shown == wrong_classes
    assert len(probs) == 42 and np.allclose(probs.sum(1), 1, atol=1e-4) and np.array_equal(rows, np.arange(42))
    # Where the model looks: a mean Grad-CAM for each class it got right at least once (the ensemble's too).
    probs, labels, _ = load_predictions(root / "good" / "evaluation-test.npz")
    right = {int(c) for c in labels[probs.argmax(1) == labels]}
    shown = {int(src.split("-")[3].split(".")[0]) for src in parser.images if src.startswith("img/cam-0-test-")}
    assert right and shown == right
    assert any(src.startswith("img/cam-2-test-") for src in parser.images) and "Where the model looks" in text


def test_cli_and_missing_evaluations(runs, tmp_path):
    data, root = runs
    fresh = tmp_path / "fresh"
    train(tiny_config(data, fresh, epochs=1))
    result = CliRunner().invoke(main, ["report", str(fresh), "--out", str(tmp_path / "report")])
    assert result.exit_code == 0, result.output
    _, facts = check_page(tmp_path / "report" / "index.html")
    assert facts["entries"][0]["evaluations"] == {} and len(facts["entries"][0]["history"]) == 1
    assert "No evaluation found for fresh" in (tmp_path / "report" / "index.html").read_text()
    result = CliRunner().invoke(main, ["report", str(tmp_path / "nothing")])
    assert result.exit_code == 2 and "no such checkpoint" in result.output


def test_an_ensemble_with_the_builtin_model_and_its_evaluation(runs, tmp_path, monkeypatch):
    """builtin is stored by name in an ensemble file, and its evaluations go to runs/builtin (never into the
    package): the report finds both."""
    data, root = runs
    monkeypatch.chdir(tmp_path)
    build_ensemble([root / "good", "builtin"], data, out=tmp_path / "with-builtin.json")
    CliRunner().invoke(main, ["evaluate", "builtin", "--data", str(data), "--split", "test", "--tta", "none"])
    page = runs_report(["builtin", tmp_path / "with-builtin.json"], tmp_path / "report")
    _, facts = check_page(page)
    assert set(facts["entries"][0]["evaluations"]) == {"test"}
    assert (tmp_path / "runs" / "builtin" / "evaluation-test.json").exists()
    assert len(facts["entries"][1]["members"]) == 2
    # The eight-class built-in model on seven-class data: evaluated on the shared classes, and the page says so.
    assert facts["entries"][0]["evaluations"]["test"]["classes"] == list(CLASSES)
    assert "contempt dropped" in Path(page).read_text()


def test_a_comparison_on_the_page(runs, tmp_path):
    """`fer-models compare`'s result as one more section, its numbers the compare.json's (arm names with dots too)."""
    from fer_models.evaluation.compare import compare

    data, _ = runs
    settings = dict(
        model="small-cnn", model_options={"widths": [8, 16]}, epochs=1, batch_size=16, lr=0.01, augment={}, tta="none"
    )
    compare([data], tmp_path / "cmp", seeds=2, variants=["label_smoothing=0.1"], device="cpu", **settings)
    result = CliRunner().invoke(main, ["report", "--compare", str(tmp_path / "cmp"), "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    parser, facts = check_page(tmp_path / "r" / "index.html")
    saved = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert [a for a in facts["comparisons"][0]["arms"].values()] == list(saved["arms"].values())
    keys = {cell["key"] for cell in parser.cells}
    assert "comparisons.0.arms.toy+label_smoothing=0_1.vs_first.accuracy.mean" in keys
    assert "comparisons.0.arms.toy.recall.fear.mean" in keys and "img/compare-0.png" in parser.images
    # a leaderboard: best balanced accuracy first
    names = [
        c["key"].split(".")[3]
        for c in parser.cells
        if c["key"].endswith(".balanced_accuracy.mean") and "vs_first" not in c["key"]
    ]
    ranked = sorted(saved["arms"], key=lambda a: -saved["arms"][a]["balanced_accuracy"]["mean"])
    assert names == [a.replace(".", "_") for a in ranked]
    arm = saved["arms"]["toy"]
    assert arm["accuracy"]["low"] <= arm["accuracy"]["high"] and arm["vs_first"]["accuracy"]["mean"] == 0.0


def test_dataset_report_agrees_with_the_judge(runs, tmp_path):
    """`fer-models judge` writes judgement.jsonl and its own report; `fer-synth report` on that pool shows the same
    agreement and mean p(intended) per class, and the judge's lowest-scored faces."""
    import cv2

    from fer_models.inference.judge import REPORT_FILE, judge_pool
    from fer_synth.report import dataset_report
    from tests.fer_models.helpers import separable_split

    data, root = runs
    faces = separable_split(3, seed=9)
    faces.labels[:4] = (faces.labels[:4] + 3) % 7  # four faces in the wrong class folder
    for k, (image, label) in enumerate(zip(faces.images, faces.labels)):
        folder = tmp_path / "pool" / CLASSES[label]
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"{k:03d}.png"), image)
    judged = judge_pool(tmp_path / "pool", root / "good")
    assert json.loads((tmp_path / "pool" / REPORT_FILE).read_text())["faces"] == len(faces)
    page = dataset_report(data, tmp_path / "pool", tmp_path / "report")
    _, facts = check_page(page)
    for name, theirs in judged["per_class"].items():
        ours = facts["judge"]["agreement"][name]
        assert ours["n"] == theirs["faces"]
        assert ours["rate"] == pytest.approx(theirs["agreement"])
        assert ours["mean_p_intended"] == pytest.approx(theirs["mean_p_intended"])
    assert facts["judge"]["confusion"] == judged["confusion"]
