"""The dataset and pool report (``fer-synth report``): a static HTML page with its images beside it."""

from fer_synth.report.build import dataset_report

__all__ = ["dataset_report"]
