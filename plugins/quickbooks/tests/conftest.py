"""Fixtures the QuickBooks tests share: the reference billing host and the dispatcher serving it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from integration_core.hub import Hub
from integration_core.server import RunningServer, running
from reference_host import ReferenceHost


@pytest.fixture
def billing(tmp_path: Path) -> ReferenceHost:
    return ReferenceHost(tmp_path / "billing.sqlite3")


@pytest.fixture
def server(ic_hub: Hub, billing: ReferenceHost) -> Iterator[RunningServer]:
    ic_hub.plugins.set_host(billing)
    with running(ic_hub) as srv:
        yield srv
