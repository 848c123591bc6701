"""Pseudonymisation of contacts: how a contact value becomes its pseudonym, in the tables and in the issues.

With a key (`LETSJOBIT_PSEUDONYMISE_KEY`), the columns of `schema.PSEUDONYMISED_COLUMNS` hold
HMAC-SHA256(key, value) of the value normalised first (trimmed; emails lower-cased; phones without
spaces, dots, dashes, brackets), so that one person keeps one pseudonym. The free text that quotes
contacts (`obs`) keeps its text, its email addresses and phone numbers replaced by the start of the same
pseudonym. An issue's raw value is pseudonymised as its column is, and so are the fields recorded for a
visit without `_id`. The flattener calls this module; nothing else needs to.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any

import pyarrow as pa

from letsjobit.lake import coerce, schema

PSEUDONYMISED_API_NAMES = frozenset(
    f.api_name for f in schema.VISIT_FIELDS if f.column in schema.PSEUDONYMISED_COLUMNS
)
# Free text that quotes contacts (the reference's own `obs`: "Contact Info: ..., John: 01999999999").
MASKED_API_NAMES = frozenset({"obs"})
PSEUDONYM_TOKEN_HEX = 12

_PHONE_PUNCTUATION = re.compile(r"[\s().-]")
_EMAIL_IN_TEXT = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# A run of digits with the usual phone punctuation on one line; a phone when it has 9 to 15 digits.
_PHONE_IN_TEXT = re.compile(r"(?<![\w+])\+?\(?\d[\d ().-]{6,}\d(?![\w])")
_DATE_IN_TEXT = re.compile(r"\b\d{4}-\d{1,2}-\d{1,2}\b|\b\d{1,2}[./-]\d{1,2}[./-]\d{2,4}\b")


def pseudonymise(value: str | None, key: str, api_name: str) -> str | None:
    """HMAC-SHA256 of a contact value, normalised first so that formatting does not split a person."""
    if value is None:
        return None
    text = value.strip()
    if api_name == "signeeEmail":
        text = text.lower()
    elif api_name == "contactPhone":
        text = _PHONE_PUNCTUATION.sub("", text)
    return hmac.new(key.encode(), text.encode(), hashlib.sha256).hexdigest()


def mask_contacts(text: str | None, key: str) -> str | None:
    """Free text with its email addresses and phone numbers replaced by ``[email:…]`` / ``[phone:…]``.

    The token is the start of the value's pseudonym (`pseudonymise`), so a number quoted in `obs` can
    still be matched with `contact_phone`. A phone is a run of 9 to 15 digits (spaces, dots, dashes and
    brackets allowed between them, no date in it); times, dates and quantities are left alone.
    """
    if not text:
        return text

    def email(match: re.Match) -> str:
        return f"[email:{pseudonymise(match.group(), key, 'signeeEmail')[:PSEUDONYM_TOKEN_HEX]}]"

    def phone(match: re.Match) -> str:
        digits = sum(character.isdigit() for character in match.group())
        if not 9 <= digits <= 15 or _DATE_IN_TEXT.search(match.group()):
            return match.group()
        return f"[phone:{pseudonymise(match.group(), key, 'contactPhone')[:PSEUDONYM_TOKEN_HEX]}]"

    return _PHONE_IN_TEXT.sub(phone, _EMAIL_IN_TEXT.sub(email, text))


def visit_value(text: str | None, api_name: str, key: str) -> str | None:
    """A visit field's text as its column holds it: hashed, masked, or as it is."""
    if api_name in PSEUDONYMISED_API_NAMES:
        return pseudonymise(text, key, api_name)
    if api_name in MASKED_API_NAMES:
        return mask_contacts(text, key)
    return text


def visit_column(array: pa.Array, api_name: str, key: str | None) -> pa.Array:
    """A coerced visit column with its contacts pseudonymised when there is a key."""
    if not key or api_name not in PSEUDONYMISED_API_NAMES | MASKED_API_NAMES:
        return array
    return pa.array([visit_value(value, api_name, key) for value in array.to_pylist()], pa.string())


def visit_record(record: dict[str, Any], key: str) -> dict[str, Any]:
    """A record's fields with its contacts pseudonymised as their columns are (for an issue's raw value)."""
    record = dict(record)
    for api_name in PSEUDONYMISED_API_NAMES & record.keys():
        try:
            text = coerce.coerce_text(record[api_name])
        except coerce.CoercionError:
            text = coerce.json_text(record[api_name])
        record[api_name] = pseudonymise(text, key, api_name)
    for api_name in MASKED_API_NAMES & record.keys():
        value = record[api_name]
        record[api_name] = mask_contacts(value if isinstance(value, str) else coerce.raw_text(value), key)
    return record
