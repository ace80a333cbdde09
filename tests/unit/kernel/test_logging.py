"""Logs go to standard error, configured or not: standard output is the CLI's data (`--json`),
and a warning from a background thread once landed in `forgeline plugins show --json`'s output."""

from __future__ import annotations

import threading

import structlog

from forgeline import logging as flog


def test_a_log_line_from_another_thread_goes_to_stderr_not_stdout(capsys):
    thread = threading.Thread(target=lambda: flog.get_logger("t").warning("delivery_failed", n=1))
    thread.start()
    thread.join()
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "delivery_failed" in captured.err and "n=1" in captured.err


def test_a_configured_process_logs_json_lines_to_the_stderr_of_the_moment(capsys):
    before = structlog.get_config()
    try:
        flog.configure(json=True)
        flog.get_logger("t").info("configured", k="v")
        captured = capsys.readouterr()
        assert captured.out == ""
        assert '"event": "configured"' in captured.err and '"k": "v"' in captured.err
    finally:
        structlog.configure(**before)
