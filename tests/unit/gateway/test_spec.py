"""Pipeline files: what parse() accepts, and every problem it reports at once, by field."""

from __future__ import annotations

import textwrap

import pytest

from forgeline.gateway.spec import (
    Gate,
    PipelineInvalid,
    did_you_mean,
    load_document,
    lookup,
    parse,
    resolve,
)

GOOD = textwrap.dedent(
    """
    apiVersion: forgeline/v1
    kind: Pipeline
    metadata: {name: quickstart, description: reviews to a model}
    steps:
      - name: ingest
        call: data.IngestDataset
        with: {source: reviews.csv}
      - name: clean
        call: data.CleanDataset
        with:
          dataset_id: ${{ steps.ingest.dataset.artifact.id }}
          cleaners: [{name: dedup_exact}]
      - name: profile
        call: data.ProfileDataset
        with: {dataset_id: "${{ steps.ingest.dataset.artifact.id }}"}
      - name: train
        call: training.TrainModel
        after: [profile]
        cache: false
        with:
          train: {dataset_id: "${{ steps.clean.dataset.artifact.id }}"}
          output_name: "model-of-${{ steps.clean.dataset.name }}"
        gates: ["evaluation.accuracy >= 0.8", "steps < 1e6"]
    """
)


def problems(text: str, overrides=None) -> dict[str, str]:
    with pytest.raises(PipelineInvalid) as caught:
        parse(text, overrides)
    return {p.field: p.description for p in caught.value.problems}


def test_a_good_pipeline_parses_into_a_dag():
    pipeline = parse(GOOD)
    assert pipeline.name == "quickstart"
    train = pipeline.step("train")
    assert (train.service, train.method, train.cache) == ("training", "TrainModel", False)
    assert train.depends_on == ["clean", "profile"]
    assert [g.metric for g in train.gates] == ["evaluation.accuracy", "steps"]
    assert [r.whole for r in train.references] == [True, False]
    order = [s.name for s in pipeline.order()]
    assert order.index("ingest") < order.index("clean") < order.index("train")
    assert order.index("profile") < order.index("train")


def test_overrides_are_applied_before_validation():
    pipeline = parse(GOOD, ["train.with.hyper_parameters.epochs=3", "train.cache=true"])
    assert pipeline.step("train").request["hyper_parameters"] == {"epochs": 3}
    assert pipeline.step("train").cache is True
    found = problems(GOOD, ["nosuch.with.x=1", "train"])
    assert "no step 'nosuch'" in found["overrides[0]"]
    assert "STEP.PATH=VALUE" in found["overrides[1]"]


def test_every_problem_is_reported_at_once_with_its_field():
    bad = textwrap.dedent(
        """
        apiVersion: forgeline/v2
        kind: Pipeline
        metadata: {name: Bad Name}
        steps:
          - name: a
            call: data.clean
            with: {x: "${{ steps.nowhere.dataset.id }}"}
          - name: b
            call: training.TrainModel
            gates: ["accuracy >> 0.9"]
            cache: sometimes
            retries: 3
          - name: c
            call: training.TrainModel
            after: [zzz]
            with: {x: "${{ steps.c.model.id }}", y: "${{ steps.b }}"}
        """
    )
    found = problems(bad)
    assert "forgeline/v1" in found["apiVersion"]
    assert "metadata.name" in found
    assert "SERVICE.Method" in found["steps.a.call"]
    assert "no step 'nowhere'" in found["steps.a.with.x"]
    assert "METRIC OP NUMBER" in found["steps.b.gates[0]"]
    assert "true or false" in found["steps.b.cache"]
    assert "retries" in found["steps.b.retries"]
    assert "own outputs" in found["steps.c.with.x"]
    assert "references" in found["steps.c.with.y"]
    assert "zzz" in found["steps.c.after[0]"]


def test_a_cycle_is_named_step_by_step():
    text = textwrap.dedent(
        """
        apiVersion: forgeline/v1
        kind: Pipeline
        metadata: {name: loop}
        steps:
          - {name: a, call: data.CleanDataset, with: {dataset_id: "${{ steps.c.dataset.id }}"}}
          - {name: b, call: data.CleanDataset, with: {dataset_id: "${{ steps.a.dataset.id }}"}}
          - {name: c, call: data.CleanDataset, after: [b]}
        """
    )
    assert problems(text)["steps"] == "the steps form a cycle: a -> c -> b -> a"


def test_duplicate_keys_and_steps_are_refused():
    assert "twice" in problems("apiVersion: a\napiVersion: b\n")["pipeline_yaml"]
    text = GOOD + "  - {name: clean, call: data.CleanDataset}\n"
    assert "appears twice" in problems(text)["steps[4].name"]


def test_gates_say_by_how_much_they_missed():
    gate = Gate.parse("evaluation.accuracy >= 0.9")
    assert gate.passes(0.9) and not gate.passes(0.871)
    assert gate.verdict(0.871) == "evaluation.accuracy = 0.871, 0.029 below the gate >= 0.9"
    assert Gate.parse("size_ratio <= 3e-1").threshold == pytest.approx(0.3)


def test_references_resolve_by_snake_or_camel_case_and_keep_types():
    outputs = {"split": {"train": {"artifact": {"id": "ds_1"}, "numRows": 80}, "parts": [1, 2]}}
    request = {
        "train": {"dataset_id": "${{ steps.split.train.artifact.id }}"},
        "rows": "${{ steps.split.train.num_rows }}",
        "name": "m-${{ steps.split.train.artifact.id }}-${{ steps.split.parts.1 }}",
    }
    assert resolve(request, outputs) == {
        "train": {"dataset_id": "ds_1"},
        "rows": 80,
        "name": "m-ds_1-2",
    }
    with pytest.raises(KeyError):
        lookup(outputs["split"], ["train", "missing"])


def test_a_misspelt_step_or_key_is_answered_with_the_name_meant():
    text = textwrap.dedent(
        """
        apiVersion: forgeline/v1
        kind: Pipeline
        metadata: {name: typos}
        stepz: []
        steps:
          - name: ingest
            call: data.IngestDataset
          - name: clean
            call: data.CleanDataset
            after: [ingset]
            gate: ["accuracy >= 0.9"]
            with: {dataset_id: "${{ steps.ingest.dataset.artifact.id }}"}
          - name: split
            call: data.SplitDataset
            with: {dataset_id: "${{ steps.claen.dataset.artifact.id }}"}
        """
    )
    found = problems(text, ["spilt.with.seed=3"])
    assert "stepz (did you mean 'steps'?)" in found["stepz"]
    assert "no other step named 'ingset' (did you mean 'ingest'?)" == found["steps.clean.after[0]"]
    assert "gate (did you mean 'gates'?)" in found["steps.clean.gate"]
    assert (
        "no step 'claen' (did you mean 'clean'?) produces this"
        in found["steps.split.with.dataset_id"]
    )
    assert "no step 'spilt' (did you mean 'split'?)" in found["overrides[0]"]


def test_did_you_mean_stays_quiet_for_other_words_and_huge_ones():
    assert did_you_mean("tuning", ["training", "data"]) == ""  # another service, not a typo
    assert did_you_mean("Trian", ["train", "training"]) == " (did you mean 'train'?)"
    assert did_you_mean("x" * 1_000_000, ["x"]) == ""  # no quadratic work on a huge value
    assert did_you_mean(7, ["seven"]) == ""


def test_a_yaml_slip_is_one_line_naming_the_source_and_position():
    broken = "apiVersion: forgeline/v1\nsteps:\n  - {name: a, call: data.CleanDataset\n"
    with pytest.raises(PipelineInvalid) as caught:
        load_document(broken, source="pipelines/p.yaml")
    [problem] = caught.value.problems
    assert problem.field == "pipelines/p.yaml"
    assert problem.description == (
        "not valid YAML: line 4, column 1: expected ',' or '}', but got the end of the file "
        "(while parsing a flow mapping at line 3, column 5)"
    )
    # The gateway names its request field, and no PyYAML "<unicode string>" either way.
    found = problems("a: 1\n  b: 2\n")
    assert found == {
        "pipeline_yaml": "not valid YAML: line 2, column 4: mapping values are not allowed here"
    }
