"""(stub: being built for issue 13)"""

from __future__ import annotations

import click


@click.command()
def command() -> None:
    """(being built)"""
    raise click.ClickException("not built yet")
