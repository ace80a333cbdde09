"""`forgeline data ...`: the data service's commands (ingest, clean, augment, split, profile,
list, head), each a thin client of its gRPC API."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from forgeline.cli.app import (
    AddressOpt,
    JsonOpt,
    WaitOpt,
    client,
    column_list,
    console,
    err,
    follow,
    plugin_specs,
)

app = typer.Typer(no_args_is_help=True, help="Datasets: ingest, clean, augment, split...")


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


def _print_warnings(warnings) -> None:
    """A parse that looks wrong, on stderr (so --json output stays one JSON document)."""
    for warning in warnings:
        err.print(f"[yellow]warning[/yellow] {warning.code}: {warning.message}", soft_wrap=True)


@app.command("ingest")
def data_ingest(
    source: Annotated[
        str,
        typer.Argument(
            help="File, folder or URL. The data service resolves the path, not this command: "
            "a relative path is taken relative to its first data root (FORGELINE_DATA_ROOTS "
            "where it runs), and every path must lie inside its data roots."
        ),
    ],
    text: Annotated[str, typer.Option(help="Source column holding the text.")] = "",
    label: Annotated[str, typer.Option(help="Source column holding the label.")] = "",
    keep: Annotated[
        list[str] | None,
        typer.Option(help="Other columns to keep: a,b or repeated (--keep a --keep b)."),
    ] = None,
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
        columns=pb.ColumnMapping(text=text, label=label, keep=column_list(keep)),
        name=name,
    )
    if loader:
        request.loader.CopyFrom(plugin_specs([loader], "loader")[0])
    with client(address, "data") as service:
        op = service.data.IngestDataset(request)
        result = follow(service, op, pb.IngestDatasetResponse, wait, as_json)
    _print_dataset(result.dataset, as_json)
    _print_warnings(result.warnings)


@app.command("clean")
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
        cleaners=plugin_specs(cleaner, "cleaners"),
        output_name=output_name,
        seed=seed,
    )
    with client(address, "data") as service:
        result = follow(
            service, service.data.CleanDataset(request), pb.CleanDatasetResponse, wait, as_json
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


@app.command("augment")
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
        augmenters=plugin_specs(augmenter, "augmenters"),
        output_name=output_name,
        seed=seed,
        drop_original=drop_original,
    )
    with client(address, "data") as service:
        result = follow(
            service, service.data.AugmentDataset(request), pb.AugmentDatasetResponse, wait, as_json
        )
    if not as_json:
        console.print(", ".join(f"{k}: +{v}" for k, v in result.rows_added.items()))
    _print_dataset(result.dataset, as_json)


@app.command("split")
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
    with client(address, "data") as service:
        result = follow(
            service, service.data.SplitDataset(request), pb.SplitDatasetResponse, wait, as_json
        )
    for part in ("train", "validation", "test"):
        if result.HasField(part):
            _print_dataset(getattr(result, part), as_json)


@app.command("profile")
def data_profile(
    dataset: Annotated[str, typer.Argument(help="Dataset id, name or name@version.")],
    address: AddressOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Rows, label distribution, text lengths, duplicate rate."""
    from google.protobuf import json_format

    from forgeline.v1 import data_service_pb2 as pb

    with client(address, "data") as service:
        op = service.data.ProfileDataset(pb.ProfileDatasetRequest(dataset_id=dataset))
        profile = follow(service, op, pb.ProfileDatasetResponse, True, as_json).profile
    if as_json:
        print(json_format.MessageToJson(profile))
        return
    console.print(
        f"[bold]{profile.dataset_id}[/bold]: {profile.num_rows} rows, "
        f"duplicate rate {profile.duplicate_rate:.2%}"
    )
    _print_warnings(profile.warnings)
    if profile.label_counts:
        console.print(
            "labels: " + ", ".join(f"{k}={v}" for k, v in sorted(profile.label_counts.items()))
        )
    t = profile.text_length
    console.print(
        f"text length: min {t.min:.0f}, p50 {t.p50:.0f}, mean {t.mean:.1f}, "
        f"p95 {t.p95:.0f}, max {t.max:.0f}"
    )


@app.command("list")
def data_list(
    name: Annotated[str, typer.Option(help="Only versions of this name.")] = "",
    limit: int = 50,
    address: AddressOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Datasets, newest first."""
    from forgeline.v1 import data_service_pb2 as pb

    with client(address, "data") as service:
        reply = service.data.ListDatasets(pb.ListDatasetsRequest(name=name, page_size=limit))
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


@app.command("head")
def data_head(
    dataset: Annotated[str, typer.Argument(help="Dataset id, name or name@version.")],
    n: Annotated[int, typer.Option("-n", help="Rows to show.")] = 10,
    address: AddressOpt = None,
) -> None:
    """The first rows of a dataset."""
    from forgeline.convert import from_struct
    from forgeline.v1 import data_service_pb2 as pb

    with client(address, "data") as service:
        for reply in service.data.ReadRows(pb.ReadRowsRequest(dataset_id=dataset, limit=n)):
            for row in reply.rows:
                print(json.dumps(from_struct(row), ensure_ascii=False))
