"""The run report of a generative pipeline: a score table with one row per system (the best of
each metric marked, rows scored on other rows noted), documents with every system's output side
by side joined by row, each system's generation settings, all escaped; a classifier run's report
keeps its shape."""

from __future__ import annotations

import html
import json
import re
import textwrap

from google.protobuf import json_format

from forgeline.gateway import report
from forgeline.gateway.remote import to_dict
from forgeline.gateway.report.sections.generation import CLIP, DOCUMENTS_SHOWN
from forgeline.v1 import common_pb2, data_service_pb2
from forgeline.v1 import pipeline_service_pb2 as pb
from forgeline.v1 import training_service_pb2 as tpb
from tests.report_pages import Tables, section_html

PIPELINE = textwrap.dedent(
    """
    apiVersion: forgeline/v1
    kind: Pipeline
    metadata: {name: legal}
    steps:
      - name: split
        call: data.SplitDataset
        with: {dataset_id: ds_all}
      - name: import
        call: training.ImportModel
        with: {source_path: smollm2.gguf}
      - name: lead
        call: training.TrainBaseline
        with:
          train: {dataset_id: "${{ steps.split.train.artifact.id }}"}
          eval: {dataset_id: "${{ steps.split.test.artifact.id }}"}
          baseline: {name: lead_k, config: {sentences: 3}}
      - name: textrank
        call: training.TrainBaseline
        with:
          train: {dataset_id: "${{ steps.split.train.artifact.id }}"}
          eval: {dataset_id: "${{ steps.split.test.artifact.id }}"}
          baseline: {name: textrank}
      - name: zero-shot
        call: training.EvaluateModel
        with:
          model_id: ${{ steps.import.model.id }}
          dataset: {dataset_id: "${{ steps.split.test.artifact.id }}"}
          generation: {metrics: [{name: rouge}, {name: bleu}]}
      - name: sft-eval
        call: training.EvaluateModel
        with:
          model_id: mdl_sft
          dataset: {dataset_id: "${{ steps.split.test.artifact.id }}"}
          generation: {max_examples: 2, seed: 7}
    """
)

SCRIPT = "<script>alert(1)</script>"


def source(row: int) -> str:
    return f"Judgment {row}: the appellant & the respondent <argued>."


def reference(row: int) -> str:
    return f"Summary {row}."


def samples(outputs: dict[int, str]) -> list[tpb.GenerationSample]:
    return [
        tpb.GenerationSample(
            row=row, source_excerpt=source(row), reference=reference(row), output=output
        )
        for row, output in outputs.items()
    ]


def evaluation(
    num_examples: int, metrics: dict[str, float], settings: dict, outputs: dict[int, str]
) -> tpb.Evaluation:
    out = tpb.Evaluation(num_examples=num_examples, metrics=metrics, samples=samples(outputs))
    out.generation_settings.update(settings)
    return out


def model_settings(decoding: dict, metrics: list[str], **extra) -> dict:
    """Settings as an EvaluateModel with generation reports them (GenerationPlan.settings())."""
    return {
        "decoding": {
            "strategy": "greedy",
            "num_beams": 4,
            "temperature": 1.0,
            "top_p": 1.0,
            "top_k": 0,
            "seed": 0,
            "max_new_tokens": 64,
            "repetition_penalty": 1.0,
            "stop": [],
            **decoding,
        },
        "metrics": [{"name": m, "config": {}} for m in metrics],
        "reference_column": "summary",
        "long_inputs": {"name": "extract", "config": {"method": "textrank"}},
        "input_token_budget": 2048,
        "max_examples": 0,
        "seed": 0,
        "chat_template": True,
        "seconds": 12.5,
        **extra,
    }


def baseline_settings(name: str, config: dict) -> dict:
    return {
        "baseline": name,
        "config": config,
        "metrics": [{"name": "rouge", "config": {"tokenize": "auto"}}],
        "reference_column": "summary",
    }


def step(name: str, call: str, response) -> pb.StepRun:
    out = pb.StepRun(name=name, call=call, state=pb.STEP_STATE_SUCCEEDED)
    json_format.ParseDict(to_dict(response), out.response)  # as the gateway stores it
    return out


def artifact(id_: str) -> common_pb2.Artifact:
    return common_pb2.Artifact(id=id_, uri=f"file:///tmp/{id_}", sha256="ab" * 32)


ROUGE = {"rouge_rouge1": 0.40, "rouge_rouge2": 0.18, "rouge_rougeL": 0.30}


def run(long_output: str = "", outputs_id: str = "", sft_rows=(1, 57)) -> pb.PipelineRun:
    """lead_k, textrank and a zero-shot model on the 100 test rows; a fine-tuned model on a
    random 2 of them (its numbers do not compare)."""
    out = pb.PipelineRun(
        name="operations/g1",
        pipeline="legal",
        state=common_pb2.OPERATION_STATE_SUCCEEDED,
        pipeline_yaml=PIPELINE,
    )
    split = data_service_pb2.SplitDatasetResponse(
        train=data_service_pb2.Dataset(artifact=artifact("ds_train")),
        test=data_service_pb2.Dataset(artifact=artifact("ds_test")),
    )
    imported = tpb.ImportModelResponse(model=artifact("mdl_smol"))
    lead = tpb.TrainBaselineResponse(
        evaluation=evaluation(
            100,
            ROUGE,
            baseline_settings("lead_k", {"sentences": 3}),
            {0: "Lead 0.", 1: "Lead 1.", 2: "Lead 2."},
        )
    )
    textrank = tpb.TrainBaselineResponse(
        evaluation=evaluation(
            100,
            {"rouge_rouge1": 0.42, "rouge_rouge2": 0.15, "rouge_rougeL": 0.30},
            baseline_settings("textrank", {}),
            {0: "Rank 0.", 1: "Rank 1.", 2: long_output or "Rank 2."},
        )
    )
    zero_shot = tpb.EvaluateModelResponse(
        evaluation=evaluation(
            100,
            {"rouge_rouge1": 0.20, "rouge_rouge2": 0.05, "rouge_rougeL": 0.12, "bleu_bleu": 0.03},
            model_settings({"stop": ["\n\n"]}, ["rouge", "bleu"]),
            {0: SCRIPT, 1: "", 2: "Zero 2."},
        )
    )
    sft = tpb.EvaluateModelResponse(
        evaluation=evaluation(
            2,
            {"rouge_rouge1": 0.55, "rouge_rouge2": 0.30, "rouge_rougeL": 0.45},
            model_settings(
                {"strategy": "beam", "num_beams": 6, "max_new_tokens": 32},
                ["rouge"],
                max_examples=2,
                seed=7,
            ),
            {row: f"Tuned {row}." for row in sft_rows},
        )
    )
    out.steps.extend(
        [
            step("split", "data.SplitDataset", split),
            step("import", "training.ImportModel", imported),
            step("lead", "training.TrainBaseline", lead),
            step("textrank", "training.TrainBaseline", textrank),
            step("zero-shot", "training.EvaluateModel", zero_shot),
            step("sft-eval", "training.EvaluateModel", sft),
        ]
    )
    if outputs_id:  # Evaluation.outputs_id, set on the stored JSON: no dependence on the proto
        stored = json_format.MessageToDict(out.steps[4].response)
        stored["evaluation"]["outputs_id"] = outputs_id
        out.steps[4].response.Clear()
        json_format.ParseDict(stored, out.steps[4].response)
    return out


def test_the_scores_table_has_a_row_per_system_the_best_marked_and_the_subset_noted():
    page = report.render(report.document(run(), []))
    scores = section_html(page, "Generation scores")
    (table,) = Tables(scores).tables
    header, *rows = table
    metrics = ["rouge_rouge1", "rouge_rouge2", "rouge_rougeL", "bleu_bleu"]
    assert header == ["system", "what", *metrics, "examples", "split", "comparable?"]
    by_system = {row[0]: row for row in rows}
    # Every system names the split it was scored on (the pipeline's reference to it, resolved).
    assert {row[-2] for row in rows} == {"ds_test (test split)"}
    assert list(by_system) == ["lead", "textrank", "zero-shot", "sft-eval"]
    assert by_system["lead"][1] == "baseline lead_k"
    assert by_system["textrank"][1] == "baseline textrank"
    # A model's id is read from its step's request, a reference resolved from that step.
    assert by_system["zero-shot"][1] == "model mdl_smol (step import)"
    assert by_system["sft-eval"][1] == "model mdl_sft"
    # Best of each column among lead, textrank and zero-shot (same 100 rows of ds_test); ties
    # are both marked; the fine-tuned model's higher numbers are on 2 other rows: never best.
    assert by_system["lead"][2:7] == ["0.4", "0.18 ★", "0.3 ★", "–", "100"]
    assert by_system["textrank"][2:7] == ["0.42 ★", "0.15", "0.3 ★", "–", "100"]
    assert by_system["zero-shot"][2:7] == ["0.2", "0.05", "0.12", "0.03", "100"]
    assert by_system["sft-eval"][2:7] == ["0.55", "0.3", "0.45", "–", "2"]
    assert scores.count("★</strong>") == 4
    for name in ("lead", "textrank", "zero-shot"):
        assert by_system[name][-1] == "yes"
    note = by_system["sft-eval"][-1]
    assert note.startswith("not comparable")
    assert "2 rows (a random subset, seed 7) of ds_test" in note
    assert "the others on 100 rows of ds_test" in note
    # Their zero accuracy and empty confusion matrix are not a classifier's scores.
    assert "accuracy" not in page.split("Generation scores")[0]


def test_the_json_twin_compares_the_systems_and_a_page_without_it_is_the_same():
    doc = report.document(run(outputs_id="ds_outputs"), [])
    generation = json.loads(json.dumps(doc))["generation"]  # plain JSON
    assert generation["metrics"] == ["rouge_rouge1", "rouge_rouge2", "rouge_rougeL", "bleu_bleu"]
    systems = {s["system"]: s for s in generation["systems"]}
    assert systems["textrank"]["best"] == ["rouge_rouge1", "rouge_rougeL"]
    assert systems["lead"]["best"] == ["rouge_rouge2", "rouge_rougeL"]
    assert systems["zero-shot"]["best"] == []  # the only one with BLEU: nothing to beat
    assert systems["zero-shot"]["outputs_id"] == "ds_outputs"
    assert systems["sft-eval"]["subset_seed"] == 7 and systems["sft-eval"]["note"]
    assert {s["dataset"] for s in systems.values()} == {"ds_test"}
    page = report.render(doc)
    # The page is drawn from the steps' responses: a report written before the comparison
    # existed draws the same page.
    assert report.render({k: v for k, v in doc.items() if k != "generation"}) == page
    (scores,) = Tables(section_html(page, "Generation scores")).tables
    assert scores[0][7] == "all outputs"
    assert [row[7] for row in scores[1:]] == ["", "", "ds_outputs", ""]


def test_documents_are_joined_by_row_across_systems():
    doc = report.document(run(), [])
    page = report.render(doc)
    documents = section_html(page, "Documents side by side")
    rows = [int(r.replace(",", "")) for r in re.findall(r"<h3>Row ([\d,]+)</h3>", documents)]
    # Row 1 was sampled by all four systems; rows 0 and 2 by three; row 57 by the subset only.
    assert rows == [1, 0, 2, 57][:DOCUMENTS_SHOWN]
    tables = Tables(documents).tables
    assert tables[0] == [
        ["reference", "lead", "textrank", "zero-shot", "sft-eval"],
        ["Summary 1.", "Lead 1.", "Rank 1.", "(empty)", "Tuned 1."],
    ]
    assert tables[1][0] == ["reference", "lead", "textrank", "zero-shot"]
    assert tables[1][1][:3] == ["Summary 0.", "Lead 0.", "Rank 0."]
    assert tables[3] == [["reference", "sft-eval"], ["Summary 57.", "Tuned 57."]]
    # Each document's source excerpt, escaped.
    assert documents.count(html.escape(source(1))) == 1
    assert [len(d["outputs"]) for d in doc["generation"]["documents"]] == [4, 3, 3, 1]
    assert "The 4 documents the systems sampled" in documents


def test_a_few_documents_are_shown_and_every_one_is_in_the_json_twin():
    doc = report.document(run(sft_rows=range(50, 60)), [])
    assert len(doc["generation"]["documents"]) == 13
    documents = section_html(report.render(doc), "Documents side by side")
    shown = re.findall(r"<h3>Row ([\d,]+)</h3>", documents)
    assert shown == ["0", "1", "2", "50", "51"][:DOCUMENTS_SHOWN]
    assert f"{DOCUMENTS_SHOWN} of the 13 documents" in documents


def test_model_text_is_escaped_and_a_long_output_is_clipped_with_its_full_text_kept():
    long_output = "word " * 400 + "END"
    page = report.render(report.document(run(long_output=long_output), []))
    assert "<script>" not in page
    assert html.escape(SCRIPT) in section_html(page, "Documents side by side")
    assert "<argued>" not in page and "&lt;argued&gt;" in page
    documents = section_html(page, "Documents side by side")
    clipped = html.escape(long_output[:CLIP].rstrip()) + " …</div>"
    assert clipped in documents
    assert f"<summary>full text ({len(long_output):,} characters)</summary>" in documents
    assert documents.count("END") == 1  # only inside the <details>
    details = re.search(r"<details>.*?</details>", documents, re.S)[0]
    assert "END" in details


def test_each_system_s_generation_settings_are_shown_compactly():
    page = report.render(report.document(run(), []))
    (table,) = Tables(section_html(page, "Generation settings")).tables
    header, *rows = table
    assert header == [
        *("system", "what", "decoding", "metrics", "reference column", "long inputs"),
        *("input tokens", "rows", "other"),
    ]
    by_system = {row[0]: dict(zip(header, row, strict=True)) for row in rows}
    assert by_system["lead"]["what"] == "baseline lead_k (sentences 3)"
    assert by_system["lead"]["decoding"] == "" and by_system["lead"]["rows"] == "100"
    assert by_system["lead"]["metrics"] == "rouge (tokenize auto)"
    zero = by_system["zero-shot"]
    # Greedy with the defaults but a stop string: only what matters is written.
    assert zero["decoding"] == 'greedy, max_new_tokens 64, stop ["\\n\\n"]'
    assert zero["metrics"] == "rouge, bleu"
    assert zero["long inputs"] == "extract (method textrank)"
    assert zero["input tokens"] == "2,048" and zero["reference column"] == "summary"
    assert zero["other"] == "chat_template yes, seconds 12.5"
    sft = by_system["sft-eval"]
    assert sft["decoding"] == "beam, max_new_tokens 32, num_beams 6"
    assert sft["rows"] == "2, a random subset (seed 7)"


def test_a_pipeline_the_report_cannot_read_still_compares_by_row_count():
    broken = run()
    broken.pipeline_yaml = "not: [a pipeline"
    doc = report.document(broken, [])
    systems = {s["system"]: s for s in doc["generation"]["systems"]}
    assert systems["zero-shot"]["source"] == "model" and systems["zero-shot"]["dataset"] == ""
    assert systems["sft-eval"]["note"].startswith("scored on 2 rows")
    assert "Generation scores" in report.render(doc)


def test_a_classifier_run_has_no_generation_part():
    out = pb.PipelineRun(name="operations/c1", pipeline="sentiment", pipeline_yaml=PIPELINE)
    evaluation = tpb.Evaluation(
        num_examples=10,
        accuracy=0.7,
        f1_macro=0.69,
        confusion_matrix=tpb.ConfusionMatrix(labels=["neg", "pos"], counts=[4, 1, 2, 3]),
    )
    out.steps.append(
        step("evaluate", "training.EvaluateModel", tpb.EvaluateModelResponse(evaluation=evaluation))
    )
    doc = report.document(out, [])
    assert "generation" not in doc
    assert report.section_generation(doc) == ""
    page = report.render(doc)
    assert "Confusion matrix — evaluate" in page
    assert "Generation" not in page and "side by side" not in page
