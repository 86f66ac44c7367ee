"""Building pipelines offline: tiny-random, a saved folder, single files, VAEs, schedulers, LoRA."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fer_synth.core.errors import FerError
from fer_synth.generation.pipeline import (
    DEFAULT_MODEL,
    DEFAULT_VAE,
    SCHEDULERS,
    ModelLoadError,
    PipelineOptions,
    build_pipeline,
    resolved_vae,
)
from fer_synth.generation.tiny import tiny_random_pipeline

CALL = dict(
    prompt=["a close-up photograph of a frightened man"],
    negative_prompt=["cartoon, blurry"],
    num_inference_steps=2,
    guidance_scale=5.0,
    height=32,
    width=32,
    output_type="np",
)


def images(pipe, seed: int = 0) -> np.ndarray:
    return pipe(generator=[torch.Generator().manual_seed(seed)], **CALL).images


@pytest.fixture(scope="module")
def saved_tiny(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny") / "tiny-sd"
    tiny_random_pipeline().save_pretrained(folder)
    return folder


def test_tiny_random_is_deterministic_and_seeds_matter(caplog):
    pipe = build_pipeline(PipelineOptions(model="tiny-random"))
    assert "noise" in caplog.records[0].getMessage()  # it says what it is
    a, b, c = images(pipe, 0), images(build_pipeline(PipelineOptions(model="tiny-random")), 0), images(pipe, 1)
    assert a.shape == (1, 32, 32, 3)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 0.01


def test_saved_folder_reloads_offline_with_identical_pixels(saved_tiny, hub_offline):
    pipe = build_pipeline(PipelineOptions(model=str(saved_tiny), scheduler="dpmpp"))
    assert type(pipe.scheduler).__name__ == "DPMSolverMultistepScheduler"
    assert pipe.scheduler.config.algorithm_type == "dpmsolver++"
    reference = build_pipeline(PipelineOptions(model="tiny-random", scheduler="dpmpp"))
    np.testing.assert_array_equal(images(pipe), images(reference))


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_every_scheduler_builds_and_runs(name):
    pipe = build_pipeline(PipelineOptions(model="tiny-random", scheduler=name))
    out = images(pipe)
    assert np.isfinite(out).all() and out.shape == (1, 32, 32, 3)


def test_offline_hub_id_without_cache_says_how_to_pass_a_local_model(hub_offline):
    with pytest.raises(
        ModelLoadError, match=r"not in the local Hugging Face cache.*local diffusers folder.*\.safetensors"
    ):
        build_pipeline(PipelineOptions(model="nobody-here/no-such-model-xyz"))


def test_single_file_checkpoints(tmp_path, hub_offline, saved_tiny):
    with pytest.raises(ModelLoadError, match="no such file"):
        build_pipeline(PipelineOptions(model=str(tmp_path / "missing.safetensors")))
    pickle = tmp_path / "model.ckpt"
    pickle.write_bytes(b"\x80\x04")
    with pytest.raises(ModelLoadError, match="pickle.*safetensors"):
        build_pipeline(PipelineOptions(model=str(pickle)))
    garbage = tmp_path / "broken.safetensors"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelLoadError, match="cannot be loaded"):
        build_pipeline(PipelineOptions(model=str(garbage)))
    # A real safetensors file in diffusers layout is not an original-layout checkpoint: the error says so
    # in one line instead of a traceback, with and without local configs.
    from safetensors.torch import save_file

    unet_only = tmp_path / "unet.safetensors"
    save_file(tiny_random_pipeline().unet.state_dict(), unet_only)
    with pytest.raises(ModelLoadError, match="--config"):
        build_pipeline(PipelineOptions(model=str(unet_only)))
    with pytest.raises(ModelLoadError, match="cannot be loaded"):
        build_pipeline(PipelineOptions(model=str(unet_only), config=str(saved_tiny)))


def test_folder_without_model_index_is_refused(tmp_path):
    with pytest.raises(ModelLoadError, match="model_index.json"):
        build_pipeline(PipelineOptions(model=str(tmp_path)))


def test_default_model_is_paired_with_the_mse_vae():
    assert resolved_vae(DEFAULT_MODEL, "auto") == DEFAULT_VAE
    assert resolved_vae("some/other-model", "auto") is None
    assert resolved_vae(DEFAULT_MODEL, "model") is None
    assert resolved_vae("x", "my/vae") == "my/vae"


def test_separate_vae_from_a_folder_replaces_the_models(tmp_path):
    other = tiny_random_pipeline(seed=1).vae
    other.save_pretrained(tmp_path / "vae")
    base = images(build_pipeline(PipelineOptions(model="tiny-random")))
    swapped = images(build_pipeline(PipelineOptions(model="tiny-random", vae=str(tmp_path / "vae"))))
    assert np.abs(base - swapped).max() > 0.01


def test_tiny_vae_decoder(tmp_path):
    from diffusers import AutoencoderTiny

    torch.manual_seed(0)
    AutoencoderTiny(
        encoder_block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8),
        num_encoder_blocks=(1, 1, 1, 1),
        num_decoder_blocks=(1, 1, 1, 1),
    ).save_pretrained(tmp_path / "taesd")
    pipe = build_pipeline(PipelineOptions(model="tiny-random", tiny_vae=str(tmp_path / "taesd")))
    assert type(pipe.vae).__name__ == "AutoencoderTiny"
    out = images(pipe)
    assert out.shape == (1, 32, 32, 3)
    assert np.abs(out - images(build_pipeline(PipelineOptions(model="tiny-random")))).max() > 0.01
    with pytest.raises(ModelLoadError, match="tiny VAE"):
        build_pipeline(PipelineOptions(model="tiny-random", tiny_vae=str(tmp_path / "nope")))


def test_lora_file_is_loaded_and_fused(tmp_path):
    pytest.importorskip("peft")
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    donor = tiny_random_pipeline()
    torch.manual_seed(0)
    donor.unet.add_adapter(
        LoraConfig(r=2, lora_alpha=2, init_lora_weights=False, target_modules=["to_q", "to_k", "to_v", "to_out.0"])
    )
    StableDiffusionPipeline.save_lora_weights(
        save_directory=tmp_path,
        safe_serialization=True,
        unet_lora_layers=convert_state_dict_to_diffusers(get_peft_model_state_dict(donor.unet)),
    )
    lora = tmp_path / "pytorch_lora_weights.safetensors"
    with_lora = build_pipeline(PipelineOptions(model="tiny-random", lora=[str(lora)]))
    assert not with_lora.get_list_adapters().get("unet")  # fused into the weights, adapters unloaded
    base = images(build_pipeline(PipelineOptions(model="tiny-random")))
    assert np.abs(images(with_lora) - base).max() > 0.005
    with pytest.raises(ModelLoadError, match="LoRA"):
        build_pipeline(PipelineOptions(model="tiny-random", lora=[str(tmp_path / "missing.safetensors")]))


def test_bad_options():
    with pytest.raises(FerError, match="unknown scheduler 'nope'; valid: dpmpp"):
        build_pipeline(PipelineOptions(model="tiny-random", scheduler="nope"))
    with pytest.raises(FerError, match="unknown dtype"):
        build_pipeline(PipelineOptions(model="tiny-random", dtype="fp8"))


def test_settings_resolve_auto_values_and_leave_out_speed_only_options():
    settings = PipelineOptions(model="tiny-random", device="cpu", compile=True).settings()
    assert settings["dtype"] == "fp32" and "device" not in settings and "compile" not in settings
    assert PipelineOptions(device="cuda").settings()["dtype"] == "fp16"
    assert PipelineOptions().settings()["vae"] == DEFAULT_VAE
