"""The recipe on Ray Train, run as a Ray task an operation can cancel, and its plumbing.

``train_on_ray`` is how a service fine-tunes: the training service for TrainModel, the compression
service to distill, the memory service for a continual update. It streams the workers' metric
points into the operation's event log (metrics.py), turns a worker's failure into a client-facing
error, and, when the artifacts are on shared storage, gives the workers their inputs there so
they may run on any machine. ``recipe_config`` is what the workers run for a training plan (a
TrainModel run, or every tuning trial's base).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forgeline import cluster
from forgeline import storage as shared_storage
from forgeline.artifacts import ArtifactStore
from forgeline.errors import ForgelineError, Internal, ResourceExhausted, cause_line
from forgeline.finetune.metrics import ActorSink, MetricsLog, MetricsSink
from forgeline.finetune.recipe import RECIPE_INPUTS, RecipeConfig
from forgeline.models import MANIFEST, SEQUENCE_CLASSIFICATION, read_manifest

if TYPE_CHECKING:
    from forgeline.contracts.compressors import TrainRun
    from forgeline.finetune.planning import TrainPlan
    from forgeline.operations import OperationContext


def train_on_ray(
    config: RecipeConfig,
    ctx: OperationContext,
    scaling: dict[str, Any],
    storage: Path,
    run_name: str,
    *,
    artifacts: ArtifactStore | None = None,
    on_point: Any = None,
) -> dict[str, Any]:
    """Runs the recipe on Ray Train as a Ray task this operation can cancel, draining the
    metric points the workers stream into the operation's event log (and ``on_point(values,
    step)``). ``scaling`` holds num_workers, use_gpu, cpus_per_worker, max_failures and
    keep_checkpoints. Returns the fit's summary with ``last``: the latest value of every
    metric. The same ``run_name`` after a restart resumes from the latest checkpoint.

    ``storage`` is the service's local runs folder. When ``artifacts`` are on shared storage
    the workers may be on any machine: the run's inputs are given as shared locations (an
    artifact's object as it is, anything else uploaded beside the run), Ray's storage and the
    finished model go there too, and the model comes back into ``config.output_dir``."""
    import ray

    from forgeline.finetune.recipe import fit_summary

    cluster.ensure_ray()
    sink_name = f"forgeline-metrics-{run_name}"
    sink = ActorSink(
        ray.remote(MetricsSink)
        .options(
            name=sink_name,
            namespace=cluster.NAMESPACE,
            get_if_exists=True,
            num_cpus=0,
            **cluster.ON_HEAD,
        )
        .remote()
    )
    output, model_path = Path(config.output_dir), config.model_path
    runs = shared_runs(artifacts, storage) if artifacts is not None else None
    if runs is not None:
        run = runs.child(run_name)
        config = shared_inputs(config, artifacts, run).model_copy(
            update={"output_dir": run.child("output").uri, "checkpoint_root": ""}
        )
        storage_path = runs.uri
    else:
        storage.mkdir(parents=True, exist_ok=True)
        storage_path = str(storage)
        config = config.model_copy(update={"checkpoint_root": str(storage / run_name)})
    config = config.model_copy(update={"metrics_actor": f"{cluster.NAMESPACE}/{sink_name}"})
    task = ray.remote(num_cpus=0, max_retries=0, **cluster.ON_HEAD)(fit_summary).remote(
        config,
        num_workers=scaling["num_workers"],
        use_gpu=scaling.get("use_gpu", False),
        cpus_per_worker=scaling["cpus_per_worker"],
        storage_path=storage_path,
        run_name=run_name,
        max_failures=scaling.get("max_failures", 0),
        keep_checkpoints=scaling.get("keep_checkpoints", 2),
    )
    ctx.progress(0.0, f"training on {scaling['num_workers']} worker(s)")
    metrics = MetricsLog(ctx, on_point)  # each step once, though a resumed run trains it again
    try:
        while True:
            # Often: a checkpoint waits until its metrics are stored.
            finished, _ = ray.wait([task], timeout=0.25)
            metrics.drain(sink)
            if finished:
                break
            ctx.check_cancelled()
        summary = ray.get(task)
        metrics.drain(sink)
    except BaseException as exc:
        # Ray's memory monitor kills a task as OutOfMemoryError, not RayTaskError: both are
        # the run's failure, said precisely (RESOURCE_EXHAUSTED for memory), never INTERNAL.
        if isinstance(exc, ray.exceptions.RayTaskError | ray.exceptions.OutOfMemoryError):
            raise _failure(exc) from None
        _stop(task)
        raise
    finally:
        ray.kill(sink.handle)
    if runs is not None:
        fetch_model(run.child("output"), output, model_path)
        shared_storage.remove(run)  # its inputs, checkpoints and output served their purpose
    return {**summary, "last": metrics.last}


def shared_runs(artifacts: ArtifactStore, storage: Path):
    """Where a service's Ray runs live when its artifacts are on shared storage (None when
    not): runs/<service>/ beside them, the service named by its local runs folder
    (<home>/services/<service>/runs)."""
    if artifacts.shared is None:
        return None
    return artifacts.shared.child("runs", storage.parent.name)


def shared_inputs(config: RecipeConfig, artifacts: ArtifactStore, run) -> RecipeConfig:
    """``config`` for workers on any machine: each local input as a shared location (an
    artifact's object where it is one, else uploaded under ``run``/inputs)."""
    updates: dict[str, Any] = {}
    for name in RECIPE_INPUTS:
        value = getattr(config, name)
        if value and not shared_storage.is_remote(value):
            location = artifacts.shared_object(Path(value))
            if location is None:
                location = run.child("inputs", name)
                shared_storage.upload(Path(value), location)
            updates[name] = location.uri
    return config.model_copy(update=updates)


def fetch_model(location, output: Path, model_path: str) -> None:
    """A model the workers wrote to shared storage, into ``output``, its manifest naming the
    base model as this service knows it (not a worker's copy)."""
    shared_storage.download(location, output)
    manifest = read_manifest(output)
    if manifest:
        manifest["base_model_path"] = model_path
        Path(output, MANIFEST).write_text(json.dumps(manifest, indent=2))


# --- helpers -----------------------------------------------------------------------------------

# The hyper-parameters a resolved plan holds under the recipe's own names.
RECIPE_HYPER = (
    "learning_rate",
    "batch_size",
    "epochs",
    "max_steps",
    "warmup_ratio",
    "warmup_steps",
    "weight_decay",
    "gradient_accumulation_steps",
    "max_length",
    "seed",
    "group_by_length",
)


def recipe_hyper(h: dict[str, Any]) -> dict[str, Any]:
    """The recipe's optimisation fields of a resolved hyper-parameter dict."""
    return {name: h[name] for name in RECIPE_HYPER}


def recipe_config(
    plan: TrainPlan, artifacts: ArtifactStore, model_path: Path, output: Path
) -> RecipeConfig:
    """What the workers run for ``plan`` (TrainModel's run, or every tuning trial's)."""
    h = plan.hyper
    return RecipeConfig(
        task=plan.task,
        model_path=str(model_path),
        finetune=plan.strategy.name,
        finetune_config=plan.strategy.config.model_dump(),
        train_path=str(artifacts.verify(plan.train.record)),
        text_column=plan.text_column,
        label_column=plan.label_column,
        eval_path=str(artifacts.verify(plan.eval.record)) if plan.eval else "",
        eval_text_column=plan.eval_text_column,
        eval_label_column=plan.eval_label_column,
        columns=plan.columns,
        eval_columns=plan.eval_columns,
        long_inputs=plan.long_inputs.name if plan.long_inputs else "",
        long_inputs_config=plan.long_inputs.config.model_dump() if plan.long_inputs else {},
        input_token_budget=plan.input_token_budget,
        labels=plan.labels,
        **recipe_hyper(h),
        bf16=h["bf16"],
        checkpoint_every=h["checkpoint_every"],
        output_dir=str(output),
    )


def compressor_recipe_config(
    run: TrainRun,
    train_path: Path,
    *,
    labels: list[str],
    max_length: int,
    text_column: str = "text",
    label_column: str = "label",
) -> RecipeConfig:
    """What the recipe runs for a compressor's training run (every weight trains; a teacher
    when the compressor distills): the compression service's and the compressor suite's."""
    return RecipeConfig(
        task=SEQUENCE_CLASSIFICATION,
        model_path=str(run.model_dir),
        finetune="full",
        train_path=str(train_path),
        text_column=text_column,
        label_column=label_column,
        labels=labels,
        learning_rate=run.learning_rate,
        batch_size=run.batch_size,
        epochs=run.epochs,
        max_length=max_length,
        output_dir=str(run.output_dir),
        teacher_path=str(run.teacher_dir or ""),
        distill_temperature=run.temperature,
        distill_alpha=run.alpha,
    )


def _stop(task) -> None:
    """Stops a running fit task. A plain cancel interrupts it like Ctrl-C, which Ray Train
    answers by aborting the worker group and removing its placement group; a task still
    running after that is killed."""
    import ray

    ray.cancel(task, force=False)
    finished, _ = ray.wait([task], timeout=15)
    if not finished:
        ray.cancel(task, force=True)


_OOM_MARKERS = ("OutOfMemoryError", "out of memory", "MemoryError", "Cannot allocate memory")


def _failure(exc: BaseException) -> ForgelineError:
    """A worker's failure as a client-facing error: the last line of it, never a traceback."""
    text = str(exc)
    cause = cause_line(text, type(exc).__name__)
    if any(marker in f"{type(exc).__name__}: {text}" for marker in _OOM_MARKERS):
        return ResourceExhausted(
            f"a training worker ran out of memory ({cause[:300]}); lower "
            f"hyper_parameters.batch_size_per_worker or max_sequence_length (keep the "
            f"effective batch with gradient_accumulation_steps), or use more memory per worker",
            reason="WORKER_OUT_OF_MEMORY",
        )
    return Internal(f"training failed on a worker: {cause[:500]}", reason="TRAINING_FAILED")
