"""The foundation both packages share; it imports nothing else of the project.

classes (class lists, labels and aliases), errors (what the CLIs show as one line), dataset (``Split``/``Dataset`` column
arrays), store (the HDF5 contract), manifest (JSONL shards and run settings), images (image files), atomic
(atomic writes), registry (named factories), env (device and offline), log and console (what a person sees),
lazy (cheap package namespaces).
"""

from fer_synth.core.lazy import lazy_exports

__all__, __getattr__ = lazy_exports(__name__, {
    "CLASSES": "fer_synth.core.classes",
    "NUM_CLASSES": "fer_synth.core.classes",
    "resolve": "fer_synth.core.classes",
    "ClassList": "fer_synth.core.classes",
    "FER2013": "fer_synth.core.classes",
    "FERPLUS": "fer_synth.core.classes",
    "FerError": "fer_synth.core.errors",
    "Dataset": "fer_synth.core.dataset",
    "Split": "fer_synth.core.dataset",
    "Registry": "fer_synth.core.registry",
    "atomic_file": "fer_synth.core.atomic",
    "resolve_device": "fer_synth.core.env",
    "setup_logging": "fer_synth.core.log",
})
