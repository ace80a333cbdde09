"""What the PEFT-based strategies share: the task type for a forgeline task."""

from __future__ import annotations

from forgeline.errors import InvalidArgument


def peft_task_type(task: str):
    from peft import TaskType

    types = {
        "sequence_classification": TaskType.SEQ_CLS,
        "causal_lm": TaskType.CAUSAL_LM,
        "instruction": TaskType.CAUSAL_LM,  # a causal LM whose loss covers the responses
        "seq2seq": TaskType.SEQ_2_SEQ_LM,
    }
    if task not in types:
        raise InvalidArgument.for_field("task", f"task {task!r} has no PEFT task type")
    return types[task]
