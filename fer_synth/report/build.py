"""``fer-synth report``: one static HTML page about a dataset and, optionally, the pool it was topped up from."""

from __future__ import annotations

import json
import logging
import os
import time
from importlib.metadata import version
from pathlib import Path

from fer_synth.core.atomic import write_bytes
from fer_synth.report.inputs import load_inputs
from fer_synth.report.sections import SECTIONS
from fer_synth.ui import html

logger = logging.getLogger(__name__)

FACTS = "report.json"


def dataset_report(
    dataset: str | os.PathLike,
    pool: str | os.PathLike | None = None,
    out: str | os.PathLike = html.DEFAULT_OUT,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Write ``out/index.html`` (+ ``img/``, ``report.json``) about ``dataset`` and ``pool``; return the page's path.

    ``seed`` picks the faces of the contact sheets and rejection examples. ``out`` must be new, empty or an
    earlier report (which is replaced), or ``overwrite`` replaces what it holds; it never overlaps an input.
    """
    html.prepare_report_folder(out, (dataset, pool), overwrite)
    started = time.perf_counter()
    inputs = load_inputs(dataset, pool)
    logger.info(
        f"read {inputs.dataset.num_images:,} faces"
        + (f" and a pool of {len(inputs.pool.faces):,}" if inputs.pool else "")
        + f" in {time.perf_counter() - started:.1f} s"
    )
    sizes = ", ".join(f"{name} {len(split):,}" for name, split in inputs.dataset.splits.items())
    subtitle = [f"{inputs.path} ({inputs.dataset.attrs.get('layout', 'fer-synth HDF5')}): {sizes}"]
    if inputs.pool is not None:
        subtitle.append(f"pool folder {inputs.pool.path}: {len(inputs.pool.faces):,} faces")
    subtitle.append(f"made by fer-synth {version('fer-synth')} (seed {seed})")
    page = html.Page(f"Dataset report: {inputs.path.name}", subtitle)
    facts: dict = {
        "dataset": str(inputs.path),
        "pool": str(inputs.pool.path) if inputs.pool else None,
        "classes": inputs.classes,
        "seed": seed,
    }
    with html.report_images(out) as images:
        for section in SECTIONS:
            shown = section(inputs, images, facts, seed)
            if shown is not None:
                page.add(*shown)
    write_bytes(Path(out) / FACTS, (json.dumps(facts, indent=2, default=str) + "\n").encode())
    return html.write_page(out, page)
