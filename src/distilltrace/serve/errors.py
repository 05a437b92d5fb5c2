"""OpenAI-style errors of the serve app: ``{"error": {"message", "type", "param", "code"}}``."""

from __future__ import annotations

from typing import Any


class APIError(Exception):
    """An error answered as OpenAI-style JSON with an HTTP status."""

    def __init__(self, status: int, message: str, type_: str, code: str | None = None, param=None):
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = (
            status,
            message,
            type_,
            code,
            param,
        )


def error_body(message: str, type_: str, code: str | None = None, param: Any = None) -> dict:
    """The JSON body of an error response."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def bad_request(message: str, code: str | None = None, param: Any = None) -> APIError:
    """A 400 invalid_request_error."""
    return APIError(400, message, "invalid_request_error", code, param)
