"""Evaluation reports and ensembles on tiny trained models."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fer_models.evaluation.ensemble import build_ensemble, combine, fit_weights, load_ensemble
from fer_models.evaluation.evaluate import evaluate
from fer_synth.core.errors import FerError


def test_evaluation_report_breaks_down_real_and_synthetic(two_runs):
    data, root = two_runs
    report = evaluate(root / "good", data, "test", tta="ten-crop", out=root / "good")
    assert report["n"] == 42 and report["n_synthetic"] == 14 and report["same_data_as_training"] is True
    assert set(report["results"]) == {"none", "ten-crop"}
    for mode in report["results"].values():
        assert mode["real"]["n"] == 28 and mode["synthetic"]["n"] == 14
        assert set(mode["all"]) >= {
            "accuracy",
            "balanced_accuracy",
            "macro_f1",
            "top2_accuracy",
            "top3_accuracy",
            "per_class",
            "confusion",
        }
    assert report["results"]["none"]["all"]["accuracy"] > 0.9
    saved = json.loads((root / "good" / "evaluation-test.json").read_text())
    assert saved["results"]["ten-crop"]["all"]["confusion"] == report["results"]["ten-crop"]["all"]["confusion"]
    assert (root / "good" / "confusion-test.png").stat().st_size > 1000
    # A real-only split has no breakdown to show.
    val = evaluate(root / "good", data, "val", tta="none")
    assert set(val["results"]) == {"none"} and set(val["results"]["none"]) == {"all"}


def test_ensemble_of_two_models_and_its_file(two_runs):
    data, root = two_runs
    report = build_ensemble([root / "good", root / "weak"], data, "mean", out=root / "ens.json")
    assert [m["weight"] for m in report["members"]] == [0.5, 0.5]
    assert report["ensemble"]["n"] == 42
    ensemble = load_ensemble(root / "ens.json")
    assert len(ensemble.members) == 2 and ensemble.method == "mean"
    again = evaluate(root / "ens.json", data, "test")  # members' own TTA (none and flip), as built
    assert again["tta"] == "members"
    assert again["results"]["members"]["all"]["accuracy"] == pytest.approx(report["ensemble"]["accuracy"])
    weighted = build_ensemble([root / "good", root / "weak"], data, "weighted")
    assert weighted["weights_fit"]["split"] == "val"
    assert weighted["members"][0]["weight"] > weighted["members"][1]["weight"]
    with pytest.raises(FerError, match="at least two"):
        build_ensemble([root / "good"], data)


def test_ensembles_in_one_folder_keep_their_own_evaluations(two_runs, tmp_path):
    data, root = two_runs
    for method in ("mean", "weighted"):
        build_ensemble([root / "good", root / "weak"], data, method, out=tmp_path / f"{method}.json")
        evaluate(tmp_path / f"{method}.json", data, "test", out=tmp_path)
    for method in ("mean", "weighted"):
        report = json.loads((tmp_path / f"{method}.evaluation-test.json").read_text())
        assert report["checkpoint"].endswith(f"{method}.json")
        assert (tmp_path / f"{method}.evaluation-test.npz").exists() and (
            tmp_path / f"{method}.confusion-test.png"
        ).exists()
    assert not (tmp_path / "evaluation-test.json").exists()


def test_combine_rules_by_hand():
    a = np.array([[0.6, 0.4, 0.0], [0.2, 0.8, 0.0]])
    b = np.array([[0.1, 0.9, 0.0], [0.3, 0.7, 0.0]])
    c = np.array([[0.2, 0.7, 0.1], [0.9, 0.1, 0.0]])
    assert np.allclose(combine([a, b]), (a + b) / 2)
    assert np.allclose(combine([a, b], [3, 1], "weighted"), 0.75 * a + 0.25 * b)
    votes = combine([a, b, c], method="vote")
    assert votes.argmax(1).tolist() == [1, 1]  # 2 of 3 votes in both rows
    tie = combine([a, b], method="vote")  # one vote each in row 0: the mean (0.35 vs 0.65) decides
    assert tie.argmax(1).tolist() == [1, 1]


def test_weights_fit_prefers_the_better_member():
    labels = np.array([0, 1, 2, 0])
    good = np.eye(3)[labels] * 0.9 + 0.1 / 3
    bad = np.full((4, 3), 1 / 3)
    w = fit_weights([good, bad], labels)
    assert w[0] > 0.9 and sum(w) == pytest.approx(1.0)
