"""JSON logs, one object a line, each carrying the request id.

Log records never carry request bodies, query strings or path ids of patients: the access
log records the route template, not the concrete path. The database drivers and the HTTP
client log SQL parameters and full URLs at DEBUG/INFO: their loggers stay at WARNING whatever
``REFERRAL_LOG_LEVEL`` says (``PINNED_LOGGERS``).
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from datetime import UTC, datetime

JSON_LOGS_ENV = "REFERRAL_JSON_LOGS"
# SQL statements with their parameters (sqlalchemy.engine, asyncpg, aiosqlite) and request
# lines with full URLs (httpx, httpcore) must never reach the logs
PINNED_LOGGERS = (
    "sqlalchemy.engine",
    "sqlalchemy.pool",
    "asyncpg",
    "aiosqlite",
    "httpx",
    "httpcore",
)
request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id:
            payload["request_id"] = request_id
        for key in ("method", "route", "status", "duration_ms", "client"):
            value = record.__dict__.get(key)
            if value is not None:
                payload[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            payload["exception"] = record.exc_info[0].__name__
        return json.dumps(payload, ensure_ascii=False)


def configure_logging(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    pin_library_loggers()
    # uvicorn's own access log prints raw paths (which may hold ids); ours logs templates.
    logging.getLogger("uvicorn.access").disabled = True
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


def pin_library_loggers() -> None:
    """Driver and HTTP client loggers at WARNING, whatever the service's own level."""
    for name in PINNED_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
