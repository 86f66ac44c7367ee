"""The judge, judged balancing and compare, at toy size: a small CNN that learned the toy classes judges pools of
toy faces whose folder labels are right or deliberately wrong."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from fer_models.cli import main as models_cli
from fer_models.evaluation.compare import compare, paired_bootstrap, parse_variant
from fer_models.inference.classifier import load_classifier
from fer_models.inference.judge import JUDGE_AMP, JUDGE_TTA, judge_pool
from fer_models.training.loop import train
from fer_synth.cli import main as synth_cli
from fer_synth.core import store
from fer_synth.core.classes import CLASSES, FERPLUS
from fer_synth.core.dataset import Split
from fer_synth.core.errors import FerError
from fer_synth.core.judgement import JUDGEMENT_FILE, JudgementError, SelectionPolicy, read_judgement
from fer_synth.data.balance import BalanceConfig, balance
from tests.fer_models.helpers import separable_h5, separable_split, tiny_config


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """A toy dataset and a small CNN that learned it (the judge)."""
    root = tmp_path_factory.mktemp("judge")
    data = separable_h5(root / "toy.h5")
    train(tiny_config(data, root / "judge", epochs=8, lr=0.02, schedule="one-cycle"))
    return data, root / "judge"


def write_pool(folder: Path, per_class: int, wrong: int = 0, seed: int = 5) -> dict[str, str]:
    """Toy faces in per-class folders; the first ``wrong`` faces of each class are filed under the next class.
    Returns file -> true class."""
    split = separable_split(per_class, seed)
    truth, count = {}, {c: 0 for c in CLASSES}
    for image, label in zip(split.images, split.labels):
        true = CLASSES[label]
        filed = CLASSES[(label + 1) % 7] if count[true] < wrong else true
        count[true] += 1
        path = folder / filed / f"{true}_{count[true]:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(path)
        truth[f"{filed}/{path.name}"] = true
    return truth


def test_true_labels_agree_and_wrong_labels_are_caught(tmp_path, toy):
    data, judge = toy
    truth = write_pool(tmp_path / "pool", per_class=6, wrong=2)
    report = judge_pool(tmp_path / "pool", judge)
    records = read_judgement(tmp_path / "pool")
    assert len(records) == 42 and report["faces"] == 42
    right = [r for f, r in records.items() if truth[f] == r["class"]]
    wrong = [r for f, r in records.items() if truth[f] != r["class"]]
    assert np.mean([r["judged"] == r["class"] for r in right]) >= 0.8
    assert np.mean([r["judged"] == r["class"] for r in wrong]) <= 0.2
    assert np.mean([r["p_intended"] for r in right]) > np.mean([r["p_intended"] for r in wrong]) + 0.4
    record = next(iter(records.values()))
    assert record["classes"] == list(CLASSES) and abs(sum(record["probs"]) - 1) < 1e-4
    assert record["judge"] == load_classifier(judge, tta=JUDGE_TTA, amp=JUDGE_AMP).identity
    assert (tmp_path / "pool" / "judgement-confusion.png").stat().st_size > 1000
    assert json.loads((tmp_path / "pool" / "judgement-report.json").read_text())["faces"] == 42
    # The agree policy keeps mostly right faces and drops mostly wrong ones.
    kept = {r["file"] for rs in SelectionPolicy("agree").select(records.values()).values() for r in rs}
    precision = np.mean([truth[f] == records[f]["class"] for f in kept])
    recall_of_wrong = np.mean([f not in kept for f, r in records.items() if truth[f] != r["class"]])
    assert precision >= 0.9 and recall_of_wrong >= 0.8


def test_judging_resumes_and_refuses_another_judge(tmp_path, toy):
    data, judge = toy
    write_pool(tmp_path / "pool", per_class=3)
    judge_pool(tmp_path / "pool", judge)
    lines = (tmp_path / "pool" / JUDGEMENT_FILE).read_text().splitlines()
    (tmp_path / "pool" / JUDGEMENT_FILE).write_text("\n".join(lines[:10]) + "\n" + lines[10][:15])  # killed mid-line
    judge_pool(tmp_path / "pool", judge)
    again = (tmp_path / "pool" / JUDGEMENT_FILE).read_text().splitlines()
    assert len(again) == 21 and again[:10] == lines[:10]
    assert sorted(json.loads(line)["file"] for line in again) == sorted(json.loads(line)["file"] for line in lines)
    other = tmp_path / "other"
    train(tiny_config(data, other, epochs=1, seed=4))
    with pytest.raises(FerError, match="judged by .*--overwrite"):
        judge_pool(tmp_path / "pool", other)
    judge_pool(tmp_path / "pool", other, overwrite=True)
    assert {r["judge"]["model"] for r in read_judgement(tmp_path / "pool").values()} == {str(other)}


def test_a_pool_of_classes_the_judge_does_not_predict_is_refused_by_name(tmp_path, toy):
    data, judge = toy
    write_pool(tmp_path / "pool", per_class=2)
    (tmp_path / "pool" / "contempt").mkdir()  # FER+'s eighth class, which the toy judge never learned
    (tmp_path / "pool" / "happy" / "happy_001.png").rename(tmp_path / "pool" / "contempt" / "c.png")
    with pytest.raises(FerError, match="does not predict contempt"):
        judge_pool(tmp_path / "pool", judge)
    assert not (tmp_path / "pool" / JUDGEMENT_FILE).exists()


def test_an_eight_class_judge_judges_a_pool_with_contempt(tmp_path):
    rng = np.random.default_rng(0)

    def split(n):
        return Split(rng.integers(0, 256, (n, 48, 48), dtype=np.uint8), np.arange(n) % 8, classes=FERPLUS)

    data = store.write(tmp_path / "ferplus.h5", {"train": split(32), "val": split(16), "test": split(16)})
    train(tiny_config(data, tmp_path / "judge", epochs=1))
    for name in ("contempt", "happy"):
        (tmp_path / "pool" / name).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 256, (48, 48), dtype=np.uint8)).save(tmp_path / "pool" / name / f"{i}.png")
    report = judge_pool(tmp_path / "pool", tmp_path / "judge")
    assert report["faces"] == 4 and set(report["per_class"]) == {"contempt", "happy"}
    assert report["intended"] == list(FERPLUS) and np.asarray(report["confusion"]).shape == (8, 8)
    assert {r["class"] for r in read_judgement(tmp_path / "pool").values()} == {"contempt", "happy"}
    assert "class_mapping" not in report

    # A seven-class pool: the eight-class judge scores it on FER2013's seven, contempt dropped and renormalised.
    for name in ("fear", "happy"):
        (tmp_path / "pool7" / name).mkdir(parents=True)
        Image.fromarray(rng.integers(0, 256, (48, 48), dtype=np.uint8)).save(tmp_path / "pool7" / name / "0.png")
    report = judge_pool(tmp_path / "pool7", tmp_path / "judge")
    assert report["intended"] == list(CLASSES) and np.asarray(report["confusion"]).shape == (7, 7)
    assert report["class_mapping"]["dropped_model_classes"] == ["contempt"] and report["class_mapping"]["renormalised"]
    records = read_judgement(tmp_path / "pool7")
    classifier = load_classifier(tmp_path / "judge", tta="flip", amp="auto")
    faces = np.stack([np.asarray(Image.open(tmp_path / "pool7" / f)) for f in records])
    eight = classifier.predict_proba(faces)
    expected = eight[:, :7] / eight[:, :7].sum(1, keepdims=True)
    for record, row in zip(records.values(), expected):
        assert record["classes"] == list(CLASSES) and record["judged"] != "contempt"
        assert np.allclose(record["probs"], row, atol=1e-5)
    result = CliRunner().invoke(
        models_cli, ["judge", str(tmp_path / "pool7"), "--model", str(tmp_path / "judge"), "--overwrite"]
    )
    assert result.exit_code == 0 and "contempt dropped" in result.output


def test_policies():
    records = [
        {"file": f"{c}/{i}.png", "class": c, "judged": c if i % 2 else "happy", "p_intended": p}
        for c in ("fear", "sad")
        for i, p in enumerate((0.9, 0.2, 0.6, 0.4))
    ]
    assert [r["p_intended"] for r in SelectionPolicy("top-k", 2).select(records)["fear"]] == [0.9, 0.6]
    assert [r["p_intended"] for r in SelectionPolicy("min-prob", 0.5).select(records)["sad"]] == [0.9, 0.6]
    assert [r["file"] for r in SelectionPolicy("agree").select(records)["fear"]] == ["fear/3.png", "fear/1.png"]
    for bad in (("min-prob", 1.5), ("top-k", 0), ("top-k", 2.5), ("best", None)):
        with pytest.raises(FerError):
            SelectionPolicy(*bad)


def test_judged_balance_takes_trusted_faces_best_first_and_records_them(tmp_path, toy):
    data, judge = toy
    truth = write_pool(tmp_path / "pool", per_class=8, wrong=3)
    source = separable_h5(tmp_path / "source.h5")  # 24 train faces per class: the target 30 needs 6 of each
    with pytest.raises(JudgementError, match="never judged"):
        balance(
            BalanceConfig(source, tmp_path / "b.h5", pool=tmp_path / "pool", target=30, judged=SelectionPolicy("agree"))
        )
    judge_pool(tmp_path / "pool", judge)
    result = balance(
        BalanceConfig(
            source,
            tmp_path / "b.h5",
            pool=tmp_path / "pool",
            target=30,
            judged=SelectionPolicy("top-k", 5),
            allow_shortfall=True,
        )
    )
    train_split = store.read_split(tmp_path / "b.h5", "train")
    synthetic = train_split.source == 1
    assert synthetic.sum() == 35  # 5 trusted per class, the shortfall of 1 allowed
    records = read_judgement(tmp_path / "pool")
    picked = list(train_split.origin[synthetic])
    np.testing.assert_allclose(
        train_split.judge_score[synthetic], [records[f]["p_intended"] for f in picked], atol=1e-6
    )
    assert np.isnan(train_split.judge_score[~synthetic]).all()
    for c in CLASSES:  # within a class, the picked faces are the best-judged ones
        scores = sorted((r["p_intended"] for r in records.values() if r["class"] == c), reverse=True)
        mine = sorted((records[f]["p_intended"] for f in picked if f.startswith(f"{c}/")), reverse=True)
        assert mine == scores[:5]
    assert np.mean([truth[f] == records[f]["class"] for f in picked]) >= 0.9
    attrs = store.read_attrs(tmp_path / "b.h5")
    assert attrs["judgement"]["policy"] == "top-k 5" and attrs["judgement"]["judge"]["model"] == str(judge)
    assert result.plan.shortfall["train"] == [1] * 7
    # The command line: a policy without --judged, and two policies, are one-line errors.
    for args, message in ((["--agree"], "add --judged"), (["--judged", "--agree", "--top-k", "3"], "one selection")):
        cli = CliRunner().invoke(
            synth_cli,
            ["balance", str(source), "--pool", str(tmp_path / "pool"), "--out", str(tmp_path / "c.h5"), *args],
        )
        assert cli.exit_code == 2 and message in cli.output, cli.output


def test_new_faces_without_a_judgement_are_refused(tmp_path, toy):
    data, judge = toy
    write_pool(tmp_path / "pool", per_class=2)
    judge_pool(tmp_path / "pool", judge)
    Image.fromarray(np.zeros((48, 48), np.uint8)).save(tmp_path / "pool" / "fear" / "late.png")
    with pytest.raises(JudgementError, match="no judgement.*fear/late.png"):
        balance(
            BalanceConfig(
                separable_h5(tmp_path / "s.h5"),
                tmp_path / "b.h5",
                pool=tmp_path / "pool",
                target=26,
                judged=SelectionPolicy("agree"),
                allow_shortfall=True,
            )
        )


def test_judge_command_line(tmp_path, toy):
    data, judge = toy
    write_pool(tmp_path / "pool", per_class=2)
    result = CliRunner().invoke(models_cli, ["judge", str(tmp_path / "pool"), "--model", str(judge)])
    assert result.exit_code == 0, result.output
    assert "agreement" in result.output and "kept by policy" in result.output
    as_json = CliRunner().invoke(models_cli, ["judge", str(tmp_path / "pool"), "--model", str(judge), "--json"])
    assert json.loads(as_json.stdout)["faces"] == 14  # logs go to stderr


def test_clip_second_opinion_from_a_local_folder(tmp_path, toy):
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    from fer_synth.generation.tiny import tiny_tokenizer

    data, judge = toy
    tokenizer = tiny_tokenizer()
    config = CLIPConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "max_position_embeddings": 64,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        vision_config={
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 32,
            "patch_size": 8,
        },
        projection_dim=16,
    )
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(tmp_path / "clip")
    tokenizer.model_max_length = 64
    CLIPProcessor(
        image_processor=CLIPImageProcessor(crop_size=32, size={"shortest_edge": 32}), tokenizer=tokenizer
    ).save_pretrained(tmp_path / "clip")
    write_pool(tmp_path / "pool", per_class=2)
    report = judge_pool(tmp_path / "pool", judge, clip=str(tmp_path / "clip"))
    assert report["clip"]["faces"] == 14 and 0 <= report["clip"]["agreement_with_judge"] <= 1
    assert all("clip" in r for r in read_judgement(tmp_path / "pool").values())


def test_clip_is_skipped_with_a_message_when_its_weights_cannot_be_had(tmp_path, toy, caplog, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    data, judge = toy
    write_pool(tmp_path / "pool", per_class=1)
    report = judge_pool(tmp_path / "pool", judge, clip="openai/clip-vit-base-patch32-not-cached")
    assert "clip" not in report and "CLIP judge" in caplog.text and "skipped" in caplog.text


def test_compare_refuses_other_test_data_and_reports_paired_differences(tmp_path):
    a = separable_h5(tmp_path / "a.h5")
    changed = store.read(a)
    changed.splits["test"].images[0] = 255 - changed.splits["test"].images[0]
    b = store.write(tmp_path / "b.h5", changed.splits)
    with pytest.raises(FerError, match="do not share their val and test"):
        compare([a, b], tmp_path / "cmp")
    balanced = store.read(a)  # the same val/test, a different train: a stand-in for a topped-up file
    balanced.splits["train"] = balanced.splits["train"].take(np.arange(0, len(balanced.splits["train"]), 2))
    c = store.write(tmp_path / "c.h5", balanced.splits)
    settings = dict(
        model="small-cnn", model_options={"widths": [8, 16]}, epochs=2, batch_size=16, lr=0.01, augment={}, tta="none"
    )
    args = dict(
        seeds=2,
        variants=["class_weighting=balanced"],
        ensembles=[["c", "a+class_weighting=balanced"]],
        device="cpu",
        resamples=300,
    )
    result = compare([a, c], tmp_path / "cmp", **args, **settings)
    ensemble = "ensemble(c+a+class_weighting=balanced)"
    assert list(result["arms"]) == ["a", "c", "a+class_weighting=balanced", ensemble]
    arm = result["arms"]["c"]
    assert len(arm["per_seed"]) == 2 and set(arm["recall"]) == set(CLASSES)
    for metric in ("accuracy", "balanced_accuracy", "macro_f1"):
        diffs = [x[metric] - y[metric] for x, y in zip(arm["per_seed"], result["arms"]["a"]["per_seed"])]
        d = arm["vs_first"][metric]
        assert d["mean"] == pytest.approx(np.mean(diffs)) and d["low"] <= d["high"]
        assert arm[metric]["low"] <= arm[metric]["high"]
    assert result["arms"]["a"]["vs_first"]["accuracy"] == {"mean": 0.0, "low": 0.0, "high": 0.0}
    assert (tmp_path / "cmp" / "compare.json").exists() and (tmp_path / "cmp" / "compare-recall.png").exists()
    assert result["arms"]["a+class_weighting=balanced"]["variant"] == {"class_weighting": "balanced"}
    # the ensemble arm is `fer-models ensemble`'s mean of its members' runs, seed by seed, evaluated like a run
    saved = json.loads(
        (tmp_path / "cmp" / "ensemble_c+a+class_weighting_balanced_" / "seed-1" / "ensemble.json").read_text()
    )
    assert saved["method"] == "mean" and len(saved["members"]) == 2
    assert result["arms"][ensemble]["members"] == ["c", "a+class_weighting=balanced"]
    again = compare([a, c], tmp_path / "cmp", **args, **settings)
    assert again["arms"]["c"]["per_seed"] == arm["per_seed"]  # the runs continue (here: are complete), not retrain
    assert again["arms"]["c"]["vs_first"] == arm["vs_first"]  # the bootstrap is seeded


def test_paired_bootstrap_intervals():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 600)
    base = np.repeat(np.where(rng.random(600) < 0.6, labels, (labels + 1) % 3)[None], 3, 0)  # 3 equal seeds, ~60%
    better = base.copy()
    better[:, :120] = labels[:120]  # right wherever the baseline was wrong on the first 120 images
    noisy = np.repeat(np.where(rng.random(600) < 0.6, labels, (labels + 1) % 3)[None], 3, 0)  # as good, other images
    spread = np.stack([labels, labels, (labels + 1) % 3])  # seeds that disagree completely: 100%, 100%, 0%
    result = paired_bootstrap(
        labels,
        {"base": base, "same": base.copy(), "better": better, "noisy": noisy, "spread": spread},
        "base",
        3,
        resamples=500,
    )
    assert result["same"]["vs_first"]["accuracy"] == (0.0, 0.0, 0.0)  # paired: the same images in every arm
    gain = float(np.mean(better == labels) - np.mean(base == labels))
    mean, low, high = result["better"]["vs_first"]["accuracy"]
    assert mean == pytest.approx(gain) and 0 < low < gain < high
    _, low, high = result["noisy"]["vs_first"]["accuracy"]
    assert low < 0 < high
    low, high = result["spread"]["arm"]["accuracy"]
    # the seeds are resampled too: training noise widens the interval (seeds kept as they are: exactly 2/3)
    assert low <= 1 / 3 + 1e-6 and high == 1.0
    assert set(result["base"]["arm"]) >= {"accuracy", "balanced_accuracy", "macro_f1", "recall:0", "recall:2"}


def test_variants_parse():
    assert parse_variant("balanced-sampler=true") == {"balanced_sampler": True}
    with pytest.raises(FerError):
        parse_variant("focal")
