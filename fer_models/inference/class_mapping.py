"""A model used on data of other classes: on the classes both have, explicitly.

The built-in model predicts FER+'s eight classes (contempt included); a FER2013 pool or dataset has seven. Such a
model is used on the classes it shares with the data: its probabilities are restricted to them and renormalised
to sum to one (contempt dropped for a seven-class pool), and rows labelled with a class the model does not predict
(contempt rows, for a seven-class model on FER+ data) cannot be scored and are left out. Every output that uses a
:class:`ClassMapping` states it (:meth:`ClassMapping.describe`). Names are matched by name, never by index.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fer_synth.core.errors import FerError

#: Fewer shared classes than this is not a use of the model on the data but a mistake.
MIN_SHARED = 2


@dataclass(frozen=True)
class ClassMapping:
    """The classes a model (``model``) and the data (``data``) share, in the data's order."""

    model: tuple[str, ...]
    data: tuple[str, ...]

    @property
    def shared(self) -> tuple[str, ...]:
        return tuple(c for c in self.data if c in self.model)

    @property
    def dropped(self) -> tuple[str, ...]:
        """The model's classes the data does not have: their probability is dropped and the rest renormalised."""
        return tuple(c for c in self.model if c not in self.data)

    @property
    def unscorable(self) -> tuple[str, ...]:
        """The data's classes the model does not predict: rows with these labels cannot be scored."""
        return tuple(c for c in self.data if c not in self.model)

    @property
    def identity(self) -> bool:
        return self.model == self.data

    def probs(self, probs: np.ndarray) -> np.ndarray:
        """Model probabilities [N, len(model)] -> [N, len(shared)], renormalised over the shared classes."""
        if self.identity:
            return probs
        kept = probs[:, [self.model.index(c) for c in self.shared]]
        total = kept.sum(1, keepdims=True)
        # A row that put all its mass on dropped classes has no preference among the shared ones.
        return np.where(total > 0, kept / np.where(total > 0, total, 1), 1 / len(self.shared)).astype(np.float32)

    def rows(self, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(kept row indices, their labels re-indexed into :attr:`shared`) for labels indexing :attr:`data`."""
        lookup = np.array([self.shared.index(c) if c in self.shared else -1 for c in self.data])
        mapped = lookup[np.asarray(labels, np.int64)]
        kept = np.flatnonzero(mapped >= 0)
        return kept, mapped[kept]

    def describe(self) -> dict:
        """What outputs record about the mapping (empty lists when model and data agree)."""
        return {
            "classes": list(self.shared),
            "model_classes": list(self.model),
            "dropped_model_classes": list(self.dropped),
            "unscorable_data_classes": list(self.unscorable),
            "renormalised": bool(self.dropped),
        }

    def note(self) -> str:
        """One sentence for logs and reports, or '' when model and data agree."""
        parts = []
        if self.dropped:
            parts.append(
                f"the model's {', '.join(self.dropped)} dropped and its probabilities renormalised over the "
                f"{len(self.shared)} shared classes"
            )
        if self.unscorable:
            parts.append(f"rows labelled {', '.join(self.unscorable)} (which the model does not predict) left out")
        return "; ".join(parts)


def class_mapping(
    model_classes: Sequence[str], data_classes: Sequence[str], model: str = "the model", data: str = "the data"
) -> ClassMapping:
    """The mapping of a model's classes onto the data's; an error when they share fewer than :data:`MIN_SHARED`."""
    mapping = ClassMapping(tuple(model_classes), tuple(data_classes))
    if len(mapping.shared) < MIN_SHARED:
        raise FerError(
            f"{model} predicts {', '.join(mapping.model)} but {data} has {', '.join(mapping.data)}: "
            f"they share {len(mapping.shared)} class(es); use a model trained on these classes"
        )
    return mapping
