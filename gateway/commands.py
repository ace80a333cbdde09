"""The `forgeline` commands that drive the gateway: run, validate, runs ..., up, down, status.

They join the root command through the ``forgeline.commands`` entry point ``gateway`` (register),
in the root's first panels: a newcomer meets `forgeline run` first.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table

from forgeline.cli.app import (
    PIPELINES,
    STACK,
    JsonOpt,
    console,
    err,
    plugin_registry,
    settings,
)
from forgeline.gateway.run_output import StepLines, apply, headline, new_rows

if TYPE_CHECKING:
    from forgeline.gateway.local_run import LocalRun

runs_app = typer.Typer(
    no_args_is_help=True, help="Pipeline runs: list, show, report, cancel, retry."
)

SetOpt = Annotated[
    list[str],
    typer.Option("--set", help="STEP.PATH=VALUE override, e.g. train.with.seed=3 (repeatable)."),
]
PlainOpt = Annotated[
    bool,
    typer.Option(
        "--plain",
        envvar="FORGELINE_PLAIN",
        help="A line per step state change and per long step's progress (every 30 s at most) "
        "instead of the live table: the default when the output is not a terminal, or in CI.",
    ),
]
RECONNECT_FOR_S = 120.0  # how long `run` keeps reconnecting to a gateway that went away
STATE_STYLE = {
    "SUCCEEDED": "green",
    "FAILED": "red",
    "CANCELLED": "yellow",
    "SKIPPED": "dim",
    "RUNNING": "cyan",
    "PENDING": "dim",
}


def register(root: typer.Typer) -> None:
    """The gateway's commands on the root, pipelines first, then the local stack."""
    root.command("run", rich_help_panel=PIPELINES)(run)
    root.command("validate", rich_help_panel=PIPELINES)(validate)
    root.add_typer(runs_app, name="runs", rich_help_panel=PIPELINES)
    root.command("up", rich_help_panel=STACK)(up)
    root.command("down", rich_help_panel=STACK)(down)
    root.command("status", rich_help_panel=STACK)(status)


# --- talking to a gateway ---------------------------------------------------------------------


def _gateway_client(address: str):
    from forgeline.client import Client

    return Client(address, token=settings().auth_token or None)


def _answers(client) -> bool:
    from grpc_health.v1 import health_pb2

    from forgeline.errors import ForgelineError

    try:
        reply = client.health.Check(health_pb2.HealthCheckRequest(), timeout=2)
    except ForgelineError:
        return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


class _Connection:
    """The configured gateway, or an embedded stack started for this command and stopped after.

    With ``local`` (the pipeline the command sends), an embedded stack runs only the services
    its steps call and reads the paths it names; a gateway that answers gets a note when the
    pipeline holds relative paths, which its services resolve, not this directory."""

    def __init__(self, embedded_ok: bool = True, local: LocalRun | None = None) -> None:
        self.embedded_ok, self.local, self.stack, self.client = embedded_ok, local, None, None

    def __enter__(self):
        from forgeline.errors import Unavailable
        from forgeline.gateway.stack import Stack

        current = settings()
        address = current.address_for("gateway")
        self.client = _gateway_client(address)
        if _answers(self.client):
            if self.local is not None and self.local.relative:
                err.print(
                    f"[yellow]note[/yellow] the gateway at {address} was not started by this "
                    f"command: its services resolve the relative paths at "
                    f"{', '.join(self.local.relative)} against their first data root "
                    "(FORGELINE_DATA_ROOTS where they run), not against the pipeline's folder "
                    "or this directory"
                )
            return self.client
        self.client.close()
        if not self.embedded_ok:
            raise Unavailable(
                f"no gateway answers at {address}; start one with `forgeline up`",
                reason="GATEWAY_UNAVAILABLE",
                metadata={"address": address},
            )
        err.print(
            f"[yellow]no gateway answers at {address}[/yellow]: starting an embedded stack for "
            f"this command (logs in {current.home.expanduser() / 'logs'})"
        )
        self.stack = Stack.start(
            current,
            fixed_ports=False,
            detach=False,
            services=self.local.services if self.local else None,
            data_roots=self.local.paths if self.local else None,
        )
        self.client = _gateway_client(self.stack.addresses["gateway"])
        return self.client

    def __exit__(self, *exc) -> None:
        if self.client is not None:
            self.client.close()
        if self.stack is not None:
            self.stack.stop()


def _read(path: Path) -> str:
    """The pipeline file's text, refused here when it is not a YAML mapping: the error names
    the file and the line, and no gateway or stack is needed to say so."""
    from forgeline.errors import InvalidArgument
    from forgeline.gateway.spec import PipelineInvalid, invalid, load_document

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise InvalidArgument.for_field("PIPELINE", f"cannot read {path}: {reason}") from None
    try:
        load_document(text, source=str(path))
    except PipelineInvalid as exc:
        raise invalid(exc.problems) from None
    return text


def _local(pipeline: Path, text: str, overrides: list[str]) -> LocalRun:
    """The pipeline as a stack this command starts receives it: paths in the file relative to
    its folder, paths in --set relative to the current directory (see gateway.local_run)."""
    from forgeline.gateway.local_run import local_run
    from forgeline.server import installed_services

    folder = pipeline.expanduser().absolute().parent
    return local_run(text, overrides, folder, Path.cwd(), installed_services())


def _sent(connection: _Connection, local: LocalRun, text: str, overrides: list[str]):
    """What to send: the localized pipeline to a stack this command started, else as written."""
    if connection.stack is not None:
        return local.text, local.overrides
    return text, overrides


# --- run ----------------------------------------------------------------------------------------


def run(
    pipeline: Annotated[Path, typer.Argument(help="Pipeline YAML file.")],
    overrides: SetOpt = [],  # noqa: B006 - typer reads the default
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Run every step again.")] = False,
    detach: Annotated[
        bool, typer.Option("--detach", help="Print the run's name and return at once.")
    ] = False,
    as_json: JsonOpt = False,
    plain: PlainOpt = False,
) -> None:
    """Run a pipeline on the gateway (FORGELINE_GATEWAY), following every step live.

    When no gateway answers, this command starts one (with the services the steps call) for
    the run; then a relative path in the file is taken relative to the file's folder, and one
    in --set relative to this directory. A running gateway's services resolve relative paths
    against their first data root (FORGELINE_DATA_ROOTS where they run).

    On a terminal a live table follows the steps; in a file, a pipe or CI (or with --plain)
    each step's state changes are lines, with its progress and latest metrics every 30 s at
    most while it runs. With --json they go to stderr, the run's JSON alone to stdout."""
    from forgeline.v1 import pipeline_service_pb2 as pb

    text = _read(pipeline)
    local = _local(pipeline, text, overrides)
    connection = _Connection(embedded_ok=not detach, local=local)
    with connection as client:
        text, overrides = _sent(connection, local, text, overrides)
        # Every problem at once (the services' checks too), and the steps in running order.
        plan = client.pipelines.ValidatePipeline(
            pb.ValidatePipelineRequest(pipeline_yaml=text, overrides=overrides)
        )
        order = [s.name for s in plan.steps]
        op = client.pipelines.SubmitPipeline(
            pb.SubmitPipelineRequest(pipeline_yaml=text, overrides=overrides, no_cache=no_cache)
        )
        if detach:
            console.print(op.name)
            return
        try:
            _watch(client, op.name, order, quiet=as_json, plain=plain)
        except KeyboardInterrupt:
            err.print(f"[yellow]cancelling {op.name}[/yellow]")
            client.pipelines.CancelPipelineRun(pb.CancelPipelineRunRequest(name=op.name))
            _wait_done(client, op.name)
        result = client.pipelines.GetPipelineRun(pb.GetPipelineRunRequest(name=op.name)).run
    if as_json:
        console.print_json(_run_json(result))
    else:
        _summary(result)
    raise typer.Exit(_exit_code(result))


def _watch(client, run: str, order: list[str], quiet: bool, plain: bool = False) -> None:
    """Follows the run's event stream (resumed after a reconnect) to its end: a live table of
    the steps on a terminal, else a line per step state change and per long step's progress
    (run_output.StepLines) for a log. With --json (``quiet``) on stderr, stdout kept for it."""
    out = err if quiet else console
    if plain or not _live_ok(out):
        lines = StepLines(
            order,
            lambda line: out.print(line, markup=False, highlight=False, soft_wrap=True),
        )
        lines.header(run)
        with lines.ticking():
            _follow_events(client, run, lines.event)
        return

    rows = new_rows(order)

    def render() -> Table:
        table = Table("step", "state", "progress", "latest", title=run, title_justify="left")
        for name, row in rows.items():
            style = STATE_STYLE.get(row["state"], "")
            metrics = "  ".join(f"{k} {_fmt(v)}" for k, v in list(row["metrics"].items())[-3:])
            bar = Table.grid(padding=(0, 1))
            bar.add_row(
                ProgressBar(total=1.0, completed=row["progress"], width=16),
                f"{row['progress']:4.0%}",
            )
            table.add_row(
                name, f"[{style}]{row['state']}[/{style}]", bar, metrics or row["message"][:60]
            )
        return table

    with Live(render(), console=out, transient=True, refresh_per_second=4) as live:

        def show(event) -> None:
            apply(rows, event)
            live.update(render())

        _follow_events(client, run, show)


def _live_ok(out) -> bool:
    """Whether ``out`` takes a live table: a terminal that moves its cursor, outside CI (whose
    log keeps every frame of one when it gives the command a pseudo-terminal)."""
    ci = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
    return out.is_terminal and not out.is_dumb_terminal and not ci


def _follow_events(client, run: str, on_event) -> None:
    """Every event of the run to ``on_event`` until the run ends, the stream resumed after the
    last event seen when it breaks (its deadline, a gateway restarting) for RECONNECT_FOR_S."""
    import grpc

    from forgeline.errors import ForgelineError

    last = 0
    failing_since = None
    while True:
        try:
            for event in client.stream_events(run, after_sequence=last):
                last, failing_since = event.sequence, None
                on_event(event)
            return
        except ForgelineError as exc:
            if exc.code not in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE):
                raise
            failing_since = failing_since or time.monotonic()
            if time.monotonic() - failing_since > RECONNECT_FOR_S:
                raise
            time.sleep(1)


def _fmt(value: float) -> str:
    from forgeline.gateway.spec import number

    return number(value, grouped=True)


def _wait_done(client, run: str, timeout: float = 120) -> None:
    from forgeline.v1 import pipeline_service_pb2 as pb

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = client.pipelines.GetPipelineRun(pb.GetPipelineRunRequest(name=run)).run
        if got.end_time.seconds:
            return
        time.sleep(0.5)


def _exit_code(run) -> int:
    from forgeline.v1 import common_pb2

    return {common_pb2.OPERATION_STATE_SUCCEEDED: 0, common_pb2.OPERATION_STATE_CANCELLED: 130}.get(
        run.state, 1
    )


def _summary(run) -> None:
    from forgeline.v1 import common_pb2
    from forgeline.v1 import pipeline_service_pb2 as pb

    table = Table(
        "step", "state", "cached", "seconds", "metrics", title=f"{run.pipeline}: {run.name}"
    )
    for step in run.steps:
        state = pb.StepState.Name(step.state).removeprefix("STEP_STATE_")
        style = STATE_STYLE.get(state, "")
        seconds = (
            f"{(step.end_time.ToNanoseconds() - step.start_time.ToNanoseconds()) / 1e9:.1f}"
            if step.end_time.seconds and step.start_time.seconds
            else ""
        )
        metrics = "  ".join(f"{k} {_fmt(v)}" for k, v in headline(step.metrics))
        table.add_row(
            step.name, f"[{style}]{state}[/{style}]", "yes" if step.cached else "", seconds, metrics
        )
    console.print(table)
    for step in run.steps:
        for gate in step.gates:
            mark = "[green]pass[/green]" if gate.passed else "[red]FAIL[/red]"
            console.print(f"gate {mark} {step.name}: {gate.expression} ({gate.message})")
    state = common_pb2.OperationState.Name(run.state).removeprefix("OPERATION_STATE_")
    style = STATE_STYLE.get(state, "")
    console.print(f"run [{style}]{state}[/{style}]: {run.message}")
    if run.report.uri:
        console.print(f"report: {_report_page(run)}", soft_wrap=True)


def _report_page(run) -> str:
    """Where the run's HTML page is: a local path for a file:// report, else its URI."""
    from urllib.parse import unquote, urlparse

    from forgeline.gateway.report import REPORT_HTML

    uri = urlparse(run.report.uri)
    if uri.scheme == "file":
        return str(Path(unquote(uri.path)) / REPORT_HTML)
    return f"{run.report.uri.rstrip('/')}/{REPORT_HTML}"


def _run_json(run) -> str:
    from google.protobuf import json_format

    return json.dumps(json_format.MessageToDict(run, preserving_proto_field_name=True))


# --- validate -----------------------------------------------------------------------------------


def validate(
    pipeline: Annotated[Path, typer.Argument(help="Pipeline YAML file.")],
    overrides: SetOpt = [],  # noqa: B006
    offline: Annotated[
        bool,
        typer.Option(
            "--offline",
            help="Check with no gateway and no service: the file, its steps and references, "
            "each call's request against the services' descriptors and plugins installed here, "
            "the gates. Says what it left unchecked.",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Check a pipeline against the services it names; prints every problem at once. Paths
    resolve as in `forgeline run`."""
    from forgeline.v1 import pipeline_service_pb2 as pb

    text = _read(pipeline)
    unchecked: list[str] = []
    if offline:
        plan, unchecked = _validate_offline(text, overrides)
    else:
        local = _local(pipeline, text, overrides)
        connection = _Connection(local=local)
        with connection as client:
            text, overrides = _sent(connection, local, text, overrides)
            plan = client.pipelines.ValidatePipeline(
                pb.ValidatePipelineRequest(pipeline_yaml=text, overrides=overrides)
            )
    if as_json:
        from google.protobuf import json_format

        shown = json_format.MessageToDict(plan)
        if offline:
            shown["notChecked"] = unchecked
        console.print_json(json.dumps(shown))
        return
    table = Table("step", "method", "after", "gates", title=f"{plan.pipeline}: valid")
    for step in plan.steps:
        table.add_row(step.name, step.method, ", ".join(step.depends_on), "; ".join(step.gates))
    console.print(table)
    _print_unchecked(unchecked)


def _validate_offline(text: str, overrides: list[str]) -> tuple[Any, list[str]]:
    """ValidatePipeline's checks run here, on the services' generated descriptors and the
    plugins installed in this environment (the gateway's own code: catalog.validate); returns
    the plan and what was left unchecked. No gateway is asked and no service started."""
    from functools import cache

    from forgeline.gateway.catalog import local_catalog, plugins_by_kind
    from forgeline.gateway.catalog import validate as check_pipeline
    from forgeline.gateway.service import known_services
    from forgeline.gateway.servicer import planned
    from forgeline.gateway.spec import invalid
    from forgeline.plugin_service import plugin_infos

    @cache
    def plugins() -> dict:
        return plugins_by_kind(plugin_infos(plugin_registry()))

    validation = check_pipeline(
        text, overrides, known_services(settings()), lambda name: local_catalog(name, plugins())
    )
    unchecked = [
        "that each service answers at its address with these operations and plugins: checked "
        "against the descriptors and plugins installed here instead"
    ]
    for service in validation.unchecked:
        steps = ", ".join(s.name for s in validation.pipeline.steps if s.service == service)
        unchecked.append(
            f"the steps that call {service} ({steps}): its descriptors are not installed here, "
            "so their requests, the references to their responses and their gates"
        )
    unchecked.append(
        "that the datasets, models and files the steps name exist and may be read: each "
        "service checks that when its step runs (validation without --offline does not either)"
    )
    if validation.problems:
        _print_unchecked(unchecked)
        raise invalid(validation.problems)
    return planned(validation.pipeline, validation.checked), unchecked


def _print_unchecked(unchecked: list[str]) -> None:
    if unchecked:
        err.print("[yellow]not checked offline[/yellow]")
        for line in unchecked:
            err.print(f"  - {line}")


# --- runs ---------------------------------------------------------------------------------------


@runs_app.command("list")
def runs_list(
    pipeline: Annotated[str, typer.Option(help="Only runs of this pipeline.")] = "",
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """Runs, newest first."""
    from forgeline.v1 import common_pb2
    from forgeline.v1 import pipeline_service_pb2 as pb

    with _Connection(embedded_ok=False) as client:
        page = client.pipelines.ListPipelineRuns(
            pb.ListPipelineRunsRequest(page_size=limit, pipeline=pipeline)
        )
    if as_json:
        console.print_json(json.dumps([json.loads(_run_json(r)) for r in page.runs]))
        return
    table = Table("run", "pipeline", "state", "steps", "message")
    for r in page.runs:
        state = common_pb2.OperationState.Name(r.state).removeprefix("OPERATION_STATE_")
        done = sum(s.state == pb.STEP_STATE_SUCCEEDED for s in r.steps)
        table.add_row(r.name, r.pipeline, state, f"{done}/{len(r.steps)}", r.message[:70])
    console.print(table)


@runs_app.command("show")
def runs_show(run: Annotated[str, typer.Argument(help="Run name.")], as_json: JsonOpt = False):
    """One run: its steps, gates and outcome."""
    from forgeline.v1 import pipeline_service_pb2 as pb

    with _Connection(embedded_ok=False) as client:
        got = client.pipelines.GetPipelineRun(pb.GetPipelineRunRequest(name=run)).run
    console.print_json(_run_json(got)) if as_json else _summary(got)


@runs_app.command("report")
def runs_report(
    run: Annotated[str, typer.Argument(help="Run name.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report's JSON twin instead of its path.")
    ] = False,
) -> None:
    """Where a run's HTML report is (or its JSON twin with --json)."""
    from forgeline.errors import NotFound
    from forgeline.gateway.report import REPORT_JSON
    from forgeline.v1 import pipeline_service_pb2 as pb

    with _Connection(embedded_ok=False) as client:
        got = client.pipelines.GetPipelineRun(pb.GetPipelineRunRequest(name=run)).run
    if not got.report.uri:
        raise NotFound(f"run {run} has no report yet (it is still running?)", reason="NO_REPORT")
    page = _report_page(got)
    if as_json:
        console.print_json(Path(page).with_name(REPORT_JSON).read_text())
    else:
        console.print(page)


@runs_app.command("cancel")
def runs_cancel(run: Annotated[str, typer.Argument(help="Run name.")]) -> None:
    """Cancel a run: its running service operations are cancelled, later steps skipped."""
    from forgeline.v1 import pipeline_service_pb2 as pb

    with _Connection(embedded_ok=False) as client:
        client.pipelines.CancelPipelineRun(pb.CancelPipelineRunRequest(name=run))
        _wait_done(client, run)
        _summary(client.pipelines.GetPipelineRun(pb.GetPipelineRunRequest(name=run)).run)


@runs_app.command("retry")
def runs_retry(
    run: Annotated[str, typer.Argument(help="A failed or cancelled run.")],
    as_json: JsonOpt = False,
    plain: PlainOpt = False,
) -> None:
    """Run a failed or cancelled run again from its unfinished steps.

    When no gateway answers (the run's stack was one `forgeline run` started, gone since), this
    command starts one over FORGELINE_HOME, as `run` would for the run's pipeline."""
    from forgeline.v1 import pipeline_service_pb2 as pb

    with _Connection(local=_stored(run)) as client:
        op = client.pipelines.RetryPipelineRun(pb.RetryPipelineRunRequest(name=run))
        order = [
            s.name
            for s in client.pipelines.GetPipelineRun(pb.GetPipelineRunRequest(name=run)).run.steps
        ]
        _watch(client, op.name, order, quiet=as_json, plain=plain)
        result = client.pipelines.GetPipelineRun(pb.GetPipelineRunRequest(name=op.name)).run
    console.print_json(_run_json(result)) if as_json else _summary(result)
    raise typer.Exit(_exit_code(result))


def _stored(run: str) -> LocalRun | None:
    """What a stack started to retry ``run`` needs (the services its pipeline calls, the paths
    it names), from the pipeline as this machine's gateway stored it under FORGELINE_HOME;
    None when it is not stored here."""
    from forgeline.errors import NotFound
    from forgeline.gateway.local_run import local_run
    from forgeline.gateway.servicer import RETRY, SUBMIT
    from forgeline.operations import OperationStore
    from forgeline.server import installed_services
    from forgeline.v1 import pipeline_service_pb2 as pb

    path = settings().operations_db("gateway")
    if not path.exists():
        return None
    store = OperationStore(path)
    try:
        row = store.get(run)
        while row.method == RETRY:  # a retry runs the pipeline of the run it retried
            row = store.get(pb.RetryPipelineRunRequest.FromString(row.request).name)
    except NotFound:
        return None
    finally:
        store.close()
    if row.method != SUBMIT:
        return None
    sent = pb.SubmitPipelineRequest.FromString(row.request)
    cwd = Path.cwd()
    return local_run(sent.pipeline_yaml, list(sent.overrides), cwd, cwd, installed_services())


# --- the local stack ----------------------------------------------------------------------------


def up(
    services: Annotated[
        list[str] | None,
        typer.Argument(help="Only these installed services (default: all); the gateway always."),
    ] = None,
) -> None:
    """Start the gateway and the installed services on their ports, in the background."""
    from forgeline.gateway.spec import did_you_mean
    from forgeline.gateway.stack import Stack, state_file
    from forgeline.server import installed_services

    known = [n for n in installed_services() if n != "gateway"]
    for name in services or []:
        if name not in known:
            err.print(
                f"no installed service {name!r}{did_you_mean(name, known)}; "
                f"installed: {', '.join(known)}"
            )
            raise typer.Exit(2)
    current = settings()
    path = state_file(current)
    if path.exists():
        err.print(f"a stack is already recorded in {path}; `forgeline down` first")
        raise typer.Exit(1)
    stack = Stack.start(current, fixed_ports=True, detach=True, services=services or None)
    stack.save(path)
    table = Table("service", "address", "pid", "log")
    for m in stack.members:
        table.add_row(m.name, m.address, str(m.pid), m.log)
    console.print(table)


def down() -> None:
    """Stop the stack `forgeline up` started."""
    from forgeline.gateway.stack import Stack, state_file

    path = state_file(settings())
    if not path.exists():
        err.print("no stack is running (nothing recorded by `forgeline up`)")
        raise typer.Exit(1)
    Stack.load(path).stop()
    path.unlink()
    console.print("stopped")


def status(as_json: JsonOpt = False) -> None:
    """Health of the gateway and every installed service at their configured addresses."""
    from forgeline.client import Client
    from forgeline.server import installed_services
    from forgeline.service_spec import health_kind, probe_http

    current = settings()
    rows = []
    for name in ["gateway", *[n for n in installed_services() if n != "gateway"]]:
        address = current.address_for(name)
        if health_kind(name) == "http":  # the HTTP face: its GET /healthz answers 200
            serving = probe_http(address, tls=bool(current.tls_cert)) == 200
        else:
            with Client(address, token=current.auth_token or None) as client:
                serving = _answers(client)
        rows.append({"service": name, "address": address, "serving": serving})
    if as_json:
        console.print_json(json.dumps(rows))
        return
    table = Table("service", "address", "health")
    for row in rows:
        health = "[green]SERVING[/green]" if row["serving"] else "[red]not answering[/red]"
        table.add_row(row["service"], row["address"], health)
    console.print(table)
    if not all(r["serving"] for r in rows):
        raise typer.Exit(1)
