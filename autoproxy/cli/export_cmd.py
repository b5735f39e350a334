"""``autoproxy export`` and ``autoproxy list``: discovered proxies into the registry and out to
standalone modules."""
from __future__ import annotations

import sys

import click

from autoproxy.cli import main


@main.command("export")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--name", required=True, help="Registry name (a Python identifier).")
@click.option("--pick", default="best", show_default=True,
              help="'best' (the run's chosen formula) or a row number of `autoproxy inspect`.")
@click.option("--python", "python_out", type=click.Path(dir_okay=False), default=None,
              help="Also write a standalone module (imports only torch) defining NAME(net, inputs, targets, ...).")
@click.option("--overwrite", is_flag=True, help="Replace a user proxy of the same name.")
def export_command(run_dir, name, pick, python_out, overwrite) -> None:
    """Add a formula of RUN_DIR to the proxy registry ($AUTOPROXY_REGISTRY). Everything is checked
    before anything is written: a refused export writes neither the entry nor the module."""
    from autoproxy.export import export_run

    doc, path = export_run(run_dir, name, pick, overwrite=overwrite, python_out=python_out)
    click.echo(f"{name}: {doc['simplified']}\nregistered: {path}")
    if python_out:
        click.echo(f"standalone module: {python_out}")


@main.command("list")
def list_command() -> None:
    """Every proxy: built-in, in the user registry and from installed packages, with the expression
    it was parsed to. A registry file or entry point that cannot be loaded is named on stderr (one
    line each) and makes the exit status 1; the others are still listed."""
    from autoproxy.registry import scan_proxies

    listing = scan_proxies()
    for name, proxy in listing.proxies.items():
        click.echo(f"{name:<16} {proxy.kind:<10} {proxy.origin}  {proxy.expression or ''}".rstrip())
    for problem in listing.problems:
        click.echo(f"skipped: {problem}", err=True)
    if listing.problems:
        sys.exit(1)
