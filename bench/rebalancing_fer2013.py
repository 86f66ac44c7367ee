"""Benchmark: the classic rebalancing methods on the real FER2013 at a CPU budget, and the source study's leakage.

1. Cost: ``fer-synth balance --method M`` on FER2013 (28,709 train faces of 2,304 pixels) for every method, each in a
   process of its own: CPU seconds, wall seconds and peak memory (max RSS), against ``fer-synth pack`` (the same
   read and write, no rebalancing) in the same run, as a ratio.
2. The study: ``fer-models compare`` of the unbalanced file (the baseline), one file per method (plus a generated
   pool's with ``--pool``), the variants class_weighting=balanced and balanced_sampler=true of the baseline
   (``--variants`` for others, e.g. loss=focal), and the source study's ensemble (ros + smote + smote-tomek,
   softmax averaged seed by seed); seeds 0..N-1; every run ``small-cnn`` with the ``cpu-fast`` recipe on one thread
   for ``--budget`` CPU seconds of training at a constant learning rate: the same optimizer steps in every arm
   whatever its file's size (epochs would give an oversampled file more), and no schedule cut short at different
   points.
3. Leakage: the source study's protocol (SMOTE on all 35,887 faces, then a random stratified 80/10/10 split) against
   the honest one (the same random split of the real faces first, SMOTE on its train part only), the same model,
   budget and seeds; each scored on its own test split, as each protocol would report it; plus an audit from the
   ``parents`` column: test rows that share a source face with a train row.

    nice -n 10 python bench/rebalancing_fer2013.py --budget 180 --seeds 3 --jobs 2

small-cnn trains about 320 images per CPU second on one thread here, so 180 s is about two epochs of FER2013's train
split (about 45% validation accuracy for the baseline): far from converged, but past the prior that a few seconds of
training learn. The whole study took 119 minutes of wall clock on two cores (26 runs, each also fitting its
calibration on val after training; the files 12 minutes of one core).
Test is scored without TTA (one pass: the budget). Files and runs are
cached under --work; figures go to stdout and WORK/bench.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import CSV  # noqa: E402
from fer_models.evaluation.compare import compare, evaluated, leaderboard, plan_arms, run_configs  # noqa: E402
from fer_synth.core import store  # noqa: E402
from fer_synth.core.dataset import SYNTHETIC, Split  # noqa: E402
from fer_synth.data.balance import BalanceConfig, PackConfig, balance, pack  # noqa: E402
from fer_synth.data.oversample import METHODS, oversample  # noqa: E402
from fer_synth.data.splits import stratified_holdout  # noqa: E402

RECIPE = "cpu-fast"
VARIANTS = ("class_weighting=balanced", "balanced_sampler=true")
SOURCE_ENSEMBLE = ("ros", "smote", "smote-tomek")
LEAK_METHOD = "smote"


def make_one(method: str, out: Path) -> None:
    """Child process: write ``out`` with ``method`` (``pack``: no rebalancing); print its cost as one JSON line."""
    import torch

    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from threadpoolctl import threadpool_limits

    cpu, wall = time.process_time(), time.perf_counter()
    with threadpool_limits(1):  # one thread for BLAS/OpenMP: the scikit-learn neighbour searches
        if method == "pack":
            pack(PackConfig(CSV, out, overwrite=True))
        else:
            balance(BalanceConfig(CSV, out, method=method, seed=0, overwrite=True))
    print(
        json.dumps(
            {
                "method": method,
                "cpu_s": time.process_time() - cpu,
                "wall_s": time.perf_counter() - wall,
                "max_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
            }
        )
    )


def cost(method: str, out: Path) -> dict:
    """``method``'s cost, measured in a fresh process (cached beside the file)."""
    record = out.with_suffix(".cost.json")
    if out.exists() and record.exists():
        return json.loads(record.read_text())
    done = subprocess.run(
        [sys.executable, __file__, "--make", method, "--make-out", str(out)], check=True, capture_output=True, text=True
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    record.write_text(json.dumps(result))
    return result


def neighbour_search(path: Path, queries: int = 1000) -> dict:
    """What the cleaning steps' neighbour search costs: scikit-learn's exact search (imbalanced-learn's TomekLinks
    and EditedNearestNeighbours use it), one thread, for ``queries`` rows of ``path``'s train split over all of it,
    extrapolated to the whole split; float64 (scikit-learn's arithmetic) against float32 input."""
    from sklearn.neighbors import NearestNeighbors
    from threadpoolctl import threadpool_limits

    train = store.read_split(path, "train", provenance=False)
    X = train.images.reshape(len(train), -1).astype(np.float32)
    rows = np.random.default_rng(0).choice(len(X), queries, replace=False)
    with threadpool_limits(1):
        cpu = time.process_time()
        NearestNeighbors(n_neighbors=4).fit(X).kneighbors(X[rows], return_distance=False)
        seconds = time.process_time() - cpu
    return {"rows": len(X), "queries": queries, "cpu_s": seconds, "whole_split_cpu_s": seconds * len(X) / queries}


def leakage_files(base: Path, work: Path, seed: int = 0) -> tuple[Path, Path]:
    """(oversample-then-split, split-then-oversample) from all of FER2013's real faces, with the same random split."""
    leaky, honest = work / "leak-oversample-then-split.h5", work / "leak-split-then-oversample.h5"
    data = store.read(base)
    everything = Split.concat([data[s] for s in ("train", "val", "test")])

    def split_80_10_10(rows: Split) -> dict[str, Split]:
        rest, test = stratified_holdout(rows, 0.1, seed)
        train, val = stratified_holdout(rest, 1 / 9, seed)
        return {"train": train, "val": val, "test": test}

    if not leaky.exists():
        oversampled = oversample(everything, LEAK_METHOD, int(everything.counts().max()), seed).split
        store.write(
            leaky,
            split_80_10_10(oversampled),
            {
                "note": f"{LEAK_METHOD} on all faces, then a random split "
                "(the source study's protocol; bench/rebalancing_fer2013.py)"
            },
        )
    if not honest.exists():
        splits = split_80_10_10(everything)
        splits["train"] = oversample(splits["train"], LEAK_METHOD, int(splits["train"].counts().max()), seed).split
        store.write(
            honest, splits, {"note": f"a random split, then {LEAK_METHOD} on train only (bench/rebalancing_fer2013.py)"}
        )
    return leaky, honest


def audit(path: Path) -> dict:
    """Test rows that share a source face with train: a train row's own face, or a parent of a synthetic row."""
    data = store.read(path)

    def faces(split: Split) -> list[set[str]]:
        return [
            set(json.loads(p)) if s == SYNTHETIC else {o} for o, p, s in zip(split.origin, split.parents, split.source)
        ]

    train_faces = set().union(*faces(data["train"]))
    test = faces(data["test"])
    return {
        "test_rows": len(test),
        "test_synthetic": int(data["test"].n_synthetic),
        "test_rows_sharing_a_face_with_train": sum(bool(f & train_faces) for f in test),
    }


def _train(config) -> str:
    """Worker: one run of the comparison, trained and evaluated on test (compare then finds both done)."""
    from fer_models.training.loop import train

    train(config)  # a finished run (epochs or time budget spent) is left as it is
    evaluated(config.out, config.data, Path(config.out), "cpu")
    return config.out


def pct(m: dict) -> str:
    return f"{100 * m['mean']:.2f} [{100 * m['low']:.1f}, {100 * m['high']:.1f}]"


def diff(m: dict) -> str:
    return f"{100 * m['mean']:+.2f} [{100 * m['low']:+.1f}, {100 * m['high']:+.1f}]"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, default=ROOT / "bench" / ".cache" / "rebalancing")
    p.add_argument("--budget", type=float, default=180, help="CPU seconds of training per run")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--leak-seeds", type=int, default=1, help="seeds of each leakage protocol")
    p.add_argument("--methods", default=",".join(METHODS.names()), help="comma-separated balance methods")
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated compare variants of the baseline")
    p.add_argument("--jobs", type=int, default=2, help="runs (and files) made at once, one thread each")
    p.add_argument(
        "--pool", type=Path, help="a generated pool (`fer-synth generate`): its balanced file joins the study"
    )
    p.add_argument("--skip-leakage", action="store_true")
    p.add_argument("--make", help=argparse.SUPPRESS)
    p.add_argument("--make-out", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.make:
        return make_one(args.make, args.make_out)
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    summary: dict = {
        "command": " ".join(sys.argv),
        "recipe": RECIPE,
        "budget_cpu_s": args.budget,
        "seeds": args.seeds,
        "jobs": args.jobs,
    }
    chosen = [m for m in args.methods.split(",") if m]
    variants = [v for v in args.variants.split(",") if v]
    started = time.perf_counter()

    # 1. The files, and what each method costs.
    methods = ["pack", *chosen]
    files = {m: work / f"fer2013_{'unbalanced' if m == 'pack' else m}.h5" for m in methods}
    with ThreadPoolExecutor(args.jobs) as pool:
        costs = dict(zip(methods, pool.map(lambda m: cost(m, files[m]), methods)))
    summary["cost"] = costs
    print("\n| method | train rows | CPU s | x pack | wall s | peak memory GB |\n| --- | --- | --- | --- | --- | --- |")
    for m in methods:
        c = costs[m]
        rows = len(store.read_split(files[m], "train", provenance=False))
        print(
            f"| {m} | {rows:,} | {c['cpu_s']:.1f} | {c['cpu_s'] / costs['pack']['cpu_s']:.1f} | {c['wall_s']:.1f} | "
            f"{c['max_rss_gb']:.2f} |"
        )
    for m in methods[1:]:
        for note in store.read_attrs(files[m]).get("notes", []):
            if "removed" in note:
                print(f"  {note}")
    if "smote" in files:
        search = summary["neighbour_search"] = neighbour_search(files["smote"])
        print(
            f"\nthe cleaning steps' exact neighbour search (scikit-learn, one thread): {search['queries']:,} rows "
            f"of the SMOTE train split against all {search['rows']:,} in {search['cpu_s']:.1f} CPU s; the whole split "
            f"about {search['whole_split_cpu_s']:.0f} CPU s"
        )
    datasets = [files[m] for m in methods]
    if args.pool:
        generated = work / "fer2013_generated.h5"
        if not generated.exists():
            balance(BalanceConfig(CSV, generated, pool=args.pool, seed=0, allow_shortfall=True))
        datasets.append(generated)
    else:
        print(
            "no generated pool given (--pool DIR, made by `fer-synth generate` on a GPU): the generated arm is left "
            "out of the leaderboard"
        )
    summary["generated_pool"] = str(args.pool) if args.pool else None

    # 2 and 3: every run, trained in parallel processes; compare then only evaluates what is new and ranks.
    # the budget ends every run long before 100 epochs
    settings = {
        "recipe": RECIPE,
        "device": "cpu",
        "threads": 1,
        "time_budget": args.budget,
        "budget_clock": "cpu",
        "schedule": "constant",
        "epochs": 100,
        "tta": "none",
    }
    ensembles = [SOURCE_ENSEMBLE] if set(SOURCE_ENSEMBLE) <= set(chosen) else []
    studies = {
        "study": (datasets, work / "compare", plan_arms(datasets, variants, ensembles), variants, ensembles, args.seeds)
    }
    if not args.skip_leakage:
        leaky, honest = leakage_files(files["pack"], work)
        for name, path in (("oversample-then-split", leaky), ("split-then-oversample", honest)):
            studies[name] = ([path], work / f"leak-compare-{name}", plan_arms([path]), (), (), args.leak_seeds)
    configs = [
        c for _, out, arms, _, _, seeds in studies.values() for c in run_configs(arms, out, seeds=seeds, **settings)
    ]
    print(
        f"\n{len(configs)} runs of {RECIPE} ({args.budget:g} CPU s of training each), {args.jobs} at a time", flush=True
    )
    trained = time.perf_counter()
    with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
        for done in pool.map(_train, configs):
            print(f"  done {done} ({(time.perf_counter() - trained) / 60:.1f} min)", flush=True)
    summary["training_wall_min"] = (time.perf_counter() - trained) / 60
    results = {
        name: compare(data, out, variants=v, ensembles=e, seeds=seeds, **settings)
        for name, (data, out, _, v, e, seeds) in studies.items()
    }
    summary["results"] = results

    study = results["study"]
    classes = study["classes"]
    print(f"\nLeaderboard (test = PrivateTest, {args.seeds} seeds, mean [95% interval]; vs baseline: paired bootstrap)")
    print("| arm | accuracy | balanced accuracy | macro-F1 | Δ accuracy | Δ balanced accuracy | Δ macro-F1 |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name in leaderboard(study):
        arm = study["arms"][name]
        deltas = [
            "" if name == study["first"] else diff(arm["vs_first"][m])
            for m in ("accuracy", "balanced_accuracy", "macro_f1")
        ]
        print(
            f"| {name} | {pct(arm['accuracy'])} | {pct(arm['balanced_accuracy'])} | {pct(arm['macro_f1'])} | "
            f"{' | '.join(deltas)} |"
        )
    print("\nPer-class test recall (%), mean [95% interval]; Δ to the baseline below")
    print("| arm | " + " | ".join(classes) + " |\n| --- |" + " --- |" * len(classes))
    for name in leaderboard(study):
        arm = study["arms"][name]
        print(f"| {name} | " + " | ".join(pct(arm["recall"][c]) for c in classes) + " |")
        if name != study["first"]:
            print("| Δ | " + " | ".join(diff(arm["vs_first"]["recall"][c]) for c in classes) + " |")
    if not args.skip_leakage:
        summary["audit"] = {n: audit(studies[n][0][0]) for n in ("oversample-then-split", "split-then-oversample")}
        print(f"\nLeakage ({LEAK_METHOD}; each protocol scored on its own test split, {args.leak_seeds} seed(s))")
        print(
            "| protocol | train rows | test rows | synthetic test rows | test rows sharing a face with train | "
            "accuracy | balanced accuracy | macro-F1 |\n| --- | --- | --- | --- | --- | --- | --- | --- |"
        )
        for n in ("oversample-then-split", "split-then-oversample"):
            arm = next(iter(results[n]["arms"].values()))
            a = summary["audit"][n]
            rows = len(store.read_split(studies[n][0][0], "train", provenance=False))
            print(
                f"| {n} | {rows:,} | {a['test_rows']:,} | {a['test_synthetic']:,} | "
                f"{a['test_rows_sharing_a_face_with_train']:,} | {pct(arm['accuracy'])} | "
                f"{pct(arm['balanced_accuracy'])} | {pct(arm['macro_f1'])} |"
            )
    summary["wall_min"] = (time.perf_counter() - started) / 60
    print(f"\nwhole bench: {summary['wall_min']:.1f} min wall")
    (work / "bench.json").write_text(json.dumps(summary, indent=2, default=str))


if __name__ == "__main__":
    main()
