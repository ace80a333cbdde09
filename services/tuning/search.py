"""Runs a search on Ray Tune: the trial function, the events, restart and cancel.

Every trial runs the training recipe in its own Tune actor (``run_recipe`` with a
``TuneSession``): it reports the epoch's metrics, and Tune checkpoints, after every epoch, and
writes its finished model (with a manifest holding its final metrics) before its last report.

The experiment lives in the run folder; Tune saves its state (trials, searcher) at every step of
its loop, so a restarted service restores it with ``Tuner.restore``: finished trials are not run
again and the searcher keeps what it learnt. A trial Tune still counts as unfinished but whose
manifest exists (it finished just before the restart) reports its recorded metrics and returns
without training. Trial records (state, parameters, metrics per epoch) are kept in
``trials.json`` beside the experiment, written on every event, so the final table covers trials
from before a restart too.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forgeline import storage
from forgeline.errors import Cancelled, Internal, cause_line
from forgeline.logging import get_logger
from forgeline.operations import Interrupted
from forgeline.services.tuning.planning import TunePlan, plain, recipe_updates

if TYPE_CHECKING:
    from forgeline.operations import OperationContext

log = get_logger(__name__)

COMPLETED, STOPPED_EARLY, FAILED, RUNNING, PENDING, CANCELLED = (
    "completed",
    "stopped_early",
    "failed",
    "running",
    "pending",
    "cancelled",
)
EXPERIMENT = "experiment"
TRIALS = "trials"


@dataclass
class TrialRecord:
    id: str
    number: int
    state: str = PENDING
    parameters: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    history: list[float] = field(default_factory=list)  # the first objective per epoch
    iterations: int = 0
    seconds: float = 0.0
    error: str = ""
    pareto_optimal: bool = False


# --- in the trial's actor ------------------------------------------------------------------------


def model_dir(trials_dir: str, trial_id: str) -> str:
    """Where a trial writes its finished model: a folder, or a location in shared storage."""
    return storage.Location(trials_dir).child(trial_id, "model").uri


def trial_manifest(trials_dir: str, trial_id: str) -> dict[str, Any]:
    """The manifest of a trial's finished model; {} while it has none."""
    from forgeline.models import MANIFEST

    location = storage.Location(model_dir(trials_dir, trial_id)).child(MANIFEST)
    try:
        return json.loads(storage.read_bytes(location))
    except FileNotFoundError:
        return {}


def run_trial(params: dict[str, Any], *, base: dict[str, Any], trials_dir: str) -> None:
    """One trial, in its Tune actor: the training recipe with the sampled ``params`` set on
    ``base`` (a RecipeConfig as a dict)."""
    from ray import tune

    from forgeline.finetune.recipe import RecipeConfig, run_recipe
    from forgeline.finetune.sessions import TuneSession

    trial_id = tune.get_context().get_trial_id()
    finished = trial_manifest(trials_dir, trial_id).get("final_metrics")
    if finished:  # it finished before a restart; Tune had not recorded it yet
        tune.report(finished)
        return
    output = model_dir(trials_dir, trial_id)
    if not storage.is_remote(output):
        Path(output).mkdir(parents=True, exist_ok=True)
    updates = recipe_updates(base["finetune_config"], params)
    config = RecipeConfig.model_validate({**base, **updates, "output_dir": output})
    run_recipe(config, TuneSession())


# --- in the service ------------------------------------------------------------------------------


class TrialBook:
    """The trials as the service sees them, saved to ``trials.json`` on every change."""

    def __init__(self, path: Path, plan: TunePlan) -> None:
        self.path = path
        self.objective = plan.search.objectives[0]
        self.total = plan.num_trials
        self.trials: dict[str, TrialRecord] = {}
        if path.exists():
            for raw in json.loads(path.read_text()):
                self.trials[raw["id"]] = TrialRecord(**raw)
        self.started: dict[str, float] = {}  # trial id -> when this process saw it start
        self.kept: set[str] = set()  # trials that finished before a restart, run again by Tune

    def save(self) -> None:
        temporary = self.path.with_suffix(".tmp")
        ordered = sorted(self.trials.values(), key=lambda t: t.number)
        temporary.write_text(json.dumps([asdict(t) for t in ordered]))
        os.replace(temporary, self.path)

    def record(self, trial) -> TrialRecord:
        if trial.trial_id not in self.trials:
            self.trials[trial.trial_id] = TrialRecord(
                id=trial.trial_id,
                number=_number(trial, len(self.trials) + 1),
                parameters={k: plain(v) for k, v in (trial.config or {}).items()},
            )
        return self.trials[trial.trial_id]

    def close(self, record: TrialRecord) -> None:
        started = self.started.pop(record.id, None)
        if started is not None:
            record.seconds += time.monotonic() - started
        self.save()

    def finished(self) -> int:
        return sum(t.state in (COMPLETED, STOPPED_EARLY, FAILED) for t in self.trials.values())

    def best(self) -> TrialRecord | None:
        done = [
            t
            for t in self.trials.values()
            if t.state == COMPLETED and self.objective.metric in t.metrics
        ]
        if not done:
            return None
        sign = 1 if self.objective.mode == "max" else -1
        return max(done, key=lambda t: (sign * t.metrics[self.objective.metric], -t.number))


def _number(trial, fallback: int) -> int:
    """Tune's 1-based creation index, the head of the trial's experiment tag ("3_lr=0.01")."""
    match = re.match(r"(\d+)", getattr(trial, "experiment_tag", "") or "")
    return int(match.group(1)) if match else fallback


def describe(values: dict[str, Any]) -> str:
    return ", ".join(f"{k.split('.')[-1]}={short(v)}" for k, v in values.items())


def short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


REPORTED = ("loss", "samples_per_second", "trainable_parameters", "total_parameters", "progress")


def trial_error(trial) -> str:
    """The last line of a failed trial's error, never a traceback."""
    text = ""
    try:
        path = trial.error_file or ""
        if path and Path(path).exists():
            text = Path(path).read_text()
    except Exception:  # noqa: BLE001 - the error text is best effort
        text = ""
    return cause_line(text, "the trial's process failed")[:500]


def _trial_dirname(trial) -> str:
    return trial.trial_id


def run_search(
    plan: TunePlan,
    base: dict[str, Any],
    run_dir: Path,
    ctx: OperationContext,
    shared_run: storage.Location | None = None,
) -> TrialBook:
    """Runs (or, after a restart, restores) the experiment; returns the trial records."""
    from ray import tune

    # Tune saves the experiment (trials, searcher) at most this often (its default adapts from
    # 10 s up). What a restart finds can thus be a second old: a trial that finished since is
    # recognised by its model's manifest and not trained again, and one that started since is
    # proposed again by the restored searcher (see TrialBook.kept and _settle).
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")
    # Every epoch's checkpoint (one kept per trial) makes Tune save its state: expected here.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    run_dir.mkdir(parents=True, exist_ok=True)
    book = TrialBook(run_dir / "trials.json", plan)  # the service's own record, kept here
    trials_dir = trials_location(run_dir, shared_run)
    where: dict[str, Any] = {"storage_path": str(run_dir)}
    if shared_run is None:
        Path(trials_dir).mkdir(exist_ok=True)
    else:  # the experiment and the trials' models in shared storage: trials run anywhere
        fs, path = shared_run.open()
        where = {"storage_path": path, "storage_filesystem": fs}
    trainable = tune.with_resources(
        tune.with_parameters(run_trial, base=base, trials_dir=trials_dir),
        dict(plan.resources),
    )
    experiment = f"{where['storage_path']}/{EXPERIMENT}"
    fs = where.get("storage_filesystem")
    from forgeline.services.tuning.hooks import ACTIVE, Reporter, StopNow, StopWhenAsked

    if tune.Tuner.can_restore(experiment, storage_filesystem=fs):
        ctx.progress(book.finished() / book.total, "restoring the search", check=False)
        tuner = tune.Tuner.restore(
            experiment,
            trainable,
            storage_filesystem=fs,
            resume_unfinished=True,
            resume_errored=False,
            restart_errored=False,
        )
    else:
        search = plan.searcher.build(plan.search)
        tuner = tune.Tuner(
            trainable,
            param_space=search.param_space,
            tune_config=tune.TuneConfig(
                search_alg=search.search_alg,
                scheduler=plan.scheduler.build(plan.search.objectives[0], plan.max_iterations),
                num_samples=search.num_samples,  # the searcher limits the concurrency
                reuse_actors=True,  # the next trial runs in a process with torch imported
                trial_dirname_creator=_trial_dirname,
            ),
            run_config=tune.RunConfig(
                name=EXPERIMENT,
                **where,
                verbose=0,
                callbacks=[Reporter(ctx.name)],
                stop=StopWhenAsked(ctx.name),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                failure_config=tune.FailureConfig(max_failures=0),
            ),
        )
    ctx.progress(book.finished() / book.total, f"searching: {plan.num_trials} trials", check=False)
    ACTIVE[ctx.name] = (ctx, book, trials_dir)
    try:
        grid = tuner.fit()
    except StopNow:
        raise Interrupted(ctx.name) from None
    except Exception as exc:
        if ctx.stopping():
            raise Interrupted(ctx.name) from None
        raise Internal(f"the search failed: {exc}", reason="SEARCH_FAILED") from exc
    finally:
        ACTIVE.pop(ctx.name, None)
    if ctx.stopping():
        raise Interrupted(ctx.name)
    _settle(book, grid, ctx.cancelled())
    if ctx.cancelled():
        raise Cancelled(f"operation {ctx.name} was cancelled", reason="OPERATION_CANCELLED")
    return book


def trials_location(run_dir: Path, shared_run: storage.Location | None) -> str:
    """Where the trials write their models: the run folder, or the run in shared storage."""
    return str(run_dir / TRIALS) if shared_run is None else shared_run.child(TRIALS).uri


def _settle(book: TrialBook, grid, cancelled: bool) -> None:
    """Every trial of the finished experiment in the book, in a final state."""
    known = set()
    for result in grid:
        trial_id = Path(result.path).name  # trial folders are named by trial id
        known.add(trial_id)
        record = book.trials.get(trial_id)
        if record is None:  # finished before a restart, never seen by this process's callbacks
            record = TrialRecord(id=trial_id, number=len(book.trials) + 1)
            record.parameters = {k: plain(v) for k, v in (result.config or {}).items()}
            book.trials[trial_id] = record
        if result.error is not None and record.state != FAILED:
            record.state, record.error = FAILED, str(result.error).splitlines()[-1][:500]
    for record in list(book.trials.values()):
        if record.id not in known and record.state in (RUNNING, PENDING):
            # Started just before a restart, after Tune last saved its state: Tune never knew
            # it, and its searcher proposed the trial again under a new id.
            del book.trials[record.id]
        elif record.state in (RUNNING, PENDING):
            record.state = CANCELLED if cancelled else STOPPED_EARLY
    book.save()


def pareto_front(records: list[TrialRecord], objectives) -> list[TrialRecord]:
    """The completed trials no other completed trial dominates (at least as good on every
    objective, better on one)."""
    candidates = [
        r
        for r in records
        if r.state == COMPLETED and all(o.metric in r.metrics for o in objectives)
    ]

    def score(r: TrialRecord) -> list[float]:
        return [r.metrics[o.metric] * (1 if o.mode == "max" else -1) for o in objectives]

    front = []
    for r in candidates:
        mine = score(r)
        dominated = any(
            all(a >= b for a, b in zip(score(o), mine, strict=True)) and score(o) != mine
            for o in candidates
            if o is not r
        )
        if not dominated:
            front.append(r)
    return front


def importances(records: list[TrialRecord], plan: TunePlan) -> dict[str, float]:
    """Optuna's fANOVA importance of each parameter for the first objective, over the completed
    trials (empty when fewer than two completed trials differ)."""
    import optuna

    objective = plan.search.objectives[0]
    done = [r for r in records if r.state == COMPLETED and objective.metric in r.metrics]
    if len(done) < 2:
        return {}
    from forgeline.registry import optuna_choice

    distributions = {p.name: p.optuna_distribution() for p in plan.search.space}
    study = optuna.create_study(direction="maximize" if objective.mode == "max" else "minimize")
    for r in done:
        params = {
            name: optuna_choice(r.parameters[name])
            for name in distributions
            if name in r.parameters
        }
        if len(params) != len(distributions):
            continue
        study.add_trial(
            optuna.trial.create_trial(
                params=params,
                distributions=distributions,
                value=r.metrics[objective.metric],
            )
        )
    try:
        found = optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0)
        )
    except (RuntimeError, ValueError) as exc:
        log.info("importances_skipped", reason=str(exc))
        return {}
    return {k: float(v) for k, v in found.items() if v == v}
