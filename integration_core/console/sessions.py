"""Console sessions: a signed *and encrypted* cookie (Fernet, from ``cryptography``) with an expiry.

The cookie keys are derived (HKDF-SHA256) from the Hub's encryption keys, so every process that can read
the secrets accepts the same sessions without one more secret to configure, and rotating the keys
(``integration-core keys rotate``) keeps sessions valid until the old key is pruned. A session holds the
operator's name, the secret generation it logged in with (a changed password ends old sessions) and the
CSRF token of its forms; nothing else, and nothing secret.
"""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any

import attrs
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..errors import ConfigurationError

DEFAULT_TTL_SECONDS = 8 * 3600
_INFO = b"integration-core console session v1"


def derive_keys(vault_keys: list[str]) -> list[bytes]:
    """One Fernet key per vault key (the same order: the first signs, all verify)."""
    out = []
    for key in vault_keys:
        try:
            raw = base64.urlsafe_b64decode(key.encode())
        except ValueError as exc:
            raise ConfigurationError("an encryption key is not valid url-safe base64") from exc
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(raw)
        out.append(base64.urlsafe_b64encode(derived))
    return out


@attrs.frozen
class Session:
    csrf: str
    operator: str | None = None
    generation: int = 0

    @classmethod
    def anonymous(cls) -> Session:
        return cls(csrf=secrets.token_urlsafe(32))

    def signed_in(self, operator: str, generation: int) -> Session:
        # A new CSRF token at login: one seen before login is worth nothing after it.
        return Session(csrf=secrets.token_urlsafe(32), operator=operator, generation=generation)


class SessionCodec:
    """Encodes sessions into cookie values and back; a value older than ``ttl`` seconds is refused."""

    def __init__(self, keys: list[bytes], ttl: int = DEFAULT_TTL_SECONDS) -> None:
        if not keys:
            raise ConfigurationError("no key for console sessions")
        self._fernet = MultiFernet([Fernet(k) for k in keys])
        self.ttl = ttl

    def dumps(self, session: Session) -> str:
        data = {"c": session.csrf, "o": session.operator, "g": session.generation}
        return self._fernet.encrypt(json.dumps(data, separators=(",", ":")).encode()).decode()

    def loads(self, value: str | None, *, now: int | None = None) -> Session | None:
        """The session, or ``None`` for a missing, forged or expired value (``now``: seconds since the
        epoch to check the expiry against, for tests; default the clock)."""
        if not value:
            return None
        try:
            raw = (self._fernet.decrypt(value.encode(), ttl=self.ttl) if now is None
                   else self._fernet.decrypt_at_time(value.encode(), ttl=self.ttl, current_time=now))
            data: Any = json.loads(raw)
            return Session(csrf=str(data["c"]), operator=data.get("o"), generation=int(data.get("g") or 0))
        except (InvalidToken, ValueError, KeyError, TypeError):
            return None
