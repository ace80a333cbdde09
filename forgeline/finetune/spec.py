"""What a client asks a fine-tuning run for, as plain data, and its mapping from the wire.

``TrainSpec`` is a TrainModelRequest without protobuf: the training service plans and runs it, and
the tuning service searches over one (TuneModelRequest embeds a TrainModelRequest), so both read a
request through ``train_spec``. Nothing here checks values; planning.py does, naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from forgeline.convert import from_struct, plugin_choice
from forgeline.datasets import DatasetRef, dataset_ref
from forgeline.errors import InvalidArgument
from forgeline.registry import PluginChoice
from forgeline.v1 import training_service_pb2 as pb


@dataclass(frozen=True)
class ModelChoice:
    builtin: str = ""
    path: str = ""
    artifact_id: str = ""
    # From config: a model type, its config fields, the vocabulary of the tokenizer to train.
    model_type: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    vocab_size: int = 0


@dataclass(frozen=True)
class TrainSpec:
    train: DatasetRef
    model: ModelChoice
    finetune: PluginChoice = PluginChoice("full")
    eval: DatasetRef | None = None
    task: str = ""
    trackers: list[PluginChoice] = field(default_factory=list)
    # Hyper-parameters; 0 means "the default".
    learning_rate: float = 0.0
    batch_size: int = 0
    epochs: int = 0
    max_steps: int = 0
    warmup_ratio: float = 0.0
    warmup_steps: int = 0
    weight_decay: float = 0.0
    gradient_accumulation_steps: int = 0
    max_length: int = 0
    seed: int = 0
    group_by_length: bool = False
    # Scaling.
    num_workers: int = 0
    use_gpu: bool = False
    cpus_per_worker: float = 0.0
    bf16: bool = False
    # Checkpoints and failures.
    checkpoint_every: int = 0
    keep_checkpoints: int = 0
    max_failures: int = 0
    output_name: str = ""
    # Instruction and seq2seq: a long_inputs plugin shortening each prompt (source text), and
    # the most tokens a shortened prompt keeps (0: the room its row leaves).
    long_inputs: PluginChoice | None = None
    input_token_budget: int = 0


# The wire's task enum -> the task names of forgeline.models (planning checks which are served).
TASKS = {
    pb.TASK_UNSPECIFIED: "",
    pb.TASK_SEQUENCE_CLASSIFICATION: "sequence_classification",
    pb.TASK_CAUSAL_LM: "causal_lm",
    pb.TASK_SEQ2SEQ: "seq2seq",
    pb.TASK_INSTRUCTION: "instruction",
}


def train_spec(r: pb.TrainModelRequest) -> TrainSpec:
    """A TrainModelRequest as a TrainSpec (a model from config must name its model type)."""
    source = r.model.WhichOneof("source")
    if source == "from_config":
        c = r.model.from_config
        if not c.model_type:
            raise InvalidArgument.for_field(
                "model.from_config.model_type", "a Hugging Face model type is required, e.g. bert"
            )
        model = ModelChoice(
            model_type=c.model_type, config=from_struct(c.config), vocab_size=c.vocab_size
        )
    else:
        model = ModelChoice(**({source: getattr(r.model, source)} if source else {}))
    if r.task not in TASKS:
        raise InvalidArgument.for_field("task", f"unknown task value {r.task}")
    h, s = r.hyper_parameters, r.scaling
    return TrainSpec(
        train=dataset_ref(r.train),
        eval=dataset_ref(r.eval) if r.HasField("eval") else None,
        model=model,
        task=TASKS[r.task],
        finetune=plugin_choice(r.finetune) if r.finetune.name else PluginChoice("full"),
        trackers=[plugin_choice(t) for t in r.trackers],
        learning_rate=h.learning_rate,
        batch_size=h.batch_size_per_worker,
        epochs=h.epochs,
        max_steps=h.max_steps,
        warmup_ratio=h.warmup_ratio,
        warmup_steps=h.warmup_steps,
        weight_decay=h.weight_decay,
        gradient_accumulation_steps=h.gradient_accumulation_steps,
        max_length=h.max_sequence_length,
        seed=h.seed,
        group_by_length=h.group_by_length,
        num_workers=s.num_workers,
        use_gpu=s.use_gpu,
        cpus_per_worker=s.cpus_per_worker,
        bf16=s.bf16,
        checkpoint_every=r.checkpoint.every_steps,
        keep_checkpoints=r.checkpoint.keep,
        max_failures=r.failure.max_failures,
        output_name=r.output_name,
        long_inputs=plugin_choice(r.long_inputs) if r.HasField("long_inputs") else None,
        input_token_budget=r.input_token_budget,
    )
