"""``fer-synth``: a thin click layer over fer_synth's Python API."""

from __future__ import annotations

import click

from fer_synth import __version__
from fer_synth.console import FriendlyGroup


@click.group(cls=FriendlyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fer-synth")
def main() -> None:
    """Synthetic faces for FER2013: prompts, generation, face crops, balancing and the HDF5 file."""


if __name__ == "__main__":
    main()
