"""Checks that need the services' descriptors and plugins: on the real data and training
descriptors and the real installed plugins."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from forgeline.gateway.catalog import (
    ServiceCatalog,
    check,
    local_catalog,
    metric_path,
    numeric_paths,
    plugins_by_kind,
    validate,
)
from forgeline.gateway.spec import parse
from forgeline.plugin_service import plugin_infos
from forgeline.registry import PluginRegistry
from forgeline.v1 import (
    data_service_pb2,
    safety_service_pb2,
    training_service_pb2,
    tuning_service_pb2,
)


@pytest.fixture(scope="module")
def services() -> dict[str, ServiceCatalog]:
    plugins = plugins_by_kind(plugin_infos(PluginRegistry()))
    return {
        "data": ServiceCatalog(
            "data",
            "127.0.0.1:50051",
            data_service_pb2.DESCRIPTOR.services_by_name["DataService"],
            plugins,
        ),
        "training": ServiceCatalog(
            "training",
            "127.0.0.1:50052",
            training_service_pb2.DESCRIPTOR.services_by_name["TrainingService"],
            plugins,
        ),
    }


HEAD = "apiVersion: forgeline/v1\nkind: Pipeline\nmetadata: {name: t}\nsteps:\n"
GOOD = HEAD + textwrap.indent(
    textwrap.dedent(
        """
        - name: ingest
          call: data.IngestDataset
          with: {source: reviews.csv, loader: {name: csv}}
        - name: clean
          call: data.CleanDataset
          with:
            dataset_id: ${{ steps.ingest.dataset.artifact.id }}
            cleaners: [{name: dedup_near, config: {threshold: 0.8}}]
        - name: split
          call: data.SplitDataset
          with: {dataset_id: "${{ steps.clean.dataset.artifact.id }}"}
        - name: train
          call: training.TrainModel
          with:
            train: {dataset_id: "${{ steps.split.train.artifact.id }}"}
            model: {builtin: minilm-l6}
            task: TASK_SEQUENCE_CLASSIFICATION
            finetune: {name: lora, config: {r: 8}}
            hyper_parameters: {epochs: 2, learning_rate: 0.001}
            output_name: "m-${{ steps.clean.dataset.artifact.id }}"
          gates: ["evaluation.accuracy >= 0.8", "f1_macro >= 0.7", "metrics.eval_loss <= 1"]
        """
    ),
    "  ",
)


def found(text: str, services) -> dict[str, str]:
    problems, _ = check(parse(text), services)
    return {p.field: p.description for p in problems}


def test_a_good_pipeline_passes_and_gates_resolve(services):
    problems, checked = check(parse(GOOD), services)
    assert problems == []
    assert checked.methods["clean"] == "forgeline.v1.DataService/CleanDataset"
    assert checked.gate_metrics[("train", "f1_macro >= 0.7")] == "evaluation.f1_macro"
    assert checked.gate_metrics[("train", "metrics.eval_loss <= 1")] == "metrics.eval_loss"


def test_unknown_services_methods_fields_and_types_are_named(services):
    text = HEAD + textwrap.indent(
        textwrap.dedent(
            """
            - {name: a, call: tuning.TuneModel}
            - {name: b, call: data.ListDatasets}
            - name: c
              call: training.TrainModel
              with:
                train: {dataset: x}
                task: TASK_TRANSLATE
                hyper_parameters: {epochs: two, learning_rate: fast}
                scaling: 4
            """
        ),
        "  ",
    )
    errors = found(text, services)
    assert errors["steps.a.call"] == "no service 'tuning'; known: data, training"
    assert "no long-running method 'ListDatasets'" in errors["steps.b.call"]
    assert "CleanDataset" in errors["steps.b.call"]
    assert "no field 'dataset'" in errors["steps.c.with.train.dataset"]
    assert "dataset_id" in errors["steps.c.with.train.dataset"]
    assert "TASK_SEQUENCE_CLASSIFICATION" in errors["steps.c.with.task"]
    assert "integer" in errors["steps.c.with.hyper_parameters.epochs"]
    assert "number" in errors["steps.c.with.hyper_parameters.learning_rate"]
    assert "mapping" in errors["steps.c.with.scaling"]


def test_plugins_are_checked_against_their_schemas(services):
    text = HEAD + textwrap.indent(
        textwrap.dedent(
            """
            - name: c
              call: data.CleanDataset
              with:
                dataset_id: ds_1
                cleaners: [{name: dedup_near, config: {threshold: 7, bogus: 1}}, {name: nope}]
            - name: t
              call: training.TrainModel
              with: {finetune: {name: ia3}, trackers: [{name: tensorboard}]}
            """
        ),
        "  ",
    )
    errors = found(text, services)
    assert "no cleaners plugin 'nope'" in errors["steps.c.with.cleaners[1].name"]
    assert "dedup_exact" in errors["steps.c.with.cleaners[1].name"]
    assert "steps.c.with.cleaners[0].config.threshold" in errors
    assert "bogus" in " ".join(
        v for k, v in errors.items() if k.startswith("steps.c.with.cleaners[0]")
    )
    assert "lora" in errors["steps.t.with.finetune.name"]
    assert not any(k.startswith("steps.t.with.trackers") for k in errors)


def test_references_must_exist_and_fit_the_field(services):
    text = HEAD + textwrap.indent(
        textwrap.dedent(
            """
            - {name: s, call: data.SplitDataset, with: {dataset_id: ds_1}}
            - name: t
              call: training.TrainModel
              with:
                train: {dataset_id: "${{ steps.s.train.artifact.sha }}"}
                eval: "${{ steps.s.validation }}"
                model: "${{ steps.s.test }}"
                hyper_parameters: {epochs: "${{ steps.s.train.artifact.size_bytes }}"}
            """
        ),
        "  ",
    )
    errors = found(text, services)
    assert "no field 'sha'" in errors["steps.t.with.train.dataset_id"]
    assert "sha256" in errors["steps.t.with.train.dataset_id"]
    assert "Dataset, not a DatasetInput" in errors["steps.t.with.eval"]
    assert "not a ModelSource" in errors["steps.t.with.model"]
    assert "steps.t.with.hyper_parameters.epochs" not in errors  # int64 -> int32 is an integer


def test_gates_on_metrics_the_step_does_not_emit(services):
    text = GOOD.replace(
        '"metrics.eval_loss <= 1"', '"bleu >= 30", "evaluation.confusion_matrix >= 1"'
    )
    errors = found(text, services)
    assert "no metric 'bleu'" in errors["steps.train.gates[2]"]
    assert "evaluation.accuracy" in errors["steps.train.gates[2]"]
    assert "not a number" in errors["steps.train.gates[3]"]
    response = training_service_pb2.TrainModelResponse.DESCRIPTOR
    assert metric_path(response, "accuracy") == ("evaluation.accuracy", "")
    assert metric_path(response, "loss") == ("evaluation.loss", "")
    assert metric_path(response, "model.size_bytes") == ("model.size_bytes", "")


def test_a_misspelt_service_method_field_plugin_or_value_gets_the_name_meant(services):
    text = HEAD + textwrap.indent(
        textwrap.dedent(
            """
            - {name: a, call: trainig.TrainModel}
            - {name: b, call: data.CleanDatset}
            - name: c
              call: training.TrainModel
              with:
                train: {datset_id: ds_1}
                task: TASK_SEQUENCE_CLASIFICATION
                finetune: {name: lorra}
              gates: ["acuracy >= 0.8"]
            - {name: d, call: data.SplitDataset, with: {dataset_id: "${{ steps.c.modle.id }}"}}
            """
        ),
        "  ",
    )
    errors = found(text, services)
    assert errors["steps.a.call"] == (
        "no service 'trainig' (did you mean 'training'?); known: data, training"
    )
    assert "'CleanDatset' (did you mean 'CleanDataset'?)" in errors["steps.b.call"]
    assert "'datset_id' (did you mean 'dataset_id'?)" in errors["steps.c.with.train.datset_id"]
    assert "(did you mean 'TASK_SEQUENCE_CLASSIFICATION'?)" in errors["steps.c.with.task"]
    assert "'lorra' (did you mean 'lora'?)" in errors["steps.c.with.finetune.name"]
    assert "'acuracy' (did you mean 'accuracy'?)" in errors["steps.c.gates[0]"]
    assert "'modle' (did you mean 'model'?)" in errors["steps.d.with.dataset_id"]


def test_gates_are_offered_metrics_not_timestamps_or_identifiers(services):
    data = services["data"]
    offered = numeric_paths(data.response_type("CleanDataset"))
    assert "dataset.num_rows" in offered and "metrics.KEY" in offered
    assert not [p for p in offered if "create_time" in p]  # a Timestamp's seconds and nanos
    assert "dataset.version" not in offered  # the artifact's version number
    tuning = numeric_paths(tuning_service_pb2.TuneModelResponse.DESCRIPTOR)
    assert "best_trial.number" not in tuning and "completed_trials" in tuning
    audit = numeric_paths(safety_service_pb2.AuditFairnessResponse.DESCRIPTOR)
    assert "audit_sequence" not in audit and "metrics.accuracy" in audit
    # Left out of what is offered, still readable by its full path; and a bare `seconds` no
    # longer collides with model.create_time.seconds.
    baseline = training_service_pb2.TrainBaselineResponse.DESCRIPTOR
    assert metric_path(baseline, "model.create_time.seconds") == ("model.create_time.seconds", "")
    assert metric_path(baseline, "seconds") == ("seconds", "")
    _, error = metric_path(baseline, "bleu")
    assert "nanos" not in error and "evaluation.accuracy" in error


def test_validate_offline_checks_on_this_machines_descriptors_and_plugins(services):
    plugins = services["data"].plugins
    example = (Path(__file__).parents[3] / "examples" / "pipelines" / "quickstart.yaml").read_text()
    known = ["data", "training", "compression", "partner"]
    validation = validate(example, [], known, lambda name: local_catalog(name, plugins))
    assert validation.problems == [] and validation.unchecked == []
    assert validation.checked.methods["compress"] == (
        "forgeline.v1.CompressionService/CompressModel"
    )
    # A third party's service has no descriptors here: its steps are left unchecked, not wrong.
    extra = example + "  - {name: score, call: partner.ScoreModel, with: {anything: 1}}\n"
    validation = validate(extra, [], known, lambda name: local_catalog(name, plugins))
    assert validation.problems == [] and validation.unchecked == ["partner"]
