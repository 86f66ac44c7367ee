"""``fer-synth`` and ``python -m fer_synth``: the command line, loaded behind the guard of
:mod:`fer_synth.core.entry`."""

from fer_synth.core.entry import run_command_line


def main() -> None:
    run_command_line("fer_synth.cli:main")


if __name__ == "__main__":
    main()
