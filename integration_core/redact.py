"""Safe texts for errors: what may be logged, stored or shown without leaking a secret or a statement."""

from __future__ import annotations

import logging
import os
import re
import threading
import time
import traceback

_SECRETISH = re.compile(
    r"(?i)(access_token|refresh_token|client_secret|api_key|password|authorization|token|secret)"
    r"(\"?\s*[:=]\s*\"?)([^\s\"&,;]+)"
)
_BEARER = re.compile(r"(?i)(bearer|[\w-]*oauthtoken)\s+[^\s\"',;]+")


def redact(text: str) -> str:
    """``text`` with anything token-like (bearer tokens, ``secret=...`` pairs) replaced by ``[redacted]``."""
    text = _BEARER.sub(r"\1 [redacted]", text)
    return _SECRETISH.sub(lambda m: f"{m.group(1)}{m.group(2)}[redacted]", text)


def safe_error(exc: BaseException) -> str:
    """A storable one-line description: type and message, with anything token-like redacted."""
    return redact(f"{type(exc).__name__}: {exc}")[:1000]


def log_internal(log: logging.Logger, what: str, exc: BaseException) -> None:
    """Log our own failure as its exception type and where it happened; never its message (it may
    quote data or SQL parameters)."""
    frames = traceback.extract_tb(exc.__traceback__)[-4:]
    where = " < ".join(f"{f.name}@{os.path.basename(f.filename)}:{f.lineno}" for f in reversed(frames))
    log.error("%s failed: %s at %s", what, exc.__class__.__name__, where or "?")


class RepeatedErrors:
    """Log a failure that repeats (a full disk fails every tick) once with its traceback, then one short
    line with a count at most every ``every`` seconds, and a line when it stops failing."""

    def __init__(self, log: logging.Logger, what: str, every: float = 60.0) -> None:
        self.log, self.what, self.every = log, what, every
        self._key: str | None = None
        self._count = 0
        self._since = 0.0
        self._lock = threading.Lock()

    def failed(self, exc: BaseException) -> None:
        key = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
        with self._lock:
            now = time.monotonic()
            if key != self._key:
                self._key, self._count, self._since = key, 0, now
                self.log.error("%s", self.what, exc_info=exc)
                return
            self._count += 1
            if now - self._since < self.every:
                return
            count, self._count, self._since = self._count, 0, now
        self.log.error("%s again %d time(s) in the last %.0f s: %s", self.what, count, self.every,
                       redact(key.split(" [SQL:", 1)[0]))

    def succeeded(self) -> None:
        with self._lock:
            if self._key is None:
                return
            count, self._key, self._count = self._count, None, 0
        self.log.warning("%s: recovered (%d repeat(s) since the last report)", self.what, count)
