"""The classic rebalancing methods on a train split, with imbalanced-learn: random oversampling (ROS), SMOTE
(Chawla et al. 2002, JAIR 16), ADASYN (He et al. 2008, IJCNN), and SMOTE followed by a cleaning step: Tomek links
(Tomek 1976) or edited nearest neighbours (ENN, Wilson 1972), as in Batista et al. 2004 (SIGKDD Explorations 6).

The samplers see each face as a vector of its pixels (float32, 2,304 values for 48x48). Every added row is
SYNTHETIC; its ``origin`` is the method that made it (``ros``, ``smote``, ``adasyn``), ``model`` the sampler and
its settings, ``seed`` the seed, and ``parents`` the origins of the real rows it copies (ROS: one) or interpolates
(SMOTE, ADASYN: a row and one of its k nearest neighbours of the same class), so leakage can be audited. New pixels
are rounded to uint8.

Cleaning removes rows of every class, as imbalanced-learn's ``SMOTETomek`` and ``SMOTEENN`` do by default (the
two steps are run one after the other here so that what was removed is known): each row removed is counted per
class, real and synthetic apart, and the first few real ones are named. Their neighbour search is scikit-learn's
exact one over the whole resampled split: minutes of one core for FER2013 (docs/rebalancing.md).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import version

import numpy as np

from fer_synth.core.dataset import SYNTHETIC, Split
from fer_synth.core.errors import InvalidOptionError
from fer_synth.core.registry import Registry

logger = logging.getLogger(__name__)

#: What ``balance`` does when no other method is named: top up with generated faces from a pool.
GENERATED = "generated"
K_NEIGHBORS = 5  # SMOTE's and ADASYN's neighbours (the papers' and imbalanced-learn's default)
EXAMPLES = 5  # removed rows named in a note


@dataclass
class Resampled:
    """A train split after a method: the real rows it kept (in their order), then the rows it added."""

    split: Split
    method: str
    sampler: str  # the sampler and its settings, as recorded in each added row's ``model``
    added: np.ndarray  # per class
    removed_real: np.ndarray  # per class, by the cleaning step
    removed_synthetic: np.ndarray  # per class: rows the oversampler made and the cleaning step removed again
    removed_examples: list[str] = field(default_factory=list)  # origins of the first real rows removed

    def notes(self) -> list[str]:
        """One line per fact a user must hear: what the cleaning step removed."""
        classes = self.split.classes
        if not (self.removed_real.sum() or self.removed_synthetic.sum()):
            return [f"{self.method}: the cleaning step removed no row"] if "-" in self.method else []
        per_class = ", ".join(
            f"{c} {r:,} real + {s:,} synthetic"
            for c, r, s in zip(classes, self.removed_real, self.removed_synthetic)
            if r or s
        )
        return [
            (
                f"{self.method}: the cleaning step removed {int(self.removed_real.sum()):,} real and "
                f"{int(self.removed_synthetic.sum()):,} synthetic train rows ({per_class}); first real rows removed: "
                f"{', '.join(self.removed_examples) or 'none'}"
            )
        ]


@dataclass(frozen=True)
class Method:
    """An oversampler, optionally followed by a cleaning step."""

    oversampler: Callable[[dict, int], object]  # (sampling strategy, seed) -> a sampler with ``parents_``
    cleaner: Callable[[], object] | None = None  # -> an imbalanced-learn under-sampler with ``sample_indices_``


METHODS: Registry[Method] = Registry("balance method", InvalidOptionError)


def method_names() -> list[str]:
    """Every ``balance --method``: generated first (the default), then these."""
    return [GENERATED, *METHODS.names()]


def check_method(method: str) -> None:
    if method != GENERATED:
        METHODS.get(method)


def _ros(strategy: dict, seed: int):
    from imblearn.over_sampling import RandomOverSampler

    class TracedRandomOverSampler(RandomOverSampler):
        """RandomOverSampler; ``parents_``: the row each added row copies."""

        def _fit_resample(self, X, y):
            resampled = super()._fit_resample(X, y)
            self.parents_ = self.sample_indices_[len(y) :, None]
            return resampled

    return TracedRandomOverSampler(sampling_strategy=strategy, random_state=seed)


def _smote(strategy: dict, seed: int):
    from imblearn.over_sampling import SMOTE

    class TracedSMOTE(SMOTE):
        """SMOTE; ``parents_``: the two rows each added row interpolates (its base row, then the neighbour).

        ``_generate_samples`` is where imbalanced-learn's own SMOTE variants (SMOTENC, SVMSMOTE) hook in; it gets
        the rows of one class, the base rows' positions among them and each one's neighbour."""

        def _fit_resample(self, X, y):
            self._labels, self._parents = y, []
            resampled = super()._fit_resample(X, y)
            self.parents_ = np.concatenate(self._parents) if self._parents else np.zeros((0, 2), np.int64)
            return resampled

        def _generate_samples(self, X, nn_data, nn_num, rows, cols, steps, y_type=None, y=None):
            members = np.flatnonzero(self._labels == y_type)  # X and nn_data are these rows, in this order
            self._parents.append(np.stack([members[rows], members[nn_num[rows, cols]]], axis=1))
            return super()._generate_samples(X, nn_data, nn_num, rows, cols, steps, y_type, y)

    return TracedSMOTE(sampling_strategy=strategy, random_state=seed, k_neighbors=K_NEIGHBORS)


def _adasyn(strategy: dict, seed: int):
    from imblearn.over_sampling import ADASYN
    from sklearn.neighbors import NearestNeighbors

    class RecordingNeighbours(NearestNeighbors):
        """Exact neighbours (scikit-learn's), remembering each query's answer."""

        def kneighbors(self, X=None, n_neighbors=None, return_distance=True):
            found = super().kneighbors(X, n_neighbors, return_distance)
            self.__dict__.setdefault("answers", []).append(found[1] if return_distance else found)
            return found

    class TracedADASYN(ADASYN):
        """ADASYN; ``parents_``: the two rows each added row interpolates.

        ADASYN draws inline, without a hook: per class (in ``sampling_strategy_`` order) it asks the neighbours
        of the class's rows among all rows (the share of other classes sets how many rows each one makes: its
        rows are consecutive), then among the class's rows, and draws the neighbour and the step from one
        ``RandomState(seed)``. Those draws are replayed here and the samples they give are checked against
        imbalanced-learn's, value for value, so parents are never guessed."""

        def _fit_resample(self, X, y):
            self.n_neighbors = RecordingNeighbours(n_neighbors=K_NEIGHBORS + 1)  # ADASYN works on a clone: nn_
            X_out, y_out = super()._fit_resample(X, y)
            answers, rng, parents, start = iter(self.nn_.answers), np.random.RandomState(seed), [], len(y)
            for label, n_wanted in self.sampling_strategy_.items():
                if not n_wanted:
                    continue
                members = np.flatnonzero(y == label)
                share = np.sum(y[next(answers)[:, 1:]] != label, axis=1) / K_NEIGHBORS
                share /= np.sum(share)
                n_made = np.rint(share * n_wanted).astype(int)
                neighbours = next(answers)[:, 1:]
                rows = np.repeat(np.arange(len(members)), n_made)
                cols = rng.choice(K_NEIGHBORS, size=len(rows))
                steps = rng.uniform(size=(len(rows), 1))
                base, partner = members[rows], members[neighbours[rows, cols]]
                expected = (X[base] + steps * (X[partner] - X[base])).astype(X.dtype)
                if not np.array_equal(expected, X_out[start : start + len(rows)]):
                    raise RuntimeError(
                        "ADASYN's draws could not be replayed: this imbalanced-learn version draws "
                        "differently; pin the tested one (see pyproject.toml)"
                    )
                parents.append(np.stack([base, partner], axis=1))
                start += len(rows)
            self.parents_ = np.concatenate(parents) if parents else np.zeros((0, 2), np.int64)
            return X_out, y_out

    return TracedADASYN(sampling_strategy=strategy, random_state=seed)


def _tomek_links():
    from imblearn.under_sampling import TomekLinks

    return TomekLinks(sampling_strategy="all")


def _edited_nearest_neighbours():
    from imblearn.under_sampling import EditedNearestNeighbours

    return EditedNearestNeighbours(sampling_strategy="all", n_neighbors=3)


METHODS.register("ros")(Method(_ros))
METHODS.register("smote")(Method(_smote))
METHODS.register("adasyn")(Method(_adasyn))
METHODS.register("smote-tomek")(Method(_smote, _tomek_links))
METHODS.register("smote-enn")(Method(_smote, _edited_nearest_neighbours))


def sampling_strategy(counts: np.ndarray, goal: int) -> dict[int, int]:
    """imbalanced-learn's wanted rows per class: ``goal`` for every class that has rows and fewer than that."""
    return {label: goal for label, n in enumerate(counts) if 0 < n < goal}


def oversample(train: Split, method: str, goal: int, seed: int = 0) -> Resampled:
    """Bring every class of ``train`` below ``goal`` rows up to it with ``method`` (see :data:`METHODS`), then
    clean if the method says so. ``train``'s own rows are never changed; a class without rows stays empty."""
    spec = METHODS.get(method)
    counts = train.counts()
    strategy = sampling_strategy(counts, goal)
    too_few = {train.classes[c]: int(counts[c]) for c in strategy if counts[c] <= K_NEIGHBORS and method != "ros"}
    if too_few:
        listing = ", ".join(f"{c} ({n})" for c, n in too_few.items())
        raise InvalidOptionError(
            f"--method {method} interpolates between a row and its {K_NEIGHBORS} nearest rows of "
            f"the same class, and {listing} has too few rows; use --method ros"
        )
    X = train.images.reshape(len(train), -1).astype(np.float32)
    sampler = spec.oversampler(strategy, seed)
    if strategy:
        try:
            X_all, y_all = sampler.fit_resample(X, train.labels)
        except (RuntimeError, ValueError) as e:
            # ADASYN refuses a class whose rows' neighbours are all of that class, or whose deficit, spread over its
            # rows by their share of other classes' neighbours, rounds to nothing
            if method == "adasyn" and "replayed" not in str(e):
                raise InvalidOptionError(f"--method adasyn cannot make these rows ({e}); use --method smote") from None
            raise
        parents = sampler.parents_
    else:
        X_all, y_all, parents = X, train.labels, np.zeros((0, 1), np.int64)
    n_real = len(train)
    keep = np.arange(len(y_all))
    cleaner = spec.cleaner() if spec.cleaner is not None else None
    if cleaner is not None:
        cleaner.fit_resample(X_all, y_all)
        keep = np.sort(cleaner.sample_indices_)
    removed = np.setdiff1d(np.arange(len(y_all)), keep)
    n_classes = len(train.classes)
    removed_real = np.bincount(y_all[removed[removed < n_real]], minlength=n_classes)
    removed_synthetic = np.bincount(y_all[removed[removed >= n_real]], minlength=n_classes)
    new = keep[keep >= n_real] - n_real
    name = (
        f"imbalanced-learn {version('imbalanced-learn')} {type(sampler).__name__.removeprefix('Traced')}"
        f"{'' if method == 'ros' else f'(k_neighbors={K_NEIGHBORS})'}"
        f"{f' + {type(cleaner).__name__}' if cleaner is not None else ''}"
    )
    origins = train.origin
    added = Split(
        np.clip(np.rint(X_all[n_real:][new]), 0, 255).astype(np.uint8).reshape(-1, *train.images.shape[1:]),
        y_all[n_real:][new],
        source=np.full(len(new), SYNTHETIC, np.uint8),
        origin=[method.split("-")[0]] * len(new),
        seed=np.full(len(new), seed, np.int64),
        model=[name] * len(new),
        parents=[json.dumps([str(origins[p]) for p in row]) for row in parents[new]],
        classes=train.classes,
    )
    real = train.take(keep[keep < n_real])
    kept = Split.concat([real, added])
    logger.info(f"{method}: {len(train):,} train rows -> {len(kept):,} ({len(added):,} added)")
    return Resampled(
        kept,
        method,
        name,
        np.bincount(added.labels, minlength=n_classes),
        removed_real,
        removed_synthetic,
        [str(origins[r]) for r in removed[removed < n_real][:EXAMPLES]],
    )
