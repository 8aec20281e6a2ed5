"""Configuration from environment variables (``IC_*``), with an optional TOML file as alternative."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import attrs

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

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Config:
        env = dict(os.environ if environ is None else environ)
        values: dict[str, object] = {}
        config_file = env.get("IC_CONFIG")
        if config_file:
            with Path(config_file).open("rb") as fh:
                data = tomllib.load(fh)
            values.update({k: v for k, v in data.items() if k in attrs.fields_dict(cls)})
            if "keys" in values:
                raise ValueError("encryption keys do not belong in the config file; use IC_KEYS or the key file")
        mapping = {
            "IC_DATABASE_URL": "database_url",
            "IC_KEY_FILE": "key_file",
            "IC_PUBLIC_URL": "public_url",
        }
        for var, field in mapping.items():
            if env.get(var):
                values[field] = env[var]
        if env.get("IC_SCHEDULER_INTERVAL"):
            values["scheduler_interval"] = float(env["IC_SCHEDULER_INTERVAL"])
        if env.get("IC_MAX_WEBHOOK_BYTES"):
            values["max_webhook_bytes"] = int(env["IC_MAX_WEBHOOK_BYTES"])
        if env.get("IC_KEYS"):
            values["keys"] = tuple(k.strip() for k in env["IC_KEYS"].split(",") if k.strip())
        return cls(**values)  # type: ignore[arg-type]
