"""Which columns of a dataset the generative tasks read, resolved and checked before any work.

seq2seq reads a source text and a target text; instruction SFT reads a prompt and its response,
or a conversation in the chat format (a list of {role, content}). Each refusal names the request
field (``train.prompt_column``...) and says which columns the dataset has.
"""

from __future__ import annotations

from forgeline.datasets import STRING_TYPES, Dataset, DatasetRef, DatasetRepository
from forgeline.errors import FailedPrecondition, InvalidArgument
from forgeline.models import INSTRUCTION, SEQ2SEQ

ROLES = ("system", "user", "assistant", "tool")


def resolve_columns(
    datasets: DatasetRepository,
    ref: DatasetRef,
    field_name: str,
    task: str,
    default: dict[str, str] | None = None,
) -> tuple[Dataset, dict[str, str]]:
    """The dataset ``ref`` names and the columns ``task`` reads from it, by role: ``text`` and
    ``target`` (seq2seq), ``prompt`` and ``response``, or ``messages`` (instruction). A column
    the ref names wins, then ``default``'s (an eval set reads the train set's), then the usual
    names; a messages column is read only when named or when there is no prompt/response."""
    if not ref.dataset_id:
        raise InvalidArgument.for_field(f"{field_name}.dataset_id", "a dataset is required")
    dataset = datasets.get(ref.dataset_id, f"{field_name}.dataset_id")
    default = default or {}
    types = dict(dataset.columns)

    def column(role: str, named: str, fallback: str) -> str:
        name = named or default.get(role) or fallback
        where = f"{field_name}.{role}_column"
        if name not in types:
            raise InvalidArgument.for_field(
                where,
                f"{task} needs a {role} column and dataset {dataset.id} has no column "
                f"{name!r}; columns: {list(types)}"
                + ("; or name a messages_column" if role in ("prompt", "response") else ""),
            )
        if role != "messages" and types[name] not in STRING_TYPES:
            raise InvalidArgument.for_field(where, f"column {name!r} is {types[name]}, not text")
        return name

    if task == SEQ2SEQ:
        text = column("text", ref.text_column, dataset.text_column or "text")
        return dataset, {"text": text, "target": column("target", ref.target_column, "target")}
    if task != INSTRUCTION:
        raise ValueError(f"task {task!r} reads no generative columns")
    pair = ref.prompt_column or ref.response_column or "prompt" in default
    chat = ref.messages_column or "messages" in default
    if not chat and (pair or {"prompt", "response"} <= set(types) or "messages" not in types):
        return dataset, {
            "prompt": column("prompt", ref.prompt_column, "prompt"),
            "response": column("response", ref.response_column, "response"),
        }
    messages = column("messages", ref.messages_column, "messages")
    check_conversations(datasets, dataset, messages, f"{field_name}.messages_column")
    return dataset, {"messages": messages}


def check_conversations(
    datasets: DatasetRepository, dataset: Dataset, column: str, field_name: str
) -> None:
    """Every row of ``column`` is a conversation: a list of {role, content} with a known role,
    text content, and at least one assistant turn to learn (a row without one would train on
    nothing); the first offending row is named."""
    values = datasets.read(dataset, columns=[column]).column(0).to_pylist()
    for i, conversation in enumerate(values):
        problem = conversation_problem(conversation)
        if problem:
            raise FailedPrecondition(
                f"{field_name}: row {i} of column {column!r} of dataset {dataset.id} {problem}; "
                f"each row must be a list of {{role, content}} turns with an assistant turn",
                reason="BAD_CONVERSATION",
                metadata={"field": field_name},
            )


def conversation_problem(conversation: object) -> str:
    """What is wrong with one row of a messages column ("" when nothing is)."""
    if not isinstance(conversation, list) or not conversation:
        return "is not a non-empty list of turns"
    for turn in conversation:
        if not isinstance(turn, dict) or not isinstance(turn.get("content"), str):
            return "has a turn without text content"
        if turn.get("role") not in ROLES:
            return f"has a turn whose role is not one of {', '.join(ROLES)}"
    if not any(turn["role"] == "assistant" for turn in conversation):
        return "has no assistant turn"
    return ""
