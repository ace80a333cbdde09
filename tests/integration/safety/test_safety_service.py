"""The safety service on a loopback port: policies (every input filter, every output rule
action, priorities, a classifier model from the store, bad rules named), a fairness audit with
its gate fields, and the audit log (appends, retries, paging, tamper detection, the CLI)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator

import pyarrow as pa
import pytest
from google.protobuf import json_format

from forgeline.artifacts import ArtifactStore, Lineage
from forgeline.client import Client
from forgeline.convert import struct
from forgeline.datasets import DatasetRepository
from forgeline.errors import InvalidArgument
from forgeline.server import Kernel
from forgeline.testing import text_checks
from forgeline.v1 import common_pb2
from forgeline.v1 import safety_service_pb2 as pb
from tests.conftest import REPO, ServiceThread, make_settings

ALLOW, BLOCK, MODIFY = (
    common_pb2.SAFETY_DECISION_ALLOW,
    common_pb2.SAFETY_DECISION_BLOCK,
    common_pb2.SAFETY_DECISION_MODIFY,
)

INPUT_POLICY = """
input_filters:
  - filter: {name: pii}
  - name: insults
    filter: {name: blocklist, config: {words: [idiot, 傻瓜], regexes: ['kill\\s+you']}}
    message: please stay polite
  - name: spam-model
    filter: {name: classifier, config: {model_id: certain-spam, labels: [spam], threshold: 0.9}}
    action: flag
"""

OUTPUT_POLICY = """
output_rules:
  - name: card-numbers
    match: {name: regex, config: {patterns: ['\\b\\d{4} \\d{4} \\d{4} \\d{4}\\b'], label: card}}
    action: redact
    priority: 50
  - name: no-diagnosis
    match: {name: keywords, config: {words: [diagnosis, prescription]}}
    action: block
    priority: 10
    message: medical advice is not given here
  - name: refund-script
    match: {name: keywords, config: {words: [refund]}}
    action: replace
    replacement: Please contact support for refunds.
    priority: 20
  - name: competitor
    match: {name: keywords, config: {words: [acme]}}
    action: flag
"""


@pytest.fixture(scope="module")
def safety(tmp_path_factory) -> Iterator[ServiceThread]:
    home = tmp_path_factory.mktemp("safety-home")
    store = ArtifactStore(home / "artifacts")
    try:
        text_checks.commit_model(store, "certain-spam", bias=(-10.0, 10.0))
    finally:
        store.close()
    service = ServiceThread("safety", make_settings(home, [home])).start()
    yield service
    service.stop()


@pytest.fixture(scope="module")
def client(safety) -> Iterator[Client]:
    with Client(safety.address) as c:
        c.wait_ready()
        yield c


def source(yaml: str) -> common_pb2.PolicySource:
    return common_pb2.PolicySource(yaml=yaml)


def test_input_filters_redact_block_and_flag_in_one_batch(client):
    texts = [
        "write to amy@example.com or call 13800138000",
        "you 傻瓜, I will KILL   you",
        "ＩＤＩＯＴ",
        "hello there",
    ]
    got = client.safety.CheckInputBatch(
        pb.CheckInputBatchRequest(policy=source(INPUT_POLICY), texts=texts)
    ).verdicts
    redacted, threatened, wide, plain = got
    assert redacted.decision == MODIFY
    assert redacted.text == "write to [EMAIL] or call [PHONE]"
    assert [f.rule for f in redacted.firings] == ["pii", "spam-model"]
    assert [m.label for m in redacted.firings[0].matches] == ["email", "phone"]
    assert redacted.flagged  # the model thinks everything is spam: flagged, not blocked
    assert (threatened.decision, threatened.blocked_by) == (BLOCK, "insults")
    assert threatened.message == "please stay polite" and threatened.text == ""
    assert {m.label for m in threatened.firings[-1].matches} == {"傻瓜", "regex"}
    assert (wide.decision, wide.blocked_by) == (BLOCK, "insults")  # full-width, upper case
    assert (plain.decision, plain.text, plain.flagged) == (ALLOW, "hello there", True)
    one = client.safety.CheckInput(pb.CheckInputRequest(policy=source(INPUT_POLICY), text=texts[1]))
    assert one.verdict == threatened


def test_output_rules_run_by_priority_and_the_first_block_wins(client):
    texts = [
        "your card 4111 1111 1111 1111 shows a diagnosis",  # redacted first, then blocked
        "a refund? acme does that",  # replaced (priority 20) before the flag sees it
        "acme sells it too",
    ]
    blocked, replaced, flagged = client.safety.CheckOutputBatch(
        pb.CheckOutputBatchRequest(policy=source(OUTPUT_POLICY), texts=texts)
    ).verdicts
    assert (blocked.decision, blocked.blocked_by) == (BLOCK, "no-diagnosis")
    assert blocked.message == "medical advice is not given here"
    assert [f.rule for f in blocked.firings] == ["card-numbers", "no-diagnosis"]
    assert blocked.firings[0].action == common_pb2.RULE_ACTION_REDACT
    assert (replaced.decision, replaced.text) == (MODIFY, "Please contact support for refunds.")
    assert [f.rule for f in replaced.firings] == ["refund-script"]
    assert (flagged.decision, flagged.text, flagged.flagged) == (ALLOW, texts[2], True)

    valid = client.safety.ValidatePolicy(pb.ValidatePolicyRequest(policy=source(OUTPUT_POLICY)))
    order = [r.name for r in valid.policy.output_rules]
    assert order == ["card-numbers", "refund-script", "no-diagnosis", "competitor"]
    # The structured form of the same policy is the same policy.
    structured = common_pb2.PolicySource(policy=valid.policy)
    again = client.safety.ValidatePolicy(pb.ValidatePolicyRequest(policy=structured))
    assert again.sha256 == valid.sha256 and len(valid.sha256) == 64


def test_a_bad_policy_names_every_bad_rule_and_field(client):
    bad = """
output_rules:
  - name: ok
    match: {name: keywords, config: {words: [x]}}
  - name: typo
    match: {name: keywords, config: {words: [y]}}
    action: delete
  - name: replace-without-text
    match: {name: regex, config: {patterns: ['(']}}
    action: replace
  - match: {name: no_such_matcher}
input_filters:
  - filter: {name: classifier, config: {model_id: certain-spam, labels: [toxic]}}
"""
    with pytest.raises(InvalidArgument) as caught:
        client.safety.ValidatePolicy(pb.ValidatePolicyRequest(policy=source(bad)))
    fields = {v.field: v.description for v in caught.value.violations}
    assert "unknown action 'delete'" in fields["policy.output_rules[1].action"]
    assert "rule 'typo'" in fields["policy.output_rules[1].action"]
    assert "policy.output_rules[2].match.config.patterns" in fields
    assert "policy.output_rules[3].name" in fields
    assert "no_such_matcher" in fields["policy.output_rules[3].match.name"]
    assert "ham, spam" in fields["policy.input_filters[0].filter.config.labels"]
    with pytest.raises(InvalidArgument, match="policy.yaml: not valid YAML"):
        client.safety.CheckInput(pb.CheckInputRequest(policy=source("a: [b"), text="x"))
    with pytest.raises(InvalidArgument, match="policy: give a policy"):
        client.safety.CheckOutput(pb.CheckOutputRequest(text="x"))


def test_a_fairness_audit_reports_groups_and_fails_its_threshold(client, safety):
    # Group a is selected 3 times in 4, group b once in 4: a parity difference of 0.5.
    table = pa.table(
        {
            "text": [f"row {i}" for i in range(8)],
            "label": ["1", "1", "0", "0", "1", "0", "0", "0"],
            "decision": ["1", "1", "1", "0", "1", "0", "0", "0"],
            "group": ["a"] * 4 + ["b"] * 4,
        }
    )
    store = ArtifactStore(safety.settings.artifacts_dir)
    try:
        dataset = DatasetRepository(store).save(
            table, name="audit-rows", text_column="text", label_column="label", lineage=Lineage()
        )
    finally:
        store.close()
    op = client.safety.AuditFairness(
        pb.AuditFairnessRequest(
            dataset=common_pb2.DatasetInput(dataset_id=dataset.id),
            sensitive_columns=["group"],
            prediction_column="decision",
            thresholds=pb.FairnessThresholds(max_demographic_parity_difference=0.2),
        )
    )
    done = client.wait(op, pb.AuditFairnessResponse)
    m = done.metrics
    assert (m.count, m.accuracy) == (8, 7 / 8)
    assert m.demographic_parity_difference == pytest.approx(0.5)
    assert {g.group: g.selection_rate for g in m.groups} == {"a": 0.75, "b": 0.25}
    assert done.passed == 0 and not done.checks[0].passed
    entries = client.safety.ListAuditEntries(
        pb.ListAuditEntriesRequest(kind="fairness_audit")
    ).entries
    assert [e.sequence for e in entries] == [done.audit_sequence]
    assert json_format.MessageToDict(entries[0].event.details)["passed"] is False


def test_the_audit_log_chains_retries_pages_and_catches_tampering(client, safety):
    events = [
        pb.AuditEvent(id=f"evt-{i}", kind="promotion", subject=f"run-{i}", details=struct({"i": i}))
        for i in range(5)
    ]
    first = client.safety.AppendAuditEvents(pb.AppendAuditEventsRequest(events=events)).entries
    retried = client.safety.AppendAuditEvents(pb.AppendAuditEventsRequest(events=events[:2]))
    assert list(retried.entries) == list(first[:2])  # a retry is not appended twice
    assert all(b.previous_hash == a.hash for a, b in zip(first, first[1:], strict=False))
    page = client.safety.ListAuditEntries(pb.ListAuditEntriesRequest(kind="promotion", page_size=3))
    rest = client.safety.ListAuditEntries(
        pb.ListAuditEntriesRequest(kind="promotion", page_size=3, page_token=page.next_page_token)
    )
    assert [e.event.id for e in [*page.entries, *rest.entries]] == [e.id for e in events]
    assert not rest.next_page_token
    with pytest.raises(InvalidArgument, match=r"events\[0\].kind"):
        client.safety.AppendAuditEvents(
            pb.AppendAuditEventsRequest(events=[pb.AuditEvent(kind="Not A Kind!")])
        )

    env = {**os.environ, "FORGELINE_ADDRESSES": f'{{"safety": "{safety.address}"}}'}

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "forgeline", "audit", *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO,
            timeout=60,
        )

    head = client.safety.VerifyAuditLog(pb.VerifyAuditLogRequest())
    assert head.ok and head.head_sequence == first[-1].sequence
    shown = cli("show", "--kind", "promotion", "--limit", "2")
    assert shown.returncode == 0 and "run-4" in shown.stdout and "run-2" not in shown.stdout

    # Someone edits the third promotion's details in the database behind the service's back.
    db = sqlite3.connect(safety.settings.home / "services" / "safety" / "audit.db")
    with db:
        db.execute(
            "UPDATE entries SET details = ? WHERE sequence = ?",
            ('{"i":99}', first[2].sequence),
        )
    db.close()
    broken = client.safety.VerifyAuditLog(pb.VerifyAuditLogRequest())
    assert not broken.ok and broken.first_bad_sequence == first[2].sequence
    assert "edited" in broken.problem
    verify = cli("verify", "--expect", f"{head.head_sequence}:{head.head_hash}")
    assert verify.returncode == 1 and "TAMPERED" in verify.stdout, verify.stdout + verify.stderr


def test_every_model_a_service_commits_reaches_the_log(client, safety, tmp_path):
    home = tmp_path / "training-home"
    settings = make_settings(home, [home], addresses={"safety": safety.address})
    kernel = Kernel.open(settings, "training")
    try:
        with kernel.artifacts.staging_path() as staged:
            staged.mkdir()
            (staged / "model.safetensors").write_bytes(b"weights")
            model = kernel.artifacts.commit_dir(
                staged,
                kind="model",
                name="audited",
                metadata={"format": "hf"},
                lineage=Lineage(parent_ids=["ds_1"], producer="TrainModel", operation="op/1"),
                request_id="run-1/train",
            )
        kernel.artifacts.put_table(  # a dataset is not a model: not recorded
            pa.table({"text": ["a"]}), name="rows", metadata={}, lineage=Lineage()
        )
        kernel.audit.flush(timeout=10)  # the outbox's own thread may have sent it already
        assert kernel.audit.pending() == 0
    finally:
        kernel.close()
    (entry,) = client.safety.ListAuditEntries(
        pb.ListAuditEntriesRequest(kind="model", subject=model.id)
    ).entries
    recorded = json_format.MessageToDict(entry.event.details)
    assert entry.event.actor == "training" and recorded["request_id"] == "run-1/train"
    assert recorded["sha256"] == model.sha256 and recorded["lineage"]["parent_ids"] == ["ds_1"]
