"""DDP: two CPU processes (gloo) under torchrun train one model (and its loss's parameters); ranks stay in step
and split the data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["ce", "emonext"])
def test_two_process_ddp_with_gloo(tiny_h5, tmp_path, loss):
    """With ``emonext`` the loss learns parameters of its own (an attention), which DDP must keep in step too."""
    script = tmp_path / "ddp_train.py"
    script.write_text(
        textwrap.dedent(f"""
        import os, torch
        torch.set_num_threads(1)
        from tests.fer_models.helpers import tiny_config
        from fer_models.training.loop import train
        result = train(tiny_config({str(tiny_h5)!r}, {str(tmp_path / "run")!r}, epochs=2, batch_size=8,
                                   loss={loss!r}))
        state = {{**result.model.state_dict(), **result.loss.state_dict()}}
        digest = sum(float(v.double().sum()) for v in state.values())
        open({str(tmp_path)!r} + f"/rank{{os.environ['RANK']}}.txt", "w").write(repr(digest))
    """)
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    digests = [float((tmp_path / f"rank{r}.txt").read_text()) for r in (0, 1)]
    assert digests[0] == digests[1]  # DDP kept model and loss identical (BN buffers synced before evaluation)
    history = json.loads((tmp_path / "run" / "metrics.json").read_text())
    # 70 rows: 35 per rank, 4 batches of 8 each -> 64 images per epoch over both ranks.
    assert [row["train_images"] for row in history] == [64, 64]
    assert (tmp_path / "run" / "best.safetensors").exists()
