"""The foundation both packages share: the data contract and plumbing; it imports nothing else of the project,
and nothing that draws (what a person sees is :mod:`fer_synth.ui`).

The data contract: classes (class lists, labels and aliases), dataset (``Split``/``Dataset`` column arrays), store
(the HDF5 contract), manifest (JSONL shards and run settings), folders (image folders: pools and exports), judgement
(a pool's ``judgement.jsonl`` and selection policies), images (image files). Plumbing: errors (what the CLIs show as
one line), atomic (atomic writes), outputs (the output-folder rule, locks), registry (named factories), env (device
and offline), lazy (cheap package namespaces).
"""

from fer_synth.core.lazy import lazy_exports

__all__, __getattr__ = lazy_exports(
    __name__,
    {
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
    },
)
