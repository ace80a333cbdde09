"""The training service's work: train, evaluate, predict. No gRPC here.

``run_train`` plans the request again (planning.py: every check happens before a worker
starts), runs the recipe on Ray Train as a Ray task it can cancel, drains the metrics the
workers stream into the operation's event log (the built-in metric store) and into tracker
plugins, and commits the result as a model or adapter artifact with its lineage.

A run's Ray storage is named after its operation, so the same operation run again (after a
restart of this service) resumes from its latest checkpoint.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forgeline import cluster
from forgeline import storage as shared_storage
from forgeline.artifacts import ArtifactRecord, ArtifactStore, Lineage
from forgeline.datasets import DatasetRef, DatasetRepository
from forgeline.errors import (
    Cancelled,
    ForgelineError,
    Internal,
    InvalidArgument,
    ResourceExhausted,
    cause_line,
)
from forgeline.logging import get_logger
from forgeline.models import MANIFEST, SEQUENCE_CLASSIFICATION, ModelRepository, read_manifest
from forgeline.operations import Interrupted
from forgeline.paths import folder_name
from forgeline.registry import PluginRegistry, Tracker, TrackerRun
from forgeline.services.training.baselines import BaselineTrainer
from forgeline.services.training.metrics import ActorSink, MetricsLog, MetricsSink
from forgeline.services.training.models import build_from_config
from forgeline.services.training.planning import (
    TrainPlan,
    TrainPlanner,
    TrainSpec,
    model_config_fields,
)
from forgeline.services.training.recipe import RECIPE_INPUTS, RecipeConfig

if TYPE_CHECKING:
    from forgeline.operations import OperationContext
    from forgeline.paths import PathValidator
    from forgeline.settings import Settings

SERVICE = "forgeline.v1.TrainingService"
log = get_logger(__name__)


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
        self.planner = TrainPlanner(registry, datasets, artifacts, paths)
        self.baselines = BaselineTrainer(self.planner, artifacts, f"{SERVICE}/TrainBaseline")
        self.datasets = datasets
        self.artifacts = artifacts
        self.settings = settings
        self.runs_dir = settings.home.expanduser() / "services" / "training" / "runs"
        self.models = ModelRepository(artifacts)

    # === TrainModel =============================================================================

    @classmethod
    def of(cls, kernel) -> TrainingJobs:
        """Training jobs over a service kernel's stores and registry. Other services look
        models up through forgeline.models.ModelRepository, not through this class."""
        return cls(
            kernel.registry,
            DatasetRepository(kernel.artifacts),
            kernel.artifacts,
            kernel.paths,
            kernel.settings,
        )

    def plan_train(self, spec: TrainSpec) -> TrainPlan:
        return self.planner.plan_train(spec)

    def run_train(self, spec: TrainSpec, ctx: OperationContext, request_id: str) -> TrainOutcome:
        # Ray is reached here, not when the request was accepted: starting it takes seconds that
        # a submit must not wait out. The plan then checks the request against the cluster.
        cluster.ensure_ray(self.settings, ctx)
        plan = self.plan_train(spec)
        key = request_id or ctx.name
        done = self.artifacts.find_by_request_id(f"{key}/model")
        if done is not None:  # committed before a restart; only the reply was lost
            return self.outcome(done)
        ctx.progress(0.0, "preparing the model")
        model_path = self.materialize(plan, ctx, key)
        run_name = folder_name(ctx.name)
        storage = self.runs_dir
        trackers = _Trackers(plan.trackers, self.settings, ctx.name, plan)
        try:
            with self.artifacts.staging_path() as output:
                result = self._fit(plan, ctx, model_path, output, storage, run_name, trackers)
                record = self.commit(plan, ctx, output, key, result["last"])
        except Interrupted:
            raise  # the service is stopping; the run resumes at its restart
        except Cancelled:
            trackers.finish("cancelled", {})
            raise
        except BaseException:
            trackers.finish("failed", {})
            raise
        outcome = self.outcome(record)
        trackers.finish("succeeded", outcome.metrics)
        shutil.rmtree(storage / run_name, ignore_errors=True)  # checkpoints served their purpose
        return outcome

    def materialize(self, plan: TrainPlan, ctx: OperationContext, key: str) -> Path:
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

    def recipe_config(
        self,
        plan: TrainPlan,
        model_path: Path,
        output: Path,
    ) -> RecipeConfig:
        """What the workers run for ``plan`` (TrainModel's run, or every tuning trial's)."""
        h = plan.hyper
        return RecipeConfig(
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
            **recipe_hyper(h),
            bf16=h["bf16"],
            checkpoint_every=h["checkpoint_every"],
            output_dir=str(output),
        )

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
        config = self.recipe_config(plan, model_path, output)
        return train_on_ray(
            config,
            ctx,
            plan.hyper,
            storage,
            run_name,
            artifacts=self.artifacts,
            on_point=trackers.log,
        )

    def commit(
        self,
        plan: TrainPlan,
        ctx: OperationContext,
        output: Path,
        key: str,
        last: dict[str, float],
        *,
        producer: str = f"{SERVICE}/TrainModel",
        config: dict[str, Any] | None = None,
    ) -> ArtifactRecord:
        """Commits a finished run's folder as a model or adapter artifact with its lineage:
        ``last`` holds its final metrics, ``config`` what the producer adds to the lineage."""
        manifest = read_manifest(output)
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
                producer=producer,
                operation=ctx.name,
                config={**spec, "resolved": plan.hyper, **(config or {})},
            ),
            request_id=f"{key}/model",
        )

    def outcome(self, record: ArtifactRecord) -> TrainOutcome:
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
    def model_record(
        self,
        model_id: str,
        field_name: str = "model_id",
        formats: tuple[str, ...] = ("hf", "peft_adapter"),
        *,
        baselines: bool = False,
    ) -> ArtifactRecord:
        """The model ``model_id`` (see ModelRepository.model_record); with ``baselines``, also a
        model a baseline plugin stored (TrainBaseline's), whatever its format."""
        return self.models.model_record(
            model_id, field_name, formats, baseline=self.baselines.predictor if baselines else None
        )

    def adapter_base(self, record: ArtifactRecord, field_name: str = "model_id") -> Path:
        return self.models.adapter_base(record, field_name)

    def plan_evaluate(self, model_id: str, dataset: DatasetRef) -> tuple[ArtifactRecord, Any]:
        record = self.model_record(model_id, baselines=True)
        task = record.metadata["task"]
        found, text, label = self.datasets.resolve(dataset, "dataset", task)
        if task == SEQUENCE_CLASSIFICATION:
            self.datasets.check_labels(
                found,
                label,
                record.metadata.get("labels", []),
                "dataset",
                f"are unknown to model {record.id}",
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
        from forgeline.models import evaluate
        from forgeline.services.training.recipe import read_rows

        record, (found, text, label) = self.plan_evaluate(model_id, dataset)
        task = record.metadata["task"]
        texts, labels = read_rows(str(self.artifacts.verify(found.record)), text, label, task)
        if record.metadata.get("baseline"):  # TrainBaseline's model: its plugin predicts
            ctx.progress(0.3, f"scoring {len(texts)} rows with {record.metadata['baseline']}")
            scores = self.baselines.evaluate(record, texts, labels)
        else:
            ctx.progress(0.1, "loading the model")
            model, tokenizer, task = self.load_model(record)
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
        model, tokenizer, task = self.load_model(record)
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

    def load_model(self, record: ArtifactRecord) -> tuple[Any, Any, str]:
        return self.models.load(record)


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
            folder = settings.home.expanduser() / "trackers" / tracker.name / folder_name(run_id)
            folder.mkdir(parents=True, exist_ok=True)
            run = TrackerRun(
                run_id=run_id,
                name=plan.output_name,
                output_dir=folder,
                params=params,
                destination=settings.tracker_destinations.get(tracker.name, ""),
            )
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


# --- the recipe on Ray Train ---------------------------------------------------------------------


def train_on_ray(
    config: RecipeConfig,
    ctx: OperationContext,
    scaling: dict[str, Any],
    storage: Path,
    run_name: str,
    *,
    artifacts: ArtifactStore | None = None,
    on_point: Any = None,
) -> dict[str, Any]:
    """Runs the recipe on Ray Train as a Ray task this operation can cancel, draining the
    metric points the workers stream into the operation's event log (and ``on_point(values,
    step)``). ``scaling`` holds num_workers, use_gpu, cpus_per_worker, max_failures and
    keep_checkpoints. Returns the fit's summary with ``last``: the latest value of every
    metric. The same ``run_name`` after a restart resumes from the latest checkpoint.

    ``storage`` is the service's local runs folder. When ``artifacts`` are on shared storage
    the workers may be on any machine: the run's inputs are given as shared locations (an
    artifact's object as it is, anything else uploaded beside the run), Ray's storage and the
    finished model go there too, and the model comes back into ``config.output_dir``."""
    import ray

    from forgeline.services.training.recipe import fit_summary

    cluster.ensure_ray()
    sink_name = f"forgeline-metrics-{run_name}"
    sink = ActorSink(
        ray.remote(MetricsSink)
        .options(
            name=sink_name,
            namespace=cluster.NAMESPACE,
            get_if_exists=True,
            num_cpus=0,
            **cluster.ON_HEAD,
        )
        .remote()
    )
    output, model_path = Path(config.output_dir), config.model_path
    runs = shared_runs(artifacts, storage) if artifacts is not None else None
    if runs is not None:
        run = runs.child(run_name)
        config = shared_inputs(config, artifacts, run).model_copy(
            update={"output_dir": run.child("output").uri, "checkpoint_root": ""}
        )
        storage_path = runs.uri
    else:
        storage.mkdir(parents=True, exist_ok=True)
        storage_path = str(storage)
        config = config.model_copy(update={"checkpoint_root": str(storage / run_name)})
    config = config.model_copy(update={"metrics_actor": f"{cluster.NAMESPACE}/{sink_name}"})
    task = ray.remote(num_cpus=0, max_retries=0, **cluster.ON_HEAD)(fit_summary).remote(
        config,
        num_workers=scaling["num_workers"],
        use_gpu=scaling.get("use_gpu", False),
        cpus_per_worker=scaling["cpus_per_worker"],
        storage_path=storage_path,
        run_name=run_name,
        max_failures=scaling.get("max_failures", 0),
        keep_checkpoints=scaling.get("keep_checkpoints", 2),
    )
    ctx.progress(0.0, f"training on {scaling['num_workers']} worker(s)")
    metrics = MetricsLog(ctx, on_point)  # each step once, though a resumed run trains it again
    try:
        while True:
            # Often: a checkpoint waits until its metrics are stored.
            finished, _ = ray.wait([task], timeout=0.25)
            metrics.drain(sink)
            if finished:
                break
            ctx.check_cancelled()
        summary = ray.get(task)
        metrics.drain(sink)
    except BaseException as exc:
        # Ray's memory monitor kills a task as OutOfMemoryError, not RayTaskError: both are
        # the run's failure, said precisely (RESOURCE_EXHAUSTED for memory), never INTERNAL.
        if isinstance(exc, ray.exceptions.RayTaskError | ray.exceptions.OutOfMemoryError):
            raise _failure(exc) from None
        _stop(task)
        raise
    finally:
        ray.kill(sink.handle)
    if runs is not None:
        fetch_model(run.child("output"), output, model_path)
        shared_storage.remove(run)  # its inputs, checkpoints and output served their purpose
    return {**summary, "last": metrics.last}


def shared_runs(artifacts: ArtifactStore, storage: Path):
    """Where a service's Ray runs live when its artifacts are on shared storage (None when
    not): runs/<service>/ beside them, the service named by its local runs folder
    (<home>/services/<service>/runs)."""
    if artifacts.shared is None:
        return None
    return artifacts.shared.child("runs", storage.parent.name)


def shared_inputs(config: RecipeConfig, artifacts: ArtifactStore, run) -> RecipeConfig:
    """``config`` for workers on any machine: each local input as a shared location (an
    artifact's object where it is one, else uploaded under ``run``/inputs)."""
    updates: dict[str, Any] = {}
    for name in RECIPE_INPUTS:
        value = getattr(config, name)
        if value and not shared_storage.is_remote(value):
            location = artifacts.shared_object(Path(value))
            if location is None:
                location = run.child("inputs", name)
                shared_storage.upload(Path(value), location)
            updates[name] = location.uri
    return config.model_copy(update=updates)


def fetch_model(location, output: Path, model_path: str) -> None:
    """A model the workers wrote to shared storage, into ``output``, its manifest naming the
    base model as this service knows it (not a worker's copy)."""
    shared_storage.download(location, output)
    manifest = read_manifest(output)
    if manifest:
        manifest["base_model_path"] = model_path
        Path(output, MANIFEST).write_text(json.dumps(manifest, indent=2))


# --- helpers -----------------------------------------------------------------------------------

# The hyper-parameters a resolved plan holds under the recipe's own names.
RECIPE_HYPER = (
    "learning_rate",
    "batch_size",
    "epochs",
    "max_steps",
    "warmup_ratio",
    "warmup_steps",
    "weight_decay",
    "gradient_accumulation_steps",
    "max_length",
    "seed",
    "group_by_length",
)


def recipe_hyper(h: dict[str, Any]) -> dict[str, Any]:
    """The recipe's optimisation fields of a resolved hyper-parameter dict."""
    return {name: h[name] for name in RECIPE_HYPER}


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


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
    cause = cause_line(text, type(exc).__name__)
    if any(marker in f"{type(exc).__name__}: {text}" for marker in _OOM_MARKERS):
        return ResourceExhausted(
            f"a training worker ran out of memory ({cause[:300]}); lower "
            f"hyper_parameters.batch_size_per_worker or max_sequence_length (keep the "
            f"effective batch with gradient_accumulation_steps), or use more memory per worker",
            reason="WORKER_OUT_OF_MEMORY",
        )
    return Internal(f"training failed on a worker: {cause[:500]}", reason="TRAINING_FAILED")
