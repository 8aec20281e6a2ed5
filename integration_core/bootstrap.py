"""Building a Hub from the environment (``IC_*`` variables) and loading the host application object.

The command line, the stock WSGI entry points and the worker all start here, so they agree on what a
configuration means.
"""

from __future__ import annotations

import importlib
import inspect
import os

from .config import Config
from .hub import Hub

HOST_ENV = "IC_HOST"


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
    hub = Hub(Config.from_env())
    spec = host or os.environ.get(HOST_ENV)
    if spec:
        hub.plugins.set_host(load_object(spec))
    return hub
