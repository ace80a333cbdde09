"""The `forgeline` command line: the kernel's groups (serve, plugins) and the ones services and
the gateway declare as ``forgeline.commands`` entry points, assembled by loader.build_app."""

from forgeline.cli.loader import build_app, main

__all__ = ["build_app", "main"]
