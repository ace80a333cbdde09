"""What `forgeline run` prints of a run outside a terminal: a line per step state change and a
throttled progress line per long step, from the run's events; and which output it picks."""

from __future__ import annotations

import io
import threading
from datetime import datetime

import pytest
from rich.console import Console

from forgeline.gateway import commands
from forgeline.gateway.run_output import StepLines, duration
from forgeline.v1 import common_pb2, event_service_pb2

T0 = datetime(2026, 12, 6, 19, 3, 0).timestamp()  # local time: the lines say 19:03:00 + s
STATES = {
    "RUNNING": common_pb2.OPERATION_STATE_RUNNING,
    "SUCCEEDED": common_pb2.OPERATION_STATE_SUCCEEDED,
    "FAILED": common_pb2.OPERATION_STATE_FAILED,
    "CANCELLED": common_pb2.OPERATION_STATE_CANCELLED,
}


def at(event: event_service_pb2.Event, seconds: float) -> event_service_pb2.Event:
    event.time.FromNanoseconds(int((T0 + seconds) * 1e9))
    return event


def state(step: str, seconds: float, name: str, message: str = "") -> event_service_pb2.Event:
    payload = event_service_pb2.StateEvent(state=STATES[name], message=message)
    return at(event_service_pb2.Event(step=step, state=payload), seconds)


def skipped(step: str, seconds: float, why: str) -> event_service_pb2.Event:
    return state(step, seconds, "CANCELLED", f"skipped: {why}")


def progress(step: str, seconds: float, done: float, message: str) -> event_service_pb2.Event:
    payload = event_service_pb2.ProgressEvent(progress=done, message=message)
    return at(event_service_pb2.Event(step=step, progress=payload), seconds)


def metrics(step: str, seconds: float, **values: float) -> event_service_pb2.Event:
    points = [common_pb2.MetricPoint(name=k, value=v) for k, v in values.items()]
    payload = event_service_pb2.MetricsEvent(points=points)
    return at(event_service_pb2.Event(step=step, metrics=payload), seconds)


def feed(events, order=("ingest", "train", "evaluate"), **kwargs) -> tuple[StepLines, list[str]]:
    lines: list[str] = []
    printer = StepLines(list(order), lines.append, clock=lambda: T0, **kwargs)
    for event in events:
        printer.event(event)
    return printer, lines


def test_each_state_change_is_one_line_with_its_duration_metrics_and_reason():
    _, lines = feed(
        [
            state("ingest", 1, "RUNNING", "data.IngestDataset on 127.0.0.1:5001"),
            metrics("ingest", 3, num_rows=120),
            state("ingest", 4.2, "SUCCEEDED", "succeeded"),
            state("train", 5, "RUNNING", "training.Train on 127.0.0.1:5002"),
            metrics("train", 200, loss=0.12, accuracy=0.91),
            state("train", 257, "SUCCEEDED", "succeeded"),
            state("evaluate", 258, "RUNNING", "cache hit: operations/old/evaluate"),
            state("evaluate", 258, "FAILED", "gate failed: accuracy 0.91, 0.04 below >= 0.95"),
        ]
    )
    assert lines == [
        "19:03:01  ingest    RUNNING    data.IngestDataset on 127.0.0.1:5001",
        "19:03:04  ingest    SUCCEEDED  3.2s  num_rows=120",
        "19:03:05  train     RUNNING    training.Train on 127.0.0.1:5002",
        "19:07:17  train     SUCCEEDED  4m12s  accuracy=0.91 loss=0.12",
        "19:07:18  evaluate  RUNNING    cache hit: operations/old/evaluate",
        "19:07:18  evaluate  FAILED     0.0s  gate failed: accuracy 0.91, 0.04 below >= 0.95",
    ]


def test_a_skipped_or_cancelled_step_says_why_and_a_repeated_state_is_not_a_line():
    _, lines = feed(
        [
            state("train", 0, "RUNNING", "training.Train on a:1"),
            state("train", 30, "RUNNING", "training.Train on a:1"),  # a resumed stream
            state("train", 3725, "CANCELLED", "train was\ncancelled"),
            skipped("evaluate", 3726, "the run was cancelled"),
        ],
        order=["train", "evaluate"],
    )
    assert lines == [
        "19:03:00  train     RUNNING    training.Train on a:1",
        "20:05:05  train     CANCELLED  1h02m05s  train was cancelled",
        "20:05:06  evaluate  SKIPPED    the run was cancelled",
    ]


def test_progress_is_a_line_at_most_every_30_s_and_only_when_it_changed():
    _, lines = feed(
        [
            state("train", 0, "RUNNING", "training.Train on a:1"),
            progress("train", 10, 0.05, "epoch 1/10"),  # 10 s after the step's last line
            metrics("train", 20, loss=0.9),
            progress("train", 31, 0.10, "epoch 1/10"),  # due: the newest progress
            metrics("train", 35, loss=0.7, lr=0.001, global_step=40),
            progress("train", 40, 0.20, "epoch 2/10"),  # 9 s after the last line
            metrics("train", 62, accuracy=0.5),  # due at 61: metrics flush the waiting one
            progress("train", 95, 0.20, "epoch 2/10"),  # the same as its last line
            progress("train", 99, 0.204, "epoch 2/10"),  # still 20%: no change to say
            progress("train", 130, 0.30, "epoch 3/10"),
            state("train", 140, "SUCCEEDED", "succeeded"),
            progress("train", 200, 0.5, "late"),  # after its end: nothing
        ],
        order=["train"],
    )
    assert lines == [
        "19:03:00  train  RUNNING    training.Train on a:1",
        "19:03:31  train  10%        epoch 1/10  loss=0.9",
        "19:03:40  train  20%        epoch 2/10  lr=0.001 global_step=40 accuracy=0.5",
        "19:05:10  train  30%        epoch 3/10  lr=0.001 global_step=40 accuracy=0.5",
        "19:05:20  train  SUCCEEDED  2m20s  accuracy=0.5 global_step=40 loss=0.7 lr=0.001",
    ]


def test_a_step_that_went_quiet_has_its_last_progress_flushed_once():
    printer, lines = feed(
        [
            state("train", 0, "RUNNING", "training.Train on a:1"),
            progress("train", 12, 0.5, "evaluating"),
        ],
        order=["train"],
    )
    printer.flush(T0 + 29)
    assert len(lines) == 1
    printer.flush(T0 + 30)
    printer.flush(T0 + 90)
    assert lines[1:] == ["19:03:12  train  50%        evaluating"]


def test_steps_are_throttled_apart_and_other_events_are_not_lines():
    _, lines = feed(
        [
            state("ingest", 0, "RUNNING", "ingesting"),
            state("train", 0, "RUNNING", "training"),
            progress("ingest", 5, 0.5, "half"),
            progress("train", 29, 0.1, "warm-up"),
            progress("", 31, 0.5, "1 of 2 steps finished"),  # the run's own: brings the time
            progress("nowhere", 31, 0.5, "an unknown step"),
        ],
        order=["ingest", "train"],
    )
    assert lines[2:] == [
        "19:03:05  ingest  50%        half",
        "19:03:29  train   10%        warm-up",
    ]


def test_the_header_names_the_run_and_its_steps():
    lines: list[str] = []
    StepLines(["a", "b"], lines.append, clock=lambda: T0 + 7).header("operations/r1")
    assert lines == ["19:03:07  run operations/r1  2 steps: a, b"]


@pytest.mark.parametrize(
    ("seconds", "said"),
    [
        (0.04, "0.0s"),
        (9.94, "9.9s"),
        (10.4, "10s"),
        (59.4, "59s"),
        (252, "4m12s"),
        (3600, "1h00m00s"),
    ],
)
def test_durations_read_as_people_say_them(seconds, said):
    assert duration(seconds) == said


def test_ticking_flushes_a_due_progress_line_from_its_thread():
    now = [T0]
    seen = threading.Event()
    lines: list[str] = []

    def emit(line: str) -> None:
        lines.append(line)
        seen.set()

    printer = StepLines(["train"], emit, clock=lambda: now[0])
    printer.event(state("train", 0, "RUNNING", "go"))
    seen.clear()
    printer.event(progress("train", 5, 0.5, "half"))
    now[0] = T0 + 31
    with printer.ticking(period_s=0.01):
        assert seen.wait(5)
    assert lines[-1] == "19:03:05  train  50%        half"


# --- the command's choice of output -------------------------------------------------------------


class FakeClient:
    def __init__(self, events) -> None:
        self.events = events

    def stream_events(self, run: str, after_sequence: int = 0):
        for sequence, event in enumerate(self.events, 1):
            if sequence > after_sequence:
                event.sequence = sequence
                yield event


RUN = [
    state("train", 0, "RUNNING", "training.Train on a:1"),
    progress("train", 40, 0.5, "epoch 1/2"),
    state("train", 80, "SUCCEEDED", "succeeded"),
]


@pytest.fixture
def consoles(monkeypatch):
    """The command's stdout and stderr consoles, as a file (not a terminal) would take them."""
    monkeypatch.delenv("CI", raising=False)
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr(commands, "console", Console(file=out, width=80))
    monkeypatch.setattr(commands, "err", Console(file=err, width=80))
    return out, err


def test_outside_a_terminal_the_command_prints_lines_not_a_table(consoles):
    out, err = consoles
    commands._watch(FakeClient(RUN), "operations/r1", ["train"], quiet=False)
    said = out.getvalue().splitlines()
    assert [line[10:] for line in said] == [
        "run operations/r1  1 step: train",
        "train  RUNNING    training.Train on a:1",
        "train  50%        epoch 1/2",
        "train  SUCCEEDED  1m20s",
    ]
    assert "\x1b" not in out.getvalue() and err.getvalue() == ""


def test_with_json_the_lines_go_to_stderr_and_stdout_stays_for_the_json(consoles):
    out, err = consoles
    commands._watch(FakeClient(RUN), "operations/r1", ["train"], quiet=True)
    assert out.getvalue() == ""
    assert "train  SUCCEEDED  1m20s" in err.getvalue()


def test_a_terminal_gets_the_live_table_unless_plain_or_ci(consoles, monkeypatch):
    terminal = io.StringIO()
    monkeypatch.setattr(commands, "console", Console(file=terminal, width=80, force_terminal=True))
    commands._watch(FakeClient(RUN), "operations/r1", ["train"], quiet=False)
    drawn = terminal.getvalue()
    assert "progress" in drawn and "latest" in drawn  # the live table's columns
    assert "train  SUCCEEDED  1m20s" not in drawn and "RUNNING    training" not in drawn

    commands._watch(FakeClient(RUN), "operations/r1", ["train"], quiet=False, plain=True)
    assert "train  SUCCEEDED  1m20s" in terminal.getvalue()

    terminal.truncate(0)
    terminal.seek(0)
    monkeypatch.setenv("CI", "true")
    commands._watch(FakeClient(RUN), "operations/r1", ["train"], quiet=False)
    assert "train  RUNNING    training.Train on a:1" in terminal.getvalue()
