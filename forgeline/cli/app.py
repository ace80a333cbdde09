"""The root of the `forgeline` command line and what every command group shares: the options
(--address, --json, --wait), settings, the consoles, a gRPC client, following an operation, and
printing an error once.

Command groups live beside the code they drive (services/<name>/commands.py, gateway/commands.py)
and join the root through the ``forgeline.commands`` entry points (see forgeline.cli.loader).
Heavy imports happen inside commands so `forgeline --help` stays fast.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from typer.core import TyperGroup

if TYPE_CHECKING:
    import click

    from forgeline.client import Client
    from forgeline.errors import ForgelineError
    from forgeline.registry import PluginRegistry
    from forgeline.settings import Settings

# The root's help panels, in the order a newcomer reads them: a pipeline first, then the stack
# that runs it, then each service's own commands. A group that names no panel joins SERVICES.
PIPELINES = "Pipelines"
STACK = "Local stack"
SERVICES = "Services"
PANELS = (PIPELINES, STACK, SERVICES)

console = Console()
err = Console(stderr=True)

AddressOpt = Annotated[
    str | None, typer.Option("--address", help="Service address (default from settings).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
WaitOpt = Annotated[bool, typer.Option("--wait/--no-wait", help="Follow the operation.")]
# A service resolves the paths a client sends, not the client: a relative path typed here means
# a place under the service's first data root, which is this directory only when the service was
# started here (or by this command: see `forgeline run`).
PATHS_RESOLVE_ON_THE_SERVER = (
    "paths are resolved by the service, not here: a relative path is taken relative to the "
    "service's first data root (FORGELINE_DATA_ROOTS where it runs; its working directory when "
    "unset), and every path must lie inside its data roots"
)
PATH_REASONS = {"PATH_NOT_FOUND", "PATH_OUTSIDE_ROOTS"}


class PanelOrder(TyperGroup):
    """Lists commands panel by panel in PANELS' order (typer prints panels in the order their
    first command is listed): the pipeline and stack commands as they were added, the service
    groups by name, since installed packages add them in no particular order."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        def key(name: str) -> tuple[int, str]:
            panel = getattr(self.commands[name], "rich_help_panel", None)
            rank = PANELS.index(panel) if panel in PANELS else len(PANELS)
            return rank, name if rank >= PANELS.index(SERVICES) else ""

        return sorted(super().list_commands(ctx), key=key)


def new_app() -> typer.Typer:
    """An empty root: forgeline.cli.loader.build_app adds the kernel's and the services' groups."""
    return typer.Typer(
        cls=PanelOrder, no_args_is_help=True, help="forgeline: from raw data to a served model."
    )


def print_error(exc: ForgelineError) -> None:
    """An error on stderr, once, with a hint when a path was refused."""
    for line in error_lines(exc):
        err.print(line)
    if exc.reason in PATH_REASONS:
        err.print(f"[yellow]hint[/yellow] {PATHS_RESOLVE_ON_THE_SERVER}")


def error_lines(exc: ForgelineError) -> list[str]:
    """An error as the CLI prints it (rich markup): the status once (its reason too when that
    says more than the code), the message once, then each field violation once. A message that
    restates the violations (InvalidArgument.for_field, Violations, the gateway's "the pipeline
    is not valid: FIRST (and N more)") is cut where they start: they follow, one a line."""
    from rich.markup import escape

    status = exc.code.name if exc.reason == exc.code.name else f"{exc.code.name} {exc.reason}"
    message = exc.message
    more = re.search(r"\(and (\d+) more\)$", message)
    if exc.violations:
        # Found by the field alone: a server clips a long message and each violation apart.
        start = message.find(f"{exc.violations[0].field}: ")
        if start >= 0:
            message = message[:start].rstrip(" :;")
    lines = [f"[red]error[/red] {status}" + (f": {escape(message)}" if message else "")]
    shown = list(dict.fromkeys(exc.violations))
    for violation in shown:
        lines.append(f"  - {escape(violation.field)}: {escape(violation.description)}")
    # A reply carries a bounded number of violations; the message still counts them all.
    unshown = 1 + int(more.group(1)) - len(exc.violations) if more and exc.violations else 0
    if unshown > 0:
        lines.append(f"  ... and {unshown} more")
    return lines


def settings() -> Settings:
    """This process's settings; bad FORGELINE_* variables end the command with exit code 2."""
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from forgeline.settings import Settings

    try:
        return Settings()
    except (ValidationError, SettingsError) as exc:
        err.print(f"[red]error[/red] bad settings (FORGELINE_* environment variables): {exc}")
        raise typer.Exit(2) from None


def plugin_registry() -> PluginRegistry:
    """The registry this process would load plugins through, as settings configure it."""
    from forgeline.registry import PluginRegistry

    current = settings()
    return PluginRegistry(
        allow=current.plugins_allow,
        required=current.plugins_required,
        autoload=current.plugins_autoload,
    )


def client(address: str | None, service: str) -> Client:
    """A client of ``service`` at --address, else at the address settings give it."""
    from forgeline.client import Client

    current = settings()
    return Client(address or current.address_for(service), token=current.auth_token or None)


def plugin_specs(items: list[str], option: str) -> list[Any]:
    """Parses `name` or `name={"json": "config"}` into PluginSpec messages."""
    from forgeline.convert import struct
    from forgeline.v1 import common_pb2

    specs = []
    for i, item in enumerate(items):
        name, _, raw = item.partition("=")
        config = json_value(raw, f"{option}[{i}]", "config is not JSON") if raw else {}
        specs.append(common_pb2.PluginSpec(name=name.strip(), config=struct(config)))
    return specs


def json_value(raw: str, option: str, problem: str = "not JSON") -> Any:
    """A JSON value typed on the command line, or INVALID_ARGUMENT naming the option."""
    from forgeline.errors import InvalidArgument

    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidArgument.for_field(option, f"{problem}: {exc}") from exc


def column_list(values: list[str] | None) -> list[str]:
    """Column names from a repeatable option whose values may each be a comma-separated list
    (``--keep a,b --keep c``): people write lists both ways. In order, each name once."""
    names = (name.strip() for value in values or [] for name in value.split(","))
    return list(dict.fromkeys(name for name in names if name))


def follow(client: Client, operation: Any, response_type: Any, wait: bool, as_json: bool) -> Any:
    """Shows progress events until the operation is done; returns its response. Without
    ``wait``, prints the operation's name and ends the command."""
    if not wait:
        console.print(operation.name)
        raise typer.Exit(0)
    if not as_json:
        shown: dict[str, float] = {}
        progress = ""
        with console.status(f"{operation.name}") as status:
            for event in client.stream_events(operation.name):
                if event.HasField("progress"):
                    progress = f"{event.progress.progress:4.0%} {event.progress.message}"
                elif event.HasField("metrics"):
                    shown.update({p.name: p.value for p in event.metrics.points})
                else:
                    continue
                numbers = "  ".join(
                    f"{k} {shown[k]:.4g}" for k in ("loss", "eval_accuracy") if k in shown
                )
                status.update(f"{progress}  {numbers}")
    return client.wait(operation, response_type)


def print_json(message: Any) -> None:
    """A reply as --json prints it: one JSON document on stdout, proto field names."""
    from google.protobuf import json_format

    print(json_format.MessageToJson(message, preserving_proto_field_name=True))
