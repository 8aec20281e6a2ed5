"""The query endpoint's SQL subset (QUICKBOOKS.md §2 "Query language").

``SELECT * | COUNT(*) | field, ... FROM Entity [WHERE cond AND cond ...] [ORDERBY field [ASC|DESC]]
[STARTPOSITION n] [MAXRESULTS m]``; conditions ``=, <, >, <=, >=, IN (...), LIKE`` (``%`` only), joined by
``AND`` only. Strings in single quotes, an apostrophe escaped as ``\\'`` (``''`` is not an escape: it ends
the literal and the parser fails). Keywords are case-insensitive. Parse failures → 4000 with a
``QueryParserError`` detail; a non-filterable field or unknown entity → 4001 [U code].
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from .errors import INVALID_QUERY, QUERY_PARSE, validation

# §2: fields flagged "filterable" (the subset the facts file lists, plus ones the plugin uses).
FILTERABLE: dict[str, set[str]] = {
    "Customer": {"Id", "DisplayName", "GivenName", "FamilyName", "CompanyName", "PrimaryEmailAddr", "Active",
                 "Balance", "MetaData.CreateTime", "MetaData.LastUpdatedTime"},
    "Invoice": {"Id", "DocNumber", "TxnDate", "DueDate", "CustomerRef", "Balance", "TotalAmt",
                "MetaData.CreateTime", "MetaData.LastUpdatedTime"},
    "Item": {"Id", "Name", "Type", "Active", "Sku", "MetaData.CreateTime", "MetaData.LastUpdatedTime"},
    "Account": {"Id", "Name", "AccountType", "AccountSubType", "Active", "Classification",
                "MetaData.CreateTime", "MetaData.LastUpdatedTime"},
    "Payment": {"Id", "TxnDate", "CustomerRef", "TotalAmt", "MetaData.CreateTime", "MetaData.LastUpdatedTime"},
    "TaxCode": {"Id", "Name", "Active"},
    "Vendor": {"Id", "DisplayName", "Active"},
    "Employee": {"Id", "DisplayName", "Active"},
}
NAME_LISTS = {"Customer", "Item", "Account", "TaxCode", "Vendor", "Employee"}  # hidden when inactive
MAX_RESULTS = 1000
DEFAULT_MAX_RESULTS = 100

_TOKEN = re.compile(r"""\s*(?:
    (?P<string>'(?:\\.|[^'\\])*')
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<op><=|>=|=|<|>|\(|\)|,|\*)
  | (?P<word>[A-Za-z_][A-Za-z0-9_.]*)
)""", re.VERBOSE)


@dataclass
class Token:
    kind: str
    text: str
    column: int
    value: Any = None


@dataclass
class Condition:
    field: str
    op: str
    value: Any


@dataclass
class Query:
    entity: str
    count: bool = False
    fields: list[str] | None = None
    where: list[Condition] = field(default_factory=list)
    order_by: str | None = None
    descending: bool = False
    start: int = 1
    max_results: int = DEFAULT_MAX_RESULTS


def _lexical_error(text: str, column: int) -> Exception:
    char = text[column - 1] if column - 1 < len(text) else "<EOF>"
    return validation(QUERY_PARSE, f"QueryParserError: Lexical error at line 1, column {column}.  Encountered: "
                      f"\"{char}\" ({ord(char) if len(char) == 1 else 0}), after : \"\"")


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    for i, ch in enumerate(text):
        if ch in "\u2018\u2019\u201c\u201d":  # §2: typographic quotes raise a lexical error
            raise _lexical_error(text, i + 1)
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise _lexical_error(text, pos + len(text[pos:]) - len(text[pos:].lstrip()) + 1)
        kind = m.lastgroup or ""
        raw = m.group(kind)
        column = m.start(kind) + 1
        if kind == "string":
            body = raw[1:-1]
            value = re.sub(r"\\(.)", r"\1", body)  # §2: backslash escapes the apostrophe
            tokens.append(Token("string", raw, column, value))
        elif kind == "number":
            tokens.append(Token("number", raw, column, Decimal(raw)))
        elif kind == "word":
            tokens.append(Token("word", raw, column, raw))
        else:
            tokens.append(Token("op", raw, column, raw))
        pos = m.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    def peek(self) -> Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def error(self, expecting: str) -> Exception:
        tok = self.peek()
        if tok is None:
            where, seen = len(self.text) + 1, "<EOF>"
        else:
            where, seen = tok.column, tok.text
        return validation(QUERY_PARSE, f"QueryParserError: Encountered \" \"{seen}\" \" at line 1, column {where}.\n"
                          f"Was expecting one of:\n    {expecting}")

    def take(self) -> Token:
        tok = self.peek()
        if tok is None:
            raise self.error("<more input>")
        self.i += 1
        return tok

    def keyword(self, word: str) -> bool:
        tok = self.peek()
        if tok is not None and tok.kind == "word" and tok.text.upper() == word:
            self.i += 1
            return True
        return False

    def expect_keyword(self, word: str) -> None:
        if not self.keyword(word):
            raise self.error(f'"{word}" ...')

    def expect_op(self, op: str) -> None:
        tok = self.peek()
        if tok is None or tok.kind != "op" or tok.text != op:
            raise self.error(f'"{op}" ...')
        self.i += 1

    def ident(self) -> str:
        tok = self.peek()
        if tok is None or tok.kind != "word":
            raise self.error("<ID> ...")
        self.i += 1
        return tok.text

    def literal(self) -> Any:
        tok = self.take()
        if tok.kind in ("string", "number"):
            return tok.value
        if tok.kind == "word" and tok.text.lower() in ("true", "false"):
            return tok.text.lower() == "true"
        self.i -= 1
        raise self.error("<STRING> ... <NUMBER> ... <BOOLEAN> ...")

    def integer(self) -> int:
        tok = self.take()
        if tok.kind != "number" or not isinstance(tok.value, Decimal) or tok.value != tok.value.to_integral():
            self.i -= 1
            raise self.error("<INTEGER> ...")
        return int(tok.value)

    def parse(self) -> Query:
        self.expect_keyword("SELECT")
        count = False
        fields: list[str] | None = None
        tok = self.peek()
        if tok is not None and tok.kind == "op" and tok.text == "*":
            self.i += 1
        elif tok is not None and tok.kind == "word" and tok.text.upper() == "COUNT":
            self.i += 1
            self.expect_op("(")
            self.expect_op("*")
            self.expect_op(")")
            count = True
        else:
            fields = [self.ident()]
            while (t := self.peek()) is not None and t.kind == "op" and t.text == ",":
                self.i += 1
                fields.append(self.ident())
        self.expect_keyword("FROM")
        query = Query(entity=self.ident(), count=count, fields=fields)
        if self.keyword("WHERE"):
            query.where.append(self.condition())
            while True:
                t = self.peek()
                if t is not None and t.kind == "word" and t.text.upper() == "OR":
                    raise self.error('"AND" ... "ORDERBY" ... "STARTPOSITION" ... "MAXRESULTS" ... <EOF>')
                if not self.keyword("AND"):
                    break
                query.where.append(self.condition())
        if self.keyword("ORDERBY") or (self.keyword("ORDER") and self._by()):
            query.order_by = self.ident()
            if self.keyword("DESC"):
                query.descending = True
            else:
                self.keyword("ASC")
        if self.keyword("STARTPOSITION"):
            query.start = max(1, self.integer())
        if self.keyword("MAXRESULTS"):
            query.max_results = min(MAX_RESULTS, max(1, self.integer()))
        if self.peek() is not None:
            raise self.error('"WHERE" ... "ORDERBY" ... "STARTPOSITION" ... "MAXRESULTS" ... <EOF>')
        return query

    def _by(self) -> bool:
        self.expect_keyword("BY")
        return True

    def condition(self) -> Condition:
        name = self.ident()
        if self.keyword("IN"):
            self.expect_op("(")
            values = [self.literal()]
            while (t := self.peek()) is not None and t.kind == "op" and t.text == ",":
                self.i += 1
                values.append(self.literal())
            self.expect_op(")")
            return Condition(name, "IN", values)
        if self.keyword("LIKE"):
            value = self.literal()
            if not isinstance(value, str):
                raise self.error("<STRING> ...")
            return Condition(name, "LIKE", value)
        tok = self.peek()
        if tok is None or tok.kind != "op" or tok.text not in ("=", "<", ">", "<=", ">="):
            raise self.error('"=" ... "<" ... ">" ... "<=" ... ">=" ... "IN" ... "LIKE" ...')
        self.i += 1
        return Condition(name, tok.text, self.literal())


def parse(text: str) -> Query:
    query = _Parser(text).parse()
    allowed = FILTERABLE.get(query.entity)
    if allowed is None:
        raise validation(INVALID_QUERY, f"Invalid query: unknown entity {query.entity}")
    for cond in query.where:
        if cond.field not in allowed:
            raise validation(INVALID_QUERY, f"Invalid query: property {cond.field} is not queryable on {query.entity}")
    return query


# --- evaluation ---------------------------------------------------------------------------------


def field_value(record: dict[str, Any], name: str) -> Any:
    """A record's value for a query field: dotted paths; references compare by ``value``; emails by address."""
    value: Any = record
    for part in name.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, dict):
        value = value.get("value", value.get("Address"))
    return value


def _compare(left: Any, op: str, right: Any) -> bool:
    if left is None:
        return False
    if isinstance(left, bool) or isinstance(right, bool):
        return op == "=" and bool(left) == bool(right) and isinstance(right, bool)
    if isinstance(right, Decimal) or isinstance(left, int | Decimal):
        try:
            lnum, rnum = Decimal(str(left)), Decimal(str(right))
        except InvalidOperation:
            return False
        pair: tuple[Any, Any] = (lnum, rnum)
    else:
        pair = (str(left), str(right))
        if op == "=":  # string equality is case-insensitive in QBO queries [U]
            return pair[0].lower() == pair[1].lower()
    a, b = pair
    return {"=": a == b, "<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}[op]


def _like(value: Any, pattern: str) -> bool:
    if value is None:
        return False
    regex = "^" + ".*".join(re.escape(part) for part in pattern.split("%")) + "$"
    return re.match(regex, str(value), re.IGNORECASE | re.DOTALL) is not None


def matches(record: dict[str, Any], cond: Condition) -> bool:
    value = field_value(record, cond.field)
    if cond.op == "IN":
        return any(_compare(value, "=", v) for v in cond.value)
    if cond.op == "LIKE":
        return _like(value, cond.value)
    return _compare(value, cond.op, cond.value)


def run(query: Query, records: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``QueryResponse`` for ``query`` over ``records`` (already the entity's records)."""
    mentions_active = any(c.field == "Active" for c in query.where)
    rows = [r for r in records
            if (mentions_active or query.entity not in NAME_LISTS or r.get("Active", True))
            and all(matches(r, c) for c in query.where)]
    if query.count:
        return {"totalCount": len(rows)}
    key = query.order_by
    if key:
        def sort_key(r: dict[str, Any]) -> tuple[int, Any]:
            v = field_value(r, key)
            if isinstance(v, str) and v.isdigit() and key.endswith("Id"):
                return (0, int(v))
            return (v is None, Decimal(str(v)) if isinstance(v, int | Decimal) else str(v or ""))
        rows.sort(key=sort_key, reverse=query.descending)
    else:
        rows.sort(key=lambda r: int(r["Id"]) if str(r.get("Id", "")).isdigit() else 0)
    page = rows[query.start - 1: query.start - 1 + query.max_results]
    if not page:
        return {}  # §2: no matches → QueryResponse is {} (the entity key is absent)
    if query.fields:
        wanted = {f.split(".")[0] for f in query.fields} | {"Id"}
        page = [{k: v for k, v in r.items() if k in wanted} for r in page]
    return {query.entity: page, "startPosition": query.start, "maxResults": len(page)}
