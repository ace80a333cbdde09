"""`forgeline train ...`: the training service's commands (run, evaluate, predict, import, and
review export / ingest), each a thin client of its gRPC API."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from forgeline.cli.app import (
    AddressOpt,
    JsonOpt,
    WaitOpt,
    client,
    console,
    follow,
    plugin_specs,
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
from forgeline.v1 import common_pb2

app = typer.Typer(no_args_is_help=True, help="Models: train, evaluate, predict, import.")


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
        line = f"{evaluation.num_examples} examples"
        if evaluation.perplexity or not evaluation.metrics:
            line += f"  perplexity {evaluation.perplexity:.3f}  loss {evaluation.loss:.4f}"
        line += "".join(f"  {k} {v:.4f}" for k, v in sorted(evaluation.metrics.items()))
        console.print(line)
        if evaluation.samples:  # a generation-based evaluation: a few outputs to read
            table = Table("row", "source", "reference", "output")
            for sample in evaluation.samples:
                table.add_row(
                    str(sample.row), sample.source_excerpt[:200], sample.reference, sample.output
                )
            console.print(table)
        if evaluation.outputs_id:
            console.print(f"every output: {evaluation.outputs_id} (for `train review export`)")


@app.command("run")
def train_run(
    dataset: Annotated[str, typer.Argument(help="Training dataset: id, name or name@version.")],
    eval_dataset: EvalOpt = "",
    model: ModelOpt = "minilm-l6",
    model_config: ModelConfigOpt = "{}",
    vocab_size: VocabSizeOpt = 0,
    task: TaskOpt = "classification",
    finetune: FinetuneOpt = "full",
    tracker: Annotated[
        list[str] | None, typer.Option(help="Tracker plugin (repeatable), e.g. tensorboard.")
    ] = None,
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

    from forgeline.v1 import training_service_pb2 as pb

    columns = {
        "text_column": text_column,
        "label_column": label_column,
        "target_column": target_column,
        "prompt_column": prompt_column,
        "response_column": response_column,
        "messages_column": messages_column,
    }
    request = pb.TrainModelRequest(
        train=dataset_input(dataset, **columns),
        model=model_source(model, model_config, vocab_size),
        task=task_number(task),
        finetune=plugin_specs([finetune], "--finetune")[0],
        trackers=plugin_specs(tracker or [], "--tracker"),
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
        long_inputs=plugin_specs([long_inputs], "--long-inputs")[0] if long_inputs else None,
        input_token_budget=input_token_budget,
    )
    if eval_dataset:
        request.eval.CopyFrom(dataset_input(eval_dataset, **columns))
    with client(address, "training") as service:
        result = follow(
            service, service.training.TrainModel(request), pb.TrainModelResponse, wait, as_json
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


@app.command("evaluate")
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
    generate: Annotated[
        bool,
        typer.Option(
            "--generate",
            help="Score what a causal LM, instruction or seq2seq model generates (greedy) "
            "against --reference-column, instead of its perplexity.",
        ),
    ] = False,
    metric: Annotated[
        list[str] | None,
        typer.Option(help="A generation_metrics plugin (repeatable; default rouge)."),
    ] = None,
    reference_column: Annotated[
        str, typer.Option(help="--generate: the column of reference outputs (default target).")
    ] = "",
    max_new_tokens: Annotated[int, typer.Option(help="--generate: tokens per output.")] = 0,
    max_examples: Annotated[
        int, typer.Option(help="--generate: a seeded subset of this many rows (0: all).")
    ] = 0,
    seed: Annotated[int, typer.Option(help="--generate: the seed of that subset.")] = 0,
    long_inputs: Annotated[
        str,
        typer.Option(
            help="--generate: how a text longer than the token budget is read, a long_inputs "
            "plugin NAME or NAME=JSON config: truncate, chunk or extract (empty: truncate)."
        ),
    ] = "",
    input_token_budget: Annotated[
        int,
        typer.Option(
            help="--generate: tokens of input the model reads per generation (0: what its "
            "context leaves after --max-new-tokens)."
        ),
    ] = 0,
    samples: Annotated[
        int, typer.Option(help="--generate: (source, reference, output) samples kept (0: 3).")
    ] = 0,
    raw_prompt: Annotated[
        bool,
        typer.Option(
            "--raw-prompt",
            help="--generate: give a chat model each text as is, not as the user's turn.",
        ),
    ] = False,
    address: AddressOpt = None,
    wait: WaitOpt = True,
    as_json: JsonOpt = False,
) -> None:
    """Score a trained model on a dataset."""
    from google.protobuf import json_format

    from forgeline.v1 import training_service_pb2 as pb

    generation = None
    generative = (metric, reference_column, max_new_tokens, max_examples, seed, long_inputs)
    if generate or any(generative) or input_token_budget or samples or raw_prompt:
        generation = pb.GenerationEvaluation(
            decoding=pb.DecodingOptions(max_new_tokens=max_new_tokens),
            metrics=[common_pb2.PluginSpec(name=name) for name in metric or []],
            reference_column=reference_column,
            long_inputs=plugin_specs([long_inputs], "--long-inputs")[0] if long_inputs else None,
            input_token_budget=input_token_budget,
            max_examples=max_examples,
            seed=seed,
            samples=samples,
            raw_prompt=raw_prompt,
        )
    request = pb.EvaluateModelRequest(
        model_id=model,
        dataset=common_pb2.DatasetInput(
            dataset_id=dataset, text_column=text_column, label_column=label_column
        ),
        generation=generation,
    )
    with client(address, "training") as service:
        result = follow(
            service,
            service.training.EvaluateModel(request),
            pb.EvaluateModelResponse,
            wait,
            as_json,
        )
    if as_json:
        print(json_format.MessageToJson(result))
    else:
        _print_evaluation(result.evaluation)


@app.command("predict")
def train_predict(
    model: Annotated[str, typer.Argument(help="Model or adapter artifact id or name.")],
    texts: Annotated[list[str], typer.Argument(help="Texts to label (or prompts).")],
    max_new_tokens: int = 0,
    address: AddressOpt = None,
) -> None:
    """Label a few texts (or continue a few prompts) with a trained model."""
    from forgeline.v1 import training_service_pb2 as pb

    with client(address, "training") as service:
        response = service.training.Predict(
            pb.PredictRequest(model_id=model, texts=texts, max_new_tokens=max_new_tokens)
        )
    for text, p in zip(texts, response.predictions, strict=True):
        answer = p.generated_text if p.generated_text else f"{p.label} ({p.score:.3f})"
        console.print(f"{answer}\t{text}")


@app.command("import")
def train_import(
    path: Annotated[
        str,
        typer.Argument(
            help="A GGUF file or a Hugging Face folder (safetensors) inside the service's data "
            "roots; a relative path is taken from its first data root."
        ),
    ],
    name: Annotated[
        str, typer.Option("--name", help="Name of the model artifact (default: the file's).")
    ] = "",
    address: AddressOpt = None,
    wait: WaitOpt = True,
    as_json: JsonOpt = False,
) -> None:
    """Import a model (GGUF or Hugging Face folder) as a model artifact, once per source file."""
    from google.protobuf import json_format

    from forgeline.v1 import training_service_pb2 as pb

    request = pb.ImportModelRequest(source_path=path, output_name=name)
    with client(address, "training") as service:
        result = follow(
            service, service.training.ImportModel(request), pb.ImportModelResponse, wait, as_json
        )
    if as_json:
        print(json_format.MessageToJson(result))
        return
    size = result.model.size_bytes / 1e6
    console.print(
        f"[bold]{result.model.id}[/bold]  {result.architecture}  "
        f"{result.parameters:,} parameters  {size:,.1f} MB"
        + ("  (imported before: the same bytes)" if result.cached else "")
    )


review = typer.Typer(
    no_args_is_help=True, help="Human review: export a rating sheet, ingest it filled."
)
app.add_typer(review, name="review")


@review.command("export")
def review_export(
    systems: Annotated[
        list[str],
        typer.Argument(
            help="NAME=OUTPUTS_ID per system compared: an evaluation's outputs_id "
            "(EvaluateModel --generate, or a summarization baseline), all on the same rows."
        ),
    ],
    documents: Annotated[int, typer.Option(help="Documents sampled (0: 20).")] = 0,
    seed: Annotated[int, typer.Option(help="Seed of the sample and of the blind order.")] = 0,
    excerpt_chars: Annotated[
        int, typer.Option(help="Characters of each source shown (0: 2000).")
    ] = 0,
    criterion: Annotated[
        list[str] | None,
        typer.Option(
            help="A rating column, 1-5 (repeatable; default faithfulness, coverage, fluency)."
        ),
    ] = None,
    blind: Annotated[
        bool, typer.Option("--blind/--no-blind", help="Hide which system wrote each summary.")
    ] = True,
    output: Annotated[
        str,
        typer.Option(
            "--output",
            help="Also write the sheet to this new .csv inside the service's data roots.",
        ),
    ] = "",
    name: Annotated[str, typer.Option("--name", help="Name of the sheet artifact.")] = "",
    address: AddressOpt = None,
    wait: WaitOpt = True,
    as_json: JsonOpt = False,
) -> None:
    """Export a review sheet (CSV) of sampled documents with each system's output."""
    from google.protobuf import json_format

    from forgeline.errors import InvalidArgument
    from forgeline.v1 import training_service_pb2 as pb

    compared = []
    for i, item in enumerate(systems):
        system, sep, outputs_id = item.partition("=")
        if not sep:
            raise InvalidArgument.for_field(f"systems[{i}]", "write NAME=OUTPUTS_ID")
        compared.append(pb.ReviewSystem(name=system.strip(), outputs_id=outputs_id.strip()))
    request = pb.ExportReviewSheetRequest(
        systems=compared,
        num_documents=documents,
        seed=seed,
        excerpt_chars=excerpt_chars,
        criteria=criterion or [],
        blind=blind,
        output_name=name,
        output_path=output,
    )
    with client(address, "training") as service:
        result = follow(
            service,
            service.training.ExportReviewSheet(request),
            pb.ExportReviewSheetResponse,
            wait,
            as_json,
        )
    if as_json:
        print(json_format.MessageToJson(result))
        return
    console.print(
        f"[bold]{result.sheet.id}[/bold]  {result.num_documents} documents  {result.rows} rows"
        + (f"  written to {output}" if output else "")
    )


@review.command("ingest")
def review_ingest(
    sheet: Annotated[str, typer.Argument(help="The sheet artifact (its key unblinds).")],
    paths: Annotated[
        list[str],
        typer.Argument(help="Filled copies (CSV) inside the service's data roots, one per rater."),
    ],
    address: AddressOpt = None,
    wait: WaitOpt = True,
    as_json: JsonOpt = False,
) -> None:
    """Read filled review sheets back as ratings per system."""
    from google.protobuf import json_format

    from forgeline.v1 import training_service_pb2 as pb

    request = pb.IngestReviewSheetRequest(sheet_id=sheet, sheet_paths=paths)
    with client(address, "training") as service:
        result = follow(
            service,
            service.training.IngestReviewSheet(request),
            pb.IngestReviewSheetResponse,
            wait,
            as_json,
        )
    if as_json:
        print(json_format.MessageToJson(result))
        return
    criteria = sorted({c for s in result.systems.values() for c in s.mean})
    table = Table("system", *criteria, "overall", "rated rows", "blank cells")
    for system, ratings in sorted(result.systems.items()):
        table.add_row(
            system,
            *(
                f"{ratings.mean[c]:.2f} ({ratings.count[c]})" if c in ratings.mean else "-"
                for c in criteria
            ),
            f"{ratings.overall_mean:.2f}",
            str(ratings.rated_rows),
            str(ratings.unrated_cells),
        )
    console.print(table)
    console.print(f"raters: {', '.join(result.raters) or 'none'}")
    for a in result.agreement:
        console.print(
            f"{a.criterion}: {a.pairs} pairs  exact {a.exact:.2f}  within one "
            f"{a.within_one:.2f}  mean difference {a.mean_absolute_difference:.2f}"
        )
