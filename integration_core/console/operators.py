"""Console logins ("operators"): a name, a password or a generated token stored as an scrypt hash, and
optionally one tenant the login is limited to. Managed with ``integration-core console operator ...``."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re
import secrets
from typing import Any

import attrs
import sqlalchemy as sa

from .. import audit
from ..errors import ConfigurationError, NotFoundError
from ..store.schema import console_operators, utcnow

PASSWORD = "password"
TOKEN = "token"
MIN_PASSWORD_LENGTH = 12
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")

# scrypt with N=2**14, r=8, p=5: one of the equivalent settings of the OWASP Password Storage Cheat Sheet
# (16 MiB of memory; a few hundred milliseconds per check). Stored with each hash, so they can change.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 5
_SCRYPT_MAXMEM = 64 * 1024 * 1024


def hash_secret(secret: str) -> str:
    """``scrypt$n$r$p$salt$hash`` (salt and hash url-safe base64)."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, maxmem=_SCRYPT_MAXMEM,
                            dklen=32)
    return "$".join(["scrypt", str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P), _b64(salt), _b64(digest)])


def verify_secret(secret: str, stored: str | None) -> bool:
    """Constant-time check of ``secret`` against a stored hash; ``False`` for a malformed or missing one."""
    if not stored:
        _burn(secret)  # the same work as a real check: no timing hint that a name does not exist
        return False
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.urlsafe_b64decode(digest)
        got = hashlib.scrypt(secret.encode(), salt=base64.urlsafe_b64decode(salt), n=int(n), r=int(r), p=int(p),
                             maxmem=_SCRYPT_MAXMEM, dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


def _burn(secret: str) -> None:
    hashlib.scrypt(secret.encode(), salt=b"0" * 16, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, maxmem=_SCRYPT_MAXMEM,
                   dklen=32)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


def new_token() -> str:
    """A login token for ``--token`` operators (32 random bytes)."""
    return secrets.token_urlsafe(32)


@attrs.frozen
class Operator:
    """A console login, without its hash."""

    name: str
    kind: str
    tenant_id: str | None
    one_time: bool
    generation: int
    usable: bool  # False once a one-time login was used
    created_at: dt.datetime
    last_login_at: dt.datetime | None


def _operator(row: Any) -> Operator:
    return Operator(name=row.name, kind=row.kind, tenant_id=row.tenant_id, one_time=bool(row.one_time),
                    generation=row.generation, usable=row.secret_hash is not None, created_at=row.created_at,
                    last_login_at=row.last_login_at)


def check_name(name: str) -> str:
    if not _NAME.match(name or ""):
        raise ConfigurationError("an operator name is 1-100 letters, digits or . _ @ - (first a letter or digit)")
    return name


def set_operator(
    engine: sa.Engine, name: str, secret: str, *, kind: str = PASSWORD, tenant_id: str | None = None,
    one_time: bool = False,
) -> Operator:
    """Create the operator or replace its secret (and tenant limit). Existing sessions of it end."""
    check_name(name)
    if kind not in (PASSWORD, TOKEN):
        raise ConfigurationError(f"kind must be {PASSWORD} or {TOKEN}")
    if kind == PASSWORD and len(secret) < MIN_PASSWORD_LENGTH:
        raise ConfigurationError(f"a console password has at least {MIN_PASSWORD_LENGTH} characters")
    if tenant_id is not None and (not tenant_id.strip() or "/" in tenant_id):
        raise ConfigurationError("tenant must be a non-empty string without '/'")
    hashed = hash_secret(secret)
    now = utcnow()
    o = console_operators.c
    with engine.begin() as db:
        row = db.execute(sa.select(console_operators).where(o.name == name)).first()
        values = {"kind": kind, "secret_hash": hashed, "tenant_id": tenant_id, "one_time": one_time, "updated_at": now}
        if row is None:
            db.execute(console_operators.insert().values(name=name, generation=1, created_at=now, **values))
            action = "operator_created"
        else:
            db.execute(console_operators.update().where(o.name == name)
                       .values(generation=row.generation + 1, **values))
            action = "operator_secret_changed"
        scope = f"tenant {tenant_id}" if tenant_id else "all tenants"
        audit.record(db, "operator", name, action, f"{kind}, {scope}{', one-time' if one_time else ''}")
    return get_operator(engine, name)


def get_operator(engine: sa.Engine, name: str) -> Operator:
    with engine.connect() as db:
        row = db.execute(sa.select(console_operators).where(console_operators.c.name == name)).first()
    if row is None:
        raise NotFoundError(f"no console operator {name!r}")
    return _operator(row)


def operator_exists(engine: sa.Engine, name: str) -> bool:
    with engine.connect() as db:
        return db.execute(sa.select(console_operators.c.name).where(console_operators.c.name == name)).first() \
            is not None


def list_operators(engine: sa.Engine) -> list[Operator]:
    with engine.connect() as db:
        return [_operator(r) for r in db.execute(sa.select(console_operators).order_by(console_operators.c.name))]


def remove_operator(engine: sa.Engine, name: str) -> None:
    with engine.begin() as db:
        gone = db.execute(console_operators.delete().where(console_operators.c.name == name)).rowcount
        if not gone:
            raise NotFoundError(f"no console operator {name!r}")
        audit.record(db, "operator", name, "operator_removed")


def authenticate(engine: sa.Engine, name: str, secret: str) -> Operator | None:
    """The operator when ``secret`` is right (a one-time secret is spent by this), else ``None``."""
    o = console_operators.c
    with engine.connect() as db:
        row = db.execute(sa.select(console_operators).where(o.name == name)).first()
    if not verify_secret(secret, row.secret_hash if row is not None else None) or row is None:
        return None
    now = utcnow()
    values: dict[str, Any] = {"last_login_at": now}
    if row.one_time:
        values["secret_hash"] = None
    with engine.begin() as db:
        # Conditional on the hash read above: two racing logins with a one-time secret cannot both win.
        done = db.execute(console_operators.update()
                          .where(o.name == name, o.secret_hash == row.secret_hash).values(**values)).rowcount
    if not done:
        return None
    return _operator(row)


def session_operator(engine: sa.Engine, name: str, generation: int) -> Operator | None:
    """The operator a session names, if it still exists with the same secret generation."""
    with engine.connect() as db:
        row = db.execute(sa.select(console_operators).where(console_operators.c.name == name)).first()
    if row is None or row.generation != generation:
        return None
    return _operator(row)
