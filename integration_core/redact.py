"""Safe texts for errors: what may be logged, stored or shown without leaking a secret or a statement."""

from __future__ import annotations

import logging
import os
import re
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
