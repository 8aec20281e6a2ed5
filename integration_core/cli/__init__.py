"""The ``integration-core`` command line: the core's commands, then those contributed by plugins.

* :mod:`.app`: the root group and error handling;
* :mod:`.admin`: ``db``, ``providers``, ``keys``; :mod:`.providers`: ``providers configure``, ``providers show``;
* :mod:`.connections`: ``connections ...``;
* :mod:`.outbox`: ``tasks``, ``status``, ``worker``, ``invoices backfill``;
* :mod:`.inbox`: ``events``, ``connections webhook-url``, ``serve``;
* :mod:`.unrouted`: ``events unrouted ...``;
* :mod:`integration_core.console.cli`: ``console operator ...``.
"""

from __future__ import annotations

from ..console import cli as console_cli
from ..plugins import Plugins
from . import admin, connections, inbox, outbox, providers, unrouted
from .app import main

__all__ = ["admin", "connections", "console_cli", "inbox", "main", "outbox", "providers", "unrouted"]

Plugins().register_commands(main)
