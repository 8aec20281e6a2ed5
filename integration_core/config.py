"""Configuration from environment variables (``IC_*``), with an optional TOML file as alternative."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import attrs

from .errors import ConfigurationError

DEFAULT_DATABASE_URL = "sqlite:///integration-core.sqlite3"
DEFAULT_KEY_FILE = "integration-core.key"


@attrs.frozen
class Config:
    """Everything the core needs to run. Nothing secret is ever taken from the command line."""

    database_url: str = DEFAULT_DATABASE_URL
    key_file: str = DEFAULT_KEY_FILE
    # From IC_KEYS (comma separated); the first encrypts. Kept out of repr: a printed Config must not leak keys.
    keys: tuple[str, ...] = attrs.field(default=(), repr=False)
    public_url: str = "http://127.0.0.1:8080"
    scheduler_interval: float = 2.0
    max_webhook_bytes: int = 1024 * 1024
    # Seconds between reconciliations of a connection (the provider's changes_since); 0 turns them off.
    reconcile_interval: float = 900.0

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Config:
        """Read ``IC_*`` variables (and the TOML file named by ``IC_CONFIG``); bad values are a
        ``ConfigurationError`` that names the variable."""
        env = dict(os.environ if environ is None else environ)
        values: dict[str, object] = {}
        fields = attrs.fields_dict(cls)
        config_file = env.get("IC_CONFIG")
        if config_file:
            try:
                with Path(config_file).open("rb") as fh:
                    data = tomllib.load(fh)
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise ConfigurationError(f"cannot read config file {config_file}: {exc}") from None
            if "keys" in data:
                raise ConfigurationError(
                    "encryption keys do not belong in the config file; use IC_KEYS or the key file"
                )
            unknown = sorted(set(data) - set(fields))
            if unknown:
                raise ConfigurationError(
                    f"unknown setting(s) in {config_file}: {', '.join(unknown)}; known: {', '.join(sorted(fields))}"
                )
            values.update(data)
        for var, field in (
            ("IC_DATABASE_URL", "database_url"),
            ("IC_KEY_FILE", "key_file"),
            ("IC_PUBLIC_URL", "public_url"),
        ):
            if env.get(var):
                values[field] = env[var]
        for var, field, kind in (
            ("IC_SCHEDULER_INTERVAL", "scheduler_interval", float),
            ("IC_MAX_WEBHOOK_BYTES", "max_webhook_bytes", int),
            ("IC_RECONCILE_INTERVAL", "reconcile_interval", float),
        ):
            if env.get(var):
                try:
                    values[field] = kind(env[var])
                except ValueError:
                    raise ConfigurationError(f"{var} must be a number, got {env[var]!r}") from None
        if env.get("IC_KEYS"):
            values["keys"] = tuple(k.strip() for k in env["IC_KEYS"].split(",") if k.strip())
        positive: tuple[tuple[str, tuple[type, ...]], ...] = (
            ("scheduler_interval", (int, float)),
            ("max_webhook_bytes", (int,)),
        )
        for field, types in positive:
            value = values.get(field)
            if value is not None and (not isinstance(value, types) or value <= 0):  # type: ignore[operator]
                raise ConfigurationError(f"{field} must be a positive number, got {value!r}")
        interval = values.get("reconcile_interval")
        if interval is not None and (not isinstance(interval, int | float) or interval < 0):
            raise ConfigurationError(f"reconcile_interval must be 0 (off) or a positive number, got {interval!r}")
        return cls(**values)  # type: ignore[arg-type]
