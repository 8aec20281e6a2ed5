"""The plugin layer: providers from entry points, the host, and plugins that add commands.

Routing is by allow-list, not by exclusion: every provider gets a plugin manager of its own holding only
the provider hookspecs and only that provider, and the host gets one holding only the host hookspecs and
only the host. A call for provider ``a`` can therefore reach nothing but ``a``'s implementation, whatever
was registered before or after, and a provider that happens to implement a host hook is never called as
the host. Command hooks go to every plugin, in a manager of their own.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import threading
from typing import Any

import pluggy

from .errors import ConfigurationError, UnknownProviderError
from .hookspecs import PROJECT, PROVIDER_HOOKS, CommandSpec, HostSpec, ProviderSpec

ENTRY_POINT_GROUP = "integration_core.providers"
EXTRA_PROVIDERS_ENV = "IC_PROVIDERS"


def _manager(spec: type) -> pluggy.PluginManager:
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(spec)
    return pm


class ProviderHooks:
    """The provider hooks of exactly one provider, as attributes: ``hooks.push_invoice(ctx=..., ...)``."""

    def __init__(self, name: str, plugin: object) -> None:
        self.name = name
        self._pm = _manager(ProviderSpec)
        self._pm.register(plugin, name=name)

    def __getattr__(self, hook_name: str) -> Any:
        if hook_name not in PROVIDER_HOOKS:
            raise AttributeError(f"{hook_name!r} is not a provider hook")
        return getattr(self._pm.hook, hook_name)

    def implements(self, hook_name: str) -> bool:
        """Whether this provider implements ``hook_name`` (optional hooks are asked this first)."""
        return bool(getattr(self._pm.hook, hook_name).get_hookimpls())

    def __repr__(self) -> str:
        return f"ProviderHooks({self.name!r})"


class Plugins:
    """Providers registered under their entry-point name, one host, and command plugins."""

    def __init__(self, *, load_entry_points: bool = True) -> None:
        self._providers: dict[str, ProviderHooks] = {}
        self._versions: dict[str, str] = {}
        self._host_pm = _manager(HostSpec)
        self._commands_pm = _manager(CommandSpec)
        self._lock = threading.Lock()
        if load_entry_points:
            self.load_entry_points()

    def load_entry_points(self) -> None:
        """Providers of installed distributions, then any named in ``IC_PROVIDERS`` (``name=module,...``):
        a provider under development, or a test provider, without packaging it."""
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if ep.name not in self._providers:
                version = ep.dist.version if ep.dist is not None else "unknown"
                self.add_provider(ep.name, ep.load(), version=version)
        for item in filter(None, (s.strip() for s in os.environ.get(EXTRA_PROVIDERS_ENV, "").split(","))):
            name, sep, module = item.partition("=")
            if not sep or not name.strip() or not module.strip():
                raise ConfigurationError(f"{EXTRA_PROVIDERS_ENV} entries are name=module, got {item!r}")
            if name.strip() not in self._providers:
                self.add_provider(name.strip(), importlib.import_module(module.strip()), version="local")

    def add_provider(self, name: str, plugin: object, *, version: str = "unknown") -> None:
        """Register a provider plugin (a module or object with ``@hookimpl`` functions) under ``name``."""
        with self._lock:
            if name in self._providers:
                raise ConfigurationError(f"a provider named {name!r} is already registered")
            self._providers[name] = ProviderHooks(name, plugin)
            self._versions[name] = version
            if self._commands_pm.get_plugin(name) is None:
                self._commands_pm.register(plugin, name=f"provider:{name}")

    def add_command_plugin(self, plugin: object, name: str | None = None) -> None:
        """Register a plugin that only adds commands."""
        self._commands_pm.register(plugin, name=name)

    def set_host(self, host: object) -> None:
        """Register the host application's implementation of the host hooks (replacing any previous)."""
        with self._lock:
            if self._host_pm.get_plugin("host") is not None:
                self._host_pm.unregister(name="host")
            self._host_pm.register(host, name="host")

    @property
    def host(self) -> Any:
        """The host hooks: ``plugins.host.record_payment(...)`` reaches the registered host only."""
        return self._host_pm.hook

    def has_host_hook(self, hook_name: str) -> bool:
        return bool(getattr(self._host_pm.hook, hook_name).get_hookimpls())

    def provider_names(self) -> list[str]:
        return sorted(self._providers)

    def version(self, name: str) -> str:
        return self._versions[name]

    def provider(self, name: str) -> ProviderHooks:
        """Hook callers for exactly one provider; an unknown name lists the installed ones."""
        try:
            return self._providers[name]
        except KeyError:
            raise UnknownProviderError(name, list(self._providers)) from None

    def register_commands(self, cli: Any) -> None:
        self._commands_pm.hook.register_commands(cli=cli)
