"""Generation throughput: what `fer-synth generate` adds over bare diffusers calls, and GPU speed.

CPU part (any machine): the tool's end-to-end run (`fer_synth.generation.run.generate`, building the
tiny-random pipeline, drawing prompts, writing PNGs and the fsync'ed manifest) against a bare loop of
pipeline calls that makes the same images with the same tiny random model and saves them as PNG.
Prints both times and their ratio (target <= 1.10), and checks the images are byte-identical.

GPU part (only when CUDA exists): the SD 1.5 architecture (UNet, VAE, CLIP ViT-L/14 text encoder configs)
with random weights at 512x512 -- speed does not depend on weight values -- in three settings:
the seed's (PNDM 40 steps, guidance 5.5, fp16, batch 1, bare loop), the tool's defaults (DPM-Solver++
25 steps, guidance 5.5, fp16, batch 4) and a tuned 20-step guided run (batch 16, torch.compile), plus the
few-step path (4 steps, guidance 1, LCM scheduler, TAESD-size decoder). Each reports images/s and the
fraction of the GPU's bf16 matmul peak measured in the same run.

    python bench/generate_throughput.py                 # CPU part (+ GPU part if CUDA)
    python bench/generate_throughput.py --gpu-smoke     # the GPU code path on CPU at toy size (checks it runs)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fer_synth.generation.config import GenerateConfig
from fer_synth.generation.pipeline import SCHEDULERS, PipelineOptions, build_pipeline
from fer_synth.generation.prompts import load_prompts
from fer_synth.generation.run import generate

# --- CPU: tool vs bare loop ---------------------------------------------------------------------


def bare_loop(out: Path, emotions: list[str], n: int, size: int, steps: int, guidance: float, batch: int) -> None:
    """What a user would write by hand: build, call the pipeline per batch, save PNGs."""
    pipe = build_pipeline(PipelineOptions(model="tiny-random"))
    prompt_set = load_prompts()
    for emotion in emotions:
        prompts = prompt_set.prompts(0, emotion, n)
        (out / emotion).mkdir(parents=True, exist_ok=True)
        for start in range(0, n, batch):
            chunk = prompts[start : start + batch]
            images = pipe(
                prompt=[p.text for p in chunk],
                negative_prompt=[p.negative for p in chunk],
                num_inference_steps=steps,
                guidance_scale=guidance,
                height=size,
                width=size,
                generator=[torch.Generator().manual_seed(p.seed) for p in chunk],
            ).images
            for p, image in zip(chunk, images):
                # The tool's PNG settings, so the files can be compared byte for byte.
                image.save(out / emotion / f"{emotion}_s0_{p.index:06d}.png", compress_level=1)


def tool_run(out: Path, emotions: list[str], n: int, size: int, steps: int, guidance: float, batch: int) -> None:
    generate(
        GenerateConfig(
            emotions=emotions,
            n=n,
            seed=0,
            out=out,
            steps=steps,
            guidance=guidance,
            height=size,
            width=size,
            batch_size=batch,
            pipeline=PipelineOptions(model="tiny-random"),
        ),
        progress=False,
    )


def cpu_benchmark(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    emotions = ["fear", "sad"]
    settings = dict(emotions=emotions, n=args.n, size=args.size, steps=args.steps, guidance=5.5, batch=args.batch)
    times: dict[str, list[float]] = {"bare": [], "tool": []}
    cpu: dict[str, list[float]] = {"bare": [], "tool": []}
    with tempfile.TemporaryDirectory() as tmp:
        tool_run(Path(tmp) / "warm", **{**settings, "n": 2})  # imports and first-call costs, for both
        for repeat in range(args.repeats):
            for name, fn in (("bare", bare_loop), ("tool", tool_run)):
                out = Path(tmp) / f"{name}{repeat}"
                start, cpu_start = time.perf_counter(), time.process_time()
                fn(out, **settings)
                times[name].append(time.perf_counter() - start)
                cpu[name].append(time.process_time() - cpu_start)
        a, b = Path(tmp) / "bare0", Path(tmp) / "tool0"
        same = all((a / p.relative_to(b)).read_bytes() == p.read_bytes() for p in b.rglob("*.png"))
        count = len(list(b.rglob("*.png")))
    # The machine may be shared: the best of N runs (as timeit reports) is the least disturbed estimate.
    bare, tool = min(times["bare"]), min(times["tool"])
    images = len(emotions) * args.n
    print(
        f"CPU, tiny-random, {images} images at {args.size}px, {args.steps} steps, batch {args.batch}, "
        f"{args.threads} torch thread(s), best of {args.repeats} alternating runs:"
    )
    for name, label in (("bare", "bare diffusers loop"), ("tool", "fer-synth generate")):
        best = min(times[name])
        print(
            f"  {label:<20}: {best:6.2f} s wall ({images / best:6.2f} img/s), "
            f"median {statistics.median(times[name]):.2f} s, CPU {min(cpu[name]):.2f} s; runs: {_fmt(times[name])}"
        )
    print(
        f"  ratio tool/bare     : {tool / bare:.3f} wall (best), "
        f"{statistics.median(times['tool']) / statistics.median(times['bare']):.3f} wall (median), "
        f"{min(cpu['tool']) / min(cpu['bare']):.3f} CPU time (target <= 1.10); "
        f"images identical: {same} ({count} files)"
    )


def _fmt(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


# --- GPU: SD 1.5 architecture with random weights -----------------------------------------------


def sd15_random_pipeline(dtype: torch.dtype, device: str, tiny_decoder: bool = False):
    """StableDiffusionPipeline with SD 1.5's UNet/VAE/CLIP-L configs and random weights (no download)."""
    from diffusers import AutoencoderKL, AutoencoderTiny, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from fer_synth.generation.tiny import tiny_tokenizer  # a real CLIP vocabulary is a download; ids < 200 suffice

    tokenizer = tiny_tokenizer()
    tokenizer.model_max_length = 77
    unet = UNet2DConditionModel(
        sample_size=64,
        in_channels=4,
        out_channels=4,
        layers_per_block=2,
        block_out_channels=(320, 640, 1280, 1280),
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        cross_attention_dim=768,
        attention_head_dim=8,
    )
    vae = (
        AutoencoderTiny()
        if tiny_decoder
        # AutoencoderTiny's default config is TAESD's
        else AutoencoderKL(
            block_out_channels=(128, 256, 512, 512),
            layers_per_block=2,
            latent_channels=4,
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            sample_size=512,
        )
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=49408,
            hidden_size=768,
            intermediate_size=3072,
            num_hidden_layers=12,
            num_attention_heads=12,
            max_position_embeddings=77,
            hidden_act="quick_gelu",
            projection_dim=768,
        )
    )
    scheduler = PNDMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        skip_prk_steps=True,
        set_alpha_to_one=False,
        steps_offset=1,
        timestep_spacing="leading",
    )
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device=device, dtype=dtype)


def matmul_peak_tflops(device: str, dtype: torch.dtype, size: int) -> float:
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    _sync(device)
    reps = 20
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    _sync(device)
    return 2 * size**3 * reps / (time.perf_counter() - start) / 1e12


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def flops_per_image(pipe, call: dict) -> float:
    """FLOPs of one image, counted by torch's FlopCounterMode on a batch-1 call."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        pipe(
            **{
                **call,
                "prompt": call["prompt"][:1],
                "negative_prompt": call["negative_prompt"][:1],
                "generator": call["generator"][:1],
            }
        )
    return float(counter.get_total_flops())


def gpu_benchmark(args: argparse.Namespace, device: str, toy: bool) -> None:
    size = 64 if toy else 512
    dtype = torch.float32 if toy else torch.float16
    images_per_case = 2 if toy else args.gpu_images
    steps_scale = (lambda s: 2) if toy else (lambda s: s)
    peak = matmul_peak_tflops(device, torch.float32 if toy else torch.bfloat16, 512 if toy else 8192)
    print(
        f"\n{'GPU code path on CPU at toy size (smoke, figures meaningless)' if toy else torch.cuda.get_device_name()}:"
        f" measured {'fp32' if toy else 'bf16'} matmul peak {peak:.3g} TFLOP/s"
    )
    prompt_set = load_prompts()
    prompts = prompt_set.prompts(0, "fear", images_per_case)
    cases = [
        # name, scheduler, steps, guidance, batch, tiny decoder, compile, through the tool
        ("seed: PNDM 40 steps, cfg 5.5, batch 1 (bare loop)", "pndm", 40, 5.5, 1, False, False, False),
        ("tool defaults: DPM++ 25 steps, cfg 5.5, batch 4", "dpmpp", 25, 5.5, 4, False, False, True),
        ("tuned: DPM++ 20 steps, cfg 5.5, batch 16, compile", "dpmpp", 20, 5.5, 16, False, not toy, True),
        ("few-step: LCM 4 steps, cfg 1, TAESD, batch 16", "lcm", 4, 1.0, 16, True, False, True),
    ]
    for name, scheduler, steps, guidance, batch, tiny, compiled, through_tool in cases:
        pipe = sd15_random_pipeline(dtype, device, tiny_decoder=tiny)
        pipe.scheduler = SCHEDULERS[scheduler](pipe.scheduler.config)
        if compiled:
            pipe.unet.to(memory_format=torch.channels_last)
            pipe.unet = torch.compile(pipe.unet, fullgraph=True)
        steps = steps_scale(steps)
        count = images_per_case if through_tool else max(1, images_per_case // 4)  # the seed's path is slow
        batch = min(batch, count)
        call = dict(
            prompt=[p.text for p in prompts[:batch]],
            negative_prompt=[p.negative for p in prompts[:batch]],
            num_inference_steps=steps,
            guidance_scale=guidance,
            height=size,
            width=size,
            generator=[torch.Generator().manual_seed(p.seed) for p in prompts[:batch]],
        )
        pipe(**call)  # warm-up (and compilation)
        _sync(device)
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            if through_tool:
                generate(
                    GenerateConfig(
                        emotions=["fear"],
                        n=count,
                        seed=0,
                        out=Path(tmp),
                        steps=steps,
                        guidance=guidance,
                        height=size,
                        width=size,
                        batch_size=batch,
                        pipeline=PipelineOptions(model="sd15-random", scheduler=scheduler),
                    ),
                    pipe=pipe,
                    progress=False,
                )
            else:
                for start_i in range(0, count, batch):
                    chunk = prompts[start_i : start_i + batch]
                    pipe(
                        **{
                            **call,
                            "prompt": [p.text for p in chunk],
                            "negative_prompt": [p.negative for p in chunk],
                            "generator": [torch.Generator().manual_seed(p.seed) for p in chunk],
                        }
                    )
            _sync(device)
            seconds = time.perf_counter() - start
        rate = count / seconds
        flops = flops_per_image(pipe if not compiled else _uncompiled(pipe), call)
        print(
            f"  {name:<52} {rate:7.2f} img/s  {flops / 1e12:6.2f} TFLOP/img  "
            f"{rate * flops / 1e12:7.1f} TFLOP/s = {rate * flops / 1e12 / peak:5.1%} of peak"
        )
        del pipe
        if device.startswith("cuda"):
            torch.cuda.empty_cache()


def _uncompiled(pipe):
    pipe.unet = getattr(pipe.unet, "_orig_mod", pipe.unet)
    return pipe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=24, help="CPU: images per class (two classes)")
    parser.add_argument("--size", type=int, default=64, help="CPU: image side")
    parser.add_argument("--steps", type=int, default=10, help="CPU: steps")
    parser.add_argument("--batch", type=int, default=4, help="CPU: batch size")
    parser.add_argument("--threads", type=int, default=1, help="CPU: torch threads")
    parser.add_argument("--repeats", type=int, default=7, help="CPU: alternating repeats (median reported)")
    parser.add_argument("--gpu-images", type=int, default=64, help="GPU: images per case")
    parser.add_argument("--skip-cpu", action="store_true")
    parser.add_argument("--gpu-smoke", action="store_true", help="run the GPU code path on CPU at toy size")
    args = parser.parse_args()
    if not args.skip_cpu:
        cpu_benchmark(args)
    if torch.cuda.is_available():
        gpu_benchmark(args, "cuda", toy=False)
    elif args.gpu_smoke:
        gpu_benchmark(args, "cpu", toy=True)
    else:
        print("\nGPU part skipped: no CUDA device on this machine.")


if __name__ == "__main__":
    main()
