"""Helpers of the core's tests (the shared fixtures live in the top-level ``conftest.py``)."""

from __future__ import annotations


def ledger_values(account: str, **extra: str) -> dict[str, str]:
    values = {"account": account, "api_key": "key-" + account, "webhook_secret": "whsec" + account + "xyz"}
    values.update(extra)
    return values
