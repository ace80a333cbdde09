"""Human review through the real training service (no Ray): two summarization baselines and a
tiny causal LM keep every output; ExportReviewSheet samples their documents into a blind CSV
sheet with its key in the artifact; the sheet, filled here with Python's csv as reviewers
would, comes back through IngestReviewSheet as the means written, unblinded through the key;
and bad requests and bad sheets are refused naming the field."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from forgeline.artifacts import Lineage
from forgeline.client import Client
from forgeline.errors import AlreadyExists, InvalidArgument, PermissionDenied
from forgeline.server import ServiceThread
from forgeline.v1 import common_pb2
from forgeline.v1 import training_service_pb2 as pb
from tests.conftest import REPO, make_settings
from tests.fixtures import Workspace, spec

DOCUMENTS = [
    "The appeal is dismissed. The trial court erred on costs. Costs follow the event.",
    "The tenant paid late. The landlord sued for the rent. The court found for him.",
    "A cat sat on the mat. It looked at the door. Then it slept all day.",
    "The petition is allowed. The order is quashed. The matter goes back to the board.",
    "The accused was convicted. The evidence was weak. The conviction is set aside.",
    "The contract was void. Neither side performed. No damages are due to anyone.",
]
SUMMARIES = [
    "Appeal dismissed with costs.",
    "Landlord wins the rent suit.",
    "A cat slept.",
    "Order quashed and remitted.",
    "Conviction set aside.",
    "Void contract, no damages.",
]
CRITERIA = ("faithfulness", "coverage", "fluency")
# What the reviewers give each system: (faithfulness, coverage, fluency); "" is left blank.
LEAD, RANK, LM = "lead-k-system", "textrank-system", "tiny-lm-system"
GIVEN = {LEAD: ("5", "4", "4"), RANK: ("3", "2", ""), LM: ("1", "1", "2")}


@pytest.fixture(scope="module")
def review(tmp_path_factory) -> Iterator[tuple[Workspace, Path, Client]]:
    """The training service in this process over a fresh home and data root (no Ray: the
    baselines and the evaluation run in the service process)."""
    home = tmp_path_factory.mktemp("review-home")
    root = tmp_path_factory.mktemp("review-data")
    service = ServiceThread("training", make_settings(home, [root])).start()
    try:
        with Client(service.address) as client:
            client.wait_ready()
            yield Workspace(home, service), root, client
    finally:
        service.stop()


def baseline(client: Client, dataset_id: str, name: str, eval_id: str = "") -> pb.Evaluation:
    op = client.training.TrainBaseline(
        pb.TrainBaselineRequest(
            train=common_pb2.DatasetInput(dataset_id=dataset_id, target_column="summary"),
            eval=common_pb2.DatasetInput(dataset_id=eval_id or dataset_id),
            baseline=spec(name, sentences=1),
        )
    )
    return client.wait(op, pb.TrainBaselineResponse, timeout=120).evaluation


def export(client: Client, systems: dict[str, str], **fields) -> pb.ExportReviewSheetResponse:
    op = client.training.ExportReviewSheet(
        pb.ExportReviewSheetRequest(
            systems=[pb.ReviewSystem(name=n, outputs_id=o) for n, o in systems.items()], **fields
        )
    )
    return client.wait(op, pb.ExportReviewSheetResponse, timeout=60)


def ingest(client: Client, sheet_id: str, *paths: str) -> pb.IngestReviewSheetResponse:
    op = client.training.IngestReviewSheet(
        pb.IngestReviewSheetRequest(sheet_id=sheet_id, sheet_paths=list(paths))
    )
    return client.wait(op, pb.IngestReviewSheetResponse, timeout=60)


def fill(sheet: bytes, key: dict, given: dict[str, tuple[str, ...]], path: Path) -> None:
    """The sheet filled as a reviewer would, each summary rated by the system the key says
    wrote it."""
    rows = list(csv.DictReader(io.StringIO(sheet.decode("utf-8-sig"), newline="")))
    with path.open("w", newline="", encoding="utf-8-sig") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            system = key["documents"][row["document"]][row["summary"]]
            writer.writerow({**row, **dict(zip(CRITERIA, given[system], strict=True))})


@pytest.fixture(scope="module")
def systems(review) -> dict[str, object]:
    """The eval dataset and three systems' evaluations of it: lead_k, textrank and a tiny
    random-init gpt2 generating (its outputs kept by EvaluateModel)."""
    import torch

    from forgeline.finetune.build import build_from_config

    workspace, root, client = review
    table = pa.table({"text": DOCUMENTS, "summary": SUMMARIES})
    dataset = workspace.dataset(table, "judgments", label="summary")
    torch.manual_seed(0)
    folder = build_from_config(
        "gpt2", {"n_layer": 1, "n_embd": 16, "n_head": 2, "n_positions": 64}, DOCUMENTS, 200,
        root / "gpt2",
    )  # fmt: skip
    staged = shutil.copytree(folder, workspace.home / "staging-lm")
    model = workspace.store.commit_dir(
        staged,
        kind="model",
        name="tiny-lm",
        metadata={"format": "hf", "task": "causal_lm", "max_length": 64},
        lineage=Lineage(),
    )
    op = client.training.EvaluateModel(
        pb.EvaluateModelRequest(
            model_id=model.id,
            dataset=common_pb2.DatasetInput(dataset_id=dataset.id),
            generation=pb.GenerationEvaluation(
                decoding=pb.DecodingOptions(max_new_tokens=4), reference_column="summary"
            ),
        )
    )
    lm = client.wait(op, pb.EvaluateModelResponse, timeout=300).evaluation
    return {
        "dataset": dataset,
        "model": model,
        LEAD: baseline(client, dataset.id, "lead_k"),
        RANK: baseline(client, dataset.id, "textrank"),
        LM: lm,
    }


def test_every_output_is_kept_with_its_lineage(review, systems):
    workspace = review[0]
    dataset = systems["dataset"]
    for name in (LEAD, LM):
        evaluation = systems[name]
        record = workspace.store.get(evaluation.outputs_id)
        kept = pq.read_table(record.path).to_pylist()
        assert [r["row"] for r in kept] == list(range(len(DOCUMENTS)))
        assert [r["source"] for r in kept] == DOCUMENTS  # the full text, not an excerpt
        assert [r["reference"] for r in kept] == SUMMARIES
        assert [s.output for s in evaluation.samples] == [r["output"] for r in kept][:3]
        assert dataset.id in record.lineage.parent_ids
        assert record.lineage.config["eval_dataset"] == dataset.id
        if name == LEAD:  # lead_k with one sentence: each document's first
            assert [r["output"] for r in kept] == [d.split(". ")[0] + "." for d in DOCUMENTS]
            assert record.lineage.producer.endswith("/TrainBaseline")
            assert record.lineage.config["system"] == "lead_k"
        else:
            assert record.lineage.producer.endswith("/EvaluateModel")
            assert systems["model"].id in record.lineage.parent_ids


def test_a_sheet_is_exported_filled_and_ingested_per_system(review, systems):
    workspace, root, client = review
    outputs = {name: systems[name].outputs_id for name in GIVEN}
    (root / "sheets").mkdir()
    done = export(client, outputs, num_documents=4, seed=3, output_path="sheets/review.csv")
    assert done.num_documents == 4 and done.rows == 12
    assert done.sheet.metadata["format"] == "review_sheet"
    assert set(done.sheet.lineage.parent_ids) == set(outputs.values())
    folder = workspace.store.get(done.sheet.id).path
    sheet = (folder / "sheet.csv").read_bytes()
    key = json.loads((folder / "key.json").read_text())
    assert (root / "sheets" / "review.csv").read_bytes() == sheet  # the reviewers' copy
    assert not any(name.encode() in sheet for name in outputs)  # blind: the key names them
    assert len(key["documents"]) == 4

    fill(sheet, key, GIVEN, root / "sheets" / "filled.csv")
    result = ingest(client, done.sheet.id, "sheets/filled.csv")
    assert set(result.systems) == set(GIVEN)
    for name, given in GIVEN.items():
        got = result.systems[name]
        rated = {c: float(v) for c, v in zip(CRITERIA, given, strict=True) if v}
        assert dict(got.mean) == pytest.approx(rated)
        assert dict(got.count) == {c: 4 for c in rated}
        assert got.overall_mean == pytest.approx(sum(rated.values()) / len(rated))
        assert got.rated_rows == 4
        assert got.unrated_cells == 4 * (3 - len(rated))
    assert result.rated_rows == 12 and result.unrated_cells == 4
    assert list(result.raters) == ["sheet 1"] and not result.agreement

    # A second rater's copy: agreement per criterion, item by item.
    other = {**GIVEN, LM: ("2", "1", "2")}
    fill(sheet, key, other, root / "sheets" / "second.csv")
    both = ingest(client, done.sheet.id, "sheets/filled.csv", "sheets/second.csv")
    assert list(both.raters) == ["sheet 1", "sheet 2"]
    agreement = {a.criterion: a for a in both.agreement}
    assert agreement["faithfulness"].pairs == 12
    assert agreement["faithfulness"].exact == pytest.approx(8 / 12)
    assert agreement["faithfulness"].within_one == 1.0
    assert agreement["coverage"].exact == 1.0
    assert both.systems[LM].mean["faithfulness"] == pytest.approx(1.5)

    # The copy is never overwritten.
    with pytest.raises(AlreadyExists) as caught:
        export(client, outputs, output_path="sheets/review.csv")
    assert caught.value.metadata["field"] == "output_path"


def field_of(call, *args, **fields) -> tuple[str, str]:
    with pytest.raises(InvalidArgument) as caught:
        call(*args, **fields)
    violation = caught.value.violations[0]
    return violation.field, violation.description


def test_bad_exports_and_sheets_are_refused_naming_the_field(review, systems):
    workspace, root, client = review
    lead, rank = systems[LEAD].outputs_id, systems[RANK].outputs_id
    dataset = systems["dataset"]
    # Not an outputs dataset; outputs of other rows; a criterion that is a sheet column.
    field, problem = field_of(export, client, {LEAD: lead, "data": dataset.id})
    assert field == "systems[1].outputs_id" and "lacks columns" in problem
    fewer = workspace.dataset(
        pa.table({"text": DOCUMENTS[:3], "summary": SUMMARIES[:3]}), "judgments-3", "summary"
    )
    short = baseline(client, dataset.id, "lead_k", eval_id=fewer.id)
    field, problem = field_of(export, client, {LEAD: lead, "short": short.outputs_id})
    assert field == "systems[1].outputs_id" and "other rows" in problem
    field, _ = field_of(export, client, {LEAD: lead, RANK: rank}, criteria=["comment"])
    assert field == "criteria[0]"
    # The reviewers' copy stays a new .csv inside the data roots.
    for path in ("../escape.csv", "notes.txt"):
        field, _ = field_of(export, client, {LEAD: lead}, output_path=path)
        assert field == "output_path"
    with pytest.raises(PermissionDenied) as caught:
        export(client, {LEAD: lead}, output_path=str(workspace.home / "in-home.csv"))
    assert caught.value.metadata["field"] == "output_path"

    done = export(client, {LEAD: lead, RANK: rank}, num_documents=2, seed=1)
    folder = workspace.store.get(done.sheet.id).path
    sheet = (folder / "sheet.csv").read_bytes()
    key = json.loads((folder / "key.json").read_text())
    fill(sheet, key, {LEAD: ("5", "7", "4"), RANK: ("3", "3", "3")}, root / "bad.csv")
    field, problem = field_of(ingest, client, done.sheet.id, "bad.csv")
    assert field == "sheet_paths[0]"
    assert "column 'coverage': '7' is not a rating" in problem and problem.startswith("row ")

    # A filled sheet of another export (another seed) against this sheet's key.
    other = export(client, {LEAD: lead, RANK: rank}, num_documents=2, seed=2)
    other_folder = workspace.store.get(other.sheet.id).path
    other_key = json.loads((other_folder / "key.json").read_text())
    good = {LEAD: ("4", "4", "4"), RANK: ("4", "4", "4")}
    fill((other_folder / "sheet.csv").read_bytes(), other_key, good, root / "other.csv")
    field, problem = field_of(ingest, client, done.sheet.id, "other.csv")
    assert field == "sheet_paths[0]" and "column 'sheet'" in problem
    assert "another export" in problem
    # Something that is not a review sheet; a sheet outside the data roots.
    field, _ = field_of(ingest, client, systems["model"].id, "other.csv")
    assert field == "sheet_id"
    with pytest.raises(PermissionDenied) as caught:
        ingest(client, done.sheet.id, "/etc/passwd")
    assert caught.value.metadata["field"] == "sheet_paths[0]"


def forgeline(address: str, *args: str) -> dict:
    """A `forgeline` command against the service, its --json answer parsed."""
    env = {**os.environ, "FORGELINE_ADDRESSES": json.dumps({"training": address})}
    done = subprocess.run(
        [sys.executable, "-m", "forgeline", *args, "--json"],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_review_export_and_ingest_from_the_command_line(review, systems):
    workspace, root, client = review
    address = workspace.service.address
    pairs = [f"{name}={systems[name].outputs_id}" for name in (LEAD, RANK)]
    exported = forgeline(
        address, "train", "review", "export", *pairs, "--documents", "3", "--seed", "5",
        "--criterion", "faithfulness", "--no-blind", "--output", "cli.csv",
    )  # fmt: skip
    assert exported["numDocuments"] == 3 and exported["rows"] == 6
    sheet = (root / "cli.csv").read_bytes()
    rows = list(csv.DictReader(io.StringIO(sheet.decode("utf-8-sig"), newline="")))
    assert {row["system"] for row in rows} == {LEAD, RANK}  # not blind: named in the sheet
    with (root / "cli-filled.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({**r, "faithfulness": "5" if r["system"] == LEAD else "2"} for r in rows)
    ingested = forgeline(
        address, "train", "review", "ingest", exported["sheet"]["id"], "cli-filled.csv"
    )
    means = {name: s["mean"]["faithfulness"] for name, s in ingested["systems"].items()}
    assert means == {LEAD: 5.0, RANK: 2.0}
