"""Libraries log and never print; the CLIs decide what is shown (-v/-q), without wrapping or native noise."""

from __future__ import annotations

import logging
import os

from click.testing import CliRunner

from fer_models.cli import main as models_cli
from fer_models.training.loop import train
from fer_synth.ui.console import NON_TERMINAL_WIDTH, AdaptiveConsole
from fer_synth.ui.log import native_stderr_silenced, setup_logging
from tests.fer_models.helpers import separable_h5, tiny_config


def test_train_logs_and_prints_nothing(tmp_path, capsys, caplog):
    data = separable_h5(tmp_path / "d.h5")
    with caplog.at_level(logging.INFO, logger="fer_models"):
        train(tiny_config(data, tmp_path / "run", epochs=1))
    assert capsys.readouterr().out == ""
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("fer_models")]
    assert any(m.startswith("training small-cnn") for m in messages)
    assert any(m.startswith("epoch   1") for m in messages)


def test_quiet_and_default_verbosity_on_the_command_line(tmp_path):
    data = separable_h5(tmp_path / "d.h5")

    def run(*flags: str, out: str):
        return CliRunner().invoke(
            models_cli,
            [
                *flags,
                "train",
                "--data",
                str(data),
                "--epochs",
                "1",
                "--no-progress",
                "--device",
                "cpu",
                "--out",
                str(tmp_path / out),
            ],
        )

    try:
        loud, quiet = run(out="a"), run("-q", out="b")
    finally:
        logging.getLogger("fer_models").setLevel(logging.NOTSET)  # leave no CLI setting behind for other tests
    assert loud.exit_code == 0 and quiet.exit_code == 0, (loud.output, quiet.output)
    assert "epoch   1" in loud.output and "done (epochs)" in loud.output
    assert "epoch" not in quiet.output and "done" not in quiet.output


def test_log_lines_are_not_wrapped_off_a_terminal(tmp_path):
    path = tmp_path / "log.txt"
    with open(path, "w") as f:
        console = AdaptiveConsole(file=f)
        assert console.width == NON_TERMINAL_WIDTH
        setup_logging(0, console)
        long = "x" * 150
        logging.getLogger("fer_synth.test").info(long)
    for name in ("fer_synth", "fer_models"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.setLevel(logging.NOTSET)
    assert path.read_text() == long + "\n"


def test_native_stderr_is_silenced_unless_debug(capfd):
    with native_stderr_silenced():
        os.write(2, b"native start-up line\n")
    assert "native start-up line" not in capfd.readouterr().err
    logging.getLogger("fer_synth").setLevel(logging.DEBUG)
    try:
        with native_stderr_silenced():
            os.write(2, b"shown with -v\n")
    finally:
        logging.getLogger("fer_synth").setLevel(logging.NOTSET)
    assert "shown with -v" in capfd.readouterr().err
