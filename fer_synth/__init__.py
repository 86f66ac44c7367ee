"""fer_synth: synthetic faces for FER2013 class balancing, and the HDF5 data contract.

The main functions, importable from here (each loads its module on first use)::

    from fer_synth import read_dataset, dataset_stats, export                # data
    from fer_synth import PackConfig, pack, BalanceConfig, balance
    from fer_synth import GenerateConfig, PipelineOptions, generate          # generation
    from fer_synth import FaceStageConfig, FaceStage, crop_folder            # faces
"""

from importlib.metadata import version

from fer_synth.core.lazy import lazy_exports

__version__ = version("fer-synth")  # one version for both packages: pyproject.toml's

__all__, __getattr__ = lazy_exports(
    __name__,
    {
        "read_dataset": "fer_synth.data.readers",
        "protocol_splits": "fer_synth.data.splits",
        "dataset_stats": "fer_synth.data.stats",
        "balance": "fer_synth.data.balance",
        "BalanceConfig": "fer_synth.data.balance",
        "pack": "fer_synth.data.balance",
        "PackConfig": "fer_synth.data.balance",
        "plan_topup": "fer_synth.data.balance",
        "write_folders": "fer_synth.data.export",
        "export": "fer_synth.data.export",
        "near_duplicate_stats": "fer_synth.data.near_duplicates",
        "load_prompts": "fer_synth.generation.prompts",
        "GenerateConfig": "fer_synth.generation.config",
        "PipelineOptions": "fer_synth.generation.config",
        "build_pipeline": "fer_synth.generation.pipeline",
        "generate": "fer_synth.generation.run",
        "FaceStage": "fer_synth.faces.stage",
        "FaceStageConfig": "fer_synth.faces.stage",
        "crop_folder": "fer_synth.faces.crop",
        "CLASSES": "fer_synth.core.classes",
        "ClassList": "fer_synth.core.classes",
        "FER2013": "fer_synth.core.classes",
        "FERPLUS": "fer_synth.core.classes",
        "Dataset": "fer_synth.core.dataset",
        "Split": "fer_synth.core.dataset",
        "FerError": "fer_synth.core.errors",
    },
)
