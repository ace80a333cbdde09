"""The `forgeline` command line: run services, list plugins, work with datasets.

Heavy imports happen inside commands so `forgeline --help` stays fast.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(no_args_is_help=True, help="forgeline: from raw data to a served model.")
plugins_app = typer.Typer(no_args_is_help=True, help="Installed plugins.")
data_app = typer.Typer(no_args_is_help=True, help="Datasets: ingest, clean, augment, split...")
app.add_typer(plugins_app, name="plugins")
app.add_typer(data_app, name="data")
console = Console()
err = Console(stderr=True)

AddressOpt = Annotated[
    str | None, typer.Option("--address", help="Data service address (default from settings).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
WaitOpt = Annotated[bool, typer.Option("--wait/--no-wait", help="Follow the operation.")]


def main() -> None:
    from forgeline.errors import ForgelineError

    try:
        app()
    except ForgelineError as exc:
        err.print(f"[red]error[/red] {exc.code.name} {exc.reason}: {exc.message}")
        for v in exc.violations:
            err.print(f"  - {v.field}: {v.description}")
        sys.exit(1)


def _settings():
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from forgeline.settings import Settings

    try:
        return Settings()
    except (ValidationError, SettingsError) as exc:
        err.print(f"[red]error[/red] bad settings (FORGELINE_* environment variables): {exc}")
        raise typer.Exit(2) from None


# --- serve / plugins ---------------------------------------------------------------------------


@app.command()
def serve(
    name: Annotated[str, typer.Argument(help="Service to run, e.g. data.")],
    port: Annotated[int | None, typer.Option(help="Port (0 = any free one).")] = None,
) -> None:
    """Run one service in the foreground until SIGTERM or Ctrl-C."""
    import asyncio

    from forgeline import logging as flog
    from forgeline.server import serve as run

    settings = _settings()
    flog.configure(json=settings.log_json, level=settings.log_level)

    def ready(bound: int) -> None:
        print(f"forgeline {name} serving on {settings.host}:{bound}", flush=True)

    asyncio.run(run(name, settings, port=port, on_ready=ready))


@plugins_app.command("list")
def plugins_list(
    kind: Annotated[str, typer.Option(help="Only this kind, e.g. cleaners.")] = "",
) -> None:
    """Installed plugins: name, kind, package==version (and any that failed to load)."""
    from forgeline.plugin_service import plugin_infos
    from forgeline.registry import PluginRegistry

    settings = _settings()
    registry = PluginRegistry(
        allow=settings.plugins_allow,
        required=settings.plugins_required,
        autoload=settings.plugins_autoload,
    )
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


# --- data --------------------------------------------------------------------------------------


def _client(address: str | None):
    from forgeline.client import Client

    settings = _settings()
    return Client(address or settings.address_for("data"), token=settings.auth_token or None)


def _plugin_specs(items: list[str], option: str) -> list[Any]:
    """Parses `name` or `name={"json": "config"}` into PluginSpec messages."""
    from forgeline.convert import struct
    from forgeline.errors import InvalidArgument
    from forgeline.v1 import common_pb2

    specs = []
    for i, item in enumerate(items):
        name, _, raw = item.partition("=")
        try:
            config = json.loads(raw) if raw else {}
        except json.JSONDecodeError as exc:
            raise InvalidArgument.for_field(f"{option}[{i}]", f"config is not JSON: {exc}") from exc
        specs.append(common_pb2.PluginSpec(name=name.strip(), config=struct(config)))
    return specs


def _follow(client, operation, response_type, wait: bool, as_json: bool):
    """Shows progress events until the operation is done; returns its response."""
    if not wait:
        console.print(operation.name)
        raise typer.Exit(0)
    if not as_json:
        with console.status(f"{operation.name}") as status:
            for event in client.stream_events(operation.name):
                if event.HasField("progress"):
                    status.update(f"{event.progress.progress:4.0%} {event.progress.message}")
    return client.wait(operation, response_type)


def _print_dataset(dataset, as_json: bool) -> None:
    from google.protobuf import json_format

    if as_json:
        print(json_format.MessageToJson(dataset))
        return
    console.print(
        f"[bold]{dataset.artifact.id}[/bold]  {dataset.name} v{dataset.version}  "
        f"{dataset.num_rows} rows  columns: "
        + ", ".join(f"{c.name}:{c.type}" for c in dataset.columns)
    )


@data_app.command("ingest")
def data_ingest(
    source: Annotated[str, typer.Argument(help="File, folder or URL.")],
    text: Annotated[str, typer.Option(help="Source column holding the text.")] = "",
    label: Annotated[str, typer.Option(help="Source column holding the label.")] = "",
    keep: Annotated[list[str] | None, typer.Option(help="Other columns to keep.")] = None,
    name: Annotated[str, typer.Option(help="Dataset name.")] = "",
    loader: Annotated[str, typer.Option(help='Loader, e.g. txt={"delimiter": "\\t"}.')] = "",
    address: AddressOpt = None,
    wait: WaitOpt = True,
    as_json: JsonOpt = False,
) -> None:
    """Read a file, folder or URL into a new dataset."""
    from forgeline.v1 import data_service_pb2 as pb

    request = pb.IngestDatasetRequest(
        source=source,
        columns=pb.ColumnMapping(text=text, label=label, keep=keep or []),
        name=name,
    )
    if loader:
        request.loader.CopyFrom(_plugin_specs([loader], "loader")[0])
    with _client(address) as client:
        op = client.data.IngestDataset(request)
        result = _follow(client, op, pb.IngestDatasetResponse, wait, as_json)
    _print_dataset(result.dataset, as_json)


@data_app.command("clean")
def data_clean(
    dataset: Annotated[str, typer.Argument(help="Dataset id, name or name@version.")],
    cleaner: Annotated[
        list[str],
        typer.Option(help='Cleaner, e.g. dedup_near={"threshold": 0.9}. Repeat, in order.'),
    ],
    output_name: Annotated[str, typer.Option(help="Name of the result.")] = "",
    seed: int = 0,
    address: AddressOpt = None,
    wait: WaitOpt = True,
    as_json: JsonOpt = False,
) -> None:
    """Run cleaners in order; prints rows in/out per step."""
    from forgeline.v1 import data_service_pb2 as pb

    request = pb.CleanDatasetRequest(
        dataset_id=dataset,
        cleaners=_plugin_specs(cleaner, "cleaners"),
        output_name=output_name,
        seed=seed,
    )
    with _client(address) as client:
        result = _follow(
            client, client.data.CleanDataset(request), pb.CleanDatasetResponse, wait, as_json
        )
    if not as_json:
        table = Table("cleaner", "rows in", "rows out", "seconds", "example")
        for step in result.steps:
            example = (
                f"{step.examples[0].reason}: {step.examples[0].text[:50]}" if step.examples else ""
            )
            table.add_row(
                step.cleaner, str(step.rows_in), str(step.rows_out), f"{step.seconds:.3f}", example
            )
        console.print(table)
    _print_dataset(result.dataset, as_json)


@data_app.command("augment")
def data_augment(
    dataset: Annotated[str, typer.Argument(help="Dataset id, name or name@version.")],
    augmenter: Annotated[
        list[str], typer.Option(help='Augmenter, e.g. random_swap={"alpha": 0.2}.')
    ],
    output_name: str = "",
    seed: int = 0,
    drop_original: bool = False,
    address: AddressOpt = None,
    wait: WaitOpt = True,
    as_json: JsonOpt = False,
) -> None:
    """Generate new rows with augmenters (seeded, reproducible)."""
    from forgeline.v1 import data_service_pb2 as pb

    request = pb.AugmentDatasetRequest(
        dataset_id=dataset,
        augmenters=_plugin_specs(augmenter, "augmenters"),
        output_name=output_name,
        seed=seed,
        drop_original=drop_original,
    )
    with _client(address) as client:
        result = _follow(
            client, client.data.AugmentDataset(request), pb.AugmentDatasetResponse, wait, as_json
        )
    if not as_json:
        console.print(", ".join(f"{k}: +{v}" for k, v in result.rows_added.items()))
    _print_dataset(result.dataset, as_json)


@data_app.command("split")
def data_split(
    dataset: Annotated[str, typer.Argument(help="Dataset id, name or name@version.")],
    train: float = 0.8,
    validation: float = 0.1,
    test: float = 0.1,
    stratify: Annotated[bool, typer.Option(help="Keep label proportions.")] = True,
    seed: int = 0,
    address: AddressOpt = None,
    wait: WaitOpt = True,
    as_json: JsonOpt = False,
) -> None:
    """Split into train / validation / test."""
    from forgeline.v1 import data_service_pb2 as pb

    request = pb.SplitDatasetRequest(
        dataset_id=dataset,
        train_fraction=train,
        validation_fraction=validation,
        test_fraction=test,
        stratify=stratify,
        seed=seed,
    )
    with _client(address) as client:
        result = _follow(
            client, client.data.SplitDataset(request), pb.SplitDatasetResponse, wait, as_json
        )
    for part in ("train", "validation", "test"):
        if result.HasField(part):
            _print_dataset(getattr(result, part), as_json)


@data_app.command("profile")
def data_profile(
    dataset: Annotated[str, typer.Argument(help="Dataset id, name or name@version.")],
    address: AddressOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Rows, label distribution, text lengths, duplicate rate."""
    from google.protobuf import json_format

    from forgeline.v1 import data_service_pb2 as pb

    with _client(address) as client:
        op = client.data.ProfileDataset(pb.ProfileDatasetRequest(dataset_id=dataset))
        profile = _follow(client, op, pb.ProfileDatasetResponse, True, as_json).profile
    if as_json:
        print(json_format.MessageToJson(profile))
        return
    console.print(
        f"[bold]{profile.dataset_id}[/bold]: {profile.num_rows} rows, "
        f"duplicate rate {profile.duplicate_rate:.2%}"
    )
    if profile.label_counts:
        console.print(
            "labels: " + ", ".join(f"{k}={v}" for k, v in sorted(profile.label_counts.items()))
        )
    t = profile.text_length
    console.print(
        f"text length: min {t.min:.0f}, p50 {t.p50:.0f}, mean {t.mean:.1f}, "
        f"p95 {t.p95:.0f}, max {t.max:.0f}"
    )


@data_app.command("list")
def data_list(
    name: Annotated[str, typer.Option(help="Only versions of this name.")] = "",
    limit: int = 50,
    address: AddressOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Datasets, newest first."""
    from forgeline.v1 import data_service_pb2 as pb

    with _client(address) as client:
        reply = client.data.ListDatasets(pb.ListDatasetsRequest(name=name, page_size=limit))
    if as_json:
        from google.protobuf import json_format

        print(json_format.MessageToJson(reply))
        return
    table = Table("id", "name", "version", "rows", "made by")
    for d in reply.datasets:
        table.add_row(
            d.artifact.id,
            d.name,
            str(d.version),
            str(d.num_rows),
            d.artifact.lineage.producer.rsplit("/", 1)[-1],
        )
    console.print(table)


@data_app.command("head")
def data_head(
    dataset: Annotated[str, typer.Argument(help="Dataset id, name or name@version.")],
    n: Annotated[int, typer.Option("-n", help="Rows to show.")] = 10,
    address: AddressOpt = None,
) -> None:
    """The first rows of a dataset."""
    from forgeline.convert import from_struct
    from forgeline.v1 import data_service_pb2 as pb

    with _client(address) as client:
        for reply in client.data.ReadRows(pb.ReadRowsRequest(dataset_id=dataset, limit=n)):
            for row in reply.rows:
                print(json.dumps(from_struct(row), ensure_ascii=False))
