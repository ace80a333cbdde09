"""`forgeline compress`: the compression service's chain of compressors, measured step by step
against the original model (a thin client of CompressModel)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from forgeline.cli.app import AddressOpt, JsonOpt, WaitOpt, client, console, follow, plugin_specs
from forgeline.v1 import common_pb2


def register(root: typer.Typer) -> None:
    root.command("compress")(compress)


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
        float | None,
        typer.Option(
            help="Largest accuracy drop allowed (0.01 = a point); for a language model, the "
            "largest perplexity rise (0.01 = 1% higher)."
        ),
    ] = None,
    metric: Annotated[
        str,
        typer.Option(
            help="What the budget guards: accuracy, f1_macro; perplexity (a language model's)."
        ),
    ] = "",
    output_name: str = "",
    address: AddressOpt = None,
    wait: WaitOpt = True,
    as_json: JsonOpt = False,
) -> None:
    """Compress a classifier (or a causal LM) with a chain of compressors, each step measured
    against it."""
    from google.protobuf import json_format

    from forgeline.v1 import compression_service_pb2 as pb

    request = pb.CompressModelRequest(
        model_id=model,
        eval=common_pb2.DatasetInput(dataset_id=eval_dataset),
        train=common_pb2.DatasetInput(dataset_id=train_dataset) if train_dataset else None,
        compressors=plugin_specs(compressor, "--compressor"),
        accuracy_budget=budget,
        budget_metric=metric,
        output_name=output_name,
    )
    with client(address, "compression") as service:
        result = follow(
            service,
            service.compression.CompressModel(request),
            pb.CompressModelResponse,
            wait,
            as_json,
        )
    if as_json:
        print(json_format.MessageToJson(result, preserving_proto_field_name=True))
        return
    lm = result.budget_metric == "perplexity"  # a language model: scored by perplexity
    quality = "perplexity" if lm else "accuracy"
    table = Table("step", "outcome", "format", "size", "p50 ms", "batch ms", quality, "model")
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
            f"{m.perplexity:.3f}" if lm else f"{m.accuracy:.4f}",
            model_id,
        )
    console.print(table)
    for s in result.steps:
        if s.reason:
            console.print(f"[yellow]{s.reason}[/yellow]")
            break
    change = (
        f"perplexity x{result.perplexity_ratio:.4f} (budget +{100 * result.accuracy_budget:.2f}%)"
        if lm
        else f"{result.budget_metric} {100 * result.accuracy_delta:+.2f} points (budget "
        f"{100 * result.accuracy_budget:.2f})"
    )
    console.print(
        f"[bold]{result.model.id}[/bold]  size x{result.size_ratio:.3f}, batch latency "
        f"x{result.batch_latency_ratio:.3f}, {change}"
    )
