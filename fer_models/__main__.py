"""``fer-models`` and ``python -m fer_models``: the command line, loaded behind the guard of
:mod:`fer_synth.core.entry`."""

from fer_synth.core.entry import run_command_line


def main() -> None:
    run_command_line("fer_models.cli:main")


if __name__ == "__main__":
    main()
