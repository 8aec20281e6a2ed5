"""Secrets at rest: MultiFernet over a list of keys (the first encrypts, all decrypt).

Rotation without downtime: put a new key first (``integration-core keys rotate`` does it for the key
file), re-encrypt every stored secret, then drop the old key (``keys prune``).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from .errors import ConfigurationError

log = logging.getLogger(__name__)


class MissingKeyFile(ConfigurationError):
    """Neither IC_KEYS nor a key file: a first run, unless the database already holds secrets."""


class Vault:
    def __init__(self, keys: list[str] | tuple[str, ...]) -> None:
        if not keys:
            raise ConfigurationError("no encryption key configured (set IC_KEYS or use a key file)")
        try:
            self._fernets = [Fernet(k.encode() if isinstance(k, str) else k) for k in keys]
        except (ValueError, TypeError) as exc:
            raise ConfigurationError("an encryption key is not a valid Fernet key (32 url-safe base64 bytes)") from exc
        self._multi = MultiFernet(self._fernets)
        self.key_count = len(self._fernets)

    def encrypt(self, secrets: dict[str, str]) -> str:
        return self._multi.encrypt(json.dumps(secrets, sort_keys=True).encode()).decode()

    def decrypt(self, token: str | None) -> dict[str, str]:
        if not token:
            return {}
        try:
            return json.loads(self._multi.decrypt(token.encode()))
        except InvalidToken as exc:
            raise ConfigurationError("stored secrets cannot be decrypted with the configured keys") from exc

    def rotate(self, token: str) -> str:
        """Re-encrypt under the first key (fails if no configured key can read it)."""
        try:
            return self._multi.rotate(token.encode()).decode()
        except InvalidToken as exc:
            raise ConfigurationError("a stored secret cannot be decrypted with the configured keys") from exc

    def readable_by_primary(self, token: str) -> bool:
        try:
            self._fernets[0].decrypt(token.encode())
        except InvalidToken:
            return False
        return True

    def __repr__(self) -> str:
        return f"Vault(keys={self.key_count})"


def generate_key() -> str:
    return Fernet.generate_key().decode()


def read_key_file(path: str | Path) -> list[str]:
    return [line.strip() for line in Path(path).read_text().splitlines() if line.strip() and not line.startswith("#")]


def write_key_file(path: str | Path, keys: list[str]) -> None:
    """Write atomically with 0600 permissions (the file never exists with wider ones)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("# integration-core encryption keys: the first encrypts, all decrypt. Keep this file secret.\n")
        fh.write("\n".join(keys) + "\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def load_keys(keys: tuple[str, ...], key_file: str | Path, *, create: bool = True) -> list[str]:
    """Keys from configuration, else from the key file, generating it on first use of the default."""
    if keys:
        return list(keys)
    path = Path(key_file)
    if path.exists():
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            log.warning("key file %s is readable by others (mode %o); run chmod 600 %s", path, mode, path)
        found = read_key_file(path)
        if not found:
            raise ConfigurationError(f"key file {path} holds no key")
        return found
    if not create:
        raise MissingKeyFile(f"no key file at {path} and IC_KEYS is not set")
    key = generate_key()
    write_key_file(path, [key])
    log.warning(
        "generated a new encryption key in %s (mode 0600). Back it up: without it stored secrets are lost.",
        path.resolve(),
    )
    return [key]


class KeyRing:
    """The keys of one process, and the vault built from them.

    A key file is generated only for an empty store: a missing file beside a database that holds secrets
    is a misconfiguration, not a first run. A changed key file (a rotation by another process) is re-read
    before encrypting, so no process keeps writing under a key that is about to be dropped, and again when
    a secret fails to decrypt, so a running worker follows a rotation without a restart.
    """

    def __init__(self, keys: tuple[str, ...], key_file: str | Path, *, store_has_secrets: Callable[[], bool]) -> None:
        self._keys = keys
        self._key_file = Path(key_file)
        self._store_has_secrets = store_has_secrets
        self._stamp: int | None = None
        self.vault = Vault(self._load())

    def _load(self) -> list[str]:
        try:
            keys = load_keys(self._keys, self._key_file, create=False)
        except MissingKeyFile:
            if self._store_has_secrets():
                raise ConfigurationError(
                    f"no key file at {self._key_file} and IC_KEYS is not set, but the database holds encrypted "
                    f"secrets: point IC_KEY_FILE (or IC_KEYS) at the keys they were written with"
                ) from None
            keys = load_keys(self._keys, self._key_file, create=True)
        self._stamp = self._file_stamp()
        return keys

    def _file_stamp(self) -> int | None:
        if self._keys:
            return None
        try:
            return os.stat(self._key_file).st_mtime_ns
        except OSError:
            return None

    def current(self) -> Vault:
        """The vault, re-read first if the key file changed."""
        stamp = self._file_stamp()
        if stamp is not None and stamp != self._stamp:
            self.vault = Vault(self._load())
        return self.vault

    def encrypt(self, secrets: dict[str, str]) -> str:
        return self.current().encrypt(secrets)

    def decrypt(self, token: str | None) -> dict[str, str]:
        """Decrypt; on failure re-read the key file once (a rotation elsewhere) and try again."""
        try:
            return self.vault.decrypt(token)
        except ConfigurationError:
            if self._keys:
                raise
            self.vault = Vault(self._load())
            return self.vault.decrypt(token)

    def __repr__(self) -> str:
        return f"KeyRing({self.vault!r})"
