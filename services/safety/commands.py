"""`forgeline audit ...` (the tamper-evident audit log) and `forgeline fairness ...` (fairness
audits and mitigation): the safety service's commands, each a thin client of its gRPC API."""

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
    follow,
    plugin_specs,
    print_json,
)

audit_app = typer.Typer(
    no_args_is_help=True, help="The audit log (safety service): verify its hash chain, show it."
)


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
    with client(address, "safety") as service:
        result = service.safety.VerifyAuditLog(request)
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

    with client(address, "safety") as service:
        page = service.safety.ListAuditEntries(
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


# --- fairness ----------------------------------------------------------------------------------

fairness_app = typer.Typer(
    no_args_is_help=True,
    help="Fairness (safety service): audit a classifier's decisions per group, mitigate them.",
)
SensitiveOpt = Annotated[
    list[str],
    typer.Option(
        "--sensitive", "-s", help="Sensitive column(s): a,b or repeated; groups combine them."
    ),
]
PositiveOpt = Annotated[
    str, typer.Option(help='The favourable label, e.g. ">50K" (empty: "1" for 0/1 labels).')
]
MaxDpOpt = Annotated[
    float | None, typer.Option(help="Fail above this demographic parity difference.")
]
MinRatioOpt = Annotated[
    float | None, typer.Option(help="Fail below this demographic parity ratio.")
]
MaxEoOpt = Annotated[float | None, typer.Option(help="Fail above this equalized odds difference.")]
MinAccuracyOpt = Annotated[float | None, typer.Option(help="Fail below this overall accuracy.")]


def _thresholds(max_dp, min_ratio, max_eo, min_accuracy):
    from forgeline.v1 import safety_service_pb2 as pb

    return pb.FairnessThresholds(
        max_demographic_parity_difference=max_dp,
        min_demographic_parity_ratio=min_ratio,
        max_equalized_odds_difference=max_eo,
        min_accuracy=min_accuracy,
    )


def _one_subject(options: dict[str, tuple[str, str]]) -> dict[str, str]:
    """The one subject option given (option -> its request field and value), as a request
    field: the request's oneof takes exactly one."""
    from forgeline.errors import InvalidArgument

    given = {option: pair for option, pair in options.items() if pair[1]}
    if len(given) != 1:
        said = "both were given" if given else "neither was given"
        raise InvalidArgument.for_field(
            next(iter(given or options)), f"give {' or '.join(options)}: {said}"
        )
    ((field, value),) = given.values()
    return {field: value}


def _print_metrics(title: str, metrics) -> None:
    table = Table("group", "rows", "accuracy", "selection rate", "FPR", "FNR", title=title)
    for g in [*metrics.groups, metrics]:
        table.add_row(
            getattr(g, "group", "all"),
            str(g.count),
            f"{g.accuracy:.4f}",
            f"{g.selection_rate:.4f}",
            f"{g.false_positive_rate:.4f}",
            f"{g.false_negative_rate:.4f}",
        )
    console.print(table)
    console.print(
        f"demographic parity difference {metrics.demographic_parity_difference:.4f}, "
        f"ratio {metrics.demographic_parity_ratio:.4f}; equalized odds difference "
        f"{metrics.equalized_odds_difference:.4f}"
    )


def _print_checks(checks, passed: int) -> None:
    for c in checks:
        mark = "[green]pass[/green]" if c.passed else "[red]FAIL[/red]"
        console.print(f"{mark} {c.metric} {c.value:.4f} {c.op} {c.threshold:g}")
    if not passed:
        raise typer.Exit(1)


@fairness_app.command("audit")
def fairness_audit(
    dataset: Annotated[str, typer.Argument(help="Rows audited: dataset id, name or name@version.")],
    sensitive: SensitiveOpt,
    model: Annotated[
        str, typer.Option(help="A classifier (model or adapter id or name) scored on the text.")
    ] = "",
    prediction_column: Annotated[
        str, typer.Option(help="Or a column holding decisions already made.")
    ] = "",
    positive_label: PositiveOpt = "",
    text_column: str = "",
    label_column: str = "",
    max_dp_difference: MaxDpOpt = None,
    min_dp_ratio: MinRatioOpt = None,
    max_eo_difference: MaxEoOpt = None,
    min_accuracy: MinAccuracyOpt = None,
    address: AddressOpt = None,
    wait: WaitOpt = True,
    as_json: JsonOpt = False,
) -> None:
    """Measure a classifier's decisions overall and per group; exit 1 when a threshold fails."""
    from forgeline.v1 import common_pb2
    from forgeline.v1 import safety_service_pb2 as pb

    request = pb.AuditFairnessRequest(
        dataset=common_pb2.DatasetInput(
            dataset_id=dataset, text_column=text_column, label_column=label_column
        ),
        sensitive_columns=column_list(sensitive),
        positive_label=positive_label,
        thresholds=_thresholds(max_dp_difference, min_dp_ratio, max_eo_difference, min_accuracy),
        **_one_subject(
            {
                "--model": ("model_id", model),
                "--prediction-column": ("prediction_column", prediction_column),
            }
        ),
    )
    with client(address, "safety") as service:
        result = follow(
            service, service.safety.AuditFairness(request), pb.AuditFairnessResponse, wait, as_json
        )
    if as_json:
        print_json(result)
    else:
        _print_metrics(f"{result.subject} by {', '.join(result.sensitive_columns)}", result.metrics)
        console.print(f"audit log entry {result.audit_sequence}")
    _print_checks(result.checks if not as_json else [], result.passed)


@fairness_app.command("mitigate")
def fairness_mitigate(
    train: Annotated[str, typer.Argument(help="Rows the mitigator learns from.")],
    eval_dataset: Annotated[
        str, typer.Option("--eval", help="Held-out rows audited before and after.")
    ],
    sensitive: SensitiveOpt,
    mitigator: Annotated[
        str,
        typer.Option(help='threshold_optimizer, exponentiated_gradient, or name={"json": ...}.'),
    ] = "threshold_optimizer",
    model: Annotated[
        str, typer.Option(help="A classifier whose positive-class probability is thresholded.")
    ] = "",
    score_column: Annotated[
        str, typer.Option(help="Or a column of scores (the positive label's probability).")
    ] = "",
    feature: Annotated[
        list[str] | None,
        typer.Option(help="Feature columns a training mitigator learns from: a,b or repeated."),
    ] = None,
    positive_label: PositiveOpt = "",
    max_dp_difference: MaxDpOpt = None,
    min_dp_ratio: MinRatioOpt = None,
    max_eo_difference: MaxEoOpt = None,
    min_accuracy: MinAccuracyOpt = None,
    seed: int = 0,
    output_name: Annotated[str, typer.Option("--name", help="Name of the output dataset.")] = "",
    address: AddressOpt = None,
    wait: WaitOpt = True,
    as_json: JsonOpt = False,
) -> None:
    """Learn fairer decisions; audit them against the originals on --eval; exit 1 when a
    threshold fails. Writes the eval rows with a mitigated_prediction column."""
    from forgeline.v1 import common_pb2
    from forgeline.v1 import safety_service_pb2 as pb

    request = pb.MitigateFairnessRequest(
        train=common_pb2.DatasetInput(dataset_id=train),
        eval=common_pb2.DatasetInput(dataset_id=eval_dataset),
        sensitive_columns=column_list(sensitive),
        feature_columns=column_list(feature),
        mitigator=plugin_specs([mitigator], "--mitigator")[0],
        positive_label=positive_label,
        thresholds=_thresholds(max_dp_difference, min_dp_ratio, max_eo_difference, min_accuracy),
        seed=seed,
        output_name=output_name,
        **_one_subject(
            {"--model": ("model_id", model), "--score-column": ("score_column", score_column)}
        ),
    )
    with client(address, "safety") as service:
        result = follow(
            service,
            service.safety.MitigateFairness(request),
            pb.MitigateFairnessResponse,
            wait,
            as_json,
        )
    if as_json:
        print_json(result)
    else:
        _print_metrics("before", result.before)
        _print_metrics("after", result.after)
        console.print(
            f"[bold]{result.predictions.id}[/bold]  accuracy {result.accuracy_delta:+.4f}, "
            f"demographic parity difference {result.demographic_parity_difference_delta:+.4f}, "
            f"equalized odds difference {result.equalized_odds_difference_delta:+.4f}"
        )
    _print_checks(result.checks if not as_json else [], result.passed)
