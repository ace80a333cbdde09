"""structlog set-up: JSON lines in services, pretty lines in the CLI.

Every line carries the operation or request id bound in context (structlog contextvars), so one
grep follows one operation across services. Logs are for people; metrics travel as events.

Logs go to standard error, configured or not: standard output is the CLI's data (``--json``), and
a warning from a background thread (an audit outbox retrying, say) must never land in it.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog


def _stderr(*_args: Any) -> structlog.PrintLogger:
    """A logger factory writing to the ``sys.stderr`` of the moment a line is logged (loggers
    are not cached), so a redirected or replaced stderr is followed."""
    return structlog.PrintLogger(sys.stderr)


if not structlog.is_configured():  # until a process configures itself: defaults, on stderr
    structlog.configure(logger_factory=_stderr)


def configure(*, json: bool, level: str = "INFO") -> None:
    """Configures structlog and the stdlib root logger once per process."""
    renderer: Any = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=_stderr,
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=level.upper(), stream=sys.stderr, format="%(name)s %(message)s")
    # jieba prints its dictionary loading at DEBUG/INFO; keep service logs readable.
    logging.getLogger("jieba").setLevel(logging.WARNING)


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)


bind = structlog.contextvars.bind_contextvars
bound = structlog.contextvars.bound_contextvars
