"""forgeline.v1.ServingService over gRPC: translates messages to Deployments calls and back."""

from __future__ import annotations

import asyncio

from google.rpc import status_pb2

from forgeline.convert import decoding_values, timestamp
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
    Refusal,
)
from forgeline.services.serving.generate import Finished, GenerateInput, Piece
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
        settings.max_generations,
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
        max_new_tokens=r.max_new_tokens,
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
            "task": m.task,
            "context_window": m.window,
            "max_new_tokens": m.max_new_tokens,
        }
    return pb.Deployment(
        name=d.name,
        state=STATES[d.state],
        create_time=timestamp(d.create_time),
        requests=d.requests,
        blocked=d.blocked,
        batches=d.batches,
        batched_rows=d.batched_rows,
        active_generations=d.generations,
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


def refusal_error(deployment: str, r: Refusal) -> PermissionDenied:
    return PermissionDenied(
        f"deployment {deployment!r}: the {r.stage} was blocked by rule {r.rule!r}: {r.message}",
        reason="INPUT_BLOCKED" if r.stage == INPUT_STAGE else "OUTPUT_BLOCKED",
        metadata={"deployment": deployment, "rule": r.rule, "audit_event": r.audit_event},
    )


def result_pb(deployment: str, a: Answer) -> pb.PredictResult:
    status = to_status(refusal_error(deployment, a.refusal)) if a.refusal else status_pb2.Status()
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
            raise refusal_error(request.deployment, answer.refusal)
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

    async def Generate(self, request, context):
        finished = None
        async for event in self._deployments.generate(
            request.deployment, generate_input(request), stream=False
        ):
            if isinstance(event, Refusal):
                raise refusal_error(request.deployment, event)
            if isinstance(event, Finished):  # its output is the whole text: pieces not needed
                finished = event
        if finished.blocked is not None:
            raise refusal_error(request.deployment, finished.refusal)
        return pb.GenerateResponse(
            text=finished.output,
            finish_reason=finished.finish_reason,
            usage=usage_pb(finished),
            input_verdicts=[verdict_pb(v) for v in finished.input_verdicts],
            output_verdict=verdict_pb(finished.output_verdict) if finished.output_verdict else None,
            adapter=finished.adapter,
        )

    async def GenerateStream(self, request, context):
        async for event in self._deployments.generate(
            request.deployment, generate_input(request), stream=True
        ):
            if isinstance(event, Refusal):
                raise refusal_error(request.deployment, event)
            if isinstance(event, Piece):
                yield pb.GenerateStreamResponse(text=event.text)
                continue
            block = None
            if event.blocked is not None:
                r = event.refusal
                block = pb.GenerationBlock(
                    rule=r.rule, message=r.message, audit_event=r.audit_event, withdrawn=True
                )
            yield pb.GenerateStreamResponse(
                finish_reason=event.finish_reason,
                usage=usage_pb(event),
                output=event.output,
                block=block,
            )


def generate_input(r: pb.GenerateRequest | pb.GenerateStreamRequest) -> GenerateInput:
    """A request's prompt or messages (exactly one), decoding and adapter."""
    if bool(r.prompt) == bool(r.messages):
        raise InvalidArgument.for_field(
            "prompt", "give exactly one of prompt (raw text) and messages (a chat)"
        )
    for i, m in enumerate(r.messages):
        if not m.role:
            raise InvalidArgument.for_field(f"messages[{i}].role", "name the turn's role")
    return GenerateInput(
        prompt=r.prompt,
        messages=tuple((m.role, m.content) for m in r.messages),
        decoding=decoding_values(r.decoding, "decoding"),
        adapter=r.adapter,
    )


def usage_pb(f: Finished) -> pb.GenerationUsage:
    return pb.GenerationUsage(prompt_tokens=f.prompt_tokens, completion_tokens=f.completion_tokens)
