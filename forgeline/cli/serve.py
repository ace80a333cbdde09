"""`forgeline serve NAME`: one installed service in the foreground (the kernel's server)."""

from __future__ import annotations

from typing import Annotated

import typer

from forgeline.cli.app import STACK, settings


def serve(
    name: Annotated[str, typer.Argument(help="Service to run, e.g. data.")],
    port: Annotated[int | None, typer.Option(help="Port (0 = any free one).")] = None,
) -> None:
    """Run one service in the foreground until SIGTERM or Ctrl-C."""
    import asyncio

    from forgeline import logging as flog
    from forgeline.server import serve as run

    current = settings()
    flog.configure(json=current.log_json, level=current.log_level)

    def ready(bound: int) -> None:
        print(f"forgeline {name} serving on {current.host}:{bound}", flush=True)

    asyncio.run(run(name, current, port=port, on_ready=ready))


def register(root: typer.Typer) -> None:
    root.command("serve", rich_help_panel=STACK)(serve)
