"""ONNX export of a run, a checkpoint, an ensemble or the built-in model, preprocessing and TTA included.

The exported graph takes what :meth:`fer_models.inference.classifier.Classifier.predict_proba` takes and returns what it
returns, so a user needs no PyTorch and no preprocessing code:

* input ``faces``: uint8 [N, 48, 48], grayscale faces in FER2013's framing (``fer_synth.faces`` crops them so;
  N is dynamic),
* output ``probabilities``: float32 [N, C] over the classes listed in the model's metadata (FER2013's order:
  angry, disgust, fear, happy, sad, surprise, neutral), each model's TTA views averaged, an ensemble's members
  combined with its weights.

Inside: pixels / 255, each TTA view (crop, resize, flip) as one bilinear ``GridSample`` through the view's fixed
sampling grid, the model's normalisation (gray: (x - 0.508) / 0.255; three-channel models: gray repeated,
ImageNet mean and std), the network, softmax. The metadata (``classes``, ``input``, ``tta``, ``source``) is
stored in the ONNX file's ``metadata_props``. Needs the ``onnx`` extra: ``pip install "fer-synth[onnx]"``.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fer_models.checkpoint import input_files, resolve_checkpoint
from fer_models.data import normalise, view_thetas
from fer_models.inference.calibration import temperature_of
from fer_models.inference.classifier import FACE_SIZE, Classifier, load_classifier
from fer_models.models.builtin import SHIPPED
from fer_synth.core.atomic import atomic_file
from fer_synth.core.errors import FerError
from fer_synth.core.outputs import refuse_existing_file, refuse_inputs, remove_stale_temps

logger = logging.getLogger(__name__)

FORMATS: tuple[str, ...] = ("onnx",)
OPSET = 18  # GridSample needs 16+; onnxruntime runs 18 everywhere it is current
INPUT_NAME, OUTPUT_NAME = "faces", "probabilities"


class FaceProbabilities(nn.Module):
    """uint8 faces [N, 48, 48] -> probabilities [N, C]: the classifier's preprocessing, views, networks and
    combination as one traceable module."""

    def __init__(self, classifier: Classifier):
        super().__init__()
        if classifier.method == "vote":
            raise FerError(
                "a vote ensemble is not exported (its argmax has no gradient-free ONNX form here); export "
                "a mean or weighted ensemble, or a member"
            )
        self.models = nn.ModuleList(m.model for m in classifier.members)
        self.in_chans = [int(m.meta["in_chans"]) for m in classifier.members]
        self.temperatures = [temperature_of(m.meta, m.tta) for m in classifier.members]
        total = sum(classifier.weights)
        self.weights = [w / total for w in classifier.weights]
        for i, member in enumerate(classifier.members):
            size = int(member.meta["input_size"])
            thetas = view_thetas(1, member.tta, size, FACE_SIZE, "cpu")
            # The sampling grid of each view is the same for every face: fixed, computed once here.
            grids = torch.cat([F.affine_grid(t, [1, 1, size, size], align_corners=False) for t in thetas])
            self.register_buffer(f"grids{i}", grids)

    def forward(self, faces: Tensor) -> Tensor:
        x = faces[:, None].float() / 255
        n = x.shape[0]
        total = 0
        for i, (model, in_chans, weight, temperature) in enumerate(
            zip(self.models, self.in_chans, self.weights, self.temperatures)
        ):
            grids = getattr(self, f"grids{i}")
            probs = 0
            for v in range(grids.shape[0]):
                view = F.grid_sample(
                    x,
                    grids[v : v + 1].expand(n, -1, -1, -1),
                    mode="bilinear",
                    padding_mode="zeros",
                    align_corners=False,
                )
                probs = probs + (model(normalise(view, in_chans)).float() / temperature).softmax(-1)
            total = total + weight * probs / grids.shape[0]
        return total


def default_export_path(spec: str | os.PathLike, fmt: str = "onnx") -> Path:
    """``<name>.onnx`` here for a shipped model; else beside the checkpoint, named as it (a run: ``best``)."""
    if str(spec) in SHIPPED:
        return Path(f"{spec}.{fmt}")
    return resolve_checkpoint(spec).with_suffix(f".{fmt}")


def export(
    spec: str | os.PathLike,
    out: str | os.PathLike,
    fmt: str = "onnx",
    tta: str | None = None,
    opset: int = OPSET,
    overwrite: bool = False,
) -> Path:
    """Write ``spec`` (``builtin``, a run folder, a checkpoint or an ensemble file) as an ONNX file ``out``
    (an existing ``out`` only with ``overwrite``)."""
    if fmt not in FORMATS:
        raise FerError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    refuse_inputs(out, input_files(spec), beside=True)  # beside the checkpoint (the default), never over it
    refuse_existing_file(out, overwrite)
    remove_stale_temps(out)  # what a killed export of the same file left
    try:
        import onnx
        import onnxscript  # noqa: F401
    except ImportError:
        raise FerError('ONNX export needs the onnx extra: pip install "fer-synth[onnx]"') from None
    out = Path(out)
    if out.suffix != ".onnx":
        raise FerError(f"{out}: an ONNX file's name ends in .onnx")
    classifier = load_classifier(spec, "cpu", tta)
    graph = FaceProbabilities(classifier).eval()
    example = torch.zeros(2, FACE_SIZE, FACE_SIZE, dtype=torch.uint8)
    batch = torch.export.Dim("batch", min=1)
    program = torch.onnx.export(
        graph,
        (example,),
        dynamo=True,
        opset_version=opset,
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_shapes=({0: batch},),
        verbose=False,
    )
    proto = program.model_proto
    info = {
        "classes": json.dumps(list(classifier.classes)),
        "tta": json.dumps([m.tta for m in classifier.members]),
        "input": f"{INPUT_NAME}: uint8 [N, {FACE_SIZE}, {FACE_SIZE}] grayscale faces in FER2013's framing",
        "output": f"{OUTPUT_NAME}: float32 [N, {len(classifier.classes)}] class probabilities",
        "source": json.dumps(classifier.identity),
    }
    for key, value in info.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    with atomic_file(out) as tmp:
        onnx.save(proto, str(tmp))
    logger.info(f"exported {spec} to {out}: input {info['input']}; output {info['output']}")
    return out
