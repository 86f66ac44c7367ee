"""Tables stay whole when output is a file or a pipe (CI logs): no wrapping at rich's default 80 columns."""

from __future__ import annotations

import os
import subprocess
import sys


def test_a_piped_table_keeps_each_row_on_one_line():
    # As in a CI log: stdout a pipe, no COLUMNS (a COLUMNS the user sets is obeyed; native code under pytest sets one
    # in the process environment, so the child gets an explicit copy of os.environ).
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    result = subprocess.run(
        [sys.executable, "-m", "fer_models.cli", "list-recipes"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env=env,
    )
    rows = [line for line in result.stdout.splitlines() if "cbam-ensemble" in line]
    assert len(rows) == 1 and "AdamW 3e-4, warm restarts" in rows[0], result.stdout
    assert max(map(len, result.stdout.splitlines())) > 80
