"""forgeline.v1.ServingService over gRPC: translates messages to Deployments calls and back."""

from __future__ import annotations

import asyncio

from google.rpc import status_pb2

from forgeline.convert import timestamp
from forgeline.errors import ForgelineError, InvalidArgument, PermissionDenied, to_status
from forgeline.modelio import safety_context
from forgeline.models import ModelRepository
from forgeline.operations import MethodSpec, page_offset
from forgeline.policy import PolicyLoader
from forgeline.policy_messages import policy_pb, policy_source, verdict_pb
from forgeline.server import Kernel, ServiceDefinition
from forgeline.services.serving.deployments import (
    FAILED,
    INPUT_STAGE,
    LOADING,
    SERVING,
    Answer,
    Deployment,
    Deployments,
    DeploySpec,
    ModelPlanner,
)
from forgeline.v1 import serving_service_pb2 as pb
from forgeline.v1 import serving_service_pb2_grpc

SERVICE = "forgeline.v1.ServingService"
ACTOR = "serving"
STATES = {
    LOADING: pb.DEPLOYMENT_STATE_LOADING,
    SERVING: pb.DEPLOYMENT_STATE_SERVING,
    FAILED: pb.DEPLOYMENT_STATE_FAILED,
}


def build(kernel: Kernel) -> list[ServiceDefinition]:
    """The entry point of ``forgeline.services: serving``."""
    settings = kernel.settings
    folder = settings.home.expanduser() / "services" / "serving"
    folder.mkdir(parents=True, exist_ok=True)
    policies = PolicyLoader(kernel.registry, safety_context(kernel.artifacts))
    deployments = Deployments(
        folder,
        ModelPlanner(kernel.artifacts, ModelRepository(kernel.artifacts)),
        policies,
        kernel.audit.record,  # blocked requests (the kernel closes the outbox after us)
        settings.worker_threads,
    )
    deployments.restore()
    servicer = ServingServicer(kernel, deployments)
    return [
        ServiceDefinition(
            full_name=SERVICE,
            servicer=servicer,
            add_to_server=serving_service_pb2_grpc.add_ServingServiceServicer_to_server,
            methods=servicer.method_specs(),
            on_close=deployments.close,
        )
    ]


def deploy_spec(r: pb.DeployModelRequest) -> DeploySpec:
    return DeploySpec(
        name=r.name,
        model_id=r.model_id,
        adapters=dict(r.adapters),
        default_adapter=r.default_adapter,
        policy=policy_source(r.policy),
        max_batch_size=r.batching.max_batch_size,
        max_wait_ms=r.batching.max_wait_ms,
        max_length=r.max_sequence_length,
    )


def deployment_pb(d: Deployment) -> pb.Deployment:
    plan = d.plan
    if plan is None:  # still loading, or failed to: what was asked for
        s = d.spec
        shown = {
            "model_id": s.model_id,
            "adapters": s.adapters,
            "default_adapter": s.default_adapter,
            "batching": pb.BatchingOptions(
                max_batch_size=s.max_batch_size, max_wait_ms=s.max_wait_ms
            ),
        }
    else:
        m, b = plan.model, plan.bounds
        shown = {
            "model_id": m.model_id,
            "adapters": m.adapter_ids,
            "default_adapter": m.default_adapter,
            "format": m.format,
            "labels": m.labels,
            "policy": policy_pb(plan.policy),
            "policy_sha256": plan.policy.sha256,
            "batching": pb.BatchingOptions(
                max_batch_size=b.max_batch_size, max_wait_ms=b.max_wait_ms
            ),
        }
    return pb.Deployment(
        name=d.name,
        state=STATES[d.state],
        create_time=timestamp(d.create_time),
        requests=d.requests,
        blocked=d.blocked,
        batches=d.batches,
        **shown,
    )


def prediction_pb(a: Answer) -> pb.ServedPrediction:
    return pb.ServedPrediction(
        label=a.label,
        score=a.score,
        probabilities=a.probabilities,
        model_input=a.model_input,
        output=a.output,
        input_verdict=verdict_pb(a.input_verdict),
        output_verdict=verdict_pb(a.output_verdict) if a.output_verdict else None,
        adapter=a.adapter,
    )


def refusal_error(deployment: str, a: Answer) -> PermissionDenied:
    r = a.refusal
    return PermissionDenied(
        f"deployment {deployment!r}: the {r.stage} was blocked by rule {r.rule!r}: {r.message}",
        reason="INPUT_BLOCKED" if r.stage == INPUT_STAGE else "OUTPUT_BLOCKED",
        metadata={"deployment": deployment, "rule": r.rule, "audit_event": r.audit_event},
    )


def result_pb(deployment: str, a: Answer) -> pb.PredictResult:
    status = to_status(refusal_error(deployment, a)) if a.refusal else status_pb2.Status()
    return pb.PredictResult(status=status, prediction=prediction_pb(a))


class ServingServicer(serving_service_pb2_grpc.ServingServiceServicer):
    def __init__(self, kernel: Kernel, deployments: Deployments) -> None:
        self._settings = kernel.settings
        self._deployments = deployments

    def method_specs(self) -> list[MethodSpec]:
        deployments = self._deployments

        def deploy(r: pb.DeployModelRequest, ctx) -> pb.DeployModelResponse:
            deployment = deployments.deploy(deploy_spec(r), ctx.progress)
            return pb.DeployModelResponse(
                deployment=deployment_pb(deployment), load_seconds=deployment.load_seconds
            )

        return [MethodSpec("DeployModel", deploy, lambda r: deployments.plan(deploy_spec(r)))]

    async def UndeployModel(self, request, context):
        removed = await asyncio.to_thread(self._deployments.remove, request.name, "name")
        await removed.drain()
        return pb.UndeployModelResponse(deployment=deployment_pb(removed))

    async def ListDeployments(self, request, context):
        offset = page_offset(request.page_token)
        size = min(request.page_size or 50, 500)
        names = self._deployments.names()
        page = []
        for name in names[offset : offset + size]:
            try:
                page.append(deployment_pb(self._deployments.get(name)))
            except ForgelineError:  # undeployed meanwhile
                continue
        more = len(names) > offset + size
        return pb.ListDeploymentsResponse(
            deployments=page, next_page_token=str(offset + size) if more else ""
        )

    async def Predict(self, request, context):
        (answer,) = await self._deployments.predict(
            request.deployment, [request.text], request.adapter
        )
        if answer.refusal is not None:
            raise refusal_error(request.deployment, answer)
        return pb.ServingServicePredictResponse(prediction=prediction_pb(answer))

    async def PredictBatch(self, request, context):
        limit = self._settings.max_predict_texts
        if not request.texts:
            raise InvalidArgument.for_field("texts", "give at least one text")
        if len(request.texts) > limit:
            raise InvalidArgument.for_field(
                "texts",
                f"{len(request.texts)} texts is over the limit of {limit} per call "
                f"(FORGELINE_MAX_PREDICT_TEXTS); split them or use PredictStream",
            )
        answers = await self._deployments.predict(
            request.deployment, list(request.texts), request.adapter
        )
        return pb.PredictBatchResponse(results=[result_pb(request.deployment, a) for a in answers])

    async def PredictStream(self, request_iterator, context):
        responses: asyncio.Queue[pb.PredictStreamResponse | None] = asyncio.Queue()

        async def answer(r: pb.PredictStreamRequest) -> None:
            try:
                (found,) = await self._deployments.predict(r.deployment, [r.text], r.adapter)
                result = result_pb(r.deployment, found)
            except ForgelineError as exc:  # this item fails, the stream goes on
                result = pb.PredictResult(status=to_status(exc))
            responses.put_nowait(pb.PredictStreamResponse(id=r.id, result=result))

        async def read() -> None:
            try:
                async with asyncio.TaskGroup() as group:
                    async for r in request_iterator:
                        group.create_task(answer(r))
            finally:
                responses.put_nowait(None)

        reader = asyncio.create_task(read())
        try:
            while (response := await responses.get()) is not None:
                yield response
            await reader  # a failure reading the stream fails the call
        finally:
            reader.cancel()
