"""What `forgeline train run` and `forgeline tune` share: the options that describe a training
(the model, its task, the strategy) and turning them into a TrainModelRequest's parts. The
tuning service searches over a whole TrainModelRequest, so both commands build one the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from forgeline.cli.app import json_value

if TYPE_CHECKING:
    from forgeline.v1 import common_pb2, training_service_pb2

TASK_NAMES = {"classification": 1, "causal_lm": 2, "seq2seq": 3, "instruction": 4}

EvalOpt = Annotated[str, typer.Option("--eval", help="Held-out dataset scored after every epoch.")]
ModelOpt = Annotated[
    str,
    typer.Option(
        help="builtin:NAME, path:FOLDER, artifact:ID or config:MODEL_TYPE (a fresh model "
        "with a tokenizer trained on the dataset); a bare name is a builtin. The training "
        "service resolves FOLDER: a relative one is taken relative to its first data root "
        "(FORGELINE_DATA_ROOTS where it runs), not this directory."
    ),
]
ModelConfigOpt = Annotated[
    str, typer.Option(help='With config:TYPE, its fields as JSON, e.g. {"hidden_size": 128}.')
]
VocabSizeOpt = Annotated[int, typer.Option(help="With config:TYPE, the tokenizer's size.")]
TaskOpt = Annotated[
    str,
    typer.Option(
        help="classification, causal_lm, instruction (prompt/response or messages columns, "
        "loss on the responses) or seq2seq (text -> target, an encoder-decoder)."
    ),
]
# The columns a task reads, for the training rows and (unless they name their own) --eval's.
TextColumnOpt = Annotated[str, typer.Option(help="Empty: the dataset's text column.")]
LabelColumnOpt = Annotated[
    str, typer.Option(help="classification: empty takes the dataset's label column.")
]
TargetColumnOpt = Annotated[
    str, typer.Option(help="seq2seq: the column of target texts (empty: target).")
]
PromptColumnOpt = Annotated[
    str, typer.Option(help="instruction: the column of prompts (empty: prompt).")
]
ResponseColumnOpt = Annotated[
    str, typer.Option(help="instruction: the column of responses (empty: response).")
]
MessagesColumnOpt = Annotated[
    str,
    typer.Option(
        help="instruction: a column of chat conversations (lists of {role, content}; empty: "
        "messages when the dataset has no prompt/response columns)."
    ),
]
FinetuneOpt = Annotated[str, typer.Option(help="Strategy, e.g. lora or 'lora={\"r\": 16}'.")]
LongInputsOpt = Annotated[
    str,
    typer.Option(
        help="instruction / seq2seq: a single-pass long_inputs plugin that shortens each prompt "
        "(source text) to the room its row leaves, NAME or NAME=JSON config, e.g. "
        '\'truncate={"keep": "head_tail"}\' or extract (empty: the truncation rule alone).'
    ),
]
InputTokenBudgetOpt = Annotated[
    int,
    typer.Option(
        help="instruction / seq2seq: most tokens of a shortened prompt (0: the room its row "
        "leaves); without --long-inputs, prompts are shortened with truncate."
    ),
]


def model_source(
    model: str, model_config: str, vocab_size: int
) -> training_service_pb2.ModelSource:
    """--model (and, for config:TYPE, --model-config and --vocab-size) as a ModelSource."""
    from forgeline.convert import struct
    from forgeline.errors import InvalidArgument
    from forgeline.v1 import training_service_pb2 as pb

    kind, _, value = model.partition(":") if ":" in model else ("builtin", "", model)
    if kind == "config":
        fields = json_value(model_config, "--model-config")
        return pb.ModelSource(
            from_config=pb.ModelFromConfig(
                model_type=value, config=struct(fields), vocab_size=vocab_size
            )
        )
    if kind in ("builtin", "path", "artifact"):
        return pb.ModelSource(**{{"artifact": "artifact_id"}.get(kind, kind): value})
    raise InvalidArgument.for_field(
        "--model", "use builtin:NAME, path:FOLDER, artifact:ID or config:TYPE"
    )


def dataset_input(
    dataset_id: str,
    *,
    text_column: str = "",
    label_column: str = "",
    target_column: str = "",
    prompt_column: str = "",
    response_column: str = "",
    messages_column: str = "",
) -> common_pb2.DatasetInput:
    """A dataset and the columns named by the column options, as a request's DatasetInput
    (the same for the training rows and --eval: an eval set reads the columns the training
    rows do)."""
    from forgeline.v1 import common_pb2

    return common_pb2.DatasetInput(
        dataset_id=dataset_id,
        text_column=text_column,
        label_column=label_column,
        target_column=target_column,
        prompt_column=prompt_column,
        response_column=response_column,
        messages_column=messages_column,
    )


def task_number(task: str) -> int:
    """--task as the Task enum's number."""
    from forgeline.errors import InvalidArgument

    if task not in TASK_NAMES:
        raise InvalidArgument.for_field("--task", f"one of {', '.join(TASK_NAMES)}")
    return TASK_NAMES[task]
