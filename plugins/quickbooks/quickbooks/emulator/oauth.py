"""Intuit's OAuth 2.0 server as QUICKBOOKS.md §1 describes it.

* ``GET /connect/oauth2`` (appcenter host): consent is granted at once (or refused, when the test says so)
  and the browser is redirected to ``redirect_uri?code=…&state=…&realmId=…``.
* ``POST /oauth2/v1/tokens/bearer``: HTTP Basic client auth, form body; code exchange and refresh.
  Refresh tokens rotate: a refresh answers a new value once the current one is older than
  ``rotate_after`` seconds (Intuit: about 24 h; the superseded value's fate is [U]: invalid by default,
  or valid for ``old_refresh_grace`` seconds).
* ``POST /v2/oauth2/tokens/revoke``: Basic auth, JSON ``{"token": …}``; revokes the whole grant [U].
"""

from __future__ import annotations

import base64
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from .errors import OAuthError

ACCOUNTING_SCOPE = "com.intuit.quickbooks.accounting"
PAYMENT_SCOPE = "com.intuit.quickbooks.payment"
HARD_EXPIRY_HEADER = "x-include-refresh-token-hard-expires-in"


@dataclass
class OAuthConfig:
    access_token_ttl: int = 3600  # §1: 1 h
    code_ttl: float = 300.0  # §1: about 5 minutes [U]
    refresh_window: int = 8_640_000  # §1: rolling 100 days
    hard_expiry: int = 157_680_000  # §1: 5 years
    rotate_after: float = 86_400.0  # §1: rotates roughly every 24 h
    old_refresh_grace: float = 0.0  # §1 [U]: the superseded value is invalid at once by default


@dataclass
class Client:
    client_id: str
    secret: str
    redirect_uris: list[str]


@dataclass
class Grant:
    client_id: str
    realm_id: str
    scopes: list[str]
    created: float
    revoked: bool = False


@dataclass
class RefreshToken:
    grant: Grant
    issued: float
    last_used: float
    superseded_at: float | None = None


@dataclass
class AccessToken:
    grant: Grant
    expires: float


@dataclass
class Consent:
    realm_id: str | None = None
    deny: bool = False


@dataclass
class OAuthServer:
    config: OAuthConfig = field(default_factory=OAuthConfig)
    lock: threading.RLock = field(default_factory=threading.RLock)
    clients: dict[str, Client] = field(default_factory=dict)
    codes: dict[str, tuple[Grant, str, float]] = field(default_factory=dict)
    refresh_tokens: dict[str, RefreshToken] = field(default_factory=dict)
    access_tokens: dict[str, AccessToken] = field(default_factory=dict)
    next_consent: Consent = field(default_factory=Consent)
    refreshes: int = 0

    def reset(self) -> None:
        with self.lock:
            self.clients.clear()
            self.codes.clear()
            self.refresh_tokens.clear()
            self.access_tokens.clear()
            self.next_consent = Consent()
            self.refreshes = 0

    def add_client(self, client_id: str, secret: str, redirect_uris: list[str]) -> None:
        with self.lock:
            self.clients[client_id] = Client(client_id, secret, list(redirect_uris))

    # --------------------------------------------------------------- authorize
    def authorize(self, params: dict[str, str], default_realm: str | None) -> str:
        """The redirect ``Location`` for a consent request; raises OAuthError for a bad client/redirect."""
        with self.lock:
            client = self.clients.get(params.get("client_id", ""))
            if client is None:
                raise OAuthError(400, "invalid_client", "unknown client_id")
            redirect = params.get("redirect_uri", "")
            if redirect not in client.redirect_uris:  # §1: must exactly match a registered URI
                raise OAuthError(400, "invalid_request", "redirect_uri does not match the app's redirect URIs")
            if params.get("response_type") != "code":
                raise OAuthError(400, "unsupported_response_type")
            scopes = params.get("scope", "").split()
            state = params.get("state", "")
            consent, self.next_consent = self.next_consent, Consent()
            sep = "&" if "?" in redirect else "?"
            if consent.deny:  # §1: refusal → ?error=access_denied&state=...
                return redirect + sep + urlencode({"error": "access_denied", "state": state})
            realm = consent.realm_id or default_realm
            if realm is None:
                raise OAuthError(400, "invalid_request", "no company to connect")
            grant = Grant(client.client_id, realm, scopes, time.time())
            code = "AB11" + secrets.token_urlsafe(40)
            self.codes[code] = (grant, redirect, time.time() + self.config.code_ttl)
            query = {"code": code, "state": state}
            if ACCOUNTING_SCOPE in scopes or PAYMENT_SCOPE in scopes:
                query["realmId"] = realm  # §1: realmId only for accounting/payment scopes
            return redirect + sep + urlencode(query)

    # --------------------------------------------------------------- token endpoint
    def _client(self, authorization: str | None) -> Client:
        """§1: HTTP Basic ``base64(client_id:client_secret)``; bad credentials → 401 invalid_client."""
        if not authorization or not authorization.lower().startswith("basic "):
            raise OAuthError(401, "invalid_client")
        try:
            client_id, _, secret = base64.b64decode(authorization[6:].strip()).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            raise OAuthError(401, "invalid_client") from None
        client = self.clients.get(client_id)
        if client is None or not secrets.compare_digest(client.secret, secret):
            raise OAuthError(401, "invalid_client")
        return client

    def token(self, authorization: str | None, form: dict[str, str], headers: dict[str, str]) -> dict[str, Any]:
        with self.lock:
            client = self._client(authorization)
            grant_type = form.get("grant_type")
            now = time.time()
            if grant_type == "authorization_code":
                entry = self.codes.pop(form.get("code", ""), None)  # §1: single use
                if entry is None or entry[2] < now or entry[0].client_id != client.client_id:
                    raise OAuthError(400, "invalid_grant")
                grant, redirect, _ = entry
                if form.get("redirect_uri") != redirect:
                    raise OAuthError(400, "invalid_grant", "redirect_uri mismatch")
                refresh = self._new_refresh(grant, now)
            elif grant_type == "refresh_token":
                value = form.get("refresh_token", "")
                rt = self.refresh_tokens.get(value)
                if rt is None or not self._refresh_valid(rt, client, now):
                    raise OAuthError(400, "invalid_grant", "Incorrect or invalid refresh token")
                grant = rt.grant
                self.refreshes += 1
                rt.last_used = now
                if now - rt.issued >= self.config.rotate_after and rt.superseded_at is None:
                    rt.superseded_at = now  # §1: rotated; the old value is invalid after the grace [U]
                    refresh = self._new_refresh(grant, now)
                elif rt.superseded_at is not None:
                    # within the grace period: answer the newest value of the grant
                    refresh = max((k for k, v in self.refresh_tokens.items() if v.grant is grant
                                   and v.superseded_at is None), key=lambda k: self.refresh_tokens[k].issued,
                                  default=value)
                else:
                    refresh = value
            else:
                raise OAuthError(400, "unsupported_grant_type")
            access = "eyJlbmMiOiJBMTI4Q0JDLUhTMjU2" + secrets.token_urlsafe(48)
            self.access_tokens[access] = AccessToken(grant, now + self.config.access_token_ttl)
            body: dict[str, Any] = {"token_type": "bearer", "access_token": access,
                                    "expires_in": self.config.access_token_ttl, "refresh_token": refresh,
                                    "x_refresh_token_expires_in": self.config.refresh_window}
            if headers.get(HARD_EXPIRY_HEADER, "").lower() == "true":
                body["x_refresh_token_hard_expires_in"] = max(
                    0, int(self.config.hard_expiry - (now - grant.created)))
            return body

    def _new_refresh(self, grant: Grant, now: float) -> str:
        value = "RT1-" + secrets.token_urlsafe(40)
        self.refresh_tokens[value] = RefreshToken(grant, now, now)
        return value

    def _refresh_valid(self, rt: RefreshToken, client: Client, now: float) -> bool:
        if rt.grant.revoked or rt.grant.client_id != client.client_id:
            return False
        if now - rt.last_used > self.config.refresh_window:  # §1: rolling 100 days
            return False
        if now - rt.grant.created > self.config.hard_expiry:  # §1: 5-year cap
            return False
        return rt.superseded_at is None or now - rt.superseded_at < self.config.old_refresh_grace

    # --------------------------------------------------------------- revoke
    def revoke(self, authorization: str | None, token: str) -> None:
        with self.lock:
            self._client(authorization)
            grant: Grant | None = None
            if token in self.refresh_tokens:
                grant = self.refresh_tokens[token].grant
            elif token in self.access_tokens:
                grant = self.access_tokens[token].grant
            if grant is None:
                raise OAuthError(400, "invalid_request", "token not found")
            grant.revoked = True

    # --------------------------------------------------------------- API side
    def check_access(self, authorization: str | None, realm_id: str) -> Grant:
        """The grant behind a Bearer token, for a request to ``realm_id`` (§2: 401/3200 or 403/3100)."""
        from .errors import expired_token, forbidden

        if not authorization or not authorization.lower().startswith("bearer "):
            raise expired_token("Malformed bearer token")
        with self.lock:
            at = self.access_tokens.get(authorization[7:].strip())
            if at is None or at.grant.revoked:
                raise expired_token("Token invalid")
            if at.expires <= time.time():
                raise expired_token("Token expired")
            if at.grant.realm_id != realm_id:
                raise forbidden("App not authorized for this company")
            return at.grant

    def issue(self, client_id: str, realm_id: str) -> dict[str, Any]:
        """Tokens without the browser dance (tests, demo)."""
        with self.lock:
            if client_id not in self.clients:
                raise KeyError(f"unknown client {client_id}")
            now = time.time()
            grant = Grant(client_id, realm_id, [ACCOUNTING_SCOPE], now)
            refresh = self._new_refresh(grant, now)
            access = "eyJlbmMiOiJBMTI4Q0JDLUhTMjU2" + secrets.token_urlsafe(48)
            self.access_tokens[access] = AccessToken(grant, now + self.config.access_token_ttl)
            return {"token_type": "bearer", "access_token": access, "refresh_token": refresh,
                    "expires_in": self.config.access_token_ttl,
                    "x_refresh_token_expires_in": self.config.refresh_window}

    def expire_all(self) -> int:
        with self.lock:
            for at in self.access_tokens.values():
                at.expires = 0
            return len(self.access_tokens)

    def live_apps(self, realm_id: str) -> set[str]:
        """Client ids with a live grant on ``realm_id`` (§7: webhooks flow only for connected companies)."""
        with self.lock:
            return {rt.grant.client_id for rt in self.refresh_tokens.values()
                    if rt.grant.realm_id == realm_id and not rt.grant.revoked}
