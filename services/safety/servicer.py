"""forgeline.v1.SafetyService over gRPC: translates messages to the policy engine, the fairness
jobs and the audit log, and back."""

from __future__ import annotations

import asyncio
from typing import Any

from forgeline.convert import artifact, from_struct, plugin_choice, struct
from forgeline.datasets import DatasetRepository, dataset_ref
from forgeline.errors import InvalidArgument
from forgeline.modelio import safety_context
from forgeline.models import ModelRepository
from forgeline.operations import MethodSpec, page_offset
from forgeline.policy import PolicyLoader, Verdict
from forgeline.policy_messages import policy_pb, policy_source, verdict_pb
from forgeline.server import Kernel, ServiceDefinition
from forgeline.services.safety.auditlog import AuditLog, Entry, Event
from forgeline.services.safety.fairness import (
    AuditOutcome,
    AuditSpec,
    FairnessJobs,
    FairnessResult,
    MitigateOutcome,
    MitigateSpec,
    Thresholds,
)
from forgeline.v1 import common_pb2, safety_service_pb2_grpc
from forgeline.v1 import safety_service_pb2 as pb

SERVICE = "forgeline.v1.SafetyService"
ACTOR = "safety"


def build(kernel: Kernel) -> list[ServiceDefinition]:
    """The entry point of ``forgeline.services: safety``."""
    home = kernel.settings.home.expanduser() / "services" / "safety"
    home.mkdir(parents=True, exist_ok=True)
    log = AuditLog(home / "audit.db")
    policies = PolicyLoader(kernel.registry, safety_context(kernel.artifacts))

    def record(kind: str, subject: str, details: dict[str, Any]) -> int:
        return log.append([Event(kind=kind, subject=subject, actor=ACTOR, details=details)])[
            0
        ].sequence

    fairness = FairnessJobs(
        kernel.registry,
        DatasetRepository(kernel.artifacts),
        kernel.artifacts,
        ModelRepository(kernel.artifacts),
        record,
    )
    servicer = SafetyServicer(kernel, policies, log, fairness)
    return [
        ServiceDefinition(
            full_name=SERVICE,
            servicer=servicer,
            add_to_server=safety_service_pb2_grpc.add_SafetyServiceServicer_to_server,
            methods=servicer.method_specs(),
            on_close=log.close,
        )
    ]


# --- policies ------------------------------------------------------------------------------------


# --- fairness ------------------------------------------------------------------------------------


def thresholds(message: pb.FairnessThresholds) -> Thresholds:
    def optional(name: str) -> float | None:
        return getattr(message, name) if message.HasField(name) else None

    return Thresholds(
        max_demographic_parity_difference=optional("max_demographic_parity_difference"),
        min_demographic_parity_ratio=optional("min_demographic_parity_ratio"),
        max_equalized_odds_difference=optional("max_equalized_odds_difference"),
        min_accuracy=optional("min_accuracy"),
    )


def audit_spec(r: pb.AuditFairnessRequest) -> AuditSpec:
    return AuditSpec(
        dataset=dataset_ref(r.dataset),
        sensitive_columns=tuple(r.sensitive_columns),
        model_id=r.model_id,
        prediction_column=r.prediction_column,
        positive_label=r.positive_label,
        thresholds=thresholds(r.thresholds),
        max_length=r.max_sequence_length,
    )


def mitigate_spec(r: pb.MitigateFairnessRequest) -> MitigateSpec:
    return MitigateSpec(
        train=dataset_ref(r.train),
        eval=dataset_ref(r.eval),
        sensitive_columns=tuple(r.sensitive_columns),
        model_id=r.model_id,
        score_column=r.score_column,
        feature_columns=tuple(r.feature_columns),
        mitigator=plugin_choice(r.mitigator),
        positive_label=r.positive_label,
        thresholds=thresholds(r.thresholds),
        max_length=r.max_sequence_length,
        seed=r.seed,
        output_name=r.output_name,
    )


def metrics_pb(m: FairnessResult) -> pb.FairnessMetrics:
    values = m.as_dict()
    groups = values.pop("groups")
    return pb.FairnessMetrics(groups=[pb.GroupMetrics(**g) for g in groups], **values)


def checks_pb(checks) -> list[pb.ThresholdCheck]:
    return [
        pb.ThresholdCheck(
            metric=c.metric, op=c.op, threshold=c.threshold, value=c.value, passed=c.passed
        )
        for c in checks
    ]


def audit_response(o: AuditOutcome) -> pb.AuditFairnessResponse:
    return pb.AuditFairnessResponse(
        metrics=metrics_pb(o.metrics),
        checks=checks_pb(o.checks),
        passed=int(o.passed),
        subject=o.subject,
        sensitive_columns=list(o.sensitive_columns),
        positive_label=o.positive_label,
        audit_sequence=o.audit_sequence,
    )


def mitigate_response(o: MitigateOutcome) -> pb.MitigateFairnessResponse:
    return pb.MitigateFairnessResponse(
        before=metrics_pb(o.before),
        after=metrics_pb(o.after),
        **o.deltas(),
        checks=checks_pb(o.checks),
        passed=int(o.passed),
        details=struct(o.details),
        predictions=artifact(o.predictions),
        audit_sequence=o.audit_sequence,
    )


# --- the audit log -------------------------------------------------------------------------------


def event_from_pb(e: pb.AuditEvent) -> Event:
    time_us = e.time.ToMicroseconds() if e.HasField("time") else 0
    return Event(
        kind=e.kind,
        subject=e.subject,
        actor=e.actor,
        details=from_struct(e.details),
        id=e.id,
        time_us=time_us,
    )


def entry_pb(entry: Entry) -> pb.AuditEntry:
    e = entry.event
    out = pb.AuditEntry(
        sequence=entry.sequence,
        previous_hash=entry.previous_hash,
        hash=entry.hash,
        event=pb.AuditEvent(
            id=e.id, kind=e.kind, subject=e.subject, actor=e.actor, details=struct(e.details)
        ),
    )
    out.event.time.FromMicroseconds(e.time_us)
    return out


class SafetyServicer(safety_service_pb2_grpc.SafetyServiceServicer):
    def __init__(
        self, kernel: Kernel, policies: PolicyLoader, log: AuditLog, fairness: FairnessJobs
    ) -> None:
        self._policies, self._log, self._fairness = policies, log, fairness
        self._max_texts = kernel.settings.max_predict_texts

    def method_specs(self) -> list[MethodSpec]:
        fairness = self._fairness

        def audit(r: pb.AuditFairnessRequest, ctx) -> pb.AuditFairnessResponse:
            return audit_response(fairness.audit(audit_spec(r), ctx))

        def mitigate(r: pb.MitigateFairnessRequest, ctx) -> pb.MitigateFairnessResponse:
            return mitigate_response(fairness.mitigate(mitigate_spec(r), ctx, r.request_id))

        return [
            MethodSpec("AuditFairness", audit, lambda r: fairness.plan_audit(audit_spec(r))),
            MethodSpec(
                "MitigateFairness", mitigate, lambda r: fairness.plan_mitigate(mitigate_spec(r))
            ),
        ]

    # checks ------------------------------------------------------------------------------------
    async def _check(
        self, source: common_pb2.PolicySource, texts: list[str], stage: str
    ) -> list[Verdict]:
        if source.WhichOneof("source") is None:
            raise InvalidArgument.for_field("policy", "give a policy (policy or yaml)")
        if len(texts) > self._max_texts:
            raise InvalidArgument.for_field(
                "texts",
                f"{len(texts)} texts is over the limit of {self._max_texts} per call "
                "(FORGELINE_MAX_PREDICT_TEXTS)",
            )
        policy = await asyncio.to_thread(self._policies.load, policy_source(source))
        run = policy.check_input if stage == "input" else policy.check_output
        return await asyncio.to_thread(run, texts)

    async def CheckInput(self, request, context):
        (verdict,) = await self._check(request.policy, [request.text], "input")
        return pb.CheckInputResponse(verdict=verdict_pb(verdict))

    async def CheckInputBatch(self, request, context):
        verdicts = await self._check(request.policy, list(request.texts), "input")
        return pb.CheckInputBatchResponse(verdicts=[verdict_pb(v) for v in verdicts])

    async def CheckOutput(self, request, context):
        (verdict,) = await self._check(request.policy, [request.text], "output")
        return pb.CheckOutputResponse(verdict=verdict_pb(verdict))

    async def CheckOutputBatch(self, request, context):
        verdicts = await self._check(request.policy, list(request.texts), "output")
        return pb.CheckOutputBatchResponse(verdicts=[verdict_pb(v) for v in verdicts])

    async def ValidatePolicy(self, request, context):
        if request.policy.WhichOneof("source") is None:
            raise InvalidArgument.for_field("policy", "give a policy (policy or yaml)")
        policy = await asyncio.to_thread(self._policies.load, policy_source(request.policy))
        return pb.ValidatePolicyResponse(policy=policy_pb(policy), sha256=policy.sha256)

    # the audit log -----------------------------------------------------------------------------
    async def AppendAuditEvents(self, request, context):
        if not request.events:
            raise InvalidArgument.for_field("events", "give at least one event")
        events = [event_from_pb(e) for e in request.events]
        entries = await asyncio.to_thread(self._log.append, events)
        return pb.AppendAuditEventsResponse(entries=[entry_pb(e) for e in entries])

    async def ListAuditEntries(self, request, context):
        offset = page_offset(request.page_token)
        size = min(request.page_size or 100, 1000)
        entries = await asyncio.to_thread(
            self._log.list,
            kind=request.kind,
            subject=request.subject,
            offset=offset,
            limit=size + 1,
            newest_first=request.newest_first,
        )
        more = len(entries) > size
        return pb.ListAuditEntriesResponse(
            entries=[entry_pb(e) for e in entries[:size]],
            next_page_token=str(offset + size) if more else "",
        )

    async def VerifyAuditLog(self, request, context):
        if request.expected_sequence < 0:
            raise InvalidArgument.for_field("expected_sequence", "must be >= 0")
        if bool(request.expected_sequence) != bool(request.expected_hash):
            raise InvalidArgument.for_field(
                "expected_hash", "give expected_sequence and expected_hash together"
            )
        v = await asyncio.to_thread(
            self._log.verify, request.expected_sequence, request.expected_hash
        )
        return pb.VerifyAuditLogResponse(
            ok=v.ok,
            entries=v.entries,
            head_sequence=v.head_sequence,
            head_hash=v.head_hash,
            first_bad_sequence=v.first_bad_sequence,
            problem=v.problem,
        )
