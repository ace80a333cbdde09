"""forgeline.v1.TrainingService over gRPC: translates messages to TrainingJobs calls and back."""

from __future__ import annotations

import asyncio
from typing import Any

from forgeline.convert import artifact, decoding_values, plugin_choice, struct
from forgeline.datasets import dataset_ref
from forgeline.errors import InvalidArgument
from forgeline.finetune.spec import train_spec
from forgeline.operations import MethodSpec
from forgeline.registry import PluginChoice
from forgeline.server import Kernel, ServiceDefinition
from forgeline.services.training.baselines import DEFAULT_BASELINE, BaselineSpec
from forgeline.services.training.generative import GenerationSpec
from forgeline.services.training.jobs import SERVICE, TrainingJobs
from forgeline.services.training.review import SheetSpec
from forgeline.v1 import training_service_pb2 as pb
from forgeline.v1 import training_service_pb2_grpc


def build(kernel: Kernel) -> list[ServiceDefinition]:
    """The entry point of ``forgeline.services: training``."""
    jobs = TrainingJobs.of(kernel)
    servicer = TrainingServicer(kernel, jobs)
    return [
        ServiceDefinition(
            full_name=SERVICE,
            servicer=servicer,
            add_to_server=training_service_pb2_grpc.add_TrainingServiceServicer_to_server,
            methods=servicer.method_specs(),
        )
    ]


def baseline_spec(r: pb.TrainBaselineRequest) -> BaselineSpec:
    return BaselineSpec(
        train=dataset_ref(r.train),
        eval=dataset_ref(r.eval),
        baseline=plugin_choice(r.baseline) if r.baseline.name else PluginChoice(DEFAULT_BASELINE),
        output_name=r.output_name,
        metrics=tuple(plugin_choice(m) for m in r.metrics),
    )


def generation_spec(r: pb.EvaluateModelRequest) -> GenerationSpec | None:
    if not r.HasField("generation"):
        return None
    g = r.generation
    return GenerationSpec(
        decoding=decoding_values(g.decoding, "generation.decoding"),
        metrics=tuple(plugin_choice(m) for m in g.metrics),
        reference_column=g.reference_column,
        long_inputs=plugin_choice(g.long_inputs) if g.long_inputs.name else None,
        input_token_budget=g.input_token_budget,
        max_examples=g.max_examples,
        seed=g.seed,
        samples=g.samples,
        raw_prompt=g.raw_prompt,
    )


def evaluation_pb(values: dict[str, Any] | None) -> pb.Evaluation | None:
    """An Evaluation message from the evaluation's dict form."""
    if not values:
        return None
    labels = values.get("labels") or []
    return pb.Evaluation(
        num_examples=int(values.get("num_examples", 0)),
        loss=float(values.get("loss", 0.0)),
        accuracy=float(values.get("accuracy", 0.0)),
        f1_macro=float(values.get("f1_macro", 0.0)),
        perplexity=float(values.get("perplexity", 0.0)),
        confusion_matrix=pb.ConfusionMatrix(
            labels=labels,
            counts=[int(c) for row in values.get("confusion") or [] for c in row],
        )
        if labels
        else None,
        metrics=values.get("metrics") or {},
        generation_settings=struct(values["generation"]) if values.get("generation") else None,
        samples=[pb.GenerationSample(**sample) for sample in values.get("samples") or []],
        outputs_id=values.get("outputs_id", ""),
        misclassified=[
            pb.ClassificationExample(**row) for row in values.get("misclassified") or []
        ],
    )


def sheet_spec(r: pb.ExportReviewSheetRequest) -> SheetSpec:
    return SheetSpec(
        systems=tuple((s.name, s.outputs_id) for s in r.systems),
        num_documents=r.num_documents,
        seed=r.seed,
        excerpt_chars=r.excerpt_chars,
        criteria=tuple(r.criteria),
        blind=r.blind if r.HasField("blind") else True,
        output_name=r.output_name,
        output_path=r.output_path,
    )


class TrainingServicer(training_service_pb2_grpc.TrainingServiceServicer):
    def __init__(self, kernel: Kernel, jobs: TrainingJobs) -> None:
        self._jobs = jobs

    def method_specs(self) -> list[MethodSpec]:
        jobs = self._jobs

        def train(r: pb.TrainModelRequest, ctx) -> pb.TrainModelResponse:
            outcome = jobs.run_train(train_spec(r), ctx, r.request_id)
            return pb.TrainModelResponse(
                model=artifact(outcome.model),
                metrics=outcome.metrics,
                steps=outcome.steps,
                trainable_parameters=outcome.trainable_parameters,
                total_parameters=outcome.total_parameters,
                evaluation=evaluation_pb(outcome.evaluation),
            )

        def evaluate(r: pb.EvaluateModelRequest, ctx) -> pb.EvaluateModelResponse:
            scores = jobs.run_evaluate(
                r.model_id,
                dataset_ref(r.dataset),
                r.batch_size,
                r.max_sequence_length,
                ctx,
                generation_spec(r),
            )
            return pb.EvaluateModelResponse(evaluation=evaluation_pb(scores.as_dict()))

        def train_baseline(r: pb.TrainBaselineRequest, ctx) -> pb.TrainBaselineResponse:
            outcome = jobs.baselines.run(baseline_spec(r), ctx, r.request_id)
            return pb.TrainBaselineResponse(
                evaluation=evaluation_pb(outcome.evaluation.as_dict()),
                seconds=outcome.seconds,
                model=artifact(outcome.model) if outcome.model else None,
            )

        def import_model(r: pb.ImportModelRequest, ctx) -> pb.ImportModelResponse:
            imported = jobs.run_import(r.source_path, r.output_name, ctx)
            return pb.ImportModelResponse(
                model=artifact(imported.model),
                cached=imported.cached,
                architecture=imported.architecture,
                parameters=imported.parameters,
            )

        def export_review(r: pb.ExportReviewSheetRequest, ctx) -> pb.ExportReviewSheetResponse:
            outcome = jobs.reviews.export(sheet_spec(r), ctx, r.request_id)
            return pb.ExportReviewSheetResponse(
                sheet=artifact(outcome.sheet),
                num_documents=outcome.num_documents,
                rows=outcome.rows,
            )

        def ingest_review(r: pb.IngestReviewSheetRequest, ctx) -> pb.IngestReviewSheetResponse:
            summary = jobs.reviews.ingest(r.sheet_id, list(r.sheet_paths), ctx)
            return pb.IngestReviewSheetResponse(
                systems={n: pb.SystemRatings(**v) for n, v in summary.systems.items()},
                rated_rows=summary.rated_rows,
                unrated_cells=summary.unrated_cells,
                raters=summary.raters,
                agreement=[pb.RaterAgreement(**a) for a in summary.agreement],
            )

        def check_evaluate(r: pb.EvaluateModelRequest) -> None:
            if r.batch_size < 0 or r.max_sequence_length < 0:
                raise InvalidArgument.for_field(
                    "batch_size" if r.batch_size < 0 else "max_sequence_length", "must be >= 0"
                )
            jobs.plan_evaluate(
                r.model_id,
                dataset_ref(r.dataset),
                generation_spec(r),
                r.max_sequence_length,
                r.batch_size,
            )

        return [
            MethodSpec("TrainModel", train, lambda r: jobs.plan_train(train_spec(r))),
            MethodSpec("EvaluateModel", evaluate, check_evaluate),
            MethodSpec(
                "TrainBaseline", train_baseline, lambda r: jobs.baselines.plan(baseline_spec(r))
            ),
            MethodSpec(
                "ImportModel",
                import_model,
                lambda r: jobs.plan_import(r.source_path, r.output_name),
            ),
            MethodSpec(
                "ExportReviewSheet",
                export_review,
                lambda r: jobs.reviews.plan_export(sheet_spec(r)),
            ),
            MethodSpec(
                "IngestReviewSheet",
                ingest_review,
                lambda r: jobs.reviews.plan_ingest(r.sheet_id, list(r.sheet_paths)),
            ),
        ]

    async def Predict(self, request, context):
        predictions = await asyncio.to_thread(
            self._jobs.predict,
            request.model_id,
            list(request.texts),
            request.max_sequence_length,
            request.max_new_tokens,
        )
        return pb.PredictResponse(
            predictions=[
                pb.Prediction(
                    label=p.label,
                    score=p.score,
                    scores=p.scores,
                    generated_text=p.generated_text,
                )
                for p in predictions
            ]
        )
