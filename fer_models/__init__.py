"""fer_models: train, evaluate and ensemble facial expression recognition models on fer_synth's HDF5 files."""

__version__ = "0.1.0"
