"""The ``autoproxy`` command. Subcommands live in their own modules and import torch lazily,
so ``autoproxy --help`` stays fast."""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Iterator

import click

from autoproxy.errors import AutoproxyError


@contextmanager
def results_only_on_stdout() -> Iterator[None]:
    """Keep stdout for results. Native code writes to file descriptor 1 directly, past ``sys.stdout``
    and any Python logging setting (Ray's C++ core worker logs warnings such as ``core_worker.cc ...
    max_restarts > 0`` from the driver), so fd 1 points at stderr while a command runs and
    ``sys.stdout``, when it is fd 1, writes to a private copy of the real stdout."""
    sys.stdout.flush()
    real_stdout = os.dup(1)
    os.dup2(2, 1)
    python_stdout = sys.stdout
    if _is_fd1(python_stdout):
        sys.stdout = open(os.dup(real_stdout), "w", encoding=python_stdout.encoding, errors=python_stdout.errors,
                          buffering=1)
    try:
        yield
    finally:
        if sys.stdout is not python_stdout:
            sys.stdout.close()
            sys.stdout = python_stdout
        os.dup2(real_stdout, 1)
        os.close(real_stdout)


def _is_fd1(stream) -> bool:
    try:
        return stream.fileno() == 1
    except (AttributeError, OSError, ValueError):   # a test runner's in-memory stream
        return False


class _Group(click.Group):
    """Turns project errors into one clear line and a non-zero exit instead of a traceback, and keeps
    stdout for results."""

    def invoke(self, ctx: click.Context):
        try:
            with results_only_on_stdout():
                return super().invoke(ctx)
        except AutoproxyError as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(2)


class SpaceName(click.ParamType):
    """A ``--space`` value, resolved as soon as the command line is read: a bad name or plug-in is one
    line before any data is loaded, and the command passes the name on (workers resolve it again)."""

    name = "space"

    def convert(self, value, param, ctx) -> str:
        from autoproxy.spaces import get_space

        get_space(value)
        return value


#: The one ``--space`` option of every command that builds networks.
space_option = click.option(
    "--space", required=True, type=SpaceName(),
    help="Search space: nb201, nb101, nb301, mbnet, an installed plug-in (`autoproxy.spaces` entry point) or "
         "module:attribute naming a SearchSpace.")


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
