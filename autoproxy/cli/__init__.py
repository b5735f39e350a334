"""The ``autoproxy`` command. Subcommands live in their own modules and import torch lazily,
so ``autoproxy --help`` stays fast."""
from __future__ import annotations

import sys

import click

from autoproxy.errors import AutoproxyError


class _Group(click.Group):
    """Turns project errors into one clear line and a non-zero exit instead of a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except AutoproxyError as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(2)


@click.group(cls=_Group)
@click.version_option(package_name="autoproxy")
def main() -> None:
    """Discover, inspect and use zero-cost NAS proxies."""


def _register() -> None:
    """Each subcommand module adds itself to ``main`` on import; one line per module here."""
    import autoproxy.cli.cache_cmd  # noqa: F401
    import autoproxy.cli.groundtruth_cmd  # noqa: F401
    import autoproxy.cli.search_cmd  # noqa: F401
    import autoproxy.cli.try_cmd  # noqa: F401
    import autoproxy.cli.inspect_cmd  # noqa: F401
    import autoproxy.cli.evaluate_cmd  # noqa: F401
    import autoproxy.cli.export_cmd  # noqa: F401


_register()
