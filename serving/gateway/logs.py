"""One JSON object per log line; extra= fields become keys. Never pass tokens or payloads.

Every line carries the process id, so the lines of `--workers N` processes sharing one stderr
can be told apart. The per-request access line skips the logging machinery (LogRecord, handler
lookup, formatter) because it is written on the hot path of every call.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
_ACCESS = logging.getLogger("tfgate.gateway.access")
_lock = threading.Lock()
_dumps = json.JSONEncoder(default=str).encode


def _ts(created: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{int(created * 1000) % 1000:03d}Z"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": _ts(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD:
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def access_enabled() -> bool:
    return _ACCESS.isEnabledFor(logging.INFO)


def access(fields: dict) -> None:
    """The access line of one request, same shape as JsonFormatter's output."""
    now = time.time()
    line = _dumps({"ts": _ts(now), "level": "info", "logger": "tfgate.gateway", "pid": os.getpid(),
                   "msg": "request", **fields}) + "\n"
    with _lock:
        try:
            sys.stderr.write(line)
            sys.stderr.flush()
        except (OSError, ValueError):
            pass


def setup(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("tfgate")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
