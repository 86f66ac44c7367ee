"""Benchmark: does the judge tell right labels from wrong ones, which selection policy filters best, does judged
balancing help, and how fast is judging? Built from real FER2013 faces (no text-to-image weights here).

1. The judge: a model trained on the FIRST half of FER2013 Training only (selected on PublicTest), so that every
   face judged below is one it never trained on. ``--judges A,B`` runs experiments 2-3 with each of these models
   instead, side by side (e.g. ``builtin-fer2013,builtin``: the judge before and after issue 20; both chose their
   epoch on PublicTest, so it is not wholly unseen by them); experiment 4 then uses the first of them, whose
   training may have seen its pool (the second half of Training).
2. True vs shuffled: PublicTest faces filed under their true class, and under a seeded shuffle of the labels; the
   true class is FER2013's label and, separately, FER+'s majority label (``--labels``: the eight-class FER+ judge
   sides with FER+ where the two label sets disagree, so each judge is also scored on the other's labels).
3. Corruption: PublicTest faces with 10%, 30%, 50% of the labels changed on purpose to another class; per policy,
   the filter's precision (kept faces whose label is right) and recall (wrong faces removed).
4. compare on a toy budget: train = the first half of Training; the pool = the second half with 30% of its labels
   corrupted; arms real-only, balanced (random draw from the whole pool), judged-balanced (default policy), and the
   classic answers on the real data alone as variants of real-only (class-weighted loss, balanced sampler); the
   same val (PublicTest) and test (PrivateTest).
5. Speed: faces/s of the judge on the largest pool (batch 512), and of the bare model on the same faces.

    python bench/judge_fer2013.py --judge-epochs 6 --compare-epochs 3 --seeds 2 --threads 1
    python bench/judge_fer2013.py --judges builtin-fer2013,builtin --skip-compare --threads 2   # docs/judging.md
    python bench/judge_fer2013.py --quick            # minutes: smaller judge and pools, one seed
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import CACHE, FERPLUS_CSV, FERPLUS_H5, packed  # noqa: E402
from fer_models.evaluation.compare import compare  # noqa: E402
from fer_models.inference.classifier import load_classifier  # noqa: E402
from fer_models.inference.judge import JUDGE_AMP, JUDGE_TTA, judge_pool  # noqa: E402
from fer_models.training.config import make_config  # noqa: E402
from fer_models.training.loop import train  # noqa: E402
from fer_synth.core import store  # noqa: E402
from fer_synth.core.classes import CLASSES  # noqa: E402
from fer_synth.core.dataset import Split  # noqa: E402
from fer_synth.core.judgement import DEFAULT_POLICY, JUDGEMENT_FILE, SelectionPolicy, read_judgement  # noqa: E402
from fer_synth.data.balance import BalanceConfig, balance  # noqa: E402
from fer_synth.data.splits import stratified_holdout  # noqa: E402

POLICIES = [SelectionPolicy("agree"), *(SelectionPolicy("min-prob", p) for p in (0.1, 0.2, 0.3, 0.5))]


def write_pool(folder: Path, split: Split, labels: np.ndarray) -> Path:
    """Faces of ``split`` filed under ``labels`` (class folders), named by their row so truth can be looked up."""
    if folder.exists():
        shutil.rmtree(folder)
    for row, (image, label) in enumerate(zip(split.images, labels)):
        path = folder / CLASSES[label] / f"{row:06d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(path)
    return folder


def corrupt(labels: np.ndarray, rate: float, seed: int) -> np.ndarray:
    """A copy of ``labels`` with ``rate`` of them changed to another class, chosen by ``seed``."""
    rng = np.random.default_rng([seed, int(rate * 1000)])
    out = labels.copy()
    picked = rng.choice(len(labels), int(round(rate * len(labels))), replace=False)
    out[picked] = (labels[picked] + rng.integers(1, len(CLASSES), len(picked))) % len(CLASSES)
    return out


def truth_of(records: dict, true_labels: np.ndarray) -> dict[str, bool]:
    """file -> whether its folder label is the face's true label."""
    return {f: r["class"] == CLASSES[true_labels[int(Path(f).stem)]] for f, r in records.items()}


def filter_quality(records: dict, right: dict[str, bool], policy: SelectionPolicy) -> dict:
    kept = {r["file"] for rs in policy.select(records.values()).values() for r in rs}
    n_wrong = sum(not v for v in right.values())
    return {
        "kept": len(kept),
        "precision": float(np.mean([right[f] for f in kept])) if kept else None,
        "recall_of_wrong": (sum(f not in kept for f, ok in right.items() if not ok) / n_wrong) if n_wrong else None,
        "clean_kept": sum(right[f] for f in kept) / max(sum(right.values()), 1),
    }


def publictest(data, labels: str) -> Split:
    """PublicTest's faces under FER2013's labels, or FER+'s majority labels (the faces FER+'s protocol keeps, its
    contempt rows left out, so that a seven-class judge can judge them too)."""
    if labels == "fer2013":
        return data["val"]
    val = store.read_split(packed(FERPLUS_H5, FERPLUS_CSV, "distribution"), "val", provenance=False)
    seven = val.labels < len(CLASSES)  # FER+'s classes are FER2013's seven, in FER2013's order, then contempt
    return Split(val.images[seven], val.labels[seven])


def judge_experiments(judge: str, public: Split, work: Path, threads: int, label_set: str) -> dict:
    """Experiments 2, 3 and 5 for one judge on PublicTest under one label set, its pools under ``work``."""
    summary: dict = {}
    # 2. True vs shuffled labels.
    shuffled = np.random.default_rng(7).permutation(public.labels)
    for name, labels in (("true", public.labels), ("shuffled", shuffled)):
        report = judge_pool(write_pool(work / f"pool-{name}", public, labels), judge, overwrite=True)
        summary[f"publictest_{name}_labels"] = {
            "faces": report["faces"],
            "agreement": report["agreement"],
            "mean_p_intended": float(
                np.mean([r["p_intended"] for r in read_judgement(work / f"pool-{name}").values()])
            ),
        }
        print(
            f"{judge}: PublicTest ({label_set} labels), {name}: agreement {100 * report['agreement']:.1f}% "
            f"on {report['faces']} faces"
        )

    # 3. Corruption 10/30/50%: filter precision and recall per policy.
    summary["corruption"] = {}
    for rate in (0.1, 0.3, 0.5):
        labels = corrupt(public.labels, rate, seed=1)
        folder = work / f"pool-corrupt-{int(rate * 100)}"
        judge_pool(write_pool(folder, public, labels), judge, overwrite=True)
        records = read_judgement(folder)
        right = truth_of(records, public.labels)
        per_class_clean = {c: sum(ok for f, ok in right.items() if records[f]["class"] == c) for c in CLASSES}
        policies = [*POLICIES, SelectionPolicy("top-k", max(1, int(np.median(list(per_class_clean.values())))))]
        summary["corruption"][rate] = {str(pol): filter_quality(records, right, pol) for pol in policies}
        for pol, q in summary["corruption"][rate].items():
            print(
                f"{judge} ({label_set} labels): corrupted {int(100 * rate)}%, {pol:>13}: kept {q['kept']:5d}, "
                f"precision {100 * (q['precision'] or 0):.1f}%, "
                f"wrong removed {100 * (q['recall_of_wrong'] or 0):.1f}%, clean kept {100 * q['clean_kept']:.1f}%"
            )

    # 5. Speed, on the 50% pool's faces, with the judge's default settings.
    classifier = load_classifier(judge, tta=JUDGE_TTA, amp=JUDGE_AMP)
    faces = public.images
    for _ in range(2):  # warm-up, then timed
        started = time.perf_counter()
        classifier.predict_proba(faces)
    bare_s = time.perf_counter() - started
    (work / "pool-corrupt-50" / JUDGEMENT_FILE).unlink()  # judge it all again, timed
    started = time.perf_counter()
    judge_pool(work / "pool-corrupt-50", judge)
    judge_s = time.perf_counter() - started
    summary["speed"] = {
        "faces": len(faces),
        "judge_pool_faces_per_s": len(faces) / judge_s,
        "bare_model_faces_per_s": len(faces) / bare_s,
        "threads": threads,
    }
    print(
        f"{judge}: speed: judge (read pool, score, write records and report) {len(faces) / judge_s:.0f} faces/s; "
        f"the model alone {len(faces) / bare_s:.0f} faces/s ({threads} thread(s))"
    )
    return summary


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, default=CACHE / "judge")
    p.add_argument(
        "--judges",
        help="comma-separated models (run folders, checkpoints, ensembles, shipped names) "
        "judged side by side in 2-3, instead of the half-train judge",
    )
    p.add_argument(
        "--judge-epochs",
        type=int,
        default=6,
        help="epochs of the half-train judge (cpu-fast recipe); "
        "epochs, not seconds, so that a loaded machine gives the same judge",
    )
    p.add_argument("--compare-epochs", type=int, default=3, help="epochs of every compare run (the same for all arms)")
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument(
        "--variants",
        default="class_weighting=balanced,balanced_sampler=true",
        help="comma-separated compare variants of the real-only arm: the classic answers to imbalance",
    )
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--labels",
        default="fer2013,ferplus",
        help="PublicTest's label sets the pools are filed under, "
        "comma-separated: fer2013 (the original labels), ferplus (FER+'s majority labels)",
    )
    p.add_argument("--quick", action="store_true", help="a smoke run: small budgets and pools")
    p.add_argument("--skip-compare", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.quick:
        args.judge_epochs, args.compare_epochs, args.seeds = 1, 1, 1
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    summary: dict = {"command": " ".join(sys.argv), "threads": args.threads}

    data = store.read(packed())  # the benches' shared pack of the CSV
    half, rest = stratified_holdout(data["train"], 0.5, seed=0)  # rest = the second half: never seen by the judge
    base = store.write(
        work / "half.h5",
        {"train": half, "val": data["val"], "test": data["test"]},
        {"note": "first half of FER2013 Training (bench/judge_fer2013.py)"},
    )

    # 1. The judge(s).
    judges = args.judges.split(",") if args.judges else [str(work / "judge-run")]
    if not args.judges:
        started = time.perf_counter()
        train(
            make_config(
                "cpu-fast",
                data=str(base),
                out=judges[0],
                device="cpu",
                threads=args.threads,
                epochs=args.judge_epochs,
                progress=False,
            )
        )
        summary["judge_training_s"] = round(time.perf_counter() - started, 1)
    summary["judges"] = {judge: {} for judge in judges}
    for label_set in args.labels.split(","):
        public = publictest(data, label_set)
        if args.quick:
            public = public.take(np.arange(0, len(public), 4))
        for judge in judges:
            folder = work / Path(judge).name / label_set
            summary["judges"][judge][label_set] = judge_experiments(judge, public, folder, args.threads, label_set)
    judge = judges[0]

    # 4. compare on a toy budget.
    if not args.skip_compare:
        pool = write_pool(work / "pool-half2", rest, corrupt(rest.labels, 0.3, seed=2))
        judge_pool(pool, judge, overwrite=True)
        arms = {"real-only": base}
        for name, policy in (("balanced", None), ("judged", DEFAULT_POLICY)):
            out = work / f"{name}.h5"
            balance(BalanceConfig(base, out, pool=pool, allow_shortfall=True, judged=policy, overwrite=True))
            arms[name] = out
        settings = dict(epochs=args.compare_epochs, threads=args.threads)
        variants = [v for v in args.variants.split(",") if v]
        result = compare(
            list(arms.values()),
            work / "compare",
            recipe="cpu-fast",
            seeds=args.seeds,
            variants=variants,
            device="cpu",
            **settings,
        )
        summary["compare"] = {
            name: {m: result["arms"][name][m] for m in ("accuracy", "balanced_accuracy", "macro_f1")}
            | {"vs_first": result["arms"][name]["vs_first"]}
            for name in result["arms"]
        }
        for name, arm in result["arms"].items():
            print(
                f"compare {name:>10}: accuracy {100 * arm['accuracy']['mean']:.2f} "
                f"+- {100 * arm['accuracy']['std']:.2f}, balanced {100 * arm['balanced_accuracy']['mean']:.2f}, "
                f"macro-F1 {100 * arm['macro_f1']['mean']:.2f}"
            )
    (work / "bench.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    print(f"summary: {work / 'bench.json'}")


if __name__ == "__main__":
    main()
