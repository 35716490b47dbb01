"""What the commands' log lines look like: `log_format=text` (the default) or `log_format=json`, in serve.yaml
and train.yaml.

- text: the application's loggers in Hydra's format (`[time][logger][LEVEL] - message`, on stdout), uvicorn's
  lines in uvicorn's own format, and the server's access log as one JSON object per request, starting with
  its timestamp (`StructuredTextFormatter`).
- json: every line, whichever logger wrote it (the application's, Lightning's, Hydra's, uvicorn's, the access
  log), is one JSON object on stderr (`JsonFormatter`): `timestamp` (ISO 8601, UTC), `level`, `logger`,
  `message`, plus the record's structured fields (the access log's requestId, operation, campaign, status,
  latency_ms, ...). Stdout keeps what a command prints (the training report).

A record carries structured fields as `log.info(message, extra={"fields": {...}})`; both formatters write
them. Hydra configures the root logger from `hydra/job_logging/text_or_json.yaml` and its own start-up lines
from `hydra/hydra_logging/text_or_json.yaml` (both in personalize_torch/configs/), which build their
formatter and handler with `formatter` and `console_handler` below: one handler per line, so nothing is
written twice. The commands call `check_log_format` first thing, so a wrong value is one error line.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone

from personalize_torch.errors import InputError

LOG_FORMATS = ("text", "json")
HYDRA_TEXT_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"   # Hydra's job logging format
FIELDS = "fields"   # the LogRecord attribute (`extra={"fields": {...}}`) that holds a line's structured fields


def check_log_format(value: object) -> str:
    """`value` if it is one of LOG_FORMATS, else an InputError naming the setting."""
    if value not in LOG_FORMATS:
        raise InputError(f"must be one of {', '.join(LOG_FORMATS)}, got {value!r}", column="log_format")
    return str(value)


def utc_timestamp(created: float) -> str:
    """A LogRecord's `created` time as ISO 8601 in UTC with milliseconds: 2025-01-31T09:15:02.123Z."""
    return datetime.fromtimestamp(created, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def record_fields(record: logging.LogRecord) -> dict:
    """The structured fields a record was logged with (`extra={"fields": ...}`), or {}."""
    fields = record.__dict__.get(FIELDS)
    return fields if isinstance(fields, dict) else {}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: timestamp, level, logger, message, the record's fields, and `exception`
    (the formatted traceback) when it has one."""

    def format(self, record: logging.LogRecord) -> str:
        line = {"timestamp": utc_timestamp(record.created), "level": record.levelname, "logger": record.name,
                "message": record.getMessage()}
        for key, value in record_fields(record).items():
            line.setdefault(key, value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str)


class StructuredTextFormatter(logging.Formatter):
    """Text mode's format for a logger whose lines are structured (the access log): one JSON object, its
    timestamp first, then the record's fields; a record without fields: the timestamp and the message."""

    def format(self, record: logging.LogRecord) -> str:
        fields = record_fields(record)
        if not fields:
            return f"{utc_timestamp(record.created)} {record.getMessage()}"
        return json.dumps({"timestamp": utc_timestamp(record.created), **fields}, default=str)


def formatter(log_format: str = "text", text: str = HYDRA_TEXT_FORMAT) -> logging.Formatter:
    """The formatter of `log_format` (logging's dictConfig calls this from the Hydra logging configs): a
    `JsonFormatter` for json, else a plain formatter with the `text` format. An unknown value is taken as text
    here; the command then reports it (`check_log_format`)."""
    return JsonFormatter() if log_format == "json" else logging.Formatter(text)


def console_handler(log_format: str = "text") -> logging.StreamHandler:
    """The console handler of `log_format`: stdout for text (Hydra's default), stderr for json, so stdout keeps
    only what a command prints."""
    return logging.StreamHandler(sys.stderr if log_format == "json" else sys.stdout)


def structured_handler(log_format: str = "text") -> logging.StreamHandler:
    """A stderr handler for a structured logger such as the access log: `JsonFormatter` lines for json,
    `StructuredTextFormatter` lines for text."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else StructuredTextFormatter())
    return handler
