"""The `forgeline` command line: run services, list plugins, work with datasets, train models.

Heavy imports happen inside commands so `forgeline --help` stays fast.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from forgeline.v1 import common_pb2

if TYPE_CHECKING:
    from forgeline.errors import ForgelineError

app = typer.Typer(no_args_is_help=True, help="forgeline: from raw data to a served model.")
plugins_app = typer.Typer(no_args_is_help=True, help="Installed plugins.")
data_app = typer.Typer(no_args_is_help=True, help="Datasets: ingest, clean, augment, split...")
app.add_typer(plugins_app, name="plugins")
train_app = typer.Typer(no_args_is_help=True, help="Models: train, evaluate, predict.")
app.add_typer(data_app, name="data")
app.add_typer(train_app, name="train")
audit_app = typer.Typer(
    no_args_is_help=True, help="The audit log (safety service): verify its hash chain, show it."
)
app.add_typer(audit_app, name="audit")
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


def main() -> None:
    from forgeline.errors import ForgelineError

    try:
        app()
    except ForgelineError as exc:
        for line in error_lines(exc):
            err.print(line)
        if exc.reason in PATH_REASONS:
            err.print(f"[yellow]hint[/yellow] {PATHS_RESOLVE_ON_THE_SERVER}")
        sys.exit(1)


def error_lines(exc: ForgelineError) -> list[str]:
    """An error as the CLI prints it (rich markup): the status once (its reason too when that
    says more than the code), the message once, then each field violation once. A message that
    restates the violations (InvalidArgument.for_field, Violations, the gateway's "the pipeline
    is not valid: FIRST (and N more)") is cut where they start: they follow, one a line."""
    import re

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

    registry = _plugin_registry()
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


@plugins_app.command("show")
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

    registry = _plugin_registry()
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


def _plugin_registry():
    """The registry this process would load plugins through, as settings configure it."""
    from forgeline.registry import PluginRegistry

    settings = _settings()
    return PluginRegistry(
        allow=settings.plugins_allow,
        required=settings.plugins_required,
        autoload=settings.plugins_autoload,
    )


# --- data --------------------------------------------------------------------------------------


def _client(address: str | None, service: str = "data"):
    from forgeline.client import Client

    settings = _settings()
    return Client(address or settings.address_for(service), token=settings.auth_token or None)


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


def column_list(values: list[str] | None) -> list[str]:
    """Column names from a repeatable option whose values may each be a comma-separated list
    (``--keep a,b --keep c``): people write lists both ways. In order, each name once."""
    names = (name.strip() for value in values or [] for name in value.split(","))
    return list(dict.fromkeys(name for name in names if name))


def _follow(client, operation, response_type, wait: bool, as_json: bool):
    """Shows progress events until the operation is done; returns its response."""
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


@data_app.command("ingest")
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
        request.loader.CopyFrom(_plugin_specs([loader], "loader")[0])
    with _client(address) as client:
        op = client.data.IngestDataset(request)
        result = _follow(client, op, pb.IngestDatasetResponse, wait, as_json)
    _print_dataset(result.dataset, as_json)
    _print_warnings(result.warnings)


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


# --- train -------------------------------------------------------------------------------------

TASK_NAMES = {"classification": 1, "causal_lm": 2}


def _print_evaluation(evaluation) -> None:
    if evaluation.confusion_matrix.labels:
        labels = list(evaluation.confusion_matrix.labels)
        console.print(
            f"{evaluation.num_examples} examples  accuracy {evaluation.accuracy:.4f}  "
            f"macro F1 {evaluation.f1_macro:.4f}  loss {evaluation.loss:.4f}"
        )
        table = Table("true \\ predicted", *labels)
        counts = list(evaluation.confusion_matrix.counts)
        for i, label in enumerate(labels):
            row = counts[i * len(labels) : (i + 1) * len(labels)]
            table.add_row(label, *map(str, row))
        console.print(table)
    else:
        console.print(
            f"{evaluation.num_examples} examples  perplexity {evaluation.perplexity:.3f}  "
            f"loss {evaluation.loss:.4f}"
        )


@train_app.command("run")
def train_run(
    dataset: Annotated[str, typer.Argument(help="Training dataset: id, name or name@version.")],
    eval_dataset: Annotated[
        str, typer.Option("--eval", help="Held-out dataset scored after every epoch.")
    ] = "",
    model: Annotated[
        str,
        typer.Option(
            help="builtin:NAME, path:FOLDER, artifact:ID or config:MODEL_TYPE (a fresh model "
            "with a tokenizer trained on the dataset); a bare name is a builtin. The training "
            "service resolves FOLDER: a relative one is taken relative to its first data root "
            "(FORGELINE_DATA_ROOTS where it runs), not this directory."
        ),
    ] = "minilm-l6",
    model_config: Annotated[
        str, typer.Option(help='With config:TYPE, its fields as JSON, e.g. {"hidden_size": 128}.')
    ] = "{}",
    vocab_size: Annotated[int, typer.Option(help="With config:TYPE, the tokenizer's size.")] = 0,
    task: Annotated[str, typer.Option(help="classification or causal_lm.")] = "classification",
    finetune: Annotated[
        str, typer.Option(help="Strategy, e.g. lora or 'lora={\"r\": 16}'.")
    ] = "full",
    tracker: Annotated[
        list[str] | None, typer.Option(help="Tracker plugin (repeatable), e.g. tensorboard.")
    ] = None,
    text_column: str = "",
    label_column: str = "",
    learning_rate: Annotated[float, typer.Option("--lr", help="0: the strategy's default.")] = 0,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Per worker.")] = 16,
    epochs: int = 1,
    max_steps: Annotated[int, typer.Option(help="> 0: stop after this many steps.")] = 0,
    warmup_ratio: float = 0.0,
    weight_decay: float = 0.0,
    gradient_accumulation: int = 1,
    max_length: int = 128,
    seed: int = 0,
    group_by_length: Annotated[
        bool, typer.Option(help="Batch texts of similar length together: less padding.")
    ] = False,
    workers: int = 1,
    cpus_per_worker: float = 1.0,
    gpu: bool = False,
    bf16: bool = False,
    checkpoint_every: Annotated[int, typer.Option(help="Steps; 0: every epoch.")] = 0,
    max_failures: int = 0,
    name: Annotated[str, typer.Option("--name", help="Name of the model artifact.")] = "",
    address: AddressOpt = None,
    wait: WaitOpt = True,
    as_json: JsonOpt = False,
) -> None:
    """Fine-tune a model on a dataset (on Ray Train workers)."""
    from google.protobuf import json_format

    from forgeline.convert import struct
    from forgeline.errors import InvalidArgument
    from forgeline.v1 import training_service_pb2 as pb

    kind, _, value = model.partition(":") if ":" in model else ("builtin", "", model)
    if kind == "config":
        try:
            fields = json.loads(model_config)
        except json.JSONDecodeError as exc:
            raise InvalidArgument.for_field("--model-config", f"not JSON: {exc}") from exc
        source = pb.ModelSource(
            from_config=pb.ModelFromConfig(
                model_type=value, config=struct(fields), vocab_size=vocab_size
            )
        )
    elif kind in ("builtin", "path", "artifact"):
        source = pb.ModelSource(**{{"artifact": "artifact_id"}.get(kind, kind): value})
    else:
        raise InvalidArgument.for_field(
            "--model", "use builtin:NAME, path:FOLDER, artifact:ID or config:TYPE"
        )
    if task not in TASK_NAMES:
        raise InvalidArgument.for_field("--task", f"one of {', '.join(TASK_NAMES)}")
    request = pb.TrainModelRequest(
        train=common_pb2.DatasetInput(
            dataset_id=dataset, text_column=text_column, label_column=label_column
        ),
        model=source,
        task=TASK_NAMES[task],
        finetune=_plugin_specs([finetune], "--finetune")[0],
        trackers=_plugin_specs(tracker or [], "--tracker"),
        hyper_parameters=common_pb2.HyperParameters(
            learning_rate=learning_rate,
            batch_size_per_worker=batch_size,
            epochs=epochs,
            max_steps=max_steps,
            warmup_ratio=warmup_ratio,
            weight_decay=weight_decay,
            gradient_accumulation_steps=gradient_accumulation,
            max_sequence_length=max_length,
            seed=seed,
            group_by_length=group_by_length,
        ),
        scaling=common_pb2.Scaling(
            num_workers=workers, cpus_per_worker=cpus_per_worker, use_gpu=gpu, bf16=bf16
        ),
        checkpoint=pb.CheckpointPolicy(every_steps=checkpoint_every),
        failure=pb.FailurePolicy(max_failures=max_failures),
        output_name=name,
    )
    if eval_dataset:
        request.eval.CopyFrom(
            common_pb2.DatasetInput(
                dataset_id=eval_dataset, text_column=text_column, label_column=label_column
            )
        )
    with _client(address, "training") as client:
        result = _follow(
            client, client.training.TrainModel(request), pb.TrainModelResponse, wait, as_json
        )
    if as_json:
        print(json_format.MessageToJson(result))
        return
    share = result.trainable_parameters / max(result.total_parameters, 1)
    console.print(
        f"[bold]{result.model.id}[/bold]  {result.steps} steps  trained "
        f"{result.trainable_parameters:,} of {result.total_parameters:,} parameters "
        f"({share:.2%})  " + "  ".join(f"{k} {v:.4g}" for k, v in sorted(result.metrics.items()))
    )
    if result.HasField("evaluation"):
        _print_evaluation(result.evaluation)


@train_app.command("evaluate")
def train_evaluate(
    model: Annotated[
        str,
        typer.Argument(
            help="Model or adapter artifact id or name, or a baseline's stored model "
            "(TrainBaseline), scored without fitting it again."
        ),
    ],
    dataset: Annotated[str, typer.Argument(help="Dataset id, name or name@version.")],
    text_column: str = "",
    label_column: str = "",
    address: AddressOpt = None,
    wait: WaitOpt = True,
    as_json: JsonOpt = False,
) -> None:
    """Score a trained model on a dataset."""
    from google.protobuf import json_format

    from forgeline.v1 import training_service_pb2 as pb

    request = pb.EvaluateModelRequest(
        model_id=model,
        dataset=common_pb2.DatasetInput(
            dataset_id=dataset, text_column=text_column, label_column=label_column
        ),
    )
    with _client(address, "training") as client:
        result = _follow(
            client, client.training.EvaluateModel(request), pb.EvaluateModelResponse, wait, as_json
        )
    if as_json:
        print(json_format.MessageToJson(result))
    else:
        _print_evaluation(result.evaluation)


@train_app.command("predict")
def train_predict(
    model: Annotated[str, typer.Argument(help="Model or adapter artifact id or name.")],
    texts: Annotated[list[str], typer.Argument(help="Texts to label (or prompts).")],
    max_new_tokens: int = 0,
    address: AddressOpt = None,
) -> None:
    """Label a few texts (or continue a few prompts) with a trained model."""
    from forgeline.v1 import training_service_pb2 as pb

    with _client(address, "training") as client:
        response = client.training.Predict(
            pb.PredictRequest(model_id=model, texts=texts, max_new_tokens=max_new_tokens)
        )
    for text, p in zip(texts, response.predictions, strict=True):
        answer = p.generated_text if p.generated_text else f"{p.label} ({p.score:.3f})"
        console.print(f"{answer}\t{text}")


# --- compress ----------------------------------------------------------------------------------


@app.command("compress")
def compress(
    model: Annotated[str, typer.Argument(help="Classifier model or adapter artifact id or name.")],
    eval_dataset: Annotated[
        str, typer.Option("--eval", help="Dataset every step is scored on (id or name).")
    ],
    compressor: Annotated[
        list[str],
        typer.Option(
            "--compressor",
            "-c",
            help='In chain order: name or name={"json": "config"}, e.g. '
            "dynamic_int8, structured_prune, distill, onnx_export.",
        ),
    ],
    train_dataset: Annotated[
        str, typer.Option("--train", help="Rows distill / structured_prune train on.")
    ] = "",
    budget: Annotated[
        float | None, typer.Option(help="Largest accuracy drop allowed (0.01 = a point).")
    ] = None,
    metric: Annotated[str, typer.Option(help="What the budget guards: accuracy, f1_macro.")] = "",
    output_name: str = "",
    address: AddressOpt = None,
    wait: WaitOpt = True,
    as_json: JsonOpt = False,
) -> None:
    """Compress a classifier with a chain of compressors, each step measured against it."""
    from google.protobuf import json_format

    from forgeline.v1 import compression_service_pb2 as pb

    request = pb.CompressModelRequest(
        model_id=model,
        eval=common_pb2.DatasetInput(dataset_id=eval_dataset),
        train=common_pb2.DatasetInput(dataset_id=train_dataset) if train_dataset else None,
        compressors=_plugin_specs(compressor, "--compressor"),
        accuracy_budget=budget,
        budget_metric=metric,
        output_name=output_name,
    )
    with _client(address, "compression") as client:
        result = _follow(
            client,
            client.compression.CompressModel(request),
            pb.CompressModelResponse,
            wait,
            as_json,
        )
    if as_json:
        print(json_format.MessageToJson(result, preserving_proto_field_name=True))
        return
    table = Table("step", "outcome", "format", "size", "p50 ms", "batch ms", "accuracy", "model")
    o = result.original
    rows = [("original", "", o, "", 1.0, 1.0)] + [
        (
            f"{s.index} {s.compressor}",
            pb.StepOutcome.Name(s.outcome).removeprefix("STEP_OUTCOME_").lower(),
            s.measurement if s.HasField("measurement") else None,
            s.model.id,
            s.size_ratio,
            s.batch_latency_ratio,
        )
        for s in result.steps
    ]
    for label, outcome, m, model_id, size, latency in rows:
        if m is None:
            table.add_row(label, outcome, "", "", "", "", "", "")
            continue
        table.add_row(
            label,
            outcome,
            m.format,
            f"{m.weights_bytes / 2**20:.1f} MB (x{size:.2f})",
            f"{m.latency_p50_ms:.2f}",
            f"{m.batch_latency_ms:.1f} (x{latency:.2f})",
            f"{m.accuracy:.4f}",
            model_id,
        )
    console.print(table)
    for s in result.steps:
        if s.reason:
            console.print(f"[yellow]{s.reason}[/yellow]")
            break
    console.print(
        f"[bold]{result.model.id}[/bold]  size x{result.size_ratio:.3f}, batch latency "
        f"x{result.batch_latency_ratio:.3f}, {result.budget_metric} "
        f"{100 * result.accuracy_delta:+.2f} points (budget {100 * result.accuracy_budget:.2f})"
    )


# --- audit ---------------------------------------------------------------------------------------


@audit_app.command("verify")
def audit_verify(
    expect: Annotated[
        str,
        typer.Option(
            "--expect-head",
            "--expect",
            help="SEQUENCE:HASH of a head recorded earlier (by a previous verify, or the "
            "audit_head of a run report): the log must still hold that entry unchanged.",
        ),
    ] = "",
    address: AddressOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Recompute the audit log's hash chain and print its head (SEQUENCE:HASH); exit 1 when an
    entry was edited, removed or inserted, or the log does not end at its head. Keep the head
    somewhere the log's host cannot write, and pass it as --expect-head next time: that catches
    a log truncated or rewritten by whoever can write its database."""
    from google.protobuf import json_format

    from forgeline.errors import InvalidArgument
    from forgeline.v1 import safety_service_pb2 as pb

    sequence, _, digest = expect.partition(":")
    if expect and not (sequence.isdigit() and digest):
        raise InvalidArgument.for_field("--expect-head", "give SEQUENCE:HASH, e.g. 42:9f86d0...")
    request = pb.VerifyAuditLogRequest(
        expected_sequence=int(sequence) if expect else 0, expected_hash=digest
    )
    with _client(address, "safety") as client:
        result = client.safety.VerifyAuditLog(request)
    head = f"head {result.head_sequence}:{result.head_hash}"
    if as_json:
        print(json_format.MessageToJson(result, preserving_proto_field_name=True))
    elif result.ok:  # soft_wrap: a head is copied from here, never broken across lines
        console.print(f"[green]ok[/green]: {result.entries} entries, {head}", soft_wrap=True)
    else:
        console.print(
            f"[red]TAMPERED[/red] at entry {result.first_bad_sequence}: {result.problem} "
            f"({result.entries} entries checked; the database's {head})",
            soft_wrap=True,
        )
    if not result.ok:
        raise typer.Exit(1)


@audit_app.command("show")
def audit_show(
    kind: Annotated[str, typer.Option(help="Only entries of this kind, e.g. promotion.")] = "",
    subject: Annotated[str, typer.Option(help="Only entries about this run, model...")] = "",
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20,
    address: AddressOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The newest audit log entries."""
    from google.protobuf import json_format

    from forgeline.v1 import safety_service_pb2 as pb

    with _client(address, "safety") as client:
        page = client.safety.ListAuditEntries(
            pb.ListAuditEntriesRequest(
                kind=kind, subject=subject, page_size=limit, newest_first=True
            )
        )
    if as_json:
        rows = [
            json_format.MessageToDict(e, preserving_proto_field_name=True) for e in page.entries
        ]
        console.print_json(json.dumps(rows))
        return
    table = Table("seq", "time", "kind", "subject", "actor", "details", "hash")
    for e in page.entries:
        details = json.dumps(json_format.MessageToDict(e.event.details), ensure_ascii=False)
        table.add_row(
            str(e.sequence),
            e.event.time.ToDatetime().strftime("%Y-%m-%d %H:%M:%S"),
            e.event.kind,
            e.event.subject,
            e.event.actor,
            details if len(details) <= 80 else details[:77] + "...",
            e.hash[:12],
        )
    console.print(table)
