"""Connection settings of a QuickBooks Online connection: fields, validation, endpoints, tunables.

Endpoints (QUICKBOOKS.md §1 and §2): OAuth on Intuit's fixed hosts for both environments; the API host by
environment. ``environment`` may also be a loopback URL (the local emulator), which then serves every path.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import attrs

from integration_core.errors import ConfigurationError
from integration_core.models import ProviderInfo, SettingField

PROVIDER_NAME = "quickbooks"
DISTRIBUTION = "integration-core-quickbooks"
AUTHORIZE_URL = "https://appcenter.intuit.com/connect/oauth2"
TOKEN_URL = "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer"
REVOKE_URL = "https://developer.api.intuit.com/v2/oauth2/tokens/revoke"
API_HOSTS = {"production": "https://quickbooks.api.intuit.com", "sandbox": "https://sandbox-quickbooks.api.intuit.com"}
LOOPBACK = ("127.0.0.1", "localhost", "::1")
MINOR_VERSION = 75  # §2: versions below 75 are ignored and treated as 75

FIELDS: tuple[SettingField, ...] = (
    SettingField("client_id", "Client id of the Intuit app (developer portal → Keys and credentials); default: the "
                 "provider-level value (providers configure quickbooks)", required=False),
    SettingField("client_secret", "Client secret of that app; default: the provider-level value", secret=True,
                 required=False),
    SettingField("environment", "production, sandbox, or the URL of a local QuickBooks emulator",
                 default="production"),
    SettingField("realm_id", "QuickBooks company id; learned at authorization, set only to pin one company",
                 required=False),
    SettingField("income_account_id", "Id of the Income account for the billing item (default: the company's "
                 "service income account)", required=False),
    SettingField("item_name", "Name of the Service item invoice lines use; created when missing (Billing services)",
                 required=False),
    SettingField("item_type", "Type of the items made for product codes: Service (default) or NonInventory",
                 required=False),
    SettingField("item_lookup", "How a product code finds an existing item: sku (its Sku, default) or name (its "
                 "Name, the line's description)", required=False),
    SettingField("tax_code", "TaxCodeRef for invoice lines: US companies NON (default) or TAX; other countries "
                 "the Id of a tax code (required there)", required=False),
    SettingField("webhook_verifier_token", "Verifier token of the Intuit app's webhooks (for the per-connection "
                 "route; default: the provider-level value)", secret=True, required=False),
    SettingField("use_local_invoice_numbers", "Send our invoice numbers as DocNumber (true) or let QuickBooks "
                 "number invoices", required=False),
    SettingField("rate_limit_per_minute", "Requests per minute for this company (QuickBooks: 500)", required=False),
    SettingField("rate_limit_concurrency", "Requests in flight for this company (QuickBooks: 10)", required=False),
    SettingField("connect_timeout", "Seconds to connect (5)", required=False),
    SettingField("read_timeout", "Seconds to wait for an answer (30)", required=False),
    SettingField("refresh_margin", "Refresh the access token this many seconds before it expires (300)",
                 required=False),
    SettingField("cache_ttl", "Seconds to cache company preferences, the item and exchange rates (600)",
                 required=False),
    SettingField("throttle_retry_after", "Seconds to wait after a 429 without Retry-After (10)", required=False),
)
SECRET_FIELDS = frozenset(f.name for f in FIELDS if f.secret)
# The Intuit app's own keys (``integration-core providers configure quickbooks``): one app serves every company,
# and Intuit posts every company's webhooks to one URL signed with the app's verifier token (QUICKBOOKS.md §7).
APP_FIELDS: tuple[SettingField, ...] = (
    SettingField("client_id", "Client id of the Intuit app", required=False),
    SettingField("client_secret", "Client secret of the Intuit app", secret=True, required=False),
    SettingField("webhook_verifier_token", "Verifier token of the app's webhooks (intuit-signature)", secret=True,
                 required=False),
)


def version() -> str:
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def provider_info() -> ProviderInfo:
    return ProviderInfo(name=PROVIDER_NAME, title="QuickBooks Online", version=version(), fields=FIELDS, oauth=True,
                        app_fields=APP_FIELDS)


@attrs.frozen
class Settings:
    client_id: str
    environment: str
    realm_id: str
    income_account_id: str
    item_name: str = "Billing services"
    tax_code: str = ""
    item_type: str = "Service"
    item_lookup: str = "sku"
    use_local_invoice_numbers: bool = True
    rate_limit_per_minute: int = 500
    rate_limit_concurrency: int = 10
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    refresh_margin: float = 300.0
    cache_ttl: float = 600.0
    throttle_retry_after: float = 10.0

    @property
    def emulated(self) -> bool:
        return self.environment.startswith("http")

    @property
    def api_base(self) -> str:
        return self.environment if self.emulated else API_HOSTS[self.environment]

    def oauth_url(self, which: str) -> str:
        real = {"authorize": AUTHORIZE_URL, "token": TOKEN_URL, "revoke": REVOKE_URL}[which]
        return self.environment + urlsplit(real).path if self.emulated else real


def _bool(name: str, value: Any, default: bool) -> bool:
    if value is None or value == "":
        return default
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigurationError(f"{name} must be true or false, got {value!r}")


def _number(name: str, value: Any, default: float, minimum: float = 0.0) -> float:
    if value is None or value == "":
        return default
    try:
        result = float(value)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"{name} must be a number, got {value!r}") from exc
    if result <= minimum:
        raise ConfigurationError(f"{name} must be greater than {minimum:g}, got {value!r}")
    return result


def environment_problem(value: str) -> str | None:
    if value in API_HOSTS:
        return None
    parts = urlsplit(value)
    if parts.scheme in ("http", "https") and parts.hostname in LOOPBACK and parts.path in ("", "/"):
        return None
    return (f"environment must be production, sandbox or a loopback emulator URL such as http://127.0.0.1:8790, "
            f"got {value!r}")


def validate_settings(settings: Mapping[str, Any], secrets: Mapping[str, Any] | None = None, *,
                      need_credentials: bool = True) -> Settings:
    problems: list[str] = []

    def text(name: str) -> str:
        value = settings.get(name)
        return str(value).strip() if value is not None else ""

    client_id = text("client_id")
    if need_credentials and not client_id:
        problems.append("client_id is required (Intuit developer portal → your app → Keys and credentials)")
    environment = (text("environment") or "production").rstrip("/")
    if environment.lower() in API_HOSTS:
        environment = environment.lower()
    problem = environment_problem(environment)
    if problem:
        problems.append(problem)
    realm_id = text("realm_id")
    if realm_id and not realm_id.isdigit():
        problems.append(f"realm_id must be digits only (the company id), got {realm_id!r}")
    income = text("income_account_id")
    if income and not income.isdigit():
        problems.append(f"income_account_id must be an account Id (digits), got {income!r}")
    item_name = text("item_name") or "Billing services"
    if ":" in item_name or len(item_name) > 100:
        problems.append("item_name must be at most 100 characters without a colon (QuickBooks' rule)")
    item_type = {"service": "Service", "noninventory": "NonInventory", "non-inventory": "NonInventory"}.get(
        text("item_type").lower() or "service")
    if item_type is None:
        problems.append(f"item_type must be Service or NonInventory, got {text('item_type')!r}")
    item_lookup = text("item_lookup").lower() or "sku"
    if item_lookup not in ("sku", "name"):
        problems.append(f"item_lookup must be sku or name, got {text('item_lookup')!r}")
    if secrets is not None and need_credentials and not secrets.get("client_secret"):
        problems.append("client_secret is required")
    try:
        tunables: dict[str, Any] = {
            "use_local_invoice_numbers": _bool("use_local_invoice_numbers", settings.get("use_local_invoice_numbers"),
                                               True),
            "rate_limit_per_minute": int(_number("rate_limit_per_minute", settings.get("rate_limit_per_minute"),
                                                 500)),
            "rate_limit_concurrency": int(_number("rate_limit_concurrency", settings.get("rate_limit_concurrency"),
                                                  10)),
            "connect_timeout": _number("connect_timeout", settings.get("connect_timeout"), 5.0),
            "read_timeout": _number("read_timeout", settings.get("read_timeout"), 30.0),
            "refresh_margin": _number("refresh_margin", settings.get("refresh_margin"), 300.0, minimum=-1),
            "cache_ttl": _number("cache_ttl", settings.get("cache_ttl"), 600.0, minimum=-1),
            "throttle_retry_after": _number("throttle_retry_after", settings.get("throttle_retry_after"), 10.0),
        }
    except ConfigurationError as exc:
        problems.append(str(exc))
        tunables = {}
    if problems:
        raise ConfigurationError("QuickBooks connection settings: " + "; ".join(problems))
    return Settings(client_id=client_id, environment=environment, realm_id=realm_id, income_account_id=income,
                    item_name=item_name, tax_code=text("tax_code"), item_type=item_type or "Service",
                    item_lookup=item_lookup, **tunables)


def normalize_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """The ``validate_settings`` hook: check a new or changed connection, trim text, normalize the environment."""
    settings = {k: v for k, v in values.items() if k not in SECRET_FIELDS}
    secrets = {k: v for k, v in values.items() if k in SECRET_FIELDS}
    cfg = validate_settings(settings, secrets, need_credentials=False)  # the app's keys may be provider-level
    out = {k: (v.strip() if isinstance(v, str) and k not in SECRET_FIELDS else v) for k, v in values.items()}
    if "environment" in out:
        out["environment"] = cfg.environment
    return out
