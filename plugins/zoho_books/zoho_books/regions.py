"""Zoho data centres: which accounts server issues tokens and which API host serves the data.

A connection names its region by code (``eu``) or by accounts-server URL. The token response's
``api_domain`` is authoritative for the API host; this table is only the fallback (Canada is the odd one:
accounts on ``zohocloud.ca``, API on ``zohoapis.ca``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

import attrs

from integration_core.errors import ConfigurationError


@attrs.frozen
class Region:
    code: str
    label: str
    accounts_server: str
    api_domain: str
    observed_only: bool = False  # known from live integrations, not from Zoho's documentation


REGIONS: tuple[Region, ...] = (
    Region("us", "United States", "https://accounts.zoho.com", "https://www.zohoapis.com"),
    Region("eu", "Europe", "https://accounts.zoho.eu", "https://www.zohoapis.eu"),
    Region("in", "India", "https://accounts.zoho.in", "https://www.zohoapis.in"),
    Region("au", "Australia", "https://accounts.zoho.com.au", "https://www.zohoapis.com.au"),
    Region("jp", "Japan", "https://accounts.zoho.jp", "https://www.zohoapis.jp"),
    Region("ca", "Canada", "https://accounts.zohocloud.ca", "https://www.zohoapis.ca"),
    Region("sa", "Saudi Arabia", "https://accounts.zoho.sa", "https://www.zohoapis.sa"),
    Region("cn", "China", "https://accounts.zoho.com.cn", "https://www.zohoapis.com.cn"),
    Region("uk", "United Kingdom", "https://accounts.zoho.uk", "https://www.zohoapis.uk", observed_only=True),
)

BY_CODE: dict[str, Region] = {r.code: r for r in REGIONS}
BY_ACCOUNTS_SERVER: dict[str, Region] = {r.accounts_server: r for r in REGIONS}
REGION_CHOICES: tuple[str, ...] = tuple(r.code for r in REGIONS)


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _normalize_url(value: str) -> str:
    parts = urlsplit(value.strip())
    host = (parts.hostname or "").lower()
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme.lower()}://{host}{port}"


def is_local(url: str) -> bool:
    """True for the emulator and other servers on this machine (the only non-Zoho hosts we accept)."""
    return _is_loopback(urlsplit(url).hostname)


def resolve_accounts_server(value: str | None) -> str:
    """Turn a region code or accounts-server URL into a normalized URL; reject anything else.

    Only Zoho's own accounts servers, and loopback URLs (the local emulator), are accepted: the client
    secret is sent to this host, so an arbitrary URL would be a way to leak it.
    """
    raw = (value or "").strip()
    if not raw:
        raise ConfigurationError(f"accounts_server is required: a region code ({', '.join(REGION_CHOICES)}) "
                                 "or a Zoho accounts-server URL such as https://accounts.zoho.eu")
    region = BY_CODE.get(raw.lower())
    if region is not None:
        return region.accounts_server
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"accounts_server {raw!r} is neither a region code ({', '.join(REGION_CHOICES)}) "
                                 "nor a URL")
    if parts.path.strip("/") or parts.query or parts.fragment:
        raise ConfigurationError(f"accounts_server {raw!r} must be a bare origin like https://accounts.zoho.eu "
                                 "(no path or query)")
    url = _normalize_url(raw)
    if url in BY_ACCOUNTS_SERVER or is_local(url):
        return url
    known = ", ".join(r.accounts_server for r in REGIONS)
    raise ConfigurationError(f"accounts_server {raw!r} is not a Zoho accounts server; use one of: {known}")


def known_accounts_server(value: str | None) -> str | None:
    """The normalized URL when ``value`` is a Zoho accounts server from the table, else ``None``."""
    if not value:
        return None
    try:
        url = _normalize_url(value)
    except ValueError:
        return None
    return url if url in BY_ACCOUNTS_SERVER else None


def api_domain_for(accounts_server: str) -> str:
    """The fallback API host for an accounts server (a local server serves both roles itself)."""
    region = BY_ACCOUNTS_SERVER.get(_normalize_url(accounts_server))
    if region is not None:
        return region.api_domain
    return _normalize_url(accounts_server)


def validate_api_domain(value: str) -> str:
    """Accept an ``api_domain`` from a token response only when it is a Zoho API host or loopback."""
    url = _normalize_url(value)
    parts = urlsplit(url)
    host = parts.hostname or ""
    if is_local(url) or (parts.scheme == "https" and "zohoapis" in host.split(".")):
        return url
    raise ConfigurationError(f"Zoho answered an unexpected api_domain {value!r}; refusing to send tokens there")


def table_rows() -> Iterable[tuple[str, str, str, str]]:
    """Rows for ``integration-core zoho-books regions``."""
    for r in REGIONS:
        yield r.code, r.label, r.accounts_server, r.api_domain + (" (observed)" if r.observed_only else "")
