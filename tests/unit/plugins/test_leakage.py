"""dedup_against: rows of one dataset found in another (exactly or nearly), dropped or reported,
with numbers a pipeline gate can check; the data service hands the other dataset over."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from pydantic import ValidationError

from forgeline.client import Client
from forgeline.contracts.cleaners import CleanContext, ReferencedDataset
from forgeline.convert import struct
from forgeline.errors import FailedPrecondition, InvalidArgument, NotFound
from forgeline.plugins.cleaners.leakage import DedupAgainst
from forgeline.v1 import common_pb2
from forgeline.v1 import data_service_pb2 as pb
from tests.conftest import shared_data

TRAIN = pa.table(
    {
        "text": [
            "The battery lasts all day and charges fast.",
            "Terrible sound quality, returned it the next day.",
            "Great value for the price, would buy again.",
            "The screen cracked after one week of normal use.",
        ],
        "label": pa.array([1, 0, 1, 0], type=pa.int64()),
    }
)
TEST = pa.table(
    {
        "text": [
            "the battery lasts all day   and charges FAST.",  # same after normalization
            "Great value for the price, would buy again!",  # near (jaccard 0.95)
            "Terrible sound quality, returned it the next day.",  # same, other label
            "Shipping took three weeks and the box was open.",  # new
            None,
        ],
        "label": pa.array([1, 1, 1, 0, 0], type=pa.int64()),
    }
)


def ctx(other: pa.Table = TRAIN, label_column: str = "label") -> CleanContext:
    reference = ReferencedDataset("ds_train", other, "text", "label")
    return CleanContext("text", label_column, datasets={"train": reference})


def against(**config) -> DedupAgainst:
    return DedupAgainst(DedupAgainst.Config(against="train", **config))


def test_exact_and_near_matches_are_dropped_and_counted():
    result = against().clean(TEST, ctx())
    assert result.table.column("text").to_pylist() == [
        "Shipping took three weeks and the box was open.",
        None,
    ]
    assert result.details == {
        "against": "ds_train",
        "leaked_rows": 3,
        "leaked_fraction": pytest.approx(0.6),
        "exact_matches": 2,
        "near_matches": 1,
        "conflicting_labels": 1,
        "rows_dropped": 3,
    }
    # the conflicting row comes first: it teaches the model both answers
    text, reason = result.examples[0]
    assert text.startswith("Terrible sound")
    assert reason == "same text as row 1 of ds_train, labelled 0 there and 1 here"
    assert any("near-duplicate of row 2 of ds_train (jaccard≈" in r for _, r in result.examples)


def test_report_keeps_every_row_and_exact_only_skips_near_matches():
    reported = against(action="report").clean(TEST, ctx())
    assert reported.table.equals(TEST)
    assert reported.details["leaked_rows"] == 3 and reported.details["rows_dropped"] == 0
    exact = against(near=False).clean(TEST, ctx())
    assert exact.details["leaked_rows"] == 2 and exact.details["near_matches"] == 0
    assert exact.table.num_rows == 3


def test_labels_are_compared_as_text_and_skipped_without_a_label():
    as_text = TRAIN.set_column(1, "label", pa.array(["1", "0", "1", "0"]))
    assert against().clean(TEST, ctx(as_text)).details["conflicting_labels"] == 1
    assert against().clean(TEST, ctx(label_column="")).details["conflicting_labels"] == 0


def test_nothing_leaks_from_an_unrelated_or_empty_dataset():
    unrelated = pa.table({"text": ["完全不同的句子", "another thing entirely"], "label": [0, 1]})
    result = against().clean(TEST, ctx(unrelated))
    assert result.table.equals(TEST)
    assert result.details["leaked_rows"] == 0 and result.details["leaked_fraction"] == 0.0
    empty = against().clean(TEST.slice(0, 0), ctx())
    assert empty.table.num_rows == 0 and empty.details["leaked_fraction"] == 0.0
    assert against().clean(TEST, ctx(TRAIN.slice(0, 0))).details["leaked_rows"] == 0


def test_the_other_dataset_must_be_handed_over_and_hold_text():
    with pytest.raises(FailedPrecondition, match="config.against"):
        against().clean(TEST, CleanContext("text", "label"))
    no_text = ReferencedDataset("ds_x", pa.table({"n": [1]}), "", "")
    with pytest.raises(InvalidArgument) as error:
        against().clean(TEST, CleanContext("text", "label", datasets={"train": no_text}))
    assert error.value.violations[0].field == "config.against"
    assert against().references() == {"against": "train"}
    with pytest.raises(ValidationError):
        DedupAgainst.Config(against="")


def test_a_random_split_of_the_sms_spam_collection_leaks():
    """The SMS Spam Collection repeats messages: split at random, test rows are in training."""
    path = shared_data("noise/SMSSpamCollection")
    pairs = [line.split("\t", 1) for line in path.read_text(encoding="utf-8").splitlines()]
    table = pa.table({"text": [p[1] for p in pairs], "label": [p[0] for p in pairs]})
    order = np.random.default_rng(0).permutation(table.num_rows)
    cut = int(0.8 * table.num_rows)
    train, test = table.take(np.sort(order[:cut])), table.take(np.sort(order[cut:]))
    result = against().clean(test, ctx(train))
    assert result.details["exact_matches"] == 137  # of 1,115 test messages
    assert result.details["leaked_rows"] > result.details["exact_matches"]
    kept = set(result.table.column("text").to_pylist())
    assert not kept & set(train.column("text").to_pylist())


# --- through the data service ----------------------------------------------------------------


def _ingest(client: Client, path: Path) -> pb.Dataset:
    op = client.data.IngestDataset(pb.IngestDatasetRequest(source=str(path)))
    return client.wait(op, pb.IngestDatasetResponse).dataset


def _write(table: pa.Table, path: Path) -> Path:
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


def test_the_data_service_hands_the_referenced_dataset_over(client, data_root):
    train = _ingest(client, _write(TRAIN, data_root / "leakage" / "presplit-train.parquet"))
    test = _ingest(client, _write(TEST, data_root / "leakage" / "presplit-test.parquet"))
    config = struct({"against": train.name, "action": "drop"})
    request = pb.CleanDatasetRequest(
        dataset_id=test.artifact.id,
        cleaners=[
            common_pb2.PluginSpec(name="dedup_against", config=config),
            common_pb2.PluginSpec(name="dedup_exact"),
        ],
    )
    done = client.wait(client.data.CleanDataset(request), pb.CleanDatasetResponse)
    assert done.dataset.num_rows == 2
    step = done.steps[0]
    assert (step.rows_in, step.rows_out) == (5, 2)
    assert step.details["against"] == train.artifact.id  # the name resolved to its version
    assert done.metrics["dedup_against_leaked_rows"] == 3
    assert done.metrics["dedup_against_leaked_fraction"] == pytest.approx(0.6)
    assert done.metrics["dedup_against_conflicting_labels"] == 1
    assert done.metrics["dedup_exact_duplicates"] == 0


def test_a_missing_reference_is_refused_before_the_operation_starts(client, data_root):
    test = _ingest(client, _write(TEST, data_root / "leakage" / "refused-test.parquet"))
    request = pb.CleanDatasetRequest(
        dataset_id=test.artifact.id,
        cleaners=[
            common_pb2.PluginSpec(name="dedup_exact"),
            common_pb2.PluginSpec(name="dedup_against", config=struct({"against": "no-such"})),
        ],
    )
    with pytest.raises(NotFound) as error:
        client.data.CleanDataset(request)
    assert "cleaners[1].config.against" in error.value.message
