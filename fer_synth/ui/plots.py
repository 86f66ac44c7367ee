"""Figures for reports and runs, made to be read: titles, labelled axes, class names, one colour per class.

matplotlib is imported on first use (it costs ~0.5 s) with the Agg backend, so nothing here needs a display.
A class has the same colour on every figure of every page (:func:`class_colours`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from fer_synth.core.atomic import atomic_file
from fer_synth.core.images import printable

#: FER2013's classes (and FER+'s contempt) in colours a reader can tell apart; other names get tab10's.
CLASS_COLOURS: dict[str, str] = {
    "angry": "#d62728",
    "disgust": "#6b8e23",
    "fear": "#9467bd",
    "happy": "#f0a202",
    "sad": "#1f77b4",
    "surprise": "#17becf",
    "neutral": "#7f7f7f",
    "contempt": "#e377c2",
}
_FALLBACK = ("#8c564b", "#bcbd22", "#ff7f0e", "#2ca02c", "#393b79", "#ad494a")


def class_colours(classes: Sequence[str]) -> list[str]:
    """The colour of each class name (a name outside :data:`CLASS_COLOURS` gets a fixed spare one by position)."""
    return [CLASS_COLOURS.get(name, _FALLBACK[i % len(_FALLBACK)]) for i, name in enumerate(classes)]


def pyplot():
    """matplotlib.pyplot on the Agg backend, with the reports' style."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "font.size": 10,
            "axes.titlesize": 11,
            "axes.titleweight": "bold",
            "axes.spines.top": False,
            "axes.spines.right": False,
            "figure.dpi": 100,
        }
    )
    return plt


def save(fig, path: str | Path, dpi: int = 100) -> Path:
    """Save ``fig`` as PNG atomically and close it."""
    from matplotlib.text import Text

    plt = pyplot()
    # A title naming a file or run folder that is not valid UTF-8 holds surrogates, which the font renderer refuses
    # (a traceback after the work is done): every text is drawn with those bytes as \xNN escapes.
    for text in fig.findobj(Text):
        text.set_text(printable(text.get_text()))
    fig.tight_layout()
    with atomic_file(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)
    return Path(path)


def split_bars(
    path: str | Path,
    classes: Sequence[str],
    panels: Sequence[tuple[str, Sequence[int], Sequence[int] | None]],
    base_label: str = "real",
    extra_label: str = "synthetic",
    title: str = "",
) -> Path:
    """One panel per split: a bar per class (its colour), ``extra`` stacked on ``base`` hatched and paler."""
    plt = pyplot()
    colours = class_colours(classes)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    x = np.arange(len(classes))
    for ax, (name, base, extra) in zip(axes[0], panels):
        ax.bar(x, base, color=colours, edgecolor="black", linewidth=0.4, label=base_label)
        if extra is not None and np.any(extra):
            ax.bar(
                x,
                extra,
                bottom=base,
                color=colours,
                alpha=0.35,
                hatch="///",
                edgecolor="black",
                linewidth=0.4,
                label=extra_label,
            )
            ax.set_ylim(0, 1.2 * float(np.max(np.add(base, extra))))  # room for the legend above the bars
            from matplotlib.patches import Patch

            ax.legend(
                handles=[
                    Patch(facecolor="#9a9a9a", edgecolor="black", label=base_label),
                    Patch(facecolor="#9a9a9a", alpha=0.35, hatch="///", edgecolor="black", label=extra_label),
                ],
                loc="upper center",
                ncol=2,
                fontsize=8,
                frameon=False,
            )
        ax.set_xticks(x, classes, rotation=35, ha="right")
        ax.set_ylabel("images")
        ax.set_title(name)
        ax.grid(axis="y", alpha=0.3)
        ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{int(v):,}"))
    if title:
        fig.suptitle(title, fontweight="bold")
    return save(fig, path)


def confusion_figure(
    path: str | Path,
    confusion: Sequence[Sequence[int]],
    classes: Sequence[str],
    title: str = "",
    true_label: str = "true class",
    predicted_label: str = "predicted class",
    columns: Sequence[str] | None = None,
) -> Path:
    """Counts and row-normalised rates side by side (rows: ``true_label``, columns: ``predicted_label``)."""
    plt = pyplot()
    counts = np.asarray(confusion, dtype=np.int64)
    columns = list(columns or classes)
    rates = counts / np.clip(counts.sum(1, keepdims=True), 1, None)
    cell = 0.55
    fig, axes = plt.subplots(1, 2, figsize=(2 * (1.9 + cell * len(columns)), 1.6 + cell * len(classes)))
    panels = ((axes[0], counts, "counts", "{:,}"), (axes[1], rates, "row-normalised (share of the row)", "{:.0%}"))
    for ax, values, panel, fmt in panels:
        scaled = values / max(values.max(), 1) if values is counts else values
        ax.imshow(scaled, cmap="Blues", vmin=0, vmax=1)
        ax.set_xticks(range(len(columns)), columns, rotation=40, ha="right")
        ax.set_yticks(range(len(classes)), classes)
        ax.set_xlabel(predicted_label)
        ax.set_ylabel(true_label)
        ax.set_title(panel)
        for i in range(values.shape[0]):
            for j in range(values.shape[1]):
                ax.text(
                    j,
                    i,
                    fmt.format(values[i, j]),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if scaled[i, j] > 0.55 else "black" if values[i, j] else "#b0b0b0",
                )
        ax.spines[:].set_visible(False)
    if title:
        fig.suptitle(title, fontweight="bold")
    return save(fig, path)


def class_metric_bars(
    path: str | Path,
    classes: Sequence[str],
    metrics: Mapping[str, Sequence[float]],
    title: str = "",
    ylabel: str = "score",
) -> Path:
    """One panel per metric (e.g. precision, recall, F1), a bar per class in its colour, values on top."""
    plt = pyplot()
    colours = class_colours(classes)
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.9 * len(metrics), 3.2), squeeze=False)
    x = np.arange(len(classes))
    for ax, (name, values) in zip(axes[0], metrics.items()):
        bars = ax.bar(x, values, color=colours, edgecolor="black", linewidth=0.4)
        ax.bar_label(bars, [f"{v:.2f}" for v in values], fontsize=7, padding=1)
        ax.set_ylim(0, 1.08)
        ax.set_xticks(x, classes, rotation=35, ha="right")
        ax.set_ylabel(ylabel)
        ax.set_title(name)
        ax.grid(axis="y", alpha=0.3)
    if title:
        fig.suptitle(title, fontweight="bold")
    return save(fig, path)


def grouped_bars(
    path: str | Path,
    classes: Sequence[str],
    series: Mapping[str, Sequence[float]],
    title: str = "",
    ylabel: str = "score",
    errors: Mapping[str, Sequence] | None = None,
) -> Path:
    """Per class, one bar per series (e.g. models), series told apart by grey level; class names on the axis.
    ``errors``: per series, an error bar's half-length per class (e.g. a standard deviation over seeds), or two rows
    [below, above] per class (an interval around the value)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(min(11.0, 3.0 + 0.35 * len(classes) * len(series)), 3.6))
    x = np.arange(len(classes))
    width = 0.8 / max(1, len(series))
    shades = plt.cm.viridis(np.linspace(0.15, 0.85, len(series)))
    for k, ((name, values), shade) in enumerate(zip(series.items(), shades)):
        ax.bar(
            x - 0.4 + width * (k + 0.5),
            values,
            width,
            label=name,
            color=shade,
            edgecolor="black",
            linewidth=0.3,
            yerr=None if errors is None else errors[name],
            capsize=2,
        )
    ax.set_xticks(x, classes, rotation=35, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1.0)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    if title:
        ax.set_title(title)
    return save(fig, path)


def face_grid(
    images: Sequence[np.ndarray] | np.ndarray,
    columns: int,
    rows: int | None = None,
    gap: int = 2,
    background: int = 255,
) -> np.ndarray:
    """Faces ([N, H, W] uint8) tiled ``columns`` wide with ``gap`` pixels between them; empty cells stay blank."""
    images = np.asarray(images, dtype=np.uint8)
    n, height, width = images.shape if len(images) else (0, 48, 48)
    rows = rows or max(1, -(-n // columns))
    grid = np.full((rows * (height + gap) - gap, columns * (width + gap) - gap), background, np.uint8)
    for k in range(min(n, rows * columns)):
        r, c = divmod(k, columns)
        grid[r * (height + gap) : r * (height + gap) + height, c * (width + gap) : c * (width + gap) + width] = images[
            k
        ]
    return grid


def stacked_bars(
    path: str | Path,
    categories: Sequence[str],
    series: Mapping[str, Sequence[int]],
    colours: Sequence[str],
    title: str = "",
    xlabel: str = "images",
) -> Path:
    """Horizontal bars, one per category, split into ``series`` (e.g. kept and each rejection reason)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9.0, 0.5 * len(categories) + 1.4))
    y = np.arange(len(categories))
    left = np.zeros(len(categories))
    for (name, values), colour in zip(series.items(), colours):
        ax.barh(y, values, left=left, color=colour, edgecolor="black", linewidth=0.3, label=name)
        left += np.asarray(values, dtype=float)
    ax.set_yticks(y, categories)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", alpha=0.3)
    ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{int(v):,}"))
    ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    if title:
        ax.set_title(title)
    return save(fig, path)
