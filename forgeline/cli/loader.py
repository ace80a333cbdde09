"""Builds the `forgeline` command from the kernel's groups and the ones installed packages
declare in the ``forgeline.commands`` entry-point group, so a service (forgeline's own or a third
party's) adds its commands without a kernel edit.

An entry point names a Typer app (added as the group ``forgeline NAME``) or a function that takes
the root app and registers commands on it (``forgeline run``, ``forgeline compress``). One that
fails to import or to register is reported with its distribution and skipped: the other
commands still work.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Collection
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

import typer

from forgeline.cli import plugins, serve
from forgeline.cli.app import SERVICES, err, new_app, print_error

GROUP = "forgeline.commands"
# The kernel's own groups: they need no service, so they are there even with none installed.
KERNEL_GROUPS: dict[str, typer.Typer | Callable[[typer.Typer], None]] = {
    "serve": serve.register,
    "plugins": plugins.app,
}


@dataclass(frozen=True)
class SkippedGroup:
    """A command group that could not be added, and why."""

    name: str
    distribution: str
    error: str


def build_app() -> tuple[typer.Typer, list[SkippedGroup]]:
    """The whole `forgeline` command, and the installed groups that were skipped."""
    root = new_app()
    skipped = []
    # forgeline's own groups first: a package installed beside it cannot take `run` from it.
    for entry in sorted(entry_points(group=GROUP), key=lambda e: (not _own(e), e.name)):
        try:
            _add(root, entry.name, entry.load(), reserved=set(KERNEL_GROUPS))
        except Exception as exc:  # any failure of an installed package's code
            skipped.append(SkippedGroup(entry.name, _distribution(entry), _why(exc)))
    # Added last so that `serve` closes the stack's panel; its names were reserved above.
    for name, target in KERNEL_GROUPS.items():
        _add(root, name, target)
    return root, skipped


def main() -> None:
    """The `forgeline` console script: run the command, print a forgeline error once, exit 1."""
    from forgeline.errors import ForgelineError

    root, skipped = build_app()
    for group in skipped:
        err.print(
            f"[yellow]skipped[/yellow] command group {group.name} ({group.distribution}): "
            f"{group.error}",
            soft_wrap=True,
        )
    try:
        root()
    except ForgelineError as exc:
        print_error(exc)
        sys.exit(1)


def _add(root: typer.Typer, name: str, target: object, reserved: Collection[str] = ()) -> None:
    """Adds one group to ``root``, all of it or nothing; a command name already taken (or
    ``reserved`` for the kernel) is an error: the first package to claim a name keeps it."""
    commands, groups = len(root.registered_commands), len(root.registered_groups)
    taken = _names(root) | set(reserved)
    try:
        if isinstance(target, typer.Typer):
            root.add_typer(target, name=name)
        elif callable(target):
            target(root)
        else:
            raise TypeError(f"{type(target).__name__} is neither a Typer app nor a function")
        added = root.registered_commands[commands:] + root.registered_groups[groups:]
        clash = sorted(taken & _names(root, added))
        if clash:
            raise ValueError(f"command {', '.join(clash)} is already defined")
    except BaseException:
        del root.registered_commands[commands:]
        del root.registered_groups[groups:]
        raise
    for info in added:
        # Typer prints panel-less commands first: a newcomer should meet `run` first.
        if not isinstance(info.rich_help_panel, str) and not _panel_of(info):
            info.rich_help_panel = SERVICES


def _names(root: typer.Typer, infos: list | None = None) -> set[str]:
    """The command names ``infos`` (default: all of ``root``'s) put on the root."""
    if infos is None:
        infos = root.registered_commands + root.registered_groups
    names = set()
    for info in infos:
        if isinstance(info, typer.models.TyperInfo):
            names.add(info.name if isinstance(info.name, str) else info.typer_instance.info.name)
        else:
            names.add(info.name or info.callback.__name__.replace("_", "-"))
    return names


def _panel_of(info: object) -> str | None:
    """The panel a sub-app chose for itself (typer.Typer(rich_help_panel=...))."""
    instance = getattr(info, "typer_instance", None)
    panel = getattr(getattr(instance, "info", None), "rich_help_panel", None)
    return panel if isinstance(panel, str) else None


def _own(entry: EntryPoint) -> bool:
    return entry.dist is not None and entry.dist.name == "forgeline"


def _distribution(entry: EntryPoint) -> str:
    return f"{entry.dist.name}=={entry.dist.version}" if entry.dist else "unknown distribution"


def _why(exc: BaseException) -> str:
    from forgeline.errors import ForgelineError

    if isinstance(exc, ForgelineError):
        return exc.message
    return f"{type(exc).__name__}: {exc}"
