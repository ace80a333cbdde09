"""Continual learning over a memory: update a classifier on a new task without forgetting the
old ones, and promote the update only when it kept what the model knew. No gRPC here.

An update (1) scores the new rows with the current model and keeps those a selectors plugin
chooses, (2) mixes in samples a samplers plugin replays from the memory, (3) fine-tunes the model
with the training recipe on Ray Train, a regularizers plugin anchoring it on old samples (its
state, e.g. online EWC's Fisher information, travels inside the model folder to the next
update), (4) scores every task the memory knows, and the new one, before and after, (5) commits
the new model, and (6) promotes it when the worst old task lost at most ``max_forgetting``: in
one SQLite transaction the new rows join the memory and the memory's model, tasks and history
move on. A refused or failed update leaves the memory and its model as they were.

The memory's state: ``model_id``, ``tasks`` (name -> the held-out rows it is scored on) and
``history`` (every promoted update: the accuracy of every task after it, update 0 being the
model the first update started from). Forgetting is the largest drop of an old task's accuracy
in this update; backward transfer is the mean, over old tasks, of the accuracy now minus the
accuracy right after the task was learned (Lopez-Paz and Ranzato, 2017).
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forgeline import cluster, modelio
from forgeline.artifacts import ArtifactRecord, Lineage
from forgeline.datasets import Dataset, DatasetRef, DatasetRepository, output_name
from forgeline.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from forgeline.finetune.recipe import RecipeConfig
from forgeline.finetune.runner import recipe_hyper, train_on_ray
from forgeline.models import GENERATIVE_TASKS, SEQUENCE_CLASSIFICATION, ModelRepository
from forgeline.paths import folder_name
from forgeline.registry import PluginChoice, ScoredRows
from forgeline.services.memory.memories import SERVICE, Memories
from forgeline.services.memory.store import IndexConfig, MemoryConfig, Sample

if TYPE_CHECKING:
    from forgeline.operations import OperationContext
    from forgeline.settings import Settings

METHOD = f"{SERVICE}/ContinualUpdate"
DEFAULT_SELECTOR = PluginChoice("confidence")
DEFAULT_SAMPLER = PluginChoice("reservoir")
DEFAULT_REGULARIZER = PluginChoice("ewc")
DEFAULT_MAX_FORGETTING = 0.02
DEFAULT_HOLDOUT = 0.2
DEFAULT_OLD_ROWS = 512
MAX_REPLAY_RATIO = 100.0
FORMATS = (modelio.HF, modelio.HF_PRUNED, "peft_adapter")


@dataclass(frozen=True)
class Hyper:
    learning_rate: float = 0.0
    batch_size: int = 0
    epochs: int = 0
    max_length: int = 0
    seed: int = 0
    num_workers: int = 0
    cpus_per_worker: float = 0.0
    warmup_ratio: float = 0.0
    warmup_steps: int = 0
    weight_decay: float = 0.0
    gradient_accumulation_steps: int = 0
    max_steps: int = 0
    group_by_length: bool = False


@dataclass(frozen=True)
class NewMemory:
    """How to create the memory when it does not exist yet (a pipeline's first update)."""

    embedding: dict[str, str]
    index: IndexConfig
    description: str = ""
    dataset: DatasetRef | None = None  # the old task's rows it starts with


@dataclass(frozen=True)
class UpdateSpec:
    memory: str
    new_data: DatasetRef
    model_id: str = ""
    create: NewMemory | None = None
    new_eval: DatasetRef | None = None
    holdout_fraction: float = 0.0
    task: str = ""
    old_tasks: tuple[tuple[str, DatasetRef], ...] = ()
    selector: PluginChoice | None = None
    replay_ratio: float | None = None
    replay_sampler: PluginChoice | None = None
    regularizer: PluginChoice | None = None
    old_rows: int = 0
    hyper: Hyper = field(default_factory=Hyper)
    max_forgetting: float | None = None
    output_name: str = ""


@dataclass
class Rows:
    """A dataset's rows; with ``holdout``, only the rows a seeded split holds out (a task
    scored on part of the rows its update learned from)."""

    dataset: Dataset
    text: str
    label: str
    holdout: float = 0.0
    seed: int = 0

    def ref(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset.id,
            "text": self.text,
            "label": self.label,
            "holdout": self.holdout,
            "seed": self.seed,
        }


@dataclass
class UpdatePlan:
    spec: UpdateSpec
    memory: str
    new_memory: MemoryConfig | None  # to create before the update, holding seed's rows
    seed: DatasetRef | None
    state: dict[str, Any]
    model: ArtifactRecord
    model_dir: Path
    base_dir: Path | None  # an adapter's base model
    labels: list[str]
    task: str
    new_data: Rows
    new_eval: Rows  # the new task's held-out rows (maybe a split of new_data)
    old_tasks: dict[str, Rows]  # every old task scored: the memory's and the request's
    selector: PluginChoice
    sampler: PluginChoice
    regularizer: PluginChoice
    replay_ratio: float
    old_rows: int
    hyper: dict[str, Any]
    max_forgetting: float
    output_name: str


@dataclass
class TaskScore:
    task: str
    before: float
    after: float
    learned: float
    new: bool
    examples: int


@dataclass
class Trained:
    """What an update trained: its model (None when the selector kept no row), the rows."""

    record: ArtifactRecord | None
    selected: int
    replayed: int
    metrics: dict[str, float]


@dataclass
class UpdateOutcome:
    model: ArtifactRecord
    promoted: bool
    reason: str
    previous_model_id: str
    task: str
    new_rows: int
    selected_rows: int
    replayed_rows: int
    added_samples: int
    tasks: list[TaskScore]
    forgetting: float
    max_forgetting: float
    backward_transfer: float
    new_task_accuracy: float
    new_task_accuracy_before: float
    history: list[dict[str, Any]]
    metrics: dict[str, float]
    seconds: float = 0.0


class ContinualJobs:
    def __init__(
        self,
        memories: Memories,
        datasets: DatasetRepository,
        models: ModelRepository,
        settings: Settings,
    ) -> None:
        self.memories = memories
        self.models = models
        self.artifacts = models.artifacts
        self.datasets = datasets
        self.settings = settings
        self.registry = memories.registry
        self.runs_dir = settings.home.expanduser() / "services" / "memory" / "runs"

    # === checking a request =====================================================================

    def plan(self, spec: UpdateSpec) -> UpdatePlan:
        store = self.memories.store
        new_memory, seed, seeded = None, None, None
        if store.exists(spec.memory) or spec.create is None:
            config = store.config(spec.memory)  # NotFound names the memories there are
            state = store.continual_state(spec.memory)
        else:
            if spec.model_id:  # refused before the new memory's embedding model loads
                self._classifier(spec.model_id, spec.memory)
            new_memory = _prefixed(
                "create_memory.",
                self.memories.config_for,
                spec.memory,
                spec.create.embedding,
                spec.create.index,
                spec.create.description,
            )
            config, state, seed = new_memory, {}, spec.create.dataset
            if seed is not None:
                seeded = self._rows(seed, "create_memory.dataset", [])
        if not config.embedding:
            field = "create_memory.embedding" if new_memory else "memory"
            raise FailedPrecondition(
                f"{field}: memory {spec.memory!r} has no embedding model to add the new rows "
                f"with; create one with an embedding source",
                reason="NO_EMBEDDING_MODEL",
                metadata={"field": field},
            )
        model_id = spec.model_id or state.get("model_id", "")
        if not model_id:
            raise InvalidArgument.for_field(
                "model_id", f"memory {spec.memory!r} has no model yet: name the one to update"
            )
        record, labels = self._classifier(model_id, spec.memory)
        folder = self.artifacts.verify(record)
        modelio.check_safe(folder)
        fmt = record.metadata.get("format", modelio.HF)
        base = self.models.adapter_base(record) if fmt == "peft_adapter" else None

        new_data = self._rows(spec.new_data, "new_data", labels)
        if new_data.dataset.num_rows == 0:
            raise InvalidArgument.for_field(
                "new_data.dataset_id", f"dataset {new_data.dataset.id} has no rows"
            )
        hyper = self._hyper(spec.hyper, record)
        if spec.new_eval is not None:
            new_eval = self._rows(spec.new_eval, "new_eval", labels)
        else:
            holdout = spec.holdout_fraction or DEFAULT_HOLDOUT
            if not 0.0 < holdout <= 0.5:
                raise InvalidArgument.for_field(
                    "holdout_fraction", f"{holdout} is outside (0, 0.5]"
                )
            held = _held_out(new_data.dataset.num_rows, holdout)
            if held < 1 or held >= new_data.dataset.num_rows:
                raise InvalidArgument.for_field(
                    "new_data.dataset_id",
                    f"dataset {new_data.dataset.id} has {new_data.dataset.num_rows} row(s): too "
                    f"few to hold {holdout:g} of them out; give new_eval",
                )
            new_data.holdout, new_data.seed = holdout, hyper["seed"]
            new_eval = Rows(new_data.dataset, new_data.text, new_data.label, holdout, hyper["seed"])
        task = spec.task or new_data.dataset.id
        remembered = state.get("tasks", {})
        if task in remembered:
            raise InvalidArgument.for_field(
                "task",
                f"memory {spec.memory!r} already has a task {task!r}: give the new task its own "
                f"name (e.g. with a date)",
            )
        known: dict[str, Rows] = {}
        for name, ref in sorted(remembered.items()):
            rows = self._rows(
                DatasetRef(ref["dataset"], ref["text"], ref["label"]), f"tasks[{name}]", labels
            )
            rows.holdout, rows.seed = ref["holdout"], ref["seed"]
            known[name] = rows
        for i, (name, ref) in enumerate(spec.old_tasks):
            where = f"old_tasks[{i}]"
            name = name or ref.dataset_id
            rows = self._rows(ref, f"{where}.eval", labels)
            if name in remembered:
                if remembered[name]["dataset"] == rows.dataset.id:
                    continue  # already scored on these rows
                raise InvalidArgument.for_field(
                    f"{where}.task",
                    f"memory {spec.memory!r} scores task {name!r} on dataset "
                    f"{remembered[name]['dataset']}, not {rows.dataset.id}; name this one "
                    f"differently",
                )
            if name == task or name in known:
                raise InvalidArgument.for_field(f"{where}.task", f"task {name!r} is named twice")
            known[name] = rows

        selector = spec.selector or DEFAULT_SELECTOR
        sampler = spec.replay_sampler or DEFAULT_SAMPLER
        regularizer = spec.regularizer or DEFAULT_REGULARIZER
        self.registry.create("selectors", selector.name, selector.config, "selector")
        self.registry.create("samplers", sampler.name, sampler.config, "replay_sampler")
        self.registry.create("regularizers", regularizer.name, regularizer.config, "regularizer")
        ratio = 1.0 if spec.replay_ratio is None else spec.replay_ratio
        if not (math.isfinite(ratio) and 0.0 <= ratio <= MAX_REPLAY_RATIO):
            raise InvalidArgument.for_field(
                "replay_ratio", f"{ratio} is outside [0, {MAX_REPLAY_RATIO:g}]"
            )
        if not 0 <= spec.old_rows <= 100_000:
            raise InvalidArgument.for_field("old_rows", "must be in [0, 100000]")
        if new_memory is None:
            stats = store.stats(spec.memory, load=False)
            held, held_labels = stats.samples, set(stats.labels)
        elif seeded is not None:
            held = seeded.dataset.num_rows
            held_labels = set(
                self.datasets.labels(seeded.dataset, seeded.label, "create_memory.dataset", 1)
            )
        else:
            held, held_labels = 0, set()
        if regularizer.name != "none" and not held:
            raise FailedPrecondition(
                f"regularizer: {regularizer.name} is prepared on the old task's samples and "
                f"memory {spec.memory!r} holds none; add them (AddSamples with the old task's "
                f"dataset) or choose 'none'",
                reason="EMPTY_MEMORY",
                metadata={"field": "regularizer.name"},
            )
        unknown = sorted(held_labels - set(labels))
        if unknown and (ratio > 0 or regularizer.name != "none"):
            raise FailedPrecondition(
                f"memory: memory {spec.memory!r} holds samples labelled {unknown[:10]}, unknown "
                f"to model {record.id} (its labels: {labels[:20]})",
                reason="UNKNOWN_LABELS",
                metadata={"field": "memory"},
            )
        bound = DEFAULT_MAX_FORGETTING if spec.max_forgetting is None else spec.max_forgetting
        if not (math.isfinite(bound) and 0.0 <= bound <= 1.0):
            raise InvalidArgument.for_field(
                "max_forgetting", f"{bound} is not a fraction in [0, 1] (0.02 = two points)"
            )
        return UpdatePlan(
            spec=spec,
            memory=spec.memory,
            new_memory=new_memory,
            seed=seed,
            state=state,
            model=record,
            model_dir=folder,
            base_dir=base,
            labels=labels,
            task=task,
            new_data=new_data,
            new_eval=new_eval,
            old_tasks=known,
            selector=selector,
            sampler=sampler,
            regularizer=regularizer,
            replay_ratio=ratio,
            old_rows=spec.old_rows or DEFAULT_OLD_ROWS,
            hyper=hyper,
            max_forgetting=bound,
            output_name=output_name(spec.output_name or f"{record.name}-{task}"),
        )

    def _rows(self, ref: DatasetRef, name: str, labels: list[str]) -> Rows:
        """A dataset's text and label columns, its labels among ``labels`` (unless empty)."""
        dataset, text, label = self.datasets.resolve(ref, name, SEQUENCE_CLASSIFICATION)
        if labels:
            self.datasets.check_labels(dataset, label, labels, name, "are unknown to the model")
        return Rows(dataset, text, label)

    def _classifier(self, model_id: str, memory: str) -> tuple[ArtifactRecord, list[str]]:
        """The model to update and its labels. Every stage of an update is a classifier's:
        the selector picks new rows by the model's confidence in their labels, replay mixes in
        labelled samples, EWC anchors on the old task's labelled rows, and forgetting is the
        drop of each task's accuracy. A generative model (causal LM, instruction, seq2seq) has
        none of these, so it is refused here, before any work, rather than trained on labels
        it does not have."""
        record = self.models.model_record(model_id, formats=FORMATS)
        task = record.metadata["task"]
        labels = [str(v) for v in record.metadata.get("labels", [])]
        if task in GENERATIVE_TASKS:
            raise FailedPrecondition(
                f"model_id: {record.id} is a generative {task} model; a continual update "
                f"selects rows by a classifier's confidence in their labels, replays labelled "
                f"samples and measures forgetting as each task's accuracy, so it takes "
                f"{SEQUENCE_CLASSIFICATION} models only. Keep a generative model learning by "
                f"training it again (TrainModel) on the new rows mixed with replayed old ones "
                f"(SampleReplay of memory {memory!r})",
                reason="NOT_A_CLASSIFIER",
                metadata={"field": "model_id"},
            )
        if task != SEQUENCE_CLASSIFICATION or not labels:
            raise FailedPrecondition(
                f"model_id: {record.id} is a {task} model; a continual update measures "
                f"forgetting as accuracy, so it takes {SEQUENCE_CLASSIFICATION} models",
                reason="NOT_A_CLASSIFIER",
                metadata={"field": "model_id"},
            )
        return record, labels

    @staticmethod
    def _hyper(h: Hyper, record: ArtifactRecord) -> dict[str, Any]:
        values = {
            "learning_rate": h.learning_rate or 2e-5,
            "batch_size": h.batch_size or 16,
            "epochs": h.epochs or 2,
            "max_length": h.max_length or int(record.metadata.get("max_length") or 128),
            "seed": h.seed,
            "num_workers": h.num_workers or 1,
            "cpus_per_worker": h.cpus_per_worker or 1.0,
            "warmup_ratio": h.warmup_ratio,
            "warmup_steps": h.warmup_steps,
            "weight_decay": h.weight_decay,
            "gradient_accumulation_steps": h.gradient_accumulation_steps or 1,
            "max_steps": h.max_steps,
            "group_by_length": h.group_by_length,
        }
        checks = {
            "hyper_parameters.learning_rate": 0 < values["learning_rate"] <= 1,
            "hyper_parameters.batch_size_per_worker": 1 <= values["batch_size"] <= 4096,
            "hyper_parameters.epochs": 1 <= values["epochs"] <= 1000,
            "hyper_parameters.max_sequence_length": 8 <= values["max_length"] <= 8192,
            "scaling.num_workers": 1 <= values["num_workers"] <= 256,
            "scaling.cpus_per_worker": 0 < values["cpus_per_worker"] <= 256,
            "hyper_parameters.warmup_ratio": 0 <= values["warmup_ratio"] < 1,
            "hyper_parameters.warmup_steps": values["warmup_steps"] >= 0,
            "hyper_parameters.weight_decay": 0 <= values["weight_decay"] <= 1,
            "hyper_parameters.gradient_accumulation_steps": 1
            <= values["gradient_accumulation_steps"]
            <= 1024,
            "hyper_parameters.max_steps": values["max_steps"] >= 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise InvalidArgument.for_field(name, "is out of range")
        return values

    # === running an update ======================================================================

    def run(self, spec: UpdateSpec, ctx: OperationContext, request_id: str) -> UpdateOutcome:
        started = time.monotonic()
        plan = self.plan(spec)
        key = request_id or ctx.name
        work = self.runs_dir / folder_name(ctx.name)
        work.mkdir(parents=True, exist_ok=True)
        if plan.new_memory is not None and not self.memories.store.exists(plan.memory):
            ctx.progress(0.0, f"creating memory {plan.memory!r}")
            self._create_memory(plan)
        try:
            outcome = self._update(plan, ctx, key, work)
        finally:  # a stopping service resumes the update at its restart, with this folder
            if not ctx.stopping():
                shutil.rmtree(work, ignore_errors=True)
        outcome.seconds = time.monotonic() - started
        return outcome

    def _create_memory(self, plan: UpdatePlan) -> None:
        try:
            self.memories.create(plan.new_memory, plan.seed)
        except AlreadyExists:
            pass  # created meanwhile by another update of the same memory: use it

    def _update(self, plan: UpdatePlan, ctx, key: str, work: Path) -> UpdateOutcome:
        from forgeline.models import class_probabilities

        ctx.progress(0.0, "scoring the model before the update")
        current = self._model_folder(plan, work)
        texts, labels = self._read(plan.new_data, held=False)
        evals = {t: self._read(rows) for t, rows in plan.old_tasks.items()}
        evals[plan.task] = self._read(plan.new_eval)
        model, tokenizer = _load(current, plan.labels)
        before = {t: _accuracy(model, tokenizer, rows, plan) for t, rows in evals.items()}
        ctx.metrics({f"before/{t}": v for t, v in before.items()}, step=0)
        index = {label: i for i, label in enumerate(plan.labels)}
        probabilities = class_probabilities(
            model, tokenizer, texts, batch_size=64, max_length=plan.hyper["max_length"]
        )
        del model
        selector = self.registry.create(
            "selectors", plan.selector.name, plan.selector.config, "selector"
        )
        chosen = selector.select(ScoredRows(probabilities, [index[y] for y in labels]))
        ctx.progress(0.1, f"{plan.selector.name} kept {len(chosen)} of {len(texts)} new rows")
        ctx.check_cancelled()

        done = self.artifacts.find_by_request_id(f"{key}/model")
        replayed, metrics = 0, {}
        if done is not None:  # trained and committed before a restart
            record = done
            replayed = int(done.metadata.get("continual", {}).get("replayed_rows", 0))
            metrics = dict(done.metadata.get("metrics", {}))
        elif not chosen:
            record = None
        else:
            train, old, replayed = self._training_rows(plan, texts, labels, chosen, work)
            with self.artifacts.staging_path() as output:
                metrics = self._train(plan, ctx, current, train, old, output, key)
                record = self._commit(plan, ctx, key, output, metrics, replayed, len(chosen))
        if record is None:
            after = dict(before)
        else:
            ctx.progress(0.9, "scoring the model after the update")
            model, tokenizer = _load(self.artifacts.verify(record), plan.labels)
            after = {t: _accuracy(model, tokenizer, rows, plan) for t, rows in evals.items()}
            del model
        ctx.metrics({f"after/{t}": v for t, v in after.items()}, step=1)
        trained = Trained(record, len(chosen), replayed, metrics)
        examples = {t: len(rows[0]) for t, rows in evals.items()}
        return self._decide(plan, key, trained, before, after, examples, texts, labels)

    def _decide(
        self,
        plan: UpdatePlan,
        key: str,
        trained: Trained,
        before: dict[str, float],
        after: dict[str, float],
        examples: dict[str, int],
        texts: list[str],
        labels: list[str],
    ) -> UpdateOutcome:
        """Forgetting, backward transfer and the promotion; a promoted update lands."""
        record = trained.record
        learned = self._learned(plan, before)
        old = [t for t in examples if t != plan.task]
        drops = [before[t] - after[t] for t in old]
        forgetting = max([0.0, *drops])
        transfer = sum(after[t] - learned[t] for t in old) / len(old) if old else 0.0
        scores = [
            TaskScore(
                task=t,
                before=before[t],
                after=after[t],
                learned=after[t] if t == plan.task else learned[t],
                new=t == plan.task,
                examples=examples[t],
            )
            for t in [*old, plan.task]
        ]
        if record is None:
            promoted = False
            reason = (
                f"the {plan.selector.name} selector kept none of the {len(texts)} new rows: the "
                f"model already knows them; nothing was trained"
            )
        elif forgetting > plan.max_forgetting + 1e-9:
            worst = max(old, key=lambda t: before[t] - after[t])
            promoted = False
            reason = (
                f"not promoted: task {worst!r} dropped from {before[worst]:.4f} to "
                f"{after[worst]:.4f} ({forgetting * 100:.2f} points), over max_forgetting "
                f"({plan.max_forgetting * 100:.2f} points)"
            )
        else:
            promoted = True
            reason = (
                f"promoted: the worst old task lost {forgetting * 100:.2f} points (max "
                f"{plan.max_forgetting * 100:.2f}); {plan.task!r} went from "
                f"{before[plan.task]:.4f} to {after[plan.task]:.4f}"
                if old
                else f"promoted: no old task to forget; {plan.task!r} went from "
                f"{before[plan.task]:.4f} to {after[plan.task]:.4f}"
            )
        history = list(plan.state.get("history", []))
        if not history:  # update 0: the model the first update started from
            history.append(
                {
                    "update": 0,
                    "model_id": plan.model.id,
                    "task": "",
                    "accuracy": dict(before),
                    "promoted": True,
                    "forgetting": 0.0,
                    "operation": "",
                }
            )
        entry = {
            "update": max(h["update"] for h in history) + 1,
            "model_id": record.id if record else plan.model.id,
            "task": plan.task,
            "accuracy": dict(after),
            "promoted": promoted,
            "forgetting": forgetting,
            "operation": key,
        }
        added = 0
        if promoted:
            added = self._promote(plan, key, record, history, entry, texts, labels)
        return UpdateOutcome(
            model=record or plan.model,
            promoted=promoted,
            reason=reason,
            previous_model_id=plan.model.id,
            task=plan.task,
            new_rows=len(texts),
            selected_rows=trained.selected,
            replayed_rows=trained.replayed,
            added_samples=added,
            tasks=scores,
            forgetting=forgetting,
            max_forgetting=plan.max_forgetting,
            backward_transfer=transfer,
            new_task_accuracy=after[plan.task],
            new_task_accuracy_before=before[plan.task],
            history=[*history, entry],
            metrics={k: float(v) for k, v in trained.metrics.items()},
        )

    def _learned(self, plan: UpdatePlan, before: dict[str, float]) -> dict[str, float]:
        """Each old task's accuracy right after it was learned: from the first update whose
        record scores it (update 0 for the tasks known when the memory's first update ran);
        a task new to this memory: its accuracy now."""
        learned: dict[str, float] = {}
        for h in plan.state.get("history", []):
            for task, value in h["accuracy"].items():
                learned.setdefault(task, value)
        return {t: learned.get(t, before[t]) for t in before}

    def _promote(self, plan, key, record, history, entry, texts, labels) -> int:
        """The new rows join the memory and the memory's state moves on, in one transaction."""
        store = self.memories.store
        now = store.continual_state(plan.memory)
        if any(h.get("operation") == key for h in now.get("history", [])):
            return len(texts)  # promoted before a restart; only the reply was lost
        tasks = {name: rows.ref() for name, rows in plan.old_tasks.items()}
        tasks[plan.task] = plan.new_eval.ref()
        state = {"model_id": record.id, "tasks": tasks, "history": [*history, entry]}
        samples = [
            Sample(
                text=t,
                label=y,
                source=plan.new_data.dataset.id,
                metadata={"task": plan.task, "update": entry["update"]},
            )
            for t, y in zip(texts, labels, strict=True)
        ]
        config = store.config(plan.memory)
        vectors = self.memories.embedders.embed(config.embedding, texts)
        store.add(
            plan.memory,
            samples,
            vectors,
            state=state,
            expect_model=plan.state.get("model_id", ""),  # two first updates: one wins
        )
        return len(samples)

    # --- the pieces ----------------------------------------------------------------------------

    def _model_folder(self, plan: UpdatePlan, work: Path) -> Path:
        """The model as a full folder (an adapter merged into its base)."""
        if plan.base_dir is None:
            return plan.model_dir
        from forgeline.models import merge_adapter

        folder = work / "merged"
        if not (folder / "config.json").exists():
            shutil.rmtree(folder, ignore_errors=True)
            merge_adapter(plan.model_dir, plan.base_dir, folder, SEQUENCE_CLASSIFICATION)
            modelio.write_format(
                folder,
                {
                    "task": SEQUENCE_CLASSIFICATION,
                    "labels": plan.labels,
                    "max_length": plan.hyper["max_length"],
                    "merged": plan.model.id,
                },
            )
        return folder

    def _read(self, rows: Rows, held: bool = True) -> tuple[list[str], list[str]]:
        """Texts and labels; of rows split by a holdout, the held-out part (``held``) or the
        rest."""
        table = self.datasets.read(rows.dataset, columns=[rows.text, rows.label])
        texts = [t or "" for t in table.column(0).to_pylist()]
        labels = [str(v) for v in table.column(1).to_pylist()]
        if not rows.holdout:
            return texts, labels
        out = _held_positions(len(texts), rows.holdout, rows.seed)
        keep = sorted(out) if held else [i for i in range(len(texts)) if i not in out]
        return [texts[i] for i in keep], [labels[i] for i in keep]

    def _training_rows(self, plan: UpdatePlan, texts, labels, chosen, work: Path):
        """The selected new rows and the replayed memory samples, shuffled, as a Parquet file;
        the old samples the regularizer is prepared on as another."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.parquet as pq

        seed = plan.hyper["seed"]
        k = round(plan.replay_ratio * len(chosen))
        replay: list[Sample] = []
        if k:
            _, replay, _ = self.memories.replay(plan.memory, k, plan.sampler, seed, {})
        rows_text = [texts[i] for i in chosen] + [s.text for s in replay]
        rows_label = [labels[i] for i in chosen] + [s.label for s in replay]
        order = np.random.default_rng(seed).permutation(len(rows_text))
        train = work / "train.parquet"
        pq.write_table(
            pa.table(
                {
                    "text": [rows_text[i] for i in order],
                    "label": [rows_label[i] for i in order],
                }
            ),
            train,
        )
        old = None
        if plan.regularizer.name != "none":
            _, anchor, _ = self.memories.replay(
                plan.memory, plan.old_rows, DEFAULT_SAMPLER, seed + 1, {}
            )
            old = work / "old.parquet"
            pq.write_table(
                pa.table({"text": [s.text for s in anchor], "label": [s.label for s in anchor]}),
                old,
            )
        return train, old, len(replay)

    def _train(self, plan, ctx, model_dir: Path, train: Path, old, output: Path, key) -> dict:
        h = plan.hyper
        cluster.ensure_ray(self.settings, ctx, at=0.1)  # the wait is progress
        cluster.require_cpus(
            h["num_workers"], h["cpus_per_worker"], "scaling", "scaling.num_workers"
        )
        state = plan.model_dir / "regularizer"
        config = RecipeConfig(
            task=SEQUENCE_CLASSIFICATION,
            model_path=str(model_dir),
            finetune="full",
            train_path=str(train),
            labels=plan.labels,
            **recipe_hyper(h),
            output_dir=str(output),
            regularizer="" if plan.regularizer.name == "none" else plan.regularizer.name,
            regularizer_config=dict(plan.regularizer.config),
            old_path=str(old or ""),
            regularizer_state=str(state) if state.is_dir() else "",
        )
        run_name = folder_name(f"{ctx.name}-train")
        summary = train_on_ray(config, ctx, h, self.runs_dir, run_name, artifacts=self.artifacts)
        shutil.rmtree(self.runs_dir / run_name, ignore_errors=True)
        return {
            k: float(v)
            for k, v in summary["last"].items()
            if k in ("loss", "samples_per_second", "tokens_per_second")
        }

    def _commit(self, plan, ctx, key, output: Path, metrics, replayed: int, selected: int):
        from forgeline.models import read_manifest

        manifest = read_manifest(output)
        continual = {
            "memory": plan.memory,
            "task": plan.task,
            "previous_model_id": plan.model.id,
            "selector": plan.selector.name,
            "replay_sampler": plan.sampler.name,
            "regularizer": plan.regularizer.name,
            "selected_rows": selected,
            "replayed_rows": replayed,
        }
        parents = [plan.model.id, plan.new_data.dataset.id]
        if plan.new_eval.dataset.id != plan.new_data.dataset.id:
            parents.append(plan.new_eval.dataset.id)
        return self.artifacts.commit_dir(
            output,
            kind="model",
            name=plan.output_name,
            metadata={
                "format": modelio.folder_format(output),
                "task": SEQUENCE_CLASSIFICATION,
                "labels": plan.labels,
                "finetune": "full",
                "max_length": plan.hyper["max_length"],
                "steps": int(manifest.get("steps", 0)),
                "trainable_parameters": int(manifest.get("trainable_parameters", 0)),
                "total_parameters": int(manifest.get("total_parameters", 0)),
                "metrics": metrics,
                "continual": continual,
            },
            lineage=Lineage(
                parent_ids=parents,
                producer=METHOD,
                operation=ctx.name,
                config={
                    **continual,
                    "selector_config": dict(plan.selector.config),
                    "replay_sampler_config": dict(plan.sampler.config),
                    "regularizer_config": dict(plan.regularizer.config),
                    "replay_ratio": plan.replay_ratio,
                    "max_forgetting": plan.max_forgetting,
                    "hyper": plan.hyper,
                },
            ),
            request_id=f"{key}/model",
        )


def _prefixed(prefix: str, call, *args):
    """``call(*args)``, its InvalidArgument's fields under ``prefix`` (a nested message)."""
    try:
        return call(*args)
    except InvalidArgument as exc:
        v = exc.violations[0] if exc.violations else None
        if v is None:
            raise
        raise InvalidArgument.for_field(prefix + v.field, v.description) from exc


def _held_out(n: int, fraction: float) -> int:
    return int(round(n * fraction))


def _held_positions(n: int, fraction: float, seed: int) -> set[int]:
    """The rows a seeded split holds out (the same every time: datasets never change)."""
    import numpy as np

    order = np.random.default_rng(seed).permutation(n)
    return set(order[: _held_out(n, fraction)].tolist())


def _load(folder: Path, labels: list[str]):
    from transformers import AutoTokenizer

    from forgeline.models import load_model

    model = load_model(SEQUENCE_CLASSIFICATION, str(folder), labels).eval()
    return model, AutoTokenizer.from_pretrained(folder, local_files_only=True)


def _accuracy(model, tokenizer, rows: tuple[list[str], list[str]], plan: UpdatePlan) -> float:
    from forgeline.models import evaluate

    texts, labels = rows
    return evaluate(
        model,
        tokenizer,
        texts,
        labels,
        SEQUENCE_CLASSIFICATION,
        batch_size=64,
        max_length=plan.hyper["max_length"],
    ).accuracy
