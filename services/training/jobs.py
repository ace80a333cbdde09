"""The training service's work: train, evaluate, predict. No gRPC here.

``run_train`` plans the request again (forgeline.finetune.planning: every check happens before
a worker starts), runs the recipe on Ray Train as a Ray task it can cancel (forgeline.finetune:
the engine the tuning, compression and memory services share), drains the metrics the
workers stream into the operation's event log (the built-in metric store) and into tracker
plugins, and commits the result as a model or adapter artifact with its lineage.

A run's Ray storage is named after its operation, so the same operation run again (after a
restart of this service) resumes from its latest checkpoint.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forgeline import cluster
from forgeline.artifacts import ArtifactRecord, ArtifactStore, Lineage
from forgeline.datasets import DatasetRef, DatasetRepository
from forgeline.errors import Cancelled, InvalidArgument
from forgeline.finetune.build import materialize
from forgeline.finetune.commit import commit_run
from forgeline.finetune.planning import TrainPlan, TrainPlanner
from forgeline.finetune.runner import recipe_config, train_on_ray
from forgeline.finetune.spec import TrainSpec
from forgeline.generation import (
    MAX_BATCH_SEQUENCES,
    DecodingOptions,
    generate_texts,
    generation_batch_size,
)
from forgeline.logging import get_logger
from forgeline.model_import import ImportedModel, ModelImporter
from forgeline.models import (
    CAUSAL_LM,
    DECODER_TASKS,
    SEQ2SEQ,
    SEQUENCE_CLASSIFICATION,
    ModelRepository,
)
from forgeline.names import artifact_name
from forgeline.operations import Interrupted
from forgeline.paths import folder_name
from forgeline.registry import PluginRegistry, Tracker, TrackerRun
from forgeline.services.training.baselines import BaselineTrainer
from forgeline.services.training.generative import (
    GenerationPlan,
    GenerationSpec,
    model_config,
    plan_generation,
    run_generation,
    subset,
)
from forgeline.services.training.review import ReviewSheets, SystemOutputs, keep_outputs

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
        self.importer = ModelImporter(artifacts, paths)
        self.reviews = ReviewSheets(datasets, artifacts, paths, SERVICE)

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
        model_path = materialize(
            plan,
            ctx,
            key,
            datasets=self.datasets,
            artifacts=self.artifacts,
            producer=f"{SERVICE}/TrainModel",
        )
        run_name = folder_name(ctx.name)
        storage = self.runs_dir
        trackers = _Trackers(plan.trackers, self.settings, ctx.name, plan)
        try:
            with self.artifacts.staging_path() as output:
                result = self._fit(plan, ctx, model_path, output, storage, run_name, trackers)
                record = commit_run(
                    plan,
                    ctx,
                    output,
                    key,
                    result["last"],
                    artifacts=self.artifacts,
                    producer=f"{SERVICE}/TrainModel",
                )
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
        config = recipe_config(plan, self.artifacts, model_path, output)
        return train_on_ray(
            config,
            ctx,
            plan.hyper,
            storage,
            run_name,
            artifacts=self.artifacts,
            on_point=trackers.log,
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

    # === ImportModel =============================================================================
    def plan_import(self, source_path: str, output_name: str) -> None:
        """Every check ImportModel can make before reading weights (a submit is refused on them)."""
        self.importer.inspect(source_path)
        if output_name:
            artifact_name(output_name, "output_name")

    def run_import(
        self, source_path: str, output_name: str, ctx: OperationContext
    ) -> ImportedModel:
        imported = self.importer.run(
            source_path,
            output_name,
            producer=f"{SERVICE}/ImportModel",
            operation=ctx.name,
            progress=ctx.progress,
        )
        ctx.metrics({"parameters": float(imported.parameters)})
        return imported

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

    def plan_evaluate(
        self,
        model_id: str,
        dataset: DatasetRef,
        generation: GenerationSpec | None = None,
        max_length: int = 0,
        batch_size: int = 0,
    ) -> tuple[ArtifactRecord, Any, GenerationPlan | None]:
        """Every check of an EvaluateModel request; the generation plan when the evaluation
        generates (asked for, or a seq2seq model, which has nothing else to be scored by).
        A generating evaluation's ``batch_size`` is held to the generation cap
        (forgeline.generation.MAX_BATCH_SEQUENCES)."""
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
        if generation is None and task == SEQ2SEQ:
            generation = GenerationSpec()
        plan = None
        if generation is not None:
            if record.metadata.get("baseline"):
                raise InvalidArgument.for_field(
                    "generation", f"{record.id} is a baseline model; it does not generate"
                )
            plan = plan_generation(
                generation,
                self.planner.registry,
                found,
                task,
                self._hf_config(record),
                max_length,
            )
            generation_batch_size(batch_size, plan.options)
        return record, (found, text, label), plan

    def _hf_config(self, record: ArtifactRecord) -> Any:
        """The model's (an adapter's base's) Hugging Face config, read from its config.json
        without hashing the weights (a submit must stay quick); None when it is not on this
        machine yet or unreadable, and the checks it allows then wait for the model's loading."""
        from forgeline.models import builtin_path

        meta = record.metadata
        if record.kind == "adapter" and meta.get("base_artifact_id"):
            folder = self.artifacts.local_path(self.artifacts.get(meta["base_artifact_id"]))
        elif record.kind == "adapter" and meta.get("base_builtin"):
            folder = builtin_path(meta["base_builtin"])
        else:
            folder = self.artifacts.local_path(record)
        try:
            return model_config(folder) if (folder / "config.json").is_file() else None
        except (OSError, ValueError):
            return None

    def run_evaluate(
        self,
        model_id: str,
        dataset: DatasetRef,
        batch_size: int,
        max_length: int,
        ctx: OperationContext,
        generation: GenerationSpec | None = None,
    ):
        from forgeline.finetune.data import read_rows
        from forgeline.models import evaluate

        record, (found, text, label), plan = self.plan_evaluate(
            model_id, dataset, generation, max_length, batch_size
        )
        task = record.metadata["task"]
        texts, labels = read_rows(str(self.artifacts.verify(found.record)), text, label, task)
        if record.metadata.get("baseline"):  # TrainBaseline's model: its plugin predicts
            ctx.progress(0.3, f"scoring {len(texts)} rows with {record.metadata['baseline']}")
            scores = self.baselines.evaluate(record, texts, labels)
        elif plan is not None:
            ctx.progress(0.1, "loading the model")
            model, tokenizer, task = self.load_model(record)
            references = [
                str(v or "")
                for v in self.datasets.read(found, [plan.reference_column]).column(0).to_pylist()
            ]

            def keep(outputs: SystemOutputs) -> str:
                return keep_outputs(
                    self.datasets,
                    outputs,
                    system=record.name,
                    lineage=Lineage(
                        parent_ids=[record.id, found.id],
                        producer=f"{SERVICE}/EvaluateModel",
                        operation=ctx.name,
                        config={
                            "system": record.name,
                            "model_id": record.id,
                            "eval_dataset": found.id,
                            "generation": plan.settings(),
                        },
                    ),
                    request_id=f"{ctx.name}/outputs",
                )

            scores = run_generation(
                plan,
                model,
                tokenizer,
                task,
                texts,
                references,
                generation_batch_size(batch_size, plan.options),
                ctx,
                keep,
            )
            if task in DECODER_TASKS:  # perplexity stays for the decoder-only models
                ctx.progress(0.97, "perplexity")
                rows = subset(len(texts), plan.spec.max_examples, plan.spec.seed)
                lm = evaluate(
                    model,
                    tokenizer,
                    [texts[i] for i in rows],
                    None,
                    CAUSAL_LM,
                    batch_size=batch_size or 8,
                    max_length=max_length or record.metadata.get("max_length", 128),
                )
                scores.loss, scores.perplexity = lm.loss, lm.perplexity
        else:
            ctx.progress(0.1, "loading the model")
            model, tokenizer, task = self.load_model(record)
            ctx.progress(0.3, f"scoring {len(texts)} rows")
            scores = evaluate(
                model,
                tokenizer,
                texts,
                labels,
                CAUSAL_LM if task in DECODER_TASKS else task,
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
        if task == SEQUENCE_CLASSIFICATION:
            with torch.no_grad():
                batch = tokenizer(
                    texts, padding=True, truncation=True, max_length=length, return_tensors="pt"
                )
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
        # Generation pads the side the architecture needs (left for a decoder-only model,
        # whatever its tokenizer's padding_side says), so a batch answers as single texts do;
        # an encoder-decoder's output is the decoder's alone (no prompt to cut off). The texts
        # go through in batches of at most the generation cap (MAX_BATCH_SEQUENCES).
        options = DecodingOptions(max_new_tokens=max_new_tokens or 20)
        generated = generate_texts(
            model,
            tokenizer,
            texts,
            options,
            batch_size=min(len(texts), MAX_BATCH_SEQUENCES),
            max_input_tokens=length,
        )
        return [Predicted(generated_text=g.text) for g in generated]

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


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
