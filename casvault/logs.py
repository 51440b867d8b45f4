"""Log lines: plain text for a terminal, one JSON object a line for a log collector.

A log call may carry structured values as ``extra={"fields": {...}}``; the
JSON format puts them beside the message, the plain one appends them as
``key=value``. ``CASVAULT_LOG_FORMAT`` picks the format and
``CASVAULT_LOG_LEVEL`` the level of casvault's own loggers (``casvault.*``
and ``web.*``).
"""

from __future__ import annotations

import logging
import sys
from datetime import datetime, timezone
from typing import Any

import msgspec

OWN_LOGGERS = ("casvault", "web")
_encoder = msgspec.json.Encoder(enc_hook=str)  # NOTE: a value JSON cannot hold is logged as its text
_STANDARD_FIELDS = {"ts", "level", "logger", "msg", "exc"}


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    """The structured values a log call passed as ``extra={"fields": ...}``."""
    found = getattr(record, "fields", None)
    return found if isinstance(found, dict) else {}


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ts, level, logger, msg, the call's fields, and exc when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in fields_of(record).items():
            if key not in _STANDARD_FIELDS:
                line[key] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return _encoder.encode(line).decode()


class PlainFormatter(logging.Formatter):
    """``<time> <LEVEL> <logger> <message> key=value ...``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """The record as text, its fields appended."""
        text = super().format(record)
        extra = " ".join(f"{k}={v}" for k, v in fields_of(record).items() if v is not None)
        if not extra:
            return text
        head, sep, tail = text.partition("\n")  # a traceback stays below the line
        return f"{head} {extra}{sep}{tail}"


class _OwnHandler(logging.StreamHandler):
    """The handler configure_logging installs (found again to be replaced, never doubled)."""


def configure_logging(fmt: str = "plain", level: str = "info") -> None:
    """Log casvault's lines to stderr in ``fmt`` (plain or json) from ``level`` up.

    The handler goes on the root logger only when nothing else configured
    logging (a host application's or a test runner's handlers are kept and
    only the levels are set); calling it again replaces it.
    """
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _OwnHandler)]:
        root.removeHandler(handler)
    if not root.handlers:
        handler = _OwnHandler(sys.stderr)
        handler.setFormatter(JsonFormatter() if fmt == "json" else PlainFormatter())
        root.addHandler(handler)
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(level.upper())
