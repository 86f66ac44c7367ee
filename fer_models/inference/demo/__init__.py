"""``fer-models demo``: a local web app (Gradio) with three tabs, a webcam, photo upload and video upload, each face
boxed and labelled with its class probabilities, and on demand a Grad-CAM heatmap of where the model looks.

It runs offline: it binds to 127.0.0.1 by default, Gradio's telemetry is off, and no share link is made unless
asked for. Gradio is an optional extra (``pip install -e ".[demo]"``). ``live`` is the webcam's frame path
(``bench/webcam_speed.py`` times it), ``app`` the page and the work behind it. See docs/demo.md.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from fer_synth.core.errors import FerError
from fer_synth.faces.stage import FaceStage

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
MAX_UPLOAD = "500mb"  # Gradio refuses larger uploads with its own message in the page
SHARE_MODES: tuple[str, ...] = ("off", "on")


def offline_gradio():
    """Gradio, imported with its telemetry and version check off (they are read from the environment)."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    try:
        import gradio
    except ImportError:
        raise FerError('the demo needs Gradio, an optional extra: pip install -e ".[demo]"') from None
    return gradio


def serve(
    model: str,
    make_stage: Callable[[], FaceStage],
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    share: str = "off",
    device: str = "cpu",
    tta: str = "none",
    amp: str = "auto",
    threads: int | None = 1,
):
    """Start the demo for ``model`` (``builtin``, a run, a checkpoint or an ensemble) on http://host:port/.

    ``tta`` none and ``amp`` auto (bf16 where the CPU has it natively) keep the webcam fast; ``threads``: torch's CPU
    threads (one is fastest for one face at a time on a busy machine; None leaves torch's choice). Returns
    ``(app, url)`` with the server running in the background: ``app.block_thread()`` waits for Ctrl-C,
    ``app.close()`` stops it.
    """
    import torch

    from fer_models.inference.classifier import load_classifier
    from fer_models.inference.demo.app import TITLE, Demo, build_app

    if share not in SHARE_MODES:
        raise FerError(f"--share must be one of {', '.join(SHARE_MODES)}, got {share!r}")
    gr = offline_gradio()
    if threads:
        torch.set_num_threads(threads)
    classifier = load_classifier(model, device, tta, amp)
    demo = Demo(classifier, make_stage)
    app = build_app(demo, str(model))
    if share == "on":
        logger.warning(
            "--share on: Gradio makes a public link through its own servers; anyone with it can use the "
            "demo and your webcam stream passes through them"
        )
    try:
        _, url, _ = app.launch(
            server_name=host,
            server_port=port,
            share=share == "on",
            prevent_thread_lock=True,
            quiet=True,
            ssr_mode=False,
            mcp_server=False,
            pwa=False,
            enable_monitoring=False,
            max_file_size=MAX_UPLOAD,
            inbrowser=False,
            theme=gr.themes.Default(),
        )
    except OSError as e:
        demo.close()
        raise FerError(f"cannot serve on {host}:{port} ({e}); pick another --port") from None
    url = url or f"http://{host}:{port}/"
    logger.debug("%s serving %s at %s", TITLE, model, url)
    return app, url
