"""``fer-synth``: a thin click layer over fer_synth's Python API."""

from __future__ import annotations

import click

from fer_synth import __version__
from fer_synth.console import FriendlyGroup


@click.group(cls=FriendlyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fer-synth")
def main() -> None:
    """Synthetic faces for FER2013: prompts, generation, face crops, balancing and the HDF5 file."""


@main.command("prompts")
@click.option("--emotion", "-e", "emotions", multiple=True, required=True,
              help="Class name(s) or alias(es), comma-separated or repeated; 'all' for every class.")
@click.option("--n", "n", type=click.IntRange(min=1), default=5, show_default=True, help="Prompts per class.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="The run seed.")
@click.option("--start", type=click.IntRange(min=0), default=0, show_default=True, help="First image index.")
@click.option("--prompts", "prompts_file", type=click.Path(dir_okay=False), default=None,
              help="A prompt file (YAML); default: the shipped prompts/default.yaml.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line instead of text.")
def prompts_command(emotions: tuple[str, ...], n: int, seed: int, start: int, prompts_file: str | None,
                    as_json: bool) -> None:
    """Print the prompts and seeds that `generate` would use, without loading a model."""
    import json

    from fer_synth.classes import resolve_many
    from fer_synth.console import console
    from fer_synth.prompts import load_prompts

    prompt_set = load_prompts(prompts_file)
    wanted = resolve_many(emotions)
    if not as_json:
        console.print(f"[dim]prompts: {prompt_set.source} ({prompt_set.digest})[/]")
        console.print(f"[dim]negative: {prompt_set.negative}[/]")
    for emotion in wanted:
        for p in prompt_set.prompts(seed, emotion, n, start):
            if as_json:
                click.echo(json.dumps({"class": p.emotion, "index": p.index, "seed": p.seed, "prompt": p.text,
                                       "negative_prompt": p.negative}))
            else:
                console.print(f"[bold]{p.emotion}[/] {p.index:>6}  seed {p.seed:<20} {p.text}", soft_wrap=True)


@main.command("generate")
@click.option("--emotion", "-e", "emotions", multiple=True, required=True,
              help="Class name(s) or alias(es), comma-separated or repeated; 'all' for every class.")
@click.option("--n", "n", type=int, required=True, help="Images (with the face stage: kept faces) per class.")
@click.option("--seed", type=int, default=0, show_default=True, help="Run seed; image i's prompt and seed derive from it.")
@click.option("--out", type=click.Path(file_okay=False), default="generated", show_default=True,
              help="Output folder (the pool that `fer-synth balance` reads).")
@click.option("--model", default=None, help="Hub id, local diffusers folder, single .safetensors file, or "
              "'tiny-random' (noise, for smoke runs). Default: Realistic Vision V6.0 B1 noVAE.")
@click.option("--vae", default="auto", show_default=True,
              help="A VAE hub id or folder; 'auto' pairs the default model with stabilityai/sd-vae-ft-mse; "
              "'model' keeps the model's own.")
@click.option("--scheduler", default="dpmpp", show_default=True, help="dpmpp, dpmpp-karras, unipc, euler, "
              "euler-a, ddim, pndm, lcm, tcd.")
@click.option("--steps", type=int, default=None, help="Denoising steps [default: 25].")
@click.option("--guidance", type=float, default=None, help="Classifier-free guidance scale [default: 5.5].")
@click.option("--size", type=int, default=None, help="Image side in pixels [default: 512].")
@click.option("--batch-size", type=int, default=None, help="Images per pipeline call [default: 4].")
@click.option("--device", default="auto", show_default=True, help="auto (cuda, mps, cpu), or a torch device.")
@click.option("--dtype", default="auto", show_default=True, help="auto (fp16 on GPU, fp32 on cpu), fp32, fp16, bf16.")
@click.option("--safety-checker/--no-safety-checker", default=True, show_default=True,
              help="Keep the model's NSFW checker (flagged images are black and flagged in the manifest).")
@click.option("--tiny-vae", default=None, help="Decode with a tiny VAE (AutoencoderTiny), e.g. madebyollin/taesd.")
@click.option("--lora", multiple=True, help="LoRA .safetensors file or hub id (repeatable); few-step LoRAs "
              "(LCM, Hyper-SD) need --steps 4 --guidance 1 and --scheduler lcm or tcd.")
@click.option("--config", "config_dir", type=click.Path(file_okay=False), default=None,
              help="For a single .safetensors checkpoint offline: a diffusers folder of the same architecture.")
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the UNet (pays off on long GPU runs).")
@click.option("--prompts", "prompts_file", type=click.Path(dir_okay=False), default=None,
              help="A prompt file (YAML); default: the shipped prompts/default.yaml.")
@click.option("--faces/--no-faces", default=True, show_default=True,
              help="Run the face stage: keep 48x48 face crops (n counts kept faces); --no-faces keeps raw images.")
@click.option("--keep-raw", is_flag=True, help="With the face stage: also keep full-size images under OUT/raw/.")
@click.option("--max-attempts", type=int, default=3, show_default=True,
              help="With the face stage: give up after this many attempts per wanted face.")
@click.option("--progress/--no-progress", default=True, help="Show the progress bar.")
@click.pass_context
def generate_command(ctx: click.Context, emotions: tuple[str, ...], n: int, seed: int, out: str, model: str | None,
                     vae: str, scheduler: str, steps: int | None, guidance: float | None, size: int | None,
                     batch_size: int | None, device: str, dtype: str, safety_checker: bool, tiny_vae: str | None,
                     lora: tuple[str, ...], config_dir: str | None, compile_: bool, prompts_file: str | None, faces: bool, keep_raw: bool,
                     max_attempts: int, progress: bool) -> None:
    """Generate face images per class with a diffusion model; resumable, shardable by RANK/WORLD_SIZE."""
    from pathlib import Path

    from fer_synth import generate as gen
    from fer_synth.console import console, err_console, warn
    from fer_synth.errors import FerError
    from fer_synth.pipeline import DEFAULT_MODEL, PipelineOptions

    config = gen.GenerateConfig(
        emotions=emotions, n=n, seed=seed, out=Path(out),
        steps=steps or gen.DEFAULT_STEPS,
        guidance=gen.DEFAULT_GUIDANCE if guidance is None else guidance,
        height=size or gen.DEFAULT_SIZE, width=size or gen.DEFAULT_SIZE,
        batch_size=batch_size or gen.DEFAULT_BATCH, prompts=prompts_file,
        pipeline=PipelineOptions(model=model or DEFAULT_MODEL, vae=vae, scheduler=scheduler, dtype=dtype,
                                 device=device, safety_checker=safety_checker, tiny_vae=tiny_vae, lora=lora,
                                 compile=compile_, config=config_dir),
        keep_raw=keep_raw, max_attempts=max_attempts,
    )
    face_stage = None
    if faces:
        try:
            from fer_synth.faces import FaceStage
        except ImportError:
            raise FerError("the face stage (fer_synth.faces) is not part of this build; pass --no-faces "
                           "to keep the raw images") from None
        face_stage = FaceStage()
    elif keep_raw:
        raise FerError("--keep-raw needs the face stage; without it (--no-faces) the raw images are the output")
    try:
        summary = gen.generate(config, face_stage=face_stage, progress=progress,
                               log=lambda m: err_console.print(f"[yellow]{m}[/]"))
    finally:
        if face_stage is not None:
            face_stage.close()
    rate = summary.images_made / summary.seconds if summary.seconds else 0.0
    shard = f" (rank {summary.rank} of {summary.world_size})" if summary.world_size > 1 else ""
    console.print(f"generated {summary.images_made} images in {summary.seconds:.1f} s ({rate:.2f} img/s){shard} "
                  f"-> {summary.out}")
    for name, c in summary.per_class.items():
        extra = f", nsfw-flagged {c.nsfw}" if c.nsfw else ""
        console.print(f"  {name:>8}: {c.kept}/{c.target} done ({c.done_before} records found, "
                      f"{c.attempted} made now{extra})")
    report = summary.shortfall_report()
    if report:
        warn(report)
        ctx.exit(1)


if __name__ == "__main__":
    main()
