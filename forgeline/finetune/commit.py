"""A finished run's folder committed as a model or adapter artifact, with its lineage.

The training service commits TrainModel's run with it and the tuning service its best trial, so a
tuned model carries the same metadata (format, task, labels, base, metrics, evaluation) as a
trained one and loads through forgeline.models the same way.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forgeline.artifacts import ArtifactRecord, ArtifactStore, Lineage
from forgeline.finetune.planning import TrainPlan
from forgeline.models import read_manifest

if TYPE_CHECKING:
    from forgeline.operations import OperationContext


# The run's metrics its artifact keeps (with every eval_ one): what the rows were and how
# they trained.
FINAL_METRICS = (
    "loss",
    "samples_per_second",
    "tokens_per_second",
    "rows",
    "truncated_rows",
    "shortened_rows",
)


def commit_run(
    plan: TrainPlan,
    ctx: OperationContext,
    output: Path,
    key: str,
    last: dict[str, float],
    *,
    artifacts: ArtifactStore,
    producer: str,
    config: dict[str, Any] | None = None,
) -> ArtifactRecord:
    """Commits a finished run's folder as a model or adapter artifact with its lineage:
    ``last`` holds its final metrics, ``config`` what the producer adds to the lineage. The
    request id ``<key>/model`` makes it once per operation."""
    manifest = read_manifest(output)
    metrics = {k: float(v) for k, v in last.items() if k in FINAL_METRICS or k.startswith("eval_")}
    adapter = plan.strategy.produces_adapter
    base = plan.model
    metadata = {
        "format": "peft_adapter" if adapter else "hf",
        "task": plan.task,
        "labels": plan.labels,
        "finetune": plan.strategy.name,
        "base_model": base.source,
        "base_artifact_id": base.artifact.id if base.artifact else "",
        "base_builtin": base.builtin,
        "steps": int(manifest.get("steps", 0)),
        "trainable_parameters": int(manifest.get("trainable_parameters", 0)),
        "total_parameters": int(manifest.get("total_parameters", 0)),
        "metrics": metrics,
        "evaluation": manifest.get("evaluation", {}),
        "max_length": plan.hyper["max_length"],
    }
    parents = [plan.train.id] + ([plan.eval.id] if plan.eval else [])
    if base.artifact is not None:
        parents.append(base.artifact.id)
    spec = asdict(plan.spec)
    return artifacts.commit_dir(
        output,
        kind="adapter" if adapter else "model",
        name=plan.output_name,
        metadata=metadata,
        lineage=Lineage(
            parent_ids=parents,
            producer=producer,
            operation=ctx.name,
            config={**spec, "resolved": plan.hyper, **(config or {})},
        ),
        request_id=f"{key}/model",
    )
