"""A host for the proof tests: the reference host's billing store, with every hook call counted.

The reference host is itself idempotent on ``payment_key`` (a unique column). The proofs must not lean on
that: they count the calls the core makes, so a second application of one event shows up even when the
store would have absorbed it.
"""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path
from typing import Any

from integration_core.hookspecs import hookimpl
from reference_host import ReferenceHost


class CountingHost:
    def __init__(self, path: str | Path) -> None:
        self.store = ReferenceHost(path)
        self.lock = threading.Lock()
        self.calls: Counter[tuple[str, str]] = Counter()

    def _count(self, hook: str, key: str) -> None:
        with self.lock:
            self.calls[(hook, key)] += 1

    def count(self, hook: str) -> int:
        with self.lock:
            return sum(n for (h, _), n in self.calls.items() if h == hook)

    def keys(self, hook: str) -> Counter[str]:
        with self.lock:
            return Counter({k: n for (h, k), n in self.calls.items() if h == hook})

    @hookimpl
    def record_payment(self, tenant_id: str, environment_id: str, invoice_id: str, amount: Any, currency: Any,
                       paid_on: Any, payment_key: str) -> Any:
        self._count("record_payment", f"{tenant_id}/{environment_id}/{invoice_id}/{payment_key}")
        return self.store.record_payment(tenant_id=tenant_id, environment_id=environment_id, invoice_id=invoice_id,
                                         amount=amount, currency=currency, paid_on=paid_on, payment_key=payment_key)

    @hookimpl
    def void_invoice(self, tenant_id: str, environment_id: str, invoice_id: str) -> None:
        self._count("void_invoice", f"{tenant_id}/{environment_id}/{invoice_id}")
        self.store.void_invoice(tenant_id=tenant_id, environment_id=environment_id, invoice_id=invoice_id)

    @hookimpl
    def find_customer_by_email(self, tenant_id: str, environment_id: str, email: str) -> str | None:
        self._count("find_customer_by_email", f"{tenant_id}/{environment_id}/{email}")
        return self.store.find_customer_by_email(tenant_id=tenant_id, environment_id=environment_id, email=email)

    @hookimpl
    def create_customer(self, tenant_id: str, environment_id: str, name: str, email: str | None) -> str:
        self._count("create_customer", f"{tenant_id}/{environment_id}/{email}")
        return self.store.create_customer(tenant_id=tenant_id, environment_id=environment_id, name=name, email=email)
