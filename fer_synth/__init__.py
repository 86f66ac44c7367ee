"""fer_synth: synthetic faces for FER2013 class balancing, and the HDF5 data contract."""

__version__ = "0.1.0"
