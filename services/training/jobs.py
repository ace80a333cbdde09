"""The training service's work: train, evaluate, predict. No gRPC here.

``plan_train`` checks a whole request before any worker starts (datasets and columns, labels,
the model and its tokenizer, the finetune strategy against the real architecture, sequence
length against the model's positions, hyper-parameters, whether the cluster can place the
workers, trackers). ``run_train`` then runs the recipe on Ray Train as a Ray task it can cancel,
drains the metrics the workers stream into the operation's event log (the built-in metric
store) and into tracker plugins, and commits the result as a model or adapter artifact.

A run's Ray storage is named after its operation, so the same operation run again (after a
restart of this service) resumes from its latest checkpoint.
"""

from __future__ import annotations

import re
import shutil
import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forgeline.artifacts import ArtifactRecord, ArtifactStore, Lineage
from forgeline.datasets import Dataset, DatasetRepository
from forgeline.errors import (
    Cancelled,
    FailedPrecondition,
    ForgelineError,
    Internal,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
)
from forgeline.logging import get_logger
from forgeline.operations import Interrupted
from forgeline.registry import (
    TASKS,
    FinetuneContext,
    FinetuneStrategy,
    PluginChoice,
    PluginRegistry,
    Tracker,
    TrackerRun,
)
from forgeline.services.training import cluster
from forgeline.services.training.models import BUILTIN, build_from_config, builtin_path
from forgeline.services.training.recipe import (
    CAUSAL_LM,
    SEQUENCE_CLASSIFICATION,
    MetricsSink,
    RecipeConfig,
    read_manifest,
)

if TYPE_CHECKING:
    from forgeline.operations import OperationContext
    from forgeline.paths import PathValidator
    from forgeline.settings import Settings

SERVICE = "forgeline.v1.TrainingService"
STRING_TYPES = ("string", "large_string")
log = get_logger(__name__)


# --- what a client asks for (plain data; the servicer fills it from the request) ---------------


@dataclass(frozen=True)
class DatasetRef:
    dataset_id: str = ""
    text_column: str = ""
    label_column: str = ""


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


# --- what the service resolved -----------------------------------------------------------------


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


@dataclass
class TrainOutcome:
    model: ArtifactRecord
    metrics: dict[str, float]
    steps: int
    trainable_parameters: int
    total_parameters: int
    evaluation: dict[str, Any] | None


@dataclass
class Predicted:
    label: str = ""
    score: float = 0.0
    scores: dict[str, float] = field(default_factory=dict)
    generated_text: str = ""


class TrainingJobs:
    def __init__(
        self,
        registry: PluginRegistry,
        datasets: DatasetRepository,
        artifacts: ArtifactStore,
        paths: PathValidator,
        settings: Settings,
    ) -> None:
        self.registry = registry
        self.datasets = datasets
        self.artifacts = artifacts
        self.paths = paths
        self.settings = settings
        self.runs_dir = settings.home.expanduser() / "services" / "training" / "runs"
        self._models: OrderedDict[str, tuple[Any, Any, str]] = OrderedDict()
        self._models_lock = threading.Lock()

    # === TrainModel =============================================================================
    def plan_train(self, spec: TrainSpec) -> TrainPlan:
        task = spec.task or SEQUENCE_CLASSIFICATION
        if task not in TASKS:
            raise InvalidArgument.for_field("task", f"unknown task {task!r}; known: {TASKS}")
        if task not in (SEQUENCE_CLASSIFICATION, CAUSAL_LM):
            raise FailedPrecondition(
                f"task: {task} is not supported by this training service yet; use "
                f"{SEQUENCE_CLASSIFICATION} or {CAUSAL_LM}",
                reason="TASK_NOT_SUPPORTED",
            )
        train, text_col, label_col = self._dataset(spec.train, "train", task)
        labels = self._labels(train, label_col, "train") if task == SEQUENCE_CLASSIFICATION else []
        evaluation, eval_text, eval_label = None, "", ""
        if spec.eval is not None and spec.eval.dataset_id:
            evaluation, eval_text, eval_label = self._dataset(
                spec.eval, "eval", task, default=(text_col, label_col)
            )
            if task == SEQUENCE_CLASSIFICATION:
                unseen = sorted(set(self._labels(evaluation, eval_label, "eval", 1)) - set(labels))
                if unseen:
                    raise InvalidArgument.for_field(
                        "eval.label_column",
                        f"labels {unseen[:10]} never occur in the training data (its labels: "
                        f"{labels[:20]})",
                    )
        model = self._model_plan(spec.model)
        strategy = self.registry.create(
            "finetune", spec.finetune.name or "full", spec.finetune.config, "finetune"
        )
        hyper = self._hyper(spec, train, strategy)
        positions = _positions(model.hf_config)
        if positions and hyper["max_length"] > positions:
            raise InvalidArgument.for_field(
                "hyper_parameters.max_sequence_length",
                f"{hyper['max_length']} is longer than this model's {positions} positions",
            )
        skeleton = _skeleton(model.hf_config, task, labels)
        strategy.check(
            skeleton,
            FinetuneContext(
                task=task,
                model_path=str(model.path or ""),
                tokenizer_path=str(model.path or ""),
                max_length=hyper["max_length"],
            ),
        )
        self._check_capacity(hyper)
        trackers = self.registry.create_all("trackers", spec.trackers, "trackers")
        name = spec.output_name or f"{train.name}-{strategy.name}"
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", name):
            raise InvalidArgument.for_field(
                "output_name", "use letters, digits, '.', '_' and '-' (at most 128)"
            )
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
        )

    def _dataset(
        self, ref: DatasetRef, field_name: str, task: str, default: tuple[str, str] = ("", "")
    ) -> tuple[Dataset, str, str]:
        if not ref.dataset_id:
            raise InvalidArgument.for_field(f"{field_name}.dataset_id", "a dataset is required")
        dataset = self.datasets.get(ref.dataset_id, f"{field_name}.dataset_id")
        types = dict(dataset.columns)
        text = ref.text_column or default[0] or dataset.text_column
        if not text:
            raise InvalidArgument.for_field(
                f"{field_name}.text_column",
                f"dataset {dataset.id} has no text column; name one of {list(types)}",
            )
        if text not in types:
            raise InvalidArgument.for_field(
                f"{field_name}.text_column",
                f"no column {text!r} in dataset {dataset.id}; columns: {list(types)}",
            )
        if types[text] not in STRING_TYPES:
            raise InvalidArgument.for_field(
                f"{field_name}.text_column", f"column {text!r} is {types[text]}, not text"
            )
        label = ""
        if task == SEQUENCE_CLASSIFICATION:
            label = ref.label_column or default[1] or dataset.label_column
            if not label:
                raise InvalidArgument.for_field(
                    f"{field_name}.label_column",
                    f"classification needs labels and dataset {dataset.id} has no label column; "
                    f"name one of {list(types)}",
                )
            if label not in types:
                raise InvalidArgument.for_field(
                    f"{field_name}.label_column",
                    f"no column {label!r} in dataset {dataset.id}; columns: {list(types)}",
                )
        return dataset, text, label

    def _labels(self, dataset: Dataset, column: str, field_name: str, least: int = 2) -> list[str]:
        import pyarrow.compute as pc

        values = self.datasets.read(dataset, columns=[column]).column(0)
        if values.null_count:
            raise FailedPrecondition(
                f"{field_name}.label_column: {values.null_count} rows of dataset {dataset.id} "
                f"have no label in {column!r}; drop or fill them first",
                reason="NULL_LABELS",
                metadata={"field": f"{field_name}.label_column"},
            )
        distinct = pc.unique(values).to_pylist()
        if len(distinct) < least:
            raise FailedPrecondition(
                f"{field_name}.label_column: column {column!r} of dataset {dataset.id} has only "
                f"{len(distinct)} class ({distinct}); classification needs at least two",
                reason="ONE_CLASS",
                metadata={"field": f"{field_name}.label_column"},
            )
        return [str(v) for v in sorted(distinct)]

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
            from forgeline.errors import Violations

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
            "num_workers": workers,
            "cpus_per_worker": cpus,
            "use_gpu": spec.use_gpu,
            "bf16": spec.bf16,
            "checkpoint_every": spec.checkpoint_every,
            "keep_checkpoints": spec.keep_checkpoints or 2,
            "max_failures": spec.max_failures,
        }

    def _check_capacity(self, hyper: dict) -> None:
        have = cluster.capacity()
        want = hyper["num_workers"] * hyper["cpus_per_worker"]
        if want > have.cpus:
            raise FailedPrecondition(
                f"scaling: {hyper['num_workers']} worker(s) x {hyper['cpus_per_worker']} CPUs = "
                f"{want:g} CPUs, but the Ray cluster has {have.cpus:g}",
                reason="CLUSTER_TOO_SMALL",
                metadata={"field": "scaling.num_workers"},
            )
        if hyper["use_gpu"] and have.gpus < hyper["num_workers"]:
            raise FailedPrecondition(
                f"scaling.use_gpu: {hyper['num_workers']} GPU worker(s) asked for, the Ray "
                f"cluster has {have.gpus:g} GPUs",
                reason="NO_GPU",
                metadata={"field": "scaling.use_gpu"},
            )

    # --- running ------------------------------------------------------------------------------
    def run_train(self, spec: TrainSpec, ctx: OperationContext, request_id: str) -> TrainOutcome:
        plan = self.plan_train(spec)
        key = request_id or ctx.name
        done = self.artifacts.find_by_request_id(f"{key}/model")
        if done is not None:  # committed before a restart; only the reply was lost
            return self._outcome(done)
        ctx.progress(0.0, "preparing the model")
        model_path = self._materialize(plan, ctx, key)
        run_name = _safe(ctx.name)
        storage = self.runs_dir
        storage.mkdir(parents=True, exist_ok=True)
        trackers = _Trackers(plan.trackers, self.settings, ctx.name, plan)
        try:
            with self.artifacts.staging_path() as output:
                result = self._fit(plan, ctx, model_path, output, storage, run_name, trackers)
                record = self._commit(plan, ctx, output, key, result)
        except Interrupted:
            raise  # the service is stopping; the run resumes at its restart
        except Cancelled:
            trackers.finish("cancelled", {})
            raise
        except BaseException:
            trackers.finish("failed", {})
            raise
        outcome = self._outcome(record)
        trackers.finish("succeeded", outcome.metrics)
        shutil.rmtree(storage / run_name, ignore_errors=True)  # checkpoints served their purpose
        return outcome

    def _materialize(self, plan: TrainPlan, ctx: OperationContext, key: str) -> Path:
        """The folder the workers load: a model from config is built (seeded) and stored as an
        artifact first, so an adapter trained on it always finds its base."""
        if plan.model.path is not None:
            return plan.model.path
        base_key = f"{key}/base"
        record = self.artifacts.find_by_request_id(base_key)
        if record is None:
            import torch

            choice = plan.spec.model
            texts = self.datasets.read(plan.train, columns=[plan.text_column]).column(0)
            torch.manual_seed(plan.hyper["seed"])
            with self.artifacts.staging_path() as folder:
                build_from_config(
                    choice.model_type,
                    model_config_fields(choice.model_type, choice.config),
                    (t or "" for t in texts.to_pylist()),
                    choice.vocab_size or 8000,
                    folder,
                )
                record = self.artifacts.commit_dir(
                    folder,
                    kind="model",
                    name=f"{plan.output_name}-base",
                    metadata={"format": "hf", "task": "", "model_type": choice.model_type},
                    lineage=Lineage(
                        parent_ids=[plan.train.id],
                        producer=f"{SERVICE}/TrainModel",
                        operation=ctx.name,
                        config={
                            "model_type": choice.model_type,
                            "config": choice.config,
                            "vocab_size": choice.vocab_size or 8000,
                        },
                    ),
                    request_id=base_key,
                )
        plan.model.artifact = record
        plan.model.path = self.artifacts.verify(record)
        return plan.model.path

    def _fit(
        self,
        plan: TrainPlan,
        ctx: OperationContext,
        model_path: Path,
        output: Path,
        storage: Path,
        run_name: str,
        trackers: _Trackers,
    ) -> dict[str, Any]:
        import ray

        from forgeline.services.training.recipe import fit_summary

        cluster.ensure_ray()
        h = plan.hyper
        sink_name = f"forgeline-metrics-{run_name}"
        sink = (
            ray.remote(MetricsSink)
            .options(name=sink_name, namespace=cluster.NAMESPACE, get_if_exists=True, num_cpus=0)
            .remote()
        )
        config = RecipeConfig(
            task=plan.task,
            model_path=str(model_path),
            finetune=plan.strategy.name,
            finetune_config=plan.strategy.config.model_dump(),
            train_path=str(self.artifacts.verify(plan.train.record)),
            text_column=plan.text_column,
            label_column=plan.label_column,
            eval_path=str(self.artifacts.verify(plan.eval.record)) if plan.eval else "",
            eval_text_column=plan.eval_text_column,
            eval_label_column=plan.eval_label_column,
            labels=plan.labels,
            learning_rate=h["learning_rate"],
            batch_size=h["batch_size"],
            epochs=h["epochs"],
            max_steps=h["max_steps"],
            warmup_ratio=h["warmup_ratio"],
            warmup_steps=h["warmup_steps"],
            weight_decay=h["weight_decay"],
            gradient_accumulation_steps=h["gradient_accumulation_steps"],
            max_length=h["max_length"],
            seed=h["seed"],
            bf16=h["bf16"],
            checkpoint_every=h["checkpoint_every"],
            metrics_actor=f"{cluster.NAMESPACE}/{sink_name}",
            checkpoint_root=str(storage / run_name),
            output_dir=str(output),
        )
        task = ray.remote(num_cpus=0, max_retries=0)(fit_summary).remote(
            config,
            num_workers=h["num_workers"],
            use_gpu=h["use_gpu"],
            cpus_per_worker=h["cpus_per_worker"],
            storage_path=str(storage),
            run_name=run_name,
            max_failures=h["max_failures"],
            keep_checkpoints=h["keep_checkpoints"],
        )
        ctx.progress(0.0, f"training on {h['num_workers']} worker(s)")
        last: dict[str, float] = {}
        try:
            while True:
                finished, _ = ray.wait([task], timeout=0.5)
                last.update(self._drain(sink, ctx, trackers))
                if finished:
                    break
                ctx.check_cancelled()
            summary = ray.get(task)
            last.update(self._drain(sink, ctx, trackers))
        except BaseException as exc:
            if isinstance(exc, ray.exceptions.RayTaskError):
                raise _failure(exc) from None
            _stop(task)
            raise
        finally:
            ray.kill(sink)
        return {**summary, "last": last}

    def _drain(self, sink, ctx: OperationContext, trackers: _Trackers) -> dict[str, float]:
        import ray

        latest: dict[str, float] = {}
        for step, values in ray.get(sink.drain.remote()):
            progress = values.pop("progress", None)
            ctx.metrics(values, step=step)
            trackers.log(values, step)
            latest.update(values)
            if progress is not None:
                ctx.progress(progress, f"step {step}")
        return latest

    def _commit(
        self,
        plan: TrainPlan,
        ctx: OperationContext,
        output: Path,
        key: str,
        result: dict[str, Any],
    ) -> ArtifactRecord:
        manifest = read_manifest(output)
        last = result["last"]
        metrics = {
            k: float(v)
            for k, v in last.items()
            if k in ("loss", "samples_per_second", "tokens_per_second") or k.startswith("eval_")
        }
        adapter = plan.strategy.produces_adapter
        base = plan.model
        metadata = {
            "format": "peft_adapter" if adapter else "hf",
            "task": plan.task,
            "labels": plan.labels,
            "finetune": plan.strategy.name,
            "base_model": base.source,
            "base_artifact_id": base.artifact.id if base.artifact else "",
            "base_builtin": base.builtin,
            "steps": int(manifest.get("steps", 0)),
            "trainable_parameters": int(manifest.get("trainable_parameters", 0)),
            "total_parameters": int(manifest.get("total_parameters", 0)),
            "metrics": metrics,
            "evaluation": manifest.get("evaluation", {}),
            "max_length": plan.hyper["max_length"],
        }
        parents = [plan.train.id] + ([plan.eval.id] if plan.eval else [])
        if base.artifact is not None:
            parents.append(base.artifact.id)
        spec = asdict(plan.spec)
        return self.artifacts.commit_dir(
            output,
            kind="adapter" if adapter else "model",
            name=plan.output_name,
            metadata=metadata,
            lineage=Lineage(
                parent_ids=parents,
                producer=f"{SERVICE}/TrainModel",
                operation=ctx.name,
                config={**spec, "resolved": plan.hyper},
            ),
            request_id=f"{key}/model",
        )

    def _outcome(self, record: ArtifactRecord) -> TrainOutcome:
        meta = record.metadata
        return TrainOutcome(
            model=record,
            metrics=dict(meta.get("metrics", {})),
            steps=int(meta.get("steps", 0)),
            trainable_parameters=int(meta.get("trainable_parameters", 0)),
            total_parameters=int(meta.get("total_parameters", 0)),
            evaluation=meta.get("evaluation") or None,
        )

    # === EvaluateModel and Predict ==============================================================
    def model_record(self, model_id: str, field_name: str = "model_id") -> ArtifactRecord:
        if not model_id:
            raise InvalidArgument.for_field(field_name, "a model or adapter artifact is required")
        try:
            record = self.artifacts.get(model_id)
        except NotFound as exc:
            raise NotFound(
                f"{field_name}: no model {model_id!r}",
                reason="MODEL_NOT_FOUND",
                metadata={"field": field_name},
            ) from exc
        if record.kind not in ("model", "adapter") or not record.metadata.get("task"):
            raise FailedPrecondition(
                f"{field_name}: {record.id} is a {record.kind} artifact, not a model trained by "
                f"this service",
                reason="NOT_A_TRAINED_MODEL",
            )
        return record

    def plan_evaluate(self, model_id: str, dataset: DatasetRef) -> tuple[ArtifactRecord, Any]:
        record = self.model_record(model_id)
        task = record.metadata["task"]
        found, text, label = self._dataset(dataset, "dataset", task)
        if task == SEQUENCE_CLASSIFICATION:
            known = record.metadata.get("labels", [])
            unseen = sorted(set(self._labels(found, label, "dataset", 1)) - set(known))
            if unseen:
                raise InvalidArgument.for_field(
                    "dataset.label_column",
                    f"labels {unseen[:10]} are unknown to model {record.id} (its labels: "
                    f"{known[:20]})",
                )
        return record, (found, text, label)

    def run_evaluate(
        self,
        model_id: str,
        dataset: DatasetRef,
        batch_size: int,
        max_length: int,
        ctx: OperationContext,
    ):
        from forgeline.services.training.evaluation import evaluate
        from forgeline.services.training.recipe import read_rows

        record, (found, text, label) = self.plan_evaluate(model_id, dataset)
        ctx.progress(0.1, "loading the model")
        model, tokenizer, task = self._load(record)
        texts, labels = read_rows(str(self.artifacts.verify(found.record)), text, label, task)
        ctx.progress(0.3, f"scoring {len(texts)} rows")
        scores = evaluate(
            model,
            tokenizer,
            texts,
            labels,
            task,
            batch_size=batch_size or 64,
            max_length=max_length or record.metadata.get("max_length", 128),
        )
        ctx.metrics(scores.scalars("eval_"))
        return scores

    def predict(self, model_id: str, texts: list[str], max_length: int, max_new_tokens: int):
        import torch

        limit = self.settings.max_predict_texts
        if not texts:
            raise InvalidArgument.for_field("texts", "give at least one text")
        if len(texts) > limit:
            raise InvalidArgument.for_field(
                "texts",
                f"{len(texts)} texts is over the limit of {limit} per call "
                f"(FORGELINE_MAX_PREDICT_TEXTS); use EvaluateModel or batch prediction",
            )
        if max_new_tokens < 0 or max_new_tokens > 512:
            raise InvalidArgument.for_field("max_new_tokens", "must be in [0, 512]")
        record = self.model_record(model_id)
        model, tokenizer, task = self._load(record)
        length = max_length or record.metadata.get("max_length", 128)
        with torch.no_grad():
            batch = tokenizer(
                texts, padding=True, truncation=True, max_length=length, return_tensors="pt"
            )
            if task == SEQUENCE_CLASSIFICATION:
                probabilities = torch.softmax(model(**batch).logits.float(), dim=-1)
                names = [model.config.id2label[i] for i in range(probabilities.shape[-1])]
                out = []
                for row in probabilities.tolist():
                    best = max(range(len(row)), key=row.__getitem__)
                    out.append(
                        Predicted(
                            label=names[best],
                            score=row[best],
                            scores=dict(zip(names, row, strict=True)),
                        )
                    )
                return out
            generated = model.generate(
                **batch,
                max_new_tokens=max_new_tokens or 20,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
            prompt = batch["input_ids"].shape[1]
            return [
                Predicted(generated_text=tokenizer.decode(row[prompt:], skip_special_tokens=True))
                for row in generated
            ]

    def _load(self, record: ArtifactRecord) -> tuple[Any, Any, str]:
        """A trained model ready to score (a small LRU cache: Predict is called often)."""
        with self._models_lock:
            if record.id in self._models:
                self._models.move_to_end(record.id)
                return self._models[record.id]
        from transformers import AutoTokenizer

        from forgeline.services.training.evaluation import load_trained

        folder = self.artifacts.verify(record)
        meta = record.metadata
        base = ""
        if record.kind == "adapter":
            if meta.get("base_artifact_id"):
                base = str(self.artifacts.verify(self.artifacts.get(meta["base_artifact_id"])))
            elif meta.get("base_builtin"):
                base = str(builtin_path(meta["base_builtin"]))
        model = load_trained(folder, meta["task"], base_path=base).eval()
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
            tokenizer.padding_side = "left"
        loaded = (model, tokenizer, meta["task"])
        with self._models_lock:
            self._models[record.id] = loaded
            while len(self._models) > 2:
                self._models.popitem(last=False)
        return loaded


class _Trackers:
    """The run's tracker plugins; one that raises is logged and dropped, never fails training."""

    def __init__(self, trackers: list[Tracker], settings: Settings, run_id: str, plan: TrainPlan):
        self._live: list[Tracker] = []
        params = _flatten(
            {
                **plan.hyper,
                "task": plan.task,
                "model": plan.model.source,
                "finetune": plan.strategy.name,
                "finetune_config": plan.strategy.config.model_dump(),
                "train": plan.train.id,
            }
        )
        for tracker in trackers:
            folder = settings.home.expanduser() / "trackers" / tracker.name / _safe(run_id)
            folder.mkdir(parents=True, exist_ok=True)
            run = TrackerRun(run_id=run_id, name=plan.output_name, output_dir=folder, params=params)
            if self._call(tracker, "start", run):
                self._live.append(tracker)
        self._finished = False

    def log(self, metrics: dict[str, float], step: int) -> None:
        for tracker in list(self._live):
            if not self._call(tracker, "log_metrics", dict(metrics), step):
                self._live.remove(tracker)

    def finish(self, status: str, summary: dict[str, float]) -> None:
        if self._finished:
            return
        self._finished = True
        for tracker in self._live:
            self._call(tracker, "finish", status, dict(summary))

    @staticmethod
    def _call(tracker: Tracker, method: str, *args) -> bool:
        try:
            getattr(tracker, method)(*args)
            return True
        except Exception as exc:  # a tracker must never fail the training
            log.warning("tracker_failed", tracker=tracker.name, method=method, error=str(exc))
            return False


# --- helpers -----------------------------------------------------------------------------------


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "-", name)


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _positions(config: Any) -> int:
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return 0


def _check_model_folder(path: Path, field_name: str) -> None:
    if not path.is_dir() or not (path / "config.json").exists():
        raise InvalidArgument.for_field(
            field_name, f"{path} is not a Hugging Face model folder (no config.json)"
        )
    if not list(path.glob("*.safetensors")):
        raise FailedPrecondition(
            f"{field_name}: {path} has no safetensors weights; forgeline never loads pickled "
            f"weights (convert them with save_pretrained(safe_serialization=True))",
            reason="NOT_SAFETENSORS",
            metadata={"field": field_name},
        )
    try:
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(path, local_files_only=True)
    except Exception as exc:
        raise FailedPrecondition(
            f"{field_name}: {path} has no usable tokenizer ({type(exc).__name__}: {exc})",
            reason="NO_TOKENIZER",
            metadata={"field": field_name},
        ) from exc


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
        return AutoConfig.for_model(choice.model_type, **{**fields, "vocab_size": vocab})
    except Exception as exc:  # transformers validates fields with several error types
        raise InvalidArgument.for_field(
            "model.from_config.config", f"{type(exc).__name__}: {exc}"
        ) from exc


def _skeleton(hf_config: Any, task: str, labels: list[str]):
    """The model's architecture without its weights (on the meta device): enough for a
    strategy to check layer names, free of memory and time."""
    import copy

    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    config = copy.deepcopy(hf_config)
    with torch.device("meta"):
        if task == SEQUENCE_CLASSIFICATION:
            config.num_labels = len(labels)
            return AutoModelForSequenceClassification.from_config(config)
        return AutoModelForCausalLM.from_config(config)


def _stop(task) -> None:
    """Stops a running fit task. A plain cancel interrupts it like Ctrl-C, which Ray Train
    answers by aborting the worker group and removing its placement group; a task still
    running after that is killed."""
    import ray

    ray.cancel(task, force=False)
    finished, _ = ray.wait([task], timeout=15)
    if not finished:
        ray.cancel(task, force=True)


_OOM_MARKERS = ("OutOfMemoryError", "out of memory", "MemoryError", "Cannot allocate memory")


def _failure(exc: BaseException) -> ForgelineError:
    """A worker's failure as a client-facing error: the last line of it, never a traceback."""
    text = str(exc)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    cause = next(
        (line for line in reversed(lines) if re.match(r"^[\w.]+(Error|Exception)\b", line)),
        lines[-1] if lines else type(exc).__name__,
    )
    if any(marker in text for marker in _OOM_MARKERS):
        return ResourceExhausted(
            f"a training worker ran out of memory ({cause[:300]}); lower "
            f"hyper_parameters.batch_size_per_worker or max_sequence_length (keep the "
            f"effective batch with gradient_accumulation_steps), or use more memory per worker",
            reason="WORKER_OUT_OF_MEMORY",
        )
    return Internal(f"training failed on a worker: {cause[:500]}", reason="TRAINING_FAILED")
