"""A pipeline with generation steps (EvaluateModel with generation options, a summarization
TrainBaseline scored with ROUGE) validates offline against this machine's descriptors and
plugins; gates reach the generation metrics by field path, and a bad metric plugin or config
is named by its field."""

from __future__ import annotations

import textwrap

from forgeline.gateway.catalog import local_catalog, plugins_by_kind, validate
from forgeline.plugin_service import plugin_infos
from forgeline.registry import PluginRegistry

PIPELINE = textwrap.dedent(
    """
    apiVersion: forgeline/v1
    kind: Pipeline
    metadata: {name: generation}
    steps:
      - name: ingest
        call: data.IngestDataset
        with: {source: judgments.jsonl, name: judgments}
      - name: lead
        call: training.TrainBaseline
        with:
          train: {dataset_id: "${{ steps.ingest.dataset.artifact.id }}", target_column: summary}
          eval: {dataset_id: "${{ steps.ingest.dataset.artifact.id }}", target_column: summary}
          baseline: {name: lead_k, config: {sentences: 3}}
          metrics: [{name: rouge}]
        gates: ["evaluation.metrics.rouge_rougeL >= 0.1"]
      - name: evaluate
        call: training.EvaluateModel
        with:
          model_id: a-model
          dataset: {dataset_id: "${{ steps.ingest.dataset.artifact.id }}"}
          generation:
            decoding:
              strategy: DECODING_STRATEGY_SAMPLE
              temperature: 0.7
              seed: 1
              max_new_tokens: 128
              stop: ["\\n\\n"]
            metrics: [{name: rouge, config: {tokenize: auto}}, {name: bleu}]
            reference_column: summary
            long_inputs: {name: extract}
            input_token_budget: 2048
            max_examples: 20
            seed: 7
            samples: 3
        gates: ["evaluation.metrics.rouge_rougeL >= 0.1", "evaluation.perplexity <= 100"]
    """
)


def run_validate(text: str):
    plugins = plugins_by_kind(plugin_infos(PluginRegistry()))
    return validate(text, [], ["data", "training"], lambda name: local_catalog(name, plugins))


def test_a_generation_pipeline_validates_offline():
    validation = run_validate(PIPELINE)
    assert validation.problems == [] and validation.unchecked == []
    assert validation.checked.methods["evaluate"] == "forgeline.v1.TrainingService/EvaluateModel"
    gate = ("evaluate", "evaluation.metrics.rouge_rougeL >= 0.1")
    assert validation.checked.gate_metrics[gate] == "evaluation.metrics.rouge_rougeL"


def test_bad_generation_plugins_are_named_by_field():
    bad = (
        PIPELINE.replace("{name: bleu}", "{name: bleux}")
        .replace("tokenize: auto", "tokenize: zz")
        .replace("{name: extract}", "{name: summarize}")
    )
    fields = {p.field for p in run_validate(bad).problems}
    assert fields == {
        "steps.evaluate.with.generation.metrics[0].config.tokenize",
        "steps.evaluate.with.generation.metrics[1].name",
        "steps.evaluate.with.generation.long_inputs.name",
    }
