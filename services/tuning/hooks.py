"""The Tune callback (trial events -> the operation's events and trial records) and stopper
(cancel, service stop) of a search.

Tune pickles both with the experiment, and a restored experiment brings back the pickled ones, so
they hold only the operation's name and find the live context, trial records and folder in
``ACTIVE``. (They live in a module of their own, imported only by a running search, so that
pickling refers to them by name instead of copying the module's state.)
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ray import tune

from forgeline.services.tuning.search import (
    COMPLETED,
    FAILED,
    REPORTED,
    RUNNING,
    STOPPED_EARLY,
    TrialBook,
    describe,
    short,
    trial_error,
    trial_manifest,
)

if TYPE_CHECKING:
    from forgeline.operations import OperationContext

# The searches running in this process, by operation name: context, trial book, trials location.
ACTIVE: dict[str, tuple[OperationContext, TrialBook, str]] = {}


class Reporter(tune.Callback):
    def __init__(self, operation: str) -> None:
        self.operation = operation

    def on_trial_start(self, iteration, trials, trial, **info):
        ctx, book, trials_dir = ACTIVE[self.operation]
        record = book.record(trial)
        if trial_manifest(trials_dir, trial.trial_id):
            # It finished before a restart that Tune's saved state did not see: the trial only
            # reports its recorded result again.
            book.kept.add(trial.trial_id)
            ctx.progress(
                book.finished() / book.total,
                f"trial {record.number} finished before the restart; its result is kept",
                check=False,
            )
            return
        book.started[trial.trial_id] = time.monotonic()
        record.state = RUNNING
        book.save()
        ctx.progress(
            book.finished() / book.total,
            f"trial {record.number}/{book.total} started: {describe(record.parameters)}",
            check=False,
        )

    def on_trial_result(self, iteration, trials, trial, result, **info):
        ctx, book, _ = ACTIVE[self.operation]
        objective = book.objective.metric
        record = book.record(trial)
        epoch = int(result.get("training_iteration", len(record.history) + 1))
        values = {
            k: float(v)
            for k, v in result.items()
            if (k in REPORTED or k.startswith("eval_")) and isinstance(v, int | float)
        }
        if trial.trial_id in book.kept:  # its recorded result, reported again
            if record.state != COMPLETED:
                record.metrics = values
            return
        record.metrics = values
        record.iterations = epoch
        if objective in values:
            del record.history[epoch - 1 :]
            record.history.extend([float("nan")] * (epoch - 1 - len(record.history)))
            record.history.append(values[objective])
        book.save()
        ctx.metrics({f"trial_{record.number}/{k}": v for k, v in values.items()}, step=epoch)

    def on_trial_complete(self, iteration, trials, trial, **info):
        ctx, book, _ = ACTIVE[self.operation]
        objective = book.objective.metric
        record = book.record(trial)
        if trial.trial_id in book.kept and record.state == COMPLETED:
            return  # already reported before the restart
        completed = float(record.metrics.get("progress", 0.0)) >= 1.0
        record.state = COMPLETED if completed else STOPPED_EARLY
        book.close(record)
        value = record.metrics.get(objective)
        best = book.best()
        shown = f"{objective} {short(value)}" if value is not None else "no result"
        if completed:
            message = f"trial {record.number} finished: {shown}"
            if best is not None and best.id == record.id:
                message += " (best so far)"
        else:
            message = (
                f"trial {record.number} stopped early after {record.iterations} epoch(s): {shown}"
            )
        if completed and value is not None:
            points = {objective: value}
            if best is not None:
                points[f"best_{objective}"] = best.metrics[objective]
            ctx.metrics(points, step=record.number)
        ctx.progress(book.finished() / book.total, message, check=False)

    def on_trial_error(self, iteration, trials, trial, **info):
        ctx, book, _ = ACTIVE[self.operation]
        record = book.record(trial)
        record.state = FAILED
        record.error = trial_error(trial)
        book.close(record)
        ctx.progress(
            book.finished() / book.total,
            f"trial {record.number} failed: {record.error}",
            check=False,
        )


class StopNow(BaseException):  # noqa: N818 - a signal, not an error
    """Raised through Tune's loop when the service stops. Not an Exception, so Tune does not
    catch it to stop the trials and save them as ended: its saved state (from the last step)
    keeps them unfinished, exactly as a killed service leaves it, and the restart resumes them."""


class StopWhenAsked(tune.Stopper):
    def __init__(self, operation: str) -> None:
        self.operation = operation

    def __call__(self, trial_id, result):
        return False

    def stop_all(self):
        ctx = ACTIVE[self.operation][0]
        if ctx.stopping():  # leave the experiment as it is; the restart restores it
            raise StopNow
        return ctx.cancelled()
