#!/usr/bin/env bash
# The whole chain, offline, on a CPU, in a few minutes:
#   stats -> generate (tiny-random) -> crop -> balance -> HDF5 -> train x2 -> evaluate -> ensemble
#
# It exercises the plumbing, not the science: `tiny-random` is a randomly initialised diffusion model whose
# images are NOISE. The face stage therefore (rightly) rejects every one of them, and the top-up
# below uses the raw noise images as its pool so that the later steps have something to run on. For real
# synthetic faces run the GPU recipe in README.md.
#
# usage: bash examples/offline_end_to_end.sh [FER2013_CSV] [WORK_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
fer2013=$(realpath "${1:-$here/../shared/data/fer2013/fer2013.csv.gz}")
face_model=$(realpath "${FACE_MODEL:-$here/../shared/models/face_detection_short_range.tflite}")
work=${2:-example-run}
mkdir -p "$work" && cd "$work"

echo "== 1. the real FER2013: class counts, deficits, duplicates"
fer-synth stats "$fer2013"

echo "== 2. generate 64 'disgust' images with a tiny random model (noise; raw images, no face stage)"
fer-synth generate --model tiny-random --emotion disgust --n 64 --size 64 --steps 4 --no-faces --out generated --seed 0

echo "== 3. the face stage on them: every noise image is rejected (no_face, low_confidence, face_too_small), as it should be"
fer-synth crop generated --out faces --face-model "$face_model"

echo "== 4. top up FER2013's train split to 500 images per class from the raw pool; val/test stay real"
fer-synth balance "$fer2013" --pool generated --target 500 --out fer2013_balanced.h5 --seed 0

echo "== 5. two short training runs (one epoch, at most 90 s each) of the CPU baseline recipe, two seeds"
for seed in 0 1; do
  fer-models train --data fer2013_balanced.h5 --recipe cpu-fast --epochs 1 --time-budget 90 --threads 1 \
    --seed $seed --out runs/seed$seed --no-progress
done

echo "== 6. evaluate one run on the test split (PrivateTest), with and without TTA"
fer-models evaluate runs/seed0 --data fer2013_balanced.h5 --split test

echo "== 7. ensemble both (mean of softmax) and evaluate the saved ensemble"
fer-models ensemble runs/seed0 runs/seed1 --data fer2013_balanced.h5 --out runs/ensemble.json
fer-models evaluate runs/ensemble.json --data fer2013_balanced.h5
