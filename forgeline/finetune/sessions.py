"""Where the recipe runs: a Ray Train worker group (TrainSession), one Ray Tune trial
(TuneSession) or this process (LocalSession). A session gives the recipe its rank, wraps the
model, finds the checkpoint to resume from, takes its reports and names its metrics sink."""

from __future__ import annotations

import shutil
from pathlib import Path

from forgeline.finetune.metrics import ActorSink, MetricsSink, actor_sink


class TrainSession:
    """The recipe inside a Ray Train worker group (DDP over every worker)."""

    def __init__(self) -> None:
        import ray.train

        context = ray.train.get_context()
        self.rank, self.world = context.get_world_rank(), context.get_world_size()

    def prepare(self, model):
        import ray.train.torch

        return ray.train.torch.prepare_model(model)

    def checkpoint(self):
        import ray.train

        return ray.train.get_checkpoint()

    def report(self, metrics: dict[str, float], folder: str | None, name: str) -> None:
        import ray.train

        checkpoint = ray.train.Checkpoint.from_directory(folder) if folder else None
        ray.train.report(metrics, checkpoint=checkpoint, checkpoint_dir_name=name)

    def metrics_sink(self, name: str) -> ActorSink | None:
        return actor_sink(name)

    def node_id(self) -> str:
        import ray

        return ray.get_runtime_context().get_node_id()


class TuneSession:
    """The recipe as one Ray Tune trial: a single process, reports going to Tune (its
    schedulers judge them), checkpoints kept by Tune for a restored experiment."""

    rank, world = 0, 1

    def prepare(self, model):
        import ray
        import torch

        if ray.get_gpu_ids() and torch.cuda.is_available():
            return model.to("cuda")
        return model

    def checkpoint(self):
        from ray import tune

        return tune.get_checkpoint()

    def report(self, metrics: dict[str, float], folder: str | None, name: str) -> None:
        from ray import tune

        checkpoint = tune.Checkpoint.from_directory(folder) if folder else None
        tune.report(metrics, checkpoint=checkpoint)

    def metrics_sink(self, name: str) -> ActorSink | None:
        return actor_sink(name)

    def node_id(self) -> str:
        import ray

        return ray.get_runtime_context().get_node_id()


class LocalSession:
    """The recipe in the calling process: one rank, no DDP, no Ray; reports are kept in
    ``reports`` (benchmarks and tests that need a trained model quickly). Metric points go to
    ``sink`` when one is given, and checkpoints are copied into ``checkpoints`` (as Ray Train
    copies them into the run's storage) when it is given: a run whose ``checkpoint_root`` names
    that folder resumes from them."""

    rank, world = 0, 1

    def __init__(self, sink: MetricsSink | None = None, checkpoints: Path | None = None) -> None:
        self.reports: list[dict[str, float]] = []
        self.sink, self.checkpoints = sink, checkpoints

    def prepare(self, model):
        return model

    def checkpoint(self):
        return None

    def report(self, metrics: dict[str, float], folder: str | None, name: str) -> None:
        if folder and self.checkpoints is not None:
            shutil.copytree(folder, self.checkpoints / name)
        self.reports.append(metrics)

    def metrics_sink(self, name: str) -> MetricsSink | None:
        return self.sink

    def node_id(self) -> str:
        return "local"


Session = TrainSession | TuneSession | LocalSession
