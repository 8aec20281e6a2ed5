"""Building a Hub from the environment (``IC_*`` variables) and loading the host application object.

The command line, the stock WSGI entry points and the worker all start here, so they agree on what a
configuration means.
"""

from __future__ import annotations

import importlib
import inspect
import os
from pathlib import Path

import sqlalchemy as sa

from .config import Config
from .errors import ConfigurationError
from .hub import Hub

HOST_ENV = "IC_HOST"

# The command line sets this for every command but ``db upgrade``: a missing SQLite file is then an error,
# not a new empty database (a deleted or mistyped file would otherwise go unnoticed).
_existing_database_only = False


def set_existing_database_only(value: bool) -> bool:
    """Whether :func:`hub_from_env` refuses to create a SQLite database; returns the previous value."""
    global _existing_database_only
    previous, _existing_database_only = _existing_database_only, value
    return previous


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (``None`` for other engines and in-memory databases)."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    database = parsed.database
    if parsed.query.get("uri") == "true" or database.startswith("file:"):
        database = database.removeprefix("file:").split("?", 1)[0]
    return Path(database)


def require_database(url: str) -> None:
    """``ConfigurationError`` when ``url`` is a SQLite file that does not exist."""
    path = sqlite_path(url)
    if path is not None and not path.exists():
        raise ConfigurationError(
            f"no database at {path.resolve()}: create it with `integration-core db upgrade` "
            "(or point IC_DATABASE_URL at the existing one)"
        )


def load_object(spec: str) -> object:
    """``package.module:attr`` → a host plugin. A class or a plain factory function is called with no
    arguments (so ``reference_host:from_env`` works); a module or an object with hook methods is used as is."""
    module_name, _, attr = spec.partition(":")
    obj: object = importlib.import_module(module_name)
    for part in filter(None, attr.split(".")):
        obj = getattr(obj, part)
    if inspect.isclass(obj):
        return obj()
    if inspect.isfunction(obj) and not hasattr(obj, "integration_core_impl"):
        return obj()
    return obj


def hub_from_env(host: str | None = None) -> Hub:
    """A Hub configured from ``IC_*`` variables; the host from ``host`` (``module:attr``), else ``IC_HOST``."""
    config = Config.from_env()
    if _existing_database_only:
        require_database(config.database_url)
    hub = Hub(config)
    spec = host or os.environ.get(HOST_ENV)
    if spec:
        hub.plugins.set_host(load_object(spec))
    return hub
