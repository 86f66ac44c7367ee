"""fer_models: train, evaluate and ensemble facial expression recognition models on fer_synth's HDF5 files.

The main functions, importable from here (each loads its module on first use)::

    from fer_models import create_model, list_models, make_config, train
    from fer_models import evaluate, build_ensemble, load_model
    from fer_models import load_classifier, predict_media   # any model -> probabilities; faces in photos/videos
"""

from importlib.metadata import version

from fer_synth.core.lazy import lazy_exports

__version__ = version("fer-synth")  # one version for both packages: pyproject.toml's

__all__, __getattr__ = lazy_exports(
    __name__,
    {
        "create_model": "fer_models.models",
        "list_models": "fer_models.models",
        "TrainConfig": "fer_models.training.config",
        "make_config": "fer_models.training.config",
        "train": "fer_models.training.loop",
        "load_split": "fer_models.data",
        "predict_proba": "fer_models.inference.probabilities",
        "load_model": "fer_models.checkpoint",
        "load_classifier": "fer_models.inference.classifier",
        "predict_media": "fer_models.inference.media",
        "evaluate": "fer_models.evaluation.evaluate",
        "build_ensemble": "fer_models.evaluation.ensemble",
        "load_ensemble": "fer_models.evaluation.ensemble",
        "classification_metrics": "fer_models.evaluation.metrics",
    },
)
