"""QuickBooks Online error answers, in the shapes the real service uses (QUICKBOOKS.md §2 "Error envelope").

* API validation/system errors: ``{"Fault": {"Error": [{"Message", "Detail", "code", "element"}], "type": ...},
  "time": ...}`` with HTTP 400 (500 for ``SystemFault``).
* Gateway 401/403: the lowercase ``fault``/``error`` shape with ``time`` in epoch milliseconds.
* Throttling (429, code 3001): XML ``IntuitResponse`` even when JSON was asked for (§3).
* OAuth server errors: ``{"error": ..., "error_description": ...}`` (§1 "Token errors").
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any
from xml.sax.saxutils import escape

# Codes of §2's table.
OBJECT_NOT_FOUND = "610"
UNSUPPORTED_PROPERTY = "2010"
REQUIRED_PARAM_MISSING = "2020"
STRING_LENGTH = "2050"
INVALID_REFERENCE = "2500"
QUERY_PARSE = "4000"
INVALID_QUERY = "4001"
STALE_OBJECT = "5010"
BUSINESS_VALIDATION = "6000"
LINE_MATH = "6070"
DUPLICATE_DOC_NUMBER = "6140"
DUPLICATE_NAME = "6240"
APPLICATION_ERROR = "10000"
AUTHENTICATION_FAILED = "3200"
AUTHORIZATION_FAILED = "3100"
THROTTLED = "3001"

MESSAGES = {
    OBJECT_NOT_FOUND: "Object Not Found",
    UNSUPPORTED_PROPERTY: "Request has invalid or unsupported property",
    REQUIRED_PARAM_MISSING: "Required param missing, need to supply the required value for the API",
    STRING_LENGTH: "String length is either shorter or longer than supported by specification",
    INVALID_REFERENCE: "Invalid Reference Id",
    QUERY_PARSE: "Error parsing query",
    INVALID_QUERY: "Invalid query",
    STALE_OBJECT: "Stale Object Error",
    BUSINESS_VALIDATION: "A business validation error has occurred while processing your request",
    LINE_MATH: "Amount is not equal to UnitPrice * Qty",
    DUPLICATE_DOC_NUMBER: "Duplicate Document Number Error",
    DUPLICATE_NAME: "Duplicate Name Exists Error",
    APPLICATION_ERROR: "An application error has occurred while processing your request",
}

# The company's offset for timestamps (§2: "timestamps ISO 8601 with the company's offset").
COMPANY_TZ = dt.timezone(dt.timedelta(hours=-7))


def qbo_time(at: float | None = None) -> str:
    moment = dt.datetime.fromtimestamp(time.time() if at is None else at, COMPANY_TZ)
    return moment.isoformat(timespec="milliseconds")


class QBOError(Exception):
    """An error answer; ``shape`` picks the envelope: ``fault``, ``gateway`` or ``xml``."""

    def __init__(self, status: int, code: str, detail: str = "", *, element: str = "", fault_type: str = "",
                 message: str | None = None, shape: str = "fault") -> None:
        self.status = status
        self.code = code
        self.detail = detail
        self.element = element
        self.fault_type = fault_type or ("SystemFault" if status >= 500 else "ValidationFault")
        self.message = message or MESSAGES.get(code, "Error")
        self.shape = shape
        super().__init__(f"{status} {code} {self.message}: {detail}")

    def body(self) -> dict[str, Any]:
        if self.shape == "gateway":
            return {"warnings": None, "intuitObject": None,
                    "fault": {"error": [{"message": self.message, "detail": self.detail, "code": self.code,
                                         "element": None}], "type": self.fault_type},
                    "report": None, "queryResponse": None, "batchItemResponse": [], "attachableResponse": [],
                    "syncErrorResponse": None, "requestId": None, "time": int(time.time() * 1000),
                    "status": None, "cdcresponse": []}
        return {"Fault": {"Error": [{"Message": self.message, "Detail": self.detail, "code": self.code,
                                     "element": self.element}], "type": self.fault_type},
                "time": qbo_time()}

    def xml(self) -> bytes:
        return (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><IntuitResponse time="{qbo_time()}">'
                f'<Fault type="{escape(self.fault_type)}"><Error code="{escape(self.code)}">'
                f"<Message>{escape(self.message)}</Message><Detail>{escape(self.detail)}</Detail>"
                f"</Error></Fault></IntuitResponse>").encode()


def validation(code: str, detail: str, element: str = "") -> QBOError:
    return QBOError(400, code, detail, element=element)


def not_found(entity: str, entity_id: str) -> QBOError:
    # §2: 610 for a GET/update of a nonexistent or deleted Id.
    return validation(OBJECT_NOT_FOUND, f"Object Not Found : Something you're trying to use has been made inactive. "
                      f"Check the fields with accounts, customers, items, vendors or employees. ({entity} {entity_id})")


def business(detail: str) -> QBOError:
    return validation(BUSINESS_VALIDATION, f"Business Validation Error: {detail}")


def expired_token(detail: str = "Token expired") -> QBOError:
    # §2: gateway 401, lowercase shape, code 3200, type AUTHENTICATION.
    return QBOError(401, AUTHENTICATION_FAILED, detail, fault_type="AUTHENTICATION", shape="gateway",
                    message="message=AuthenticationFailed; errorCode=003200; statusCode=401")


def forbidden(detail: str = "Forbidden") -> QBOError:
    # §2: gateway 403, code 3100, type SERVICE.
    return QBOError(403, AUTHORIZATION_FAILED, detail, fault_type="SERVICE", shape="gateway",
                    message="message=AuthorizationFailed; errorCode=003100; statusCode=403")


def throttled(json_body: bool = False) -> QBOError:
    # §3: 429 with code 3001; XML body even when JSON was requested (a JSON variant is [U]: configurable).
    return QBOError(429, THROTTLED, "The request limit was reached.  Try again later", fault_type="SERVICE",
                    message="message=ThrottleExceeded; errorCode=003001; statusCode=429",
                    shape="gateway" if json_body else "xml")


def system_error(status: int = 500) -> QBOError:
    # §2: 10000 "An application error has occurred", SystemFault, HTTP 500.
    return QBOError(status, APPLICATION_ERROR, "An application error has occurred while processing your request",
                    fault_type="SystemFault")


class OAuthError(Exception):
    """An answer of the OAuth token/revoke endpoints (§1 "Token errors")."""

    def __init__(self, status: int, error: str, description: str | None = None) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.description = description

    def body(self) -> dict[str, Any]:
        out = {"error": self.error}
        if self.description:
            out["error_description"] = self.description
        return out
