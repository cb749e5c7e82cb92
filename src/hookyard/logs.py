"""structlog set-up: stable action names as the event, ids bound, never secrets or bodies."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog


def configure(level: str = "info", fmt: str = "console", process: str | None = None) -> None:
    """`process`: the name every line carries (serve's children: ingest-0, worker-1…)."""
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            *([_named(process)] if process else []),
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )


log = structlog.get_logger("hookyard")


def _named(process: str) -> structlog.types.Processor:
    def add(_logger: object, _method: str, event: structlog.types.EventDict) -> Any:
        event.setdefault("process", process)
        return event

    return add
