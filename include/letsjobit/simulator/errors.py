"""The simulator's error answers: the API's error shape ``{"meta": {"error": ...}, "data": null}``."""

from __future__ import annotations

from http import HTTPStatus

import orjson


class ApiError(Exception):
    """An answer in the API's error shape."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def error_body(message: str) -> bytes:
    return orjson.dumps({"meta": {"error": message}, "data": None})


def status_phrase(status: int) -> str:
    """The reason phrase of a status line ("Error" for a status HTTP does not name)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
