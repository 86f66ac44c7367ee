"""Evaluation: metrics, evaluating a run or ensemble on a split (evaluate), ensembles (ensemble), and one recipe
compared across data files and seeds with paired intervals (compare)."""
