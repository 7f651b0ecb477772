"""The ``edgemti`` command group: logging set up once, and every library error turned into one line and exit
code 2 here (:class:`ErrorsToMessages`), nowhere else."""

from __future__ import annotations

import json

import click

from edgemti import __version__
from edgemti.cli.flags import error_message
from edgemti.errors import EdgemtiError
from edgemti.logsetup import setup_logging


class ErrorsToMessages(click.Group):
    """A group whose commands' library errors become :func:`~edgemti.cli.flags.error_message` lines."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except EdgemtiError as exc:
            raise click.ClickException(error_message(exc, ctx.invoked_subcommand)) from None


@click.group(cls=ErrorsToMessages, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="edgemti")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def main(verbose: int) -> None:
    """edgemti: multi-task NLP inference on a simulated heterogeneous-memory edge accelerator.

    \b
    Typical flow:
      edgemti params                         parameter budget of adapter vs vanilla models (paper Table II)
      edgemti train --task sst2 ...          train a task pack (adapters) on a GLUE task
      edgemti eval  --pack packs/sst2 ...    official GLUE metric of a pack
      edgemti compile --pack ... --out build/  prune, quantize, bitmask-encode into RRAM/SRAM/DRAM images
      edgemti inspect build/                 memory map and footprint of a build
      edgemti report build/                  area, energy and latency on the simulated accelerator
      edgemti serve build/                   serve multi-task requests, logging energy/latency per request
      edgemti demo                           all of the above, offline, in a few minutes
    """
    setup_logging(verbose)


def echo_json(obj) -> None:
    click.echo(json.dumps(obj, indent=2, default=str))
