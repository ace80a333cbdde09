"""Checks a whole compression request before any step runs, and resolves it into a plan.

The model (a sequence classifier, or a decoder-only language model, in a safe format: never a
pickle), the evaluation rows (a label column whose labels the classifier knows; a text column
for a language model), the optional training rows, the budget, the latency options, and the
chain: every compressor must list the model's task, accept the format the step before it
produces, and accept the model's architecture (its ``check`` sees the model built on the meta
device). Every refusal names the request field. No gRPC here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forgeline import modelio
from forgeline.artifacts import ArtifactRecord
from forgeline.datasets import Dataset, DatasetRef, DatasetRepository, output_name
from forgeline.errors import FailedPrecondition, InvalidArgument
from forgeline.models import (
    DECODER_TASKS,
    SEQUENCE_CLASSIFICATION,
    ModelRepository,
    positions_of,
    skeleton,
)
from forgeline.registry import CompressionTarget, Compressor, PluginChoice, PluginRegistry
from forgeline.services.compression.measure import LatencyOptions

METRICS = ("accuracy", "f1_macro")
# A decoder-only language model's budget metric: its eval perplexity (relative rise).
LM_METRICS = ("perplexity",)
DEFAULT_BUDGET = 0.01
MAX_STEPS = 16


@dataclass(frozen=True)
class CompressSpec:
    model_id: str
    eval: DatasetRef
    compressors: tuple[PluginChoice, ...]
    train: DatasetRef | None = None
    accuracy_budget: float | None = None
    budget_metric: str = ""
    latency: LatencyOptions = field(default_factory=LatencyOptions)
    max_length: int = 0
    output_name: str = ""


@dataclass
class Rows:
    dataset: Dataset
    text: str
    label: str


@dataclass
class Step:
    index: int  # 1-based
    choice: PluginChoice
    plugin: Compressor
    input_format: str
    output_format: str


@dataclass
class CompressPlan:
    spec: CompressSpec
    model: ArtifactRecord
    model_format: str  # hf, hf_pruned, hf_int8, onnx or peft_adapter
    model_dir: Path
    base_dir: Path | None  # an adapter's base model
    labels: list[str]
    eval: Rows
    train: Rows | None
    steps: list[Step]
    task: str  # sequence_classification, or causal_lm / instruction (a language model)
    budget: float
    metric: str
    latency: LatencyOptions
    max_length: int
    output_name: str


class CompressPlanner:
    def __init__(
        self, registry: PluginRegistry, datasets: DatasetRepository, models: ModelRepository
    ) -> None:
        self.registry = registry
        self.datasets = datasets
        self.models = models
        self.artifacts = models.artifacts

    def plan(self, spec: CompressSpec) -> CompressPlan:
        record, fmt = self._model(spec.model_id)
        task = str(record.metadata["task"])
        labels = [str(v) for v in record.metadata.get("labels", [])]
        folder = self.artifacts.verify(record)
        modelio.check_safe(folder)
        base = self.models.adapter_base(record) if fmt == "peft_adapter" else None
        if base is not None:
            modelio.check_safe(base, "model_id (its base model)")
        evaluation = self._rows(spec.eval, "eval", task, labels)
        train = self._rows(spec.train, "train", task, labels) if spec.train else None
        budget = DEFAULT_BUDGET if spec.accuracy_budget is None else spec.accuracy_budget
        if not (math.isfinite(budget) and 0.0 <= budget <= 1.0):
            raise InvalidArgument.for_field(
                "accuracy_budget", f"{budget} is not a fraction in [0, 1] (0.01 = one point)"
            )
        known = METRICS if task == SEQUENCE_CLASSIFICATION else LM_METRICS
        metric = spec.budget_metric or known[0]
        if metric not in known:
            raise InvalidArgument.for_field(
                "budget_metric",
                f"unknown metric {metric!r} for a {task} model; known: {', '.join(known)}",
            )
        latency = _latency(spec.latency)
        hf_config = self._hf_config(base or folder, fmt)
        max_length = spec.max_length or int(record.metadata.get("max_length") or 128)
        positions = positions_of(hf_config) if hf_config is not None else 0
        if not 8 <= max_length <= (positions or 1_000_000):
            raise InvalidArgument.for_field(
                "max_sequence_length",
                f"{max_length} is outside [8, {positions or 1_000_000}] (the model's positions)",
            )
        steps = self._steps(spec, fmt, hf_config, task, labels, train is not None)
        name = output_name(spec.output_name or record.name)
        return CompressPlan(
            spec=spec,
            model=record,
            model_format=fmt,
            model_dir=folder,
            base_dir=base,
            labels=labels,
            eval=evaluation,
            train=train,
            steps=steps,
            task=task,
            budget=budget,
            metric=metric,
            latency=latency,
            max_length=max_length,
            output_name=name,
        )

    def _model(self, model_id: str) -> tuple[ArtifactRecord, str]:
        record = self.models.model_record(
            model_id,
            formats=(
                modelio.HF,
                "peft_adapter",
                modelio.HF_PRUNED,
                modelio.HF_INT8,
                modelio.ONNX,
            ),
        )
        task = record.metadata["task"]
        if task in DECODER_TASKS:
            return record, str(record.metadata.get("format", modelio.HF))
        if task != SEQUENCE_CLASSIFICATION or not record.metadata.get("labels"):
            raise FailedPrecondition(
                f"model_id: {record.id} is a {task} model; compression measures a classifier "
                f"by accuracy ({SEQUENCE_CLASSIFICATION} models with their labels) and a "
                f"decoder-only language model by perplexity ({' and '.join(DECODER_TASKS)} "
                f"models); an encoder-decoder's generated text has no such measure here yet",
                reason="NOT_A_CLASSIFIER",
                metadata={"field": "model_id"},
            )
        return record, str(record.metadata.get("format", modelio.HF))

    def _rows(self, ref: DatasetRef, name: str, task: str, labels: list[str]) -> Rows:
        """A classifier's text and label columns (labels it knows); a language model's text."""
        if task != SEQUENCE_CLASSIFICATION:
            dataset, text, _ = self.datasets.resolve(ref, name, task)
            return Rows(dataset, text, "")
        dataset, text, label = self.datasets.resolve(ref, name, SEQUENCE_CLASSIFICATION)
        self.datasets.check_labels(dataset, label, labels, name, "are unknown to the model")
        return Rows(dataset, text, label)

    @staticmethod
    def _hf_config(folder: Path, fmt: str):
        if fmt == modelio.ONNX:
            return None
        from transformers import AutoConfig

        return AutoConfig.from_pretrained(folder, local_files_only=True)

    def _steps(
        self,
        spec: CompressSpec,
        fmt: str,
        hf_config: Any,
        task: str,
        labels: list[str],
        has_train: bool,
    ) -> list[Step]:
        if not spec.compressors:
            raise InvalidArgument.for_field(
                "compressors",
                "name at least one compressor, e.g. dynamic_int8, structured_prune, distill, "
                "onnx_export",
            )
        if len(spec.compressors) > MAX_STEPS:
            raise InvalidArgument.for_field(
                "compressors", f"{len(spec.compressors)} steps is over the limit of {MAX_STEPS}"
            )
        plugins = self.registry.create_all("compressors", list(spec.compressors), "compressors")
        meta = skeleton(hf_config, task, labels) if hf_config else None
        current = modelio.HF if fmt == "peft_adapter" else fmt  # an adapter is merged first
        steps, before = [], "the model"
        for i, (choice, plugin) in enumerate(zip(spec.compressors, plugins, strict=True)):
            where = f"compressors[{i}]"
            if task not in plugin.tasks:
                applies = [
                    c.name for c in self.registry.load_kind("compressors") if task in c.tasks
                ]
                raise FailedPrecondition(
                    f"{where}.name: {plugin.name} compresses {', '.join(plugin.tasks)} models, "
                    f"not this {task} model; for it these apply: {', '.join(applies) or 'none'}",
                    reason="COMPRESSOR_NOT_APPLICABLE",
                    metadata={"field": f"{where}.name"},
                )
            if current not in plugin.accepts:
                raise InvalidArgument.for_field(
                    f"{where}.name",
                    f"{plugin.name} takes {' or '.join(plugin.accepts)} models, but "
                    f"{before} is {current}; reorder the chain (e.g. onnx_export last)",
                )
            plugin.check(
                CompressionTarget(
                    format=current,
                    config=hf_config.to_dict() if hf_config is not None else {},
                    model=meta,
                    field=where,
                    has_train_rows=has_train,
                    task=task,
                )
            )
            produced = plugin.output_format(current)
            steps.append(Step(i + 1, choice, plugin, current, produced))
            current, before = produced, f"the output of {where} ({plugin.name})"
        return steps


def _latency(options: LatencyOptions) -> LatencyOptions:
    limits = {
        "single_runs": (1, 10_000, 50),
        "batch_size": (1, 4096, 32),
        "batch_runs": (1, 1000, 5),
        "threads": (0, 1024, 0),
    }
    values = {}
    for name, (low, high, default) in limits.items():
        value = getattr(options, name)
        if value < 0 or value > high:
            raise InvalidArgument.for_field(f"latency.{name}", f"must be in [{low}, {high}]")
        values[name] = value or default
    return LatencyOptions(**values)
