"""5. Memory of a worker process over a long run: start RSS and high-water mark for two volumes.

The parent runs the Zoho emulator (no latency, limits lifted) and queues the backlog; a fresh worker
process (``python -m bench.memory DB_URL KEY_FILE``) drains it with one ``Outbound`` and reports its RSS
from ``/proc/self/statm`` and its high-water mark (``VmHWM``). Remote state lives in the parent, so the
numbers are the worker's own. 50 repeat customers: after the first 50 invoices, 1 request per invoice.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from .common import Row, customer, invoice, make_hub, start_emulator, temp_dir, zoho_connection

NAME = "worker memory"
ROOT = Path(__file__).resolve().parents[1]


def rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mib() -> float:
    """This process's RSS high-water mark: ``VmHWM``, else ``ru_maxrss``.

    ``ru_maxrss`` survives ``exec``: a child of a big parent reports the parent's peak. ``VmHWM`` is per
    address space.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def worker(database_url: str, key_file: str) -> dict[str, float]:
    """Drain the outbox in this process; RSS at start (Hub ready), after 10 % of the work, at the end."""
    from integration_core.config import Config
    from integration_core.hub import Hub
    from integration_core.outbox import Outbound, pending_work

    hub = Hub(Config(database_url=database_url, key_file=key_file))
    outbound = Outbound(hub, "bench-memory")
    total = pending_work(hub)
    start = rss_mib()
    warm = None
    done = 0
    began = time.perf_counter()
    while True:
        stats = outbound.tick()
        done += stats.done
        if warm is None and done >= total // 10:
            warm = rss_mib()
        if stats.attempted == 0 and pending_work(hub) == 0:
            break
    elapsed = time.perf_counter() - began
    return {"invoices": done, "start": start, "warm": warm or start, "end": rss_mib(), "peak": peak_mib(),
            "seconds": elapsed}


def _volume(emulator, n: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    with temp_dir() as d:
        hub = make_hub(d)
        tenant = f"mem{n}"
        zoho_connection(hub, emulator, tenant, settings={"rate_limit_per_minute": "1000000"})
        for i in range(n):
            hub.submit_invoice(tenant, "live", invoice(i, customer(i % 50, tenant), prefix=tenant))
        url = hub.config.database_url
        hub.engine.dispose()
        out = subprocess.run([sys.executable, "-m", "bench.memory", url, str(d / "bench.key")], cwd=ROOT,
                             env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                             check=True, timeout=900)
        result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["invoices"] == n, result
    return result


def run(quick: bool = False) -> list[Row]:
    small, large = (200, 1000) if quick else (1000, 5000)
    emulator, _ = start_emulator(rate_limit_per_minute=10**6)
    try:
        a, b = _volume(emulator, small), _volume(emulator, large)
    finally:
        emulator.stop()
    rows = []
    for r in (a, b):
        n = int(r["invoices"])
        rows.append(Row(NAME, f"{n:,} invoices to the emulator: RSS at start (Hub ready)", r["start"], "MiB"))
        rows.append(Row(NAME, f"{n:,} invoices: RSS after 10 % / at the end", f"{r['warm']:.1f} / {r['end']:.1f}",
                        "MiB"))
        rows.append(Row(NAME, f"{n:,} invoices: peak RSS (VmHWM)", r["peak"], "MiB",
                        f"{r['peak'] / a['peak']:.2f}x vs {int(a['invoices']):,}"))
        rows.append(Row(NAME, "  same run: drain rate, 1 worker, no latency", n / r["seconds"], "invoices/s"))
    return rows


if __name__ == "__main__":
    print(json.dumps(worker(sys.argv[1], sys.argv[2])))
