"""Run outbound ticks in the background (APScheduler 3), or until the outbox is idle (tests, demos).

A :class:`Worker` is one or more interval jobs, each an :class:`~integration_core.outbox.Outbound`
with its own worker id. Jobs never overlap themselves (``max_instances=1``) and missed runs collapse into
one (``coalesce``). While a tick finds due work the job keeps ticking, so throughput is not capped by the
interval; when nothing is due it sleeps until the next interval. Many worker processes may share one
PostgreSQL database: connection leases keep them apart.
"""

from __future__ import annotations

import datetime as dt
import logging
import signal
import threading
import time
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler

from .config import Config
from .errors import DatabaseFileChanged
from .hub import Hub
from .outbox import Outbound, OutboundSettings, TickStats, default_worker_id, pending_work
from .reconcile import reconcile_due
from .redact import RepeatedErrors

log = logging.getLogger(__name__)

MAX_BUSY_SECONDS = 30.0  # a busy job yields back to the scheduler at least this often


class Worker:
    """Background outbound worker: ``start()`` returns at once, ``stop()`` waits for the running tick."""

    def __init__(
        self,
        hub: Hub,
        *,
        interval: float | None = None,
        settings: OutboundSettings | None = None,
        threads: int = 1,
        worker_id: str | None = None,
    ) -> None:
        self.hub = hub
        self.interval = float(interval if interval is not None else hub.config.scheduler_interval)
        # Threads split the due connections: a tick claims one connection at a time (Outbound.tick).
        self.settings = settings or OutboundSettings.from_env()
        base = worker_id or default_worker_id()
        self.outbounds = [
            Outbound(hub, base if threads == 1 else f"{base}:{i}", self.settings) for i in range(max(1, threads))
        ]
        self.totals = TickStats()
        self.fatal: DatabaseFileChanged | None = None  # set when the worker stopped itself
        self._errors = RepeatedErrors(log, "outbound tick failed")
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._scheduler = BackgroundScheduler(timezone=dt.UTC)

    @property
    def worker_id(self) -> str:
        return self.outbounds[0].worker_id

    def start(self) -> Worker:
        # APScheduler logs every run at INFO; our own tick log says what matters. An operator who set
        # a level for it keeps theirs.
        aps_log = logging.getLogger("apscheduler")
        if aps_log.level == logging.NOTSET:
            aps_log.setLevel(logging.WARNING)
        for i, outbound in enumerate(self.outbounds):
            self._scheduler.add_job(
                self._run,
                "interval",
                args=(outbound,),
                seconds=self.interval,
                id=f"outbound-{i}",
                max_instances=1,
                coalesce=True,
                next_run_time=dt.datetime.now(dt.UTC),
                misfire_grace_time=None,
            )
        reconcile_every = float(self.hub.config.reconcile_interval)
        if reconcile_every > 0:  # each connection at most once per interval; checked every scheduler interval
            self._scheduler.add_job(self._reconcile, "interval", args=(reconcile_every,), seconds=self.interval,
                                    id="reconcile", max_instances=1, coalesce=True, misfire_grace_time=None)
        self._scheduler.start()
        log.info("outbound worker %s started (%d job(s), every %.1fs)", self.worker_id, len(self.outbounds),
                 self.interval)
        return self

    def stop(self, wait: bool = True) -> None:
        self._stopping.set()
        if self._scheduler.running:
            self._scheduler.shutdown(wait=wait)

    def _reconcile(self, interval: float) -> None:
        """Reconcile the connections due (``reconcile.reconcile_due``); never raise into the scheduler."""
        if self._stopping.is_set():
            return
        try:
            reconcile_due(self.hub, interval)
        except DatabaseFileChanged as exc:  # as for the outbox: nothing this process writes would be kept
            log.error("%s", exc)
            self.fatal = exc
            self._stopping.set()
        except Exception as exc:  # the database may be briefly unavailable: try again next interval
            self._errors.failed(exc)  # one traceback, then counts (the same failures as the outbox's)

    def _run(self, outbound: Outbound) -> None:
        """One scheduled run: tick while there is due work (bounded), never raise into the scheduler."""
        started = time.monotonic()
        while not self._stopping.is_set():
            try:
                stats = outbound.tick()
            except DatabaseFileChanged as exc:  # nothing this process writes would be kept: stop
                log.error("%s", exc)
                self.fatal = exc
                self._stopping.set()
                return
            except Exception as exc:  # the database may be briefly unavailable: try again next interval
                self._errors.failed(exc)  # a full disk fails every tick: one traceback, then counts
                return
            self._errors.succeeded()
            with self._lock:
                self.totals.add(stats)
            if stats.attempted == 0 or time.monotonic() - started > MAX_BUSY_SECONDS:
                return


def start_scheduler(hub: Hub, **kwargs: Any) -> Worker:
    """Start a background :class:`Worker` for ``hub`` (used by ``integration-core serve``)."""
    return Worker(hub, **kwargs).start()


def run_worker(config: Config | None = None, *, threads: int = 1, hub: Hub | None = None) -> None:
    """Blocking entry of ``integration-core worker``: run until SIGINT or SIGTERM."""
    hub = hub or Hub(config or Config.from_env())
    worker = Worker(hub, threads=threads)
    done = threading.Event()

    def _signal(signum: int, _frame: Any) -> None:
        log.warning("signal %s: stopping after the current tick", signum)
        done.set()

    previous = {sig: signal.signal(sig, _signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    worker.start()
    log.warning("integration-core worker %s running (Ctrl-C to stop)", worker.worker_id)
    try:
        while not done.wait(0.5):
            if worker.fatal is not None:
                break
    finally:
        worker.stop(wait=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        t = worker.totals
        log.warning("worker stopped: %d pushed (%d adopted), %d retrying, %d failed, %d dead",
                    t.done, t.adopted, t.retrying, t.failed, t.dead)
    if worker.fatal is not None:
        raise worker.fatal


def drain_until_idle(
    hub: Hub,
    timeout: float = 30.0,
    *,
    outbound: Outbound | None = None,
    settings: OutboundSettings | None = None,
    poll: float = 0.01,
) -> TickStats:
    """Tick in this thread until no pending or in-flight task is left on an active connection.

    Raises ``TimeoutError`` (with what is left) when the outbox is not idle within ``timeout`` seconds.
    """
    outbound = outbound or Outbound(hub, settings=settings)
    totals = TickStats()
    deadline = time.monotonic() + timeout
    while True:
        stats = outbound.tick()
        totals.add(stats)
        if stats.attempted == 0:
            left = pending_work(hub)
            if left == 0:
                return totals
            if time.monotonic() > deadline:
                raise TimeoutError(f"outbox not idle after {timeout}s: {left} task(s) left ({totals})")
            time.sleep(poll)
        elif time.monotonic() > deadline:
            raise TimeoutError(f"outbox not idle after {timeout}s ({totals})")
