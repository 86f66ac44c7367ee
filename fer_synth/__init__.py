"""fer_synth: synthetic faces for FER2013 class balancing, and the HDF5 data contract."""

from importlib.metadata import version

__version__ = version("fer-synth")  # one version for both packages: pyproject.toml's
