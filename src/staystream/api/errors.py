"""The one exception an HTTP handler raises to answer an error: status, message, headers.

Every route renders it as the contract's `{"error": "..."}` (`app.route`). Middleware and
helpers below the routes (`deadlines`, `admission`) raise it too, so a refusal looks the same
wherever it is decided.
"""

from __future__ import annotations


class HTTPError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}
