"""The sections of the dataset report. Each takes the inputs, the page's image folder and the facts dict (what
becomes ``report.json``), adds its numbers to the facts, and returns its HTML, or None when it has nothing to show.

A table cell's ``data-key`` is the path of its number in ``report.json`` (``stats.splits.train.counts.angry``),
so the page can be checked against the JSON it was made from.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np

from fer_synth.core.dataset import REAL, Split
from fer_synth.core.images import read_rgb
from fer_synth.core.manifest import outcome
from fer_synth.data.balance import plan_topup
from fer_synth.data.stats import dataset_stats, identical_groups, split_stats
from fer_synth.report.inputs import ReportInputs
from fer_synth.ui import html, plots

SHEET_COLUMNS, SHEET_ROWS = 6, 4
GROUPS_SHOWN = 12  # duplicate groups shown per kind
EXAMPLES_PER_REASON = 8
LOWEST_JUDGED = 5  # two classes side by side on a laptop screen
THUMB = 96  # px, rejected full-size images are shown at this size

Section = Callable[[ReportInputs, html.Images, dict, int], "tuple[str, str, str] | None"]


def _class_label(classes: Sequence[str], i: int) -> str:
    return f"{html.swatch(plots.class_colours(classes)[i])}{html.esc(classes[i])}"


# --- class distribution -----------------------------------------------------------------------------------


def distribution(inputs: ReportInputs, images: html.Images, facts: dict, seed: int) -> tuple[str, str, str]:
    classes, splits = inputs.classes, inputs.dataset.splits
    stats = dataset_stats(splits, inputs.exact_groups)
    facts["stats"] = stats
    real_only = {name: asdict(split_stats(split.take(split.source == REAL))) for name, split in splits.items()}
    facts["real_only"] = real_only
    composition = {name: inputs.composition(name) for name in splits}
    synthetic_any = any(syn.any() for _, syn in composition.values())
    panels = [
        (f"{name}: {int(real.sum()):,} real" + (f" + {int(syn.sum()):,} synthetic" if syn.any() else ""), real, syn)
        for name, (real, syn) in composition.items()
    ]
    plots.split_bars(
        images.path("distribution.png"),
        classes,
        panels,
        title="Images per class" + (" (hatched: synthetic top-up)" if synthetic_any else ""),
    )
    parts = [images.figure("distribution.png", "images per class and split")]
    parts.append(
        html.row(
            *(
                _split_table(name, stats["splits"][name], real_only[name], composition[name][1], classes)
                for name in splits
            )
        )
    )
    parts.append(
        html.note(
            f"Deficit: images a class needs to match its split's largest class; "
            f"{stats['needed_total']:,} in all for class equilibrium in every split."
        )
    )
    plan = inputs.dataset.attrs.get("plan")
    if plan:
        facts["plan"] = plan
        parts.append(html.row(_plan_table(plan, classes, "plan", "The top-up this file was made with")))
    elif inputs.pool is not None and not synthetic_any:
        counts = composition[inputs.train_name][0]
        projected = plan_topup({inputs.train_name: counts}, inputs.pool.faces.counts(), "max")
        facts["projected_plan"] = asdict(projected)
        parts.append(
            html.row(
                _plan_table(
                    asdict(projected),
                    classes,
                    "projected_plan",
                    "What `fer-synth balance` (target max) would take from the pool",
                )
            )
        )
    return "distribution", "Class distribution", "".join(parts)


def _split_table(name: str, s: dict, before: dict, synthetic: np.ndarray, classes: Sequence[str]) -> str:
    """Counts and deficits of one split; with synthetic rows, before (real only) and after the top-up."""
    if not synthetic.any():
        header = [
            "class",
            html.Cell("images", numeric=True),
            html.Cell("share %", numeric=True),
            html.Cell("deficit", numeric=True),
        ]
        rows = [
            [
                html.Cell(c),
                html.num(s["counts"][c], f"stats.splits.{name}.counts.{c}"),
                html.pct(s["counts"][c] / max(s["num_images"], 1), digits=1),
                html.num(s["deficits"][c], f"stats.splits.{name}.deficits.{c}"),
            ]
            for c in classes
        ]
        total = [
            "total",
            html.num(s["num_images"], f"stats.splits.{name}.num_images"),
            "",
            html.num(s["needed"], f"stats.splits.{name}.needed"),
        ]
        caption = f"{name}: {_balance_words(s)}"
    else:
        header = [
            "class",
            html.Cell("real", numeric=True),
            html.Cell("synthetic", numeric=True),
            html.Cell("total", numeric=True),
            html.Cell("deficit before", numeric=True),
            html.Cell("after", numeric=True),
        ]
        rows = [
            [
                html.Cell(c),
                html.num(before["counts"][c], f"real_only.{name}.counts.{c}"),
                html.num(int(synthetic[i])),
                html.num(s["counts"][c], f"stats.splits.{name}.counts.{c}"),
                html.num(before["deficits"][c], f"real_only.{name}.deficits.{c}"),
                html.num(s["deficits"][c], f"stats.splits.{name}.deficits.{c}"),
            ]
            for i, c in enumerate(classes)
        ]
        total = [
            "total",
            html.num(before["num_images"], f"real_only.{name}.num_images"),
            html.num(int(synthetic.sum())),
            html.num(s["num_images"], f"stats.splits.{name}.num_images"),
            html.num(before["needed"], f"real_only.{name}.needed"),
            html.num(s["needed"], f"stats.splits.{name}.needed"),
        ]
        caption = f"{name}: before the top-up {_balance_words(before)}; after, {_balance_words(s)}"
    return html.table(header, rows, table_id=f"counts-{name}", total=total, caption=caption)


def _balance_words(s: dict) -> str:
    if s["imbalance_ratio"] == 1.0:
        return "every class equal"
    return f"largest {s['largest']} / smallest {s['smallest']} = {_ratio(s['imbalance_ratio'])}"


def _ratio(value: float) -> str:
    return "inf" if value == float("inf") else f"{value:.1f}x"


def _plan_table(plan: dict, classes: Sequence[str], key: str, caption: str) -> str:
    parts = []
    for split in plan["take"]:
        header = [
            "class",
            html.Cell("real", numeric=True),
            html.Cell("target", numeric=True),
            html.Cell("from pool", numeric=True),
            html.Cell("short", numeric=True),
        ]
        rows = [
            [html.Cell(c)]
            + [
                html.num(plan[field][split][i], f"{key}.{field}.{split}.{i}")
                for field in ("counts", "targets", "take", "shortfall")
            ]
            for i, c in enumerate(classes)
        ]
        parts.append(html.table(header, rows, table_id=f"{key}-{split}", caption=f"{caption} ({split})"))
    return "".join(parts)


# --- contact sheets ---------------------------------------------------------------------------------------


def contact_sheets(inputs: ReportInputs, images: html.Images, facts: dict, seed: int) -> tuple[str, str, str] | None:
    train = inputs.dataset[inputs.train_name]
    # Synthetic faces: those the file's training split holds, else the pool's.
    if (train.source != REAL).any():
        synthetic, kind, where = (
            train.take(train.source != REAL),
            "top-up",
            f"the synthetic rows of {inputs.train_name}",
        )
    elif inputs.pool is not None:
        synthetic, kind, where = inputs.pool.faces, "pool", f"the pool {inputs.pool.path}"
    else:
        synthetic, kind, where = None, "", ""
    real = train.take(train.source == REAL)
    parts = [
        html.note(
            f"A seeded sample (seed {seed}) of up to {SHEET_COLUMNS * SHEET_ROWS} faces per class: real "
            f"faces of {inputs.train_name} on the left"
            + (f", synthetic faces from {where} on the right." if synthetic is not None else ".")
        )
    ]
    shown = {}
    for label, name in enumerate(inputs.classes):
        row = [_sheet(images, f"sheet-{label}-real.png", real, label, seed, f"real ({inputs.train_name})")]
        shown[name] = {"real": int((real.labels == label).sum())}
        if synthetic is not None:
            row.append(_sheet(images, f"sheet-{label}-synthetic.png", synthetic, label, seed, f"synthetic ({kind})"))
            shown[name]["synthetic"] = int((synthetic.labels == label).sum())
        parts.append(f'<h3>{_class_label(inputs.classes, label)}</h3><div class="row">{"".join(row)}</div>')
    facts["contact_sheets"] = {"seed": seed, "available": shown}
    return "faces", "Faces per class", "".join(parts)


def _sheet(images: html.Images, name: str, split: Split, label: int, seed: int, kind: str) -> str:
    """A seeded sample of the class's faces in ``split`` as one grid, shown at twice its size."""
    rows = np.flatnonzero(split.labels == label)
    if not len(rows):
        return html.note(f"{kind}: none")
    rng = np.random.default_rng([seed, label])
    picked = np.sort(rng.choice(rows, min(len(rows), SHEET_COLUMNS * SHEET_ROWS), replace=False))
    grid = plots.face_grid(split.images[picked], SHEET_COLUMNS, SHEET_ROWS)
    caption = f"{kind}: {len(picked)} of {len(rows):,}"
    return html.figure(images.save_png(name, grid), caption, caption, width=2 * grid.shape[1], faces=True)


# --- generation / crop run --------------------------------------------------------------------------------


def run_outcomes(inputs: ReportInputs, images: html.Images, facts: dict, seed: int) -> tuple[str, str, str] | None:
    pool = inputs.pool
    if pool is None or not pool.records:
        return None
    attempts, kept, faces, nsfw = Counter(), Counter(), Counter(), Counter()
    reasons: dict[str, Counter] = defaultdict(Counter)
    examples: dict[str, list[dict]] = defaultdict(list)
    for record in pool.records:
        name = record.get("class") or "unlabelled"
        files, reason = outcome(record)
        attempts[name] += 1
        faces[name] += len(files)
        kept[name] += bool(files)
        nsfw[name] += bool(record.get("nsfw"))
        if reason:
            reasons[reason][name] += 1
            examples[reason].append(record)
    names = [c for c in inputs.classes if attempts[c]] + sorted(set(attempts) - set(inputs.classes))
    all_reasons = sorted(reasons, key=lambda r: -sum(reasons[r].values()))
    per_class = {
        c: {
            "attempts": attempts[c],
            "kept": kept[c],
            "faces": faces[c],
            "nsfw_flagged": nsfw[c],
            "rejected": {r: reasons[r][c] for r in all_reasons if reasons[r][c]},
        }
        for c in names
    }
    facts["run"] = {"kind": _run_kind(pool.records), "per_class": per_class}
    header = [
        "class",
        html.Cell("attempts", numeric=True),
        html.Cell("kept", numeric=True),
        html.Cell("kept %", numeric=True),
        html.Cell("faces", numeric=True),
    ]
    header += [html.Cell(r, numeric=True) for r in all_reasons]
    rows = [
        [
            html.Cell(c),
            html.num(attempts[c], f"run.per_class.{c}.attempts"),
            html.num(kept[c], f"run.per_class.{c}.kept"),
            html.pct(kept[c] / attempts[c], digits=1),
            html.num(faces[c], f"run.per_class.{c}.faces"),
        ]
        + [html.num(reasons[r][c], f"run.per_class.{c}.rejected.{r}") if reasons[r][c] else "" for r in all_reasons]
        for c in names
    ]
    total = [
        "total",
        html.num(sum(attempts.values())),
        html.num(sum(kept.values())),
        html.pct(sum(kept.values()) / max(sum(attempts.values()), 1), digits=1),
        html.num(sum(faces.values())),
    ]
    total += [html.num(sum(reasons[r].values())) for r in all_reasons]
    series = {"kept": [kept[c] for c in names]} | {r: [reasons[r][c] for c in names] for r in all_reasons}
    colours = ["#4c9a5f", "#d9a441", "#c4553f", "#8a6fb0", "#5b8fc7", "#9c9c9c", "#6d4c41", "#e58fb4"]
    plots.stacked_bars(
        images.path("attempts.png"),
        names,
        series,
        colours[: len(series)],
        title="What became of each attempt, per class",
        xlabel="attempts (images)",
    )
    parts = [
        html.note(
            f"{facts['run']['kind']}: {sum(attempts.values()):,} attempts recorded in the manifest of "
            f"{pool.path}; {sum(faces.values()):,} faces kept."
        ),
        html.table(
            header,
            rows,
            table_id="run",
            total=total,
            caption="Attempts, kept images and every rejection reason per class",
        ),
        images.figure("attempts.png", "attempts per class"),
    ]
    if sum(nsfw.values()):
        parts.append(html.note(f"{sum(nsfw.values()):,} images were flagged by the safety checker.", warn=True))
    for reason in all_reasons:
        parts.append(f"<h3>Rejected: {html.esc(reason)} ({sum(reasons[reason].values()):,})</h3>")
        parts.append(_rejection_examples(inputs, images, reason, examples[reason], seed))
    return "run", "Generation / crop run", "".join(parts)


def _run_kind(records: list[dict]) -> str:
    first = records[0]
    if "input" in first:
        return "crop run (fer-synth crop)"
    return "generation run with the face stage" if "face" in first else "generation run (raw images)"


def _rejection_examples(inputs: ReportInputs, images: html.Images, reason: str, records: list[dict], seed: int) -> str:
    """A few rejected images, spread over the classes, when the image is still on disk."""
    by_class: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        by_class[record.get("class") or "unlabelled"].append(record)
    rng = np.random.default_rng([seed, len(reason)])
    picked: list[dict] = []
    queues = {c: [rs[i] for i in rng.permutation(len(rs))] for c, rs in by_class.items()}
    while len(picked) < EXAMPLES_PER_REASON and any(queues.values()):
        for queue in queues.values():
            if queue and len(picked) < EXAMPLES_PER_REASON:
                picked.append(queue.pop())
    thumbs = []
    for k, record in enumerate(picked):
        source = _rejected_image(inputs, record)
        if source is None:
            continue
        rgb = read_rgb(source)
        if rgb is None:
            continue
        thumb = cv2.resize(rgb, (THUMB, THUMB), interpolation=cv2.INTER_AREA)
        src = images.save_png(f"rejected-{_slug(reason)}-{k}.png", thumb)
        thumbs.append((src, record.get("class") or "unlabelled", str(source)))
    if not thumbs:
        return html.note(
            "No rejected image is on disk to show (generation keeps them with --keep-raw; crop reads "
            "them from its input folder)."
        )
    return html.thumbs(thumbs)


def _rejected_image(inputs: ReportInputs, record: dict) -> Path | None:
    pool = inputs.pool
    if record.get("raw_file"):
        return pool.path / record["raw_file"]
    if "input" in record and pool.settings and pool.settings.get("input"):
        path = Path(pool.settings["input"]) / record["input"]
        return path if path.exists() else None
    return None


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in text)


# --- duplicates -------------------------------------------------------------------------------------------


def duplicates(inputs: ReportInputs, images: html.Images, facts: dict, seed: int) -> tuple[str, str, str]:
    splits = inputs.dataset.splits
    d = facts["stats"]["duplicates"]
    groups = inputs.exact_groups[0]
    rows = [
        (label, html.num(d[key], f"stats.duplicates.{key}"))
        for key, label in (
            ("distinct_images", "distinct images"),
            ("duplicate_groups", "groups of identical images"),
            ("extra_copies", "copies beyond the first of each group"),
            ("cross_split_groups", "groups spanning more than one split (leakage)"),
            ("conflicting_label_groups", "groups whose copies carry different labels"),
            ("constant_images", "images of a single flat colour"),
        )
    ]
    parts = [
        html.table(
            ["exact duplicates (identical pixels)", html.Cell("count", numeric=True)], rows, table_id="duplicates"
        ),
        html.note(
            "Each card: one of the identical faces, then where every copy sits as split:origin (the CSV "
            "row or file it came from) and its label."
        ),
    ]
    lookup = {name: split for name, split in splits.items()}
    kinds = {
        "Across splits (a train face also in val or test)": [g for g in groups if len({s for s, _ in g}) > 1],
        "Conflicting labels": [g for g in groups if len({int(splits[s].labels[r]) for s, r in g}) > 1],
        "Within one split": [g for g in groups if len({s for s, _ in g}) == 1],
    }
    for title, kind_groups in kinds.items():
        parts.append(group_rows(title, kind_groups, lookup, inputs.classes, images, _slug(title)))
    if inputs.pool is not None:
        parts.append(_pool_duplicates(inputs, images, facts))
    return "duplicates", "Duplicates", "".join(parts)


def group_rows(
    title: str,
    groups: list[list[tuple[str, int]]],
    splits: dict[str, Split],
    classes: Sequence[str],
    images: html.Images,
    name: str,
    faces_per_group: int = 1,
    shown: int = GROUPS_SHOWN,
) -> str:
    """Groups of (split, row) pairs as cards: the face(s) and where each copy sits. Exact duplicates need one
    face per group; near duplicates (issue 14) show several with ``faces_per_group``."""
    parts = [f"<h3>{html.esc(title)}: {len(groups):,} group{'s' if len(groups) != 1 else ''}</h3>"]
    if not groups:
        return parts[0] + html.note("none")
    cards = []
    for k, group in enumerate(groups[:shown]):
        faces = "".join(
            f'<img src="{html.esc(images.save_png(f"{name}-{k}-{m}.png", splits[split].images[row]))}" '
            f'alt="{html.esc(split)}:{row}">'
            for m, (split, row) in enumerate(group[:faces_per_group])
        )
        lines = [f"{len(group)} copies"] + [_where(splits, classes, split, row) for split, row in group[:5]]
        if len(group) > 5:
            lines.append(f"and {len(group) - 5} more")
        cards.append(f'<div class="group">{faces}<ul>{"".join(f"<li>{html.esc(x)}</li>" for x in lines)}</ul></div>')
    parts.append(f'<div class="groups">{"".join(cards)}</div>')
    if len(groups) > shown:
        parts.append(html.note(f"first {shown} of {len(groups):,} groups shown"))
    return "".join(parts)


def _where(splits: dict[str, Split], classes: Sequence[str], split: str, row: int) -> str:
    s = splits[split]
    synthetic = ", synthetic" if s.source[row] != REAL else ""
    return f"{split}:{s.origin[row] or row} {classes[int(s.labels[row])]}{synthetic}"


def _pool_duplicates(inputs: ReportInputs, images: html.Images, facts: dict) -> str:
    pool = inputs.pool.faces
    evals = {name: inputs.dataset[name] for name in inputs.eval_names}
    groups, _ = identical_groups({"pool": pool, **evals})
    with_eval = [g for g in groups if any(s == "pool" for s, _ in g) and any(s != "pool" for s, _ in g)]
    within = [g for g in groups if all(s == "pool" for s, _ in g)]
    facts["pool_duplicates"] = {
        "pool_vs_eval_groups": len(with_eval),
        "within_pool_groups": len(within),
        "eval_splits": list(evals),
    }
    lookup = {"pool": pool, **evals}
    return group_rows(
        f"Pool faces identical to a face of {', '.join(evals) or 'no evaluation split'}",
        with_eval,
        lookup,
        inputs.classes,
        images,
        "pool-eval",
    ) + group_rows("Identical faces within the pool", within, lookup, inputs.classes, images, "pool-pool")


# --- the judge --------------------------------------------------------------------------------------------


def judge(inputs: ReportInputs, images: html.Images, facts: dict, seed: int) -> tuple[str, str, str] | None:
    pool = inputs.pool
    if pool is None or not pool.judgement:
        return None
    records = pool.judgement
    classes = inputs.classes
    judge_classes = list(records[0].get("classes") or classes)
    confusion = np.zeros((len(classes), len(judge_classes)), np.int64)
    agreement = {c: {"n": 0, "agree": 0, "mean_p_intended": 0.0} for c in classes}
    unknown = Counter()
    for r in records:
        if r["class"] not in agreement or r["judged"] not in judge_classes:
            unknown[f"{r['class']}->{r['judged']}"] += 1
            continue
        a = agreement[r["class"]]
        a["n"] += 1
        a["agree"] += r["judged"] == r["class"]
        a["mean_p_intended"] += float(r["p_intended"])
        confusion[classes.index(r["class"]), judge_classes.index(r["judged"])] += 1
    for a in agreement.values():
        a["rate"] = a["agree"] / a["n"] if a["n"] else 0.0
        a["mean_p_intended"] = a["mean_p_intended"] / a["n"] if a["n"] else 0.0
    judges = sorted(
        {f"{r.get('judge', {}).get('model', '?')} ({r.get('judge', {}).get('fingerprint', '?')})" for r in records}
    )
    facts["judge"] = {
        "judges": judges,
        "agreement": agreement,
        "confusion": confusion.tolist(),
        "judge_classes": judge_classes,
        "records": len(records),
        "unmatched": sum(unknown.values()),
    }
    n, agree = sum(a["n"] for a in agreement.values()), sum(a["agree"] for a in agreement.values())
    rows = [
        [
            html.Cell(c),
            html.num(agreement[c]["n"], f"judge.agreement.{c}.n"),
            html.num(agreement[c]["agree"], f"judge.agreement.{c}.agree"),
            html.pct(agreement[c]["rate"], f"judge.agreement.{c}.rate", digits=1),
            html.num(agreement[c]["mean_p_intended"], f"judge.agreement.{c}.mean_p_intended", digits=3),
        ]
        for c in classes
        if agreement[c]["n"]
    ]
    total = ["all", html.num(n), html.num(agree), html.pct(agree / max(n, 1), digits=1), ""]
    header = [
        "intended class",
        html.Cell("faces judged", numeric=True),
        html.Cell("judged as intended", numeric=True),
        html.Cell("agreement %", numeric=True),
        html.Cell("mean p(intended)", numeric=True),
    ]
    plots.confusion_figure(
        images.path("judge-confusion.png"),
        confusion,
        classes,
        "Intended vs judged class",
        true_label="intended class",
        predicted_label="judged class",
        columns=judge_classes,
    )
    parts = [
        html.note(f"Judge: {', '.join(judges)}; {len(records):,} faces judged."),
        html.table(header, rows, table_id="judge", total=total, caption="Does the judge see the intended emotion?"),
        images.figure("judge-confusion.png", "intended vs judged confusion"),
    ]
    if unknown:
        parts.append(
            html.note(
                f"{sum(unknown.values())} records name a class outside the lists "
                f"(first: {', '.join(list(unknown)[:3])}); they are left out above.",
                warn=True,
            )
        )
    parts.append(_lowest_judged(inputs, images, records))
    return "judge", "Judge", "".join(parts)


def _lowest_judged(inputs: ReportInputs, images: html.Images, records: list[dict]) -> str:
    row_of = inputs.pool.row_of()
    blocks, missing = [], 0
    for label, name in enumerate(inputs.classes):
        mine = sorted((r for r in records if r["class"] == name), key=lambda r: float(r["p_intended"]))
        items = []
        for k, r in enumerate(mine[:LOWEST_JUDGED]):
            row = row_of.get(r["file"])
            if row is None:
                missing += 1
                continue
            src = images.save_png(f"judged-{label}-{k}.png", inputs.pool.faces.images[row])
            items.append((src, f"{r['judged']} {float(r['p_intended']):.2f}", r["file"]))
        if items:
            blocks.append((_class_label(inputs.classes, label), items))
    parts = [
        "<h3>Lowest-scored faces per class</h3>",
        html.note("Under each face: the class the judge saw and its probability for the intended class."),
        html.labelled_thumbs(blocks),
    ]
    if missing:
        parts.append(html.note(f"{missing} judged files are not in the pool folder any more.", warn=True))
    return "".join(parts)


# --- provenance -------------------------------------------------------------------------------------------

PROVENANCE_KEYS = (
    "format",
    "format_version",
    "writer",
    "command",
    "created",
    "fingerprint",
    "source_dataset",
    "pool",
    "seed",
    "target",
    "topped_up_splits",
    "forced_synthetic_eval",
    "synthetic_in_eval",
    "notes",
    "skipped_source_files",
    "layout",
    "image_size",
    "classes",
)


def provenance(inputs: ReportInputs, images: html.Images, facts: dict, seed: int) -> tuple[str, str, str]:
    attrs = inputs.dataset.attrs
    pairs = [(key, _show(attrs[key])) for key in PROVENANCE_KEYS if key in attrs]
    if attrs.get("skipped"):
        pairs.append(("skipped files", f"{len(attrs['skipped'])} (first: {attrs['skipped'][:3]})"))
    parts = [f"<h3>{html.esc(inputs.path)}</h3>", html.key_values(pairs, "provenance-data")]
    synthetic = Split.concat([s.take(s.source != REAL) for s in inputs.dataset.splits.values()])
    if len(synthetic):
        models = Counter(synthetic.model.tolist())
        parts.append(
            html.note(
                "Synthetic rows by generator model: "
                + ", ".join(f"{m or '(none recorded)'} {k:,}" for m, k in models.most_common())
            )
        )
    pool = inputs.pool
    if pool is not None:
        parts.append(f"<h3>Pool {html.esc(pool.path)}</h3>")
        if pool.settings:
            parts.append(html.key_values([(k, _show(v)) for k, v in sorted(pool.settings.items())], "provenance-pool"))
        parts.append(_generation_provenance(pool.records))
    return "provenance", "Provenance", "".join(parts)


def _generation_provenance(records: list[dict]) -> str:
    generated = [r for r in records if "prompt" in r]
    if not generated:
        return ""
    values = {
        key: Counter(str(r.get(key)) for r in generated)
        for key in ("model", "run_seed", "prompts_digest", "scheduler", "steps", "guidance", "height", "vae", "lora")
    }
    pairs = [
        (key, ", ".join(f"{v} ({k:,})" for v, k in c.most_common())) for key, c in values.items() if set(c) != {"None"}
    ]
    times = [r["time_s"] for r in generated if isinstance(r.get("time_s"), (int, float))]
    if times:
        pairs.append(("seconds per image (mean)", f"{np.mean(times):.3f}"))
    template = _default_template(values["prompts_digest"])
    if template:
        pairs.append(("prompt template (the shipped default)", template))
    pairs.append(("negative prompt", generated[0].get("negative_prompt", "")))
    examples: dict[str, list[dict]] = defaultdict(list)
    for r in generated:
        if len(examples[r["class"]]) < 2:
            examples[r["class"]].append(r)
    rows = [
        [
            r["class"],
            html.Cell(str(r["index"]), r["index"], True),
            html.Cell(str(r["seed"]), r["seed"], True),
            html.Cell(r["prompt"]),
        ]
        for rs in examples.values()
        for r in rs
    ]
    return html.key_values(pairs, "provenance-generation") + html.table(
        ["class", html.Cell("index", numeric=True), html.Cell("image seed", numeric=True), "prompt"],
        rows,
        table_id="prompts",
        caption="Example prompts (regenerate any image from its seed)",
    )


def _default_template(digests: Counter) -> str | None:
    from fer_synth.generation.prompts import load_prompts

    default = load_prompts(None)
    return default.template if default.digest in digests else None


def _show(value: object) -> str:
    if isinstance(value, list):
        return "; ".join(map(str, value)) if all(isinstance(v, str) for v in value) else str(value)
    return str(value)


#: The dataset page, in reading order. Near duplicates (issue 14) become one more entry here.
SECTIONS: tuple[Section, ...] = (distribution, contact_sheets, run_outcomes, duplicates, judge, provenance)
