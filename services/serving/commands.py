"""`forgeline deploy ...`: the serving service's commands (deploy a model, list deployments,
predict with one, stop one), each a thin client of its gRPC API."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from forgeline.cli.app import AddressOpt, JsonOpt, WaitOpt, client, console, follow, print_json

app = typer.Typer(
    no_args_is_help=True,
    help="Serving: deploy a classifier or a language model behind its safety policy, predict, "
    "generate, list, stop.",
)
NameArg = Annotated[str, typer.Argument(help="The deployment's name, e.g. sentiment.")]
# The decoding options of `forgeline deploy generate` / `forgeline generate` and `forgeline chat`.
MaxNewTokensOpt = Annotated[int, typer.Option(help="Most new tokens (0: 64).")]
TemperatureOpt = Annotated[
    float | None, typer.Option(help="Sample at this temperature (default: greedy).")
]
SeedOpt = Annotated[int, typer.Option(help="Sampling seed.")]
StopOpt = Annotated[list[str] | None, typer.Option(help="Stop string, repeatable.")]
AdapterOpt = Annotated[str, typer.Option(help="One of its adapters (empty: its default).")]


def _print_deployment(d: Any) -> None:
    from forgeline.v1 import serving_service_pb2 as pb

    state = pb.DeploymentState.Name(d.state).removeprefix("DEPLOYMENT_STATE_")
    adapters = ", ".join(f"{k}={v}" for k, v in sorted(d.adapters.items()))
    console.print(
        f"[bold]{d.name}[/bold]  {state}  {d.model_id} ({d.format})  labels: "
        f"{', '.join(d.labels)}" + (f"  adapters: {adapters}" if adapters else "")
    )


@app.command("model")
def deploy_model(
    name: NameArg,
    model: Annotated[str, typer.Argument(help="Classifier model or adapter (id or name).")],
    adapter: Annotated[
        list[str] | None,
        typer.Option(help="NAME=ADAPTER: more adapters of the same base, repeatable."),
    ] = None,
    default_adapter: Annotated[str, typer.Option(help="The adapter a request gets.")] = "",
    policy: Annotated[
        Path | None,
        typer.Option(help="Safety policy YAML file (input_filters, output_rules), read here."),
    ] = None,
    max_batch_size: Annotated[int, typer.Option(help="Texts per forward pass (0: 32).")] = 0,
    max_wait_ms: Annotated[float, typer.Option(help="Wait for a batch to fill (0: 5).")] = 0,
    max_length: Annotated[int, typer.Option(help="Tokens per input (0: the model's).")] = 0,
    max_new_tokens: Annotated[
        int, typer.Option(help="Language models: most new tokens a request may ask (0: 512).")
    ] = 0,
    address: AddressOpt = None,
    wait: WaitOpt = True,
    as_json: JsonOpt = False,
) -> None:
    """Serve a model under a name (replacing what the name served once it is loaded)."""
    from forgeline.errors import InvalidArgument
    from forgeline.v1 import common_pb2
    from forgeline.v1 import serving_service_pb2 as pb

    adapters = {}
    for i, item in enumerate(adapter or []):
        key, _, value = item.partition("=")
        if not key or not value:
            raise InvalidArgument.for_field(f"--adapter[{i}]", "write NAME=ADAPTER")
        adapters[key] = value
    source = None
    if policy is not None:
        try:
            source = common_pb2.PolicySource(yaml=policy.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise InvalidArgument.for_field("--policy", f"cannot read {policy}: {why}") from None
    request = pb.DeployModelRequest(
        name=name,
        model_id=model,
        adapters=adapters,
        default_adapter=default_adapter,
        policy=source,
        batching=pb.BatchingOptions(max_batch_size=max_batch_size, max_wait_ms=max_wait_ms),
        max_sequence_length=max_length,
        max_new_tokens=max_new_tokens,
    )
    with client(address, "serving") as service:
        result = follow(
            service, service.serving.DeployModel(request), pb.DeployModelResponse, wait, as_json
        )
    if as_json:
        print_json(result)
        return
    _print_deployment(result.deployment)
    console.print(f"loaded in {result.load_seconds:.1f} s")


@app.command("list")
def deploy_list(
    limit: Annotated[int, typer.Option(help="How many, by name.")] = 50,
    address: AddressOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Deployments, by name, with their request counts."""
    from forgeline.v1 import serving_service_pb2 as pb

    with client(address, "serving") as service:
        reply = service.serving.ListDeployments(pb.ListDeploymentsRequest(page_size=limit))
    if as_json:
        print_json(reply)
        return
    table = Table("deployment", "state", "model", "format", "labels", "requests", "blocked")
    for d in reply.deployments:
        table.add_row(
            d.name,
            pb.DeploymentState.Name(d.state).removeprefix("DEPLOYMENT_STATE_"),
            d.model_id,
            d.format,
            ", ".join(d.labels),
            str(d.requests),
            str(d.blocked),
        )
    console.print(table)


@app.command("predict")
def deploy_predict(
    name: NameArg,
    texts: Annotated[list[str], typer.Argument(help="Texts to label.")],
    adapter: Annotated[str, typer.Option(help="One of its adapters (empty: its default).")] = "",
    address: AddressOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Label texts with a deployment, through its safety policy; a blocked text says which
    rule refused it (exit 1 when any was blocked)."""
    from grpc import StatusCode

    from forgeline.v1 import serving_service_pb2 as pb

    with client(address, "serving") as service:
        reply = service.serving.PredictBatch(
            pb.PredictBatchRequest(deployment=name, texts=texts, adapter=adapter)
        )
    if as_json:
        print_json(reply)
    blocked = False
    for text, result in zip(texts, reply.results, strict=True):
        if result.status.code != StatusCode.OK.value[0]:
            blocked = True
            if not as_json:
                console.print(f"[red]refused[/red] {result.status.message}\t{text}", soft_wrap=True)
        elif not as_json:
            p = result.prediction
            console.print(f"{p.output} ({p.score:.3f})\t{text}", soft_wrap=True)
    if blocked:
        raise typer.Exit(1)


@app.command("stop")
def deploy_stop(name: NameArg, address: AddressOpt = None, as_json: JsonOpt = False) -> None:
    """Stop serving a deployment (requests already batched are answered first)."""
    from forgeline.v1 import serving_service_pb2 as pb

    with client(address, "serving") as service:
        reply = service.serving.UndeployModel(pb.UndeployModelRequest(name=name))
    if as_json:
        print_json(reply)
    else:
        console.print(f"stopped {reply.deployment.name} ({reply.deployment.requests} requests)")


@app.command("generate")
def deploy_generate(
    name: NameArg,
    text: Annotated[str, typer.Argument(help="The prompt.")],
    chat: Annotated[
        bool, typer.Option(help="Send the text as the user's turn of a chat (chat template).")
    ] = False,
    max_new_tokens: MaxNewTokensOpt = 0,
    temperature: TemperatureOpt = None,
    seed: SeedOpt = 0,
    stop: StopOpt = None,
    adapter: AdapterOpt = "",
    address: AddressOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Generate text with a language-model deployment, streamed as it is produced; a block by
    the output rules says which rule fired and that the text shown is withdrawn (exit 1).
    `forgeline generate` is this same command."""
    from forgeline.v1 import serving_service_pb2 as pb

    fields: dict[str, Any] = {
        "deployment": name,
        "decoding": decoding_options(max_new_tokens, temperature, seed, stop),
        "adapter": adapter,
        **({"messages": [pb.ChatTurn(role="user", content=text)]} if chat else {"prompt": text}),
    }
    with client(address, "serving") as service:
        if as_json:
            print_json(service.serving.Generate(pb.GenerateRequest(**fields)))
            return
        last = stream_answer(service, fields)
    if not report_end(last):
        raise typer.Exit(1)


def decoding_options(
    max_new_tokens: int, temperature: float | None, seed: int, stop: list[str] | None
) -> Any:
    """The DecodingOptions of the generate commands' options: greedy unless a temperature is
    given."""
    from forgeline.v1 import training_service_pb2 as tpb

    decoding = tpb.DecodingOptions(max_new_tokens=max_new_tokens, stop=stop or [])
    if temperature is not None:
        decoding.strategy = tpb.DECODING_STRATEGY_SAMPLE
        decoding.temperature, decoding.seed = temperature, seed
    return decoding


def stream_answer(service: Any, fields: dict[str, Any]) -> Any:
    """Sends one GenerateStream request, prints its text as it arrives (then a newline) and
    returns its last message (None when the stream sent nothing)."""
    from forgeline.v1 import serving_service_pb2 as pb

    last = None
    for message in service.serving.GenerateStream(pb.GenerateStreamRequest(**fields)):
        if message.text:
            console.print(message.text, end="", soft_wrap=True, markup=False)
        last = message
    console.print()
    return last


def report_end(last: Any) -> bool:
    """Prints how a streamed answer ended (a block by the output rules, else the finish reason
    and token counts); False when it was blocked."""
    from forgeline.v1 import serving_service_pb2 as pb

    if last is not None and last.HasField("block"):
        console.print(
            f"[red]blocked by rule {last.block.rule!r}[/red]: the text above is withdrawn",
            soft_wrap=True,
        )
        return False
    usage = last.usage if last is not None else pb.GenerationUsage()
    console.print(
        f"[dim]{last.finish_reason if last else ''}: {usage.prompt_tokens} prompt + "
        f"{usage.completion_tokens} generated tokens[/dim]"
    )
    return True
