"""The compression service's work: run a chain of compressors, measuring every step against
the original and rolling back the step that breaks the accuracy budget (a language model's
perplexity budget). No gRPC here.

An adapter is merged into its base first; the original is measured; then each compressor
writes its output into a scratch folder, the service adds the tokenizer and the labels, checks
that no pickle slipped in, measures it, and either commits it as a model artifact (lineage: the
original and the step before) and hands it to the next step, or discards it and stops the
chain. A step committed before a restart of the service is not run again.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forgeline import cluster, modelio
from forgeline.artifacts import ArtifactRecord, ArtifactStore, Lineage
from forgeline.datasets import DatasetRepository
from forgeline.errors import FailedPrecondition, ForgelineError, Internal, cause_line
from forgeline.finetune.data import read_rows
from forgeline.finetune.runner import compressor_recipe_config, train_on_ray
from forgeline.logging import get_logger
from forgeline.models import ModelRepository, merge_adapter, perplexity_of
from forgeline.operations import Interrupted
from forgeline.paths import folder_name
from forgeline.registry import CompressContext, PluginRegistry, TrainRun
from forgeline.services.compression.measure import EvalInputs, Measurement, measure, tokenize
from forgeline.services.compression.planning import CompressPlan, CompressPlanner, CompressSpec

if TYPE_CHECKING:
    from forgeline.operations import OperationContext
    from forgeline.paths import PathValidator
    from forgeline.settings import Settings

SERVICE = "forgeline.v1.CompressionService"
KEPT, ROLLED_BACK, SKIPPED = "kept", "rolled_back", "skipped"
log = get_logger(__name__)


@dataclass
class StepOutcome:
    index: int
    compressor: str
    config: dict[str, Any]
    outcome: str
    measurement: Measurement | None = None
    ratios: dict[str, float] = field(default_factory=dict)
    model: ArtifactRecord | None = None
    details: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    reason: str = ""


@dataclass
class CompressOutcome:
    model: ArtifactRecord
    original: Measurement
    steps: list[StepOutcome]
    budget_exceeded: bool
    ratios: dict[str, float]
    budget: float
    metric: str
    seconds: float


def ratios(m: Measurement, original: Measurement, metric: str) -> dict[str, float]:
    """A measurement against the original's: sizes and latencies as ratios, the budget metric
    as a change, negative when worse: a classifier's accuracy (F1) difference; a language
    model's 1 - perplexity ratio (-0.01: 1% higher perplexity), so one budget rule serves
    both. The perplexity ratio is exp(loss - original loss): the same number, finite even
    where both perplexities overflow."""

    def ratio(a: float, b: float) -> float:
        return a / b if b else 0.0

    out = {
        "size_ratio": ratio(m.weights_bytes, original.weights_bytes),
        "linear_size_ratio": ratio(m.linear_weight_bytes, original.linear_weight_bytes),
        "latency_ratio": ratio(m.latency_p50_ms, original.latency_p50_ms),
        "batch_latency_ratio": ratio(m.batch_latency_ms, original.batch_latency_ms),
    }
    if metric == "perplexity":
        perplexity_ratio = perplexity_of(m.loss - original.loss)
        return {
            **out,
            "accuracy_delta": 1.0 - perplexity_ratio,
            "perplexity_ratio": perplexity_ratio,
        }
    return {**out, "accuracy_delta": m.score(metric) - original.score(metric)}


class CompressionJobs:
    def __init__(
        self,
        registry: PluginRegistry,
        datasets: DatasetRepository,
        artifacts: ArtifactStore,
        paths: PathValidator,
        settings: Settings,
    ) -> None:
        self.settings = settings
        self.planner = CompressPlanner(registry, datasets, ModelRepository(artifacts))
        self.artifacts = artifacts
        self.datasets = datasets
        self.runs_dir = settings.home.expanduser() / "services" / "compression" / "runs"

    def plan(self, spec: CompressSpec) -> CompressPlan:
        return self.planner.plan(spec)

    def run(self, spec: CompressSpec, ctx: OperationContext, request_id: str) -> CompressOutcome:
        started = time.monotonic()
        plan = self.plan(spec)
        key = request_id or ctx.name
        work = self.runs_dir / folder_name(ctx.name)
        work.mkdir(parents=True, exist_ok=True)
        try:
            outcome = self._chain(plan, ctx, key, work)
        finally:  # a stopping service resumes the run at its restart, with this folder
            if not ctx.stopping():
                shutil.rmtree(work, ignore_errors=True)
        outcome.seconds = time.monotonic() - started
        return outcome

    def _chain(
        self, plan: CompressPlan, ctx: OperationContext, key: str, work: Path
    ) -> CompressOutcome:
        ctx.progress(0.0, "preparing the original")
        current = self._original(plan, work)
        inputs = self._inputs(plan, current)
        original = measure(current, inputs, plan.latency)
        ctx.metrics(original.scalars(), step=0)
        total = len(plan.steps)
        steps: list[StepOutcome] = []
        kept: ArtifactRecord | None = None
        stopped = ""
        for step in plan.steps:
            name = step.choice.name
            config = step.plugin.config.model_dump(mode="json")
            if stopped:
                steps.append(StepOutcome(step.index, name, config, SKIPPED, reason=stopped))
                continue
            ctx.progress((step.index - 1) / total, f"step {step.index}/{total}: {name}")
            began = time.monotonic()
            done = self.artifacts.find_by_request_id(f"{key}/step{step.index}")
            if done is not None:  # committed before a restart
                result = StepOutcome(
                    step.index,
                    name,
                    config,
                    KEPT,
                    measurement=Measurement(**done.metadata["measurement"]),
                    ratios=done.metadata["ratios"],
                    model=done,
                    details=done.metadata.get("details", {}),
                    seconds=float(done.metadata.get("seconds", 0.0)),
                )
                kept, current = done, self.artifacts.verify(done)
                steps.append(result)
                continue
            with self.artifacts.staging_path() as output:
                output.mkdir(parents=True)
                details = self._compress(plan, step, current, output, ctx, work)
                self._finish_folder(plan, current, output)
                m = measure(output, inputs, plan.latency)
                r = ratios(m, original, plan.metric)
                seconds = time.monotonic() - began
                ctx.metrics({**m.scalars(), **r}, step=step.index)
                if -r["accuracy_delta"] > plan.budget + 1e-9:
                    stopped = f"compressors[{step.index - 1}] ({name}) was rolled back: " + (
                        f"it raised perplexity by {-r['accuracy_delta'] * 100:.2f}%, over the "
                        f"budget of {plan.budget * 100:.2f}%"
                        if plan.metric == "perplexity"
                        else f"it cost {-r['accuracy_delta'] * 100:.2f} points of {plan.metric}, "
                        f"over the budget of {plan.budget * 100:.2f}"
                    )
                    steps.append(
                        StepOutcome(
                            step.index,
                            name,
                            config,
                            ROLLED_BACK,
                            measurement=m,
                            ratios=r,
                            details=details,
                            seconds=seconds,
                            reason=stopped,
                        )
                    )
                    ctx.progress(step.index / total, stopped)
                    continue  # the staged output is discarded
                measured = {"measurement": m.as_dict(), "ratios": r, "details": details}
                kept = self._commit(
                    plan, ctx, key, step, output, kept, {**measured, "seconds": seconds}
                )
            current = kept.path  # just committed from the hashed folder: no second hash
            steps.append(
                StepOutcome(
                    step.index,
                    name,
                    config,
                    KEPT,
                    measurement=m,
                    ratios=r,
                    model=kept,
                    details=details,
                    seconds=seconds,
                )
            )
        last = next((s for s in reversed(steps) if s.outcome == KEPT), None)
        return CompressOutcome(
            model=kept or plan.model,
            original=original,
            steps=steps,
            budget_exceeded=any(s.outcome == ROLLED_BACK for s in steps),
            ratios=last.ratios if last else ratios(original, original, plan.metric),
            budget=plan.budget,
            metric=plan.metric,
            seconds=0.0,
        )

    # --- the pieces ----------------------------------------------------------------------------

    def _original(self, plan: CompressPlan, work: Path) -> Path:
        """The original as a folder every compressor takes: an adapter merged into its base."""
        if plan.model_format != "peft_adapter":
            return plan.model_dir
        folder = work / "original"
        if modelio.read_format(folder).get("merged"):
            return folder
        shutil.rmtree(folder, ignore_errors=True)
        merge_adapter(plan.model_dir, plan.base_dir, folder, plan.task)
        self._label(plan, folder, {"merged": plan.model.id})
        return folder

    def _inputs(self, plan: CompressPlan, folder: Path) -> EvalInputs:
        from transformers import AutoTokenizer

        texts, labels = read_rows(
            str(self.artifacts.verify(plan.eval.dataset.record)),
            plan.eval.text,
            plan.eval.label,
            plan.task,
        )
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        return tokenize(
            tokenizer, texts, labels, plan.labels, plan.max_length, plan.latency, plan.task
        )

    def _compress(
        self, plan: CompressPlan, step, current: Path, output: Path, ctx, work: Path
    ) -> dict[str, Any]:
        where = f"compressors[{step.index - 1}] ({step.choice.name})"
        scratch = work / f"scratch{step.index}"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        total = len(plan.steps)
        context = CompressContext(
            task=plan.task,
            labels=tuple(plan.labels),
            max_length=plan.max_length,
            seed=0,
            work_dir=scratch,
            train_rows=lambda n: self._train_rows(plan, n),
            train=lambda run: self._train(plan, step.index, run, ctx),
            progress=lambda f, message: ctx.progress(
                (step.index - 1 + min(max(f, 0.0), 1.0)) / total, f"{where}: {message}"
            ),
            check_cancelled=ctx.check_cancelled,
        )
        try:
            result = step.plugin.compress(current, output, context)
        except (ForgelineError, Interrupted):
            raise
        except Exception as exc:
            log.exception("compressor_failed", step=step.index, compressor=step.choice.name)
            raise Internal(
                f"{where} failed: {cause_line(str(exc), type(exc).__name__)[:400]}",
                reason="COMPRESSOR_FAILED",
            ) from exc
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        produced = modelio.folder_format(output)
        if produced != step.output_format:
            raise Internal(
                f"{where} wrote a {produced} model where it declared {step.output_format}",
                reason="COMPRESSOR_FAILED",
            )
        return dict(result.details)

    def _finish_folder(self, plan: CompressPlan, source: Path, output: Path) -> None:
        """Every output carries its tokenizer and labels, and no pickle."""
        from transformers import AutoTokenizer

        if not (output / "tokenizer_config.json").exists():
            AutoTokenizer.from_pretrained(source, local_files_only=True).save_pretrained(output)
        self._label(plan, output, {})
        modelio.check_safe(output, "the compressor's output")

    @staticmethod
    def _label(plan: CompressPlan, folder: Path, extra: dict[str, Any]) -> None:
        modelio.write_format(
            folder,
            {
                "task": plan.task,
                "labels": plan.labels,
                "max_length": plan.max_length,
                **extra,
            },
        )

    def _train_rows(self, plan: CompressPlan, n: int) -> tuple[list[str], list[str]]:
        if plan.train is None:
            return [], []
        table = self.datasets.read(plan.train.dataset, columns=[plan.train.text, plan.train.label])
        table = table.slice(0, n)
        texts = [t or "" for t in table.column(0).to_pylist()]
        return texts, [str(v) for v in table.column(1).to_pylist()]

    def _train(self, plan: CompressPlan, index: int, run: TrainRun, ctx) -> dict[str, float]:
        if plan.train is None:
            raise FailedPrecondition(
                f"train: compressors[{index - 1}] trains and the request has no training rows",
                reason="NO_TRAINING_ROWS",
                metadata={"field": "train"},
            )
        # The wait for Ray is this step's progress.
        cluster.ensure_ray(self.settings, ctx, at=(index - 1) / len(plan.steps))
        cluster.require_cpus(
            run.num_workers,
            run.cpus_per_worker,
            f"compressors[{index - 1}]",
            f"compressors[{index - 1}].config.num_workers",
        )
        config = compressor_recipe_config(
            run,
            self.artifacts.verify(plan.train.dataset.record),
            labels=plan.labels,
            max_length=plan.max_length,
            text_column=plan.train.text,
            label_column=plan.train.label,
        )
        summary = train_on_ray(
            config,
            _Prefixed(ctx, f"step{index}/"),
            {"num_workers": run.num_workers, "cpus_per_worker": run.cpus_per_worker},
            self.runs_dir,
            f"{folder_name(ctx.name)}-step{index}",
            artifacts=self.artifacts,
        )
        shutil.rmtree(self.runs_dir / f"{folder_name(ctx.name)}-step{index}", ignore_errors=True)
        return summary["last"]

    def _commit(
        self,
        plan: CompressPlan,
        ctx: OperationContext,
        key: str,
        step,
        output: Path,
        previous: ArtifactRecord | None,
        measured: dict[str, Any],
    ) -> ArtifactRecord:
        index, name = step.index, step.choice.name
        parents = [plan.model.id] + ([previous.id] if previous else [])
        return self.artifacts.commit_dir(
            output,
            kind="model",
            name=f"{plan.output_name}-{name}",
            metadata={
                "format": modelio.folder_format(output),
                "task": plan.task,
                "labels": plan.labels,
                "max_length": plan.max_length,
                "compressed_from": plan.model.id,
                "compressor": name,
                "step": index,
                **measured,
            },
            lineage=Lineage(
                parent_ids=parents,
                producer=f"{SERVICE}/CompressModel",
                operation=ctx.name,
                config={
                    "compressor": name,
                    "config": step.plugin.config.model_dump(mode="json"),
                    "step": index,
                    "chain": [c.name for c in plan.spec.compressors],
                    "accuracy_budget": plan.budget,
                    "budget_metric": plan.metric,
                },
            ),
            request_id=f"{key}/step{index}",
        )


class _Prefixed:
    """An operation context whose metric points carry a prefix (a step's training curves)."""

    def __init__(self, ctx, prefix: str) -> None:
        self._ctx, self._prefix = ctx, prefix

    def metrics(self, values, step: int = 0) -> None:
        self._ctx.metrics({self._prefix + k: v for k, v in values.items()}, step=step)

    def __getattr__(self, name: str):
        return getattr(self._ctx, name)
