"""Webhooks the emulator sends by itself when a payment changes, as Zoho's workflow webhooks do.

An organization's subscriptions name a URL, the secret and the modules to send: ``payment`` (the customer
payment record, ``{"payment": {...}}``, for "customer payment created / edited") and ``invoice`` (the invoice
record with its ``payments``, for "invoice status updated"). A deleted payment is sent to the payment
subscriptions with the URL parameter ``event=payment_deleted``: Zoho workflow webhooks carry URL
parameters the operator types in (signed like every parameter, ZOHO_BOOKS.md "Webhooks"), and the deletion
webhook is configured with that one [uncertain: whether and how Zoho triggers on deletion; configurable
by ``deleted_param``]. Deliveries run on a background thread after the API answered, as Zoho sends them
after the change; ``deliveries`` keeps what was sent, for tests.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from .state import BooksState
from .webhooks import WebhookDelivery, invoice_record, payment_record, send_webhook


@dataclass
class Subscription:
    url: str
    secret: str | None
    modules: tuple[str, ...] = ("payment",)
    deleted_param: tuple[str, str] = ("event", "payment_deleted")


@dataclass
class PaymentWebhooks:
    state: BooksState
    subscriptions: dict[str, list[Subscription]] = field(default_factory=dict)
    deliveries: list[WebhookDelivery] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    pending: int = 0
    idle: threading.Condition = field(default_factory=threading.Condition)

    def subscribe(self, org_id: str, url: str, secret: str | None, modules: tuple[str, ...] = ("payment",)) -> None:
        with self.lock:
            self.subscriptions.setdefault(org_id, []).append(Subscription(url, secret, tuple(modules)))

    def clear(self) -> None:
        with self.lock:
            self.subscriptions.clear()
            self.deliveries.clear()

    def notify(self, org_id: str, event: str, payment: dict[str, Any]) -> None:
        """Called by the API after a payment was created, deleted or refunded."""
        with self.lock:
            subs = list(self.subscriptions.get(org_id, ()))
        jobs: list[tuple[Subscription, str, dict[str, Any], dict[str, str]]] = []
        for sub in subs:
            if "payment" in sub.modules:
                query = dict([sub.deleted_param]) if event == "deleted" else {}
                jobs.append((sub, "payment", payment_record(self.state, org_id, payment), query))
            if "invoice" in sub.modules and event != "deleted":
                for row in payment.get("invoices") or []:
                    record = invoice_record(self.state, org_id, row["invoice_id"])
                    jobs.append((sub, "invoice", record, {}))
        if jobs:
            with self.idle:
                self.pending += 1
            threading.Thread(target=self._send, args=(jobs,), name="zoho-emulator-webhooks", daemon=True).start()

    def _send(self, jobs: list[tuple[Subscription, str, dict[str, Any], dict[str, str]]]) -> None:
        try:
            for sub, module, record, query in jobs:
                delivery = send_webhook(sub.url, module, record, sub.secret, query or None)
                with self.lock:
                    self.deliveries.append(delivery)
        finally:
            with self.idle:
                self.pending -= 1
                self.idle.notify_all()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until every delivery started so far was answered."""
        with self.idle:
            return self.idle.wait_for(lambda: self.pending == 0, timeout)
