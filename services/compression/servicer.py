"""forgeline.v1.CompressionService over gRPC: translates messages to CompressionJobs calls and
back."""

from __future__ import annotations

from forgeline.convert import artifact, plugin_choice, struct
from forgeline.datasets import DatasetRepository, dataset_ref
from forgeline.operations import MethodSpec
from forgeline.server import Kernel, ServiceDefinition
from forgeline.services.compression.jobs import (
    KEPT,
    ROLLED_BACK,
    SERVICE,
    CompressionJobs,
    CompressOutcome,
    StepOutcome,
)
from forgeline.services.compression.measure import LatencyOptions, Measurement
from forgeline.services.compression.planning import CompressSpec
from forgeline.v1 import compression_service_pb2 as pb
from forgeline.v1 import compression_service_pb2_grpc

OUTCOMES = {KEPT: pb.STEP_OUTCOME_KEPT, ROLLED_BACK: pb.STEP_OUTCOME_ROLLED_BACK}


def build(kernel: Kernel) -> list[ServiceDefinition]:
    """The entry point of ``forgeline.services: compression``."""
    jobs = CompressionJobs(
        kernel.registry,
        DatasetRepository(kernel.artifacts),
        kernel.artifacts,
        kernel.paths,
        kernel.settings,
    )
    servicer = CompressionServicer(kernel, jobs)
    return [
        ServiceDefinition(
            full_name=SERVICE,
            servicer=servicer,
            add_to_server=compression_service_pb2_grpc.add_CompressionServiceServicer_to_server,
            methods=servicer.method_specs(),
        )
    ]


def compress_spec(r: pb.CompressModelRequest) -> CompressSpec:
    return CompressSpec(
        model_id=r.model_id,
        eval=dataset_ref(r.eval),
        train=dataset_ref(r.train) if r.HasField("train") else None,
        compressors=tuple(plugin_choice(c) for c in r.compressors),
        accuracy_budget=r.accuracy_budget if r.HasField("accuracy_budget") else None,
        budget_metric=r.budget_metric,
        latency=LatencyOptions(
            single_runs=r.latency.single_runs,
            batch_size=r.latency.batch_size,
            batch_runs=r.latency.batch_runs,
            threads=r.latency.threads,
        ),
        max_length=r.max_sequence_length,
        output_name=r.output_name,
    )


def measurement_pb(m: Measurement | None) -> pb.Measurement | None:
    if m is None:
        return None
    return pb.Measurement(**m.as_dict())


def step_pb(s: StepOutcome) -> pb.CompressionStep:
    return pb.CompressionStep(
        index=s.index,
        compressor=s.compressor,
        config=struct(s.config),
        outcome=OUTCOMES.get(s.outcome, pb.STEP_OUTCOME_SKIPPED),
        measurement=measurement_pb(s.measurement),
        model=artifact(s.model) if s.model else None,
        details=struct(s.details),
        seconds=s.seconds,
        reason=s.reason,
        **s.ratios,
    )


def response(o: CompressOutcome) -> pb.CompressModelResponse:
    return pb.CompressModelResponse(
        model=artifact(o.model),
        original=measurement_pb(o.original),
        steps=[step_pb(s) for s in o.steps],
        budget_exceeded=o.budget_exceeded,
        size_ratio=o.ratios["size_ratio"],
        latency_ratio=o.ratios["latency_ratio"],
        batch_latency_ratio=o.ratios["batch_latency_ratio"],
        accuracy_delta=o.ratios["accuracy_delta"],
        perplexity_ratio=o.ratios.get("perplexity_ratio", 0.0),
        accuracy_budget=o.budget,
        budget_metric=o.metric,
        seconds=o.seconds,
    )


class CompressionServicer(compression_service_pb2_grpc.CompressionServiceServicer):
    def __init__(self, kernel: Kernel, jobs: CompressionJobs) -> None:
        self._jobs = jobs

    def method_specs(self) -> list[MethodSpec]:
        jobs = self._jobs

        def compress(r: pb.CompressModelRequest, ctx) -> pb.CompressModelResponse:
            return response(jobs.run(compress_spec(r), ctx, r.request_id))

        return [MethodSpec("CompressModel", compress, lambda r: jobs.plan(compress_spec(r)))]
