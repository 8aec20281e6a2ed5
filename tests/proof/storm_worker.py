"""A standalone outbound worker process for the fault-storm proof (killed with SIGKILL mid-push).

Usage: python -m tests.proof.storm_worker DATABASE_URL KEY_FILE WORKER_ID
"""

from __future__ import annotations

import sys
import time

from integration_core.config import Config
from integration_core.hub import Hub
from integration_core.outbox import Outbound

from .storm import STORM_SETTINGS


def main() -> None:
    database_url, key_file, worker_id = sys.argv[1:4]
    hub = Hub(Config(database_url=database_url, key_file=key_file), auto_upgrade=False)
    outbound = Outbound(hub, worker_id, STORM_SETTINGS)
    print("ready", flush=True)
    while True:
        if outbound.tick().attempted == 0:
            time.sleep(0.005)


if __name__ == "__main__":
    main()
