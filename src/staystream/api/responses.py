"""The API's one error type and its JSON responses."""

from __future__ import annotations

import msgspec
from starlette.responses import Response

_json = msgspec.json.Encoder()


class HTTPError(Exception):
    """Raised by a handler; `routing.route` answers it as `{"error": message}` with this status."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


def json_response(content: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(_json.encode(content), status, headers, media_type="application/json")
