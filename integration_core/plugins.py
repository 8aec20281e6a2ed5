"""The plugin manager: providers from entry points, the host, and routing a call to one provider."""

from __future__ import annotations

import importlib.metadata
from typing import Any

import pluggy

from . import hookspecs
from .errors import UnknownProviderError

ENTRY_POINT_GROUP = "integration_core.providers"
PROVIDER_HOOKS = (
    "provider_info",
    "validate_settings",
    "rate_limit",
    "authorization_url",
    "complete_authorization",
    "connect",
    "disconnect",
    "upsert_contact",
    "push_invoice",
    "find_invoice",
    "void_remote_invoice",
    "verify_webhook",
    "parse_event",
)


class _ProviderCaller:
    """Attribute access gives a hook caller that reaches one provider only."""

    def __init__(self, manager: Plugins, name: str) -> None:
        self._manager = manager
        self.name = name

    def __getattr__(self, hook_name: str) -> Any:
        if hook_name not in PROVIDER_HOOKS:
            raise AttributeError(hook_name)
        caller = self._manager._subset(self.name, hook_name)
        setattr(self, hook_name, caller)
        return caller


class Plugins:
    """Providers are registered under their entry-point name; the host under ``"host"``."""

    def __init__(self, *, load_entry_points: bool = True) -> None:
        self.pm = pluggy.PluginManager("integration_core")
        self.pm.add_hookspecs(hookspecs)
        self._providers: dict[str, Any] = {}
        self._versions: dict[str, str] = {}
        self._callers: dict[str, _ProviderCaller] = {}
        if load_entry_points:
            self.load_entry_points()

    def load_entry_points(self) -> None:
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in self._providers:
                continue
            version = ep.dist.version if ep.dist is not None else "unknown"
            self.add_provider(ep.name, ep.load(), version=version)

    def add_provider(self, name: str, plugin: Any, *, version: str = "unknown") -> None:
        """Register a provider plugin (a module or object with ``@hookimpl`` functions)."""
        self.pm.register(plugin, name=f"provider:{name}")
        self._providers[name] = plugin
        self._versions[name] = version
        self._callers.pop(name, None)

    def set_host(self, host: Any) -> None:
        """Register the host application's implementation of the host hooks (replacing any previous)."""
        if self.pm.get_plugin("host") is not None:
            self.pm.unregister(name="host")
        self.pm.register(host, name="host")

    @property
    def host(self) -> Any:
        return self.pm.hook

    def provider_names(self) -> list[str]:
        return sorted(self._providers)

    def version(self, name: str) -> str:
        return self._versions[name]

    def provider(self, name: str) -> _ProviderCaller:
        """Hook callers for exactly one provider; unknown names list the installed ones."""
        if name not in self._providers:
            raise UnknownProviderError(name, list(self._providers))
        caller = self._callers.get(name)
        if caller is None:
            caller = self._callers[name] = _ProviderCaller(self, name)
        return caller

    def _subset(self, name: str, hook_name: str) -> Any:
        keep = self._providers[name]
        others = [p for p in self.pm.get_plugins() if p is not keep]
        return self.pm.subset_hook_caller(hook_name, remove_plugins=others)

    def register_commands(self, cli: Any) -> None:
        self.pm.hook.register_commands(cli=cli)
