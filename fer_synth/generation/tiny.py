"""A StableDiffusionPipeline with the SD 1.5 layout at a toy size and random weights, built in memory.

``--model tiny-random`` uses it for offline smoke runs, and the tests for everything that needs a pipeline: it
makes noise in about a second on a CPU, and two builds from the same seed give identical pixels.
"""

from __future__ import annotations

import torch

TINY_RANDOM = "tiny-random"
TINY_CONTEXT = 512  # the tiny text encoder's context, in characters


def tiny_tokenizer():
    """A CLIP tokenizer from a hand-written vocabulary: one token per printable ASCII character."""
    from transformers import CLIPTokenizer

    chars = [chr(c) for c in range(33, 127)]
    tokens = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    vocab = {t: i for i, t in enumerate(tokens)}
    # One token per character, so real prompts need a long context to avoid truncation.
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=TINY_CONTEXT)


def tiny_random_pipeline(seed: int = 0, safety_checker: bool = False):
    """A StableDiffusionPipeline with the SD 1.5 layout at a toy size and random weights.

    Its weights come from ``seed``, so two builds give identical pixels. With ``safety_checker`` it
    carries a tiny random :class:`StableDiffusionSafetyChecker` (tests set its thresholds).
    """
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPTextConfig, CLIPTextModel

    tokenizer = tiny_tokenizer()
    gen = torch.random.fork_rng(devices=[])
    with gen:
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            sample_size=8,
            in_channels=4,
            out_channels=4,
            block_out_channels=(16, 32),
            layers_per_block=1,
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            cross_attention_dim=32,
            attention_head_dim=4,
            norm_num_groups=8,
        )
        vae = AutoencoderKL(  # four blocks: the 8x down-sampling of SD's VAE, so TAESD fits it
            in_channels=3,
            out_channels=3,
            block_out_channels=(8, 8, 16, 16),
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            latent_channels=4,
            norm_num_groups=8,
            layers_per_block=1,
            sample_size=64,
        )
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=len(tokenizer),
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=2,
                num_attention_heads=4,
                max_position_embeddings=TINY_CONTEXT,
                bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            )
        )
        checker = feature_extractor = None
        if safety_checker:
            from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker

            checker = StableDiffusionSafetyChecker(
                CLIPConfig(
                    text_config={
                        "hidden_size": 16,
                        "intermediate_size": 32,
                        "num_hidden_layers": 1,
                        "num_attention_heads": 2,
                        "vocab_size": 100,
                        "bos_token_id": 0,
                        "eos_token_id": 1,
                        "pad_token_id": 1,
                    },
                    vision_config={
                        "hidden_size": 16,
                        "intermediate_size": 32,
                        "num_hidden_layers": 1,
                        "num_attention_heads": 2,
                        "image_size": 32,
                        "patch_size": 8,
                    },
                    projection_dim=16,
                )
            )
            feature_extractor = CLIPImageProcessor(crop_size=32, size={"shortest_edge": 32})
    scheduler = PNDMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        num_train_timesteps=1000,
        skip_prk_steps=True,
        set_alpha_to_one=False,
        steps_offset=1,
        timestep_spacing="leading",
    )
    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=checker,
        feature_extractor=feature_extractor,
        requires_safety_checker=False,
    )
