"""`forgeline http serve`: the HTTP face in the foreground, with an --upstream of choice
(`forgeline serve http` runs it like any service, upstream from the settings)."""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True, help="The HTTP face: REST predict and the OpenAI API.")


@app.command("serve")
def serve(
    port: Annotated[int | None, typer.Option(help="Port (0 = any free one; default 8080).")] = None,
    upstream: Annotated[
        str | None, typer.Option(help="The serving service's address (default: the settings').")
    ] = None,
) -> None:
    """Run the HTTP face until SIGTERM or Ctrl-C."""
    import asyncio

    from forgeline import logging as flog
    from forgeline.cli.app import settings
    from forgeline.services.http.server import serve as run

    current = settings()
    flog.configure(json=current.log_json, level=current.log_level)

    def ready(bound: int) -> None:
        print(f"forgeline http serving on {current.host}:{bound}", flush=True)

    asyncio.run(run(current, port=port, upstream=upstream, on_ready=ready))
