"""`forgeline tune`: a hyper-parameter search over a training request (a thin client of the
tuning service's TuneModel). The training is described with `forgeline train run`'s options;
--param names what is searched."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from forgeline.cli.app import (
    AddressOpt,
    JsonOpt,
    WaitOpt,
    client,
    console,
    follow,
    json_value,
    plugin_specs,
    print_json,
)
from forgeline.cli.training import (
    EvalOpt,
    FinetuneOpt,
    InputTokenBudgetOpt,
    LabelColumnOpt,
    LongInputsOpt,
    MessagesColumnOpt,
    ModelConfigOpt,
    ModelOpt,
    PromptColumnOpt,
    ResponseColumnOpt,
    TargetColumnOpt,
    TaskOpt,
    TextColumnOpt,
    VocabSizeOpt,
    dataset_input,
    model_source,
    task_number,
)

if TYPE_CHECKING:
    from forgeline.v1 import tuning_service_pb2

DISTRIBUTIONS = ("uniform", "loguniform", "integer", "choice")
PARAM_HELP = (
    "A searched field of the training request, repeatable: PATH=DISTRIBUTION:VALUES, e.g. "
    "hyper_parameters.learning_rate=loguniform:1e-5,1e-2, "
    "hyper_parameters.batch_size_per_worker=choice:[8,16], finetune.config.r=integer:2,16, "
    "hyper_parameters.warmup_ratio=uniform:0,0.2."
)


def register(root: typer.Typer) -> None:
    root.command("tune")(tune)


def tune(
    dataset: Annotated[str, typer.Argument(help="Training dataset: id, name or name@version.")],
    param: Annotated[list[str], typer.Option("--param", "-p", help=PARAM_HELP)],
    eval_dataset: EvalOpt = "",
    objective: Annotated[
        list[str] | None,
        typer.Option(
            help="METRIC or METRIC:max|min, repeatable (the first ranks the trials), e.g. "
            "eval_accuracy:max. Default: with --eval, eval_accuracy (classification) or "
            "eval_loss (causal_lm, instruction, seq2seq); else loss."
        ),
    ] = None,
    trials: Annotated[int, typer.Option(help="Trials to run (0: 10; grid: its whole grid).")] = 0,
    concurrent: Annotated[int, typer.Option(help="Trials at once (0: as many as fit).")] = 0,
    searcher: Annotated[str, typer.Option(help="optuna (default), random, grid...")] = "",
    scheduler: Annotated[str, typer.Option(help="asha (default) or fifo.")] = "",
    search_seed: Annotated[int, typer.Option(help="Seeds the searcher.")] = 0,
    model: ModelOpt = "minilm-l6",
    model_config: ModelConfigOpt = "{}",
    vocab_size: VocabSizeOpt = 0,
    task: TaskOpt = "classification",
    finetune: FinetuneOpt = "full",
    text_column: TextColumnOpt = "",
    label_column: LabelColumnOpt = "",
    target_column: TargetColumnOpt = "",
    prompt_column: PromptColumnOpt = "",
    response_column: ResponseColumnOpt = "",
    messages_column: MessagesColumnOpt = "",
    long_inputs: LongInputsOpt = "",
    input_token_budget: InputTokenBudgetOpt = 0,
    learning_rate: Annotated[float, typer.Option("--lr", help="0: the strategy's default.")] = 0,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Per worker.")] = 16,
    epochs: int = 1,
    max_length: int = 128,
    seed: Annotated[int, typer.Option(help="The trials' training seed.")] = 0,
    cpus_per_trial: Annotated[float, typer.Option(help="0: 1.")] = 0,
    name: Annotated[str, typer.Option("--name", help="Name of the best model.")] = "",
    address: AddressOpt = None,
    wait: WaitOpt = True,
    as_json: JsonOpt = False,
) -> None:
    """Search a training's hyper-parameters (Ray Tune trials); keep the best trial's model."""
    from forgeline.v1 import common_pb2
    from forgeline.v1 import training_service_pb2 as tpb
    from forgeline.v1 import tuning_service_pb2 as pb

    def columns(dataset_id: str) -> common_pb2.DatasetInput:
        return dataset_input(
            dataset_id,
            text_column=text_column,
            label_column=label_column,
            target_column=target_column,
            prompt_column=prompt_column,
            response_column=response_column,
            messages_column=messages_column,
        )

    training = tpb.TrainModelRequest(
        train=columns(dataset),
        eval=columns(eval_dataset) if eval_dataset else None,
        model=model_source(model, model_config, vocab_size),
        task=task_number(task),
        finetune=plugin_specs([finetune], "--finetune")[0],
        hyper_parameters=common_pb2.HyperParameters(
            learning_rate=learning_rate,
            batch_size_per_worker=batch_size,
            epochs=epochs,
            max_sequence_length=max_length,
            seed=seed,
        ),
        long_inputs=plugin_specs([long_inputs], "--long-inputs")[0] if long_inputs else None,
        input_token_budget=input_token_budget,
    )
    request = pb.TuneModelRequest(
        training=training,
        search_space=[search_parameter(p, f"--param[{i}]") for i, p in enumerate(param)],
        objectives=[_objective(o, f"--objective[{i}]") for i, o in enumerate(objective or [])],
        num_trials=trials,
        max_concurrent_trials=concurrent,
        resources_per_trial=pb.TrialResources(cpus=cpus_per_trial),
        searcher=plugin_specs([searcher], "--searcher")[0] if searcher else None,
        scheduler=plugin_specs([scheduler], "--scheduler")[0] if scheduler else None,
        seed=search_seed,
        output_name=name,
    )
    with client(address, "tuning") as service:
        result = follow(
            service, service.tuning.TuneModel(request), pb.TuneModelResponse, wait, as_json
        )
    if as_json:
        print_json(result)
        return
    _print_result(result)


def search_parameter(text: str, option: str) -> tuning_service_pb2.SearchParameter:
    """PATH=DISTRIBUTION:VALUES as a SearchParameter (see PARAM_HELP)."""
    from forgeline.errors import InvalidArgument
    from forgeline.v1 import tuning_service_pb2 as pb

    path, _, spec = text.partition("=")
    kind, _, values = spec.partition(":")
    if not path.strip() or kind not in DISTRIBUTIONS or not values:
        raise InvalidArgument.for_field(
            option,
            f"write PATH=DISTRIBUTION:VALUES with DISTRIBUTION one of {', '.join(DISTRIBUTIONS)}, "
            "e.g. hyper_parameters.learning_rate=loguniform:1e-5,1e-2",
        )
    if kind == "choice":
        chosen = json_value(values, option, "choice values are not a JSON list")
        if not isinstance(chosen, list) or not chosen:
            raise InvalidArgument.for_field(
                option, "choice values must be a JSON list, e.g. [8,16]"
            )
        from google.protobuf import struct_pb2

        listed = struct_pb2.ListValue()
        listed.extend(chosen)
        return pb.SearchParameter(name=path.strip(), choice=pb.ChoiceValues(values=listed.values))
    bounds = json_value(f"[{values}]", option, "bounds are not two numbers LOW,HIGH")
    if len(bounds) != 2 or not all(isinstance(b, int | float) for b in bounds):
        raise InvalidArgument.for_field(option, f"{kind} takes two numbers LOW,HIGH")
    low, high = bounds
    if kind == "integer":
        return pb.SearchParameter(
            name=path.strip(), integer=pb.IntRange(low=int(low), high=int(high))
        )
    return pb.SearchParameter(name=path.strip(), **{kind: pb.FloatRange(low=low, high=high)})


def _objective(text: str, option: str) -> tuning_service_pb2.Objective:
    from forgeline.errors import InvalidArgument
    from forgeline.v1 import tuning_service_pb2 as pb

    metric, _, direction = text.partition(":")
    directions = {
        "": 0,
        "max": pb.OBJECTIVE_DIRECTION_MAXIMIZE,
        "min": pb.OBJECTIVE_DIRECTION_MINIMIZE,
    }
    if direction not in directions:
        raise InvalidArgument.for_field(option, "write METRIC, METRIC:max or METRIC:min")
    return pb.Objective(metric=metric, direction=directions[direction])


def _print_result(result) -> None:
    from google.protobuf import json_format

    from forgeline.v1 import tuning_service_pb2 as pb

    objective = result.objectives[0].metric if result.objectives else ""
    table = Table("trial", "state", "parameters", objective or "objective", "epochs", "seconds")
    for t in result.trials:
        parameters = json_format.MessageToDict(t.parameters)
        table.add_row(
            str(t.number),
            pb.TrialState.Name(t.state).removeprefix("TRIAL_STATE_").lower(),
            "  ".join(
                f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                for k, v in parameters.items()
            ),
            f"{t.metrics[objective]:.4g}" if objective in t.metrics else t.error[:40],
            str(t.iterations),
            f"{t.seconds:.1f}",
        )
    console.print(table)
    best = json_format.MessageToDict(result.best_parameters)
    console.print(
        f"[bold]{result.model.id}[/bold]  best trial {result.best_trial.number}: {best}  "
        f"({result.completed_trials} completed, {result.stopped_early_trials} stopped early, "
        f"{result.failed_trials} failed, {result.seconds:.0f} s)",
        soft_wrap=True,
    )
