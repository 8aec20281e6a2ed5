"""Zoho's webhook signature (X-Zoho-Webhook-Signature), usable by receivers as well as the emulator."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

SIGNATURE_HEADER = "X-Zoho-Webhook-Signature"


def signing_message(body: bytes, params: Mapping[str, str] | None = None) -> bytes:
    """Query-string and form params (URL-decoded) sorted by key as key+value, then the raw body."""
    given = params or {}
    prefix = "".join(f"{key}{given[key]}" for key in sorted(given))
    return prefix.encode("utf-8") + body


def sign(secret: str, body: bytes, params: Mapping[str, str] | None = None) -> str:
    """Lowercase hex HMAC-SHA256 keyed with the webhook secret."""
    return hmac.new(secret.encode("utf-8"), signing_message(body, params), hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, signature: str, params: Mapping[str, str] | None = None) -> bool:
    """Constant-time check of a received signature."""
    return hmac.compare_digest(sign(secret, body, params), signature.strip().lower())
