"""Checks a whole fine-tuning request before any worker starts, and resolves it into a plan.

The training service plans TrainModel with it; the tuning service plans its training request and
every end of its search space with the same checks.

Datasets and columns, labels (at least two classes, none missing), the model and its tokenizer
(safetensors only), the finetune strategy against the model's real architecture (built on the
meta device: no weights, no memory), the sequence length against the model's positions, the
hyper-parameters, whether the Ray cluster can place the workers at all, and the trackers. Every
refusal names the request field. No gRPC here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forgeline import cluster, modelio
from forgeline.artifacts import ArtifactRecord, ArtifactStore
from forgeline.contracts.long_inputs import LongInputStrategy
from forgeline.datasets import Dataset, DatasetRepository, output_name
from forgeline.errors import FailedPrecondition, InvalidArgument, NotFound, Violations, excerpt
from forgeline.finetune.columns import resolve_columns
from forgeline.finetune.spec import ModelChoice, TrainSpec
from forgeline.models import (
    BUILTIN,
    GENERATIVE_TASKS,
    INSTRUCTION,
    SEQ2SEQ,
    SEQUENCE_CLASSIFICATION,
    architecture_problem,
    builtin_path,
    load_tokenizer,
    positions_of,
    skeleton,
)
from forgeline.registry import (
    TASKS,
    FinetuneContext,
    FinetuneStrategy,
    PluginChoice,
    PluginRegistry,
    Tracker,
)

if TYPE_CHECKING:
    from forgeline.paths import PathValidator

# --- what the planner resolved -----------------------------------------------------------------


@dataclass
class ModelPlan:
    source: str  # "builtin:minilm-l6", "path:/x", "artifact:mdl_...", "config:bert"
    path: Path | None  # None until a model from config is built
    hf_config: Any
    artifact: ArtifactRecord | None = None
    builtin: str = ""


@dataclass
class TrainPlan:
    spec: TrainSpec
    task: str
    train: Dataset
    text_column: str
    label_column: str
    labels: list[str]
    eval: Dataset | None
    eval_text_column: str
    eval_label_column: str
    model: ModelPlan
    strategy: FinetuneStrategy
    trackers: list[Tracker]
    hyper: dict[str, Any]
    output_name: str
    # seq2seq and instruction: the columns they read, by role (forgeline.finetune.columns).
    columns: dict[str, str] = field(default_factory=dict)
    eval_columns: dict[str, str] = field(default_factory=dict)
    # seq2seq and instruction: the strategy shortening each prompt (None: the truncation rule
    # alone) and the most tokens a shortened prompt keeps (0: the room its row leaves).
    long_inputs: LongInputStrategy | None = None
    input_token_budget: int = 0


class TrainPlanner:
    def __init__(
        self,
        registry: PluginRegistry,
        datasets: DatasetRepository,
        artifacts: ArtifactStore,
        paths: PathValidator,
    ) -> None:
        self.registry = registry
        self.datasets = datasets
        self.artifacts = artifacts
        self.paths = paths

    def plan_train(self, spec: TrainSpec) -> TrainPlan:
        task = spec.task or SEQUENCE_CLASSIFICATION
        if task not in TASKS:
            raise InvalidArgument.for_field("task", f"unknown task {task!r}; known: {TASKS}")
        columns: dict[str, str] = {}
        eval_columns: dict[str, str] = {}
        evaluation, eval_text, eval_label = None, "", ""
        has_eval = spec.eval is not None and spec.eval.dataset_id
        if task in (SEQ2SEQ, INSTRUCTION):
            train, columns = resolve_columns(self.datasets, spec.train, "train", task)
            text_col, label_col = columns.get("text", ""), ""
            if has_eval:
                evaluation, eval_columns = resolve_columns(
                    self.datasets, spec.eval, "eval", task, default=columns
                )
        else:
            train, text_col, label_col = self.datasets.resolve(spec.train, "train", task)
            if has_eval:
                evaluation, eval_text, eval_label = self.datasets.resolve(
                    spec.eval, "eval", task, default=(text_col, label_col)
                )
        labels = (
            self.datasets.labels(train, label_col, "train")
            if task == SEQUENCE_CLASSIFICATION
            else []
        )
        if evaluation is not None and task == SEQUENCE_CLASSIFICATION:
            self.datasets.check_labels(evaluation, eval_label, labels)
        model = self._model_plan(spec.model)
        if task in GENERATIVE_TASKS:
            problem = architecture_problem(model.hf_config, task)
            if problem:
                raise InvalidArgument.for_field(_model_field(spec.model), problem)
        if task == INSTRUCTION:
            _check_chat_tokenizer(model, spec.model, "messages" in columns)
        strategy = self.registry.create(
            "finetune", spec.finetune.name or "full", spec.finetune.config, "finetune"
        )
        hyper = self._hyper(spec, train, strategy)
        positions = positions_of(model.hf_config)
        if positions and hyper["max_length"] > positions:
            raise InvalidArgument.for_field(
                "hyper_parameters.max_sequence_length",
                f"{hyper['max_length']} is longer than this model's {positions} positions",
            )
        long_inputs = self._long_inputs(spec, task, columns, hyper["max_length"])
        strategy.check(
            _skeleton_of(model, spec.model, task, labels),
            FinetuneContext(
                task=task,
                model_path=str(model.path or ""),
                tokenizer_path=str(model.path or ""),
                max_length=hyper["max_length"],
            ),
        )
        trackers = self.registry.create_all("trackers", spec.trackers, "trackers")
        self._check_capacity(hyper)  # last: it asks the Ray cluster
        name = output_name(spec.output_name or f"{train.name}-{strategy.name}")
        return TrainPlan(
            spec=spec,
            task=task,
            train=train,
            text_column=text_col,
            label_column=label_col,
            labels=labels,
            eval=evaluation,
            eval_text_column=eval_text,
            eval_label_column=eval_label,
            model=model,
            strategy=strategy,
            trackers=trackers,
            hyper=hyper,
            output_name=name,
            columns=columns,
            eval_columns=eval_columns,
            long_inputs=long_inputs,
            input_token_budget=spec.input_token_budget,
        )

    def _long_inputs(
        self, spec: TrainSpec, task: str, columns: dict[str, str], max_length: int
    ) -> LongInputStrategy | None:
        """The long_inputs strategy that shortens each prompt (source text) of an instruction or
        seq2seq run, checked against the task and the sequence length; None when neither
        long_inputs nor input_token_budget is set. Only a single-pass strategy can make a
        training example: the one input it reads is the one the model learns from."""
        budget = spec.input_token_budget
        if spec.long_inputs is None and not budget:
            return None
        where = "long_inputs" if spec.long_inputs is not None else "input_token_budget"
        if task not in (INSTRUCTION, SEQ2SEQ):
            raise InvalidArgument.for_field(
                where,
                f"a {task} run has no prompt to shorten; long inputs apply to instruction (the "
                "prompt column) and seq2seq (the text column)",
            )
        if "messages" in columns:
            raise InvalidArgument.for_field(
                where,
                "a messages column holds whole conversations, not one prompt per row; long "
                "inputs shorten a prompt column: name train.prompt_column and response_column",
            )
        if budget < 0:
            raise InvalidArgument.for_field("input_token_budget", "must be >= 0")
        if task == INSTRUCTION and budget >= max_length:
            raise InvalidArgument.for_field(
                "input_token_budget",
                f"{budget} prompt tokens leave no room for the response within "
                f"hyper_parameters.max_sequence_length ({max_length})",
            )
        if task == SEQ2SEQ and budget > max_length:
            raise InvalidArgument.for_field(
                "input_token_budget",
                f"{budget} is more than the source text's hyper_parameters.max_sequence_length "
                f"({max_length})",
            )
        choice = spec.long_inputs or PluginChoice("truncate")
        strategy = self.registry.create("long_inputs", choice.name, choice.config, "long_inputs")
        if not strategy.single_pass:
            raise InvalidArgument.for_field(
                "long_inputs.name",
                f"{choice.name!r} reads a document in several passes (it generates from its "
                "parts, then from their outputs), and a training example is one input per row; "
                "train with a single-pass strategy (truncate, extract) and keep "
                f"{choice.name!r} for EvaluateModel's generation.long_inputs",
            )
        return strategy

    def _model_plan(self, choice: ModelChoice) -> ModelPlan:
        from transformers import AutoConfig

        if choice.builtin:
            if choice.builtin not in BUILTIN:
                raise InvalidArgument.for_field(
                    "model.builtin",
                    f"unknown builtin model {choice.builtin!r}; known: {', '.join(BUILTIN)}",
                )
            path = builtin_path(choice.builtin)
            return ModelPlan(
                f"builtin:{choice.builtin}",
                path,
                AutoConfig.from_pretrained(path, local_files_only=True),
                builtin=choice.builtin,
            )
        if choice.path:
            path = self.paths.resolve(choice.path, "model.path")
            _check_model_folder(path, "model.path")
            return ModelPlan(f"path:{path}", path, AutoConfig.from_pretrained(path))
        if choice.artifact_id:
            try:
                record = self.artifacts.get(choice.artifact_id)
            except NotFound as exc:
                raise NotFound(
                    f"model.artifact_id: no artifact {choice.artifact_id!r}",
                    reason="MODEL_NOT_FOUND",
                    metadata={"field": "model.artifact_id"},
                ) from exc
            if record.kind != "model":
                raise FailedPrecondition(
                    f"model.artifact_id: {record.id} is a {record.kind}, not a full model; "
                    + (
                        "train from its base model instead"
                        if record.kind == "adapter"
                        else "name a model artifact"
                    ),
                    reason="NOT_A_MODEL",
                )
            path = self.artifacts.verify(record)
            _check_model_folder(path, "model.artifact_id")
            return ModelPlan(
                f"artifact:{record.id}", path, AutoConfig.from_pretrained(path), record
            )
        if choice.model_type:
            return ModelPlan(f"config:{choice.model_type}", None, _config_from_fields(choice), None)
        raise InvalidArgument.for_field(
            "model", "name a builtin model, a local path, a model artifact or a config"
        )

    def _hyper(self, spec: TrainSpec, train: Dataset, strategy: FinetuneStrategy) -> dict:
        errors: list[tuple[str, str]] = []

        def need(ok: bool, name: str, why: str) -> None:
            if not ok:
                errors.append((name, why))

        hp = "hyper_parameters."
        lr = spec.learning_rate or strategy.default_learning_rate
        need(0 < lr < 1, hp + "learning_rate", f"{lr} is not in (0, 1)")
        batch = spec.batch_size or 16
        need(1 <= batch <= 4096, hp + "batch_size_per_worker", f"{batch} is not in [1, 4096]")
        need(spec.epochs >= 0, hp + "epochs", "must be >= 0")
        need(spec.max_steps >= 0, hp + "max_steps", "must be >= 0")
        need(0 <= spec.warmup_ratio < 1, hp + "warmup_ratio", "must be in [0, 1)")
        need(spec.warmup_steps >= 0, hp + "warmup_steps", "must be >= 0")
        need(spec.weight_decay >= 0, hp + "weight_decay", "must be >= 0")
        accumulate = spec.gradient_accumulation_steps or 1
        need(accumulate >= 1, hp + "gradient_accumulation_steps", "must be >= 1")
        max_length = spec.max_length or 128
        need(8 <= max_length <= 65536, hp + "max_sequence_length", "must be in [8, 65536]")
        workers = spec.num_workers or 1
        need(1 <= workers <= 1024, "scaling.num_workers", "must be in [1, 1024]")
        cpus = spec.cpus_per_worker or 1.0
        need(cpus > 0, "scaling.cpus_per_worker", "must be > 0")
        need(spec.checkpoint_every >= 0, "checkpoint.every_steps", "must be >= 0")
        need(spec.keep_checkpoints >= 0, "checkpoint.keep", "must be >= 0")
        need(spec.max_failures >= 0, "failure.max_failures", "must be >= 0")
        if batch * workers > train.num_rows:
            errors.append(
                (
                    hp + "batch_size_per_worker",
                    f"{workers} worker(s) x batch {batch} needs {batch * workers} rows per step "
                    f"but dataset {train.id} has {train.num_rows}",
                )
            )
        if errors:
            problems = Violations()
            for name, why in errors:
                problems.add(name, why)
            problems.raise_if_any()
        return {
            "learning_rate": lr,
            "batch_size": batch,
            "epochs": spec.epochs or (0 if spec.max_steps else 1),
            "max_steps": spec.max_steps,
            "warmup_ratio": spec.warmup_ratio,
            "warmup_steps": spec.warmup_steps,
            "weight_decay": spec.weight_decay,
            "gradient_accumulation_steps": accumulate,
            "max_length": max_length,
            "seed": spec.seed,
            "group_by_length": spec.group_by_length,
            "num_workers": workers,
            "cpus_per_worker": cpus,
            "use_gpu": spec.use_gpu,
            "bf16": spec.bf16,
            "checkpoint_every": spec.checkpoint_every,
            "keep_checkpoints": spec.keep_checkpoints or 2,
            "max_failures": spec.max_failures,
        }

    def _check_capacity(self, hyper: dict) -> None:
        """Against the Ray this process has reached; never waits for Ray (a submit answers at
        once): before Ray is reached, the operation plans again once it is (run_train)."""
        have = cluster.require_cpus(
            hyper["num_workers"],
            hyper["cpus_per_worker"],
            "scaling",
            "scaling.num_workers",
            connect=False,
        )
        if have is None:
            return
        if hyper["use_gpu"] and have.gpus < hyper["num_workers"]:
            raise FailedPrecondition(
                f"scaling.use_gpu: {hyper['num_workers']} GPU worker(s) asked for, the Ray "
                f"cluster has {have.gpus:g} GPUs",
                reason="NO_GPU",
                metadata={"field": "scaling.use_gpu"},
            )


def _model_field(choice: ModelChoice) -> str:
    """The request field that chose the model."""
    if choice.builtin:
        return "model.builtin"
    if choice.path:
        return "model.path"
    if choice.artifact_id:
        return "model.artifact_id"
    return "model.from_config.model_type"


PROBE_CONVERSATION = [
    {"role": "user", "content": "Hello."},
    {"role": "assistant", "content": "Hi."},
    {"role": "user", "content": "How are you?"},
    {"role": "assistant", "content": "Well."},
]


def _check_chat_tokenizer(model: ModelPlan, choice: ModelChoice, conversations: bool) -> None:
    """Instruction SFT reads a fast tokenizer's offsets (which tokens are the response's); a
    messages column needs its chat template. A model from config gets a plain tokenizer: no
    template."""
    tokenizer = None
    if model.path is not None:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model.path, local_files_only=True)
        if not tokenizer.is_fast:
            raise FailedPrecondition(
                f"{_model_field(choice)}: instruction training needs a fast tokenizer (its "
                f"offsets say which tokens are the response's); this model's is "
                f"{type(tokenizer).__name__}",
                reason="SLOW_TOKENIZER",
                metadata={"field": _model_field(choice)},
            )
    if tokenizer is not None and tokenizer.chat_template:
        from forgeline.finetune.data import render_conversation

        try:  # the spans of the assistant turns rest on each turn rendering as a prefix
            render_conversation(tokenizer, PROBE_CONVERSATION)
        except Exception as exc:  # a template is a program: any error is its author's
            raise FailedPrecondition(
                f"{_model_field(choice)}: this model's chat template cannot render a "
                f"conversation turn by turn ({type(exc).__name__}: {excerpt(str(exc))})",
                reason="BAD_CHAT_TEMPLATE",
                metadata={"field": _model_field(choice)},
            ) from exc
    if conversations and (tokenizer is None or not tokenizer.chat_template):
        raise FailedPrecondition(
            "train.messages_column: a messages dataset is rendered by the tokenizer's chat "
            f"template, and the tokenizer of {_model_field(choice)} has none; use prompt and "
            "response columns, or a model whose tokenizer has a chat template",
            reason="NO_CHAT_TEMPLATE",
            metadata={"field": "train.messages_column"},
        )


def _check_model_folder(path: Path, field_name: str) -> None:
    if not path.is_dir() or not (path / "config.json").exists():
        raise InvalidArgument.for_field(
            field_name, f"{path} is not a Hugging Face model folder (no config.json)"
        )
    # Any pickle anywhere in the folder, whatever its name: transformers falls back to
    # pytorch_model.bin when the safetensors file it looks for is not there.
    modelio.check_safe(path, field_name)
    if not list(path.glob("*.safetensors")):
        raise FailedPrecondition(
            f"{field_name}: {path} has no safetensors weights; forgeline never loads pickled "
            f"weights (convert them with save_pretrained(safe_serialization=True))",
            reason="NOT_SAFETENSORS",
            metadata={"field": field_name},
        )
    load_tokenizer(field_name, str(path), pretrained_model_name_or_path=path, local_files_only=True)


def model_config_fields(model_type: str, config: dict[str, Any]) -> dict[str, Any]:
    """Config fields as their config class types them: JSON numbers arrive as floats, and an
    integral float becomes an int where the field's default is an int."""
    from transformers import CONFIG_MAPPING

    defaults = CONFIG_MAPPING[model_type]().to_dict()
    return {
        k: int(v)
        if isinstance(v, float)
        and v.is_integer()
        and isinstance(defaults.get(k), int)
        and not isinstance(defaults.get(k), bool)
        else v
        for k, v in config.items()
    }


def _config_from_fields(choice: ModelChoice):
    from transformers import CONFIG_MAPPING, AutoConfig

    if choice.model_type not in CONFIG_MAPPING:
        raise InvalidArgument.for_field(
            "model.from_config.model_type",
            f"unknown model type {choice.model_type!r}; e.g. bert, gpt2, distilbert, llama",
        )
    known = set(CONFIG_MAPPING[choice.model_type]().to_dict())
    unknown = sorted(set(choice.config) - known)
    if unknown:
        raise InvalidArgument.for_field(
            "model.from_config.config",
            f"{unknown} are not {choice.model_type} config fields",
        )
    vocab = choice.vocab_size or 8000
    if not 64 <= vocab <= 1_000_000:
        raise InvalidArgument.for_field("model.from_config.vocab_size", "must be in [64, 1000000]")
    fields = model_config_fields(choice.model_type, choice.config)
    try:
        config = AutoConfig.for_model(choice.model_type, **{**fields, "vocab_size": vocab})
    except Exception as exc:  # transformers validates fields with several error types
        raise _config_error(choice, exc) from exc
    _check_dimensions(choice, config)
    return config


# Sizes and counts by the names every transformers config answers to (a config class maps its
# own spelling onto them through ``attribute_map``, e.g. GPT-2's n_embd for hidden_size).
DIMENSIONS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "intermediate_size",
    "max_position_embeddings",
)
CONFIG_FIELD = "model.from_config.config"


def _check_dimensions(choice: ModelChoice, config: Any) -> None:
    """What the model classes assume of a config but its class does not check: sizes are
    positive, and without a ``head_dim`` of its own the hidden size splits evenly across the
    attention heads (as across the key/value heads' groups)."""
    aliases = getattr(type(config), "attribute_map", {})

    def spelled(name: str) -> str:  # the field as the request spells it
        return name if name in choice.config else aliases.get(name, name)

    def size(name: str) -> int | None:
        value = getattr(config, name, None)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    for name in DIMENSIONS:
        value = size(name)
        if value is not None and value < 1:
            raise InvalidArgument.for_field(
                f"{CONFIG_FIELD}.{spelled(name)}", f"must be a positive integer, not {value}"
            )
    hidden, heads, groups = (
        size("hidden_size"),
        size("num_attention_heads"),
        size("num_key_value_heads"),
    )
    if hidden and heads and getattr(config, "head_dim", None) is None and hidden % heads:
        blamed = "hidden_size" if spelled("hidden_size") in choice.config else "num_attention_heads"
        raise InvalidArgument.for_field(
            f"{CONFIG_FIELD}.{spelled(blamed)}",
            f"{spelled('hidden_size')} ({hidden}) must be a multiple of "
            f"{spelled('num_attention_heads')} ({heads}): each head takes an equal share",
        )
    if heads and groups and heads % groups:
        raise InvalidArgument.for_field(
            f"{CONFIG_FIELD}.{spelled('num_key_value_heads')}",
            f"{spelled('num_attention_heads')} ({heads}) must be a multiple of it ({groups})",
        )


def _config_error(choice: ModelChoice, exc: Exception) -> InvalidArgument:
    """A config that transformers refused to build (or to build a model from), as
    InvalidArgument naming the one field of the request its message names, if one does (by
    name or in words: "hidden_size", "hidden size"; else by its value), else the whole config."""
    text = str(exc)
    lowered = text.lower()
    named = [
        k for k in choice.config if k.lower() in lowered or k.replace("_", " ").lower() in lowered
    ]
    if not named:
        named = [
            k
            for k, v in model_config_fields(choice.model_type, choice.config).items()
            if isinstance(v, str | float)  # not ints: small numbers are in many messages
            and re.search(rf"(?<![\w.]){re.escape(str(v))}(?![\w.])", text)
        ]
    where = f"{CONFIG_FIELD}.{named[0]}" if len(named) == 1 else CONFIG_FIELD
    cause = " ".join(text.split())  # transformers' messages span lines
    if len(cause) > 300:
        cause = cause[:300] + "..."
    return InvalidArgument.for_field(
        where, f"not a valid {excerpt(choice.model_type)} config: {type(exc).__name__}: {cause}"
    )


def _skeleton_of(model: ModelPlan, choice: ModelChoice, task: str, labels: list[str]):
    """The model's skeleton; a model built from the request's config that cannot be built is
    the request's fault (InvalidArgument naming the field), found before any worker starts."""
    if model.path is not None:
        return skeleton(model.hf_config, task, labels)
    try:
        return skeleton(model.hf_config, task, labels)
    except (ValueError, TypeError, RuntimeError, ArithmeticError, LookupError) as exc:
        raise _config_error(choice, exc) from exc
