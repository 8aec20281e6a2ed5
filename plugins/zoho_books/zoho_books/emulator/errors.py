"""Zoho-style error values, kept in one place so codes can be corrected against the real service."""

from __future__ import annotations

# Codes observed in Zoho Books answers (see /work/shared/ZOHO_BOOKS.md). The validation codes (2, 4, 15,
# 1001) follow Zoho's public error list as best known; clients must key on the HTTP status and `code` != 0.
INTERNAL_ERROR = 1000
NOT_FOUND = 1002
ALREADY_EXISTS = 1001
INVALID_VALUE = 2
INVALID_JSON = 4
TOO_LONG = 15
NO_AUTH = 14
NOT_AUTHORIZED = 57
RATE_LIMIT_MINUTE = 44
RATE_LIMIT_DAILY = 45
RATE_LIMIT_CONCURRENCY = 1070
CONTACT_NAME_EXISTS = 3062
ORG_REQUIRED = 6024
ORG_NOT_ASSOCIATED = 6041
METHOD_NOT_ALLOWED = 37


class ZohoError(Exception):
    """A Books API failure carried to the HTTP layer as `{"code": N, "message": "..."}`."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> dict[str, object]:
        return {"code": self.code, "message": self.message}


def not_found(what: str) -> ZohoError:
    """Zoho's uniform 'does not exist' answer for unknown ids."""
    return ZohoError(404, NOT_FOUND, f"{what} does not exist.")


def invalid(field: str, detail: str = "") -> ZohoError:
    msg = f"Invalid value passed for {field}"
    return ZohoError(400, INVALID_VALUE, f"{msg}. {detail}".strip() if detail else msg)


def mandatory(field: str) -> ZohoError:
    return ZohoError(400, INVALID_JSON, f"{field} is mandatory. Invalid value passed for JSONString")


class OAuthError(Exception):
    """An accounts-server failure; Zoho answers these as `{"error": "..."}`, usually with HTTP 200."""

    def __init__(self, error: str, description: str | None = None, status: int = 200) -> None:
        super().__init__(error)
        self.error = error
        self.description = description
        self.status = status

    def body(self) -> dict[str, str]:
        out = {"error": self.error}
        if self.description:
            out["error_description"] = self.description
        return out
