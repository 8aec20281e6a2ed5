"""Connection settings: the fields a Zoho Books connection asks for, their validation and tunables.

Settings may arrive as strings (command line, forms), so every tunable is parsed leniently here, once.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Mapping
from typing import Any

import attrs

from integration_core.errors import ConfigurationError
from integration_core.models import ProviderInfo, SettingField

from .regions import REGION_CHOICES, api_domain_for, resolve_accounts_server, validate_api_domain
from .webhooks import webhook_secret_problem

PROVIDER_NAME = "zoho_books"
DISTRIBUTION = "integration-core-zoho-books"

EDITIONS = ("us", "ca", "au", "in", "uk", "eu", "gcc", "mx", "ke", "za", "global")
FIELDS: tuple[SettingField, ...] = (
    SettingField("client_id", "OAuth client id from https://api-console.zoho.com (server-based application)"),
    SettingField("client_secret", "OAuth client secret of that client", secret=True),
    SettingField("organization_id", "Zoho Books organization id (Settings → Organization profile)"),
    # No ``choices``: a full accounts-server URL (or the local emulator's) is accepted too.
    SettingField("accounts_server", f"Zoho data centre: a region code ({', '.join(REGION_CHOICES)}) or the "
                 "accounts-server URL", default="us"),
    SettingField("webhook_secret", "Secret typed into the Zoho webhooks (12-50 letters and digits)", secret=True),
    # Optional tunables; the defaults are Zoho's documented values.
    SettingField("use_local_invoice_numbers", "Send our invoice numbers to Zoho (true) or let Zoho number them",
                 required=False),
    SettingField("rate_limit_per_minute", "Requests per minute for this organization (Zoho: 100)", required=False),
    SettingField("rate_limit_concurrency", "Requests in flight (Zoho: 10 on paid plans, 5 on Free)", required=False),
    SettingField("connect_timeout", "Seconds to connect to Zoho (5)", required=False),
    SettingField("read_timeout", "Seconds to wait for Zoho's answer (30)", required=False),
    SettingField("refresh_margin", "Refresh the access token this many seconds before it expires (300)",
                 required=False),
    SettingField("currency_cache_ttl", "Seconds to cache the organization's currencies (600)", required=False),
    SettingField("refresh_throttle_retry_after", "Seconds to wait after Zoho throttles token refreshes (300)",
                 required=False),
    SettingField("api_domain", "Zoho API host; learned from the token response, set only to override",
                 required=False),
    # Real organizations: country edition, items, custom fields.
    SettingField("edition", "Country edition of the organization (" + ", ".join(EDITIONS) + "); empty: "
                 "derived from the organization's country", required=False),
    SettingField("invoice_custom_fields", "Invoice metadata keys to Zoho custom fields, e.g. "
                 "'service_start=cf_service_start,subscription_id=cf_subscription_id'", required=False),
    SettingField("contact_custom_fields", "Customer metadata keys to Zoho contact custom fields, same form",
                 required=False),
    SettingField("item_product_type", "Product type of items created for product codes (goods, service, "
                 "digital_service; default service)", required=False),
    SettingField("item_unit", "Unit of items created for product codes (e.g. pcs, hrs)", required=False),
    SettingField("item_account_id", "Income account id of items created for product codes", required=False),
    SettingField("item_tax_id", "Default tax id of items created for product codes (not in the US and India "
                 "editions)", required=False),
    SettingField("catalog_cache_ttl", "Seconds to cache taxes, exemptions and items (3600)", required=False),
)
PRODUCT_TYPES = ("goods", "service", "digital_service", "capital_service", "capital_goods")
SECRET_FIELDS = frozenset(f.name for f in FIELDS if f.secret)


def version() -> str:
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def provider_info() -> ProviderInfo:
    return ProviderInfo(name=PROVIDER_NAME, title="Zoho Books", version=version(), fields=FIELDS, oauth=True)


def _bool(value: Any, default: bool) -> bool:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigurationError(f"expected true or false, got {value!r}")


def _number(name: str, value: Any, default: float, *, minimum: float = 0.0) -> float:
    if value is None or value == "":
        return default
    try:
        result = float(value)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"{name} must be a number, got {value!r}") from exc
    if result <= minimum:
        raise ConfigurationError(f"{name} must be greater than {minimum:g}, got {value!r}")
    return result


@attrs.frozen
class Settings:
    """Validated, typed view of a connection's settings."""

    client_id: str
    organization_id: str
    accounts_server: str
    api_domain: str
    use_local_invoice_numbers: bool = True
    rate_limit_per_minute: int = 100
    rate_limit_concurrency: int = 10
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    refresh_margin: float = 300.0
    currency_cache_ttl: float = 600.0
    refresh_throttle_retry_after: float = 300.0
    edition: str = ""
    invoice_custom_fields: Mapping[str, str] = attrs.field(factory=dict)
    contact_custom_fields: Mapping[str, str] = attrs.field(factory=dict)
    item_product_type: str = "service"
    item_unit: str = ""
    item_account_id: str = ""
    item_tax_id: str = ""
    catalog_cache_ttl: float = 3600.0


def _field_map(name: str, value: Any) -> dict[str, str]:
    """``key=api_name,key2=api_name2`` or a JSON-like object: metadata key -> Zoho custom field api_name."""
    if value is None or value == "":
        return {}
    if isinstance(value, Mapping):
        pairs = list(value.items())
    else:
        pairs = []
        for part in str(value).split(","):
            if not part.strip():
                continue
            key, sep, api = part.partition("=")
            if not sep:
                raise ConfigurationError(f"{name}: expected key=api_name pairs separated by commas, got {part!r}")
            pairs.append((key, api))
    out = {}
    for key, api in pairs:
        key, api = str(key).strip(), str(api).strip()
        if not key or not api:
            raise ConfigurationError(f"{name}: empty key or api_name in {value!r}")
        out[key] = api
    return out


def _choice(name: str, value: Any, choices: tuple[str, ...], default: str) -> str:
    text = str(value or "").strip().lower()
    if not text:
        return default
    if text not in choices:
        raise ConfigurationError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return text


def validate_settings(settings: Mapping[str, Any], secrets: Mapping[str, Any] | None = None, *,
                      need_credentials: bool = True) -> Settings:
    """Check a connection's settings (and secrets, when given) and say exactly what to fix."""
    problems: list[str] = []

    def text(name: str) -> str:
        value = settings.get(name)
        return str(value).strip() if value is not None else ""

    client_id = text("client_id")
    organization_id = text("organization_id")
    if need_credentials and not client_id:
        problems.append("client_id is required (from https://api-console.zoho.com)")
    if need_credentials and not organization_id:
        problems.append("organization_id is required (Zoho Books → Settings → Organization profile)")
    elif organization_id and not organization_id.isdigit():
        problems.append(f"organization_id must be digits only, got {organization_id!r}")
    accounts_server = ""
    try:
        accounts_server = resolve_accounts_server(text("accounts_server") or "us")
    except ConfigurationError as exc:
        problems.append(str(exc))
    if secrets is not None:
        if need_credentials and not secrets.get("client_secret"):
            problems.append("client_secret is required")
        if secrets.get("webhook_secret"):  # checked when present; a missing one only fails verification
            problem = webhook_secret_problem(secrets.get("webhook_secret"))
            if problem:
                problems.append(problem)
    try:
        tunables: dict[str, Any] = {
            "use_local_invoice_numbers": _bool(settings.get("use_local_invoice_numbers"), True),
            "rate_limit_per_minute": int(_number("rate_limit_per_minute", settings.get("rate_limit_per_minute"), 100)),
            "rate_limit_concurrency": int(_number("rate_limit_concurrency", settings.get("rate_limit_concurrency"),
                                                  10)),
            "connect_timeout": _number("connect_timeout", settings.get("connect_timeout"), 5.0),
            "read_timeout": _number("read_timeout", settings.get("read_timeout"), 30.0),
            "refresh_margin": _number("refresh_margin", settings.get("refresh_margin"), 300.0, minimum=-1),
            "currency_cache_ttl": _number("currency_cache_ttl", settings.get("currency_cache_ttl"), 600.0,
                                          minimum=-1),
            "refresh_throttle_retry_after": _number("refresh_throttle_retry_after",
                                                    settings.get("refresh_throttle_retry_after"), 300.0),
            "edition": _choice("edition", settings.get("edition"), EDITIONS, ""),
            "invoice_custom_fields": _field_map("invoice_custom_fields", settings.get("invoice_custom_fields")),
            "contact_custom_fields": _field_map("contact_custom_fields", settings.get("contact_custom_fields")),
            "item_product_type": _choice("item_product_type", settings.get("item_product_type"), PRODUCT_TYPES,
                                         "service"),
            "item_unit": text("item_unit"),
            "item_account_id": text("item_account_id"),
            "item_tax_id": text("item_tax_id"),
            "catalog_cache_ttl": _number("catalog_cache_ttl", settings.get("catalog_cache_ttl"), 3600.0, minimum=-1),
        }
    except ConfigurationError as exc:
        problems.append(str(exc))
        tunables = {}
    if problems:
        raise ConfigurationError("Zoho Books connection settings: " + "; ".join(problems))
    api_domain = validate_api_domain(text("api_domain")) if text("api_domain") else api_domain_for(accounts_server)
    return Settings(client_id=client_id, organization_id=organization_id, accounts_server=accounts_server,
                    api_domain=api_domain.rstrip("/"), **tunables)


def normalize_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """The ``validate_settings`` hook: check a new or changed connection and normalize what it gave.

    Returns the same keys, with ``accounts_server`` as a URL and text trimmed.
    """
    settings = {k: v for k, v in values.items() if k not in SECRET_FIELDS}
    secrets = {k: v for k, v in values.items() if k in SECRET_FIELDS}
    cfg = validate_settings(settings, secrets)
    out = {k: (v.strip() if isinstance(v, str) and k not in SECRET_FIELDS else v) for k, v in values.items()}
    if "accounts_server" in out:
        out["accounts_server"] = cfg.accounts_server
    return out
