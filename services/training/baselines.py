"""TrainBaseline: a classical baseline (a ``baselines`` plugin) fitted on a training split and
scored on an eval split, in the service process (no Ray). No gRPC here.

The plugin only predicts; scoring is ``evaluation.score_classification`` for a classifier and
the generation_metrics plugins (``forgeline.generation.score_texts``) for a summarization
baseline, the code EvaluateModel uses, so a baseline and a fine-tuned model on the same split
are measured the same way. A plugin
that stores its fitted model (never as a pickle) has it committed as a "model" artifact whose
metadata names its format and the plugin; EvaluateModel scores such an artifact on any dataset
through the plugin's ``predict_saved`` (BaselineTrainer.evaluate), without fitting it again.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forgeline.artifacts import ArtifactRecord, ArtifactStore, Lineage
from forgeline.datasets import STRING_TYPES, Dataset, DatasetRef, output_name
from forgeline.errors import (
    FailedPrecondition,
    ForgelineError,
    Internal,
    InvalidArgument,
    ResourceExhausted,
)
from forgeline.finetune.data import read_rows
from forgeline.finetune.planning import TrainPlanner
from forgeline.generation import score_texts
from forgeline.logging import get_logger
from forgeline.models import (
    CAUSAL_LM,
    EXCERPT_CHARS,
    SEQUENCE_CLASSIFICATION,
    Evaluation,
    score_classification,
)
from forgeline.registry import Baseline, BaselineContext, BaselineResult, PluginChoice
from forgeline.services.training.review import SystemOutputs, keep_outputs

if TYPE_CHECKING:
    from forgeline.operations import OperationContext

log = get_logger(__name__)
DEFAULT_BASELINE = "tfidf_logreg"
# Rows are held in memory by the service process; larger inputs belong to a sample first.
MAX_ROWS = 2_000_000
SUMMARIZATION = "summarization"  # Baseline.task of an extractive summarizer
DEFAULT_METRIC = "rouge"
DEFAULT_REFERENCE = "target"
SAMPLES = 3


@dataclass(frozen=True)
class BaselineSpec:
    train: DatasetRef
    eval: DatasetRef
    baseline: PluginChoice = PluginChoice(DEFAULT_BASELINE)
    output_name: str = ""
    # Summarization: the generation_metrics plugins scoring the summaries (empty: rouge).
    metrics: tuple[PluginChoice, ...] = ()


@dataclass
class BaselinePlan:
    spec: BaselineSpec
    train: Dataset
    text_column: str
    label_column: str
    labels: list[str]
    eval: Dataset
    eval_text_column: str
    eval_label_column: str
    plugin: Baseline
    output_name: str
    metrics: list[Any]  # summarization: generation_metrics plugins

    @property
    def summarization(self) -> bool:
        return self.plugin.task == SUMMARIZATION


@dataclass
class BaselineOutcome:
    evaluation: Evaluation
    seconds: float
    model: ArtifactRecord | None


class BaselineTrainer:
    def __init__(self, planner: TrainPlanner, artifacts: ArtifactStore, producer: str) -> None:
        self.planner = planner
        self.artifacts = artifacts
        self.producer = producer

    def plan(self, spec: BaselineSpec) -> BaselinePlan:
        """Every check before fitting: datasets, columns, labels, the plugin and its config."""
        planner = self.planner
        choice = spec.baseline
        plugin = planner.registry.create(
            "baselines", choice.name or DEFAULT_BASELINE, choice.config, "baseline"
        )
        summarization = plugin.task == SUMMARIZATION
        # A summarization baseline reads text only through resolve (its reference: below).
        task = CAUSAL_LM if summarization else SEQUENCE_CLASSIFICATION
        train, text, label = planner.datasets.resolve(spec.train, "train", task)
        if summarization:
            label = reference_column(spec.train, train, "train")
        evaluation, eval_text, eval_label = planner.datasets.resolve(
            spec.eval, "eval", task, default=(text, label)
        )
        if summarization:
            eval_label = reference_column(spec.eval, evaluation, "eval", default=label)
        for found, field_name in ((train, "train"), (evaluation, "eval")):
            if found.num_rows > MAX_ROWS:
                raise ResourceExhausted(
                    f"{field_name}.dataset_id: {found.id} has {found.num_rows} rows; a baseline "
                    f"takes at most {MAX_ROWS} (sample the dataset first)",
                    reason="TOO_MANY_ROWS",
                    metadata={"field": f"{field_name}.dataset_id"},
                )
        metrics: list[Any] = []
        if summarization:
            labels: list[str] = []
            choices = list(spec.metrics) or [PluginChoice(DEFAULT_METRIC)]
            metrics = planner.registry.create_all("generation_metrics", choices, "metrics")
        else:
            if spec.metrics:
                raise InvalidArgument.for_field(
                    "metrics",
                    f"generation metrics score summarization baselines; {plugin.name} is a "
                    "classifier (scored by accuracy and macro F1)",
                )
            labels = planner.datasets.labels(train, label, "train")
            planner.datasets.check_labels(evaluation, eval_label, labels)
        return BaselinePlan(
            spec=spec,
            train=train,
            text_column=text,
            label_column=label,
            labels=labels,
            eval=evaluation,
            eval_text_column=eval_text,
            eval_label_column=eval_label,
            plugin=plugin,
            output_name=output_name(spec.output_name or f"{train.name}-{plugin.name}"),
            metrics=metrics,
        )

    def run(self, spec: BaselineSpec, ctx: OperationContext, request_id: str) -> BaselineOutcome:
        plan = self.plan(spec)
        key = f"{request_id or ctx.name}/baseline"
        done = self.artifacts.find_by_request_id(key)
        if done is not None:  # committed before a restart; only the reply was lost
            meta = done.metadata
            return BaselineOutcome(Evaluation(**meta["evaluation"]), meta["seconds"], done)
        task = CAUSAL_LM if plan.summarization else SEQUENCE_CLASSIFICATION  # CAUSAL_LM: text only
        train_texts, train_labels = read_rows(
            str(self.artifacts.verify(plan.train.record)), plan.text_column, plan.label_column, task
        )
        eval_texts, eval_labels = read_rows(
            str(self.artifacts.verify(plan.eval.record)),
            plan.eval_text_column,
            plan.eval_label_column,
            task,
        )
        if plan.summarization:  # a summarization baseline's labels are its references
            train_labels = self._references(plan.train, plan.label_column)
            eval_labels = self._references(plan.eval, plan.eval_label_column)
        name = plan.plugin.name
        ctx.progress(0.1, f"fitting {name} on {len(train_texts)} rows")
        with self.artifacts.staging_path() as output:
            output.mkdir()
            result = self._fit(plan, train_texts, train_labels, eval_texts, ctx, output)
            ctx.progress(0.9, f"scoring {len(eval_texts)} rows")
            evaluation = self._score(plan, eval_texts, eval_labels, result)
            if plan.summarization:
                evaluation.outputs_id = self._keep(plan, ctx, key, eval_texts, eval_labels, result)
            scores = (
                evaluation.scalars("eval_")
                if plan.summarization
                else {"eval_accuracy": evaluation.accuracy, "eval_f1_macro": evaluation.f1_macro}
            )
            ctx.metrics({**scores, "fit_seconds": result.seconds})
            record = None
            if result.model_format and any(output.iterdir()):
                record = self._commit(plan, ctx, output, key, result, evaluation)
        return BaselineOutcome(evaluation, result.seconds, record)

    def _fit(
        self,
        plan: BaselinePlan,
        train_texts: list[str],
        train_labels: list[str],
        eval_texts: list[str],
        ctx: OperationContext,
        output: Path,
    ) -> BaselineResult:
        plugin = plan.plugin
        context = BaselineContext(
            labels=tuple(plan.labels), output_dir=output, check_cancelled=ctx.check_cancelled
        )
        try:
            result = plugin.fit_predict(train_texts, train_labels, eval_texts, context)
        except ForgelineError:
            raise
        except ValueError as exc:  # the library refused these rows (say, an empty vocabulary)
            raise FailedPrecondition(
                f"baseline: {plugin.name} could not fit dataset {plan.train.id}: {exc}"[:600],
                reason="BASELINE_FIT_FAILED",
                metadata={"field": "baseline.config"},
            ) from exc
        except Exception as exc:
            raise Internal(
                f"baseline {plugin.name} failed: {type(exc).__name__}: {exc}"[:600],
                reason="BASELINE_FAILED",
            ) from exc
        if len(result.predictions) != len(eval_texts):
            raise Internal(
                f"baseline {plugin.name} returned {len(result.predictions)} predictions for "
                f"{len(eval_texts)} eval rows",
                reason="BASELINE_BROKEN",
            )
        return result

    def _score(
        self,
        plan: BaselinePlan,
        eval_texts: list[str],
        eval_labels: list[str],
        result: BaselineResult,
    ) -> Evaluation:
        if not plan.summarization:
            return score_predictions(
                plan.plugin.name, plan.labels, eval_labels, result.predictions, eval_texts
            )
        summaries = result.predictions
        return Evaluation(
            num_examples=len(summaries),
            loss=0.0,
            metrics=score_texts(plan.metrics, summaries, eval_labels),
            generation={
                "baseline": plan.plugin.name,
                "config": plan.plugin.config.model_dump(),
                "metrics": [
                    {"name": m.name, "config": m.config.model_dump()} for m in plan.metrics
                ],
                "reference_column": plan.eval_label_column,
            },
            samples=[
                {
                    "row": i,
                    "source_excerpt": eval_texts[i][:EXCERPT_CHARS],
                    "reference": eval_labels[i],
                    "output": summaries[i],
                }
                for i in range(min(SAMPLES, len(summaries)))
            ],
        )

    def _keep(
        self,
        plan: BaselinePlan,
        ctx: OperationContext,
        key: str,
        sources: list[str],
        references: list[str],
        result: BaselineResult,
    ) -> str:
        """Every summary the baseline wrote, kept as a dataset for human review (the samples
        hold only a few); its id."""
        plugin = plan.plugin
        summaries = list(result.predictions)
        return keep_outputs(
            self.planner.datasets,
            SystemOutputs(list(range(len(summaries))), sources, references, summaries),
            system=plugin.name,
            lineage=Lineage(
                parent_ids=[plan.train.id, plan.eval.id],
                producer=self.producer,
                operation=ctx.name,
                config={
                    "system": plugin.name,
                    "baseline": plugin.name,
                    "config": plugin.config.model_dump(),
                    "eval_dataset": plan.eval.id,
                },
            ),
            request_id=f"{key}/outputs",
        )

    def _references(self, dataset: Dataset, column: str) -> list[str]:
        values = self.planner.datasets.read(dataset, [column]).column(0).to_pylist()
        return [str(v) if v is not None else "" for v in values]

    # --- EvaluateModel on a stored baseline ---------------------------------------------------
    def predictor(self, record: ArtifactRecord, field_name: str = "model_id") -> Baseline:
        """The plugin that stored the baseline model ``record``, able to predict from it;
        FailedPrecondition naming the field when it is not installed here or cannot."""
        name = record.metadata.get("baseline", "")
        config = record.lineage.config.get("config") or {}
        try:
            plugin = self.planner.registry.create("baselines", name, config, field_name)
        except InvalidArgument as exc:
            raise FailedPrecondition(
                f"{field_name}: {record.id} is a model of the baseline {name!r}, which cannot be "
                f"loaded here: {exc.message}"[:600],
                reason="BASELINE_UNAVAILABLE",
                metadata={"field": field_name},
            ) from None
        if type(plugin).predict_saved is Baseline.predict_saved:
            raise FailedPrecondition(
                f"{field_name}: the baseline {name!r} cannot predict from a stored model, so "
                f"{record.id} can only be scored by fitting it again (TrainBaseline)",
                reason="UNSUPPORTED_MODEL_FORMAT",
                metadata={"field": field_name},
            )
        return plugin

    def evaluate(self, record: ArtifactRecord, texts: list[str], labels: list[str]) -> Evaluation:
        """The stored baseline ``record`` scored on ``texts``: the metrics TrainBaseline gave
        it on its eval split, here on any dataset with the model's labels."""
        plugin = self.predictor(record)
        folder = self.artifacts.verify(record)
        try:
            predictions = plugin.predict_saved(folder, texts)
        except ForgelineError:
            raise
        except Exception as exc:
            # The library's message names the artifact folder: the log has it, not the reply.
            log.exception("baseline_predict_failed", model=record.id, baseline=plugin.name)
            raise Internal(
                f"baseline {plugin.name} could not predict with {record.id} ({type(exc).__name__})",
                reason="BASELINE_FAILED",
            ) from exc
        if len(predictions) != len(texts):
            raise Internal(
                f"baseline {plugin.name} returned {len(predictions)} predictions for "
                f"{len(texts)} rows",
                reason="BASELINE_BROKEN",
            )
        return score_predictions(plugin.name, record.metadata["labels"], labels, predictions, texts)

    def _commit(
        self,
        plan: BaselinePlan,
        ctx: OperationContext,
        output: Path,
        key: str,
        result: BaselineResult,
        evaluation: Evaluation,
    ) -> ArtifactRecord:
        plugin = plan.plugin
        metadata: dict[str, Any] = {
            "format": result.model_format,
            "task": SUMMARIZATION if plan.summarization else SEQUENCE_CLASSIFICATION,
            "baseline": plugin.name,
            "labels": plan.labels,
            "evaluation": evaluation.as_dict(),
            "seconds": result.seconds,
            "details": result.details,
        }
        return self.artifacts.commit_dir(
            output,
            kind="model",
            name=plan.output_name,
            metadata=metadata,
            lineage=Lineage(
                parent_ids=[plan.train.id, plan.eval.id],
                producer=self.producer,
                operation=ctx.name,
                config={
                    "baseline": plugin.name,
                    "config": plugin.config.model_dump(),
                    "train": asdict(plan.spec.train),
                    "eval": asdict(plan.spec.eval),
                },
            ),
            request_id=key,
        )


def score_predictions(
    plugin: str,
    labels: list[str],
    truth: list[str],
    predictions: list[str],
    texts: list[str] | None = None,
) -> Evaluation:
    """A baseline's predicted labels scored against the true ones (``labels``: the classes in
    the model's order) with the code that scores a fine-tuned model."""
    index = {label: i for i, label in enumerate(labels)}
    strange = sorted({p for p in predictions if p not in index})
    if strange:
        raise Internal(
            f"baseline {plugin} predicted labels {strange[:5]} that are not among the training "
            f"labels {labels[:20]}",
            reason="BASELINE_BROKEN",
        )
    return score_classification(
        [index[str(v)] for v in truth], [index[p] for p in predictions], labels, texts=texts
    )


def reference_column(ref: DatasetRef, dataset: Dataset, field_name: str, default: str = "") -> str:
    """The column of reference summaries a summarization baseline is scored against: the
    request's target_column, else its label_column, else ``default``, else the dataset's label
    column, else "target"; refused naming the field when the dataset lacks it."""
    column = (
        ref.target_column
        or ref.label_column
        or default
        or dataset.label_column
        or DEFAULT_REFERENCE
    )
    named = "target_column" if ref.target_column or not ref.label_column else "label_column"
    types = dict(dataset.columns)
    if column not in types:
        raise InvalidArgument.for_field(
            f"{field_name}.{named}",
            f"a summarization baseline needs the reference summaries: no column {column!r} in "
            f"dataset {dataset.id}; columns: {list(types)}",
        )
    if types[column] not in STRING_TYPES:
        raise InvalidArgument.for_field(
            f"{field_name}.{named}", f"column {column!r} is {types[column]}, not text"
        )
    return column
