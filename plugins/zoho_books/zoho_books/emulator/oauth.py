"""The Zoho Accounts side: clients, grant codes, refresh and access tokens, scopes.

Behaviour mirrors accounts.zoho.com: errors are `{"error": ...}` bodies with HTTP 200, codes live two
minutes and are single-use, refresh tokens are minted only with access_type=offline and each one may mint
a limited number of access tokens per window.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import urlencode

from .errors import NO_AUTH, NOT_AUTHORIZED, OAuthError, ZohoError

ALL_SCOPES = (
    "ZohoBooks.contacts.ALL",
    "ZohoBooks.invoices.ALL",
    "ZohoBooks.customerpayments.ALL",
    "ZohoBooks.settings.ALL",
)
THROTTLE_DESCRIPTION = (
    "You have made too many requests continuously. Please try again after some time."
)


@dataclass
class Client:
    client_id: str
    client_secret: str
    redirect_uris: list[str]


@dataclass
class Grant:
    """What the (auto-approving) user consented to: scopes and the organizations they belong to."""

    client_id: str
    scopes: frozenset[str]
    org_ids: frozenset[str] | None  # None = every organization in the emulator
    user: str = "user@example.com"


@dataclass
class AuthCode:
    code: str
    grant: Grant
    redirect_uri: str
    offline: bool
    expires_at: float
    used: bool = False


@dataclass
class RefreshToken:
    token: str
    grant: Grant
    created: float
    revoked: bool = False
    mints: deque[float] = field(default_factory=deque)


@dataclass
class AccessToken:
    token: str
    grant: Grant
    expires_at: float
    refresh_token: str | None
    revoked: bool = False


@dataclass
class OAuthConfig:
    access_token_ttl: int = 3600
    code_ttl: float = 120.0
    refresh_limit: int = 10
    refresh_window_seconds: float = 600.0
    max_refresh_tokens: int = 20
    enforce_scopes: bool = True


def parse_scopes(raw: str) -> frozenset[str]:
    return frozenset(s.strip() for s in raw.replace(" ", ",").split(",") if s.strip())


def scope_allows(scopes: Iterable[str], module: str, operation: str) -> bool:
    """`ZohoBooks.<module>.<OP>` with ALL and fullaccess.all wildcards, case-insensitive like Zoho."""
    wanted = {
        f"zohobooks.{module}.{operation}".lower(),
        f"zohobooks.{module}.all".lower(),
        "zohobooks.fullaccess.all",
    }
    return any(s.lower() in wanted for s in scopes)


class OAuthServer:
    """Token bookkeeping; HTTP-agnostic so tests and the control API can use it directly."""

    def __init__(self, config: OAuthConfig | None = None, clock: Callable[[], float] = time.time) -> None:
        self.config = config or OAuthConfig()
        self.clock = clock
        self.lock = threading.RLock()
        self.clients: dict[str, Client] = {}
        self.codes: dict[str, AuthCode] = {}
        self.refresh_tokens: dict[str, RefreshToken] = {}
        self.access_tokens: dict[str, AccessToken] = {}

    def reset(self) -> None:
        with self.lock:
            self.clients.clear()
            self.codes.clear()
            self.refresh_tokens.clear()
            self.access_tokens.clear()

    def add_client(self, client_id: str, client_secret: str, redirect_uris: Iterable[str]) -> Client:
        with self.lock:
            client = Client(client_id, client_secret, list(redirect_uris))
            self.clients[client_id] = client
            return client

    # ----------------------------------------------------------------- authorize
    def authorize(self, params: dict[str, str], base_url: str) -> str:
        """Validate an authorize request and return the redirect location (auto-approved consent)."""
        client = self.clients.get(params.get("client_id", ""))
        if client is None:
            raise OAuthError("invalid_client", "Invalid client_id", status=400)
        redirect_uri = params.get("redirect_uri", "")
        if redirect_uri not in client.redirect_uris:
            raise OAuthError("invalid_redirect_uri", "Redirect URI passed does not match", status=400)
        state = params.get("state")
        error: str | None = None
        scopes = parse_scopes(params.get("scope", ""))
        if params.get("response_type") != "code":
            error = "unsupported_response_type"
        elif not scopes or not all(s.lower().startswith(("zohobooks.", "aaaserver.")) for s in scopes):
            error = "invalid_scope"
        query: dict[str, str] = {}
        if error:
            query["error"] = error
        else:
            code = "1000." + secrets.token_hex(16) + "." + secrets.token_hex(16)
            grant = Grant(client.client_id, scopes, None)
            with self.lock:
                self.codes[code] = AuthCode(
                    code, grant, redirect_uri, params.get("access_type", "online") == "offline",
                    self.clock() + self.config.code_ttl,
                )
            query["code"] = code
        if state is not None:
            query["state"] = state
        if not error:
            query["location"] = "us"
            query["accounts-server"] = base_url
        sep = "&" if "?" in redirect_uri else "?"
        return redirect_uri + sep + urlencode(query)

    # ----------------------------------------------------------------- token endpoint
    def token(self, form: dict[str, str], api_domain: str) -> dict[str, object]:
        grant_type = form.get("grant_type", "")
        client = self.clients.get(form.get("client_id", ""))
        if client is None or not secrets.compare_digest(client.client_secret, form.get("client_secret", "")):
            raise OAuthError("invalid_client")
        if grant_type == "authorization_code":
            return self._exchange_code(client, form, api_domain)
        if grant_type == "refresh_token":
            return self._refresh(client, form, api_domain)
        raise OAuthError("unsupported_grant_type")

    def _exchange_code(self, client: Client, form: dict[str, str], api_domain: str) -> dict[str, object]:
        with self.lock:
            code = self.codes.get(form.get("code", ""))
            if code is None or code.used or code.expires_at < self.clock() or code.grant.client_id != client.client_id:
                raise OAuthError("invalid_code")
            if form.get("redirect_uri") and form["redirect_uri"] != code.redirect_uri:
                raise OAuthError("invalid_redirect_uri")
            code.used = True
            refresh = self._new_refresh(code.grant) if code.offline else None
            access = self._new_access(code.grant, refresh.token if refresh else None)
            return self._token_body(access, refresh, api_domain)

    def _refresh(self, client: Client, form: dict[str, str], api_domain: str) -> dict[str, object]:
        with self.lock:
            rt = self.refresh_tokens.get(form.get("refresh_token", ""))
            if rt is None or rt.revoked or rt.grant.client_id != client.client_id:
                raise OAuthError("invalid_code")
            now = self.clock()
            while rt.mints and rt.mints[0] <= now - self.config.refresh_window_seconds:
                rt.mints.popleft()
            if len(rt.mints) >= self.config.refresh_limit:
                raise OAuthError("Access Denied", THROTTLE_DESCRIPTION)
            rt.mints.append(now)
            access = self._new_access(rt.grant, rt.token)
            return self._token_body(access, None, api_domain)

    def _token_body(self, access: AccessToken, refresh: RefreshToken | None, api_domain: str) -> dict[str, object]:
        body: dict[str, object] = {"access_token": access.token}
        if refresh is not None:
            body["refresh_token"] = refresh.token
        body.update(
            scope=" ".join(sorted(access.grant.scopes)), api_domain=api_domain, token_type="Bearer",
            expires_in=self.config.access_token_ttl,
        )
        return body

    def _new_refresh(self, grant: Grant) -> RefreshToken:
        with self.lock:
            mine = [
                r for r in self.refresh_tokens.values()
                if r.grant.user == grant.user and r.grant.client_id == grant.client_id and not r.revoked
            ]
            while len(mine) >= self.config.max_refresh_tokens:
                oldest = min(mine, key=lambda r: r.created)
                self._revoke_refresh(oldest)
                mine.remove(oldest)
            rt = RefreshToken("1000." + secrets.token_hex(32), grant, self.clock())
            self.refresh_tokens[rt.token] = rt
            return rt

    def _new_access(self, grant: Grant, refresh: str | None) -> AccessToken:
        with self.lock:
            at = AccessToken(
                "1000." + secrets.token_hex(32), grant, self.clock() + self.config.access_token_ttl, refresh
            )
            self.access_tokens[at.token] = at
            return at

    def issue(self, client_id: str, org_ids: Iterable[str] | None, scopes: Iterable[str] = ALL_SCOPES) -> dict:
        """Skip the browser dance: mint a refresh + access token pair directly."""
        if client_id not in self.clients:
            raise KeyError(f"unknown client {client_id!r}")
        orgs = frozenset(str(o) for o in org_ids) if org_ids is not None else None
        grant = Grant(client_id, frozenset(scopes), orgs)
        refresh = self._new_refresh(grant)
        access = self._new_access(grant, refresh.token)
        return self._token_body(access, refresh, "")

    # ----------------------------------------------------------------- revoke and expiry
    def revoke(self, token: str) -> bool:
        with self.lock:
            rt = self.refresh_tokens.get(token)
            if rt is not None:
                self._revoke_refresh(rt)
                return True
            at = self.access_tokens.get(token)
            if at is not None:
                at.revoked = True
                return True
            return False

    def _revoke_refresh(self, rt: RefreshToken) -> None:
        rt.revoked = True
        for at in self.access_tokens.values():
            if at.refresh_token == rt.token:
                at.revoked = True

    def expire_all(self) -> int:
        """Fault: every access token issued so far is expired now (refresh tokens stay valid)."""
        with self.lock:
            past = self.clock() - 1
            for at in self.access_tokens.values():
                at.expires_at = min(at.expires_at, past)
            return len(self.access_tokens)

    # ----------------------------------------------------------------- API authentication
    def authenticate(self, header: str | None) -> AccessToken:
        """Resolve `Authorization: Zoho-oauthtoken <token>`; 14 if absent/unknown, 57 if expired/revoked."""
        if not header:
            raise ZohoError(401, NO_AUTH, "Invalid value passed for Authorization header.")
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "zoho-oauthtoken" or not token.strip():
            raise ZohoError(401, NO_AUTH, "Invalid value passed for Authorization header.")
        with self.lock:
            at = self.access_tokens.get(token.strip())
            if at is None:
                raise ZohoError(401, NO_AUTH, "Invalid OAuth access token.")
            if at.revoked or at.expires_at <= self.clock():
                raise ZohoError(401, NOT_AUTHORIZED, "You are not authorized to perform this operation")
            return at

    def check_scope(self, at: AccessToken, module: str, operation: str) -> None:
        if self.config.enforce_scopes and not scope_allows(at.grant.scopes, module, operation):
            raise ZohoError(401, NOT_AUTHORIZED, "You are not authorized to perform this operation")
