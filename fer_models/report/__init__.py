"""The runs report (``fer-models report``): a static HTML page over runs, ensembles and comparisons (runs)."""
