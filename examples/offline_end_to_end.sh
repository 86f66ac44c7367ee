#!/usr/bin/env bash
# From a fresh install to a FER model you can use, offline, on a CPU, in under 10 minutes:
#   stats -> pack -> train (3 CPU-minutes) -> evaluate -> predict on a real photo (your model, then the
#   built-in one) -> an ensemble of both; then the synthesis plumbing at toy size (generate -> crop).
#
# usage: bash examples/offline_end_to_end.sh [FER2013_CSV] [WORK_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
fer2013=$(realpath "${1:-$here/../shared/data/fer2013/fer2013.csv.gz}")
face_model=$(realpath "${FACE_MODEL:-$here/../shared/models/face_detection_short_range.tflite}")
photos="$here/examples/photos"   # a real photograph (NASA, public domain): the astronaut Eileen Collins
work=${2:-example-run}
mkdir -p "$work" && cd "$work"

echo "== 1. the real FER2013: class counts, deficits, duplicates"
fer-synth stats "$fer2013"

echo "== 2. pack it: train = Training, val = PublicTest, test = PrivateTest"
fer-synth pack "$fer2013" --out fer2013.h5

echo "== 3. train the FER2013-label built-in model's recipe for 3 CPU-minutes (bf16 on CPUs that have it; one thread)"
fer-models train --recipe builtin-fer2013 --data fer2013.h5 --epochs 3 --time-budget 180 --out runs/fer2013 --no-progress

echo "== 4. evaluate it once on the test split (PrivateTest), with and without its TTA"
fer-models evaluate runs/fer2013 --data fer2013.h5 --split test

echo "== 5. every face in a real photo: your model, then the built-in one (FER+ votes, eight classes)"
fer-models predict "$photos" --model runs/fer2013 --face-model "$face_model" --csv faces.csv --annotate annotated
fer-models predict "$photos" --model builtin --face-model "$face_model"

echo "== 6. an ensemble of your model and the built-in one (weights fit on val; its contempt dropped on these seven-class"
echo "      data and renormalised), and its evaluation"
# flip TTA: the members' own ten-crop would score val and test five times over (minutes on a CPU)
fer-models ensemble runs/fer2013 builtin --data fer2013.h5 --method weighted --tta flip --out runs/with-builtin.json

echo "== 7. the synthesis plumbing at toy size: a tiny RANDOM diffusion model makes noise, and the face stage's"
echo "      strict filters for generated images reject every one of them, as they should"
fer-synth generate --model tiny-random --emotion disgust --n 16 --size 64 --steps 4 --no-faces --out generated --seed 0
fer-synth crop generated --out faces --filters generated --face-model "$face_model"
echo "done: runs/fer2013 (your model), faces.csv and annotated/ (its predictions on the photo)"
