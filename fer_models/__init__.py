"""fer_models: train, evaluate and ensemble facial expression recognition models on fer_synth's HDF5 files."""

from importlib.metadata import version

__version__ = version("fer-synth")  # one version for both packages: pyproject.toml's
