"""ServingService against a real server: every format and adapters side by side, the three
predict methods, micro-batching, the safety chain with its audit trail, and the refusals."""

from __future__ import annotations

import hashlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from google.rpc import error_details_pb2

from forgeline.convert import from_struct
from forgeline.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from forgeline.v1 import common_pb2
from forgeline.v1 import safety_service_pb2 as spb
from forgeline.v1 import serving_service_pb2 as pb
from tests.integration.serving.conftest import (
    LABELS,
    MAX_PREDICT_TEXTS,
    TEXTS,
    deploy,
    listed,
    predict,
)

POLICY = """
input_filters:
  - filter: {name: pii}
  - name: no-secrets
    filter: {name: blocklist, config: {words: [password]}}
    action: block
    message: no passwords here
output_rules:
  - name: withhold
    match: {name: keywords, config: {words: [neg, pos]}}
    action: replace
    replacement: "[withheld]"
"""
STRICT = """
output_rules:
  - name: never
    match: {name: keywords, config: {words: [neg, pos]}}
"""


def probabilities(p: pb.ServedPrediction) -> list[float]:
    return [p.probabilities[label] for label in LABELS]


def close(a: pb.ServedPrediction, b: pb.ServedPrediction, tolerance: float = 1e-4) -> bool:
    return all(
        abs(x - y) <= tolerance for x, y in zip(probabilities(a), probabilities(b), strict=True)
    )


@pytest.fixture(scope="module")
def standard(serving, models) -> dict[str, pb.Deployment]:
    """An HF model, its ONNX export, two adapters on it (the base as default), one adapter."""
    adapters = {"a": models.adapter_a.id, "b": models.adapter_b.id}
    return {
        "hf": deploy(serving, "hf", models.hf.id),
        "onnx": deploy(serving, "onnx", models.onnx.id),
        "lora": deploy(serving, "lora", models.hf.id, adapters=adapters),
        "single": deploy(serving, "single", models.adapter_a.id),
    }


def test_every_format_and_adapters_side_by_side_answer_like_the_model(serving, models, standard):
    hf, lora, single = standard["hf"], standard["lora"], standard["single"]
    assert (hf.format, list(hf.labels), hf.state) == ("hf", LABELS, pb.DEPLOYMENT_STATE_SERVING)
    assert standard["onnx"].format == "onnx"
    assert (lora.format, lora.model_id, lora.default_adapter) == ("peft", models.hf.id, "")
    assert dict(lora.adapters) == {"a": models.adapter_a.id, "b": models.adapter_b.id}
    assert (single.model_id, single.default_adapter, dict(single.adapters)) == (
        models.hf.id,  # the base the adapter records
        "default",
        {"default": models.adapter_a.id},
    )

    shown = listed(serving)
    assert {"hf", "onnx", "lora", "single"} <= set(shown)
    assert all(shown[n].state == pb.DEPLOYMENT_STATE_SERVING for n in ("hf", "onnx", "lora"))

    differs = 0
    for text in TEXTS[:3]:
        base = predict(serving, "hf", text)
        assert abs(sum(probabilities(base)) - 1) < 1e-5 and base.score == max(probabilities(base))
        assert base.label == LABELS[probabilities(base).index(base.score)]
        assert close(predict(serving, "onnx", text), base)  # ONNX Runtime runs the same model
        assert close(predict(serving, "lora", text), base)  # "" is the base model itself
        a = predict(serving, "lora", text, adapter="a")
        b = predict(serving, "lora", text, adapter="b")
        assert (a.adapter, b.adapter) == ("a", "b")
        assert close(predict(serving, "single", text), a)
        differs += not close(a, b, 0.05)
    assert differs == 3  # each adapter answers with its own weights and head

    batch = serving.serving.PredictBatch(
        pb.PredictBatchRequest(deployment="lora", texts=TEXTS[:3], adapter="b")
    )
    for text, result in zip(TEXTS[:3], batch.results, strict=True):
        assert result.status.code == 0
        assert close(result.prediction, predict(serving, "lora", text, adapter="b"))


def test_concurrent_requests_share_forward_passes_even_across_adapters(serving, models, standard):
    adapters = {"a": models.adapter_a.id, "b": models.adapter_b.id}
    batching = pb.BatchingOptions(max_batch_size=32, max_wait_ms=300)
    deploy(serving, "batched", models.hf.id, adapters=adapters, batching=batching)
    deploy(serving, "unbatched", models.hf.id, batching=pb.BatchingOptions(max_batch_size=1))
    chosen = ["a", "b", ""] * 4
    alone = {(t, a): predict(serving, "lora", t, a) for t in TEXTS[:2] for a in set(chosen)}

    def ask(i: int) -> pb.ServedPrediction:
        return predict(serving, "batched", TEXTS[i % 2], chosen[i])

    with ThreadPoolExecutor(len(chosen)) as pool:
        answers = list(pool.map(ask, range(len(chosen))))
        list(pool.map(lambda t: predict(serving, "unbatched", t), TEXTS))
    for i, answer in enumerate(answers):  # a mixed batch gives each text its own adapter
        assert answer.adapter == chosen[i]
        assert close(answer, alone[(TEXTS[i % 2], chosen[i])])
    shown = listed(serving)
    assert shown["batched"].requests == len(chosen)
    assert shown["batched"].batches <= 3  # 12 requests, at most a few forward passes
    assert shown["unbatched"].requests == shown["unbatched"].batches == len(TEXTS)


def test_a_stream_is_answered_as_results_are_ready_and_bad_items_get_a_status(
    serving, models, standard
):
    deploy(serving, "slow", models.hf.id, batching=pb.BatchingOptions(max_wait_ms=1000))
    requests = [
        pb.PredictStreamRequest(id="slow-1", deployment="slow", text=TEXTS[0]),
        pb.PredictStreamRequest(id="fast-1", deployment="hf", text=TEXTS[1]),
        pb.PredictStreamRequest(id="fast-2", deployment="hf", text=TEXTS[4]),
        pb.PredictStreamRequest(id="missing", deployment="nope", text="x"),
        pb.PredictStreamRequest(id="bad-adapter", deployment="hf", text="x", adapter="zz"),
    ]
    answers = list(serving.serving.PredictStream(iter(requests)))
    order = [a.id for a in answers]
    assert sorted(order) == sorted(r.id for r in requests)
    assert order[-1] == "slow-1"  # waited for company; the others did not wait for it
    by_id = {a.id: a.result for a in answers}
    assert by_id["missing"].status.code == 5 and "hf" in by_id["missing"].status.message
    assert by_id["bad-adapter"].status.code == 3
    assert "adapter" in by_id["bad-adapter"].status.message
    for request in requests[:3]:
        assert by_id[request.id].status.code == 0
        assert close(by_id[request.id].prediction, predict(serving, "hf", request.text))


def audit_entries(safety, subject: str, count: int) -> list[spb.AuditEntry]:
    deadline = time.monotonic() + 20
    while True:
        entries = safety.safety.ListAuditEntries(
            spb.ListAuditEntriesRequest(kind="blocked_request", subject=subject)
        ).entries
        if len(entries) >= count or time.monotonic() > deadline:
            return list(entries)
        time.sleep(0.2)


def test_the_safety_chain_redacts_blocks_replaces_and_audits(serving, safety, models, standard):
    guarded = deploy(serving, "guarded", models.hf.id, policy=common_pb2.PolicySource(yaml=POLICY))
    assert guarded.policy_sha256 and [r.name for r in guarded.policy.input_filters] == [
        "pii",
        "no-secrets",
    ]

    redacted = predict(serving, "guarded", TEXTS[2])
    assert redacted.model_input == "mail me at [EMAIL] please"
    assert redacted.input_verdict.decision == common_pb2.SAFETY_DECISION_MODIFY
    assert close(redacted, predict(serving, "hf", "mail me at [EMAIL] please"))  # what it saw
    assert not close(redacted, predict(serving, "hf", TEXTS[2]))  # not what was sent
    assert redacted.label in LABELS and redacted.output == "[withheld]"
    assert redacted.output_verdict.firings[0].rule == "withhold"

    with pytest.raises(PermissionDenied) as refused:
        predict(serving, "guarded", TEXTS[3])
    error = refused.value
    assert error.reason == "INPUT_BLOCKED"
    assert error.metadata["rule"] == "no-secrets" and error.metadata["deployment"] == "guarded"
    assert "no-secrets" in error.message and "no passwords here" in error.message

    batch = serving.serving.PredictBatch(
        pb.PredictBatchRequest(deployment="guarded", texts=[TEXTS[0], TEXTS[3], TEXTS[2]])
    ).results
    assert [r.status.code for r in batch] == [0, 7, 0]
    assert batch[1].prediction.input_verdict.blocked_by == "no-secrets"
    info = error_details_pb2.ErrorInfo()
    batch[1].status.details[0].Unpack(info)
    assert info.reason == "INPUT_BLOCKED" and info.metadata["rule"] == "no-secrets"
    assert batch[2].prediction.model_input == redacted.model_input

    deploy(serving, "strict", models.hf.id, policy=common_pb2.PolicySource(yaml=STRICT))
    with pytest.raises(PermissionDenied) as refused_output:
        predict(serving, "strict", TEXTS[0])
    assert refused_output.value.reason == "OUTPUT_BLOCKED"
    assert refused_output.value.metadata["rule"] == "never"

    shown = listed(serving)["guarded"]
    assert (shown.requests, shown.blocked) == (5, 2)
    entries = audit_entries(safety, "guarded", 2)
    events = {e.event.id: e.event for e in entries}
    assert error.metadata["audit_event"] in events
    event = events[error.metadata["audit_event"]]
    details = from_struct(event.details)
    assert (event.actor, details["stage"], details["rule"]) == ("serving", "input", "no-secrets")
    assert details["text_sha256"] == hashlib.sha256(TEXTS[3].encode()).hexdigest()
    assert details["text_chars"] == len(TEXTS[3])
    assert all("hunter2" not in str(from_struct(e.event.details)) for e in entries)
    output = audit_entries(safety, "strict", 1)
    assert from_struct(output[0].event.details)["stage"] == "output"


def test_refusals_name_the_field_and_what_exists(serving, models, standard):
    with pytest.raises(FailedPrecondition) as pickled:
        deploy(serving, "pickled", models.pickled.id)
    assert pickled.value.reason == "PICKLE_REFUSED" and "pytorch_model.bin" in str(pickled.value)
    for path in ("../artifacts/objects", "/etc/passwd", str(models.hf.path)):
        with pytest.raises(InvalidArgument) as bad_path:
            deploy(serving, "by-path", path)
        assert bad_path.value.violations[0].field == "model_id"
    with pytest.raises(InvalidArgument) as bad_request:
        deploy(
            serving,
            "Bad_Name",
            models.hf.id,
            batching=pb.BatchingOptions(max_batch_size=300, max_wait_ms=5000),
        )
    assert {v.field for v in bad_request.value.violations} == {
        "name",
        "batching.max_batch_size",
        "batching.max_wait_ms",
    }
    with pytest.raises(InvalidArgument) as foreign:
        deploy(
            serving,
            "mixed",
            models.hf.id,
            adapters={"a": models.adapter_a.id, "c": models.foreign_adapter.id},
        )
    assert foreign.value.violations[0].field == 'adapters["c"]'
    with pytest.raises(InvalidArgument) as default:
        deploy(
            serving,
            "mixed",
            models.hf.id,
            adapters={"a": models.adapter_a.id},
            default_adapter="zz",
        )
    assert default.value.violations[0].field == "default_adapter"
    with pytest.raises(InvalidArgument) as policy:
        deploy(
            serving,
            "mixed",
            models.hf.id,
            policy=common_pb2.PolicySource(yaml="input_filters: [{filter: {name: nope}}]"),
        )
    assert policy.value.violations[0].field.startswith("policy.input_filters[0]")

    with pytest.raises(NotFound) as missing:
        predict(serving, "nope", "x")
    assert "hf" in missing.value.message
    with pytest.raises(InvalidArgument) as adapter:
        predict(serving, "hf", "x", adapter="zz")
    assert adapter.value.violations[0].field == "adapter"
    with pytest.raises(InvalidArgument) as too_many:
        serving.serving.PredictBatch(
            pb.PredictBatchRequest(deployment="hf", texts=["x"] * (MAX_PREDICT_TEXTS + 1))
        )
    assert too_many.value.violations[0].field == "texts"


def test_replacing_and_undeploying_answer_what_was_queued(serving, models, standard):
    slow = pb.BatchingOptions(max_batch_size=64, max_wait_ms=1000)
    deploy(serving, "swap", models.hf.id, batching=slow)
    results: dict[str, object] = {}

    def ask(key: str) -> None:
        started = time.perf_counter()
        results[key] = predict(serving, "swap", TEXTS[0])
        results[f"{key}-seconds"] = time.perf_counter() - started

    first = threading.Thread(target=ask, args=("replaced",))
    first.start()
    time.sleep(0.2)
    assert deploy(serving, "swap", models.onnx.id).format == "onnx"  # atomically replaced
    first.join(10)
    assert close(results["replaced"], predict(serving, "hf", TEXTS[0]))
    assert listed(serving)["swap"].format == "onnx"

    deploy(serving, "swap", models.hf.id, batching=slow)
    second = threading.Thread(target=ask, args=("undeployed",))
    second.start()
    time.sleep(0.2)
    removed = serving.serving.UndeployModel(pb.UndeployModelRequest(name="swap")).deployment
    second.join(10)
    assert removed.name == "swap" and "swap" not in listed(serving)
    assert isinstance(results["undeployed"], pb.ServedPrediction)  # drained, not dropped
    assert results["undeployed-seconds"] < 0.9  # the drain cut the batch's wait short
    with pytest.raises(NotFound):
        predict(serving, "swap", TEXTS[0])
