"""The ``edgemti`` command line: thin wrappers that parse options, call one library function, format the result.

Errors raised by the library (:class:`edgemti.errors.EdgemtiError`) become one-line messages and exit code 2
here, in one place; nothing else in edgemti prints or exits.
"""

from __future__ import annotations

import json
import logging
import sys

import click

from edgemti import __version__
from edgemti.errors import EdgemtiError


class _Group(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except EdgemtiError as exc:
            raise click.ClickException(f"{type(exc).__name__}: {exc}") from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
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
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(level=max(level, logging.DEBUG), format="%(levelname)s %(name)s: %(message)s")


def echo_json(obj) -> None:
    click.echo(json.dumps(obj, indent=2, default=str))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
