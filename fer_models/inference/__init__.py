"""Inference: any model spec as a classifier (classifier), a model's probabilities with TTA (probabilities), faces in
photos and videos (media, behind ``fer-models predict``), judging pools (judge) and ONNX export (export)."""
