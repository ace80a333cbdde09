"""`forgeline plugins list|show`: the plugins installed here, as this process's registry sees
them (the same listing a service's ListPlugins gives)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from forgeline.cli.app import SERVICES, JsonOpt, console, err, plugin_registry

app = typer.Typer(no_args_is_help=True, help="Installed plugins.", rich_help_panel=SERVICES)


@app.command("list")
def plugins_list(
    kind: Annotated[str, typer.Option(help="Only this kind, e.g. cleaners.")] = "",
) -> None:
    """Installed plugins: name, kind, package==version (and any that failed to load)."""
    from forgeline.plugin_service import plugin_infos

    registry = plugin_registry()
    table = Table("kind", "name", "package", "description")
    for info in plugin_infos(registry, kind):
        table.add_row(
            info.kind, info.name, f"{info.distribution}=={info.version}", info.description
        )
    console.print(table)
    for error in registry.errors():
        err.print(
            f"[yellow]failed[/yellow] {error.kind}:{error.name} ({error.distribution}): "
            f"{error.error}"
        )


@app.command("show")
def plugins_show(
    name: Annotated[str, typer.Argument(help="The plugin's name, e.g. dedup_near.")],
    kind: Annotated[
        str, typer.Option(help="Its kind, e.g. cleaners (needed when two kinds share the name).")
    ] = "",
    as_json: JsonOpt = False,
) -> None:
    """One plugin: its description and the JSON Schema of its config."""
    from forgeline.errors import InvalidArgument, NotFound
    from forgeline.plugin_service import plugin_infos

    registry = plugin_registry()
    found = [info for info in plugin_infos(registry, kind) if info.name == name]
    if not found:
        # The registry says why: the known names of the kind, or the error of a broken plugin.
        for k in [kind] if kind else sorted({e.kind for e in registry.errors() if e.name == name}):
            registry.get(k, name)
        raise NotFound(
            f"no plugin named {name!r} is installed; `forgeline plugins list` shows those that are",
            reason="PLUGIN_NOT_FOUND",
            metadata={"plugin": name},
        )
    if len(found) > 1:
        kinds = ", ".join(info.kind for info in found)
        raise InvalidArgument.for_field(
            "--kind", f"plugins of several kinds are named {name!r} ({kinds}): name one"
        )
    (info,) = found
    schema = json.loads(info.config_schema_json)
    if as_json:
        fields = ("kind", "name", "distribution", "version", "description")
        shown = {**{f: getattr(info, f) for f in fields}, "config_schema": schema}
        print(json.dumps(shown, indent=2))
        return
    console.print(f"{info.kind}:{info.name}  {info.distribution}=={info.version}", markup=False)
    console.print(info.description, markup=False, highlight=False)
    console.print("\nconfig (JSON Schema):", markup=False)
    console.print_json(data=schema, indent=2)
