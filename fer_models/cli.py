"""``fer-models``: a thin click layer over fer_models' Python API."""

from __future__ import annotations

import click

from fer_models import __version__
from fer_synth.console import FriendlyGroup


@click.group(cls=FriendlyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fer-models")
def main() -> None:
    """Train, evaluate and ensemble FER models on a fer_synth HDF5 file."""


if __name__ == "__main__":
    main()
