"""``autoproxy export`` and ``autoproxy list``: discovered proxies into the registry and out to
standalone modules."""
from __future__ import annotations

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
    """Add a formula of RUN_DIR to the proxy registry ($AUTOPROXY_REGISTRY)."""
    from autoproxy.export import export_run, write_standalone

    doc, path = export_run(run_dir, name, pick, overwrite=overwrite)
    click.echo(f"{name}: {doc['simplified']}\nregistered: {path}")
    if python_out:
        click.echo(f"standalone module: {write_standalone(doc, python_out)}")


@main.command("list")
def list_command() -> None:
    """Every proxy: built-in, in the user registry and from installed packages."""
    from autoproxy.registry import all_proxies

    for name, proxy in all_proxies().items():
        detail = proxy.document.get("simplified", "") if proxy.kind == "expression" else ""
        click.echo(f"{name:<16} {proxy.kind:<10} {proxy.origin}  {detail}".rstrip())
